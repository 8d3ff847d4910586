//! The village document: deterministic skeleton, writes and reads, and merges of
//! concurrent offline edits through the `Storage` trait.

use automerge::AutoCommit;
use chrono::NaiveDate;
use minqing_model::*;
use minqing_sync::{DocId, MemStorage, Storage};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn author(device: &str, cadre: &str, now_ms: i64) -> Author {
    Author {
        device_id: Id::parse(device).unwrap(),
        cadre: PersonName::parse(cadre).unwrap(),
        now_ms,
    }
}

fn v1() -> DocId {
    DocId::new("V1").unwrap()
}

const DEV_A: &str = "aaaaaaaaaaaaaaaa";
const DEV_B: &str = "bbbbbbbbbbbbbbbb";

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
}

/// Creates village V1 on a device, as `village add` does, and stores it.
fn create(storage: &dyn Storage, device: &str, name: &str, now_ms: i64) -> Village {
    let doc = new_village(&v1(), name, Some("城关镇"), device.as_bytes(), now_ms).unwrap();
    let mut v = Village::from_new_doc(v1(), doc).unwrap();
    storage.append(&v1(), &v.take_unsaved()).unwrap();
    storage.flush().unwrap();
    v
}

fn reload(storage: &dyn Storage, device: &str) -> Village {
    let bytes = storage.load(&v1()).unwrap().unwrap();
    let mut v = Village::load(v1(), &bytes).unwrap();
    v.set_actor(device.as_bytes());
    v
}

fn save(storage: &dyn Storage, v: &mut Village) {
    storage.append(&v1(), &v.take_unsaved()).unwrap();
    storage.flush().unwrap();
}

fn json(v: &Village) -> String {
    serde_json::to_string(&(
        v.view(),
        v.households(),
        v.residents(),
        v.visits(),
        v.demands(),
    ))
    .unwrap()
}

#[test]
fn skeletons_made_independently_are_identical() {
    let mut a = skeleton().unwrap();
    let mut b = skeleton().unwrap();
    assert_eq!(a.get_heads(), b.get_heads());
    assert_eq!(a.save(), b.save());
    // And the skeleton under two villages made on two devices is one change.
    let mut va = new_village(&v1(), "小河村", None, DEV_A.as_bytes(), 1_000).unwrap();
    let mut vb = new_village(&v1(), "小河村", None, DEV_B.as_bytes(), 2_000).unwrap();
    let ha = va.get_changes(&[]).first().unwrap().hash();
    let hb = vb.get_changes(&[]).first().unwrap().hash();
    assert_eq!(ha, hb);
    assert_eq!(ha, a.get_heads()[0]);
}

#[test]
fn new_village_checks_its_name() {
    assert!(new_village(&v1(), "\u{3000}", None, b"x", 0).is_err());
    let doc = new_village(&v1(), " 小河村 ", Some("城关镇"), DEV_A.as_bytes(), 5).unwrap();
    let v = Village::from_new_doc(v1(), doc).unwrap();
    assert_eq!(v.view().name, "小河村");
    assert_eq!(v.view().township.as_deref(), Some("城关镇"));
    assert!(Village::from_new_doc(v1(), AutoCommit::new()).is_err());
}

#[test]
fn records_round_trip_through_storage() {
    let mut rng = StdRng::seed_from_u64(1);
    let store = MemStorage::new();
    let a = author(DEV_A, "王书记", 1_772_323_200_000);
    create(&store, DEV_A, "小河村", a.now_ms);
    let mut v = reload(&store, DEV_A);
    let h = v
        .add_household(
            &mut rng,
            &a,
            &NewHousehold {
                address: Address::parse("小河村三组12号").unwrap(),
                number: Some(HouseholdNumber::parse("0012").unwrap()),
            },
        )
        .unwrap();
    let card = IdCardNumber::parse("11010519491231002X", today()).unwrap();
    let r = v
        .add_resident(
            &mut rng,
            &a,
            &NewResident {
                household: h.clone(),
                name: PersonName::parse("李秀英").unwrap(),
                fields: ResidentFields {
                    id_card: Some(card),
                    phone: Some(Phone::parse("13800138000").unwrap()),
                    relation: Some(Relation::parse("户主").unwrap()),
                    ..ResidentFields::default()
                },
                tags: vec![
                    Tag::parse("elderly-alone").unwrap(),
                    Tag::parse("种粮大户").unwrap(),
                ],
            },
        )
        .unwrap();
    let vis = v
        .log_visit(
            &mut rng,
            &a,
            &NewVisit {
                household: h.clone(),
                resident: Some(r.clone()),
                kind: VisitKind::Key,
                note: Note::parse("老人腿脚不便，需要代购药品。").unwrap(),
                date: today(),
            },
        )
        .unwrap();
    let d = v
        .open_demand(
            &mut rng,
            &a,
            &NewDemand {
                resident: r.clone(),
                category: Category::parse("医疗").unwrap(),
                text: DemandText::parse("希望每月送药上门").unwrap(),
            },
        )
        .unwrap();
    save(&store, &mut v);
    assert!(v.take_unsaved().is_empty());

    let back = reload(&store, DEV_A);
    assert_eq!(json(&back), json(&v));
    let res = back.resident(&r).unwrap();
    assert_eq!(res.name, "李秀英");
    assert_eq!(res.gender.as_deref(), Some("女"));
    assert_eq!(res.birth.as_deref(), Some("1949-12-31"));
    assert_eq!(res.tags, vec!["独居老人", "种粮大户"]);
    assert_eq!(res.address, "小河村三组12号");
    let detail = back.resident_detail(&r).unwrap();
    assert_eq!(detail.visits.len(), 1);
    assert_eq!(detail.visits[0].id, vis.to_string());
    assert_eq!(detail.visits[0].kind, "重点走访");
    assert_eq!(detail.visits[0].date, "2026-03-01");
    assert_eq!(detail.demands.len(), 1);
    let dv = back.demand(&d).unwrap();
    assert_eq!(dv.status, "受理");
    assert_eq!(dv.household_id, h.to_string());
    assert_eq!(dv.events.len(), 1);
    assert_eq!(dv.events[0].kind, "opened");
    assert_eq!(dv.events[0].cadre, "王书记");
    assert_eq!(dv.opened_at, "2026-03-01T00:00:00.000Z");
    // Prefix lookup is a range scan over the map keys.
    let p = IdPrefix::parse(&vis.as_str()[..6]).unwrap();
    assert_eq!(back.ids_with_prefix(RecordKind::Visit, &p), vec![vis]);
    assert!(
        back.ids_with_prefix(RecordKind::Resident, &p).is_empty()
            || r.as_str().starts_with(p.as_str())
    );
}

#[test]
fn bad_references_are_refused_and_write_nothing() {
    let mut rng = StdRng::seed_from_u64(2);
    let store = MemStorage::new();
    let a = author(DEV_A, "王书记", 1_000);
    create(&store, DEV_A, "小河村", 1_000);
    let mut v = reload(&store, DEV_A);
    let before = v.heads();
    let ghost = Id::parse("zzzzzzzzzzzzzzzz").unwrap();
    let err = v
        .log_visit(
            &mut rng,
            &a,
            &NewVisit {
                household: ghost.clone(),
                resident: None,
                kind: VisitKind::Regular,
                note: Note::parse("走访").unwrap(),
                date: today(),
            },
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no household zzzzzzzzzzzzzzzz in village V1")
    );
    let h = v
        .add_household(
            &mut rng,
            &a,
            &NewHousehold {
                address: Address::parse("一组1号").unwrap(),
                number: None,
            },
        )
        .unwrap();
    let card = IdCardNumber::parse("11010519491231002X", today()).unwrap();
    let mid = v.heads();
    let err = v
        .add_resident(
            &mut rng,
            &a,
            &NewResident {
                household: h,
                name: PersonName::parse("张三").unwrap(),
                fields: ResidentFields {
                    gender: Some(Gender::Male),
                    id_card: Some(card),
                    ..ResidentFields::default()
                },
                tags: vec![],
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("--gender 男 disagrees"));
    assert_eq!(v.heads(), mid);
    assert_ne!(before, mid);
}

#[test]
fn concurrent_offline_edits_merge_field_by_field_and_keep_every_visit() {
    let mut rng = StdRng::seed_from_u64(3);
    let (sa, sb) = (MemStorage::new(), MemStorage::new());
    let a = author(DEV_A, "王书记", 1_000);
    let b = author(DEV_B, "赵书记", 2_000);

    // Both laptops create village V1 offline, independently.
    create(&sa, DEV_A, "小河村", 1_000);
    create(&sb, DEV_B, "小河村", 2_000);

    // A registers a household and resident, then B receives them.
    let mut va = reload(&sa, DEV_A);
    let h = va
        .add_household(
            &mut rng,
            &a,
            &NewHousehold {
                address: Address::parse("小河村三组12号").unwrap(),
                number: None,
            },
        )
        .unwrap();
    let r = va
        .add_resident(
            &mut rng,
            &a,
            &NewResident {
                household: h.clone(),
                name: PersonName::parse("李秀英").unwrap(),
                fields: ResidentFields {
                    gender: Some(Gender::Female),
                    phone: Some(Phone::parse("13800138000").unwrap()),
                    ..ResidentFields::default()
                },
                tags: vec![Tag::parse("needy").unwrap()],
            },
        )
        .unwrap();
    save(&sa, &mut va);
    let mut vb = reload(&sb, DEV_B);
    vb.merge(&mut reload(&sa, DEV_A)).unwrap();
    save(&sb, &mut vb);

    // Offline: both edit the same resident and log visits.
    let mut va = reload(&sa, DEV_A);
    let mut vb = reload(&sb, DEV_B);
    let edit_a = ResidentEdit {
        fields: ResidentFields {
            phone: Some(Phone::parse("13911112222").unwrap()),
            ..ResidentFields::default()
        },
        add_tags: vec![Tag::parse("独居老人").unwrap()],
        ..Default::default()
    };
    let edit_b = ResidentEdit {
        fields: ResidentFields {
            phone: Some(Phone::parse("0537-1234567").unwrap()),
            relation: Some(Relation::parse("户主").unwrap()),
            ..ResidentFields::default()
        },
        remove_tags: vec![Tag::parse("困难户").unwrap()],
        ..Default::default()
    };
    va.edit_resident(&a, &r, &edit_a).unwrap();
    vb.edit_resident(&b, &r, &edit_b).unwrap();
    let visit = |v: &mut Village, au: &Author, rng: &mut StdRng, note: &str| {
        v.log_visit(
            rng,
            au,
            &NewVisit {
                household: h.clone(),
                resident: Some(r.clone()),
                kind: VisitKind::Regular,
                note: Note::parse(note).unwrap(),
                date: today(),
            },
        )
        .unwrap()
    };
    let mut ids = vec![];
    for i in 0..3 {
        ids.push(visit(&mut va, &a, &mut rng, &format!("王书记第{i}次走访")));
        ids.push(visit(&mut vb, &b, &mut rng, &format!("赵书记第{i}次走访")));
    }
    save(&sa, &mut va);
    save(&sb, &mut vb);

    // Merge both ways through the Storage trait.
    let mut va = reload(&sa, DEV_A);
    let mut vb = reload(&sb, DEV_B);
    va.merge(&mut reload(&sb, DEV_B)).unwrap();
    vb.merge(&mut reload(&sa, DEV_A)).unwrap();
    save(&sa, &mut va);
    save(&sb, &mut vb);
    let mut fa = reload(&sa, DEV_A);
    let mut fb = reload(&sb, DEV_B);
    assert_eq!(fa.heads(), fb.heads());
    assert_eq!(json(&fa), json(&fb));

    let res = fa.resident(&r).unwrap();
    let phone = res.phone.clone().unwrap();
    assert!(phone == "13911112222" || phone == "0537-1234567", "{phone}");
    assert_eq!(res.relation.as_deref(), Some("户主")); // B's field kept
    assert_eq!(res.tags, vec!["独居老人"]); // A's add and B's remove both kept
    let mut got: Vec<String> = fa.visits().into_iter().map(|v| v.id).collect();
    let mut want: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(fa.view().name, "小河村");
}
