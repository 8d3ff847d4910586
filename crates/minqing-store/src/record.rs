//! The chunk record format: `version: u8`, `crc32: u32 BE` of the payload, payload.
//! Version 1 holds the value inline; version 2 holds a pointer to a large-value
//! file (`large::Pointer`), whose contents are the version-1 record.

/// The only record version written so far.
pub(crate) const RECORD_VERSION: u8 = 1;

/// A record whose payload is a pointer to a large-value file.
pub(crate) const POINTER_VERSION: u8 = 2;

/// Bytes before the payload: version and checksum.
pub(crate) const HEADER_LEN: usize = 5;

/// Wraps `payload` in a record.
pub(crate) fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A record whose payload `fill` appends to the buffer it is given (about
/// `payload_len` bytes): one allocation, no copy of the payload.
pub(crate) fn encode_with(payload_len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload_len);
    out.push(RECORD_VERSION);
    out.extend_from_slice(&[0; 4]);
    fill(&mut out);
    let crc = crc32fast::hash(&out[HEADER_LEN..]).to_be_bytes();
    out[1..HEADER_LEN].copy_from_slice(&crc);
    out
}

/// Wraps a pointer body in a version-2 record.
pub(crate) fn encode_pointer(body: &[u8]) -> Vec<u8> {
    let mut out = encode(body);
    out[0] = POINTER_VERSION;
    out
}

/// A checked record: its value inline, or a pointer body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored<'a> {
    /// Version 1: the payload.
    Inline(&'a [u8]),
    /// Version 2: the pointer body.
    Pointer(&'a [u8]),
}

/// Checks a record of either version.
pub(crate) fn decode_stored(record: &[u8]) -> Result<Stored<'_>, RecordError> {
    match record.first() {
        Some(&POINTER_VERSION) => {
            if record.len() < HEADER_LEN {
                return Err(RecordError::Truncated(record.len()));
            }
            let (header, body) = record.split_at(HEADER_LEN);
            let crc = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            if crc32fast::hash(body) != crc {
                return Err(RecordError::Checksum);
            }
            Ok(Stored::Pointer(body))
        }
        _ => decode(record).map(Stored::Inline),
    }
}

/// Why a stored record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// Shorter than the header.
    Truncated(usize),
    /// A version this build does not know.
    Version(u8),
    /// The payload does not match its checksum.
    Checksum,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Truncated(n) => write!(f, "is truncated ({n} bytes)"),
            RecordError::Version(v) => write!(f, "has unknown record version {v}"),
            RecordError::Checksum => f.write_str("fails its checksum"),
        }
    }
}

/// Checks a record and returns its payload.
pub(crate) fn decode(record: &[u8]) -> Result<&[u8], RecordError> {
    if record.len() < HEADER_LEN {
        return Err(RecordError::Truncated(record.len()));
    }
    let (header, payload) = record.split_at(HEADER_LEN);
    if header[0] != RECORD_VERSION {
        return Err(RecordError::Version(header[0]));
    }
    let crc = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if crc32fast::hash(payload) != crc {
        return Err(RecordError::Checksum);
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let rec = encode("民情日记".as_bytes());
        assert_eq!(decode(&rec), Ok("民情日记".as_bytes()));
        let mut bad = rec.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert_eq!(decode(&bad), Err(RecordError::Checksum));
        let mut v2 = rec.clone();
        v2[0] = 2;
        assert_eq!(decode(&v2), Err(RecordError::Version(2)));
        assert_eq!(decode(&rec[..3]), Err(RecordError::Truncated(3)));
        assert_eq!(decode(&encode(b"")), Ok(&b""[..]));
    }
}
