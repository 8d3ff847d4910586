//! Test drivers for the sans-IO sessions: the storage under test, a device
//! session over what a storage holds, and a lockstep driver that counts
//! flights. Events are persisted and frames released by `minqing_sync`'s own
//! `device_step` / `relay_step` (the one place of the durability rule).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

pub use crate::backend::{TestStorage, new_storage};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ROOT, ReadDoc};
use minqing_sync::{
    DeviceEvent, DeviceSession, DocHost, DocId, Incarnation, RelayEvent, RelaySession,
    SessionConfig, SessionOutcome, Storage, StorageDocHost, apply_device_event, device_actor,
    device_docs, device_step, load_doc, relay_step,
};

/// A file of minqing-sync's `tests/data`, compiled in (the suite also runs
/// from minqing-store's tests, whose manifest directory is another).
pub fn test_data(name: &str) -> Vec<u8> {
    let bytes: &[u8] = match name {
        "inconsistent-change.msg" => include_bytes!("../../../data/inconsistent-change.msg"),
        "malformed-document-chunk.msg" => {
            include_bytes!("../../../data/malformed-document-chunk.msg")
        }
        "start-op-below-deps.msg" => include_bytes!("../../../data/start-op-below-deps.msg"),
        "village.automerge" => include_bytes!("../../../data/village.automerge"),
        other => panic!("no test data named {other}"),
    };
    bytes.to_vec()
}

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
    let docs = device_docs(storage, RELAY).expect("test storage loads");
    DeviceSession::new(SessionConfig::default(), device, docs).expect("session starts")
}

/// Persists every pending device event (as `minqing_sync::device_step` does)
/// and flushes; returns them.
pub fn persist_device_events(s: &mut DeviceSession, storage: &dyn Storage) -> Vec<DeviceEvent> {
    let mut out = Vec::new();
    while let Some(ev) = s.poll_event() {
        apply_device_event(storage, RELAY, &ev).expect("test storage persists");
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
        let up = relay_step(&mut relay, host, &**host.storage(), &to_relay).expect("relay flushes");
        up.result.expect("relay accepts the device's flight");
        f.relay_events.extend(up.events);
        if f.outcome.is_some() {
            assert!(relay.is_closed(), "relay saw Bye");
            return f;
        }
        f.frames_to_device += up.frames.len();
        let to_device = up.frames.concat();
        f.bytes_to_device += to_device.len();
        f.relay_flights += 1;
        let down = device_step(&mut dev, dev_storage, RELAY, &to_device).expect("device flushes");
        down.result.expect("device accepts the relay's flight");
        if down.outcome.is_some() {
            f.outcome = down.outcome;
        }
        f.frames_to_relay += down.frames.len();
        to_relay = down.frames.concat();
    }
    panic!("session of {device} did not finish in 50 flights: {f:?}");
}

/// A relay host over a fresh `TestStorage` holding `docs`, each a skeleton.
pub fn relay_with(docs: &[DocId]) -> (Arc<TestStorage>, StorageDocHost) {
    let storage = Arc::new(new_storage());
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
