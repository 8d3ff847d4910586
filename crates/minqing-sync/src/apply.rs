//! Applying a session's results to storage: the one owner of the rule
//! **append, then flush, then acknowledge** (docs/sync.md, "Driving the state
//! machine").
//!
//! A driver (QUIC in `minqing-net`, the lockstep and simulated drivers of the
//! tests, the bench) feeds each input it reads to [`device_step`] or
//! [`relay_step`]; the step persists what the session produced, flushes, and
//! only then hands out the frames that may acknowledge it. A driver never
//! calls `poll_transmit` after its first flight, so it cannot send before the
//! flush.
//!
//! The relay side is the one deliberate asymmetry: a [`RelaySession`] does not
//! report its documents' changes as events; it applies them through the
//! injected [`DocHost`], which appends them to storage before `handle_input`
//! returns (the relay's documents are shared by every session, so they are not
//! the session's to hand back). [`relay_step`] then flushes that storage before
//! it hands out the frames, exactly as [`device_step`] does.

use automerge::Automerge;

use crate::{
    DeviceEvent, DeviceSession, DocHost, DocId, RelayEvent, RelaySession, SessionError,
    SessionOutcome, Storage, StorageError, load_doc,
};

/// A held document with its persisted sync state, as [`DeviceSession::new`] takes it.
pub type HeldDoc = (DocId, Automerge, Option<Vec<u8>>);

/// Loads every document of `storage` with its sync state for `peer` (the
/// relay's name), ready for [`DeviceSession::new`].
pub fn device_docs(storage: &dyn Storage, peer: &str) -> Result<Vec<HeldDoc>, StorageError> {
    let mut out = Vec::new();
    for id in storage.docs()? {
        if let Some(doc) = load_doc(storage, &id)? {
            let state = storage.sync_state(peer, &id)?;
            out.push((id, doc, state));
        }
    }
    Ok(out)
}

/// Whether `doc` holds changes the peer has not acknowledged: its heads differ
/// from the shared heads in the persisted sync state (`None`: never synced).
pub fn has_local_changes(doc: &Automerge, state: Option<&[u8]>) -> bool {
    let Some(state) = state.and_then(|s| automerge::sync::State::decode(s).ok()) else {
        return true;
    };
    let mut ours = doc.get_heads();
    let mut shared = state.shared_heads;
    ours.sort();
    shared.sort();
    ours != shared
}

/// How many of `doc`'s changes the peer whose sync state is `state` is not
/// known to have (all of them without a state): "changes not yet at the
/// county" on a laptop's sync page. 0 exactly when [`has_local_changes`] is
/// false for a document that the peer holds in full.
pub fn local_change_count(doc: &Automerge, state: Option<&[u8]>) -> usize {
    let shared = state
        .and_then(|s| automerge::sync::State::decode(s).ok())
        .map(|s| s.shared_heads)
        .unwrap_or_default();
    doc.get_changes_meta(&shared).len()
}

/// Persists one device event into `storage` (sync states under `peer`, the
/// relay's name). Not durable until the storage is flushed ([`device_step`]
/// does both). Returns the outcome when the session finished.
pub fn apply_device_event(
    storage: &dyn Storage,
    peer: &str,
    event: &DeviceEvent,
) -> Result<Option<SessionOutcome>, StorageError> {
    match event {
        DeviceEvent::DocChanged { doc, bytes } => storage.append(doc, bytes)?,
        DeviceEvent::DocAdded { doc, bytes } => {
            // A stale copy (e.g. a village removed and assigned again) is replaced whole.
            if storage.load(doc)?.is_some() {
                storage.remove(doc)?;
            }
            storage.append(doc, bytes)?;
        }
        DeviceEvent::DocRemoved { doc } => storage.remove(doc)?,
        DeviceEvent::SyncState { doc, state } => storage.set_sync_state(peer, doc, state)?,
        DeviceEvent::Refused { .. } => {}
        DeviceEvent::Finished(outcome) => return Ok(Some(outcome.clone())),
    }
    Ok(None)
}

/// What one input did to a device session, once everything it produced is durable.
#[derive(Debug)]
pub struct DeviceStep {
    /// The session's verdict on the input. On `Err`, [`DeviceStep::frames`]
    /// holds the `Error` frame for the relay (unless the relay sent the error):
    /// send it, then close.
    pub result: Result<(), SessionError>,
    /// Every event the input produced, in order, all persisted and flushed
    /// (for notices).
    pub events: Vec<DeviceEvent>,
    /// The session's outcome, if it finished with this input.
    pub outcome: Option<SessionOutcome>,
    /// The frames to send now, in order: they may acknowledge what was persisted.
    pub frames: Vec<Vec<u8>>,
}

/// Feeds `input` (bytes from the relay, any slice of the stream) to a device
/// session, persists every event it produced into `storage` (sync states under
/// `peer`, the relay's name), flushes, and only then takes the frames to send.
///
/// A storage error ends the step before the flush: nothing the input produced
/// may be sent then (drop the session; the next one starts from what storage holds).
pub fn device_step(
    session: &mut DeviceSession,
    storage: &dyn Storage,
    peer: &str,
    input: &[u8],
) -> Result<DeviceStep, StorageError> {
    let result = session.handle_input(input);
    let mut events = Vec::new();
    let mut outcome = None;
    while let Some(ev) = session.poll_event() {
        if let Some(o) = apply_device_event(storage, peer, &ev)? {
            outcome = Some(o);
        }
        events.push(ev);
    }
    // Durable before anything that acknowledges it leaves.
    storage.flush()?;
    Ok(DeviceStep {
        result,
        events,
        outcome,
        frames: std::iter::from_fn(|| session.poll_transmit()).collect(),
    })
}

/// What one input did to a relay session, once everything it produced is durable.
#[derive(Debug)]
pub struct RelayStep {
    /// The session's verdict on the input. On `Err`, [`RelayStep::frames`]
    /// holds the `Error` frame for the device (unless the device sent the
    /// error): send it, then close.
    pub result: Result<(), SessionError>,
    /// Every event the input produced, in order (audit refusals, record the outcome).
    pub events: Vec<RelayEvent>,
    /// The frames to send now, in order: they may acknowledge what was flushed.
    pub frames: Vec<Vec<u8>>,
}

/// Feeds `input` (bytes from the device) to a relay session, which applies the
/// device's changes through `host` (the host appends them to `storage` before
/// it returns: see the module's note on [`DocHost`]), flushes `storage`, and
/// only then takes the frames to send.
///
/// `storage` must be the storage `host` appends to. A failed flush ends the
/// step: nothing the input produced may be sent then.
pub fn relay_step(
    session: &mut RelaySession,
    host: &dyn DocHost,
    storage: &dyn Storage,
    input: &[u8],
) -> Result<RelayStep, StorageError> {
    let result = session.handle_input(input, host);
    let events = std::iter::from_fn(|| session.poll_event()).collect();
    // The reply's heads acknowledge what was applied: durable first.
    storage.flush()?;
    Ok(RelayStep {
        result,
        events,
        frames: std::iter::from_fn(|| session.poll_transmit()).collect(),
    })
}

#[cfg(test)]
mod tests {
    //! The append-then-flush-then-acknowledge rule, tested once for both sides:
    //! a storage that records every call shows that each step persists what
    //! the input produced before it flushes, and hands out no frame when the
    //! flush fails.

    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use automerge::transaction::Transactable;

    use super::*;
    use crate::{MemStorage, SessionConfig, StorageDocHost};

    const RELAY: &str = "county-relay";

    /// A storage that records the kind of every write and flush, and can be
    /// told to fail its flushes.
    #[derive(Default)]
    struct Recorder {
        inner: MemStorage,
        log: Mutex<Vec<&'static str>>,
        fail_flush: AtomicBool,
    }

    impl Recorder {
        fn note(&self, what: &'static str) {
            self.log.lock().expect("test lock").push(what);
        }
        fn take_log(&self) -> Vec<&'static str> {
            std::mem::take(&mut *self.log.lock().expect("test lock"))
        }
    }

    impl Storage for Recorder {
        fn docs(&self) -> Result<Vec<DocId>, StorageError> {
            self.inner.docs()
        }
        fn load(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
            self.inner.load(doc)
        }
        fn append(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StorageError> {
            self.note("append");
            self.inner.append(doc, bytes)
        }
        fn remove(&self, doc: &DocId) -> Result<(), StorageError> {
            self.note("remove");
            self.inner.remove(doc)
        }
        fn sync_state(&self, peer: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
            self.inner.sync_state(peer, doc)
        }
        fn set_sync_state(
            &self,
            peer: &str,
            doc: &DocId,
            state: &[u8],
        ) -> Result<(), StorageError> {
            self.note("state");
            self.inner.set_sync_state(peer, doc, state)
        }
        fn flush(&self) -> Result<(), StorageError> {
            self.note("flush");
            if self.fail_flush.load(Ordering::SeqCst) {
                return Err(StorageError::Backend("the disk is full".into()));
            }
            Ok(())
        }
    }

    fn v1() -> DocId {
        DocId::new("V1").expect("valid id")
    }

    /// A village on the relay with one visit, and a laptop holding it with
    /// one visit of its own not yet synced: the first input on either side
    /// has something to persist.
    fn setup() -> (Arc<Recorder>, StorageDocHost, Recorder) {
        let relay = Arc::new(Recorder::default());
        let mut am = automerge::AutoCommit::new();
        am.put(automerge::ROOT, "relay", "yes").expect("put");
        relay.inner.append(&v1(), &am.save()).expect("append");
        let host = StorageDocHost::new(relay.clone());
        let dev = Recorder::default();
        // Written as d1 (its actor): the relay accepts only a device's own changes.
        let mut mine = automerge::AutoCommit::new().with_actor(crate::device_actor(
            "d1",
            crate::Incarnation::from_random([0x80, 0, 0, 1]),
        ));
        mine.put(automerge::ROOT, "laptop", "yes").expect("put");
        dev.inner.append(&v1(), &mine.save()).expect("append");
        (relay, host, dev)
    }

    fn sessions(dev: &Recorder) -> (DeviceSession, RelaySession) {
        let docs = device_docs(dev, RELAY).expect("loads");
        let d = DeviceSession::new(SessionConfig::default(), "d1", docs).expect("starts");
        let r = RelaySession::new(
            SessionConfig::default(),
            RELAY,
            "d1",
            BTreeSet::from([v1()]),
        );
        (d, r)
    }

    /// A step's log holds one flush, last: every write came before it.
    fn flush_last(log: &[&str]) -> bool {
        log.last() == Some(&"flush") && log.iter().filter(|w| **w == "flush").count() == 1
    }

    #[test]
    fn each_step_persists_then_flushes_then_hands_out_frames() {
        let (relay, host, dev) = setup();
        let (mut d, mut r) = sessions(&dev);
        let mut up: Vec<u8> = std::iter::from_fn(|| d.poll_transmit()).flatten().collect();
        let mut outcome = None;
        let (mut relay_wrote, mut device_wrote) = (false, false);
        for _ in 0..20 {
            let rs = relay_step(&mut r, &host, &*relay, &up).expect("relay step");
            rs.result.expect("the relay accepts the device's flight");
            let log = relay.take_log();
            assert!(flush_last(&log), "relay: {log:?}");
            relay_wrote |= log.len() > 1;
            assert!(!rs.frames.is_empty() || r.is_closed());
            if r.is_closed() {
                break;
            }
            let down: Vec<u8> = rs.frames.concat();
            let ds = device_step(&mut d, &dev, RELAY, &down).expect("device step");
            ds.result.expect("the device accepts the relay's flight");
            let log = dev.take_log();
            assert!(flush_last(&log), "device: {log:?}");
            device_wrote |= log.len() > 1;
            outcome = outcome.or(ds.outcome);
            up = ds.frames.concat();
        }
        assert!(outcome.is_some(), "the session finished");
        assert!(
            relay_wrote && device_wrote,
            "both sides had something to persist"
        );
        // Each side holds the other's visit, durably.
        let relay_doc = host.snapshot(&v1()).expect("relay doc");
        let laptop = load_doc(&dev, &v1()).expect("loads").expect("held");
        assert_eq!(relay_doc.get_heads(), laptop.get_heads());
        assert!(!has_local_changes(
            &laptop,
            dev.sync_state(RELAY, &v1()).expect("state").as_deref()
        ));
    }

    #[test]
    fn no_frame_leaves_a_step_whose_flush_failed() {
        // The relay: the device's first flight carries a change to apply.
        let (relay, host, dev) = setup();
        let (mut d, mut r) = sessions(&dev);
        let up: Vec<u8> = std::iter::from_fn(|| d.poll_transmit()).flatten().collect();
        relay.fail_flush.store(true, Ordering::SeqCst);
        assert!(relay_step(&mut r, &host, &*relay, &up).is_err());
        let log = relay.take_log();
        assert!(flush_last(&log) && log.len() > 1, "relay: {log:?}");

        // The device: the relay's answer carries a change to persist.
        let (relay, host, dev) = setup();
        let (mut d, mut r) = sessions(&dev);
        let up: Vec<u8> = std::iter::from_fn(|| d.poll_transmit()).flatten().collect();
        let rs = relay_step(&mut r, &host, &*relay, &up).expect("relay step");
        dev.fail_flush.store(true, Ordering::SeqCst);
        dev.take_log();
        assert!(device_step(&mut d, &dev, RELAY, &rs.frames.concat()).is_err());
        let log = dev.take_log();
        assert!(flush_last(&log) && log.len() > 1, "device: {log:?}");
    }

    fn put(doc: &mut automerge::AutoCommit, key: &str) {
        doc.put(automerge::ROOT, key, 1_i64).expect("put");
        doc.commit();
    }

    #[test]
    fn local_changes_are_counted_from_the_shared_heads() {
        let mut doc = automerge::AutoCommit::new();
        put(&mut doc, "a");
        put(&mut doc, "b");
        assert_eq!(local_change_count(doc.document(), None), 2);
        let mut state = automerge::sync::State::new();
        state.shared_heads = doc.get_heads();
        let encoded = state.encode();
        assert_eq!(local_change_count(doc.document(), Some(&encoded)), 0);
        assert!(!has_local_changes(doc.document(), Some(&encoded)));
        put(&mut doc, "c");
        put(&mut doc, "d");
        put(&mut doc, "e");
        assert_eq!(local_change_count(doc.document(), Some(&encoded)), 3);
        assert!(has_local_changes(doc.document(), Some(&encoded)));
        // A state that does not decode counts everything, as no state does.
        assert_eq!(local_change_count(doc.document(), Some(b"junk")), 5);
    }

    #[test]
    fn a_never_synced_or_changed_document_has_local_changes() {
        let mut am = automerge::AutoCommit::new();
        am.put(automerge::ROOT, "k", "v").expect("put");
        assert!(has_local_changes(am.document(), None));
        assert!(has_local_changes(am.document(), Some(b"not a state")));
    }
}
