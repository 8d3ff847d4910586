//! A village's views as plain data ([`VillageRecords`]), kept by a
//! long-running process next to the loaded document so that reads touch no
//! automerge, and [`ReadVillage`], the reads that both a [`Village`] and its
//! records answer — the same model functions run over either, so their
//! figures cannot differ (docs/store.md, "Views kept with a cached village").

use std::borrow::Cow;
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
    fn households(&self) -> Cow<'_, [HouseholdView]>;
    /// One household.
    fn household(&self, id: &Id) -> Option<HouseholdView>;
    /// Every resident not merged into another, by creation time then id.
    fn residents(&self) -> Cow<'_, [ResidentView]>;
    /// One resident (a merged one too, with `merged_into`).
    fn resident(&self, id: &Id) -> Option<ResidentView>;
    /// A resident with their visits and demands.
    fn resident_detail(&self, id: &Id) -> Option<ResidentDetail>;
    /// Every visit, by date, then time recorded, then id.
    fn visits(&self) -> Cow<'_, [VisitView]>;
    /// Every demand, by opening time then id.
    fn demands(&self) -> Cow<'_, [DemandView]>;
    /// The events of one demand, oldest first.
    fn demand_events(&self, id: &Id) -> Cow<'_, [DemandEvent]>;
    /// Every leave record, by month, cadre, then id.
    fn leaves(&self) -> Cow<'_, [LeaveView]>;
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
    fn households(&self) -> Cow<'_, [HouseholdView]> {
        Cow::Owned(Village::households(self))
    }
    fn household(&self, id: &Id) -> Option<HouseholdView> {
        Village::household(self, id)
    }
    fn residents(&self) -> Cow<'_, [ResidentView]> {
        Cow::Owned(Village::residents(self))
    }
    fn resident(&self, id: &Id) -> Option<ResidentView> {
        Village::resident(self, id)
    }
    fn resident_detail(&self, id: &Id) -> Option<ResidentDetail> {
        Village::resident_detail(self, id)
    }
    fn visits(&self) -> Cow<'_, [VisitView]> {
        Cow::Owned(Village::visits(self))
    }
    fn demands(&self) -> Cow<'_, [DemandView]> {
        Cow::Owned(Village::demands(self))
    }
    fn demand_events(&self, id: &Id) -> Cow<'_, [DemandEvent]> {
        Cow::Owned(Village::demand_events(self, id))
    }
    fn leaves(&self) -> Cow<'_, [LeaveView]> {
        Cow::Owned(Village::leaves(self))
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
            fn households(&self) -> Cow<'_, [HouseholdView]> {
                (**self).households()
            }
            fn household(&self, id: &Id) -> Option<HouseholdView> {
                (**self).household(id)
            }
            fn residents(&self) -> Cow<'_, [ResidentView]> {
                (**self).residents()
            }
            fn resident(&self, id: &Id) -> Option<ResidentView> {
                (**self).resident(id)
            }
            fn resident_detail(&self, id: &Id) -> Option<ResidentDetail> {
                (**self).resident_detail(id)
            }
            fn visits(&self) -> Cow<'_, [VisitView]> {
                (**self).visits()
            }
            fn demands(&self) -> Cow<'_, [DemandView]> {
                (**self).demands()
            }
            fn demand_events(&self, id: &Id) -> Cow<'_, [DemandEvent]> {
                (**self).demand_events(id)
            }
            fn leaves(&self) -> Cow<'_, [LeaveView]> {
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
    /// Each list in the order the document's views give (kept sorted as
    /// records are caught up), so a read borrows it.
    households: Vec<HouseholdView>,
    /// Every resident, merged ones too.
    residents: Vec<ResidentView>,
    /// Whether some resident is merged into another.
    any_merged: bool,
    visits: Vec<VisitView>,
    demands: Vec<DemandView>,
    events: BTreeMap<String, Vec<DemandEvent>>,
    leaves: Vec<LeaveView>,
    /// Changes whenever residents or households may have changed.
    generation: u64,
}

/// A list of views kept in the model's order: `key` orders them, `id` names one.
trait Ordered: Sized {
    fn id(&self) -> &str;
    fn before(&self, other: &Self) -> std::cmp::Ordering;
}

impl Ordered for HouseholdView {
    fn id(&self) -> &str {
        &self.id
    }
    fn before(&self, o: &Self) -> std::cmp::Ordering {
        (&self.created_at, &self.id).cmp(&(&o.created_at, &o.id))
    }
}

impl Ordered for ResidentView {
    fn id(&self) -> &str {
        &self.id
    }
    fn before(&self, o: &Self) -> std::cmp::Ordering {
        (&self.created_at, &self.id).cmp(&(&o.created_at, &o.id))
    }
}

impl Ordered for VisitView {
    fn id(&self) -> &str {
        &self.id
    }
    fn before(&self, o: &Self) -> std::cmp::Ordering {
        (&self.date, &self.created_at, &self.id).cmp(&(&o.date, &o.created_at, &o.id))
    }
}

impl Ordered for DemandView {
    fn id(&self) -> &str {
        &self.id
    }
    fn before(&self, o: &Self) -> std::cmp::Ordering {
        (&self.opened_at, &self.id).cmp(&(&o.opened_at, &o.id))
    }
}

/// Replaces (or removes, `None`) the record `id` of a sorted list, keeping it sorted.
fn upsert<T: Ordered>(list: &mut Vec<T>, id: &str, new: Option<T>) {
    if let Some(at) = list.iter().position(|t| t.id() == id) {
        list.remove(at);
    }
    if let Some(t) = new {
        let at = list.partition_point(|x| x.before(&t) == std::cmp::Ordering::Less);
        list.insert(at, t);
    }
}

fn find<'a, T: Ordered>(list: &'a [T], id: &str) -> Option<&'a T> {
    list.iter().find(|t| t.id() == id)
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
        let mut demands = Vec::new();
        let mut events = BTreeMap::new();
        for (id, obj) in village.records(RecordKind::Demand) {
            let (view, evs) = village.demand_view_events(&id, &obj, &canonical);
            events.insert(id.to_string(), evs);
            demands.push(view);
        }
        demands.sort_by(|a, b| a.before(b));
        let residents = village.all_residents();
        VillageRecords {
            id: village.id().clone(),
            heads,
            view: village.view(),
            households: village.households(),
            any_merged: residents.iter().any(|r| r.merged_into.is_some()),
            residents,
            visits: village.visits(),
            demands,
            events,
            leaves: village.leaves(),
            generation: next_generation(),
        }
    }

    /// Brings these views up to `village`, which must hold every change they
    /// show (the same village after writes): reads again only the records
    /// the new changes touched ([`ViewsDelta::since`], then
    /// [`VillageRecords::apply`]). Returns `false` when that rule does not
    /// cover what changed (a merge of residents, the village's `info`, a
    /// village not marked at these views' heads): then these views are stale
    /// and must be made again with [`VillageRecords::of`].
    pub fn catch_up(&mut self, village: &mut Village) -> bool {
        let residents = &self.residents;
        let residents_of = |_: &Village, h: &str| {
            residents
                .iter()
                .filter(|r| r.household_id == h)
                .map(|r| r.id.clone())
                .collect()
        };
        match ViewsDelta::since(village, &self.heads, &residents_of) {
            Some(delta) => self.apply(&delta),
            None => false,
        }
    }

    /// Applies what writes changed ([`ViewsDelta::since`] of these views'
    /// heads); `false` (and these views stale, to be made again) when the
    /// delta starts elsewhere or touches a merged resident.
    pub fn apply(&mut self, delta: &ViewsDelta) -> bool {
        if delta.from != self.heads {
            return false;
        }
        for (key, after) in &delta.residents {
            // A merge changes the resident ids shown on visits and demands.
            if find(&self.residents, key).is_some_and(|r| r.merged_into.is_some())
                || after.as_ref().is_some_and(|r| r.merged_into.is_some())
            {
                return false;
            }
        }
        for (key, after) in &delta.residents {
            upsert(&mut self.residents, key, after.clone());
        }
        for (key, h) in &delta.households {
            upsert(&mut self.households, key, h.clone());
        }
        for (key, v) in &delta.visits {
            upsert(&mut self.visits, key, v.clone());
        }
        for (key, d) in &delta.demands {
            match d {
                Some((_, events)) => self.events.insert(
                    key.clone(),
                    events
                        .iter()
                        .cloned()
                        .filter_map(StoredEvent::into_event)
                        .collect(),
                ),
                None => self.events.remove(key),
            };
            upsert(
                &mut self.demands,
                key,
                d.as_ref().map(|(view, _)| view.clone()),
            );
        }
        self.any_merged = self.residents.iter().any(|r| r.merged_into.is_some());
        if let Some(leaves) = &delta.leaves {
            self.leaves = leaves.clone();
        }
        if !delta.residents.is_empty() || !delta.households.is_empty() {
            self.generation = next_generation();
        }
        self.view = delta.view.clone();
        self.heads = delta.heads.clone();
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

    /// The views as bytes for a store to keep (postcard, [`STORED_FORMAT`]):
    /// a one-command process reads them back with
    /// [`VillageRecords::from_stored`] instead of loading the document
    /// (docs/store.md, "Views kept on disk").
    pub fn to_stored(&self) -> Result<Vec<u8>, postcard::Error> {
        let events: BTreeMap<&str, Vec<StoredEvent>> = self
            .events
            .iter()
            .map(|(k, evs)| (k.as_str(), evs.iter().map(StoredEvent::of).collect()))
            .collect();
        postcard::to_allocvec(&StoredRef {
            format: STORED_FORMAT,
            id: self.id.as_str(),
            heads: &self.heads,
            view: &self.view,
            households: &self.households,
            residents: &self.residents,
            visits: &self.visits,
            demands: &self.demands,
            events,
            leaves: &self.leaves,
        })
    }

    /// Views of village `id` from [`VillageRecords::to_stored`]'s bytes;
    /// `None` for bytes of another format or village, or that do not parse
    /// (the caller then makes them again from the document). They get a new
    /// [`VillageRecords::generation`].
    pub fn from_stored(id: &DocId, bytes: &[u8]) -> Option<VillageRecords> {
        let s: Stored = postcard::from_bytes(bytes).ok()?;
        if s.format != STORED_FORMAT || s.id != id.as_str() {
            return None;
        }
        let mut events = BTreeMap::new();
        for (key, evs) in s.events {
            let evs = evs
                .into_iter()
                .map(StoredEvent::into_event)
                .collect::<Option<Vec<_>>>()?;
            events.insert(key, evs);
        }
        Some(VillageRecords {
            id: id.clone(),
            heads: s.heads,
            view: s.view,
            households: s.households,
            any_merged: s.residents.iter().any(|r| r.merged_into.is_some()),
            residents: s.residents,
            visits: s.visits,
            demands: s.demands,
            events,
            leaves: s.leaves,
            generation: next_generation(),
        })
    }
}

/// What writes changed in a village's views since they were marked: every
/// record the writes touched as it is now (`None`: gone), the leaves if
/// touched, and the heads and counts after them. [`VillageRecords::catch_up`]
/// is [`ViewsDelta::since`] then [`VillageRecords::apply`]; a one-command
/// process keeps deltas in its store next to the views instead of writing
/// every view again (docs/store.md, "Views kept on disk").
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ViewsDelta {
    from: Vec<ChangeHash>,
    heads: Vec<ChangeHash>,
    view: VillageView,
    households: Vec<(String, Option<HouseholdView>)>,
    residents: Vec<(String, Option<ResidentView>)>,
    visits: Vec<(String, Option<VisitView>)>,
    demands: Vec<(String, Option<DemandAfter>)>,
    leaves: Option<Vec<LeaveView>>,
}

/// A demand as a delta keeps it: its view and its events.
type DemandAfter = (DemandView, Vec<StoredEvent>);

impl ViewsDelta {
    /// What changed in `village` since it was marked at `from`
    /// ([`Village::mark_views`]), read from the document — only the records
    /// the changes touched (a household's residents too: its address shows
    /// on them; `residents_of` names them). Marks the village again.
    /// `None` when the rule does not cover the changes (the village's
    /// `info`, a patch outside a record, a merge of residents, a village
    /// not marked at `from`).
    pub fn since(
        village: &mut Village,
        from: &[ChangeHash],
        residents_of: &dyn Fn(&Village, &str) -> Vec<String>,
    ) -> Option<ViewsDelta> {
        let patches = village.patches_since(from)?;
        let touched = Touched::of(&patches);
        if touched.other {
            return None;
        }
        let mut residents: BTreeSet<String> =
            touched.of_kind(RecordKind::Resident).cloned().collect();
        for h in touched.of_kind(RecordKind::Household) {
            residents.extend(residents_of(village, h));
        }
        let mut delta = ViewsDelta {
            from: from.to_vec(),
            heads: Vec::new(),
            view: village.view(),
            households: Vec::new(),
            residents: Vec::new(),
            visits: Vec::new(),
            demands: Vec::new(),
            leaves: touched.leaves.then(|| village.leaves()),
        };
        for key in residents {
            let after = Id::parse(&key).ok().and_then(|id| village.resident(&id));
            if after.as_ref().is_some_and(|r| r.merged_into.is_some()) {
                return None;
            }
            delta.residents.push((key, after));
        }
        for key in touched.of_kind(RecordKind::Household) {
            let h = Id::parse(key).ok().and_then(|id| village.household(&id));
            delta.households.push((key.clone(), h));
        }
        for key in touched.of_kind(RecordKind::Visit) {
            let v = Id::parse(key).ok().and_then(|id| village.visit(&id));
            delta.visits.push((key.clone(), v));
        }
        for key in touched.of_kind(RecordKind::Demand) {
            let d = Id::parse(key).ok().and_then(|id| {
                let view = village.demand(&id)?;
                let events = village
                    .demand_events(&id)
                    .iter()
                    .map(StoredEvent::of)
                    .collect();
                Some((view, events))
            });
            delta.demands.push((key.clone(), d));
        }
        delta.heads = village.mark_views();
        Some(delta)
    }

    /// [`ViewsDelta::since`] the village's own mark, with its households'
    /// residents read from the document: what a one-command process that
    /// marked the village when it loaded it keeps after a write.
    pub fn since_mark(village: &mut Village) -> Option<ViewsDelta> {
        let from = village.marked()?;
        ViewsDelta::since(village, &from, &|v, h| v.residents_of_household(h))
    }

    /// The delta as bytes for a store (postcard).
    pub fn to_stored(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(&(STORED_FORMAT, self))
    }

    /// A delta from [`ViewsDelta::to_stored`]'s bytes; `None` if they are of
    /// another format or do not parse.
    pub fn from_stored(bytes: &[u8]) -> Option<ViewsDelta> {
        let (format, delta): (u32, ViewsDelta) = postcard::from_bytes(bytes).ok()?;
        (format == STORED_FORMAT).then_some(delta)
    }
}

/// The format of [`VillageRecords::to_stored`]: a store keeps views only
/// of this format (another is read as absent and made again).
pub const STORED_FORMAT: u32 = 1;

/// [`VillageRecords`] as written.
#[derive(serde::Serialize)]
struct StoredRef<'a> {
    format: u32,
    id: &'a str,
    heads: &'a [ChangeHash],
    view: &'a VillageView,
    households: &'a [HouseholdView],
    residents: &'a [ResidentView],
    visits: &'a [VisitView],
    demands: &'a [DemandView],
    events: BTreeMap<&'a str, Vec<StoredEvent>>,
    leaves: &'a [LeaveView],
}

/// [`VillageRecords`] as read back.
#[derive(serde::Deserialize)]
struct Stored {
    format: u32,
    id: String,
    heads: Vec<ChangeHash>,
    view: VillageView,
    households: Vec<HouseholdView>,
    residents: Vec<ResidentView>,
    visits: Vec<VisitView>,
    demands: Vec<DemandView>,
    events: BTreeMap<String, Vec<StoredEvent>>,
    leaves: Vec<LeaveView>,
}

/// A [`DemandEvent`] as stored (its kind by the document's key).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct StoredEvent {
    id: String,
    kind: String,
    at_ms: i64,
    cadre: String,
    device_id: String,
    fields: BTreeMap<String, String>,
}

impl StoredEvent {
    fn of(e: &DemandEvent) -> StoredEvent {
        StoredEvent {
            id: e.id.as_str().to_owned(),
            kind: e.kind.as_key().to_owned(),
            at_ms: e.at_ms,
            cadre: e.cadre.clone(),
            device_id: e.device_id.clone(),
            fields: e.fields.clone(),
        }
    }

    fn into_event(self) -> Option<DemandEvent> {
        Some(DemandEvent {
            id: Id::parse(&self.id).ok()?,
            kind: crate::ledger::EventKind::from_key(&self.kind),
            at_ms: self.at_ms,
            cadre: self.cadre,
            device_id: self.device_id,
            fields: self.fields,
        })
    }
}

impl ReadVillage for VillageRecords {
    fn id(&self) -> &DocId {
        &self.id
    }
    fn view(&self) -> VillageView {
        self.view.clone()
    }
    fn households(&self) -> Cow<'_, [HouseholdView]> {
        Cow::Borrowed(&self.households)
    }
    fn household(&self, id: &Id) -> Option<HouseholdView> {
        find(&self.households, id.as_str()).cloned()
    }
    fn residents(&self) -> Cow<'_, [ResidentView]> {
        if self.any_merged {
            Cow::Owned(
                self.residents
                    .iter()
                    .filter(|r| r.merged_into.is_none())
                    .cloned()
                    .collect(),
            )
        } else {
            Cow::Borrowed(&self.residents)
        }
    }
    fn resident(&self, id: &Id) -> Option<ResidentView> {
        find(&self.residents, id.as_str()).cloned()
    }
    fn resident_detail(&self, id: &Id) -> Option<ResidentDetail> {
        let resident = self.resident(id)?;
        let visits = self
            .visits
            .iter()
            .filter(|v| v.resident_id.as_deref() == Some(id.as_str()))
            .cloned()
            .collect();
        let demands = self
            .demands
            .iter()
            .filter(|d| d.resident_id == id.as_str())
            .cloned()
            .collect();
        Some(ResidentDetail {
            resident,
            visits,
            demands,
        })
    }
    fn visits(&self) -> Cow<'_, [VisitView]> {
        Cow::Borrowed(&self.visits)
    }
    fn demands(&self) -> Cow<'_, [DemandView]> {
        Cow::Borrowed(&self.demands)
    }
    fn demand_events(&self, id: &Id) -> Cow<'_, [DemandEvent]> {
        match self.events.get(id.as_str()) {
            Some(e) => Cow::Borrowed(e),
            None => Cow::Owned(Vec::new()),
        }
    }
    fn leaves(&self) -> Cow<'_, [LeaveView]> {
        Cow::Borrowed(&self.leaves)
    }
    fn contains(&self, kind: RecordKind, id: &Id) -> bool {
        let id = id.as_str();
        match kind {
            RecordKind::Household => find(&self.households, id).is_some(),
            RecordKind::Resident => find(&self.residents, id).is_some(),
            RecordKind::Visit => find(&self.visits, id).is_some(),
            RecordKind::Demand => self.events.contains_key(id),
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
            RecordKind::Household => r
                .households()
                .iter()
                .map(|h| h.id.clone())
                .collect::<Vec<_>>(),
            RecordKind::Resident => r.residents().iter().map(|x| x.id.clone()).collect(),
            RecordKind::Visit => r.visits().iter().map(|x| x.id.clone()).collect(),
            RecordKind::Demand => r.demands().iter().map(|x| x.id.clone()).collect(),
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
    /// The views as a store gives them back are caught up too (what a
    /// one-command process does), so the stored form is checked at every step.
    fn check(records: &mut VillageRecords, v: &mut Village, caught: bool) {
        let stored = records.to_stored().unwrap();
        let mut back = VillageRecords::from_stored(records.id(), &stored).unwrap();
        assert_eq!(everything(&back), everything(&*records), "stored form");
        assert_eq!(back.heads(), records.heads());
        // What a one-command process keeps: the delta of its village's own
        // mark (the households' residents read from the document), stored.
        let mut marked = v.clone();
        let applied = ViewsDelta::since_mark(&mut marked).is_some_and(|d| {
            let d = ViewsDelta::from_stored(&d.to_stored().unwrap()).unwrap();
            back.apply(&d)
        });
        assert_eq!(applied, caught, "a stored delta applied to the stored form");
        if caught {
            assert_eq!(everything(&back), everything(v), "stored form caught up");
            assert_eq!(back.heads(), marked.heads().as_slice());
        }
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
    fn stored_views_of_another_village_format_or_garbage_are_refused() {
        let mut r = rng(5);
        let mut v = village("V1", "小河村");
        let who = author(DEV_A, "李书记", ms("2026-03-01"));
        household(&mut v, &mut r, &who, "小河村1组1号");
        let stored = VillageRecords::of(&mut v).to_stored().unwrap();
        let id = v.id().clone();
        assert!(VillageRecords::from_stored(&id, &stored).is_some());
        assert!(VillageRecords::from_stored(&DocId::new("V2").unwrap(), &stored).is_none());
        // The format is the first field (a varint: one byte).
        assert_eq!(u32::from(stored[0]), STORED_FORMAT);
        let mut newer = stored.clone();
        newer[0] += 1;
        assert!(VillageRecords::from_stored(&id, &newer).is_none());
        assert!(VillageRecords::from_stored(&id, &stored[..stored.len() / 2]).is_none());
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
