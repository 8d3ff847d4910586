//! Villages kept in memory by a long-running process (`minqing app`): each
//! entry is a loaded `Village` and the [`DocVersion`] of the store it
//! matches. An entry is handed out only while that version is still the
//! store's, so whatever changes a village — a sync, another command, a
//! compaction — makes the next read load it again; nothing needs to tell the
//! cache (docs/store.md, "Villages kept in memory").

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use minqing_model::{Village, VillageRecords};
use minqing_sync::{DocId, DocVersion};

use crate::index::VillageIds;

/// Default budget: the stored sizes of the cached villages add up to at most this.
pub const DEFAULT_BUDGET_MIB: u64 = 512;

struct Entry {
    version: DocVersion,
    village: Village,
    /// Its ids (the index), made on first use.
    ids: Option<VillageIds>,
    /// Its views as plain data, made on first use and caught up by saves
    /// (docs/store.md, "Views kept with a cached village").
    records: Option<Arc<VillageRecords>>,
    /// Stored size in bytes (what the budget counts).
    bytes: u64,
    /// When it was last used (a counter).
    used: u64,
}

struct Inner {
    entries: BTreeMap<DocId, Entry>,
    clock: u64,
}

/// The cache (module docs). Shared by reference: every method locks.
pub struct VillageCache {
    budget: u64,
    inner: Mutex<Inner>,
}

impl VillageCache {
    /// An empty cache holding at most `budget_bytes` of stored villages.
    pub fn new(budget_bytes: u64) -> VillageCache {
        VillageCache {
            budget: budget_bytes,
            inner: Mutex::new(Inner {
                entries: BTreeMap::new(),
                clock: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain values: a panic while held leaves at worst a stale entry,
        // which the version check refuses.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the village if the cached one is at version `now`.
    pub fn get(&self, doc: &DocId, now: &DocVersion) -> Option<Village> {
        let mut inner = self.lock();
        inner.clock += 1;
        let clock = inner.clock;
        let entry = inner.entries.get_mut(doc)?;
        if &entry.version != now {
            inner.entries.remove(doc);
            return None;
        }
        entry.used = clock;
        Some(entry.village.clone())
    }

    /// Runs `f` on the cached village, without copying it, if it is at
    /// version `now` (for reads of the document itself: heads, changes).
    pub fn with<T>(
        &self,
        doc: &DocId,
        now: &DocVersion,
        f: impl FnOnce(&mut Village) -> T,
    ) -> Option<T> {
        let mut inner = self.lock();
        inner.clock += 1;
        let clock = inner.clock;
        let entry = inner.entries.get_mut(doc)?;
        if &entry.version != now {
            return None;
        }
        entry.used = clock;
        Some(f(&mut entry.village))
    }

    /// The village's ids if the cached village is at version `now`.
    pub fn ids(&self, doc: &DocId, now: &DocVersion) -> Option<VillageIds> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(doc)?;
        if &entry.version != now {
            return None;
        }
        Some(
            entry
                .ids
                .get_or_insert_with(|| VillageIds::of(&entry.village))
                .clone(),
        )
    }

    /// The village's views if the cached village is at version `now`, made
    /// from its document first if it has none yet.
    pub fn records(&self, doc: &DocId, now: &DocVersion) -> Option<Arc<VillageRecords>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let clock = inner.clock;
        let entry = inner.entries.get_mut(doc)?;
        if &entry.version != now {
            return None;
        }
        entry.used = clock;
        let records = match &entry.records {
            Some(r) => r.clone(),
            None => {
                let r = Arc::new(VillageRecords::of(&mut entry.village));
                entry.records = Some(r.clone());
                r
            }
        };
        Some(records)
    }

    /// Takes the views out of the entry at version `before` (a save is about
    /// to replace it), to be caught up with the saved village.
    pub fn take_records(&self, doc: &DocId, before: &DocVersion) -> Option<Arc<VillageRecords>> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(doc)?;
        if &entry.version != before {
            return None;
        }
        entry.records.take()
    }

    /// Keeps `village`, which is what the store holds at `version` (with its
    /// views, when they show exactly that village).
    pub fn put(
        &self,
        village: &Village,
        version: DocVersion,
        bytes: u64,
        records: Option<Arc<VillageRecords>>,
    ) {
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        inner.entries.insert(
            village.id().clone(),
            Entry {
                version,
                village: village.clone(),
                ids: None,
                records,
                bytes,
                used,
            },
        );
        // Least recently used first, never the one just put.
        while inner.entries.values().map(|e| e.bytes).sum::<u64>() > self.budget {
            let oldest = inner
                .entries
                .iter()
                .filter(|(_, e)| e.used != used)
                .min_by_key(|(_, e)| e.used)
                .map(|(d, _)| d.clone());
            match oldest {
                Some(d) => {
                    inner.entries.remove(&d);
                }
                None => break,
            }
        }
    }

    /// After a change that keeps the content (a compaction): an entry at
    /// `before` is now at `after`.
    pub fn restamp(&self, doc: &DocId, before: &DocVersion, after: &DocVersion) {
        if let Some(e) = self.lock().entries.get_mut(doc)
            && &e.version == before
        {
            e.version = after.clone();
        }
    }

    /// The stored size of a cached village, if cached at `now`.
    pub fn bytes(&self, doc: &DocId, now: &DocVersion) -> Option<u64> {
        self.lock()
            .entries
            .get(doc)
            .filter(|e| &e.version == now)
            .map(|e| e.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn village(id: &str) -> Village {
        let doc = DocId::new(id).unwrap();
        let am = minqing_model::new_village(&doc, "白云村", None, b"aaaaaaaaaaaaaaaa", 1).unwrap();
        Village::from_new_doc(doc, am).unwrap()
    }

    fn v(s: &str) -> DocVersion {
        DocVersion::new(s.to_owned())
    }

    #[test]
    fn an_entry_is_handed_out_only_at_its_version() {
        let cache = VillageCache::new(1_000);
        let a = village("A");
        cache.put(&a, v("1"), 10, None);
        assert!(cache.get(a.id(), &v("1")).is_some());
        assert!(cache.ids(a.id(), &v("1")).is_some());
        assert!(cache.get(a.id(), &v("2")).is_none(), "a changed village");
        // A stale entry is dropped, not kept for later.
        assert!(cache.get(a.id(), &v("1")).is_none());
        cache.put(&a, v("3"), 10, None);
        cache.restamp(a.id(), &v("3"), &v("4"));
        assert!(cache.get(a.id(), &v("4")).is_some());
        cache.restamp(a.id(), &v("9"), &v("5"));
        assert!(cache.get(a.id(), &v("5")).is_none());
    }

    #[test]
    fn the_least_recently_used_goes_first_when_over_budget() {
        let cache = VillageCache::new(25);
        let (a, b, c) = (village("A"), village("B"), village("C"));
        cache.put(&a, v("a"), 10, None);
        cache.put(&b, v("b"), 10, None);
        assert!(cache.get(a.id(), &v("a")).is_some());
        cache.put(&c, v("c"), 10, None);
        assert!(
            cache.bytes(b.id(), &v("b")).is_none(),
            "B was least recently used"
        );
        assert!(cache.bytes(a.id(), &v("a")).is_some());
        assert!(cache.bytes(c.id(), &v("c")).is_some());
        // One village over the whole budget is still kept (alone).
        let big = village("D");
        cache.put(&big, v("d"), 100, None);
        assert!(cache.bytes(big.id(), &v("d")).is_some());
        assert!(cache.bytes(a.id(), &v("a")).is_none());
    }
}
