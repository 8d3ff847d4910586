//! Test support: a small village with residents, visits and demands built
//! through the model's own write functions, and bare views for search tests.

use chrono::NaiveDate;
use minqing_model::{
    Author, Category, DemandText, Id, IdCardNumber, NewDemand, NewHousehold, NewResident, NewVisit,
    Note, PersonName, Phone, ResidentFields, ResidentView, Tag, Village, VisitKind, new_village,
    parse_village_id,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The test device.
pub const DEV: &str = "aaaaaaaaaaaaaaaa";

/// A bare resident view for index tests.
pub fn resident(id: &str, name: &str, address: &str) -> ResidentView {
    ResidentView {
        id: id.to_owned(),
        name: name.to_owned(),
        tags: Vec::new(),
        household_id: "h000000000000000".to_owned(),
        village_id: "V001".to_owned(),
        address: address.to_owned(),
        cadre: "张伟".to_owned(),
        created_at: "2026-03-01T00:00:00.000Z".to_owned(),
        merged_into: None,
        ..ResidentView::default()
    }
}

/// A date.
pub fn date(s: &str) -> NaiveDate {
    minqing_model::parse_date(s).unwrap()
}

/// Unix ms at 02:00 UTC (10:00 China time) of a date.
pub fn ms(s: &str) -> i64 {
    date(s)
        .and_hms_opt(2, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// An author.
pub fn author(cadre: &str, day: &str) -> Author {
    Author {
        device_id: Id::parse(DEV).unwrap(),
        cadre: PersonName::parse(cadre).unwrap(),
        now_ms: ms(day),
    }
}

/// A seeded rng, a different seed at every call (ids never collide, runs
/// repeat).
pub fn rng() -> StdRng {
    static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(7);
    StdRng::seed_from_u64(SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// An empty village.
pub fn village(id: &str, name: &str) -> Village {
    let doc_id = parse_village_id(id).unwrap();
    let doc = new_village(&doc_id, name, Some("城关镇"), DEV.as_bytes(), 1_000).unwrap();
    let mut v = Village::from_new_doc(doc_id, doc).unwrap();
    v.set_actor(DEV.as_bytes());
    v
}

/// The ids in [`sample`].
pub struct Sample {
    /// The village.
    pub village: Village,
    /// 小河村三组12号.
    pub h1: Id,
    /// 小河村一组3号.
    pub h2: Id,
    /// 李秀英 (独居老人, 老党员), in h1.
    pub li: Id,
    /// 王建国 (退役军人), in h2.
    pub wang: Id,
    /// 赵小红 (no tags), in h2.
    pub zhao: Id,
    /// 李秀英's demand (供水), transferred, due 2026-03-10.
    pub demand: Id,
}

/// 小河村: three households, three residents, visits in February and March
/// 2026 by 张伟, a demand transferred with a due date of 2026-03-10.
pub fn sample() -> Sample {
    let mut v = village("V001", "小河村");
    let mut r = rng();
    let a = author("张伟", "2026-03-02");
    let mut hh = |v: &mut Village, addr: &str| {
        v.add_household(
            &mut r,
            &a,
            &NewHousehold {
                address: minqing_model::Address::parse(addr).unwrap(),
                number: None,
            },
        )
        .unwrap()
    };
    let h1 = hh(&mut v, "小河村三组12号");
    let h2 = hh(&mut v, "小河村一组3号");
    let _h3 = hh(&mut v, "小河村二组5号");
    let mut r = rng();
    let mut person = |v: &mut Village, h: &Id, name: &str, tags: &[&str], card: Option<&str>| {
        v.add_resident(
            &mut r,
            &a,
            &NewResident {
                household: h.clone(),
                name: PersonName::parse(name).unwrap(),
                fields: ResidentFields {
                    id_card: card.map(|c| IdCardNumber::parse(c, date("2026-03-02")).unwrap()),
                    phone: card.map(|_| Phone::parse("13905371234").unwrap()),
                    ..ResidentFields::default()
                },
                tags: tags.iter().map(|t| Tag::parse(t).unwrap()).collect(),
            },
        )
        .unwrap()
    };
    let li = person(
        &mut v,
        &h1,
        "李秀英",
        &["独居老人", "老党员"],
        Some("370811195803151224"),
    );
    let wang = person(&mut v, &h2, "王建国", &["退役军人"], None);
    let zhao = person(&mut v, &h2, "赵小红", &[], None);
    let mut r = rng();
    for (h, res, day, kind) in [
        (&h1, Some(&li), "2026-02-10", VisitKind::Key),
        (&h2, Some(&zhao), "2026-03-02", VisitKind::Regular),
    ] {
        v.log_visit(
            &mut r,
            &author("张伟", day),
            &NewVisit {
                household: h.clone(),
                resident: res.cloned(),
                kind,
                note: Note::parse("走访了解情况\n第二行").unwrap(),
                date: date(day),
            },
        )
        .unwrap();
    }
    let demand = v
        .open_demand(
            &mut r,
            &a,
            &NewDemand {
                resident: li.clone(),
                category: Category::parse("供水").unwrap(),
                text: DemandText::parse("自来水水压不足").unwrap(),
            },
        )
        .unwrap();
    v.record_step(
        &mut r,
        &author("张伟", "2026-03-03"),
        &demand,
        &minqing_model::Transition::Transfer {
            department: minqing_model::Department::parse("县水务局").unwrap(),
            due: Some(date("2026-03-10")),
        },
    )
    .unwrap();
    Sample {
        village: v,
        h1,
        h2,
        li,
        wang,
        zhao,
        demand,
    }
}

/// A page context for 张伟 on `today`.
pub fn ctx(today: &str) -> crate::Ctx<'static> {
    crate::Ctx {
        cadre: "张伟",
        csrf: "tok123",
        today: date(today),
        notice: None,
    }
}
