//! Duplicate residents (the same person created on two laptops offline) and
//! their merge.
//!
//! Duplicates are live residents of one village sharing a 身份证号.
//!
//! `merge KEEP OTHER` writes `merged_into = KEEP` (with `merged_at`,
//! `merged_by`) on OTHER, and fills KEEP's empty fields from OTHER and adds
//! OTHER's tags, in one change. Nothing else is rewritten: views resolve every
//! resident id through [`Village::canonical_resident`], so visits and demands
//! of OTHER (including ones logged later on a laptop that has not seen the
//! merge) show under KEEP, and OTHER is hidden from `residents()`.
//!
//! Convergence: `merged_into` is a register, so the same merge done on two
//! laptops converges trivially. If two laptops merge A into B and B into A at
//! once, the merged document holds a cycle A → B → A; the survivor of a cycle
//! is the resident with the **smallest id**, on every replica.

use serde::Serialize;

use crate::error::ModelError;
use crate::id::Id;
use crate::view::ResidentView;

/// Longest `merged_into` chain followed.
pub const MAX_MERGE_CHAIN: usize = 64;

/// Errors merging residents.
#[derive(Debug, thiserror::Error)]
pub enum DedupeError {
    /// KEEP and OTHER are the same resident.
    #[error("cannot merge resident {0} into itself: give two different residents")]
    Same(Id),
    /// OTHER (or KEEP) has already been merged into someone.
    #[error(
        "resident {id} was already merged into {into}: merge into {into} instead (`minqing resident duplicates` lists what is left)"
    )]
    AlreadyMerged {
        /// The resident named.
        id: Id,
        /// Whom it was merged into.
        into: String,
    },
    /// The document layer failed (unknown resident...).
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Residents sharing one 身份证号.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DuplicateGroup {
    /// The shared 身份证号.
    pub id_card: String,
    /// The residents, oldest first.
    pub residents: Vec<ResidentView>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resident::ResidentFields;
    use crate::testkit::*;
    use crate::validate::{IdCardNumber, PersonName, Phone, Tag, VisitKind};
    use crate::village::{NewResident, ResidentEdit, Village};

    const CARD: &str = "11010519491231002X";

    fn add_person(
        v: &mut Village,
        seed: u64,
        device: &str,
        household: &Id,
        phone: Option<&str>,
        tags: &[&str],
    ) -> Id {
        v.add_resident(
            &mut rng(seed),
            &author(device, "李书记", 10_000 + seed as i64),
            &NewResident {
                household: household.clone(),
                name: PersonName::parse("王秀英").unwrap(),
                fields: ResidentFields {
                    id_card: Some(IdCardNumber::parse(CARD, date("2026-03-01")).unwrap()),
                    phone: phone.map(|p| Phone::parse(p).unwrap()),
                    ..ResidentFields::default()
                },
                tags: tags.iter().map(|t| Tag::parse(t).unwrap()).collect(),
            },
        )
        .unwrap()
    }

    /// Two laptops create the same person offline, each logs a visit and a
    /// demand for them; after syncing, both see a duplicate pair.
    fn two_copies() -> (Village, Village, Id, Id) {
        let mut a = village("V1", "小河村");
        let h = household(
            &mut a,
            &mut rng(1),
            &author(DEV_A, "李书记", 1),
            "小河村1组1号",
        );
        let mut b = fork(&mut a, DEV_B);
        let x = add_person(&mut a, 11, DEV_A, &h, Some("13800138000"), &["老党员"]);
        let y = add_person(&mut b, 12, DEV_B, &h, None, &["独居老人"]);
        visit(
            &mut a,
            &mut rng(21),
            &author(DEV_A, "李书记", 2),
            &h,
            Some(&x),
            VisitKind::Regular,
            "2026-03-02",
        );
        visit(
            &mut b,
            &mut rng(22),
            &author(DEV_B, "王芳", 2),
            &h,
            Some(&y),
            VisitKind::Key,
            "2026-03-03",
        );
        demand(&mut b, &mut rng(23), &author(DEV_B, "王芳", 3), &y, "医疗");
        sync(&mut a, &mut b);
        (a, b, x, y)
    }

    fn shown(v: &Village) -> (Vec<ResidentView>, Vec<Option<String>>, Vec<String>) {
        (
            v.residents(),
            v.visits().into_iter().map(|x| x.resident_id).collect(),
            v.demands().into_iter().map(|d| d.resident_id).collect(),
        )
    }

    #[test]
    fn duplicates_show_after_merge_and_merge_folds_other_into_keep() {
        let (mut a, _b, x, y) = two_copies();
        let dups = a.duplicate_residents();
        assert_eq!(dups.len(), 1);
        assert_eq!(dups[0].id_card, CARD);
        let mut ids: Vec<&str> = dups[0].residents.iter().map(|r| r.id.as_str()).collect();
        ids.sort();
        let mut expected = vec![x.as_str(), y.as_str()];
        expected.sort();
        assert_eq!(ids, expected);

        let heads = a.heads();
        let who = author(DEV_A, "李书记", 50);
        assert!(matches!(
            a.merge_residents(&who, &x, &x),
            Err(DedupeError::Same(_))
        ));
        let nobody = Id::parse("zzzzzzzzzzzzzzzz").unwrap();
        assert!(a.merge_residents(&who, &x, &nobody).is_err());
        assert_eq!(a.heads(), heads);

        a.merge_residents(&who, &y, &x).unwrap();
        let (residents, visits, demands) = shown(&a);
        assert_eq!(residents.len(), 1);
        let kept = &residents[0];
        assert_eq!(kept.id, y.as_str());
        assert_eq!(
            kept.phone.as_deref(),
            Some("13800138000"),
            "filled from OTHER"
        );
        assert_eq!(kept.tags, ["独居老人", "老党员"]);
        assert_eq!(visits, [Some(y.to_string()), Some(y.to_string())]);
        assert_eq!(demands, [y.to_string()]);
        assert!(a.duplicate_residents().is_empty());
        assert!(a.is_merged_away(x.as_str()));
        assert_eq!(a.resident_detail(&y).unwrap().visits.len(), 2);
        // OTHER is still readable by id, pointing at KEEP.
        assert_eq!(
            a.resident(&x).unwrap().merged_into.as_deref(),
            Some(y.as_str())
        );
        let err = a.merge_residents(&who, &y, &x).unwrap_err().to_string();
        assert!(err.contains("already merged into"), "{err}");
        // An edit of OTHER made later elsewhere does not bring it back.
        a.edit_resident(
            &who,
            &x,
            &ResidentEdit {
                fields: ResidentFields {
                    phone: Some(Phone::parse("13900139000").unwrap()),
                    ..ResidentFields::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(a.residents().len(), 1);
    }

    #[test]
    fn crossed_merges_on_two_laptops_converge_on_the_smaller_id() {
        let (mut a, mut b, x, y) = two_copies();
        let mut c = fork(&mut a, "cccccccccccccccc");
        a.merge_residents(&author(DEV_A, "李书记", 60), &y, &x)
            .unwrap();
        b.merge_residents(&author(DEV_B, "王芳", 61), &x, &y)
            .unwrap();
        // A visit logged for the loser on a laptop that saw neither merge.
        let loser = std::cmp::max(&x, &y).clone();
        let h = Id::parse(&a.resident(&x).unwrap().household_id).unwrap();
        visit(
            &mut c,
            &mut rng(31),
            &author("cccccccccccccccc", "赵强", 70),
            &h,
            Some(&loser),
            VisitKind::Regular,
            "2026-03-04",
        );
        sync(&mut a, &mut c);
        sync(&mut a, &mut b);
        assert_eq!(a.visits().len(), 3);
        let survivor = std::cmp::min(&x, &y).to_string();
        assert_eq!(a.canonical_resident(x.as_str()), survivor);
        assert_eq!(a.canonical_resident(y.as_str()), survivor);
        assert_eq!(shown(&a), shown(&b));
        let (residents, visits, demands) = shown(&a);
        assert_eq!(residents.len(), 1);
        assert_eq!(residents[0].id, survivor);
        assert!(
            visits
                .iter()
                .all(|v| v.as_deref() == Some(survivor.as_str()))
        );
        assert_eq!(demands, [survivor]);
        assert!(a.duplicate_residents().is_empty());
    }

    #[test]
    fn the_same_merge_on_two_laptops_converges() {
        let (mut a, mut b, x, y) = two_copies();
        a.merge_residents(&author(DEV_A, "李书记", 60), &x, &y)
            .unwrap();
        b.merge_residents(&author(DEV_B, "王芳", 61), &x, &y)
            .unwrap();
        sync(&mut a, &mut b);
        assert_eq!(shown(&a), shown(&b));
        assert_eq!(a.residents().len(), 1);
        assert_eq!(a.residents()[0].id, x.as_str());
    }
}
