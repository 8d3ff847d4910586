//! The village index: which village holds each record id, kept in the
//! store's meta (`ix/…`) so that a command naming one record loads one
//! village. It is trusted only while its chain of versions ends at the
//! document's current [`Store::doc_version`]; anything else is rebuilt from
//! the document (docs/store.md, "Village index and document versions").

use std::collections::BTreeSet;

use minqing_model::{Id, IdPrefix, RecordKind};
use minqing_sync::{DocId, DocVersion, Store};
use serde::{Deserialize, Serialize};

/// The format of the values under `ix/`.
pub const FORMAT: u32 = 1;
/// After this many deltas the chain is folded into a new base
/// (after the command's output, in [`fold_if_long`]).
pub const FOLD_AFTER: usize = 64;

/// The record kinds the index lists, in the order of [`Ids`]' lists.
pub const KINDS: [RecordKind; 4] = [
    RecordKind::Household,
    RecordKind::Resident,
    RecordKind::Visit,
    RecordKind::Demand,
];

fn slot(kind: RecordKind) -> usize {
    match kind {
        RecordKind::Household => 0,
        RecordKind::Resident => 1,
        RecordKind::Visit => 2,
        RecordKind::Demand => 3,
    }
}

/// Ids by kind, as stored.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Ids {
    #[serde(default)]
    households: Vec<String>,
    #[serde(default)]
    residents: Vec<String>,
    #[serde(default)]
    visits: Vec<String>,
    #[serde(default)]
    demands: Vec<String>,
}

impl Ids {
    fn list_mut(&mut self, kind: RecordKind) -> &mut Vec<String> {
        match kind {
            RecordKind::Household => &mut self.households,
            RecordKind::Resident => &mut self.residents,
            RecordKind::Visit => &mut self.visits,
            RecordKind::Demand => &mut self.demands,
        }
    }

    fn lists(self) -> [Vec<String>; 4] {
        [self.households, self.residents, self.visits, self.demands]
    }
}

/// `ix/<village>`: every id of the village at document version `version`.
#[derive(Serialize, Deserialize)]
struct Base {
    format: u32,
    version: String,
    #[serde(flatten)]
    ids: Ids,
}

/// The head of a base: what a write needs to know of it.
#[derive(Deserialize)]
struct BaseHead {
    format: u32,
    version: String,
}

/// `ix/<village>/d/<n>`: what one write added, from version `from` to `to`.
#[derive(Serialize, Deserialize)]
struct Delta {
    from: String,
    to: String,
    #[serde(default)]
    add: Ids,
}

/// The head of a delta.
#[derive(Deserialize)]
struct DeltaHead {
    from: String,
    to: String,
}

fn base_key(doc: &DocId) -> String {
    format!("ix/{doc}")
}

fn delta_prefix(doc: &DocId) -> String {
    format!("ix/{doc}/d/")
}

fn delta_key(doc: &DocId, n: usize) -> String {
    format!("ix/{doc}/d/{n:08x}")
}

/// One village's ids, true at the document version it was read at.
#[derive(Clone, Debug, Default)]
pub struct VillageIds {
    sets: [BTreeSet<String>; 4],
}

impl VillageIds {
    /// The ids of `kind` that start with `prefix`, sorted.
    pub fn with_prefix<'a>(
        &'a self,
        kind: RecordKind,
        prefix: &'a IdPrefix,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.sets[slot(kind)]
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .map(String::as_str)
            .take_while(move |id| id.starts_with(prefix.as_str()))
    }

    /// Whether the village holds the record.
    pub fn contains(&self, kind: RecordKind, id: &Id) -> bool {
        self.sets[slot(kind)].contains(id.as_str())
    }

    /// The ids of a loaded village (the rebuild).
    pub fn of(village: &minqing_model::Village) -> VillageIds {
        let mut out = VillageIds::default();
        for kind in KINDS {
            out.sets[slot(kind)] = village
                .record_ids(kind)
                .into_iter()
                .map(|id| id.as_str().to_owned())
                .collect();
        }
        out
    }

    fn add(&mut self, ids: Ids) {
        for (set, list) in self.sets.iter_mut().zip(ids.lists()) {
            set.extend(list);
        }
    }

    fn to_ids(&self) -> Ids {
        let mut ids = Ids::default();
        for kind in KINDS {
            *ids.list_mut(kind) = self.sets[slot(kind)].iter().cloned().collect();
        }
        ids
    }
}

/// Where a village's chain ends now: its version and how many deltas it has.
#[derive(Clone, Debug)]
pub struct ChainEnd {
    version: String,
    deltas: usize,
}

/// The village's index if it is true at `now` (its chain of versions runs
/// from the base through every delta to `now`); `None` if it is missing,
/// damaged, of another format or stale. Read errors count as stale: the
/// index is rebuilt, never trusted blindly.
pub fn read(store: &dyn Store, doc: &DocId, now: &DocVersion) -> Option<VillageIds> {
    let raw = store.meta_get(&base_key(doc)).ok()??;
    let base: Base = serde_json::from_slice(&raw).ok()?;
    if base.format != FORMAT {
        return None;
    }
    let mut ids = VillageIds::default();
    ids.add(base.ids);
    let mut end = base.version;
    for (_, raw) in store.meta_scan(&delta_prefix(doc)).ok()? {
        let delta: Delta = serde_json::from_slice(&raw).ok()?;
        if delta.from != end {
            return None;
        }
        end = delta.to;
        ids.add(delta.add);
    }
    (end == now.as_str()).then_some(ids)
}

/// Where the village's chain ends, reading only versions (what a write
/// needs before it appends); `None` if there is no usable chain.
pub fn chain_end(store: &dyn Store, doc: &DocId) -> Option<ChainEnd> {
    let raw = store.meta_get(&base_key(doc)).ok()??;
    let base: BaseHead = serde_json::from_slice(&raw).ok()?;
    if base.format != FORMAT {
        return None;
    }
    let mut end = base.version;
    let deltas = store.meta_scan(&delta_prefix(doc)).ok()?;
    for (_, raw) in &deltas {
        let delta: DeltaHead = serde_json::from_slice(raw).ok()?;
        if delta.from != end {
            return None;
        }
        end = delta.to;
    }
    Some(ChainEnd {
        version: end,
        deltas: deltas.len(),
    })
}

/// Writes `ids` as the village's new base at `version`: the old deltas are
/// removed first, so a crash in between leaves a chain that does not reach
/// the document (stale), never a wrong one. Durable at the next flush.
pub fn write_base(
    store: &dyn Store,
    doc: &DocId,
    version: &DocVersion,
    ids: &VillageIds,
) -> anyhow::Result<()> {
    for (key, _) in store.meta_scan(&delta_prefix(doc))? {
        store.meta_remove(&key)?;
    }
    let base = Base {
        format: FORMAT,
        version: version.as_str().to_owned(),
        ids: ids.to_ids(),
    };
    store.meta_put(&base_key(doc), &serde_json::to_vec(&base)?)?;
    Ok(())
}

/// After an append that took the village from `before` to `after`: adds the
/// delta for the records it created, if the chain was true at `before` and
/// the write's records are all known (`created` is `Some`). Otherwise
/// nothing: the chain then no longer reaches the document, and the next
/// reader rebuilds it. Durable with the append, at the same flush.
pub fn record_write(
    store: &dyn Store,
    doc: &DocId,
    chain: Option<ChainEnd>,
    before: Option<&DocVersion>,
    after: Option<&DocVersion>,
    created: Option<Vec<(RecordKind, Id)>>,
) -> anyhow::Result<()> {
    let (Some(chain), Some(before), Some(after), Some(created)) = (chain, before, after, created)
    else {
        return Ok(());
    };
    if chain.version != before.as_str() {
        return Ok(());
    }
    let mut add = Ids::default();
    for (kind, id) in created {
        add.list_mut(kind).push(id.as_str().to_owned());
    }
    let delta = Delta {
        from: before.as_str().to_owned(),
        to: after.as_str().to_owned(),
        add,
    };
    store.meta_put(&delta_key(doc, chain.deltas), &serde_json::to_vec(&delta)?)?;
    Ok(())
}

/// After a compaction (same content, new version): moves a true chain on to
/// `after` with an empty delta.
pub fn restamp(
    store: &dyn Store,
    doc: &DocId,
    before: &DocVersion,
    after: &DocVersion,
) -> anyhow::Result<()> {
    if let Some(chain) = chain_end(store, doc).filter(|c| c.version == before.as_str()) {
        let delta = Delta {
            from: before.as_str().to_owned(),
            to: after.as_str().to_owned(),
            add: Ids::default(),
        };
        store.meta_put(&delta_key(doc, chain.deltas), &serde_json::to_vec(&delta)?)?;
    }
    Ok(())
}

/// Folds a long chain into a new base (no document load), so reading stays
/// one value and a few deltas. Returns whether it wrote.
pub fn fold_if_long(store: &dyn Store, doc: &DocId, now: &DocVersion) -> anyhow::Result<bool> {
    match chain_end(store, doc) {
        Some(c) if c.deltas >= FOLD_AFTER && c.version == now.as_str() => {}
        _ => return Ok(false),
    }
    let Some(ids) = read(store, doc, now) else {
        return Ok(false);
    };
    write_base(store, doc, now, &ids)?;
    Ok(true)
}

/// Removes the index of villages no longer held.
pub fn remove_orphans(store: &dyn Store, held: &[DocId]) -> anyhow::Result<()> {
    for (key, _) in store.meta_scan("ix/")? {
        let village = key["ix/".len()..].split('/').next().unwrap_or_default();
        if !held.iter().any(|d| d.as_str() == village) {
            store.meta_remove(&key)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use minqing_sync::{MemStorage, Storage};

    fn id(s: &str) -> Id {
        Id::parse(s).unwrap()
    }

    fn version(store: &MemStorage, doc: &DocId) -> DocVersion {
        store.doc_version(doc).unwrap().unwrap()
    }

    fn set(ids: &[&str]) -> VillageIds {
        let mut v = VillageIds::default();
        v.sets[slot(RecordKind::Household)] = ids.iter().map(|s| (*s).to_owned()).collect();
        v
    }

    fn households(ids: &VillageIds) -> Vec<String> {
        ids.sets[slot(RecordKind::Household)]
            .iter()
            .cloned()
            .collect()
    }

    #[test]
    fn the_index_is_true_only_while_its_chain_reaches_the_document() {
        let store = MemStorage::new();
        let doc = DocId::new("V1").unwrap();
        store.append(&doc, b"a").unwrap();
        let v0 = version(&store, &doc);
        assert!(read(&store, &doc, &v0).is_none(), "no index yet");
        write_base(&store, &doc, &v0, &set(&["aaaaaaaaaaaaaaaa"])).unwrap();
        assert_eq!(
            households(&read(&store, &doc, &v0).unwrap()),
            ["aaaaaaaaaaaaaaaa"]
        );
        // A write recorded with its delta: still true, with the new id.
        let chain = chain_end(&store, &doc);
        store.append(&doc, b"b").unwrap();
        let v1 = version(&store, &doc);
        record_write(
            &store,
            &doc,
            chain,
            Some(&v0),
            Some(&v1),
            Some(vec![(RecordKind::Household, id("bbbbbbbbbbbbbbbb"))]),
        )
        .unwrap();
        assert_eq!(
            households(&read(&store, &doc, &v1).unwrap()),
            ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]
        );
        // An append nobody recorded (a sync, a crash before the delta): stale.
        store.append(&doc, b"c").unwrap();
        let v2 = version(&store, &doc);
        assert!(read(&store, &doc, &v2).is_none());
        // A write after it does not extend a stale chain.
        let chain = chain_end(&store, &doc);
        store.append(&doc, b"d").unwrap();
        let v3 = version(&store, &doc);
        record_write(&store, &doc, chain, Some(&v2), Some(&v3), Some(vec![])).unwrap();
        assert!(read(&store, &doc, &v3).is_none());
        // A write whose records are not all known (a merge): stale.
        write_base(&store, &doc, &v3, &set(&["aaaaaaaaaaaaaaaa"])).unwrap();
        let chain = chain_end(&store, &doc);
        store.append(&doc, b"e").unwrap();
        let v4 = version(&store, &doc);
        record_write(&store, &doc, chain, Some(&v3), Some(&v4), None).unwrap();
        assert!(read(&store, &doc, &v4).is_none());
        // A damaged value: stale, not an error.
        write_base(&store, &doc, &v4, &set(&[])).unwrap();
        store.meta_put(&delta_key(&doc, 0), b"{not json").unwrap();
        assert!(read(&store, &doc, &v4).is_none());
        assert!(chain_end(&store, &doc).is_none());
    }

    #[test]
    fn compaction_restamps_and_long_chains_fold_into_one_base() {
        let store = MemStorage::new();
        let doc = DocId::new("V1").unwrap();
        store.append(&doc, b"x").unwrap();
        let mut now = version(&store, &doc);
        write_base(&store, &doc, &now, &set(&[])).unwrap();
        for n in 0..FOLD_AFTER {
            let chain = chain_end(&store, &doc);
            store.append(&doc, b"y").unwrap();
            let after = version(&store, &doc);
            let new = format!("{n:016}");
            record_write(
                &store,
                &doc,
                chain,
                Some(&now),
                Some(&after),
                Some(vec![(RecordKind::Household, id(&new))]),
            )
            .unwrap();
            now = after;
        }
        assert_eq!(chain_end(&store, &doc).unwrap().deltas, FOLD_AFTER);
        // A version the chain does not reach is not folded.
        store.append(&doc, b"z").unwrap();
        let moved = version(&store, &doc);
        assert!(!fold_if_long(&store, &doc, &moved).unwrap());
        restamp(&store, &doc, &now, &moved).unwrap();
        let before = read(&store, &doc, &moved).unwrap();
        assert!(fold_if_long(&store, &doc, &moved).unwrap());
        assert_eq!(chain_end(&store, &doc).unwrap().deltas, 0);
        let after = read(&store, &doc, &moved).unwrap();
        assert_eq!(households(&after), households(&before));
        assert_eq!(households(&after).len(), FOLD_AFTER);
    }

    #[test]
    fn orphans_of_villages_no_longer_held_are_removed() {
        let store = MemStorage::new();
        let (v1, v10) = (DocId::new("V1").unwrap(), DocId::new("V10").unwrap());
        for d in [&v1, &v10] {
            store.append(d, b"x").unwrap();
            write_base(&store, d, &version(&store, d), &set(&[])).unwrap();
        }
        remove_orphans(&store, std::slice::from_ref(&v10)).unwrap();
        assert!(store.meta_get(&base_key(&v1)).unwrap().is_none());
        assert!(store.meta_get(&base_key(&v10)).unwrap().is_some());
    }
}
