//! The wire format: frames, their codec, and a streaming decoder that never panics.
//!
//! Every frame is `len: u32 BE` (the length of what follows), `kind: u8`, then the
//! body. See docs/sync.md for the table of frames. The frame header and the
//! `Error` frame are frozen across protocol versions, and `Hello`/`Welcome` start
//! with the magic and the version, so that a peer speaking another version is
//! always told so in words.

use automerge::ChangeHash;

use crate::{DocId, DocIdError};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 3;
/// The first four bytes of `Hello` and `Welcome` bodies.
pub const MAGIC: [u8; 4] = *b"MQSY";
/// Largest `len` accepted (64 MiB): a first sync may carry a whole village.
pub const MAX_FRAME_LEN: usize = 64 * 1024 * 1024;
/// Most documents named in one `Hello` or `Welcome`.
pub const MAX_DOCS: usize = 4096;
/// Most heads announced for one document.
pub const MAX_HEADS: usize = 1024;
/// Longest device or relay name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest human-readable message (`Refused` reason, `Error` message), in bytes.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest sync message sent in pieces (`SyncPart` frames), in bytes: 1 GiB.
/// A receiver may set a lower bound (`SessionConfig::max_message_len`).
pub const MAX_SYNC_MESSAGE_LEN: usize = 1024 * 1024 * 1024;

/// Length of the frame header (`len: u32`).
const HEADER_LEN: usize = 4;

const KIND_HELLO: u8 = 1;
const KIND_WELCOME: u8 = 2;
const KIND_SYNC: u8 = 3;
const KIND_REFUSED: u8 = 4;
const KIND_ERROR: u8 = 5;
const KIND_BYE: u8 = 6;
const KIND_SYNC_PART: u8 = 7;

/// The heads-count value that marks [`Heads::Clean`] on the wire (8 digest bytes follow).
const MARK_CLEAN: u16 = 0xFFFF;
/// The heads-count value that marks [`Heads::Unchanged`] on the wire (nothing follows).
const MARK_UNCHANGED: u16 = 0xFFFE;

// Relations between the limits that the codec's casts rely on, checked when
// the crate compiles (a change that breaks one does not build).
const _: () = {
    // `len as u32` in the header.
    assert!(MAX_FRAME_LEN <= u32::MAX as usize);
    // `docs.len() as u16`.
    assert!(MAX_DOCS <= u16::MAX as usize);
    // `heads.len() as u16` is never read back as a marker.
    assert!(MAX_HEADS < MARK_UNCHANGED as usize);
    assert!(MARK_UNCHANGED < MARK_CLEAN);
    // `put_str`'s u16 length prefix holds every string it is given.
    assert!(MAX_NAME_LEN <= u16::MAX as usize);
    assert!(MAX_MESSAGE_LEN <= u16::MAX as usize);
    assert!(crate::MAX_DOC_ID_LEN <= MAX_NAME_LEN);
    // A `SyncPart`'s u32 total.
    assert!(MAX_SYNC_MESSAGE_LEN <= u32::MAX as usize);
};

/// An 8-byte fingerprint of a set of change hashes (XOR of the first 8 bytes of
/// each hash, mixed with their count). Change hashes are SHA-256, so two different
/// sets of heads share a digest with probability about 2⁻⁶⁴.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeadsDigest(pub [u8; 8]);

impl HeadsDigest {
    /// The digest of `heads` (order does not matter; heads are a set).
    pub fn of(heads: &[ChangeHash]) -> Self {
        let mut d = (heads.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for h in heads {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h.0[..8]);
            d ^= u64::from_be_bytes(b);
        }
        HeadsDigest(d.to_be_bytes())
    }
}

/// What one side says about a document's heads in `Hello` or `Welcome`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heads {
    /// The sender's heads (sorted as automerge returns them).
    List(Vec<ChangeHash>),
    /// `Hello` only: the device's heads equal the shared heads of its persisted
    /// sync state with this relay (nothing changed on the device since the last
    /// sync); this is their digest. The device sends no first-flight `Sync` for it.
    Clean(HeadsDigest),
    /// `Welcome` only, answering [`Heads::Clean`]: the relay's heads have that
    /// digest, so both sides hold the same document and nothing is exchanged.
    Unchanged,
}

/// A document and what one side says about its heads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocHeads {
    /// The document.
    pub doc: DocId,
    /// Its heads on the sender, or a marker standing for them.
    pub heads: Heads,
}

/// Why the relay refused a document (`Refused` frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RefuseCode {
    /// The document is not assigned to this device.
    NotAssigned,
    /// A change was authored by an actor that is not this device's.
    ForgedActor,
    /// A change chunk is not a valid automerge change (or is a whole document).
    BadChange,
    /// A change, a message or the changes waiting for their dependencies
    /// exceed a size limit.
    TooLarge,
    /// The changes would break the document's schema.
    Schema,
    /// The relay's copy of the document does not load; it is set aside.
    Quarantined,
    /// Any other reason (a code this build does not know).
    Other(u16),
}

impl RefuseCode {
    fn to_u16(self) -> u16 {
        match self {
            RefuseCode::NotAssigned => 1,
            RefuseCode::ForgedActor => 2,
            RefuseCode::BadChange => 3,
            RefuseCode::TooLarge => 4,
            RefuseCode::Schema => 5,
            RefuseCode::Quarantined => 6,
            RefuseCode::Other(c) => c,
        }
    }
    fn from_u16(c: u16) -> Self {
        match c {
            1 => RefuseCode::NotAssigned,
            2 => RefuseCode::ForgedActor,
            3 => RefuseCode::BadChange,
            4 => RefuseCode::TooLarge,
            5 => RefuseCode::Schema,
            6 => RefuseCode::Quarantined,
            c => RefuseCode::Other(c),
        }
    }

    /// A short name for logs and the audit log.
    pub fn name(self) -> &'static str {
        match self {
            RefuseCode::NotAssigned => "not_assigned",
            RefuseCode::ForgedActor => "forged_actor",
            RefuseCode::BadChange => "bad_change",
            RefuseCode::TooLarge => "too_large",
            RefuseCode::Schema => "schema",
            RefuseCode::Quarantined => "quarantined",
            RefuseCode::Other(_) => "other",
        }
    }
}

/// The code of an `Error` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorCode {
    /// The peers speak different protocol versions.
    Version,
    /// A frame could not be decoded or was too large.
    Malformed,
    /// A frame arrived that the protocol does not allow at this point.
    Protocol,
    /// The device is not allowed to sync at all (unknown, revoked, wrong name).
    Unauthorized,
    /// The sender failed internally (storage).
    Internal,
    /// Relay → a revoked laptop marked for wiping: destroy your keys
    /// (docs/sync.md#remote-wipe).
    Wipe,
    /// Any other code (from a newer peer).
    Other(u16),
}

impl ErrorCode {
    fn to_u16(self) -> u16 {
        match self {
            ErrorCode::Version => 1,
            ErrorCode::Malformed => 2,
            ErrorCode::Protocol => 3,
            ErrorCode::Unauthorized => 4,
            ErrorCode::Internal => 5,
            ErrorCode::Wipe => 6,
            ErrorCode::Other(c) => c,
        }
    }
    fn from_u16(c: u16) -> Self {
        match c {
            1 => ErrorCode::Version,
            2 => ErrorCode::Malformed,
            3 => ErrorCode::Protocol,
            4 => ErrorCode::Unauthorized,
            5 => ErrorCode::Internal,
            6 => ErrorCode::Wipe,
            c => ErrorCode::Other(c),
        }
    }
}

/// One protocol frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Device → relay, first: who it is and what it holds.
    Hello {
        /// Protocol version of the sender.
        version: u16,
        /// The device's name (must match its certificate).
        device: String,
        /// The documents the device holds, with their heads.
        docs: Vec<DocHeads>,
    },
    /// Relay → device, first: the documents this device may sync.
    Welcome {
        /// Protocol version of the sender.
        version: u16,
        /// The relay's name (the peer name under which sync states are kept).
        relay: String,
        /// The documents assigned to the device, with the relay's heads.
        docs: Vec<DocHeads>,
    },
    /// Both ways: one automerge sync message for one document.
    Sync {
        /// The document.
        doc: DocId,
        /// An encoded `automerge::sync::Message`.
        message: Vec<u8>,
    },
    /// Relay → device: a document's sync was refused; nothing in it was applied.
    Refused {
        /// The document.
        doc: DocId,
        /// Why.
        code: RefuseCode,
        /// Words for the operator and the cadre.
        reason: String,
    },
    /// Both ways: the sender ends the session.
    Error {
        /// What kind of error.
        code: ErrorCode,
        /// Words for a person.
        message: String,
    },
    /// Device → relay: the device has everything it needs; the session is over.
    Bye,
    /// Both ways: one piece of a sync message too large for one frame. The
    /// pieces of one message follow each other, in order, with nothing else
    /// for that document in between; the message is complete when the pieces
    /// add up to `total` bytes (protocol 3).
    SyncPart {
        /// The document.
        doc: DocId,
        /// Length of the whole encoded sync message.
        total: u32,
        /// The next bytes of it.
        bytes: Vec<u8>,
    },
}

/// Why bytes are not a valid frame. Every variant ends the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The announced frame length exceeds the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A frame with length 0 (no kind byte).
    #[error("empty frame")]
    Empty,
    /// An unknown frame kind.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The body ended before a field was complete.
    #[error("{0} frame is truncated")]
    Truncated(&'static str),
    /// Bytes left over after the body.
    #[error("{0} frame has {1} trailing bytes")]
    Trailing(&'static str, usize),
    /// `Hello`/`Welcome` without the `MQSY` magic: not a minqing peer.
    #[error("not a minqing sync peer (bad magic)")]
    BadMagic,
    /// The peer speaks another protocol version. Only `Hello`/`Welcome` report it.
    #[error("peer speaks sync protocol {theirs}, this minqing speaks {ours}")]
    Version {
        /// The peer's version.
        theirs: u16,
        /// Ours.
        ours: u16,
    },
    /// A list longer than its limit.
    #[error("{what}: {count} items exceed the limit of {max}")]
    TooMany {
        /// What list.
        what: &'static str,
        /// Announced count.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// A string that is not UTF-8 or too long.
    #[error("{0} is not valid UTF-8 or is too long")]
    BadString(&'static str),
    /// A document id that is not valid.
    #[error("bad document id: {0}")]
    BadDocId(#[from] DocIdError),
}

impl Frame {
    /// A `Hello` of this protocol version: the one way a frame of it is made
    /// outside the decoder, so a new field of the handshake is filled here
    /// (docs/ARCHITECTURE.md, "change the handshake").
    pub fn hello(device: impl Into<String>, docs: Vec<DocHeads>) -> Frame {
        Frame::Hello {
            version: PROTOCOL_VERSION,
            device: device.into(),
            docs,
        }
    }

    /// A short name of the frame kind, for messages and logs.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "Hello",
            Frame::Welcome { .. } => "Welcome",
            Frame::Sync { .. } => "Sync",
            Frame::Refused { .. } => "Refused",
            Frame::Error { .. } => "Error",
            Frame::Bye => "Bye",
            Frame::SyncPart { .. } => "SyncPart",
        }
    }

    /// Encodes the frame, header included. Fails if the frame would exceed
    /// [`MAX_FRAME_LEN`] or a list or string limit (the peer would refuse it).
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = vec![0u8; HEADER_LEN];
        match self {
            Frame::Hello {
                version,
                device,
                docs,
            } => {
                out.push(KIND_HELLO);
                out.extend_from_slice(&MAGIC);
                out.extend_from_slice(&version.to_be_bytes());
                put_str(&mut out, device, MAX_NAME_LEN, "device name")?;
                put_doc_heads(&mut out, docs)?;
            }
            Frame::Welcome {
                version,
                relay,
                docs,
            } => {
                out.push(KIND_WELCOME);
                out.extend_from_slice(&MAGIC);
                out.extend_from_slice(&version.to_be_bytes());
                put_str(&mut out, relay, MAX_NAME_LEN, "relay name")?;
                put_doc_heads(&mut out, docs)?;
            }
            Frame::Sync { doc, message } => {
                out.push(KIND_SYNC);
                put_str(&mut out, doc.as_str(), MAX_NAME_LEN, "document id")?;
                let len = u32::try_from(message.len()).map_err(|_| FrameError::TooLarge {
                    len: message.len(),
                    max: MAX_FRAME_LEN,
                })?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(message);
            }
            Frame::Refused { doc, code, reason } => {
                out.push(KIND_REFUSED);
                put_str(&mut out, doc.as_str(), MAX_NAME_LEN, "document id")?;
                out.extend_from_slice(&code.to_u16().to_be_bytes());
                put_str(&mut out, reason, MAX_MESSAGE_LEN, "reason")?;
            }
            Frame::Error { code, message } => {
                out.push(KIND_ERROR);
                out.extend_from_slice(&code.to_u16().to_be_bytes());
                put_str(&mut out, message, MAX_MESSAGE_LEN, "error message")?;
            }
            Frame::Bye => out.push(KIND_BYE),
            Frame::SyncPart { doc, total, bytes } => {
                out.push(KIND_SYNC_PART);
                put_str(&mut out, doc.as_str(), MAX_NAME_LEN, "document id")?;
                out.extend_from_slice(&total.to_be_bytes());
                let len = u32::try_from(bytes.len()).map_err(|_| FrameError::TooLarge {
                    len: bytes.len(),
                    max: MAX_FRAME_LEN,
                })?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(bytes);
            }
        }
        let len = out.len() - HEADER_LEN;
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge {
                len,
                max: MAX_FRAME_LEN,
            });
        }
        // len <= MAX_FRAME_LEN (checked just above) <= u32::MAX (asserted at compile time).
        out[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(out)
    }

    /// Decodes one frame body (`kind` byte and what follows, without the length).
    pub fn decode_body(body: &[u8]) -> Result<Frame, FrameError> {
        let (&kind, rest) = body.split_first().ok_or(FrameError::Empty)?;
        let mut r = Reader {
            buf: rest,
            what: "",
        };
        let frame = match kind {
            KIND_HELLO | KIND_WELCOME => {
                r.what = if kind == KIND_HELLO {
                    "Hello"
                } else {
                    "Welcome"
                };
                if r.take(4)? != MAGIC {
                    return Err(FrameError::BadMagic);
                }
                let version = r.u16()?;
                if version != PROTOCOL_VERSION {
                    return Err(FrameError::Version {
                        theirs: version,
                        ours: PROTOCOL_VERSION,
                    });
                }
                let name = r.string(MAX_NAME_LEN, "peer name")?;
                let docs = r.doc_heads()?;
                if kind == KIND_HELLO {
                    Frame::Hello {
                        version,
                        device: name,
                        docs,
                    }
                } else {
                    Frame::Welcome {
                        version,
                        relay: name,
                        docs,
                    }
                }
            }
            KIND_SYNC => {
                r.what = "Sync";
                let doc = r.doc_id()?;
                let len = r.u32()? as usize;
                let message = r.take(len)?.to_vec();
                Frame::Sync { doc, message }
            }
            KIND_REFUSED => {
                r.what = "Refused";
                let doc = r.doc_id()?;
                let code = RefuseCode::from_u16(r.u16()?);
                let reason = r.string(MAX_MESSAGE_LEN, "reason")?;
                Frame::Refused { doc, code, reason }
            }
            KIND_ERROR => {
                r.what = "Error";
                let code = ErrorCode::from_u16(r.u16()?);
                let message = r.string(MAX_MESSAGE_LEN, "error message")?;
                Frame::Error { code, message }
            }
            KIND_BYE => {
                r.what = "Bye";
                Frame::Bye
            }
            KIND_SYNC_PART => {
                r.what = "SyncPart";
                let doc = r.doc_id()?;
                let total = r.u32()?;
                let len = r.u32()? as usize;
                let bytes = r.take(len)?.to_vec();
                Frame::SyncPart { doc, total, bytes }
            }
            other => return Err(FrameError::UnknownKind(other)),
        };
        if !r.buf.is_empty() {
            return Err(FrameError::Trailing(r.what, r.buf.len()));
        }
        Ok(frame)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str, max: usize, what: &'static str) -> Result<(), FrameError> {
    if s.len() > max {
        return Err(FrameError::BadString(what));
    }
    // s.len() <= max <= u16::MAX for every limit used in this file (asserted
    // at compile time); the conversion still refuses a larger one.
    let len = u16::try_from(s.len()).map_err(|_| FrameError::BadString(what))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_doc_heads(out: &mut Vec<u8>, docs: &[DocHeads]) -> Result<(), FrameError> {
    if docs.len() > MAX_DOCS {
        return Err(FrameError::TooMany {
            what: "documents",
            count: docs.len(),
            max: MAX_DOCS,
        });
    }
    // docs.len() <= MAX_DOCS (checked just above) <= u16::MAX (asserted at compile time).
    out.extend_from_slice(&(docs.len() as u16).to_be_bytes());
    for d in docs {
        put_str(out, d.doc.as_str(), MAX_NAME_LEN, "document id")?;
        match &d.heads {
            Heads::List(heads) => {
                if heads.len() > MAX_HEADS {
                    return Err(FrameError::TooMany {
                        what: "heads",
                        count: heads.len(),
                        max: MAX_HEADS,
                    });
                }
                // heads.len() <= MAX_HEADS (checked just above) < MARK_UNCHANGED
                // (asserted at compile time).
                out.extend_from_slice(&(heads.len() as u16).to_be_bytes());
                for h in heads {
                    out.extend_from_slice(&h.0);
                }
            }
            Heads::Clean(digest) => {
                out.extend_from_slice(&MARK_CLEAN.to_be_bytes());
                out.extend_from_slice(&digest.0);
            }
            Heads::Unchanged => out.extend_from_slice(&MARK_UNCHANGED.to_be_bytes()),
        }
    }
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.buf.len() < n {
            return Err(FrameError::Truncated(self.what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self, max: usize, what: &'static str) -> Result<String, FrameError> {
        let len = self.u16()? as usize;
        if len > max {
            return Err(FrameError::BadString(what));
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| FrameError::BadString(what))
    }
    fn doc_id(&mut self) -> Result<DocId, FrameError> {
        let s = self.string(MAX_NAME_LEN, "document id")?;
        Ok(DocId::new(s)?)
    }
    fn doc_heads(&mut self) -> Result<Vec<DocHeads>, FrameError> {
        let count = self.u16()? as usize;
        if count > MAX_DOCS {
            return Err(FrameError::TooMany {
                what: "documents",
                count,
                max: MAX_DOCS,
            });
        }
        let mut docs = Vec::with_capacity(count.min(self.buf.len() / 4));
        for _ in 0..count {
            let doc = self.doc_id()?;
            let n = self.u16()?;
            if n == MARK_CLEAN {
                let mut digest = [0u8; 8];
                digest.copy_from_slice(self.take(8)?);
                docs.push(DocHeads {
                    doc,
                    heads: Heads::Clean(HeadsDigest(digest)),
                });
                continue;
            }
            if n == MARK_UNCHANGED {
                docs.push(DocHeads {
                    doc,
                    heads: Heads::Unchanged,
                });
                continue;
            }
            let n = n as usize;
            if n > MAX_HEADS {
                return Err(FrameError::TooMany {
                    what: "heads",
                    count: n,
                    max: MAX_HEADS,
                });
            }
            let mut heads = Vec::with_capacity(n.min(self.buf.len() / 32));
            for _ in 0..n {
                let b = self.take(32)?;
                let mut h = [0u8; 32];
                h.copy_from_slice(b);
                heads.push(ChangeHash(h));
            }
            docs.push(DocHeads {
                doc,
                heads: Heads::List(heads),
            });
        }
        Ok(docs)
    }
}

/// A streaming frame decoder: push bytes as they arrive, in slices of any size,
/// and take whole frames out. A length above the limit is rejected as soon as the
/// four length bytes are in, before any of the body is buffered. After an error
/// the decoder stays failed (the session is over).
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed by returned frames.
    start: usize,
    max_frame_len: usize,
    failed: Option<FrameError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder that accepts frames up to `max_frame_len` bytes
    /// (capped at [`MAX_FRAME_LEN`]).
    pub fn new(max_frame_len: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max_frame_len: max_frame_len.min(MAX_FRAME_LEN),
            failed: None,
        }
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Appends received bytes. They are only buffered up to the current frame's
    /// announced (and checked) length plus what follows; checking happens in
    /// [`FrameDecoder::next_frame`].
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        // Grow once to the announced frame (checked against the limit), not
        // by doubling: a partial frame then leaves no freed half-size copies
        // behind in the allocator, and memory follows the bytes received.
        let avail = &self.buf[self.start..];
        if let Some(h) = avail.get(..HEADER_LEN) {
            let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let need = self.start + HEADER_LEN + len;
            if len <= self.max_frame_len && need > self.buf.capacity() {
                self.buf.reserve_exact(need - self.buf.len());
            }
        }
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or the
    /// error that ends the session.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let avail = &self.buf[self.start..];
        if avail.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if len > self.max_frame_len {
            return Err(self.fail(FrameError::TooLarge {
                len,
                max: self.max_frame_len,
            }));
        }
        if avail.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let body = &avail[HEADER_LEN..HEADER_LEN + len];
        match Frame::decode_body(body) {
            Ok(frame) => {
                self.start += HEADER_LEN + len;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                } else if self.start > 1024 * 1024 && self.start * 2 > self.buf.len() {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Ok(Some(frame))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&mut self, e: FrameError) -> FrameError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        self.start = 0;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> DocId {
        DocId::new(s).expect("test ids are valid")
    }

    fn samples() -> Vec<Frame> {
        vec![
            Frame::hello(
                "laptop-张三",
                vec![
                    DocHeads {
                        doc: doc("V1"),
                        heads: Heads::List(vec![ChangeHash([7; 32]), ChangeHash([9; 32])]),
                    },
                    DocHeads {
                        doc: doc("V2"),
                        heads: Heads::List(vec![]),
                    },
                    DocHeads {
                        doc: doc("V4"),
                        heads: Heads::Clean(HeadsDigest::of(&[ChangeHash([7; 32])])),
                    },
                ],
            ),
            Frame::Welcome {
                version: PROTOCOL_VERSION,
                relay: "county".into(),
                docs: vec![
                    DocHeads {
                        doc: doc("V3"),
                        heads: Heads::List(vec![ChangeHash([1; 32])]),
                    },
                    DocHeads {
                        doc: doc("V4"),
                        heads: Heads::Unchanged,
                    },
                ],
            },
            Frame::Sync {
                doc: doc("V1"),
                message: vec![0x43, 1, 2, 3],
            },
            Frame::Refused {
                doc: doc("V9"),
                code: RefuseCode::NotAssigned,
                reason: "not assigned".into(),
            },
            Frame::Error {
                code: ErrorCode::Version,
                message: "版本".into(),
            },
            Frame::Bye,
            Frame::SyncPart {
                doc: doc("V1"),
                total: 10,
                bytes: vec![0x43, 1, 2],
            },
        ]
    }

    #[test]
    fn every_frame_round_trips_through_the_decoder_byte_by_byte() {
        let frames = samples();
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend(f.encode().expect("samples are within limits"));
        }
        let mut dec = FrameDecoder::default();
        let mut got = Vec::new();
        for b in &wire {
            dec.push(std::slice::from_ref(b));
            while let Some(f) = dec.next_frame().expect("valid stream") {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn the_wipe_order_is_error_code_6() {
        let bytes = crate::wipe_frame("destroy your keys");
        let mut dec = FrameDecoder::default();
        dec.push(&bytes);
        assert_eq!(
            dec.next_frame().expect("valid"),
            Some(Frame::Error {
                code: ErrorCode::Wipe,
                message: "destroy your keys".into()
            })
        );
        assert_eq!(ErrorCode::from_u16(6), ErrorCode::Wipe);
        assert_eq!(ErrorCode::Wipe.to_u16(), 6);
    }

    #[test]
    fn heads_digest_tells_sets_apart_and_ignores_order() {
        let (a, b, c) = (
            ChangeHash([1; 32]),
            ChangeHash([2; 32]),
            ChangeHash([3; 32]),
        );
        assert_eq!(HeadsDigest::of(&[a, b]), HeadsDigest::of(&[b, a]));
        assert_ne!(HeadsDigest::of(&[a, b]), HeadsDigest::of(&[a]));
        assert_ne!(HeadsDigest::of(&[a]), HeadsDigest::of(&[c]));
        assert_ne!(HeadsDigest::of(&[]), HeadsDigest::of(&[a]));
    }

    #[test]
    fn oversized_length_is_refused_before_the_body_arrives() {
        let mut dec = FrameDecoder::default();
        dec.push(&((MAX_FRAME_LEN as u32) + 1).to_be_bytes());
        assert!(matches!(dec.next_frame(), Err(FrameError::TooLarge { .. })));
        // Stays failed.
        dec.push(&[0; 10]);
        assert!(dec.next_frame().is_err());
    }

    #[test]
    fn other_version_is_named() {
        let mut bytes = Frame::hello("d", vec![]).encode().expect("small frame");
        // version sits after len(4), kind(1), magic(4)
        bytes[9..11].copy_from_slice(&7u16.to_be_bytes());
        let mut dec = FrameDecoder::default();
        dec.push(&bytes);
        let err = dec.next_frame().expect_err("version 7 is not ours");
        assert_eq!(
            err,
            FrameError::Version {
                theirs: 7,
                ours: PROTOCOL_VERSION
            }
        );
        assert!(err.to_string().contains("protocol 7"));
    }

    #[test]
    fn too_many_docs_is_an_error_not_an_allocation() {
        let mut body = vec![KIND_HELLO];
        body.extend_from_slice(&MAGIC);
        body.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
        body.extend_from_slice(&u16::MAX.to_be_bytes());
        assert!(matches!(
            Frame::decode_body(&body),
            Err(FrameError::TooMany { .. })
        ));
    }
}
