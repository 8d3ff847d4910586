//! Repairs the checksums of automerge chunks, so that mutated changes get past
//! automerge's checksum test and reach the code that decodes their columns.
//!
//! A chunk is `magic (4) | checksum (4) | type (1) | uLEB128 length | data`; the
//! checksum is the first 4 bytes of SHA-256 over `type | uLEB128(len(data)) | data`.
//! A fuzzer mutating a change almost never keeps that sum right; this does it
//! for it (automerge's own fuzzing meets the same wall).

use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Chunk types whose checksum is over their own bytes (document, change, bundle).
/// A compressed change (2) is summed over its inflated form: left as it is.
const SUMMED_TYPES: [u8; 3] = [0, 1, 3];

/// Rewrites, in place, the checksum of every well-delimited chunk that follows
/// another back to back from the start of `bytes`. Stops at the first bytes
/// that are not such a chunk.
pub fn fix_chunk_checksums(bytes: &mut [u8]) {
    let mut at = 0usize;
    while let Some(rest) = bytes.get(at..) {
        let Some(header) = rest.get(..9) else { return };
        if header[..4] != MAGIC {
            return;
        }
        let typ = header[8];
        let Some((len, leb_len)) = read_uleb(&rest[9..]) else {
            return;
        };
        let data_start = 9 + leb_len;
        let Some(data_end) = usize::try_from(len)
            .ok()
            .and_then(|l| data_start.checked_add(l))
        else {
            return;
        };
        let Some(data) = rest.get(data_start..data_end) else {
            return;
        };
        if SUMMED_TYPES.contains(&typ) {
            let mut h = Sha256::new();
            h.update([typ]);
            let mut leb = Vec::with_capacity(10);
            write_uleb(&mut leb, data.len() as u64);
            h.update(&leb);
            h.update(data);
            let sum = h.finalize();
            bytes[at + 4..at + 8].copy_from_slice(&sum[..4]);
        }
        at += data_end;
    }
}

fn read_uleb(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7F).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn write_uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    #[test]
    fn a_mutated_change_gets_its_checksum_back() {
        let mut doc = automerge::AutoCommit::new();
        doc.put(automerge::ROOT, "k", "v").expect("put");
        let change = doc.save();
        let mut bad = change.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        // automerge refuses the flipped bit by checksum...
        let refused = automerge::Automerge::load(&bad).expect_err("checksum is wrong");
        assert!(refused.to_string().contains("checksum"), "{refused}");
        // ...and after the repair it gets further (the flip is now someone else's problem).
        fix_chunk_checksums(&mut bad);
        if let Err(e) = automerge::Automerge::load(&bad) {
            assert!(!e.to_string().contains("checksum"), "{e}");
        }
        // A valid chunk is left as it was.
        let mut same = change.clone();
        fix_chunk_checksums(&mut same);
        assert_eq!(same, change);
    }
}
