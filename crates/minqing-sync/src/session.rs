//! What both session state machines share: configuration, errors, outcomes, and
//! the small automerge helpers that put the data into the first flight.

use std::collections::VecDeque;

use automerge::sync::{BloomFilter, Capability, Have, Message, State};
use automerge::{Automerge, ChangeHash, ReadDoc};

use crate::frame::{ErrorCode, Frame, FrameError, MAX_DOCS, MAX_FRAME_LEN, MAX_SYNC_MESSAGE_LEN};
use crate::{DocId, StorageError};

/// Limits of one session. The defaults suit minqing; tests may lower them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Largest frame accepted or sent (capped at [`MAX_FRAME_LEN`]).
    pub max_frame_len: usize,
    /// Most documents in one session (capped at [`MAX_DOCS`]).
    pub max_docs: usize,
    /// Most sync messages received for one document in one session; automerge's
    /// protocol converges in a handful, so more means a loop (automerge #772).
    pub max_messages_per_doc: usize,
    /// Largest sync message received in pieces (`SyncPart`), in bytes (capped at
    /// [`MAX_SYNC_MESSAGE_LEN`]). A message larger than one frame is sent in
    /// pieces of at most `max_frame_len`.
    pub max_message_len: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_frame_len: MAX_FRAME_LEN,
            max_docs: MAX_DOCS,
            max_messages_per_doc: 64,
            max_message_len: 256 * 1024 * 1024,
        }
    }
}

/// Why a session ended early. After any of these the session is over: the driver
/// sends what `poll_transmit` still yields (an `Error` frame) and closes.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The peer's bytes are not a valid frame (malformed, oversized, bad magic).
    #[error("the peer sent a bad frame: {0}")]
    Frame(FrameError),
    /// The peer speaks another protocol version.
    #[error(
        "the peer speaks sync protocol {theirs}, this minqing speaks {ours}: update the older side"
    )]
    Version {
        /// Peer's version.
        theirs: u16,
        /// Ours.
        ours: u16,
    },
    /// A frame the protocol does not allow here (e.g. `Sync` before `Hello`).
    #[error("protocol violation: {0}")]
    Protocol(Violation),
    /// A sync message for `doc` that automerge cannot decode or apply.
    #[error("village {doc}: bad sync message: {detail}")]
    BadMessage {
        /// The document.
        doc: DocId,
        /// What automerge said.
        detail: String,
    },
    /// The device is not allowed to sync with this relay at all.
    #[error("not authorized: {0}")]
    Unauthorized(String),
    /// A limit of [`SessionConfig`] (or of the protocol) was exceeded.
    #[error("limit exceeded: {0}")]
    Limit(LimitExceeded),
    /// The peer ended the session with an `Error` frame.
    #[error("the peer ended the session ({code:?}): {message}")]
    Remote {
        /// The peer's error code.
        code: ErrorCode,
        /// The peer's words.
        message: String,
    },
    /// The relay's document storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Input after the session already failed.
    #[error("the session has already ended with an error")]
    Closed,
}

/// Which side of a session sent something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The laptop.
    Device,
    /// The relay.
    Relay,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Device => "device",
            Side::Relay => "relay",
        })
    }
}

/// A rule of the protocol a peer broke ([`SessionError::Protocol`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A frame the protocol does not allow in this phase.
    #[error("the {from} sent {frame} while the {} was {phase}", .from.other())]
    UnexpectedFrame {
        /// Who sent it.
        from: Side,
        /// The frame's kind (`Frame::kind_name`).
        frame: &'static str,
        /// What the receiving side was doing.
        phase: &'static str,
    },
    /// A `SyncPart` for another message while one was incomplete.
    #[error(
        "a piece of a sync message for village {doc} arrived while one for village {incomplete} was incomplete"
    )]
    InterleavedPart {
        /// The piece's village.
        doc: DocId,
        /// The village whose message was incomplete.
        incomplete: DocId,
    },
    /// The pieces of a message add up to more than they announced.
    #[error("the pieces of a sync message for village {doc} exceed its announced {total} bytes")]
    PartsExceedTotal {
        /// The village.
        doc: DocId,
        /// The announced length.
        total: usize,
    },
    /// A whole `Sync` while a message in pieces was incomplete.
    #[error(
        "a Sync frame for village {doc} arrived while a sync message for village {incomplete} was incomplete"
    )]
    SyncDuringParts {
        /// The frame's village.
        doc: DocId,
        /// The village whose message was incomplete.
        incomplete: DocId,
    },
    /// A `Hello` marked a village `Unchanged`.
    #[error("Hello marks village {0} unchanged, which only the relay may say")]
    UnchangedInHello(DocId),
    /// A `Welcome` marked a village clean.
    #[error("the relay marked village {0} clean in Welcome")]
    CleanInWelcome(DocId),
    /// The relay called unchanged a village the device did not declare clean.
    #[error("the relay called village {0} unchanged, which this device did not declare clean")]
    UnchangedNotClean(DocId),
    /// The relay sent a village it did not assign.
    #[error("the relay sent village {0}, which it did not assign to this device")]
    NotAssigned(DocId),
    /// The relay refused a village the device never offered.
    #[error("the relay refused village {0}, which this device never offered")]
    RefusedUnoffered(DocId),
    /// A message for a village without session state (a bug of this side).
    #[error("village {0} has no session state")]
    NoSessionState(DocId),
    /// A message was discarded without a recorded reason (a bug of this side).
    #[error("village {0}: a message was discarded without a reason")]
    DiscardedWithoutReason(DocId),
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Device => Side::Relay,
            Side::Relay => Side::Device,
        }
    }
}

/// A limit a session reached ([`SessionError::Limit`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// A frame to send is larger than the frame limit.
    #[error("a {frame} frame of {len} bytes exceeds the limit of {max}")]
    Frame {
        /// The frame's kind.
        frame: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame to send cannot be encoded (a list or string beyond the codec's bounds).
    #[error("{0}")]
    Encode(FrameError),
    /// A sync message larger than the limit for messages sent in pieces.
    #[error("a sync message of {len} bytes for village {doc} exceeds the limit of {max} bytes")]
    Message {
        /// The village.
        doc: DocId,
        /// The message's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame limit leaves no room for a sync message.
    #[error("a frame limit of {max} bytes leaves no room for a sync message")]
    NoRoom {
        /// The frame limit.
        max: usize,
    },
    /// A `Hello` offered more villages than one session takes.
    #[error("more than {max} villages in one session")]
    HelloVillages {
        /// The limit.
        max: usize,
    },
    /// The device holds more villages than one session takes.
    #[error("{held} villages held; at most {max} sync in one session")]
    HeldVillages {
        /// Villages held.
        held: usize,
        /// The limit.
        max: usize,
    },
    /// The relay assigned more villages than one session takes.
    #[error("the relay assigned {assigned} villages; at most {max} sync in one session")]
    AssignedVillages {
        /// Villages assigned.
        assigned: usize,
        /// The limit.
        max: usize,
    },
    /// The device sent for more unassigned villages than the relay answers.
    #[error("more than {max} refused frames in one session")]
    Refusals {
        /// The limit.
        max: usize,
    },
    /// A village did not converge (a loop, automerge #772).
    #[error("village {doc} did not converge within {max} messages")]
    Convergence {
        /// The village.
        doc: DocId,
        /// The limit on messages.
        max: usize,
    },
}

// Typed, but not `source()`: the message already carries the detail (it is
// what an `Error` frame tells the peer), and `{:#}` would print it twice.
impl From<Violation> for SessionError {
    fn from(v: Violation) -> Self {
        SessionError::Protocol(v)
    }
}

impl From<LimitExceeded> for SessionError {
    fn from(l: LimitExceeded) -> Self {
        SessionError::Limit(l)
    }
}

impl From<FrameError> for SessionError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Version { theirs, ours } => SessionError::Version { theirs, ours },
            e => SessionError::Frame(e),
        }
    }
}

impl SessionError {
    /// The `Error` frame that tells the peer about this error, if one should be sent.
    pub(crate) fn to_frame(&self, we_are: &str) -> Option<Frame> {
        let (code, message) = match self {
            SessionError::Remote { .. } | SessionError::Closed => return None,
            SessionError::Version { theirs, ours } => (
                ErrorCode::Version,
                format!(
                    "{we_are} speaks sync protocol {ours}, you speak {theirs}: update the older side"
                ),
            ),
            SessionError::Frame(_) => (ErrorCode::Malformed, self.to_string()),
            SessionError::BadMessage { .. } => (ErrorCode::Malformed, self.to_string()),
            SessionError::Protocol(_) | SessionError::Limit(_) => {
                (ErrorCode::Protocol, self.to_string())
            }
            SessionError::Unauthorized(_) => (ErrorCode::Unauthorized, self.to_string()),
            SessionError::Storage(_) => (ErrorCode::Internal, format!("{we_are} storage failed")),
        };
        Some(Frame::Error { code, message })
    }
}

/// How one document ended on the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DocOutcome {
    /// Device and relay hold the same heads.
    InSync {
        /// The common heads.
        heads: Vec<ChangeHash>,
    },
    /// Newly assigned: the whole document arrived and is in sync.
    Added {
        /// The common heads.
        heads: Vec<ChangeHash>,
    },
    /// No longer assigned: the local copy is to be deleted.
    Removed,
    /// The relay refused it; nothing of it was exchanged.
    Refused {
        /// The relay's words.
        reason: String,
    },
}

/// The result of a completed device session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOutcome {
    /// The relay's name from `Welcome`.
    pub relay: String,
    /// Every document of the session and how it ended.
    pub docs: std::collections::BTreeMap<DocId, DocOutcome>,
}

/// Output queue shared by both sides: encoded frames.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) frames: VecDeque<Vec<u8>>,
}

impl Outbox {
    pub(crate) fn push(&mut self, frame: &Frame, max: usize) -> Result<(), SessionError> {
        let bytes = frame.encode().map_err(|e| match e {
            FrameError::TooLarge { len, max } => LimitExceeded::Frame {
                frame: frame.kind_name(),
                len,
                max,
            },
            e => LimitExceeded::Encode(e),
        })?;
        if bytes.len() - 4 > max {
            return Err(LimitExceeded::Frame {
                frame: frame.kind_name(),
                len: bytes.len() - 4,
                max,
            }
            .into());
        }
        self.frames.push_back(bytes);
        Ok(())
    }

    /// Queues one encoded sync message for `doc`: one `Sync` frame if it fits
    /// in `max` bytes, else consecutive `SyncPart` frames (protocol 3).
    pub(crate) fn push_sync(
        &mut self,
        doc: &DocId,
        message: Vec<u8>,
        max: usize,
    ) -> Result<(), SessionError> {
        // Body of a Sync frame: kind, doc id (u16 + bytes), u32 length, message.
        let sync_overhead = 1 + 2 + doc.as_str().len() + 4;
        if message.len() + sync_overhead <= max {
            return self.push(
                &Frame::Sync {
                    doc: doc.clone(),
                    message,
                },
                max,
            );
        }
        let total = u32::try_from(message.len())
            .ok()
            .filter(|t| (*t as usize) <= MAX_SYNC_MESSAGE_LEN)
            .ok_or_else(|| LimitExceeded::Message {
                doc: doc.clone(),
                len: message.len(),
                max: MAX_SYNC_MESSAGE_LEN,
            })?;
        // Body of a SyncPart frame: kind, doc id, u32 total, u32 length, bytes.
        let part = max.saturating_sub(sync_overhead + 4);
        if part == 0 {
            return Err(LimitExceeded::NoRoom { max }.into());
        }
        for piece in message.chunks(part) {
            self.push(
                &Frame::SyncPart {
                    doc: doc.clone(),
                    total,
                    bytes: piece.to_vec(),
                },
                max,
            )?;
        }
        Ok(())
    }
}

/// Puts the pieces of a sync message sent in `SyncPart` frames back together.
/// One message at a time: its pieces must follow each other.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    current: Option<(DocId, usize, Vec<u8>)>,
}

impl Assembler {
    /// Takes one `SyncPart`; returns the whole message once its last piece is in.
    pub(crate) fn part(
        &mut self,
        doc: DocId,
        total: u32,
        bytes: Vec<u8>,
        max: usize,
    ) -> Result<Option<(DocId, Vec<u8>)>, SessionError> {
        let total = total as usize;
        let max = max.min(MAX_SYNC_MESSAGE_LEN);
        if total > max {
            return Err(LimitExceeded::Message {
                doc,
                len: total,
                max,
            }
            .into());
        }
        let (cur_doc, cur_total, buf) = self
            .current
            .get_or_insert_with(|| (doc.clone(), total, Vec::new()));
        if *cur_doc != doc || *cur_total != total {
            return Err(Violation::InterleavedPart {
                doc,
                incomplete: cur_doc.clone(),
            }
            .into());
        }
        if buf.len() + bytes.len() > total {
            return Err(Violation::PartsExceedTotal { doc, total }.into());
        }
        if buf.is_empty() {
            // Grow with what arrives, not with what is announced.
            buf.reserve(bytes.len());
        }
        buf.extend_from_slice(&bytes);
        if buf.len() < total {
            return Ok(None);
        }
        Ok(self.current.take().map(|(d, _, b)| (d, b)))
    }

    /// A whole `Sync` frame arrived: an incomplete message must not be pending.
    pub(crate) fn check_idle(&self, doc: &DocId) -> Result<(), SessionError> {
        match &self.current {
            Some((cur, _, _)) => Err(Violation::SyncDuringParts {
                doc: doc.clone(),
                incomplete: cur.clone(),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Bytes held for an incomplete message.
    pub(crate) fn buffered(&self) -> usize {
        self.current.as_ref().map_or(0, |(_, _, b)| b.len())
    }
}

/// Decodes a peer's sync message and rejects shapes this protocol never produces
/// and automerge would not survive (several `have` entries with unknown hashes).
pub(crate) fn decode_message(doc: &DocId, bytes: &[u8]) -> Result<Message, SessionError> {
    let msg = Message::decode(bytes).map_err(|e| SessionError::BadMessage {
        doc: doc.clone(),
        detail: e.to_string(),
    })?;
    if msg.have.len() > 1 {
        return Err(SessionError::BadMessage {
            doc: doc.clone(),
            detail: format!("{} `have` entries; at most 1 is allowed", msg.have.len()),
        });
    }
    if let Some(h) = msg.have.iter().find(|h| !bloom_is_usable(&h.bloom)) {
        return Err(SessionError::BadMessage {
            doc: doc.clone(),
            detail: format!(
                "a Bloom filter with no bits for its entries or more than {MAX_BLOOM_PROBES} probes ({} bytes)",
                h.bloom.to_bytes().len()
            ),
        });
    }
    let sorted = |v: &[ChangeHash]| v.windows(2).all(|w| w[0] < w[1]);
    if !sorted(&msg.heads) || !sorted(&msg.need) || !msg.have.iter().all(|h| sorted(&h.last_sync)) {
        return Err(SessionError::BadMessage {
            doc: doc.clone(),
            detail: "change hashes are not sorted".into(),
        });
    }
    Ok(msg)
}

/// Applies a peer's sync message to `doc`, turning a panic inside automerge
/// into an error. automerge 0.12 (with hexane 1.0.0-alpha.5) unwraps data it
/// has not validated: a sync message carrying a document chunk with malformed
/// columns panicked in `RleValue::unpack`, and a change with inconsistent ops
/// in `import_ops`, halfway through applying it (found by the `sync_message`
/// fuzz target, crates/minqing-fuzz/crashers). The device uses this and then
/// drops `doc` with its failed session; the relay catches around
/// [`crate::DocHost::with_doc`] instead, so that the host drops its copy.
pub(crate) fn receive_guarded(
    doc: &mut Automerge,
    state: &mut State,
    msg: Message,
) -> Result<(), String> {
    use automerge::sync::SyncDoc;
    let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        doc.receive_sync_message(state, msg)
    }));
    match applied {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(panic) => Err(panic_detail(&*panic)),
    }
}

/// Words for a panic caught inside automerge.
pub(crate) fn panic_detail(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no message");
    format!("automerge could not apply its changes ({what})")
}

/// Most probes a peer's Bloom filter may ask for (automerge makes 7). automerge
/// allocates a slot per probe and loops over them for every change it checks.
pub(crate) const MAX_BLOOM_PROBES: u64 = 64;

/// Whether automerge can use a peer's Bloom filter safely. automerge 0.12
/// takes each probe modulo the filter's bit count (a filter that has entries
/// but no bits panics with a division by zero) and reserves one `u32` per
/// probe (a filter asking for 2³² probes aborts the process). Found by the
/// `sync_message` / `relay_session` fuzz targets (crates/minqing-fuzz).
fn bloom_is_usable(bloom: &BloomFilter) -> bool {
    // The fields are private; read them back from the wire form:
    // nothing (no entries), or uLEB entries, bits per entry, probes, then the bits.
    let bytes = bloom.to_bytes();
    if bytes.is_empty() {
        return true;
    }
    let mut rest = &bytes[..];
    let mut uleb = || {
        let mut v = 0u64;
        for (i, &b) in rest.iter().enumerate().take(5) {
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                rest = &rest[i + 1..];
                return Some(v);
            }
        }
        None
    };
    let (Some(_entries), Some(_bits_per_entry), Some(probes)) = (uleb(), uleb(), uleb()) else {
        return false;
    };
    !rest.is_empty() && probes <= MAX_BLOOM_PROBES
}

/// Both sides are this implementation: v2 messages and sync reset are supported.
pub(crate) fn our_capabilities() -> Option<Vec<Capability>> {
    Some(vec![Capability::MessageV2, Capability::SyncReset])
}

/// Prepares a persisted state so that the first message sent carries every change
/// made since the last sync: the peer had at least `shared_heads` then. Without
/// this automerge would first exchange Bloom filters and send data a round later.
/// If the shared heads are not all in `doc` (the local copy lost data), the state
/// is reset and the ordinary protocol runs.
pub(crate) fn seed_push_since_shared(state: &mut State, doc: &Automerge) {
    if state.shared_heads.is_empty() {
        return;
    }
    if !state
        .shared_heads
        .iter()
        .all(|h| doc.get_change_by_hash(h).is_some())
    {
        *state = State::new();
        return;
    }
    state.their_heads = Some(state.shared_heads.clone());
    state.their_need = Some(Vec::new());
    state.their_have = Some(vec![Have {
        last_sync: state.shared_heads.clone(),
        bloom: BloomFilter::default(),
    }]);
    state.their_capabilities = our_capabilities();
}

/// Makes automerge send changes one by one (sync message v1 layout) instead of
/// a whole saved document, which it does when a peer holds nothing or more
/// than a third of the changes are new: the relay checks each change's actor
/// and size and refuses whole-document chunks (docs/sync.md, "What the relay
/// accepts"). Called on the device before every message it generates.
pub(crate) fn changes_one_by_one(state: &mut State) {
    state.their_capabilities = Some(vec![Capability::SyncReset]);
}

/// A state for a peer known to hold nothing of the document: the first message
/// generated from it carries the whole document (`save()`), in one piece.
pub(crate) fn state_for_empty_peer() -> State {
    let mut state = State::new();
    state.their_heads = Some(Vec::new());
    state.their_need = Some(Vec::new());
    state.their_have = Some(Vec::new());
    state.their_capabilities = our_capabilities();
    state
}

/// Decodes a persisted state, or starts afresh if it does not decode.
pub(crate) fn decode_state(bytes: Option<&[u8]>) -> State {
    bytes
        .and_then(|b| State::decode(b).ok())
        .unwrap_or_default()
}

/// True if `a` and `b` hold the same change hashes (heads are sets).
pub(crate) fn same_set(a: &[ChangeHash], b: &[ChangeHash]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}
