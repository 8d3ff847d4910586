//! Seeded fuzz-style tests of the frame decoder: random bytes, truncations and bit
//! flips of valid streams must give frames or errors, never a panic.

use automerge::ChangeHash;
use minqing_sync::DocId;
use minqing_sync::frame::{
    DocHeads, ErrorCode, Frame, FrameDecoder, Heads, HeadsDigest, PROTOCOL_VERSION,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn valid_stream(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    let docs: Vec<DocHeads> = (0..rng.random_range(0..5))
        .map(|i| DocHeads {
            doc: DocId::new(format!("V{i}")).expect("valid id"),
            heads: match rng.random_range(0..4) {
                0 => Heads::Clean(HeadsDigest(rng.random())),
                1 => Heads::Unchanged,
                _ => Heads::List(
                    (0..rng.random_range(0..3))
                        .map(|_| ChangeHash(rng.random()))
                        .collect(),
                ),
            },
        })
        .collect();
    let frames = [
        Frame::hello("dev", docs.clone()),
        Frame::Welcome {
            version: PROTOCOL_VERSION,
            relay: "relay".into(),
            docs,
        },
        Frame::Sync {
            doc: DocId::new("V1").expect("valid id"),
            message: (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
        },
        Frame::Error {
            code: ErrorCode::Protocol,
            message: "x".into(),
        },
        Frame::Bye,
    ];
    for f in &frames {
        out.extend(f.encode().expect("small frames encode"));
    }
    out
}

/// Feeds `bytes` in random slices; returns how many frames came out before an error.
fn feed(rng: &mut StdRng, bytes: &[u8]) -> usize {
    let mut dec = FrameDecoder::default();
    let mut n = 0;
    let mut i = 0;
    while i < bytes.len() {
        let step = rng.random_range(1..=bytes.len() - i);
        dec.push(&bytes[i..i + step]);
        i += step;
        loop {
            match dec.next_frame() {
                Ok(Some(_)) => n += 1,
                Ok(None) => break,
                Err(_) => return n,
            }
        }
    }
    n
}

#[test]
fn random_inputs_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for _ in 0..20_000 {
        let len = rng.random_range(0..200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        feed(&mut rng, &bytes);
    }
}

#[test]
fn truncations_and_bit_flips_of_valid_streams_never_panic() {
    let mut rng = StdRng::seed_from_u64(42);
    for _ in 0..5_000 {
        let stream = valid_stream(&mut rng);
        // the intact stream decodes completely
        assert_eq!(feed(&mut rng, &stream), 5);
        let cut = rng.random_range(0..stream.len());
        assert!(feed(&mut rng, &stream[..cut]) < 5);
        let mut flipped = stream.clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..flipped.len());
            flipped[at] ^= 1 << rng.random_range(0..8);
        }
        feed(&mut rng, &flipped);
    }
}
