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

use std::collections::BTreeMap;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, Value};
use serde::Serialize;

use crate::error::ModelError;
use crate::id::Id;
use crate::view::ResidentView;
use crate::village::{Author, RecordKind, Village};

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

fn get_map(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

fn get_str(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key) {
        Ok(Some((v, _))) => v.as_str().map(str::to_owned),
        _ => None,
    }
}

impl Village {
    fn resident_obj(&self, id: &str) -> Option<ObjId> {
        let residents = get_map(self.doc(), &ROOT, "residents")?;
        get_map(self.doc(), &residents, id)
    }

    /// The resident an id stands for after merges: follows `merged_into`
    /// (ignoring links to unknown residents); in a cycle, the smallest id of
    /// the cycle. An unknown id resolves to itself.
    pub fn canonical_resident(&self, id: &str) -> String {
        let mut chain: Vec<String> = vec![id.to_owned()];
        loop {
            let Some(cur) = chain.last() else {
                return id.to_owned();
            };
            let next = self
                .resident_obj(cur)
                .and_then(|o| get_str(self.doc(), &o, "merged_into"))
                .filter(|n| self.resident_obj(n).is_some());
            let Some(next) = next else {
                return cur.clone();
            };
            if let Some(pos) = chain.iter().position(|c| *c == next) {
                return chain[pos..].iter().min().cloned().unwrap_or(next);
            }
            if chain.len() >= MAX_MERGE_CHAIN {
                return chain.iter().min().cloned().unwrap_or(next);
            }
            chain.push(next);
        }
    }

    /// Whether a resident has been merged into another (and so is hidden).
    pub fn is_merged_away(&self, id: &str) -> bool {
        self.canonical_resident(id) != id
    }

    /// Live residents sharing a 身份证号, by number.
    pub fn duplicate_residents(&self) -> Vec<DuplicateGroup> {
        let mut by_card: BTreeMap<String, Vec<ResidentView>> = BTreeMap::new();
        for r in self.residents() {
            if let Some(card) = r.id_card.clone() {
                by_card.entry(card).or_default().push(r);
            }
        }
        by_card
            .into_iter()
            .filter(|(_, rs)| rs.len() > 1)
            .map(|(id_card, residents)| DuplicateGroup { id_card, residents })
            .collect()
    }

    /// Folds resident `other` into `keep`: marks `other` merged, fills `keep`'s
    /// empty fields from it and adds its tags. One change; nothing written on
    /// error.
    pub fn merge_residents(
        &mut self,
        author: &Author,
        keep: &Id,
        other: &Id,
    ) -> Result<(), DedupeError> {
        if keep == other {
            return Err(DedupeError::Same(keep.clone()));
        }
        for id in [keep, other] {
            if !self.contains(RecordKind::Resident, id) {
                return Err(ModelError::NotFound {
                    kind: RecordKind::Resident.name(),
                    id: id.clone(),
                    village: self.id().clone(),
                }
                .into());
            }
            let into = self.canonical_resident(id.as_str());
            if into != id.as_str() {
                return Err(DedupeError::AlreadyMerged {
                    id: id.clone(),
                    into,
                });
            }
        }
        let (Some(keep_obj), Some(other_obj)) = (
            self.resident_obj(keep.as_str()),
            self.resident_obj(other.as_str()),
        ) else {
            // Both were found by `contains` just above.
            return Err(ModelError::NotFound {
                kind: RecordKind::Resident.name(),
                id: other.clone(),
                village: self.id().clone(),
            }
            .into());
        };
        let doc = self.doc_mut();
        let result = (|| -> Result<(), ModelError> {
            for field in ["gender", "birth", "id_card", "phone", "relation"] {
                if get_str(doc, &keep_obj, field).is_none()
                    && let Some(v) = get_str(doc, &other_obj, field)
                {
                    doc.put(&keep_obj, field, v)?;
                }
            }
            if let Some(other_tags) = get_map(doc, &other_obj, "tags") {
                let tags: Vec<String> = doc.keys(&other_tags).collect();
                if !tags.is_empty() {
                    let keep_tags = match get_map(doc, &keep_obj, "tags") {
                        Some(t) => t,
                        None => doc.put_object(&keep_obj, "tags", ObjType::Map)?,
                    };
                    for t in tags {
                        if doc.get(&keep_tags, t.as_str())?.is_none() {
                            doc.put(&keep_tags, t.as_str(), true)?;
                        }
                    }
                }
            }
            doc.put(&other_obj, "merged_into", keep.as_str())?;
            doc.put(&other_obj, "merged_at", author.now_ms)?;
            doc.put(&other_obj, "merged_by", author.cadre.as_str())?;
            doc.put(&keep_obj, "updated_at", author.now_ms)?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                doc.commit_with(CommitOptions::default().with_time(author.now_ms.div_euclid(1000)));
                Ok(())
            }
            Err(e) => {
                doc.rollback();
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use crate::validate::{IdCardNumber, PersonName, Phone, Tag, VisitKind};
    use crate::village::{NewResident, ResidentEdit};

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
                gender: None,
                birth: None,
                id_card: Some(IdCardNumber::parse(CARD, date("2026-03-01")).unwrap()),
                phone: phone.map(|p| Phone::parse(p).unwrap()),
                relation: None,
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
                phone: Some(Phone::parse("13900139000").unwrap()),
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
