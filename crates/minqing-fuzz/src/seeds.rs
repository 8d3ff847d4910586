//! Seed inputs for every target, made with the crates' own encoders: a village
//! built through `minqing-model`, real device sessions run against the fuzz
//! relay, the frames and sync messages they exchanged, and an enrolment bundle.
//! `minqing-fuzz-seeds DIR` writes them; the in-tree corpus started from them.
//!
//! Everything here works on fixed, valid literals: a failure is a bug in this
//! file, reported by a panic naming the step.

use std::fmt::Display;

use automerge::Automerge;
use minqing_model::{
    Address, Author, HouseholdNumber, Id, NewHousehold, NewResident, NewVisit, Note, PersonName,
    ResidentEdit, ResidentFields, Village, VisitKind, new_village, parse_date,
};
use minqing_net::{BUNDLE_FORMAT, Bundle, RelayCa, new_secret};
use minqing_sync::{DeviceSession, DocId, Frame, FrameDecoder, Incarnation, SessionConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::Target;
use crate::relay::{DEVICE, EMPTY, FOREIGN, HELD, Handshake, Relay, fixture, id};

fn ok<T, E: Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("seed generation, {what}: {e}"))
}

/// The actor of [`DEVICE`]: its id and a 4-byte incarnation suffix.
pub fn device_actor() -> Vec<u8> {
    minqing_sync::device_actor(DEVICE, Incarnation::from_random([0x80, 0, 0, 1]))
        .to_bytes()
        .to_vec()
}

fn author(device: &str, now_ms: i64) -> Author {
    Author {
        device_id: ok(Id::parse(device), "device id"),
        cadre: ok(PersonName::parse("张三"), "cadre name"),
        now_ms,
    }
}

/// Adds a household with a resident and a visit; returns the resident's id.
fn add_family(v: &mut Village, rng: &mut StdRng, who: &Author, address: &str, name: &str) -> Id {
    let household = ok(
        v.add_household(
            rng,
            who,
            &NewHousehold {
                address: ok(Address::parse(address), "address"),
                number: Some(ok(HouseholdNumber::parse("0012"), "household number")),
            },
        ),
        "household",
    );
    let resident = ok(
        v.add_resident(
            rng,
            who,
            &NewResident {
                household: household.clone(),
                name: ok(PersonName::parse(name), "name"),
                fields: ResidentFields::default(),
                tags: Vec::new(),
            },
        ),
        "resident",
    );
    ok(
        v.log_visit(
            rng,
            who,
            &NewVisit {
                household,
                resident: Some(resident.clone()),
                kind: ok(VisitKind::parse("普遍走访"), "visit kind"),
                note: ok(Note::parse("走访了解情况，村口路灯不亮"), "note"),
                date: ok(parse_date("2026-11-20"), "date"),
            },
        ),
        "visit",
    );
    resident
}

/// The relay's village [`HELD`]: two households with a resident and a visit
/// each, written by another laptop. Deterministic.
pub fn village() -> Village {
    let doc_id = id(HELD);
    let other = "cccccccccccccccc";
    let doc = ok(
        new_village(&doc_id, "小河村", Some("城关镇"), other.as_bytes(), 1_000),
        "village",
    );
    let mut v = ok(Village::from_new_doc(doc_id, doc), "village");
    v.set_actor(other.as_bytes());
    let mut rng = StdRng::seed_from_u64(9);
    let who = author(other, 1_764_000_000_000);
    add_family(&mut v, &mut rng, &who, "小河村三组12号", "李四");
    add_family(&mut v, &mut rng, &who, "小河村一组3号", "王五");
    v
}

/// The fixture village as [`DEVICE`] holds it, ready to write as itself.
fn device_copy() -> Village {
    let mut v = ok(
        Village::load(id(HELD), &fixture().village),
        "loading the fixture",
    );
    v.set_actor(&device_actor());
    v
}

/// The automerge document of a village, loaded from its saved bytes.
fn am(v: &mut Village) -> Automerge {
    ok(Automerge::load(&v.save()), "reloading a village")
}

/// What one device session exchanged with the fuzz relay.
#[derive(Debug, Default)]
struct Exchange {
    /// Frames the device sent, encoded.
    up: Vec<Vec<u8>>,
    /// Frames the relay sent, encoded.
    down: Vec<Vec<u8>>,
    /// Whether the relay applied changes from the device.
    applied: bool,
}

/// Runs a device holding `docs` against a fresh fuzz relay until both are quiet.
fn exchange(docs: Vec<(DocId, Automerge, Option<Vec<u8>>)>) -> Exchange {
    let mut device = ok(
        DeviceSession::new(SessionConfig::default(), DEVICE, docs),
        "device session",
    );
    let mut relay = Relay::new();
    let mut ex = Exchange::default();
    for _ in 0..64 {
        let mut up = Vec::new();
        while let Some(f) = device.poll_transmit() {
            up.extend_from_slice(&f);
            ex.up.push(f);
        }
        let before = relay.sent.len();
        if !up.is_empty() {
            ok(relay.feed(&up), "relay input");
        }
        let down = relay.sent[before..].to_vec();
        if !down.is_empty() {
            ok(device.handle_input(&down), "device input");
            ex.down.extend(split_frames(&down));
        }
        while device.poll_event().is_some() {}
        if up.is_empty() && down.is_empty() {
            break;
        }
    }
    ex.applied = relay.applied;
    ex
}

fn split_frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut dec = FrameDecoder::default();
    dec.push(stream);
    let mut out = Vec::new();
    while let Ok(Some(f)) = dec.next_frame() {
        out.push(ok(f.encode(), "re-encoding a frame"));
    }
    out
}

fn sync_messages(frames: &[Vec<u8>]) -> Vec<(DocId, Vec<u8>)> {
    frames
        .iter()
        .filter_map(|f| match Frame::decode_body(&f[4..]) {
            Ok(Frame::Sync { doc, message }) => Some((doc, message)),
            _ => None,
        })
        .collect()
}

/// The device sessions the seeds come from, by name.
fn scenarios() -> Vec<(&'static str, Exchange)> {
    let mut rng = StdRng::seed_from_u64(17);
    let who = author(DEVICE, 1_764_100_000_000);
    // The device edited the village offline: a new family, a changed resident.
    let mut edited = device_copy();
    let resident = add_family(&mut edited, &mut rng, &who, "小河村二组7号", "赵六");
    ok(
        edited.edit_resident(
            &who,
            &resident,
            &ResidentEdit {
                name: Some(ok(PersonName::parse("赵六六"), "name")),
                fields: ResidentFields::default(),
                add_tags: Vec::new(),
                remove_tags: Vec::new(),
            },
        ),
        "edit",
    );
    // A long offline week: enough changes for automerge to compress columns.
    let mut busy = device_copy();
    for i in 0..40 {
        add_family(
            &mut busy,
            &mut rng,
            &who,
            &format!("小河村四组{i}号"),
            "孙七",
        );
    }
    // A village made offline on the laptop, and one never assigned to it.
    let mut offline_new = |doc: &str| {
        let d = id(doc);
        let doc = ok(
            new_village(&d, "大湾社区", None, &device_actor(), 1_764_100_000_000),
            "new village",
        );
        let mut v = ok(Village::from_new_doc(d.clone(), doc), "new village");
        v.set_actor(&device_actor());
        add_family(&mut v, &mut rng, &who, "大湾社区5栋", "周八");
        (d, am(&mut v), None)
    };
    let mut unchanged = device_copy();
    vec![
        ("edits", exchange(vec![(id(HELD), am(&mut edited), None)])),
        ("nothing", exchange(Vec::new())),
        ("busy", exchange(vec![(id(HELD), am(&mut busy), None)])),
        (
            "offline-new",
            exchange(vec![
                (id(HELD), am(&mut unchanged), None),
                offline_new(EMPTY),
            ]),
        ),
        ("foreign", exchange(vec![offline_new(FOREIGN)])),
    ]
}

/// An enrolment bundle as `minqing-relay enroll` writes it, as JSON text.
fn bundle_json() -> Vec<u8> {
    let ca = ok(RelayCa::create("county-relay"), "CA");
    let bundle = Bundle {
        format: BUNDLE_FORMAT.into(),
        device_id: DEVICE.into(),
        cadre: "张三".into(),
        team: Some("第一服务队".into()),
        relay_name: "county-relay".into(),
        relay_addr: "127.0.0.1:4433".into(),
        server_name: "relay.minqing".into(),
        ca_cert_pem: ca.cert_pem().to_owned(),
        villages: vec![HELD.into(), EMPTY.into()],
        issued_at: "2026-12-01T08:00:00Z".into(),
        enrol_secret: new_secret(),
        escrow_public_key: None,
    };
    ok(bundle.check(), "the seed bundle passes the laptop's checks");
    ok(serde_json::to_vec_pretty(&bundle), "bundle JSON")
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.push(mode);
    v.extend_from_slice(bytes);
    v
}

/// The seed inputs of `target`, each with a file name.
pub fn seeds(target: Target) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if target == Target::Bundle {
        out.push(("bundle-pretty".to_owned(), bundle_json()));
        return out;
    }
    if target == Target::Enrol {
        return crate::enrol::seeds();
    }
    for (name, ex) in scenarios() {
        // The seeds must reach the relay's accepting path: a device writing as
        // itself within the schema has its changes applied.
        let writes = matches!(name, "edits" | "busy" | "offline-new");
        assert_eq!(
            ex.applied, writes,
            "seed scenario {name}: the relay applied changes: {}",
            ex.applied
        );
        let up: Vec<u8> = ex.up.concat();
        let down: Vec<u8> = ex.down.concat();
        match target {
            Target::Frame => {
                out.push((format!("{name}-up"), with_mode(0, &up)));
                out.push((format!("{name}-down"), with_mode(0, &down)));
                out.push((format!("{name}-up-by-3"), with_mode(3, &up)));
                for (i, f) in ex.down.iter().take(2).enumerate() {
                    out.push((format!("{name}-down-{i}"), with_mode(0x40, f)));
                }
            }
            Target::RelaySession => {
                out.push((format!("{name}-raw"), with_mode(0, &up)));
                out.push((format!("{name}-raw-by-16"), with_mode(4 << 2, &up)));
                // After the harness's own Hello: the device's frames but its Hello.
                let after_hello: Vec<u8> = ex.up.iter().skip(1).flatten().copied().collect();
                for (hs, mode) in [
                    (Handshake::Dirty, 1u8),
                    (Handshake::Clean, 2),
                    (Handshake::Nothing, 3),
                ] {
                    out.push((
                        format!("{name}-{hs:?}").to_lowercase(),
                        with_mode(mode, &after_hello),
                    ));
                }
            }
            Target::SyncMessage => {
                for (i, (doc, m)) in sync_messages(&ex.up).into_iter().enumerate() {
                    let village = match doc.as_str() {
                        HELD => 0u8,
                        EMPTY => 2,
                        _ => 3,
                    };
                    out.push((format!("{name}-up-{i}"), with_mode(village << 2, &m)));
                    out.push((
                        format!("{name}-up-{i}-fixed"),
                        with_mode(0x80 | village << 2 | 3, &m),
                    ));
                }
                for (i, (_, m)) in sync_messages(&ex.down).into_iter().take(2).enumerate() {
                    out.push((format!("{name}-down-{i}"), with_mode(0x81, &m)));
                }
            }
            Target::Bundle | Target::Enrol => {}
        }
    }
    out
}
