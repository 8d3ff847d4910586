//! Session behaviour at the edges: version mismatch, frames out of order,
//! unassigned villages refused while the rest syncs, and hostile input that must
//! end a session with an error, never a panic.

use std::collections::BTreeSet;

use super::support;
use super::support::*;
use minqing_sync::frame::{DocHeads, ErrorCode, Frame, Heads, PROTOCOL_VERSION};
use minqing_sync::{
    DeviceEvent, DocHost, DocOutcome, RelayEvent, RelaySession, SessionConfig, SessionError,
    Storage, load_doc,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn error_frame(bytes: &[u8]) -> Frame {
    let mut dec = minqing_sync::FrameDecoder::default();
    dec.push(bytes);
    dec.next_frame()
        .expect("valid frame")
        .expect("complete frame")
}

#[test]
fn relay_names_both_versions_when_the_device_is_newer() {
    let (_s, host) = relay_with(&[]);
    let mut relay = RelaySession::new(SessionConfig::default(), RELAY, "d1", BTreeSet::new());
    let mut hello = Frame::hello("d1", vec![]).encode().expect("encodes");
    hello[9..11].copy_from_slice(&(PROTOCOL_VERSION + 1).to_be_bytes());
    let err = relay
        .handle_input(&hello, &host)
        .expect_err("other version");
    assert!(
        matches!(err, SessionError::Version { theirs, ours } if theirs == PROTOCOL_VERSION + 1 && ours == PROTOCOL_VERSION)
    );
    let Frame::Error { code, message } = error_frame(&relay.poll_transmit().expect("error frame"))
    else {
        panic!("expected an Error frame")
    };
    assert_eq!(code, ErrorCode::Version);
    assert!(
        message.contains(&format!("protocol {PROTOCOL_VERSION}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}", PROTOCOL_VERSION + 1)),
        "{message}"
    );
    // The device reads it as a clear remote error.
    let mut dev = device_session("d1", &new_storage());
    let e = dev.handle_input(
        &Frame::Error {
            code,
            message: message.clone(),
        }
        .encode()
        .expect("enc"),
    );
    assert!(matches!(
        e,
        Err(SessionError::Remote {
            code: ErrorCode::Version,
            ..
        })
    ));
}

#[test]
fn sync_before_hello_and_wrong_device_name_end_the_session() {
    let d = doc_id("V1");
    let (_s, host) = relay_with(std::slice::from_ref(&d));
    let mut relay = RelaySession::new(SessionConfig::default(), RELAY, "d1", [d.clone()].into());
    let sync = Frame::Sync {
        doc: d.clone(),
        message: vec![0x42, 0, 0, 0, 0],
    };
    let e = relay.handle_input(&sync.encode().expect("enc"), &host);
    assert!(matches!(e, Err(SessionError::Protocol(_))), "{e:?}");
    assert!(relay.handle_input(&[], &host).is_err(), "stays closed");

    let mut relay = RelaySession::new(SessionConfig::default(), RELAY, "d1", [d].into());
    let hello = Frame::hello("d2", vec![]);
    let e = relay.handle_input(&hello.encode().expect("enc"), &host);
    assert!(matches!(e, Err(SessionError::Unauthorized(_))), "{e:?}");
    let Frame::Error { code, .. } = error_frame(&relay.poll_transmit().expect("error frame"))
    else {
        panic!("expected an Error frame")
    };
    assert_eq!(code, ErrorCode::Unauthorized);
}

#[test]
fn device_rejects_a_village_the_relay_did_not_assign() {
    let dev_store = new_storage();
    let mut dev = device_session("d1", &dev_store);
    while dev.poll_transmit().is_some() {}
    let bytes = Frame::Welcome {
        version: PROTOCOL_VERSION,
        relay: RELAY.into(),
        docs: vec![],
    }
    .encode()
    .expect("enc");
    // A Welcome with no villages finishes the session at once.
    dev.handle_input(&bytes).expect("welcome ok");
    let events = persist_device_events(&mut dev, &dev_store);
    assert!(matches!(events.last(), Some(DeviceEvent::Finished(_))));
    assert!(dev.is_closed());

    let mut dev = device_session("d1", &dev_store);
    let welcome = Frame::Welcome {
        version: PROTOCOL_VERSION,
        relay: RELAY.into(),
        docs: vec![DocHeads {
            doc: doc_id("V1"),
            heads: Heads::List(vec![]),
        }],
    };
    dev.handle_input(&welcome.encode().expect("enc"))
        .expect("welcome ok");
    let e = dev.handle_input(
        &Frame::Sync {
            doc: doc_id("V9"),
            message: vec![0x42],
        }
        .encode()
        .expect("enc"),
    );
    assert!(matches!(e, Err(SessionError::Protocol(_))), "{e:?}");
}

#[test]
fn a_change_to_an_unassigned_village_is_refused_and_the_rest_syncs() {
    let v1 = doc_id("V1");
    let v2 = doc_id("V2");
    let (_s, host) = relay_with(&[v1.clone(), v2.clone()]);
    let dev = new_storage();
    // The device got both once.
    let both: BTreeSet<_> = [v1.clone(), v2.clone()].into();
    lockstep("d1", &dev, &host, &both);
    // V2 is taken away; the device wrote to both meanwhile.
    local_write(&dev, &v1, "d1", "a", "甲");
    local_write(&dev, &v2, "d1", "b", "乙");
    let only_v1: BTreeSet<_> = [v1.clone()].into();
    let f = lockstep("d1", &dev, &host, &only_v1);
    let outcome = f.outcome.expect("finishes");
    assert!(matches!(outcome.docs[&v1], DocOutcome::InSync { .. }));
    assert_eq!(outcome.docs[&v2], DocOutcome::Removed);
    assert!(
        f.relay_events.iter().any(|e| matches!(e, RelayEvent::Refused { doc, change_bytes } if *doc == v2 && *change_bytes > 0)),
        "{:?}",
        f.relay_events
    );
    // V1's change reached the relay, V2's did not, and the device no longer holds V2.
    assert_eq!(
        load_doc(&dev, &v1)
            .expect("load")
            .expect("held")
            .get_heads(),
        host.heads(&v1).expect("heads")
    );
    let relay_v2 = host.snapshot(&v2).expect("snapshot");
    assert_eq!(relay_v2.get_heads(), support::skeleton().get_heads());
    assert_eq!(dev.docs().expect("docs"), vec![v1]);
}

#[test]
fn hostile_sync_messages_end_the_session_without_panic() {
    let d = doc_id("V1");
    let (_s, host) = relay_with(std::slice::from_ref(&d));
    let mut rng = StdRng::seed_from_u64(7);
    let valid = {
        // A real first message, to mutate.
        let dev = new_storage();
        dev.append(&d, &support::skeleton().save()).expect("append");
        local_write(&dev, &d, "d1", "k", "v");
        let mut s = device_session("d1", &dev);
        let _hello = s.poll_transmit().expect("hello");
        let Frame::Sync { message, .. } = error_frame(&s.poll_transmit().expect("sync")) else {
            panic!("expected Sync")
        };
        message
    };
    let hello = Frame::hello(
        "d1",
        vec![DocHeads {
            doc: d.clone(),
            heads: Heads::List(vec![]),
        }],
    )
    .encode()
    .expect("enc");
    for round in 0..2000 {
        let mut msg = valid.clone();
        match round % 3 {
            0 => {
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..msg.len());
                    msg[at] ^= 1 << rng.random_range(0..8);
                }
            }
            1 => msg.truncate(rng.random_range(0..msg.len())),
            _ => msg = (0..rng.random_range(0..80)).map(|_| rng.random()).collect(),
        }
        let mut relay =
            RelaySession::new(SessionConfig::default(), RELAY, "d1", [d.clone()].into());
        relay
            .handle_input(&hello, &host as &dyn DocHost)
            .expect("hello ok");
        let _ = relay.handle_input(
            &Frame::Sync {
                doc: d.clone(),
                message: msg.clone(),
            }
            .encode()
            .expect("enc"),
            &host,
        );
        // and the device side
        let dev = new_storage();
        let mut s = device_session("d1", &dev);
        let mut bytes = Frame::Welcome {
            version: PROTOCOL_VERSION,
            relay: RELAY.into(),
            docs: vec![DocHeads {
                doc: d.clone(),
                heads: Heads::List(vec![]),
            }],
        }
        .encode()
        .expect("enc");
        bytes.extend(
            Frame::Sync {
                doc: d.clone(),
                message: msg,
            }
            .encode()
            .expect("enc"),
        );
        let _ = s.handle_input(&bytes);
    }
}

/// A v1 sync message with no heads, needs or changes and one `have` entry
/// (no last sync) whose Bloom filter is `bloom` in automerge's wire form.
fn message_with_bloom(bloom: &[u8]) -> Vec<u8> {
    let mut m = vec![0x42, 0x00, 0x00, 0x01, 0x00];
    m.push(u8::try_from(bloom.len()).expect("short filter"));
    m.extend_from_slice(bloom);
    m.push(0x00);
    m
}

/// Found by the `relay_session` fuzz target (crates/minqing-fuzz/crashers):
/// automerge 0.12 takes each probe of a peer's Bloom filter modulo its bit
/// count, so a filter with entries but zero bits per entry made the relay
/// panic ("attempt to calculate the remainder with a divisor of zero"); and it
/// reserves one slot per probe, so a filter asking for 2^32 probes would abort
/// the relay on a 16 GiB allocation. Both are refused as bad messages now.
#[test]
fn a_bloom_filter_that_would_crash_automerge_is_refused() {
    let d = doc_id("V1");
    let (_s, host) = relay_with(std::slice::from_ref(&d));
    // The relay has changes the device lacks, so it consults the filter.
    relay_write(&host, &d, 2, "k", "v");
    let hello = Frame::hello(
        "d1",
        vec![DocHeads {
            doc: d.clone(),
            heads: Heads::List(vec![]),
        }],
    )
    .encode()
    .expect("enc");
    let zero_bits = [0x01, 0x00, 0x07]; // 1 entry, 0 bits per entry, 7 probes, no bits
    let many_probes = [0x01, 0x08, 0x80, 0xAD, 0xE2, 0x04, 0x00]; // 10,000,000 probes, 1 byte of bits
    for bloom in [&zero_bits[..], &many_probes[..]] {
        let mut relay =
            RelaySession::new(SessionConfig::default(), RELAY, "d1", [d.clone()].into());
        relay.handle_input(&hello, &host).expect("hello ok");
        while relay.poll_transmit().is_some() {}
        let sync = Frame::Sync {
            doc: d.clone(),
            message: message_with_bloom(bloom),
        };
        let e = relay.handle_input(&sync.encode().expect("enc"), &host);
        assert!(
            matches!(&e, Err(SessionError::BadMessage { detail, .. }) if detail.contains("Bloom filter")),
            "{bloom:02x?}: {e:?}"
        );
        assert!(relay.is_closed());
    }
    // The same filter sent to a device is refused the same way.
    let dev = new_storage();
    let mut s = device_session("d1", &dev);
    let mut bytes = Frame::Welcome {
        version: PROTOCOL_VERSION,
        relay: RELAY.into(),
        docs: vec![DocHeads {
            doc: d.clone(),
            heads: Heads::List(vec![]),
        }],
    }
    .encode()
    .expect("enc");
    bytes.extend(
        Frame::Sync {
            doc: d.clone(),
            message: message_with_bloom(&zero_bits),
        }
        .encode()
        .expect("enc"),
    );
    assert!(s.handle_input(&bytes).is_err());
}

/// Found by the `sync_message` fuzz target (crates/minqing-fuzz/crashers):
/// a sync message carrying a document chunk whose columns are malformed (with
/// a valid checksum) made automerge 0.12 / hexane 1.0.0-alpha.5 panic
/// (`RleValue::unpack`: "called `Result::unwrap()` on an `Err` value:
/// InvalidNumber"), on the relay and on a device. The relay now refuses
/// whole-document chunks from a device before automerge sees them; a device
/// (which does receive whole documents from the relay) ends the session with
/// a bad-message error instead of panicking.
#[test]
fn a_malformed_document_chunk_ends_the_session_without_panic() {
    let msg = test_data("malformed-document-chunk.msg");
    let d = doc_id("V2");
    // The relay holds nothing of V2 yet.
    let storage = std::sync::Arc::new(new_storage());
    let host = minqing_sync::StorageDocHost::new(storage.clone());
    let mut relay = RelaySession::new(SessionConfig::default(), RELAY, "d1", [d.clone()].into());
    let hello = Frame::hello("d1", vec![]);
    relay
        .handle_input(&hello.encode().expect("enc"), &host)
        .expect("hello ok");
    while relay.poll_transmit().is_some() {}
    let sync = Frame::Sync {
        doc: d.clone(),
        message: msg.clone(),
    };
    // Refused (the village, not the session), nothing stored.
    let _ = relay.handle_input(&sync.encode().expect("enc"), &host);
    assert_eq!(storage.load(&d).expect("memory"), None, "nothing stored");
    assert!(host.heads(&d).expect("memory").is_empty());
    // The same message from a relay ends a device's session with an error.
    let dev = new_storage();
    let mut s = device_session("d1", &dev);
    let mut bytes = Frame::Welcome {
        version: PROTOCOL_VERSION,
        relay: RELAY.into(),
        docs: vec![DocHeads {
            doc: d.clone(),
            heads: Heads::List(vec![]),
        }],
    }
    .encode()
    .expect("enc");
    bytes.extend(
        Frame::Sync {
            doc: d,
            message: msg,
        }
        .encode()
        .expect("enc"),
    );
    let e = s.handle_input(&bytes);
    assert!(
        matches!(&e, Err(SessionError::BadMessage { detail, .. }) if detail.contains("automerge")),
        "{e:?}"
    );
}

/// Found by the `sync_message` fuzz target (crates/minqing-fuzz/crashers):
/// a change whose ops do not fit its own metadata (valid checksum) made
/// automerge 0.12 panic halfway through applying it (`import_ops`: "called
/// `Option::unwrap()` on a `None` value"), leaving the relay's copy of the
/// village half-changed: every later use of that village panicked too
/// (`save_after`: "MissingOps"), for every device, until a restart. (The
/// relay's actor check now refuses this particular change first.) The host
/// puts the village back as storage holds it when automerge panics inside
/// `try_with_doc`, and an honest device still syncs it.
#[test]
fn a_change_automerge_cannot_apply_does_not_break_the_village() {
    let data = test_data;
    let village = data("village.automerge");
    let d = doc_id("V001");
    let storage = std::sync::Arc::new(new_storage());
    storage.append(&d, &village).expect("append");
    let host = minqing_sync::StorageDocHost::new(storage.clone());
    let heads = host.heads(&d).expect("loads");
    let msg = automerge::sync::Message::decode(&data("inconsistent-change.msg")).expect("decodes");
    let mut msg = Some(msg);
    let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        host.try_with_doc(&d, &mut |am| {
            use automerge::sync::SyncDoc;
            let mut state = automerge::sync::State::new();
            let m = msg.take().expect("one call");
            am.receive_sync_message(&mut state, m).is_ok()
        })
    }));
    assert!(applied.is_err(), "automerge 0.12 panics on this change");
    assert_eq!(
        storage.load(&d).expect("memory"),
        Some(village),
        "nothing stored"
    );
    assert_eq!(host.heads(&d).expect("reloads"), heads);
    // An honest device that holds nothing gets the whole village.
    let dev = new_storage();
    let mut s = device_session("d2", &dev);
    let mut relay = RelaySession::new(SessionConfig::default(), RELAY, "d2", [d.clone()].into());
    for _ in 0..16 {
        let mut up = Vec::new();
        while let Some(b) = s.poll_transmit() {
            up.extend(b);
        }
        relay.handle_input(&up, &host).expect("relay serves d2");
        let mut down = Vec::new();
        while let Some(b) = relay.poll_transmit() {
            down.extend(b);
        }
        if down.is_empty() {
            break;
        }
        s.handle_input(&down).expect("d2 syncs");
    }
    persist_device_events(&mut s, &dev);
    let got = load_doc(&dev, &d).expect("loads").expect("d2 holds V001");
    assert_eq!(got.get_heads(), heads);
}

/// Found by the `sync_message` fuzz target (crates/minqing-fuzz/crashers):
/// a device's own change (right actor, valid schema) whose op counter starts
/// below the last op of the change it depends on. automerge 0.12 applies it,
/// but `save()` then writes a village that does not load ("error inflating
/// document chunk ops: mismatching heads"), so no laptop that holds nothing
/// could get the village any more. The relay now refuses such a change.
#[test]
fn a_change_counting_its_ops_below_its_dependencies_is_refused() {
    let data = test_data;
    let village = data("village.automerge");
    let d = doc_id("V001");
    let storage = std::sync::Arc::new(new_storage());
    storage.append(&d, &village).expect("append");
    let host = minqing_sync::StorageDocHost::new(storage.clone());
    let heads = host.heads(&d).expect("loads");
    let device = "aaaaaaaaaaaaaaaa";
    let mut relay = RelaySession::new(SessionConfig::default(), RELAY, device, [d.clone()].into());
    let hello = Frame::hello(device, vec![]);
    relay
        .handle_input(&hello.encode().expect("enc"), &host)
        .expect("hello ok");
    while relay.poll_transmit().is_some() {}
    let sync = Frame::Sync {
        doc: d.clone(),
        message: data("start-op-below-deps.msg"),
    };
    relay
        .handle_input(&sync.encode().expect("enc"), &host)
        .expect("a refused village does not end the session");
    let refused = std::iter::from_fn(|| relay.poll_transmit())
        .map(|b| error_frame(&b))
        .find_map(|f| match f {
            Frame::Refused { reason, .. } => Some(reason),
            _ => None,
        });
    assert!(
        refused
            .as_deref()
            .is_some_and(|r| r.contains("counts its ops")),
        "{refused:?}"
    );
    assert_eq!(host.heads(&d).expect("loads"), heads, "nothing applied");
    // The village still saves to bytes that load: a new laptop gets it whole.
    let saved = host.snapshot(&d).expect("loads").save();
    assert_eq!(
        automerge::Automerge::load(&saved)
            .expect("the saved village loads")
            .get_heads(),
        heads
    );
}

#[test]
fn a_relay_restored_from_an_old_backup_gets_the_lost_changes_back() {
    // Two laptops share V1. After the relay's disk is replaced by an older
    // backup, each laptop may hand back only its own changes: d1 holds d2's
    // change the relay lost, so d1's message is refused until d2 has synced and
    // given it back; then d1 syncs, and nothing written is lost.
    let v1 = doc_id("V1");
    let (_s, host) = relay_with(std::slice::from_ref(&v1));
    relay_write(&host, &v1, 50, "r0", "早");
    let (dev, dev2) = (new_storage(), new_storage());
    let assignment: BTreeSet<_> = [v1.clone()].into();
    lockstep("d1", &dev, &host, &assignment);
    lockstep("d2", &dev2, &host, &assignment);
    let backup = host.snapshot(&v1).expect("snapshot").save();
    let mut written = Vec::new();
    for i in 0..3 {
        written.push(local_write(&dev, &v1, "d1", &format!("k{i}"), "值"));
    }
    written.push(local_write(&dev2, &v1, "d2", "r1", "晚"));
    lockstep("d2", &dev2, &host, &assignment);
    lockstep("d1", &dev, &host, &assignment);

    // The relay's disk is replaced by the backup: its documents and sync states are older.
    let restored = std::sync::Arc::new(new_storage());
    restored.append(&v1, &backup).expect("append");
    let host = minqing_sync::StorageDocHost::new(restored);
    written.push(local_write(&dev, &v1, "d1", "k-after", "新"));
    let f = lockstep("d1", &dev, &host, &assignment);
    match &f.outcome.clone().expect("finishes").docs[&v1] {
        DocOutcome::Refused { reason } => assert!(reason.contains("not this laptop's"), "{reason}"),
        other => panic!("d1 holds d2's change the relay lost: {other:?}"),
    }
    // d2 gives its change back, then d1 goes through.
    lockstep("d2", &dev2, &host, &assignment);
    let f = lockstep("d1", &dev, &host, &assignment);
    assert!(matches!(
        f.outcome.clone().expect("finishes").docs[&v1],
        DocOutcome::InSync { .. }
    ));
    let relay_doc = host.snapshot(&v1).expect("snapshot");
    let local = load_doc(&dev, &v1).expect("load").expect("held");
    assert_eq!(relay_doc.get_heads(), local.get_heads());
    for h in &written {
        assert!(automerge::ReadDoc::get_change_by_hash(&relay_doc, h).is_some());
    }
    eprintln!(
        "restore from backup: {} round trips after the handshake",
        f.round_trips_after_handshake()
    );
}

#[test]
fn a_sync_state_ahead_of_the_local_document_is_reset_not_trusted() {
    // The device's persisted state names heads it does not hold (its document
    // chunks were lost but the state survived): it must fall back to a full exchange.
    let v1 = doc_id("V1");
    let (_s, host) = relay_with(std::slice::from_ref(&v1));
    relay_write(&host, &v1, 50, "r0", "早");
    let dev = new_storage();
    let assignment: BTreeSet<_> = [v1.clone()].into();
    lockstep("d1", &dev, &host, &assignment);
    relay_write(&host, &v1, 50, "r1", "晚");
    lockstep("d1", &dev, &host, &assignment);
    let state = dev
        .sync_state(RELAY, &v1)
        .expect("read")
        .expect("state kept");
    // Replace the document by the bare skeleton, keeping the state.
    dev.remove(&v1).expect("remove");
    dev.append(&v1, &support::skeleton().save())
        .expect("append");
    dev.set_sync_state(RELAY, &v1, &state).expect("write");
    let f = lockstep("d1", &dev, &host, &assignment);
    assert!(matches!(
        f.outcome.expect("finishes").docs[&v1],
        DocOutcome::InSync { .. }
    ));
    let local = load_doc(&dev, &v1).expect("load").expect("held");
    assert_eq!(local.get_heads(), host.heads(&v1).expect("heads"));
}
