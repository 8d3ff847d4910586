//! Test drivers for the sans-IO sessions: loading a device's documents from a
//! `Storage`, persisting device events, and a lockstep driver that counts flights.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ROOT, ReadDoc};
use minqing_sync::{
    DeviceEvent, DeviceSession, DocHost, DocId, Incarnation, MemStorage, RelayEvent, RelaySession,
    SessionConfig, SessionOutcome, Storage, StorageDocHost, device_actor, load_doc,
};

/// The relay's name, under which devices keep their sync states.
pub const RELAY: &str = "county-relay";

/// A deterministic actor for a test participant.
pub fn actor(tag: u64) -> ActorId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&tag.to_be_bytes());
    bytes[8..].copy_from_slice(b"minqing!");
    ActorId::from(&bytes[..])
}

/// The actor a device writes with in these tests: its name and a fixed incarnation.
pub fn actor_of(device: &str) -> ActorId {
    device_actor(device, Incarnation::from_random([0x80, 0, 0, 1]))
}

pub fn doc_id(s: &str) -> DocId {
    DocId::new(s).expect("test ids are valid")
}

/// The skeleton every village document starts from, made once on the relay.
pub fn skeleton() -> Automerge {
    let mut am = Automerge::new().with_actor(actor(u64::MAX));
    let mut tx = am.transaction();
    tx.put_object(ROOT, "visits", ObjType::Map)
        .expect("putting into the root map works");
    tx.commit();
    am
}

/// Writes `visits[key] = value` (or the `phone` register when `key` is
/// `"phone"`) into `doc` in `storage` as `device` (its actor, [`actor_of`]), the
/// way the CLI would: load, change, append `save_after`. Returns the new change's hash.
pub fn local_write(
    storage: &dyn Storage,
    doc: &DocId,
    device: &str,
    key: &str,
    value: &str,
) -> ChangeHash {
    let mut am = load_doc(storage, doc)
        .expect("test storage loads")
        .expect("device holds the document")
        .with_actor(actor_of(device));
    let before = am.get_heads();
    let mut tx = am.transaction();
    if key == "phone" {
        tx.put(ROOT, "phone", value).expect("root put works");
    } else {
        let visits = match tx.get(ROOT, "visits").expect("root get works") {
            Some((_, id)) => id,
            None => panic!("document {doc} has no visits map (skeleton missing)"),
        };
        tx.put(&visits, key, value).expect("map put works");
    }
    let (hash, _) = tx.commit();
    let hash = hash.expect("a change with an op has a hash");
    storage
        .append(doc, &am.save_after(&before))
        .expect("test storage appends");
    hash
}

/// Starts a device session over everything `storage` holds.
pub fn device_session(device: &str, storage: &dyn Storage) -> DeviceSession {
    let mut docs = Vec::new();
    for id in storage.docs().expect("test storage lists") {
        let am = load_doc(storage, &id)
            .expect("test storage loads")
            .expect("listed document loads");
        let state = storage.sync_state(RELAY, &id).expect("test storage reads");
        docs.push((id, am, state));
    }
    DeviceSession::new(SessionConfig::default(), device, docs).expect("session starts")
}

/// Persists every pending device event; returns them.
pub fn persist_device_events(s: &mut DeviceSession, storage: &dyn Storage) -> Vec<DeviceEvent> {
    let mut out = Vec::new();
    while let Some(ev) = s.poll_event() {
        match &ev {
            DeviceEvent::DocChanged { doc, bytes } | DeviceEvent::DocAdded { doc, bytes } => {
                storage.append(doc, bytes).expect("test storage appends")
            }
            DeviceEvent::DocRemoved { doc } => storage.remove(doc).expect("test storage removes"),
            DeviceEvent::SyncState { doc, state } => storage
                .set_sync_state(RELAY, doc, state)
                .expect("test storage writes"),
            DeviceEvent::Refused { .. } | DeviceEvent::Finished(_) => {}
        }
        out.push(ev);
    }
    storage.flush().expect("test storage flushes");
    out
}

pub fn drain(out: &mut Vec<u8>, mut next: impl FnMut() -> Option<Vec<u8>>) -> usize {
    let mut frames = 0;
    while let Some(b) = next() {
        out.extend(b);
        frames += 1;
    }
    frames
}

/// What a lockstep session cost.
#[derive(Debug, Default, Clone)]
pub struct Flights {
    /// Flights from the relay the device had to wait for before it finished.
    /// The first is the handshake's `Welcome`; round trips after the handshake
    /// are this minus one.
    pub relay_flights: usize,
    /// Frames sent each way.
    pub frames_to_relay: usize,
    /// Frames sent each way.
    pub frames_to_device: usize,
    /// Bytes on the wire each way.
    pub bytes_to_relay: usize,
    /// Bytes on the wire each way.
    pub bytes_to_device: usize,
    /// The device's outcome.
    pub outcome: Option<SessionOutcome>,
    /// Every relay event.
    pub relay_events: Vec<RelayEvent>,
}

impl Flights {
    pub fn round_trips_after_handshake(&self) -> usize {
        self.relay_flights.saturating_sub(1)
    }
}

/// Runs one complete session in lockstep: each side answers everything it got
/// in one flight. Panics if it does not finish within 50 flights.
pub fn lockstep(
    device: &str,
    dev_storage: &dyn Storage,
    host: &StorageDocHost,
    assignment: &BTreeSet<DocId>,
) -> Flights {
    let mut dev = device_session(device, dev_storage);
    let mut relay = RelaySession::new(SessionConfig::default(), RELAY, device, assignment.clone());
    let mut f = Flights::default();
    let mut to_relay = Vec::new();
    f.frames_to_relay += drain(&mut to_relay, || dev.poll_transmit());
    for _ in 0..50 {
        f.bytes_to_relay += to_relay.len();
        relay
            .handle_input(&to_relay, host as &dyn DocHost)
            .expect("relay accepts the device's flight");
        host.storage().flush().expect("flush");
        while let Some(ev) = relay.poll_event() {
            f.relay_events.push(ev);
        }
        if f.outcome.is_some() {
            assert!(relay.is_closed(), "relay saw Bye");
            return f;
        }
        let mut to_device = Vec::new();
        f.frames_to_device += drain(&mut to_device, || relay.poll_transmit());
        f.bytes_to_device += to_device.len();
        f.relay_flights += 1;
        dev.handle_input(&to_device)
            .expect("device accepts the relay's flight");
        for ev in persist_device_events(&mut dev, dev_storage) {
            if let DeviceEvent::Finished(o) = ev {
                f.outcome = Some(o);
            }
        }
        to_relay.clear();
        f.frames_to_relay += drain(&mut to_relay, || dev.poll_transmit());
    }
    panic!("session of {device} did not finish in 50 flights: {f:?}");
}

/// A relay host over a fresh `MemStorage` holding `docs`, each a skeleton.
pub fn relay_with(docs: &[DocId]) -> (Arc<MemStorage>, StorageDocHost) {
    let storage = Arc::new(MemStorage::new());
    for d in docs {
        storage.append(d, &skeleton().save()).expect("append");
    }
    let host = StorageDocHost::new(storage.clone());
    (storage, host)
}

/// Makes a change directly on the relay's copy (as if another device had synced it).
pub fn relay_write(host: &StorageDocHost, doc: &DocId, actor_tag: u64, key: &str, value: &str) {
    host.with_doc(doc, &mut |am| {
        am.set_actor(actor(actor_tag));
        let mut tx = am.transaction();
        let visits = tx
            .get(ROOT, "visits")
            .expect("root get works")
            .expect("skeleton has visits")
            .1;
        tx.put(&visits, key, value).expect("map put works");
        tx.commit();
    })
    .expect("host writes");
}
