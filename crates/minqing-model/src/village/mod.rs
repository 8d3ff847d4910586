//! The village document: its automerge layout, the deterministic skeleton, and
//! [`Village`], the typed reader and writer over one village's `AutoCommit`.
//!
//! Layout (see docs/data-model.md): the root holds maps `info`, `households`,
//! `residents`, `visits`, `demands` and `leaves`; every record is a map of
//! scalar fields under its random id. Writes put single keys, so a write costs
//! the same whatever the size of the village.
//!
//! This module is the only code that knows the layout: every `impl Village`
//! is here or in its submodules — `steps` (demand workflow steps), `leaves`
//! (duty records), `merge` (duplicate residents) — which share one set of
//! document helpers ([`get_map`] and friends). The rules those writes follow
//! live below it, in plain data modules (`ledger`, `duty`, `dedupe`, and
//! `resident`, whose field list says which registers a resident has).

mod leaves;
mod merge;
mod records;
mod steps;

pub use records::{ReadVillage, ViewsDelta, VillageRecords};
pub use steps::{COUNTY_CONSOLE_DEVICE, CountyAuthor};

use std::collections::BTreeMap;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, Value};
use chrono::NaiveDate;
use minqing_sync::DocId;
use rand::Rng;

use crate::error::ModelError;
use crate::id::{Id, IdPrefix};
use crate::ledger::{DemandEvent, EventKind, fold, sort_events};
use crate::resident::{RESIDENT_FIELDS, ResidentFields, ResidentView};
use crate::validate::{
    Address, Category, DemandText, HouseholdNumber, IdCardNumber, Note, PersonName, PlaceName, Tag,
    VisitKind,
};
use crate::view::{
    DemandView, EventView, HouseholdView, ResidentDetail, VillageView, VisitView, rfc3339_ms,
};

/// The automerge actor of the skeleton change, identical on every replica.
pub const SKELETON_ACTOR: &[u8] = b"minqing-skeleton";
/// The top-level maps every village document has, created by the skeleton.
pub const ROOT_MAPS: [&str; 6] = [
    "info",
    "households",
    "residents",
    "visits",
    "demands",
    "leaves",
];

/// The kinds of record kept in a village, each a top-level map keyed by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    /// 户.
    Household,
    /// 居民.
    Resident,
    /// 走访.
    Visit,
    /// 诉求.
    Demand,
}

impl RecordKind {
    /// The singular English name used in messages and commands.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Household => "household",
            RecordKind::Resident => "resident",
            RecordKind::Visit => "visit",
            RecordKind::Demand => "demand",
        }
    }
}

/// Who writes, from which device, and when: stamped on every record and event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    /// The device's id (also its automerge actor).
    pub device_id: Id,
    /// The cadre's name.
    pub cadre: PersonName,
    /// The current time in unix milliseconds (from the caller's clock).
    pub now_ms: i64,
}

/// A household to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHousehold {
    /// Address.
    pub address: Address,
    /// Household number (户号).
    pub number: Option<HouseholdNumber>,
}

/// A resident to add. Birth date and gender are taken from the 身份证号 when
/// not given, and must agree with it when given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewResident {
    /// The household (full id).
    pub household: Id,
    /// Name.
    pub name: PersonName,
    /// Gender, birth date, 身份证号, phone, relation (`crate::resident`).
    pub fields: ResidentFields,
    /// Tags.
    pub tags: Vec<Tag>,
}

impl NewResident {
    /// A resident with only a household and a name; set `fields` and `tags`
    /// on it (or write `NewResident { fields, ..NewResident::new(h, name) }`).
    pub fn new(household: Id, name: PersonName) -> NewResident {
        NewResident {
            household,
            name,
            fields: ResidentFields::default(),
            tags: Vec::new(),
        }
    }
}

/// Changes to a resident: each `Some` field is written as one register; tags
/// are added and removed one key at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResidentEdit {
    /// New name.
    pub name: Option<PersonName>,
    /// New values of the other fields (a new 身份证号 brings its birth date
    /// and gender unless they are given).
    pub fields: ResidentFields,
    /// Tags to add.
    pub add_tags: Vec<Tag>,
    /// Tags to remove.
    pub remove_tags: Vec<Tag>,
}

impl ResidentEdit {
    /// Whether the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == ResidentEdit::default()
    }
}

/// A visit to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVisit {
    /// Household visited (full id).
    pub household: Id,
    /// Resident met (full id), if any.
    pub resident: Option<Id>,
    /// Kind of visit.
    pub kind: VisitKind,
    /// The note.
    pub note: Note,
    /// Date of the visit.
    pub date: NaiveDate,
}

/// A demand to open (受理).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDemand {
    /// Resident raising it (full id).
    pub resident: Id,
    /// Category.
    pub category: Category,
    /// Text.
    pub text: DemandText,
}

/// The skeleton: one deterministic change creating the top-level maps, with a
/// fixed actor and time 0, byte-identical on every replica. Two replicas that
/// create the same village independently therefore share these maps.
pub fn skeleton() -> Result<AutoCommit, ModelError> {
    let mut doc = AutoCommit::new().with_actor(ActorId::from(SKELETON_ACTOR));
    for key in ROOT_MAPS {
        doc.put_object(ROOT, key, ObjType::Map)?;
    }
    doc.commit_with(CommitOptions::default().with_time(0));
    Ok(doc)
}

/// Creates a village document: the skeleton plus one change by `actor` that
/// sets the village's name and township. `now_ms` is unix milliseconds.
pub fn new_village(
    id: &DocId,
    name: &str,
    township: Option<&str>,
    actor: &[u8],
    now_ms: i64,
) -> Result<AutoCommit, ModelError> {
    let name = PlaceName::parse(name)?;
    let township = township.map(PlaceName::parse).transpose()?;
    let mut doc = skeleton()?;
    doc.set_actor(ActorId::from(actor));
    let info = get_map(&doc, &ROOT, "info").ok_or(ModelError::NotAVillage {
        village: id.clone(),
        missing: "info",
    })?;
    doc.put(&info, "name", name.as_str())?;
    if let Some(t) = township {
        doc.put(&info, "township", t.as_str())?;
    }
    doc.put(&info, "created_at", now_ms)?;
    commit(&mut doc, now_ms);
    Ok(doc)
}

fn commit(doc: &mut AutoCommit, now_ms: i64) {
    doc.commit_with(CommitOptions::default().with_time(now_ms.div_euclid(1000)));
}

/// Writes each given field of a resident as its register.
fn put_fields(
    doc: &mut AutoCommit,
    obj: &ObjId,
    fields: &ResidentFields,
) -> Result<(), ModelError> {
    for f in RESIDENT_FIELDS {
        if let Some(value) = (f.get)(fields) {
            doc.put(obj, f.key, value)?;
        }
    }
    Ok(())
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

fn get_i64(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<i64> {
    match doc.get(obj, key) {
        Ok(Some((v, _))) => v.as_i64(),
        _ => None,
    }
}

/// One field of a record, as [`get_str`], [`get_i64`] and [`get_map`] read it.
enum Field {
    Str(String),
    Int(i64),
    Map(ObjId),
    Other,
}

/// A record's fields read in one pass over the record (`map_range`): the
/// values `get` would give, key by key (the winner of concurrent puts), for
/// one seek instead of one per field. automerge 0.12 seeks through its
/// columns on every `get`, and reading views field by field was most of the
/// time of every command and page (docs/benchmarks.md, C1).
struct Fields(Vec<(String, Field)>);

impl Fields {
    fn read(doc: &AutoCommit, obj: &ObjId) -> Fields {
        use automerge::{ScalarValueRef, ValueRef};
        Fields(
            doc.map_range(obj, ..)
                .map(|item| {
                    let field = match &item.value {
                        ValueRef::Object(ObjType::Map) => Field::Map(item.id()),
                        ValueRef::Scalar(ScalarValueRef::Str(s)) => Field::Str(s.to_string()),
                        ValueRef::Scalar(ScalarValueRef::Int(n))
                        | ValueRef::Scalar(ScalarValueRef::Counter(n))
                        | ValueRef::Scalar(ScalarValueRef::Timestamp(n)) => Field::Int(*n),
                        ValueRef::Scalar(ScalarValueRef::Uint(n)) => Field::Int(*n as i64),
                        ValueRef::Scalar(ScalarValueRef::F64(n)) => Field::Int(*n as i64),
                        _ => Field::Other,
                    };
                    (item.key.into_owned(), field)
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&Field> {
        // `map_range` gives keys in order.
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    fn str(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(Field::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }

    fn i64(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Field::Int(n)) => Some(*n),
            _ => None,
        }
    }

    fn map(&self, key: &str) -> Option<ObjId> {
        match self.get(key) {
            Some(Field::Map(o)) => Some(o.clone()),
            _ => None,
        }
    }

    /// Every string field, by key.
    fn strings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().filter_map(|(k, f)| match f {
            Field::Str(s) => Some((k.as_str(), s.as_str())),
            _ => None,
        })
    }
}

/// What merges of residents say, read once for a whole view: which
/// residents exist and who was merged into whom ([`Village::canonical_resident`]).
pub(crate) struct Merges {
    residents: std::collections::BTreeSet<String>,
    links: BTreeMap<String, String>,
}

/// The ids of the top-level maps of a loaded village.
#[derive(Clone, Debug)]
struct Roots {
    info: ObjId,
    households: ObjId,
    residents: ObjId,
    visits: ObjId,
    demands: ObjId,
}

/// One village document, read and written through its typed layout.
///
/// It remembers the heads it was last saved at: after writing, call
/// [`Village::take_unsaved`] and append the bytes to storage.
#[derive(Debug, Clone)]
pub struct Village {
    id: DocId,
    doc: AutoCommit,
    roots: Roots,
    saved_heads: Vec<ChangeHash>,
    /// Records this value created since [`Village::take_created`] last ran;
    /// `None` once something else changed the document (a merge, a new
    /// document): then who holds an index of its ids must rebuild it.
    created: Option<Vec<(RecordKind, Id)>>,
}

impl Village {
    /// Wraps a document loaded from storage (everything in it counts as saved).
    pub fn from_doc(id: DocId, mut doc: AutoCommit) -> Result<Village, ModelError> {
        let saved_heads = doc.get_heads();
        let mut v = Village::wrap(id, doc)?;
        v.saved_heads = saved_heads;
        Ok(v)
    }

    /// Wraps a document made in memory (by [`new_village`]): nothing in it counts
    /// as saved, so [`Village::take_unsaved`] returns all of it.
    pub fn from_new_doc(id: DocId, doc: AutoCommit) -> Result<Village, ModelError> {
        let mut v = Village::wrap(id, doc)?;
        v.created = None;
        Ok(v)
    }

    fn wrap(id: DocId, doc: AutoCommit) -> Result<Village, ModelError> {
        let map = |key: &'static str| {
            get_map(&doc, &ROOT, key).ok_or_else(|| ModelError::NotAVillage {
                village: id.clone(),
                missing: key,
            })
        };
        let roots = Roots {
            info: map("info")?,
            households: map("households")?,
            residents: map("residents")?,
            visits: map("visits")?,
            demands: map("demands")?,
        };
        Ok(Village {
            id,
            doc,
            roots,
            saved_heads: Vec::new(),
            created: Some(Vec::new()),
        })
    }

    /// Loads a village from stored bytes.
    pub fn load(id: DocId, bytes: &[u8]) -> Result<Village, ModelError> {
        let doc = AutoCommit::load(bytes)?;
        Village::from_doc(id, doc)
    }

    /// The village id.
    pub fn id(&self) -> &DocId {
        &self.id
    }

    /// The whole document as bytes (`AutoCommit::save`): a snapshot for a
    /// store, a fixture or a copy. Does not change what
    /// [`Village::take_unsaved`] returns.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// The current heads.
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The automerge document, read-only (its heads and changes, for the
    /// sync state of a village held in memory).
    pub fn document(&mut self) -> &automerge::Automerge {
        self.doc.document()
    }

    /// Marks the current state for [`Village::patches_since`] (automerge's
    /// diff cursor: the changes made from here on are indexed as they are
    /// applied) and returns its heads. A process that keeps views made
    /// elsewhere (read back from a store) marks the village when it loads
    /// it, so that [`VillageRecords::catch_up`] works after its writes.
    pub fn mark_views(&mut self) -> Vec<ChangeHash> {
        self.doc.update_diff_cursor();
        self.doc.get_heads()
    }

    /// Where this value was last marked ([`Village::mark_views`]), if it was.
    pub(crate) fn marked(&self) -> Option<Vec<ChangeHash>> {
        Some(self.doc.diff_cursor()).filter(|c| !c.is_empty())
    }

    /// The patches from `heads` to now, if `heads` is where this value was
    /// last marked ([`Village::mark_views`]); `None` otherwise.
    pub(crate) fn patches_since(&mut self, heads: &[ChangeHash]) -> Option<Vec<automerge::Patch>> {
        let mut cursor = self.doc.diff_cursor();
        let mut asked = heads.to_vec();
        cursor.sort();
        asked.sort();
        if cursor.is_empty() || cursor != asked {
            return None;
        }
        let now = self.doc.get_heads();
        Some(self.doc.diff(heads, &now))
    }

    /// Sets the actor for following writes (the device id's bytes).
    pub fn set_actor(&mut self, actor: &[u8]) {
        self.doc.set_actor(ActorId::from(actor));
    }

    /// The changes made since the last save (or load), as bytes to append to
    /// storage; empty if there are none. Marks them saved.
    pub fn take_unsaved(&mut self) -> Vec<u8> {
        let bytes = self.doc.save_after(&self.saved_heads);
        self.saved_heads = self.doc.get_heads();
        bytes
    }

    /// The records this value created (kind and id) since the last call,
    /// or `None` if the document also changed in another way since then (a
    /// merge): what an index of the village's ids must add after a save.
    /// Starts a new list.
    pub fn take_created(&mut self) -> Option<Vec<(RecordKind, Id)>> {
        self.created.replace(Vec::new())
    }

    /// Merges another replica of the same village into this one.
    pub fn merge(&mut self, other: &mut Village) -> Result<(), ModelError> {
        self.created = None;
        self.doc.merge(&mut other.doc)?;
        Ok(())
    }

    // ---- reading ----

    /// The village's name, township and record counts.
    pub fn view(&self) -> VillageView {
        VillageView {
            id: self.id.to_string(),
            name: get_str(&self.doc, &self.roots.info, "name").unwrap_or_default(),
            township: get_str(&self.doc, &self.roots.info, "township"),
            households: self.doc.length(&self.roots.households),
            residents: self.doc.length(&self.roots.residents),
            visits: self.doc.length(&self.roots.visits),
            demands: self.doc.length(&self.roots.demands),
        }
    }

    fn root(&self, kind: RecordKind) -> &ObjId {
        match kind {
            RecordKind::Household => &self.roots.households,
            RecordKind::Resident => &self.roots.residents,
            RecordKind::Visit => &self.roots.visits,
            RecordKind::Demand => &self.roots.demands,
        }
    }

    fn record(&self, kind: RecordKind, id: &Id) -> Option<ObjId> {
        get_map(&self.doc, self.root(kind), id.as_str())
    }

    /// Whether a record of `kind` with this id exists (one map lookup).
    pub fn contains(&self, kind: RecordKind, id: &Id) -> bool {
        self.record(kind, id).is_some()
    }

    /// Ids of records of `kind` starting with `prefix` (a range scan of the
    /// sorted map keys, not a walk of the whole map).
    pub fn ids_with_prefix(&self, kind: RecordKind, prefix: &IdPrefix) -> Vec<Id> {
        self.doc
            .map_range(self.root(kind), prefix.as_str().to_owned()..)
            .map(|item| item.key.into_owned())
            .take_while(|key| key.starts_with(prefix.as_str()))
            .filter_map(|key| Id::parse(&key).ok())
            .collect()
    }

    /// Every id of `kind` in the village, sorted (merged-away residents
    /// included): what an index of the village's ids holds.
    pub fn record_ids(&self, kind: RecordKind) -> Vec<Id> {
        self.ids(kind)
    }

    /// Every record of `kind`: its id and object, in one pass over the
    /// kind's map (what [`Village::ids`] and then a `get` per id would give).
    fn records(&self, kind: RecordKind) -> Vec<(Id, ObjId)> {
        use automerge::ValueRef;
        self.doc
            .map_range(self.root(kind), ..)
            .filter_map(|item| match item.value {
                ValueRef::Object(ObjType::Map) => {
                    Id::parse(&item.key).ok().map(|id| (id, item.id()))
                }
                _ => None,
            })
            .collect()
    }

    /// The merges of residents, read once (for views over many records).
    pub(crate) fn merges(&self) -> Merges {
        let mut m = Merges {
            residents: std::collections::BTreeSet::new(),
            links: BTreeMap::new(),
        };
        for (id, obj) in self.records(RecordKind::Resident) {
            if let Some(into) = get_str(&self.doc, &obj, "merged_into") {
                m.links.insert(id.as_str().to_owned(), into);
            }
            m.residents.insert(id.as_str().to_owned());
        }
        m
    }

    fn ids(&self, kind: RecordKind) -> Vec<Id> {
        self.doc
            .keys(self.root(kind))
            .filter_map(|k| Id::parse(&k).ok())
            .collect()
    }

    /// One household.
    pub fn household(&self, id: &Id) -> Option<HouseholdView> {
        let obj = self.record(RecordKind::Household, id)?;
        Some(self.household_view(id, &obj))
    }

    fn household_view(&self, id: &Id, obj: &ObjId) -> HouseholdView {
        let f = Fields::read(&self.doc, obj);
        HouseholdView {
            id: id.to_string(),
            village_id: self.id.to_string(),
            address: f.str("address").unwrap_or_default(),
            number: f.str("number"),
            cadre: f.str("cadre").unwrap_or_default(),
            created_at: rfc3339_ms(f.i64("created_at").unwrap_or(0)),
        }
    }

    /// Every household, by creation time then id.
    pub fn households(&self) -> Vec<HouseholdView> {
        let mut all: Vec<HouseholdView> = self
            .records(RecordKind::Household)
            .iter()
            .map(|(id, obj)| self.household_view(id, obj))
            .collect();
        all.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        all
    }

    /// One resident.
    pub fn resident(&self, id: &Id) -> Option<ResidentView> {
        let obj = self.record(RecordKind::Resident, id)?;
        let address = |household: &str| {
            Id::parse(household)
                .ok()
                .and_then(|h| self.record(RecordKind::Household, &h))
                .and_then(|h| get_str(&self.doc, &h, "address"))
        };
        let canonical = self.canonical_resident(id.as_str());
        Some(self.resident_view(id, &obj, &address, canonical))
    }

    fn resident_view(
        &self,
        id: &Id,
        obj: &ObjId,
        address: &dyn Fn(&str) -> Option<String>,
        canonical: String,
    ) -> ResidentView {
        let f = Fields::read(&self.doc, obj);
        let household_id = f.str("household_id").unwrap_or_default();
        let tags = f
            .map("tags")
            .map(|t| self.doc.keys(&t).collect())
            .unwrap_or_default();
        let mut view = ResidentView {
            id: id.to_string(),
            name: f.str("name").unwrap_or_default(),
            tags,
            address: address(&household_id).unwrap_or_default(),
            household_id,
            village_id: self.id.to_string(),
            cadre: f.str("cadre").unwrap_or_default(),
            created_at: rfc3339_ms(f.i64("created_at").unwrap_or(0)),
            merged_into: Some(canonical).filter(|c| c != id.as_str()),
            ..ResidentView::default()
        };
        for field in RESIDENT_FIELDS {
            *(field.shown_mut)(&mut view) = f.str(field.key);
        }
        view
    }

    /// The ids of the residents (merged ones too) whose household is
    /// `household`: reads one field per resident.
    pub(crate) fn residents_of_household(&self, household: &str) -> Vec<String> {
        self.records(RecordKind::Resident)
            .into_iter()
            .filter(|(_, obj)| {
                get_str(&self.doc, obj, "household_id").is_some_and(|h| h == household)
            })
            .map(|(id, _)| id.to_string())
            .collect()
    }

    /// Every resident not merged into another, by creation time then id.
    pub fn residents(&self) -> Vec<ResidentView> {
        let mut all = self.all_residents();
        all.retain(|r| r.merged_into.is_none());
        all
    }

    /// Every resident, merged ones too, by creation time then id.
    fn all_residents(&self) -> Vec<ResidentView> {
        let merges = self.merges();
        let addresses: BTreeMap<String, String> = self
            .records(RecordKind::Household)
            .into_iter()
            .filter_map(|(id, obj)| {
                get_str(&self.doc, &obj, "address").map(|a| (id.as_str().to_owned(), a))
            })
            .collect();
        let address = |h: &str| addresses.get(h).cloned();
        let mut all: Vec<ResidentView> = self
            .records(RecordKind::Resident)
            .iter()
            .map(|(id, obj)| {
                let canonical = merges.canonical(id.as_str());
                self.resident_view(id, obj, &address, canonical)
            })
            .collect();
        all.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        all
    }

    /// A resident with their visits and demands.
    pub fn resident_detail(&self, id: &Id) -> Option<ResidentDetail> {
        let resident = self.resident(id)?;
        let visits = self
            .visits()
            .into_iter()
            .filter(|v| v.resident_id.as_deref() == Some(id.as_str()))
            .collect();
        let demands = self
            .demands()
            .into_iter()
            .filter(|d| d.resident_id == id.as_str())
            .collect();
        Some(ResidentDetail {
            resident,
            visits,
            demands,
        })
    }

    /// One visit.
    pub fn visit(&self, id: &Id) -> Option<VisitView> {
        let obj = self.record(RecordKind::Visit, id)?;
        Some(self.visit_view(id, &obj, &|r| self.canonical_resident(r)))
    }

    fn visit_view(&self, id: &Id, obj: &ObjId, canonical: &dyn Fn(&str) -> String) -> VisitView {
        let f = Fields::read(&self.doc, obj);
        VisitView {
            id: id.to_string(),
            date: f.str("date").unwrap_or_default(),
            kind: f.str("kind").unwrap_or_default(),
            note: f.str("note").unwrap_or_default(),
            cadre: f.str("cadre").unwrap_or_default(),
            household_id: f.str("household_id").unwrap_or_default(),
            resident_id: f.str("resident_id").map(|r| canonical(&r)),
            village_id: self.id.to_string(),
            device_id: f.str("device_id").unwrap_or_default(),
            created_at: rfc3339_ms(f.i64("created_at").unwrap_or(0)),
        }
    }

    /// Every visit, by date, then time recorded, then id.
    pub fn visits(&self) -> Vec<VisitView> {
        let merges = self.merges();
        let canonical = |r: &str| merges.canonical(r);
        let mut all: Vec<VisitView> = self
            .records(RecordKind::Visit)
            .iter()
            .map(|(id, obj)| self.visit_view(id, obj, &canonical))
            .collect();
        all.sort_by(|a, b| (&a.date, &a.created_at, &a.id).cmp(&(&b.date, &b.created_at, &b.id)));
        all
    }

    /// The events of one demand, oldest first.
    pub fn demand_events(&self, id: &Id) -> Vec<DemandEvent> {
        match self
            .record(RecordKind::Demand, id)
            .and_then(|d| get_map(&self.doc, &d, "events"))
        {
            Some(events) => self.events_of(&events),
            None => Vec::new(),
        }
    }

    /// The events in a demand's `events` map, oldest first.
    fn events_of(&self, events: &ObjId) -> Vec<DemandEvent> {
        let mut out: Vec<DemandEvent> = self
            .doc
            .map_range(events, ..)
            .filter_map(|item| {
                let eid = Id::parse(&item.key).ok()?;
                let automerge::ValueRef::Object(ObjType::Map) = item.value else {
                    return None;
                };
                let f = Fields::read(&self.doc, &item.id());
                let fields = f
                    .strings()
                    .filter(|(k, _)| !matches!(*k, "kind" | "at" | "cadre" | "device_id"))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                Some(DemandEvent {
                    id: eid,
                    kind: EventKind::from_key(&f.str("kind").unwrap_or_default()),
                    at_ms: f.i64("at").unwrap_or(0),
                    cadre: f.str("cadre").unwrap_or_default(),
                    device_id: f.str("device_id").unwrap_or_default(),
                    fields,
                })
            })
            .collect();
        sort_events(&mut out);
        out
    }

    /// One demand with its events and derived status.
    pub fn demand(&self, id: &Id) -> Option<DemandView> {
        let obj = self.record(RecordKind::Demand, id)?;
        Some(self.demand_view(id, &obj, &|r| self.canonical_resident(r)))
    }

    fn demand_view(&self, id: &Id, obj: &ObjId, canonical: &dyn Fn(&str) -> String) -> DemandView {
        self.demand_view_events(id, obj, canonical).0
    }

    /// A demand's view and its raw events (read once for both).
    fn demand_view_events(
        &self,
        id: &Id,
        obj: &ObjId,
        canonical: &dyn Fn(&str) -> String,
    ) -> (DemandView, Vec<DemandEvent>) {
        let f = Fields::read(&self.doc, obj);
        let s = |k| f.str(k);
        let events = f
            .map("events")
            .map(|e| self.events_of(&e))
            .unwrap_or_default();
        let fold = fold(&events);
        let view = DemandView {
            id: id.to_string(),
            resident_id: canonical(&s("resident_id").unwrap_or_default()),
            household_id: s("household_id").unwrap_or_default(),
            village_id: self.id.to_string(),
            category: s("category").unwrap_or_default(),
            text: s("text").unwrap_or_default(),
            status: fold.status.name().to_owned(),
            department: fold.department.clone(),
            due: fold.due.map(|d| d.format("%Y-%m-%d").to_string()),
            satisfaction: fold.satisfaction.map(|s| s.as_str().to_owned()),
            closed_at: fold.closed_at_ms.map(rfc3339_ms),
            flagged: fold.flagged().count(),
            opened_at: rfc3339_ms(f.i64("opened_at").unwrap_or(0)),
            cadre: s("cadre").unwrap_or_default(),
            device_id: s("device_id").unwrap_or_default(),
            events: fold
                .steps
                .into_iter()
                .map(|step| EventView {
                    id: step.event.id.to_string(),
                    kind: step.event.kind.as_key().to_owned(),
                    kind_name: step.event.kind.name().to_owned(),
                    at: rfc3339_ms(step.event.at_ms),
                    cadre: step.event.cadre,
                    device_id: step.event.device_id,
                    fields: step.event.fields,
                    flag: step.flag,
                })
                .collect(),
        };
        (view, events)
    }

    /// Every demand, by opening time then id.
    pub fn demands(&self) -> Vec<DemandView> {
        let merges = self.merges();
        let canonical = |r: &str| merges.canonical(r);
        let mut all: Vec<DemandView> = self
            .records(RecordKind::Demand)
            .iter()
            .map(|(id, obj)| self.demand_view(id, obj, &canonical))
            .collect();
        all.sort_by(|a, b| (&a.opened_at, &a.id).cmp(&(&b.opened_at, &b.id)));
        all
    }

    // ---- writing: each method is one automerge change ----

    /// Runs one write; on error, rolls back whatever it had put, so a failed
    /// command leaves the document as it was.
    fn atomic<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        let journal = self.created.as_ref().map(Vec::len);
        let result = f(self);
        if result.is_err() {
            self.doc.rollback();
            if let (Some(created), Some(len)) = (self.created.as_mut(), journal) {
                created.truncate(len);
            }
        }
        result
    }

    fn new_record(
        &mut self,
        kind: RecordKind,
        rng: &mut (impl Rng + ?Sized),
    ) -> Result<(Id, ObjId), ModelError> {
        let id = Id::random(rng);
        if self.contains(kind, &id) {
            return Err(ModelError::DuplicateId {
                kind: kind.name(),
                id,
            });
        }
        let root = self.root(kind).clone();
        let obj = self.doc.put_object(&root, id.as_str(), ObjType::Map)?;
        if let Some(created) = self.created.as_mut() {
            created.push((kind, id.clone()));
        }
        Ok((id, obj))
    }

    fn stamp(&mut self, obj: &ObjId, author: &Author) -> Result<(), ModelError> {
        self.doc.put(obj, "cadre", author.cadre.as_str())?;
        self.doc.put(obj, "device_id", author.device_id.as_str())?;
        self.doc.put(obj, "created_at", author.now_ms)?;
        Ok(())
    }

    fn require(&self, kind: RecordKind, id: &Id) -> Result<ObjId, ModelError> {
        self.record(kind, id).ok_or_else(|| ModelError::NotFound {
            kind: kind.name(),
            id: id.clone(),
            village: self.id.clone(),
        })
    }

    /// Adds a household; returns its id.
    pub fn add_household(
        &mut self,
        rng: &mut (impl Rng + ?Sized),
        author: &Author,
        new: &NewHousehold,
    ) -> Result<Id, ModelError> {
        self.atomic(|v| {
            let (id, obj) = v.new_record(RecordKind::Household, rng)?;
            v.doc.put(&obj, "address", new.address.as_str())?;
            if let Some(n) = &new.number {
                v.doc.put(&obj, "number", n.as_str())?;
            }
            v.stamp(&obj, author)?;
            commit(&mut v.doc, author.now_ms);
            Ok(id)
        })
    }

    /// Adds a resident to a household of this village; returns the resident's id.
    pub fn add_resident(
        &mut self,
        rng: &mut (impl Rng + ?Sized),
        author: &Author,
        new: &NewResident,
    ) -> Result<Id, ModelError> {
        self.atomic(|v| {
            v.require(RecordKind::Household, &new.household)?;
            let mut fields = new.fields.clone();
            fields.settle_card()?;
            let (id, obj) = v.new_record(RecordKind::Resident, rng)?;
            let doc = &mut v.doc;
            doc.put(&obj, "household_id", new.household.as_str())?;
            doc.put(&obj, "name", new.name.as_str())?;
            put_fields(doc, &obj, &fields)?;
            let tags = doc.put_object(&obj, "tags", ObjType::Map)?;
            for t in &new.tags {
                doc.put(&tags, t.as_str(), true)?;
            }
            v.stamp(&obj, author)?;
            commit(&mut v.doc, author.now_ms);
            Ok(id)
        })
    }

    /// Edits a resident: one register per changed field, one key per tag.
    pub fn edit_resident(
        &mut self,
        author: &Author,
        id: &Id,
        edit: &ResidentEdit,
    ) -> Result<(), ModelError> {
        self.atomic(|v| {
            let obj = v.require(RecordKind::Resident, id)?;
            // The card that will be stored after the edit decides birth and gender.
            let mut fields = edit.fields.clone();
            if fields.id_card.is_some() {
                fields.settle_card()?;
            } else if let Some(card) = get_str(&v.doc, &obj, "id_card").and_then(|c| {
                // A stored card was checked when written; re-check it against the edit.
                IdCardNumber::parse(&c, NaiveDate::MAX).ok()
            }) {
                card.check_consistent(fields.birth, fields.gender)?;
            }
            let doc = &mut v.doc;
            if let Some(n) = &edit.name {
                doc.put(&obj, "name", n.as_str())?;
            }
            put_fields(doc, &obj, &fields)?;
            if !edit.add_tags.is_empty() || !edit.remove_tags.is_empty() {
                let tags = match get_map(doc, &obj, "tags") {
                    Some(t) => t,
                    None => doc.put_object(&obj, "tags", ObjType::Map)?,
                };
                for t in &edit.add_tags {
                    doc.put(&tags, t.as_str(), true)?;
                }
                for t in &edit.remove_tags {
                    if doc.get(&tags, t.as_str())?.is_some() {
                        doc.delete(&tags, t.as_str())?;
                    }
                }
            }
            doc.put(&obj, "updated_at", author.now_ms)?;
            commit(&mut v.doc, author.now_ms);
            Ok(())
        })
    }

    /// Logs a visit; returns its id. Checks the household (and resident) with
    /// single lookups: no walk over existing visits.
    pub fn log_visit(
        &mut self,
        rng: &mut (impl Rng + ?Sized),
        author: &Author,
        new: &NewVisit,
    ) -> Result<Id, ModelError> {
        self.atomic(|v| {
            v.require(RecordKind::Household, &new.household)?;
            if let Some(r) = &new.resident {
                let robj = v.require(RecordKind::Resident, r)?;
                if get_str(&v.doc, &robj, "household_id").as_deref() != Some(new.household.as_str())
                {
                    return Err(ModelError::ResidentNotInHousehold {
                        resident: r.clone(),
                        household: new.household.clone(),
                    });
                }
            }
            let (id, obj) = v.new_record(RecordKind::Visit, rng)?;
            let doc = &mut v.doc;
            doc.put(&obj, "date", new.date.format("%Y-%m-%d").to_string())?;
            doc.put(&obj, "kind", new.kind.as_str())?;
            doc.put(&obj, "note", new.note.as_str())?;
            doc.put(&obj, "household_id", new.household.as_str())?;
            if let Some(r) = &new.resident {
                doc.put(&obj, "resident_id", r.as_str())?;
            }
            v.stamp(&obj, author)?;
            commit(&mut v.doc, author.now_ms);
            Ok(id)
        })
    }

    /// Opens a demand (受理) for a resident; returns the demand's id.
    pub fn open_demand(
        &mut self,
        rng: &mut (impl Rng + ?Sized),
        author: &Author,
        new: &NewDemand,
    ) -> Result<Id, ModelError> {
        self.atomic(|v| {
            let robj = v.require(RecordKind::Resident, &new.resident)?;
            let household = get_str(&v.doc, &robj, "household_id").unwrap_or_default();
            let (id, obj) = v.new_record(RecordKind::Demand, rng)?;
            let event_id = Id::random(rng);
            let doc = &mut v.doc;
            doc.put(&obj, "resident_id", new.resident.as_str())?;
            doc.put(&obj, "household_id", household)?;
            doc.put(&obj, "category", new.category.as_str())?;
            doc.put(&obj, "text", new.text.as_str())?;
            doc.put(&obj, "opened_at", author.now_ms)?;
            doc.put(&obj, "cadre", author.cadre.as_str())?;
            doc.put(&obj, "device_id", author.device_id.as_str())?;
            let events = doc.put_object(&obj, "events", ObjType::Map)?;
            let ev = doc.put_object(&events, event_id.as_str(), ObjType::Map)?;
            doc.put(&ev, "kind", EventKind::Opened.as_key())?;
            doc.put(&ev, "at", author.now_ms)?;
            doc.put(&ev, "cadre", author.cadre.as_str())?;
            doc.put(&ev, "device_id", author.device_id.as_str())?;
            commit(&mut v.doc, author.now_ms);
            Ok(id)
        })
    }
}

/// Why a village document does not keep the layout the model defines
/// (docs/data-model.md, "Schema check").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A top-level map is missing, is not a map, is not the skeleton's map, or
    /// has competing values.
    #[error("the top-level `{key}` is {found}, not the village's `{key}` map")]
    Root {
        /// The root key.
        key: &'static str,
        /// What is there instead.
        found: String,
    },
    /// A field holds a value of the wrong type.
    #[error("`{path}` is {found}, but must be {expected}")]
    Field {
        /// Where, e.g. `residents.<id>.name`.
        path: String,
        /// The type the model writes there.
        expected: &'static str,
        /// What is there.
        found: String,
    },
    /// A record was deleted from a collection the model never deletes from
    /// (records and histories are kept; a merge marks a resident instead).
    #[error("`{path}` was deleted; records are never deleted")]
    Deleted {
        /// The record.
        path: String,
    },
}

/// Fields the model writes as `i64` unix milliseconds.
const INT_FIELDS: [&str; 5] = ["created_at", "updated_at", "opened_at", "merged_at", "at"];
/// Fields the model writes as strings.
/// (The resident's fields, [`RESIDENT_FIELDS`], are strings too.)
const STR_FIELDS: [&str; 20] = [
    "name",
    "township",
    "address",
    "number",
    "household_id",
    "date",
    "kind",
    "note",
    "resident_id",
    "category",
    "text",
    "cadre",
    "device_id",
    "month",
    "reason",
    "merged_into",
    "merged_by",
    "department",
    "due",
    "satisfaction",
];

fn describe(v: &Value<'_>) -> String {
    match v {
        Value::Object(t) => format!("a {t:?}").to_lowercase(),
        Value::Scalar(s) => match s.as_ref() {
            automerge::ScalarValue::Str(_) => "a string".into(),
            automerge::ScalarValue::Int(_) | automerge::ScalarValue::Uint(_) => "a number".into(),
            other => format!(
                "a {}",
                format!("{other:?}").split('(').next().unwrap_or("value")
            ),
        },
    }
}

/// The rule for the value at `key` of an object found at `depth` below a root
/// map `root` (depth 0: the root map itself; 1: a record; 2: inside a record…).
fn expected_type(root: &str, depth: usize, parent_key: &str, key: &str) -> Option<&'static str> {
    match (root, depth) {
        ("info", 0) => Some(if key == "created_at" { "int" } else { "scalar" }),
        (_, 0) => Some("map"),
        ("residents", 1) if key == "tags" => Some("map"),
        ("demands", 1) if key == "events" => Some("map"),
        (_, 1) => None,
        ("residents", 2) if parent_key == "tags" => Some("scalar"),
        ("demands", 2) if parent_key == "events" => Some("map"),
        ("demands", 3) => None,
        _ => Some("scalar"),
    }
}

fn check_value(
    path: &str,
    key: &str,
    rule: Option<&'static str>,
    v: &Value<'_>,
) -> Result<(), SchemaError> {
    let rule = rule.unwrap_or(if INT_FIELDS.contains(&key) {
        "int"
    } else if STR_FIELDS.contains(&key) || RESIDENT_FIELDS.iter().any(|f| f.key == key) {
        "string"
    } else {
        "scalar"
    });
    let ok = match (rule, v) {
        ("map", Value::Object(ObjType::Map)) => true,
        ("int", Value::Scalar(s)) => matches!(s.as_ref(), automerge::ScalarValue::Int(_)),
        ("string", Value::Scalar(s)) => matches!(s.as_ref(), automerge::ScalarValue::Str(_)),
        ("scalar", Value::Scalar(_)) => true,
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(SchemaError::Field {
        path: path.to_owned(),
        expected: match rule {
            "map" => "a map",
            "int" => "a number (unix milliseconds)",
            "string" => "a string",
            _ => "a plain value (not an object)",
        },
        found: describe(v),
    })
}

/// Checks that a village document keeps the layout the model defines, looking
/// only at what changed since `before` (all of it if `before` is empty): the
/// top-level maps are the skeleton's maps, with no competing values; records
/// are maps and are never deleted; every known field has the type the model
/// writes (numbers for times, strings for text, maps for `tags` and `events`);
/// an unknown field holds a plain value. The relay runs it on every device
/// message before keeping it.
pub fn check_schema(doc: &automerge::Automerge, before: &[ChangeHash]) -> Result<(), SchemaError> {
    let skeleton = skeleton_root_ids();
    for (key, want) in ROOT_MAPS.iter().zip(skeleton.iter()) {
        let all = doc.get_all(ROOT, *key).unwrap_or_default();
        let found = match all.as_slice() {
            [(Value::Object(ObjType::Map), id)] if id.to_string() == *want => continue,
            [] => "missing".to_owned(),
            [(v, _)] => describe(v),
            many => format!("{} competing values", many.len()),
        };
        return Err(SchemaError::Root { key, found });
    }
    let after = doc.get_heads();
    for patch in doc.diff(before, &after) {
        // path: (ROOT, root key), (root map, record id), …
        let Some((_, automerge::Prop::Map(root))) = patch.path.first() else {
            continue; // a put on the root itself: covered by the check above
        };
        let depth = patch.path.len() - 1;
        let parent_key = match patch.path.last() {
            Some((_, automerge::Prop::Map(k))) => k.as_str(),
            _ => "",
        };
        let mut path: Vec<String> = patch.path.iter().map(|(_, p)| p.to_string()).collect();
        match patch.action {
            automerge::PatchAction::PutMap { key, value, .. } => {
                path.push(key.clone());
                let rule = expected_type(root, depth, parent_key, &key);
                check_value(&path.join("."), &key, rule, &value.0)?;
            }
            automerge::PatchAction::DeleteMap { key } => {
                path.push(key);
                // Only a resident's tag is ever removed.
                let tag = root == "residents" && depth == 2 && parent_key == "tags";
                if !tag && root != "info" {
                    return Err(SchemaError::Deleted {
                        path: path.join("."),
                    });
                }
            }
            // Concurrent puts of one key (two cadres change one phone number):
            // the winner was checked when it was put; a counter (an unknown
            // plain field) may be incremented.
            automerge::PatchAction::Conflict { .. } | automerge::PatchAction::Increment { .. } => {}
            _ => {
                return Err(SchemaError::Field {
                    path: path.join("."),
                    expected: "a map",
                    found: "a list or text".into(),
                });
            }
        }
    }
    Ok(())
}

/// The object ids of the skeleton's top-level maps, as strings (`counter@actor`).
fn skeleton_root_ids() -> Vec<String> {
    let Ok(doc) = skeleton() else {
        return Vec::new();
    };
    ROOT_MAPS
        .iter()
        .map(|k| match doc.get(ROOT, *k) {
            Ok(Some((_, id))) => id.to_string(),
            _ => String::new(),
        })
        .collect()
}

/// The hash of the skeleton change: every replica makes it identically, so the
/// relay accepts it from any laptop whatever its actor.
pub fn skeleton_hash() -> Option<ChangeHash> {
    let mut doc = skeleton().ok()?;
    doc.get_heads().first().copied()
}

#[cfg(test)]
mod created_tests {
    use super::RecordKind;
    use crate::testkit::{self, DEV_A, DEV_B, author, fork, rng};
    use crate::{Id, NewVisit, Note, VisitKind};

    #[test]
    fn take_created_lists_new_records_and_gives_up_after_a_merge() {
        let mut v = testkit::village("V1", "白云村");
        // A new document: nothing is known of what it holds.
        assert_eq!(v.take_created(), None);
        let (mut r, who) = (rng(7), author(DEV_A, "王芳", 1_000));
        let h = testkit::household(&mut v, &mut r, &who, "一组 1 号");
        let p = testkit::resident(&mut v, &mut r, &who, &h, "李秀英", &[]);
        let visit = testkit::visit(
            &mut v,
            &mut r,
            &who,
            &h,
            Some(&p),
            VisitKind::Regular,
            "2026-03-02",
        );
        assert_eq!(
            v.take_created(),
            Some(vec![
                (RecordKind::Household, h.clone()),
                (RecordKind::Resident, p.clone()),
                (RecordKind::Visit, visit),
            ])
        );
        assert_eq!(v.take_created(), Some(vec![]));
        // A refused write (resident of another household) lists nothing.
        let other = Id::parse("zzzzzzzzzzzzzzzz").unwrap();
        let refused = v.log_visit(
            &mut r,
            &who,
            &NewVisit {
                household: other,
                resident: Some(p.clone()),
                kind: VisitKind::Regular,
                note: Note::parse("走访").unwrap(),
                date: testkit::date("2026-03-02"),
            },
        );
        assert!(refused.is_err());
        assert_eq!(v.take_created(), Some(vec![]));
        // A merge brings records nobody listed.
        let mut b = fork(&mut v, DEV_B);
        testkit::household(&mut b, &mut r, &author(DEV_B, "张伟", 2_000), "二组 2 号");
        v.merge(&mut b).unwrap();
        assert_eq!(v.take_created(), None);
        assert_eq!(v.take_created(), Some(vec![]));
    }
}
