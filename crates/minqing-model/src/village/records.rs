//! A village's views as plain data ([`VillageRecords`]), kept by a
//! long-running process next to the loaded document so that reads touch no
//! automerge, and [`ReadVillage`], the reads that both a [`Village`] and its
//! records answer — the same model functions run over either, so their
//! figures cannot differ (docs/store.md, "Views kept with a cached village").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use automerge::{ChangeHash, PatchAction, Prop};
use minqing_sync::DocId;

use super::{RecordKind, Village};
use crate::duty::LeaveView;
use crate::id::Id;
use crate::ledger::DemandEvent;
use crate::resident::ResidentView;
use crate::view::{DemandView, HouseholdView, ResidentDetail, VillageView, VisitView};

/// The reads of one village that views, reports and pages use; answered by
/// the document ([`Village`]) or by its kept views ([`VillageRecords`]).
pub trait ReadVillage {
    /// The village id.
    fn id(&self) -> &DocId;
    /// Its name, township and record counts.
    fn view(&self) -> VillageView;
    /// Every household, by creation time then id.
    fn households(&self) -> Vec<HouseholdView>;
    /// One household.
    fn household(&self, id: &Id) -> Option<HouseholdView>;
    /// Every resident not merged into another, by creation time then id.
    fn residents(&self) -> Vec<ResidentView>;
    /// One resident (a merged one too, with `merged_into`).
    fn resident(&self, id: &Id) -> Option<ResidentView>;
    /// A resident with their visits and demands.
    fn resident_detail(&self, id: &Id) -> Option<ResidentDetail>;
    /// Every visit, by date, then time recorded, then id.
    fn visits(&self) -> Vec<VisitView>;
    /// Every demand, by opening time then id.
    fn demands(&self) -> Vec<DemandView>;
    /// The events of one demand, oldest first.
    fn demand_events(&self, id: &Id) -> Vec<DemandEvent>;
    /// Every leave record, by month, cadre, then id.
    fn leaves(&self) -> Vec<LeaveView>;
    /// Whether a record of `kind` with this id exists.
    fn contains(&self, kind: RecordKind, id: &Id) -> bool;
    /// For kept views, their residents' generation
    /// ([`VillageRecords::generation`]); `None` for a document read directly.
    fn generation(&self) -> Option<u64> {
        None
    }
}

impl ReadVillage for Village {
    fn id(&self) -> &DocId {
        Village::id(self)
    }
    fn view(&self) -> VillageView {
        Village::view(self)
    }
    fn households(&self) -> Vec<HouseholdView> {
        Village::households(self)
    }
    fn household(&self, id: &Id) -> Option<HouseholdView> {
        Village::household(self, id)
    }
    fn residents(&self) -> Vec<ResidentView> {
        Village::residents(self)
    }
    fn resident(&self, id: &Id) -> Option<ResidentView> {
        Village::resident(self, id)
    }
    fn resident_detail(&self, id: &Id) -> Option<ResidentDetail> {
        Village::resident_detail(self, id)
    }
    fn visits(&self) -> Vec<VisitView> {
        Village::visits(self)
    }
    fn demands(&self) -> Vec<DemandView> {
        Village::demands(self)
    }
    fn demand_events(&self, id: &Id) -> Vec<DemandEvent> {
        Village::demand_events(self, id)
    }
    fn leaves(&self) -> Vec<LeaveView> {
        Village::leaves(self)
    }
    fn contains(&self, kind: RecordKind, id: &Id) -> bool {
        Village::contains(self, kind, id)
    }
}

/// Reads through a pointer answer as the village pointed to.
macro_rules! read_through {
    ($($ptr:ty),*) => {$(
        impl<T: ReadVillage + ?Sized> ReadVillage for $ptr {
            fn id(&self) -> &DocId {
                (**self).id()
            }
            fn view(&self) -> VillageView {
                (**self).view()
            }
            fn households(&self) -> Vec<HouseholdView> {
                (**self).households()
            }
            fn household(&self, id: &Id) -> Option<HouseholdView> {
                (**self).household(id)
            }
            fn residents(&self) -> Vec<ResidentView> {
                (**self).residents()
            }
            fn resident(&self, id: &Id) -> Option<ResidentView> {
                (**self).resident(id)
            }
            fn resident_detail(&self, id: &Id) -> Option<ResidentDetail> {
                (**self).resident_detail(id)
            }
            fn visits(&self) -> Vec<VisitView> {
                (**self).visits()
            }
            fn demands(&self) -> Vec<DemandView> {
                (**self).demands()
            }
            fn demand_events(&self, id: &Id) -> Vec<DemandEvent> {
                (**self).demand_events(id)
            }
            fn leaves(&self) -> Vec<LeaveView> {
                (**self).leaves()
            }
            fn contains(&self, kind: RecordKind, id: &Id) -> bool {
                (**self).contains(kind, id)
            }
            fn generation(&self) -> Option<u64> {
                (**self).generation()
            }
        }
    )*};
}

read_through!(&T, Box<T>, std::sync::Arc<T>);

/// Where generations come from: unique in the process, so a value names one
/// state of one village's residents and households.
static GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// Every view of one village as plain data, made from the document by the
/// model's own view functions and brought up to date after a write by reading
/// again only the records the write touched ([`VillageRecords::catch_up`]).
#[derive(Clone, Debug)]
pub struct VillageRecords {
    id: DocId,
    /// The document's heads these views show.
    heads: Vec<ChangeHash>,
    view: VillageView,
    households: BTreeMap<String, HouseholdView>,
    /// Every resident, merged ones too.
    residents: BTreeMap<String, ResidentView>,
    visits: BTreeMap<String, VisitView>,
    demands: BTreeMap<String, (DemandView, Vec<DemandEvent>)>,
    leaves: Vec<LeaveView>,
    /// Changes whenever residents or households may have changed.
    generation: u64,
}

/// What a diff touched: records by kind, `leaves` at all, or something the
/// update rule does not cover (then the views are made again).
#[derive(Default)]
struct Touched {
    records: BTreeMap<RecordKind, BTreeSet<String>>,
    leaves: bool,
    other: bool,
}

impl Touched {
    fn of(patches: &[automerge::Patch]) -> Touched {
        let mut t = Touched::default();
        for p in patches {
            let Some((_, Prop::Map(top))) = p.path.first() else {
                // A change to the document's root itself.
                t.other = true;
                continue;
            };
            let key = match p.path.get(1) {
                Some((_, Prop::Map(k))) => Some(k.clone()),
                Some(_) => None,
                None => match &p.action {
                    PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => {
                        Some(key.clone())
                    }
                    PatchAction::Increment {
                        prop: Prop::Map(k), ..
                    }
                    | PatchAction::Conflict { prop: Prop::Map(k) } => Some(k.clone()),
                    _ => None,
                },
            };
            let kind = match top.as_str() {
                "households" => RecordKind::Household,
                "residents" => RecordKind::Resident,
                "visits" => RecordKind::Visit,
                "demands" => RecordKind::Demand,
                "leaves" => {
                    t.leaves = true;
                    continue;
                }
                _ => {
                    t.other = true;
                    continue;
                }
            };
            match key {
                Some(k) => {
                    t.records.entry(kind).or_default().insert(k);
                }
                None => t.other = true,
            }
        }
        t
    }

    fn of_kind(&self, kind: RecordKind) -> impl Iterator<Item = &String> {
        self.records.get(&kind).into_iter().flatten()
    }
}

impl VillageRecords {
    /// Every view of `village`, read from its document. Marks the village
    /// (its diff cursor) so that [`VillageRecords::catch_up`] can later ask
    /// it which records changed since.
    pub fn of(village: &mut Village) -> VillageRecords {
        let heads = village.mark_views();
        let merges = village.merges();
        let canonical = |r: &str| merges.canonical(r);
        let demands = village
            .records(RecordKind::Demand)
            .iter()
            .map(|(id, obj)| {
                let (view, events) = village.demand_view_events(id, obj, &canonical);
                (id.to_string(), (view, events))
            })
            .collect();
        VillageRecords {
            id: village.id().clone(),
            heads,
            view: village.view(),
            households: by_id(village.households(), |h| &h.id),
            residents: by_id(village.all_residents(), |r| &r.id),
            visits: by_id(village.visits(), |v| &v.id),
            demands,
            leaves: village.leaves(),
            generation: next_generation(),
        }
    }

    /// Brings these views up to `village`, which must hold every change they
    /// show (the same village after writes): reads again only the records
    /// the new changes touched. Returns `false` when that rule does not
    /// cover what changed (a merge of residents, the village's `info`, a
    /// village not marked at these views' heads): then these views are stale
    /// and must be made again with [`VillageRecords::of`].
    pub fn catch_up(&mut self, village: &mut Village) -> bool {
        let Some(patches) = village.patches_since(&self.heads) else {
            return false;
        };
        let touched = Touched::of(&patches);
        if touched.other {
            return false;
        }
        let households: Vec<&String> = touched.of_kind(RecordKind::Household).collect();
        let mut residents: BTreeSet<String> =
            touched.of_kind(RecordKind::Resident).cloned().collect();
        if !households.is_empty() {
            // A household's address shows on its residents.
            let hs: BTreeSet<&str> = households.iter().map(|h| h.as_str()).collect();
            residents.extend(
                self.residents
                    .values()
                    .filter(|r| hs.contains(r.household_id.as_str()))
                    .map(|r| r.id.clone()),
            );
        }
        for key in &residents {
            let before = self.residents.get(key);
            let after = Id::parse(key).ok().and_then(|id| village.resident(&id));
            // A merge changes the resident ids shown on visits and demands.
            if before.is_some_and(|r| r.merged_into.is_some())
                || after.as_ref().is_some_and(|r| r.merged_into.is_some())
            {
                return false;
            }
            match after {
                Some(r) => self.residents.insert(key.clone(), r),
                None => self.residents.remove(key),
            };
        }
        for key in households {
            match Id::parse(key).ok().and_then(|id| village.household(&id)) {
                Some(h) => self.households.insert(key.clone(), h),
                None => self.households.remove(key),
            };
        }
        for key in touched.of_kind(RecordKind::Visit) {
            match Id::parse(key).ok().and_then(|id| village.visit(&id)) {
                Some(v) => self.visits.insert(key.clone(), v),
                None => self.visits.remove(key),
            };
        }
        for key in touched.of_kind(RecordKind::Demand) {
            let id = Id::parse(key).ok();
            match id.as_ref().and_then(|id| village.demand(id)) {
                Some(d) => {
                    let events = id.map(|id| village.demand_events(&id)).unwrap_or_default();
                    self.demands.insert(key.clone(), (d, events))
                }
                None => self.demands.remove(key),
            };
        }
        if touched.leaves {
            self.leaves = village.leaves();
        }
        if !residents.is_empty() || touched.records.contains_key(&RecordKind::Household) {
            self.generation = next_generation();
        }
        self.view = village.view();
        self.heads = village.mark_views();
        true
    }

    /// Changes whenever the residents or households shown may have changed:
    /// what a search index built from them can be keyed by.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The document heads these views show.
    pub fn heads(&self) -> &[ChangeHash] {
        &self.heads
    }
}

fn by_id<T>(items: Vec<T>, id: impl Fn(&T) -> &String) -> BTreeMap<String, T> {
    items.into_iter().map(|t| (id(&t).clone(), t)).collect()
}

fn sorted<T: Clone, K: Ord>(items: impl Iterator<Item = T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut all: Vec<T> = items.collect();
    all.sort_by_key(|t| key(t));
    all
}

impl ReadVillage for VillageRecords {
    fn id(&self) -> &DocId {
        &self.id
    }
    fn view(&self) -> VillageView {
        self.view.clone()
    }
    fn households(&self) -> Vec<HouseholdView> {
        sorted(self.households.values().cloned(), |h| {
            (h.created_at.clone(), h.id.clone())
        })
    }
    fn household(&self, id: &Id) -> Option<HouseholdView> {
        self.households.get(id.as_str()).cloned()
    }
    fn residents(&self) -> Vec<ResidentView> {
        sorted(
            self.residents
                .values()
                .filter(|r| r.merged_into.is_none())
                .cloned(),
            |r| (r.created_at.clone(), r.id.clone()),
        )
    }
    fn resident(&self, id: &Id) -> Option<ResidentView> {
        self.residents.get(id.as_str()).cloned()
    }
    fn resident_detail(&self, id: &Id) -> Option<ResidentDetail> {
        let resident = self.resident(id)?;
        let visits = sorted(
            self.visits
                .values()
                .filter(|v| v.resident_id.as_deref() == Some(id.as_str()))
                .cloned(),
            |v| (v.date.clone(), v.created_at.clone(), v.id.clone()),
        );
        let demands = sorted(
            self.demands
                .values()
                .map(|(d, _)| d)
                .filter(|d| d.resident_id == id.as_str())
                .cloned(),
            |d| (d.opened_at.clone(), d.id.clone()),
        );
        Some(ResidentDetail {
            resident,
            visits,
            demands,
        })
    }
    fn visits(&self) -> Vec<VisitView> {
        let mut all: Vec<&VisitView> = self.visits.values().collect();
        all.sort_by(|a, b| (&a.date, &a.created_at, &a.id).cmp(&(&b.date, &b.created_at, &b.id)));
        all.into_iter().cloned().collect()
    }
    fn demands(&self) -> Vec<DemandView> {
        let mut all: Vec<&DemandView> = self.demands.values().map(|(d, _)| d).collect();
        all.sort_by(|a, b| (&a.opened_at, &a.id).cmp(&(&b.opened_at, &b.id)));
        all.into_iter().cloned().collect()
    }
    fn demand_events(&self, id: &Id) -> Vec<DemandEvent> {
        self.demands
            .get(id.as_str())
            .map(|(_, e)| e.clone())
            .unwrap_or_default()
    }
    fn leaves(&self) -> Vec<LeaveView> {
        self.leaves.clone()
    }
    fn contains(&self, kind: RecordKind, id: &Id) -> bool {
        let id = id.as_str();
        match kind {
            RecordKind::Household => self.households.contains_key(id),
            RecordKind::Resident => self.residents.contains_key(id),
            RecordKind::Visit => self.visits.contains_key(id),
            RecordKind::Demand => self.demands.contains_key(id),
        }
    }
    fn generation(&self) -> Option<u64> {
        Some(self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duty::LeaveReason;
    use crate::ledger::{Department, Satisfaction, Transition};
    use crate::testkit::*;
    use crate::validate::{Month, Tag, VisitKind};
    use crate::village::ResidentEdit;

    /// Everything a reader can be asked, as text: every list, every record
    /// by id, every resident's detail and every demand's events.
    fn everything(r: &dyn ReadVillage) -> String {
        let mut out = format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n",
            r.id(),
            r.view(),
            r.households(),
            r.residents(),
            r.visits(),
            r.demands(),
            r.leaves()
        );
        let ids = |kind| match kind {
            RecordKind::Household => r.households().into_iter().map(|h| h.id).collect::<Vec<_>>(),
            RecordKind::Resident => r.residents().into_iter().map(|x| x.id).collect(),
            RecordKind::Visit => r.visits().into_iter().map(|x| x.id).collect(),
            RecordKind::Demand => r.demands().into_iter().map(|x| x.id).collect(),
        };
        for id in ids(RecordKind::Household) {
            let id = Id::parse(&id).unwrap();
            out += &format!(
                "{:?}{}\n",
                r.household(&id),
                r.contains(RecordKind::Household, &id)
            );
        }
        for id in ids(RecordKind::Resident) {
            let id = Id::parse(&id).unwrap();
            out += &format!("{:?}{:?}\n", r.resident(&id), r.resident_detail(&id));
        }
        for id in ids(RecordKind::Demand) {
            let id = Id::parse(&id).unwrap();
            out += &format!(
                "{:?}{}\n",
                r.demand_events(&id),
                r.contains(RecordKind::Demand, &id)
            );
        }
        out
    }

    /// Catches `records` up with `v` (`caught`: whether the update rule
    /// covers the change; else made again), then compares with the document.
    fn check(records: &mut VillageRecords, v: &mut Village, caught: bool) {
        let before = records.generation();
        assert_eq!(records.catch_up(v), caught, "catch_up");
        if !caught {
            *records = VillageRecords::of(v);
            assert_ne!(records.generation(), before);
        }
        assert_eq!(everything(&*records), everything(v));
        assert_eq!(records.heads(), v.heads().as_slice());
    }

    #[test]
    fn views_follow_every_write_and_equal_the_document() {
        let mut r = rng(7);
        let mut v = village("V1", "小河村");
        let who = author(DEV_A, "李书记", ms("2026-03-01"));
        let mut records = VillageRecords::of(&mut v);
        assert_eq!(everything(&records), everything(&v));

        let h = household(&mut v, &mut r, &who, "小河村1组1号");
        let g0 = records.generation();
        check(&mut records, &mut v, true);
        assert_ne!(
            records.generation(),
            g0,
            "a new household changes the generation"
        );
        let p = resident(&mut v, &mut r, &who, &h, "李秀英", &["独居老人"]);
        let q = resident(&mut v, &mut r, &who, &h, "李秀英", &[]);
        check(&mut records, &mut v, true);

        let g1 = records.generation();
        visit(
            &mut v,
            &mut r,
            &who,
            &h,
            Some(&p),
            VisitKind::Regular,
            "2026-03-02",
        );
        visit(
            &mut v,
            &mut r,
            &who,
            &h,
            None,
            VisitKind::Regular,
            "2026-02-27",
        );
        check(&mut records, &mut v, true);
        assert_eq!(
            records.generation(),
            g1,
            "visits leave the residents' generation"
        );

        let d = demand(&mut v, &mut r, &who, &p, "基础设施");
        check(&mut records, &mut v, true);
        let transfer = Transition::Transfer {
            department: Department::parse("县交通局").unwrap(),
            due: Some(date("2026-03-10")),
        };
        v.record_step(&mut r, &who, &d, &transfer).unwrap();
        check(&mut records, &mut v, true);
        let feedback = Transition::Feedback {
            text: crate::validate::Note::parse("路灯已修好").unwrap(),
        };
        v.record_step(&mut r, &who, &d, &feedback).unwrap();
        let revisit = Transition::Revisit {
            satisfaction: Satisfaction::parse("满意").unwrap(),
            note: None,
        };
        v.record_step(&mut r, &who, &d, &revisit).unwrap();
        v.record_step(&mut r, &who, &d, &Transition::Close).unwrap();
        check(&mut records, &mut v, true);

        v.add_leave(
            &mut r,
            &who,
            Month::parse("2026-03").unwrap(),
            &LeaveReason::parse("参加县里培训").unwrap(),
        )
        .unwrap();
        check(&mut records, &mut v, true);

        let edit = ResidentEdit {
            add_tags: vec![Tag::parse("老党员").unwrap()],
            ..ResidentEdit::default()
        };
        v.edit_resident(&who, &p, &edit).unwrap();
        check(&mut records, &mut v, true);

        // A colleague's changes merged in (what a sync brings).
        let mut other = fork(&mut v, DEV_B);
        let them = author(DEV_B, "王干部", ms("2026-03-03"));
        visit(
            &mut other,
            &mut r,
            &them,
            &h,
            Some(&q),
            VisitKind::Regular,
            "2026-03-03",
        );
        demand(&mut other, &mut r, &them, &q, "医疗");
        v.merge(&mut other).unwrap();
        check(&mut records, &mut v, true);

        // A merge of residents changes ids shown elsewhere: made again.
        v.merge_residents(&who, &p, &q).unwrap();
        check(&mut records, &mut v, false);
        visit(
            &mut v,
            &mut r,
            &who,
            &h,
            Some(&p),
            VisitKind::Regular,
            "2026-03-04",
        );
        check(&mut records, &mut v, true);
    }

    #[test]
    fn views_refuse_a_village_not_marked_at_their_heads() {
        let mut r = rng(3);
        let mut v = village("V1", "小河村");
        let who = author(DEV_A, "李书记", ms("2026-03-01"));
        household(&mut v, &mut r, &who, "小河村1组1号");
        let mut records = VillageRecords::of(&mut v);
        // A copy loaded from bytes has no cursor: nothing says what changed.
        let mut copy = fork(&mut v, DEV_A);
        household(&mut copy, &mut r, &who, "小河村1组2号");
        assert!(!records.catch_up(&mut copy));
        // Views made later than the village's mark do not match it either.
        let mut later = VillageRecords::of(&mut copy);
        household(&mut v, &mut r, &who, "小河村1组3号");
        VillageRecords::of(&mut copy);
        assert!(!later.catch_up(&mut v));
    }
}
