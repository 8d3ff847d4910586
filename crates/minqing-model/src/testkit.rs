//! Test support shared by the model's unit tests: authors, a small village, and
//! replicas forked from one another to act offline and merge.

use chrono::NaiveDate;
use minqing_sync::DocId;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::id::Id;
use crate::validate::{
    Address, Category, DemandText, HouseholdNumber, Note, PersonName, VisitKind,
};
use crate::village::{
    Author, NewDemand, NewHousehold, NewResident, NewVisit, Village, new_village,
};

/// Device ids used by tests.
pub const DEV_A: &str = "aaaaaaaaaaaaaaaa";
/// Second device.
pub const DEV_B: &str = "bbbbbbbbbbbbbbbb";

/// A fixed rng.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// An author on `device`, named `cadre`, at `now_ms`.
pub fn author(device: &str, cadre: &str, now_ms: i64) -> Author {
    Author {
        device_id: Id::parse(device).unwrap(),
        cadre: PersonName::parse(cadre).unwrap(),
        now_ms,
    }
}

/// A date.
pub fn date(s: &str) -> NaiveDate {
    crate::validate::parse_date(s).unwrap()
}

/// Unix ms at 12:00 UTC of a date.
pub fn ms(s: &str) -> i64 {
    date(s)
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// A fresh village `id` made on device A.
pub fn village(id: &str, name: &str) -> Village {
    let doc_id = DocId::new(id).unwrap();
    let doc = new_village(&doc_id, name, None, DEV_A.as_bytes(), 1_000).unwrap();
    let mut v = Village::from_new_doc(doc_id, doc).unwrap();
    v.set_actor(DEV_A.as_bytes());
    v
}

/// A copy of `v` working as `device` (as if synced, then offline).
pub fn fork(v: &mut Village, device: &str) -> Village {
    let bytes = v.save();
    let mut copy = Village::load(v.id().clone(), &bytes).unwrap();
    copy.set_actor(device.as_bytes());
    copy
}

/// Merges both ways so both replicas hold every change.
pub fn sync(a: &mut Village, b: &mut Village) {
    a.merge(b).unwrap();
    b.merge(a).unwrap();
}

/// Adds a household.
pub fn household(v: &mut Village, rng: &mut StdRng, who: &Author, address: &str) -> Id {
    v.add_household(
        rng,
        who,
        &NewHousehold {
            address: Address::parse(address).unwrap(),
            number: Some(HouseholdNumber::parse("0001").unwrap()),
        },
    )
    .unwrap()
}

/// Adds a resident with `tags`.
pub fn resident(
    v: &mut Village,
    rng: &mut StdRng,
    who: &Author,
    household: &Id,
    name: &str,
    tags: &[&str],
) -> Id {
    v.add_resident(
        rng,
        who,
        &NewResident {
            tags: tags
                .iter()
                .map(|t| crate::validate::Tag::parse(t).unwrap())
                .collect(),
            ..NewResident::new(household.clone(), PersonName::parse(name).unwrap())
        },
    )
    .unwrap()
}

/// Logs a visit.
pub fn visit(
    v: &mut Village,
    rng: &mut StdRng,
    who: &Author,
    household: &Id,
    resident: Option<&Id>,
    kind: VisitKind,
    day: &str,
) -> Id {
    v.log_visit(
        rng,
        who,
        &NewVisit {
            household: household.clone(),
            resident: resident.cloned(),
            kind,
            note: Note::parse("走访了解情况").unwrap(),
            date: date(day),
        },
    )
    .unwrap()
}

/// Opens a demand.
pub fn demand(
    v: &mut Village,
    rng: &mut StdRng,
    who: &Author,
    resident: &Id,
    category: &str,
) -> Id {
    v.open_demand(
        rng,
        who,
        &NewDemand {
            resident: resident.clone(),
            category: Category::parse(category).unwrap(),
            text: DemandText::parse("希望村口路灯尽快修好").unwrap(),
        },
    )
    .unwrap()
}
