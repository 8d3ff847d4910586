//! `check_schema`: what the relay runs on every device message before keeping it.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};
use minqing_model::*;
use minqing_sync::DocId;
use rand::SeedableRng;
use rand::rngs::StdRng;

const DEV: &str = "aaaaaaaaaaaaaaaa";

/// A village with one household, one resident (with a tag) and one visit.
fn village() -> (Village, Id, Id) {
    let id = DocId::new("V1").unwrap();
    let doc = new_village(&id, "红星村", None, DEV.as_bytes(), 1_700_000_000_000).unwrap();
    let mut v = Village::from_new_doc(id, doc).unwrap();
    let who = Author {
        device_id: Id::parse(DEV).unwrap(),
        cadre: PersonName::parse("王芳").unwrap(),
        now_ms: 1_700_000_000_000,
    };
    let mut rng = StdRng::seed_from_u64(1);
    let h = v
        .add_household(
            &mut rng,
            &who,
            &NewHousehold {
                address: Address::parse("一组 3 号").unwrap(),
                number: None,
            },
        )
        .unwrap();
    let r = v
        .add_resident(
            &mut rng,
            &who,
            &NewResident {
                household: h.clone(),
                name: PersonName::parse("张三").unwrap(),
                fields: ResidentFields::default(),
                tags: vec![Tag::parse("老党员").unwrap()],
            },
        )
        .unwrap();
    v.log_visit(
        &mut rng,
        &who,
        &NewVisit {
            household: h.clone(),
            resident: Some(r.clone()),
            kind: VisitKind::parse("普遍走访").unwrap(),
            note: Note::parse("身体还好").unwrap(),
            date: chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        },
    )
    .unwrap();
    (v, h, r)
}

/// Applies `edit` to a copy of the village and checks what changed.
fn check(edit: impl FnOnce(&mut AutoCommit, &Village)) -> Result<(), SchemaError> {
    let (mut v, _, _) = village();
    let before = v.heads();
    let mut doc = AutoCommit::load(&v.save()).unwrap();
    edit(&mut doc, &v);
    doc.commit();
    check_schema(doc.document(), &before)
}

fn map(doc: &AutoCommit, obj: &automerge::ObjId, key: &str) -> automerge::ObjId {
    doc.get(obj, key).unwrap().unwrap().1
}

#[test]
fn the_models_own_writes_keep_the_schema() {
    let (mut v, _, _) = village();
    let mut doc = AutoCommit::load(&v.save()).unwrap();
    assert_eq!(check_schema(doc.document(), &[]), Ok(()));
    let heads = v.heads();
    assert_eq!(check_schema(doc.document(), &heads), Ok(()));
    // Removing a tag is a legitimate delete.
    assert_eq!(
        check(|doc, v| {
            let r = &v.residents()[0].id;
            let rid = map(doc, &map(doc, &ROOT, "residents"), r);
            let tags = map(doc, &rid, "tags");
            doc.delete(&tags, "老党员").unwrap();
        }),
        Ok(())
    );
    // Unknown plain fields (a newer minqing) are fine.
    assert_eq!(
        check(|doc, v| {
            let hid = map(doc, &map(doc, &ROOT, "households"), &v.households()[0].id);
            doc.put(&hid, "floor", 3).unwrap();
        }),
        Ok(())
    );
}

#[test]
fn a_root_map_replaced_by_a_string_is_refused() {
    let err = check(|doc, _| {
        doc.put(ROOT, "residents", "oops").unwrap();
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            SchemaError::Root {
                key: "residents",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("residents"));
}

#[test]
fn a_root_map_replaced_by_another_map_is_refused() {
    let err = check(|doc, _| {
        doc.put_object(ROOT, "visits", ObjType::Map).unwrap();
    })
    .unwrap_err();
    assert!(
        matches!(err, SchemaError::Root { key: "visits", .. }),
        "{err}"
    );
}

#[test]
fn fields_of_the_wrong_type_are_refused() {
    let err = check(|doc, v| {
        let rid = map(doc, &map(doc, &ROOT, "residents"), &v.residents()[0].id);
        doc.put(&rid, "created_at", "yesterday").unwrap();
    })
    .unwrap_err();
    assert!(err.to_string().contains("created_at"), "{err}");
    let err = check(|doc, v| {
        let rid = map(doc, &map(doc, &ROOT, "residents"), &v.residents()[0].id);
        doc.put_object(&rid, "name", ObjType::Text).unwrap();
    })
    .unwrap_err();
    assert!(err.to_string().contains("name"), "{err}");
    let err = check(|doc, _| {
        let visits = map(doc, &ROOT, "visits");
        doc.put(
            &visits,
            "abcdefabcdefabcd",
            ScalarValue::Str("not a record".into()),
        )
        .unwrap();
    })
    .unwrap_err();
    assert!(err.to_string().contains("visits"), "{err}");
}

#[test]
fn deleting_a_record_is_refused() {
    let err = check(|doc, v| {
        let visits = map(doc, &ROOT, "visits");
        doc.delete(&visits, v.visits()[0].id.as_str()).unwrap();
    })
    .unwrap_err();
    assert!(matches!(err, SchemaError::Deleted { .. }), "{err}");
}

#[test]
fn the_skeleton_hash_is_the_skeletons_change() {
    let mut s = skeleton().unwrap();
    assert_eq!(skeleton_hash(), s.get_heads().first().copied());
}

#[test]
fn concurrent_edits_of_one_field_keep_the_schema() {
    // Two cadres change the same resident's phone offline; the merge holds a
    // conflict on `phone`, which is the model's own register behaviour.
    let (mut v, _, r) = village();
    let mut a = AutoCommit::load(&v.save())
        .unwrap()
        .with_actor(automerge::ActorId::from(&b"aaaaaaaaaaaaaaaa"[..]));
    let mut b = AutoCommit::load(&v.save())
        .unwrap()
        .with_actor(automerge::ActorId::from(&b"bbbbbbbbbbbbbbbb"[..]));
    for (doc, phone) in [(&mut a, "13800000001"), (&mut b, "13900000002")] {
        let rid = map(doc, &map(doc, &ROOT, "residents"), r.as_str());
        doc.put(&rid, "phone", phone).unwrap();
        doc.commit();
    }
    let before = a.get_heads();
    a.merge(&mut b).unwrap();
    assert_eq!(check_schema(a.document(), &before), Ok(()));
    let _ = v.heads();
}
