//! The relay targets: a sans-IO [`RelaySession`] over an in-memory storage
//! that holds a village, fed the fuzzer's bytes (`relay_session`) or one
//! fuzzed automerge sync message wrapped in a valid `Sync` frame
//! (`sync_message`).
//!
//! After the input, whatever its fate, these must hold:
//! - every byte the relay sent decodes as whole, valid frames;
//! - a session that returned an error is closed and stays closed;
//! - what the relay stored for each village loads, at the heads the relay holds;
//! - an honest device that holds nothing still syncs the village in full
//!   afterwards (a bad peer cannot break a village for the others).

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use automerge::sync::Message;
use automerge::{Automerge, ChangeHash};
use minqing_sync::frame::{DocHeads, Heads, HeadsDigest};
use minqing_sync::{
    ContentPolicy, DeviceEvent, DeviceSession, DocHost, DocId, DocOutcome, Frame, FrameDecoder,
    MemStorage, RelayEvent, RelaySession, SessionConfig, SessionError, Storage, StorageDocHost,
};

/// The device the fuzzed session is authenticated as.
pub const DEVICE: &str = "aaaaaaaaaaaaaaaa";
/// The honest device that syncs after it.
pub const HONEST: &str = "bbbbbbbbbbbbbbbb";
/// The relay's name.
pub const RELAY: &str = "county-relay";
/// The village the relay holds (assigned to both devices).
pub const HELD: &str = "V001";
/// A village assigned to both devices of which the relay holds nothing yet.
pub const EMPTY: &str = "V002";
/// A village assigned to neither device.
pub const FOREIGN: &str = "V003";

/// A valid document id from one of the constants above.
pub(crate) fn id(s: &str) -> DocId {
    // Only called with HELD, EMPTY and FOREIGN, which are valid ids.
    DocId::new(s).unwrap_or_else(|e| panic!("fixed village id {s:?}: {e}"))
}

fn assignment() -> BTreeSet<DocId> {
    [id(HELD), id(EMPTY)].into()
}

/// What the relay checks in every change, as `minqing-relay serve` sets it
/// (crates/minqing-relay/src/serve.rs `content_policy`): the skeleton change
/// is trusted, every result must keep the village schema, default limits.
pub fn content_policy() -> ContentPolicy {
    ContentPolicy {
        trusted: minqing_model::skeleton_hash().into_iter().collect(),
        schema: Some(Arc::new(|doc, before| {
            minqing_model::check_schema(doc, before).map_err(|e| e.to_string())
        })),
        limits: Default::default(),
    }
}

/// The village the relay holds at the start of every run, made once.
#[derive(Debug)]
pub struct Fixture {
    /// `save()` of the village.
    pub village: Vec<u8>,
    /// Its heads.
    pub heads: Vec<ChangeHash>,
}

/// The shared fixture (built on first use from [`crate::seeds::village`]).
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut v = crate::seeds::village();
        let heads = v.heads();
        Fixture {
            village: v.save(),
            heads,
        }
    })
}

/// The `Hello` the harness sends before the fuzzed bytes, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// None: the fuzzed bytes start the session themselves.
    Raw,
    /// The device holds both villages and has changes (heads listed).
    Dirty,
    /// The device holds the relay's village unchanged (`Clean` digest).
    Clean,
    /// The device holds nothing; the relay sends both villages first.
    Nothing,
}

impl Handshake {
    /// The encoded `Hello` frame (empty for [`Handshake::Raw`]).
    pub fn hello(self) -> Vec<u8> {
        let fx = fixture();
        let docs = match self {
            Handshake::Raw => return Vec::new(),
            Handshake::Dirty => vec![
                DocHeads {
                    doc: id(HELD),
                    heads: Heads::List(fx.heads.clone()),
                },
                DocHeads {
                    doc: id(EMPTY),
                    heads: Heads::List(Vec::new()),
                },
            ],
            Handshake::Clean => vec![DocHeads {
                doc: id(HELD),
                heads: Heads::Clean(HeadsDigest::of(&fx.heads)),
            }],
            Handshake::Nothing => Vec::new(),
        };
        let hello = Frame::hello(DEVICE.to_owned(), docs);
        hello
            .encode()
            .expect("a Hello of two villages is within limits")
    }
}

/// One relay over a fresh in-memory storage holding the fixture village, and
/// one session for [`DEVICE`].
pub struct Relay {
    /// The relay's storage.
    pub storage: Arc<MemStorage>,
    /// The documents, as the relay's sessions share them.
    pub host: StorageDocHost,
    /// The fuzzed device's session.
    pub session: RelaySession,
    /// Every byte the relay sent to the device.
    pub sent: Vec<u8>,
    /// Whether `handle_input` returned an error.
    pub failed: bool,
    /// Whether the session reported changes applied.
    pub applied: bool,
    /// Run the honest device's sync in [`Relay::check`] even if the fuzzed
    /// session left no trace in storage.
    pub always_sync: bool,
}

impl Default for Relay {
    fn default() -> Self {
        Self::new()
    }
}

impl Relay {
    /// A relay holding the fixture village, serving [`DEVICE`] both villages.
    pub fn new() -> Self {
        let storage = Arc::new(MemStorage::new());
        storage
            .append(&id(HELD), &fixture().village)
            .expect("memory storage does not fail");
        let host = StorageDocHost::new(storage.clone() as Arc<dyn Storage>);
        let session = RelaySession::new(SessionConfig::default(), RELAY, DEVICE, assignment())
            .with_policy(content_policy());
        Relay {
            storage,
            host,
            session,
            sent: Vec::new(),
            failed: false,
            applied: false,
            always_sync: false,
        }
    }

    /// Feeds bytes to the session and collects what it sends.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        let r = self.session.handle_input(bytes, &self.host);
        if r.is_err() {
            self.failed = true;
        }
        while let Some(out) = self.session.poll_transmit() {
            self.sent.extend_from_slice(&out);
        }
        while let Some(ev) = self.session.poll_event() {
            if matches!(ev, RelayEvent::Applied { .. }) {
                self.applied = true;
            }
        }
        r
    }

    /// Checks every invariant listed in the module documentation.
    pub fn check(mut self) {
        // What the relay sent is whole, valid frames.
        let mut dec = FrameDecoder::default();
        dec.push(&self.sent);
        loop {
            match dec.next_frame() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("the relay sent a bad frame: {e}"),
            }
        }
        assert_eq!(dec.buffered(), 0, "the relay sent part of a frame");
        // A failed session stays closed.
        if self.failed {
            assert!(self.session.is_closed(), "a failed session is not closed");
            assert!(
                matches!(
                    self.session.handle_input(&[0, 0, 0, 1, 6], &self.host),
                    Err(SessionError::Closed)
                ),
                "a failed session accepted more input"
            );
        }
        // What the relay stored loads, at the heads it holds in memory.
        let fx = fixture();
        let mut touched = false;
        for doc in [id(HELD), id(EMPTY)] {
            let stored = self
                .storage
                .load(&doc)
                .expect("memory storage does not fail");
            let mut held = self.host.heads(&doc).expect("memory storage does not fail");
            match stored {
                None => assert!(held.is_empty(), "{doc}: changes held but never stored"),
                // Untouched since the start (the common case): known to load.
                Some(bytes) if bytes == fx.village && held == fx.heads => {}
                Some(bytes) => {
                    touched = true;
                    let loaded = match Automerge::load(&bytes) {
                        Ok(d) => d,
                        Err(e) => panic!("{doc}: the relay stored bytes that do not load: {e}"),
                    };
                    let mut heads = loaded.get_heads();
                    heads.sort_unstable();
                    held.sort_unstable();
                    assert_eq!(heads, held, "{doc}: stored heads differ from the relay's");
                }
            }
        }
        // An honest device still syncs; only worth the time if the fuzzed
        // session left a trace (else it is the same sync every time), or if
        // the input asks for it.
        if touched || self.applied || self.always_sync {
            honest_sync(&self.host);
        }
    }
}

/// An honest device holding nothing syncs with the relay; it must end with
/// both villages, at the relay's heads.
fn honest_sync(host: &StorageDocHost) {
    let mut device = DeviceSession::new(SessionConfig::default(), HONEST, Vec::new())
        .expect("a session with no village starts");
    let mut relay = RelaySession::new(SessionConfig::default(), RELAY, HONEST, assignment())
        .with_policy(content_policy());
    let mut outcome = None;
    for _round in 0..64 {
        let mut up = Vec::new();
        while let Some(b) = device.poll_transmit() {
            up.extend(b);
        }
        if !up.is_empty()
            && let Err(e) = relay.handle_input(&up, host)
        {
            panic!("the relay failed an honest device after the fuzzed session: {e}");
        }
        while relay.poll_event().is_some() {}
        let mut down = Vec::new();
        while let Some(b) = relay.poll_transmit() {
            down.extend(b);
        }
        if !down.is_empty()
            && let Err(e) = device.handle_input(&down)
        {
            panic!("an honest device failed to sync after the fuzzed session: {e}");
        }
        while let Some(ev) = device.poll_event() {
            if let DeviceEvent::Finished(o) = ev {
                outcome = Some(o);
            }
        }
        if up.is_empty() && down.is_empty() {
            break;
        }
    }
    let Some(outcome) = outcome else {
        panic!("an honest device's session did not finish after the fuzzed session");
    };
    for doc in [id(HELD), id(EMPTY)] {
        let mut want = host.heads(&doc).expect("memory storage does not fail");
        want.sort_unstable();
        match outcome.docs.get(&doc) {
            Some(DocOutcome::Added { heads }) | Some(DocOutcome::InSync { heads }) => {
                let mut got = heads.clone();
                got.sort_unstable();
                assert_eq!(got, want, "{doc}: the honest device got other heads");
            }
            other => panic!("{doc}: the honest device ended with {other:?}"),
        }
    }
}

/// The `relay_session` target. Byte 0: bits 0-1 pick the [`Handshake`]
/// (raw, dirty, clean, nothing); bits 2-4 the slice size the rest is fed in
/// (0: all at once, n: `2^n` bytes); bit 5 runs the honest device's sync
/// afterwards even if nothing was stored. The rest is the device's byte stream.
pub fn run_session(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let handshake = [
        Handshake::Raw,
        Handshake::Dirty,
        Handshake::Clean,
        Handshake::Nothing,
    ][usize::from(mode & 3)];
    let chunk = match (mode >> 2) & 7 {
        0 => rest.len().max(1),
        n => 1usize << n,
    };
    let mut relay = Relay::new();
    relay.always_sync = mode & 0x20 != 0;
    if handshake != Handshake::Raw
        && let Err(e) = relay.feed(&handshake.hello())
    {
        panic!("the relay refused a valid {handshake:?} Hello: {e}");
    }
    for piece in rest.chunks(chunk) {
        if relay.feed(piece).is_err() {
            break;
        }
    }
    relay.check();
}

/// The `sync_message` target. Byte 0: bits 0-1 pick the [`Handshake`] (raw
/// counts as dirty here); bits 2-3 the village (held, held, empty, foreign);
/// bit 4 sends the message twice; bit 5 runs the honest device's sync
/// afterwards even if nothing was stored; bit 7 repairs the checksums of the chunks
/// in the message's changes first. The rest is one encoded sync message.
pub fn run_sync_message(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut message = rest.to_vec();
    if mode & 0x80 != 0 {
        message = fix_message(message);
    }
    // The message codec on its own: what decodes re-encodes to the same message.
    // (Not byte-exact from the first pass: automerge writes an empty Bloom
    // filter as nothing and reads nothing back as a filter with other
    // parameters, an equivalent value; so the check is that the encoding is
    // stable from the second pass on.)
    if let Ok(m) = Message::decode(&message)
        && encodable(&m)
    {
        let once = m.encode();
        let again = Message::decode(&once).expect("a re-encoded message decodes");
        assert_eq!(again.encode(), once, "sync message encoding is not stable");
    }
    let handshake = [
        Handshake::Dirty,
        Handshake::Dirty,
        Handshake::Clean,
        Handshake::Nothing,
    ][usize::from(mode & 3)];
    let doc = [HELD, HELD, EMPTY, FOREIGN][usize::from((mode >> 2) & 3)];
    let frame = Frame::Sync {
        doc: id(doc),
        message,
    };
    let Ok(bytes) = frame.encode() else {
        return;
    };
    let mut relay = Relay::new();
    relay.always_sync = mode & 0x20 != 0;
    if let Err(e) = relay.feed(&handshake.hello()) {
        panic!("the relay refused a valid {handshake:?} Hello: {e}");
    }
    let times = if mode & 0x10 != 0 { 2 } else { 1 };
    for _ in 0..times {
        if relay.feed(&bytes).is_err() {
            break;
        }
    }
    relay.check();
}

/// Whether automerge may re-encode `m`: its hash lists must be sorted (a
/// `debug_assert!` in automerge's encoder; the relay refuses unsorted lists
/// before anything is encoded, so this is only the harness's concern).
fn encodable(m: &Message) -> bool {
    let sorted = |v: &[ChangeHash]| v.windows(2).all(|w| w[0] <= w[1]);
    sorted(&m.heads) && sorted(&m.need) && m.have.iter().all(|h| sorted(&h.last_sync))
}

/// Re-encodes `bytes` with the checksums of its change chunks repaired, if it
/// decodes as a sync message; else returns it as it was.
pub fn fix_message(bytes: Vec<u8>) -> Vec<u8> {
    let Ok(mut m) = Message::decode(&bytes) else {
        return bytes;
    };
    if !encodable(&m) {
        return bytes;
    }
    let mut changes: Vec<Vec<u8>> = m.changes.iter().map(<[u8]>::to_vec).collect();
    for c in &mut changes {
        crate::fixup::fix_chunk_checksums(c);
    }
    m.changes = changes.into();
    m.encode()
}

/// Bytes a test can use to check the harness itself: the relay's document.
pub fn relay_doc(relay: &Relay, doc: &str) -> Automerge {
    let mut out = Automerge::new();
    relay
        .host
        .with_doc(&id(doc), &mut |am| out = am.clone())
        .expect("memory storage does not fail");
    out
}
