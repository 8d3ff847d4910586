//! A village whose sync message is larger than the frame limit crosses in
//! pieces (`SyncPart`, protocol 3), both ways. The limit is lowered to 64 KiB
//! so that the test stays small; the protocol's is 64 MiB. Self-contained.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::support::{TestStorage, new_storage};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ROOT, ReadDoc};
use minqing_sync::{
    DeviceSession, DocId, RelaySession, SessionConfig, Storage, StorageDocHost, device_docs,
    device_step, load_doc, relay_step,
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
fn sync(device: &str, storage: &TestStorage, host: &StorageDocHost) -> (usize, bool) {
    let docs = device_docs(storage, RELAY).expect("loads");
    let mut dev = DeviceSession::new(config(), device, docs).expect("starts");
    let mut relay = RelaySession::new(config(), RELAY, device, BTreeSet::from([v1()]));
    let mut frames = 0;
    let mut up: Vec<Vec<u8>> = std::iter::from_fn(|| dev.poll_transmit()).collect();
    for _ in 0..20 {
        for f in &up {
            assert!(f.len() <= FRAME + 4, "a frame of {} bytes", f.len());
        }
        let r = relay_step(&mut relay, host, &**host.storage(), &up.concat()).expect("flush");
        r.result.expect("the relay takes the device's flight");
        for f in &r.frames {
            assert!(f.len() <= FRAME + 4, "a frame of {} bytes", f.len());
        }
        frames += r.frames.len();
        let d = device_step(&mut dev, storage, RELAY, &r.frames.concat()).expect("persists");
        d.result.expect("the device takes the relay's flight");
        if d.outcome.is_some() {
            return (frames, true);
        }
        up = d.frames;
    }
    (frames, false)
}

#[test]
fn a_village_larger_than_a_frame_crosses_in_pieces_both_ways() {
    let storage = Arc::new(new_storage());
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
    let dev = new_storage();
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
