//! A device that sends changes it should not: another laptop's actor, a
//! compression bomb, changes whose dependencies never come, garbage chunks
//! inside a well-formed sync message. Driven at the sans-IO level with
//! hand-made frames (issue 9, findings 1, 2 and 6). Self-contained: it uses only
//! `RelaySession`, `DeviceSession`, `StorageDocHost` and the frame codec.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::support::{TestStorage, new_storage};
use automerge::sync::{ChunkList, Have, Message, MessageVersion};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ROOT, ReadDoc};
use minqing_sync::frame::{DocHeads, Frame, FrameDecoder, Heads};
use minqing_sync::{
    DeviceSession, DocHost, DocId, DocOutcome, RelaySession, SessionConfig, Storage,
    StorageDocHost, device_docs, device_step, relay_step,
};

const RELAY: &str = "county";

fn v1() -> DocId {
    DocId::new("V1").expect("valid id")
}

/// A relay holding V1 = a skeleton with a `visits` map.
fn relay() -> (Arc<TestStorage>, StorageDocHost) {
    let storage = Arc::new(new_storage());
    let mut am = Automerge::new().with_actor(ActorId::from(&b"relay-actor-0000"[..]));
    let mut tx = am.transaction();
    tx.put_object(ROOT, "visits", ObjType::Map).expect("put");
    tx.commit();
    storage.append(&v1(), &am.save()).expect("append");
    let host = StorageDocHost::new(storage.clone());
    (storage, host)
}

/// The relay's V1 with one more change by `actor` (a visit `key`), and that change's bytes.
fn change_by(host: &StorageDocHost, actor: &[u8], key: &str, value: &str) -> (Automerge, Vec<u8>) {
    let mut am = host
        .snapshot(&v1())
        .expect("relay doc")
        .with_actor(ActorId::from(actor));
    let visits = am.get(ROOT, "visits").expect("get").expect("visits").1;
    let mut tx = am.transaction();
    tx.put(&visits, key, value).expect("put");
    tx.commit();
    let change = am
        .get_last_local_change()
        .expect("just made")
        .raw_bytes()
        .to_vec();
    (am, change)
}

/// A sync message carrying `chunks` as its changes.
fn message(heads: Vec<automerge::ChangeHash>, chunks: Vec<Vec<u8>>) -> Vec<u8> {
    Message {
        heads,
        need: Vec::new(),
        have: vec![Have::default()],
        changes: ChunkList::from(chunks),
        flags: None,
        version: MessageVersion::V1,
    }
    .encode()
}

/// Runs `device`'s Hello plus one Sync of V1 carrying `msg` through a relay
/// session; returns the frames the relay answered.
fn send(host: &StorageDocHost, device: &str, msg: Vec<u8>) -> Vec<Frame> {
    let mut relay = RelaySession::new(
        SessionConfig::default(),
        RELAY,
        device,
        BTreeSet::from([v1()]),
    );
    let heads = host.heads(&v1()).expect("heads");
    let mut bytes = Frame::hello(
        device,
        vec![DocHeads {
            doc: v1(),
            heads: Heads::List(heads),
        }],
    )
    .encode()
    .expect("small");
    bytes.extend(
        Frame::Sync {
            doc: v1(),
            message: msg,
        }
        .encode()
        .expect("fits"),
    );
    // The relay may end the session with an error: what matters is what it kept.
    let _ = relay.handle_input(&bytes, host as &dyn DocHost);
    let mut dec = FrameDecoder::default();
    while let Some(f) = relay.poll_transmit() {
        dec.push(&f);
    }
    let mut frames = Vec::new();
    while let Ok(Some(f)) = dec.next_frame() {
        frames.push(f);
    }
    frames
}

fn refused(frames: &[Frame]) -> Option<String> {
    frames.iter().find_map(|f| match f {
        Frame::Refused { reason, .. } => Some(reason.clone()),
        Frame::Error { message, .. } => Some(message.clone()),
        _ => None,
    })
}

/// A full device session of `device` over `storage` (lockstep); its outcome for V1.
fn sync(device: &str, storage: &TestStorage, host: &StorageDocHost) -> DocOutcome {
    let docs = device_docs(storage, RELAY).expect("loads");
    let mut dev = DeviceSession::new(SessionConfig::default(), device, docs).expect("starts");
    let mut relay = RelaySession::new(
        SessionConfig::default(),
        RELAY,
        device,
        BTreeSet::from([v1()]),
    );
    let mut up: Vec<u8> = std::iter::from_fn(|| dev.poll_transmit())
        .flatten()
        .collect();
    for _ in 0..20 {
        let r = relay_step(&mut relay, host, &**host.storage(), &up).expect("flush");
        r.result.expect("relay session");
        let d = device_step(&mut dev, storage, RELAY, &r.frames.concat()).expect("persists");
        d.result.expect("device session");
        if let Some(o) = d.outcome {
            return o.docs[&v1()].clone();
        }
        up = d.frames.concat();
    }
    panic!("{device}'s session did not finish");
}

/// A laptop holding the relay's V1 and writing one visit as itself (bare id actor).
fn laptop(host: &StorageDocHost, device: &str, key: &str) -> (TestStorage, automerge::ChangeHash) {
    let storage = new_storage();
    storage
        .append(&v1(), &host.snapshot(&v1()).expect("doc").save())
        .expect("append");
    let (am, _) = change_by(host, device.as_bytes(), key, "走访");
    let hash = am.get_heads()[0];
    storage.append(&v1(), &am.save()).expect("append");
    (storage, hash)
}

#[test]
fn a_change_written_as_another_laptop_is_refused_and_that_laptop_keeps_syncing() {
    let (_s, host) = relay();
    // d2 forges a change as d1 (d1's actor, d1's next sequence number).
    let (forged, change) = change_by(&host, b"d1", "forged", "伪造");
    let answer = send(&host, "d2", message(forged.get_heads(), vec![change]));
    let relay_doc = host.snapshot(&v1()).expect("relay doc");
    assert!(
        relay_doc
            .get_change_by_hash(&forged.get_heads()[0])
            .is_none(),
        "the relay stored a change d2 wrote as d1; it answered {answer:?}"
    );
    let reason = refused(&answer).expect("d2 is told");
    assert!(reason.contains("not this laptop's"), "{reason}");
    // d1 writes its own first change (the same actor and sequence number) and syncs.
    let (d1, mine) = laptop(&host, "d1", "mine");
    let outcome = sync("d1", &d1, &host);
    assert!(
        matches!(outcome, DocOutcome::InSync { .. }),
        "d1 cannot sync after d2's forgery: {outcome:?}"
    );
    let relay_doc = host.snapshot(&v1()).expect("relay doc");
    assert!(relay_doc.get_change_by_hash(&mine).is_some());
}

#[test]
fn a_compression_bomb_is_refused_without_being_stored() {
    let (s, host) = relay();
    let before = s.load(&v1()).expect("load").expect("held").len();
    // 20 MiB of one letter: about 20 KB compressed.
    let mut am = host
        .snapshot(&v1())
        .expect("doc")
        .with_actor(ActorId::from(&b"d1"[..]));
    let visits = am.get(ROOT, "visits").expect("get").expect("visits").1;
    let mut tx = am.transaction();
    tx.put(&visits, "bomb", "a".repeat(20 << 20)).expect("put");
    tx.commit();
    let mut change = am.get_last_local_change().expect("made").clone();
    let compressed = change.bytes().to_vec();
    assert!(compressed.len() < 200_000, "{} bytes", compressed.len());
    let answer = send(&host, "d1", message(am.get_heads(), vec![compressed]));
    let after = s.load(&v1()).expect("load").expect("held").len();
    assert_eq!(
        after,
        before,
        "the relay stored a change that inflates to 20 MiB; it answered {:?}",
        refused(&answer)
    );
    let reason = refused(&answer).expect("d1 is told");
    assert!(reason.contains("exceeds the limit"), "{reason}");
}

#[test]
fn changes_waiting_for_missing_dependencies_never_reach_the_shared_document() {
    let (_s, host) = relay();
    // A chain of 3 changes by d1; the first is withheld, so the other two wait.
    let mut am = host
        .snapshot(&v1())
        .expect("doc")
        .with_actor(ActorId::from(&b"d1"[..]));
    let visits = am.get(ROOT, "visits").expect("get").expect("visits").1;
    let mut chain = Vec::new();
    for i in 0..3 {
        let mut tx = am.transaction();
        tx.put(&visits, format!("k{i}"), "走访").expect("put");
        tx.commit();
        chain.push(
            am.get_last_local_change()
                .expect("made")
                .raw_bytes()
                .to_vec(),
        );
    }
    send(&host, "d1", message(am.get_heads(), chain[1..].to_vec()));
    // The session is over: the relay's document holds no orphans, and saving
    // it costs what it did.
    let relay_doc = host.snapshot(&v1()).expect("relay doc");
    assert!(
        relay_doc.get_missing_deps(&[]).is_empty(),
        "the relay keeps changes whose dependencies never came: {:?}",
        relay_doc.get_missing_deps(&[])
    );
    let saved = relay_doc.save().len();
    let fresh = relay().1.snapshot(&v1()).expect("doc").save().len();
    assert_eq!(saved, fresh);
}

#[test]
fn too_many_changes_waiting_for_dependencies_are_refused() {
    let (_s, host) = relay();
    let mut am = host
        .snapshot(&v1())
        .expect("doc")
        .with_actor(ActorId::from(&b"d1"[..]));
    let visits = am.get(ROOT, "visits").expect("get").expect("visits").1;
    let mut chain = Vec::new();
    for i in 0..1100 {
        let mut tx = am.transaction();
        tx.put(&visits, format!("k{i}"), "x").expect("put");
        tx.commit();
        chain.push(
            am.get_last_local_change()
                .expect("made")
                .raw_bytes()
                .to_vec(),
        );
    }
    let answer = send(&host, "d1", message(am.get_heads(), chain[1..].to_vec()));
    let reason = refused(&answer).expect("refused");
    assert!(reason.contains("missing dependencies"), "{reason}");
}

#[test]
fn garbage_chunks_inside_a_well_formed_message_are_refused_not_ignored() {
    let (s, host) = relay();
    let before = s.load(&v1()).expect("load").expect("held").len();
    let (am, change) = change_by(&host, b"d1", "k", "走访");
    let answer = send(
        &host,
        "d1",
        message(
            am.get_heads(),
            vec![change, b"\x85\x6f\x4a\x83garbage".to_vec()],
        ),
    );
    let after = s.load(&v1()).expect("load").expect("held").len();
    let told = refused(&answer);
    assert!(
        told.is_some() && after == before,
        "a message with a garbage chunk was accepted: stored {} new bytes, answered {answer:?}",
        after - before
    );
}

#[test]
fn a_village_that_does_not_load_on_the_relay_is_refused_and_the_others_sync() {
    let (s, host) = relay();
    let v2 = DocId::new("V2").expect("valid id");
    s.append(&v2, b"\x85\x6f\x4a\x83 not an automerge document")
        .expect("append");
    let dev = new_storage();
    let mut d = DeviceSession::new(SessionConfig::default(), "d1", Vec::new()).expect("starts");
    let mut r = RelaySession::new(
        SessionConfig::default(),
        RELAY,
        "d1",
        BTreeSet::from([v1(), v2.clone()]),
    );
    let mut outcome = None;
    let mut up: Vec<u8> = std::iter::from_fn(|| d.poll_transmit()).flatten().collect();
    for _ in 0..10 {
        let rs = relay_step(&mut r, &host, &*s, &up).expect("flush");
        rs.result
            .expect("one broken village does not end the relay's session");
        let ds = device_step(&mut d, &dev, RELAY, &rs.frames.concat()).expect("persists");
        ds.result.expect("device session");
        outcome = ds.outcome;
        if outcome.is_some() {
            break;
        }
        up = ds.frames.concat();
    }
    let outcome = outcome.expect("the session finishes");
    assert!(matches!(outcome.docs[&v1()], DocOutcome::Added { .. }));
    match &outcome.docs[&v2] {
        DocOutcome::Refused { reason } => assert!(reason.contains("does not load"), "{reason}"),
        other => panic!("V2 should be refused as quarantined: {other:?}"),
    }
    assert!(dev.load(&v2).expect("load").is_none());
}
