//! The frame decoder target: bytes pushed into a [`FrameDecoder`] in slices,
//! every frame that comes out re-encoded and compared with the bytes it came
//! from (the codec is canonical, so the round trip is byte-exact).

use minqing_sync::frame::Frame;
use minqing_sync::{FrameDecoder, MAX_FRAME_LEN};

/// Runs one input. The first byte picks the slice size the stream is pushed in
/// (0: all at once) and whether the decoder's limit is lowered to 64 KiB.
pub fn run(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let chunk = match usize::from(mode & 0x3F) {
        0 => stream.len().max(1),
        n => n,
    };
    let limit = if mode & 0x40 != 0 {
        64 * 1024
    } else {
        MAX_FRAME_LEN
    };
    let mut dec = FrameDecoder::new(limit);
    // Stream offset where the next frame starts, and bytes pushed so far.
    let mut start = 0usize;
    let mut fed = 0usize;
    let mut failed = false;
    'outer: for piece in stream.chunks(chunk) {
        dec.push(piece);
        fed += piece.len();
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => {
                    let end = fed - dec.buffered();
                    check_round_trip(&frame, &stream[start..end]);
                    start = end;
                }
                Ok(None) => break,
                Err(e) => {
                    failed = true;
                    // The error is sticky and nothing stays buffered.
                    assert_eq!(dec.buffered(), 0, "a failed decoder keeps bytes");
                    dec.push(piece);
                    match dec.next_frame() {
                        Err(again) => assert_eq!(again, e, "a failed decoder changed its error"),
                        Ok(f) => panic!("a failed decoder recovered and returned {f:?}"),
                    }
                    assert!(!e.to_string().is_empty());
                    break 'outer;
                }
            }
        }
    }
    if !failed {
        assert_eq!(
            dec.buffered(),
            fed - start,
            "the decoder lost or invented bytes"
        );
    }
    // The body decoder on its own, without the length prefix.
    if let Ok(frame) = Frame::decode_body(stream) {
        let bytes = frame.encode().expect("a decoded frame re-encodes");
        assert_eq!(&bytes[4..], stream, "decode_body/encode is not byte-exact");
    }
}

fn check_round_trip(frame: &Frame, original: &[u8]) {
    let bytes = match frame.encode() {
        Ok(b) => b,
        Err(e) => panic!(
            "a decoded {} frame does not re-encode: {e}",
            frame.kind_name()
        ),
    };
    assert_eq!(
        bytes,
        original,
        "{} frame: encode(decode(x)) != x",
        frame.kind_name()
    );
}
