//! What the relay trusts in what a device sends: actors bound to devices,
//! change chunks parsed and bounded before automerge sees them, a hook for the
//! document's schema, and the limits on changes waiting for their dependencies.
//!
//! See docs/sync.md, "What the relay accepts". The rules:
//!
//! - A laptop's automerge actor is its device id's bytes followed by a 4-byte
//!   *incarnation suffix* whose first byte has its high bit set
//!   ([`device_actor`]); a change from a device must be authored by one of its
//!   actors ([`actor_belongs_to`]; the bare device id is accepted for history
//!   written before the suffix existed), be a change the relay already holds,
//!   or be one of the policy's trusted changes (the deterministic skeleton).
//! - Change chunks are parsed here, not by `load_incremental` (which skips a
//!   chunk it cannot parse): every chunk must be a valid change, its checksum
//!   must match, a compressed chunk is inflated with a bound, and whole-document
//!   or bundle chunks are refused (devices send changes one by one).

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;

use automerge::{ActorId, Automerge, Change, ChangeHash};

use crate::frame::RefuseCode;

/// Length of the incarnation suffix of a laptop's actor.
pub const INCARNATION_LEN: usize = 4;

/// A laptop's incarnation: 4 random bytes chosen when its store is created and
/// again whenever it is restored or copied, so that two stores never write with
/// the same actor (and never reuse a sequence number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Incarnation([u8; INCARNATION_LEN]);

impl Incarnation {
    /// An incarnation from 4 random bytes; the first byte's high bit is set so
    /// that `device id ++ suffix` can never read as another (ASCII) device id.
    pub fn from_random(bytes: [u8; INCARNATION_LEN]) -> Self {
        let mut b = bytes;
        b[0] |= 0x80;
        Incarnation(b)
    }

    /// The incarnation kept in a store, if `bytes` is one.
    pub fn from_stored(bytes: &[u8]) -> Option<Self> {
        let b: [u8; INCARNATION_LEN] = bytes.try_into().ok()?;
        (b[0] & 0x80 != 0).then_some(Incarnation(b))
    }

    /// The 4 bytes (to keep in a store).
    pub fn bytes(&self) -> [u8; INCARNATION_LEN] {
        self.0
    }
}

/// The automerge actor of a laptop: its device id's bytes, then its incarnation.
pub fn device_actor(device_id: &str, incarnation: Incarnation) -> ActorId {
    let mut bytes = device_id.as_bytes().to_vec();
    bytes.extend_from_slice(&incarnation.0);
    ActorId::from(bytes)
}

/// Whether `actor` is one of the device's actors: `device_id ++ incarnation`,
/// or the bare device id (history written before incarnations existed).
pub fn actor_belongs_to(actor: &ActorId, device_id: &str) -> bool {
    let a = actor.to_bytes();
    let d = device_id.as_bytes();
    a == d || (a.len() == d.len() + INCARNATION_LEN && a.starts_with(d) && a[d.len()] & 0x80 != 0)
}

/// A check of a document after a device's changes were applied to it, given
/// the heads before them: `Err(words)` if the document no longer keeps its
/// schema. The relay passes `minqing_model::check_schema`; the sync crate
/// knows nothing of residents.
pub type SchemaCheck = Arc<dyn Fn(&Automerge, &[ChangeHash]) -> Result<(), String> + Send + Sync>;

/// Size limits on what a device sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentLimits {
    /// Largest change, decompressed, in bytes.
    pub max_change_len: usize,
    /// Largest total of the changes in one sync message, decompressed, in bytes.
    pub max_message_changes_len: usize,
    /// Most changes held per session while their dependencies are missing.
    pub max_pending_changes: usize,
    /// Most bytes of changes held per session while their dependencies are missing.
    pub max_pending_bytes: usize,
    /// A change waiting for its dependencies is dropped after this many more
    /// messages for its document (the session's deadline, kept by the driver,
    /// bounds it in time; all of them go with the session).
    pub max_pending_messages: usize,
}

impl Default for ContentLimits {
    fn default() -> Self {
        ContentLimits {
            max_change_len: 16 * 1024 * 1024,
            max_message_changes_len: 64 * 1024 * 1024,
            max_pending_changes: 1024,
            max_pending_bytes: 8 * 1024 * 1024,
            max_pending_messages: 8,
        }
    }
}

/// What a relay session accepts from its device, beyond the assignment.
#[derive(Clone, Default)]
pub struct ContentPolicy {
    /// Changes accepted from any device whatever their actor: the deterministic
    /// skeleton change every replica makes identically.
    pub trusted: BTreeSet<ChangeHash>,
    /// The schema the document must keep after a device's changes.
    pub schema: Option<SchemaCheck>,
    /// Size limits.
    pub limits: ContentLimits,
}

impl std::fmt::Debug for ContentPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentPolicy")
            .field("trusted", &self.trusted)
            .field("schema", &self.schema.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

/// Why the relay refused a device's message for one village. Nothing of it
/// was applied; the device is told, and the relay audits it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A change authored by an actor that is not the device's.
    #[error(
        "a change is written as actor {actor}, which is not this laptop's and which the relay does not hold; \
         nothing was applied. If the relay was restored from a backup, this clears once the laptop that wrote it \
         has synced; if this laptop's store was copied from another laptop, ask the county IT staff for a new enrolment"
    )]
    ForgedActor {
        /// The actor, hex.
        actor: String,
    },
    /// A chunk that is not a valid automerge change.
    #[error("a change in the message is not valid ({detail}); nothing was applied")]
    BadChange {
        /// What is wrong.
        detail: String,
    },
    /// A change or the message exceeds a size limit.
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes; nothing was applied")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size (or the size reached when the bound stopped reading).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The changes would break the document's schema.
    #[error("the changes would break the village's layout ({detail}); nothing was applied")]
    Schema {
        /// What the schema check said.
        detail: String,
    },
    /// The relay's copy of the village does not load.
    #[error(
        "the relay's copy of this village does not load and is set aside ({detail}); \
         the other villages sync normally; the county IT staff must restore it"
    )]
    Quarantined {
        /// Why it does not load.
        detail: String,
    },
}

impl Rejection {
    /// The code of the `Refused` frame that tells the device.
    pub fn code(&self) -> RefuseCode {
        match self {
            Rejection::ForgedActor { .. } => RefuseCode::ForgedActor,
            Rejection::BadChange { .. } => RefuseCode::BadChange,
            Rejection::TooLarge { .. } => RefuseCode::TooLarge,
            Rejection::Schema { .. } => RefuseCode::Schema,
            Rejection::Quarantined { .. } => RefuseCode::Quarantined,
        }
    }
}

/// A parsed change and its size decompressed.
#[derive(Debug, Clone)]
pub(crate) struct ParsedChange {
    pub(crate) change: Change,
    pub(crate) len: usize,
}

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_DOCUMENT: u8 = 0;
const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED: u8 = 2;
const CHUNK_BUNDLE: u8 = 3;

fn bad(detail: impl Into<String>) -> Rejection {
    Rejection::BadChange {
        detail: detail.into(),
    }
}

/// Reads a LEB128 unsigned integer (at most 10 bytes).
fn uleb(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, b) in bytes.iter().enumerate().take(10) {
        let part = u64::from(b & 0x7f);
        value |= part.checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Parses the change chunks of one sync message (each element of automerge's
/// `ChunkList` may hold several chunks back to back). Every chunk must be a
/// change (plain or compressed) whose checksum matches; a compressed chunk is
/// inflated with a bound before automerge sees it.
pub(crate) fn parse_changes<'a>(
    chunks: impl Iterator<Item = &'a [u8]>,
    limits: &ContentLimits,
) -> Result<Vec<ParsedChange>, Rejection> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for element in chunks {
        let mut rest = element;
        while !rest.is_empty() {
            if rest.len() < 9 || rest[..4] != MAGIC {
                return Err(bad("not an automerge change chunk"));
            }
            let checksum = [rest[4], rest[5], rest[6], rest[7]];
            let kind = rest[8];
            let (len, n) = uleb(&rest[9..]).ok_or_else(|| bad("bad chunk length"))?;
            let header = 9 + n;
            let len = usize::try_from(len).map_err(|_| bad("bad chunk length"))?;
            let end = header
                .checked_add(len)
                .filter(|e| *e <= rest.len())
                .ok_or_else(|| bad("truncated change chunk"))?;
            let (chunk, tail) = rest.split_at(end);
            rest = tail;
            let data = &chunk[header..];
            let inflated = match kind {
                CHUNK_CHANGE => len,
                CHUNK_COMPRESSED => inflated_len(data, limits.max_change_len)?,
                CHUNK_DOCUMENT | CHUNK_BUNDLE => {
                    return Err(bad(
                        "a whole-document chunk; a laptop sends its changes one by one (update minqing)",
                    ));
                }
                other => return Err(bad(format!("unknown chunk type {other}"))),
            };
            if inflated > limits.max_change_len {
                return Err(Rejection::TooLarge {
                    what: "a change",
                    len: inflated,
                    max: limits.max_change_len,
                });
            }
            total = total.saturating_add(inflated);
            if total > limits.max_message_changes_len {
                return Err(Rejection::TooLarge {
                    what: "the changes of one sync message",
                    len: total,
                    max: limits.max_message_changes_len,
                });
            }
            let change = Change::from_bytes(chunk.to_vec()).map_err(|e| bad(e.to_string()))?;
            if change.hash().0[..4] != checksum {
                return Err(bad("checksum mismatch"));
            }
            out.push(ParsedChange {
                change,
                len: inflated,
            });
        }
    }
    Ok(out)
}

/// Inflates a compressed change into nothing, counting bytes, and stops one
/// byte past `max`: a compression bomb costs at most `max` bytes of work.
fn inflated_len(data: &[u8], max: usize) -> Result<usize, Rejection> {
    let decoder = flate2::read::DeflateDecoder::new(data);
    let mut limited = decoder.take(max as u64 + 1);
    let mut buf = [0u8; 16 * 1024];
    let mut n = 0usize;
    loop {
        match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(bad(format!("compressed change does not inflate: {e}"))),
        }
    }
    if n > max {
        return Err(Rejection::TooLarge {
            what: "a compressed change",
            len: n,
            max,
        });
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ROOT;
    use automerge::transaction::Transactable;

    #[test]
    fn actors_belong_to_their_device_only() {
        let inc = Incarnation::from_random([1, 2, 3, 4]);
        let a = device_actor("abcdefghjkmnpqrs", inc);
        assert_eq!(a.to_bytes().len(), 20);
        assert!(actor_belongs_to(&a, "abcdefghjkmnpqrs"));
        assert!(actor_belongs_to(
            &ActorId::from(&b"abcdefghjkmnpqrs"[..]),
            "abcdefghjkmnpqrs"
        ));
        assert!(!actor_belongs_to(&a, "abcdefghjkmnpqrt"));
        // A shorter id cannot claim a longer id's bare actor.
        assert!(!actor_belongs_to(
            &ActorId::from(&b"abcdefghjkmnpqrs"[..]),
            "abcdefghjkmn"
        ));
        assert!(Incarnation::from_stored(&[0, 1, 2, 3]).is_none());
        assert_eq!(Incarnation::from_stored(&inc.bytes()), Some(inc));
    }

    #[test]
    fn garbage_and_document_chunks_are_refused() {
        let limits = ContentLimits::default();
        let mut am = Automerge::new();
        let mut tx = am.transaction();
        tx.put(ROOT, "k", "v").expect("put");
        tx.commit();
        let change = am.get_changes(&[]).remove(0).raw_bytes().to_vec();
        let ok = parse_changes([&change[..]].into_iter(), &limits).expect("a valid change");
        assert_eq!(ok.len(), 1);
        assert!(matches!(
            parse_changes([&b"garbage!garbage"[..]].into_iter(), &limits),
            Err(Rejection::BadChange { .. })
        ));
        let mut flipped = change.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(parse_changes([&flipped[..]].into_iter(), &limits).is_err());
        let doc = am.save();
        assert!(matches!(
            parse_changes([&doc[..]].into_iter(), &limits),
            Err(Rejection::BadChange { .. })
        ));
    }
}
