//! A village whose sync message is larger than the frame limit crosses in
//! pieces (`SyncPart`, protocol 3), both ways. The limit is lowered to 64 KiB
//! so that the test stays small; the protocol's is 64 MiB. Self-contained.

use std::collections::BTreeSet;
use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ROOT, ReadDoc};
use minqing_sync::{
    DeviceEvent, DeviceSession, DocHost, DocId, MemStorage, RelaySession, SessionConfig, Storage,
    StorageDocHost, load_doc,
};

const RELAY: &str = "county";
const FRAME: usize = 64 * 1024;

fn config() -> SessionConfig {
    SessionConfig {
        max_frame_len: FRAME,
        ..SessionConfig::default()
    }
}

fn v1() -> DocId {
    DocId::new("V1").expect("valid id")
}

/// `n` visits of ~450 bytes of poorly compressible text, by `actor`.
fn write_visits(am: &mut Automerge, actor: &[u8], n: usize, seed: u64) {
    am.set_actor(ActorId::from(actor));
    let visits = am.get(ROOT, "visits").expect("get").expect("visits").1;
    let mut x = seed;
    for i in 0..n {
        let note: String = (0..150)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                char::from_u32(0x4e00 + ((x >> 33) % 3000) as u32).unwrap_or('好')
            })
            .collect();
        let mut tx = am.transaction();
        tx.put(&visits, format!("{seed}-{i}"), note).expect("put");
        tx.commit();
    }
}

/// Runs a lockstep session; returns (frames to the device, outcome reached).
fn sync(device: &str, storage: &MemStorage, host: &StorageDocHost) -> (usize, bool) {
    let docs = storage
        .docs()
        .expect("docs")
        .into_iter()
        .map(|id| {
            let am = load_doc(storage, &id).expect("loads").expect("held");
            let st = storage.sync_state(RELAY, &id).expect("state");
            (id, am, st)
        })
        .collect();
    let mut dev = DeviceSession::new(config(), device, docs).expect("starts");
    let mut relay = RelaySession::new(config(), RELAY, device, BTreeSet::from([v1()]));
    let mut frames = 0;
    for _ in 0..20 {
        let mut up = Vec::new();
        while let Some(f) = dev.poll_transmit() {
            assert!(f.len() <= FRAME + 4, "a frame of {} bytes", f.len());
            up.extend(f);
        }
        relay
            .handle_input(&up, host as &dyn DocHost)
            .expect("the relay takes the device's flight");
        let mut down = Vec::new();
        while let Some(f) = relay.poll_transmit() {
            assert!(f.len() <= FRAME + 4, "a frame of {} bytes", f.len());
            frames += 1;
            down.extend(f);
        }
        dev.handle_input(&down)
            .expect("the device takes the relay's flight");
        while let Some(ev) = dev.poll_event() {
            match ev {
                DeviceEvent::DocChanged { doc, bytes } | DeviceEvent::DocAdded { doc, bytes } => {
                    storage.append(&doc, &bytes).expect("append")
                }
                DeviceEvent::SyncState { doc, state } => {
                    storage.set_sync_state(RELAY, &doc, &state).expect("state")
                }
                DeviceEvent::Finished(_) => return (frames, true),
                _ => {}
            }
        }
    }
    (frames, false)
}

#[test]
fn a_village_larger_than_a_frame_crosses_in_pieces_both_ways() {
    let storage = Arc::new(MemStorage::new());
    let mut am = Automerge::new().with_actor(ActorId::from(&b"relay-actor-0000"[..]));
    let mut tx = am.transaction();
    tx.put_object(ROOT, "visits", ObjType::Map).expect("put");
    tx.commit();
    // ~1,200 visits × 450 B: the whole village saves to several frames' worth.
    write_visits(&mut am, b"relay-actor-0000", 1200, 1);
    let saved = am.save();
    assert!(saved.len() > 2 * FRAME, "{} bytes", saved.len());
    storage.append(&v1(), &saved).expect("append");
    let host = StorageDocHost::new(storage);

    // A new laptop gets it whole: in pieces.
    let dev = MemStorage::new();
    let (frames, done) = sync("d1", &dev, &host);
    assert!(
        done,
        "the initial sync of a village larger than a frame failed"
    );
    assert!(frames > 2, "{frames} frames");
    let local = load_doc(&dev, &v1()).expect("loads").expect("held");
    assert_eq!(local.get_heads(), host.heads(&v1()).expect("heads"));

    // A day of long notes on the laptop goes up in pieces too.
    let mut local = local;
    write_visits(&mut local, b"d1", 200, 2);
    dev.remove(&v1()).expect("remove");
    dev.append(&v1(), &local.save()).expect("append");
    let (_, done) = sync("d1", &dev, &host);
    assert!(done, "the laptop's large first flight failed");
    assert_eq!(local.get_heads(), host.heads(&v1()).expect("heads"));
}
