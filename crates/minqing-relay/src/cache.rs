//! The relay's bounded document cache: the villages sessions use, loaded on
//! demand, kept in memory within a budget (`limits.doc_cache_mib`,
//! docs/relay.md "Limits") and evicted least recently used.
//!
//! What a village costs is counted from its *saved* size (the bytes its
//! storage holds: its size when loaded plus every change appended since),
//! which the relay knows without walking automerge's internals:
//! [`village_cost`], [`VILLAGE_BASE`] plus [`MEMORY_PER_SAVED_BYTE`] per saved
//! byte, measured as the RSS a loaded village really takes
//! (docs/benchmarks.md, R1, checks the measurement against these constants on
//! every bench run). A village is evicted only while no
//! session is using it (no call of [`DocHost`] on it in progress):
//! everything a session changed was appended to storage before its call
//! returned, so a reload is the same document. While every cached village is
//! in use the cache may stay above its budget until one is released; the
//! cache is brought back within it as each call ends.
//!
//! A panic while a village was locked leaves it possibly half-changed: the
//! copy is put back from storage under the same lock before the panic goes
//! on (as `minqing_sync::StorageDocHost` does), and a village whose lock is
//! found poisoned anyway is dropped and reloaded, never used as it was left.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::{Automerge, ReadDoc};
use minqing_sync::{DocHost, DocId, Storage, StorageError};

use crate::lock::lock_or_reload;

/// Bytes of memory a loaded village is counted for per byte of its saved
/// form, beyond [`VILLAGE_BASE`]. Measured (docs/benchmarks.md, R1: "memory
/// of a loaded village", `minqing-bench heap-probe`): a loaded village of the
/// bench's county grows a fresh process's RSS by 9.7–10.6× its saved size for
/// full-size villages (1.2 MB saved, 11.5–12.5 MB loaded) and by 12–13× for
/// small ones (55 KB saved, 0.7 MB loaded): automerge 0.12 holds the ops
/// uncompressed, with their indexes. The 4× counted before was a guess, and
/// an orphan flood naming four full villages grew the relay by 2.3× what its
/// budgets counted (L1, county profile).
pub const MEMORY_PER_SAVED_BYTE: usize = 13;

/// Bytes every loaded village is counted for whatever its size (automerge's
/// fixed structures and the allocator's granularity around them).
pub const VILLAGE_BASE: usize = 512 * 1024;

/// What a loaded village of `saved` bytes is counted for in the document
/// cache's budget.
pub fn village_cost(saved: usize) -> usize {
    VILLAGE_BASE.saturating_add(saved.saturating_mul(MEMORY_PER_SAVED_BYTE))
}

/// What `appended` more saved bytes of a cached village are counted for.
fn cost(appended: usize) -> usize {
    appended.saturating_mul(MEMORY_PER_SAVED_BYTE)
}

/// One cached village.
struct Entry {
    doc: Arc<Mutex<Automerge>>,
    /// What it is counted for ([`village_cost`] of its saved size, plus
    /// [`cost`] of what was appended since).
    size: usize,
    /// Value of the cache's clock at its last use.
    used: u64,
}

#[derive(Default)]
struct Entries {
    map: BTreeMap<DocId, Entry>,
    clock: u64,
    /// Sum of the entries' sizes.
    bytes: usize,
}

/// What the cache did since the relay started (for the operator and the
/// benchmarks: `serve` prints it when it stops).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// What the villages in memory now are counted for (bytes).
    pub bytes: u64,
    /// Villages in memory now.
    pub resident: u64,
    /// The most it held.
    pub peak_bytes: u64,
    /// The budget.
    pub budget: u64,
    /// Villages loaded from storage.
    pub loads: u64,
    /// Villages evicted to stay within the budget.
    pub evictions: u64,
}

/// A [`DocHost`] over a [`Storage`] that keeps villages counted for at most
/// `budget` bytes in memory (see the module docs).
pub struct DocCache {
    storage: Arc<dyn Storage>,
    budget: usize,
    entries: Mutex<Entries>,
    /// Villages whose stored bytes do not load, with why: quarantined until
    /// [`DocCache::evict`].
    broken: Mutex<BTreeMap<DocId, String>>,
    loads: AtomicU64,
    evictions: AtomicU64,
    peak: AtomicU64,
}

impl std::fmt::Debug for DocCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocCache")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

fn torn(doc: &DocId) -> StorageError {
    StorageError::Backend(
        format!(
            "village {doc} was being changed when a session failed; its copy is reloaded from storage — sync again"
        )
        .into(),
    )
}

impl DocCache {
    /// A cache over `storage` holding villages counted for at most `budget`
    /// bytes.
    pub fn new(storage: Arc<dyn Storage>, budget: usize) -> Self {
        DocCache {
            storage,
            budget,
            entries: Mutex::new(Entries::default()),
            broken: Mutex::new(BTreeMap::new()),
            loads: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    /// The storage behind the cache.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        // Poisoned: every village is dropped and reloaded on its next use.
        lock_or_reload(&self.entries, "the document cache", Entries::default)
    }

    fn broken(&self) -> MutexGuard<'_, BTreeMap<DocId, String>> {
        // Poisoned: quarantines are forgotten; a village that does not load
        // is found again at its next use.
        lock_or_reload(&self.broken, "the quarantined villages", BTreeMap::new)
    }

    /// What the cache holds and did.
    pub fn stats(&self) -> CacheStats {
        let e = self.entries();
        CacheStats {
            bytes: e.bytes as u64,
            resident: e.map.len() as u64,
            peak_bytes: self.peak.load(Ordering::Relaxed),
            budget: self.budget as u64,
            loads: self.loads.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// The village, loaded if needed; marks it used.
    fn entry(&self, doc: &DocId) -> Result<Arc<Mutex<Automerge>>, StorageError> {
        {
            let mut e = self.entries();
            e.clock += 1;
            let now = e.clock;
            if let Some(entry) = e.map.get_mut(doc) {
                if !entry.doc.is_poisoned() {
                    entry.used = now;
                    return Ok(Arc::clone(&entry.doc));
                }
                // Possibly half-changed: dropped, loaded afresh below.
                tracing::error!(village = %doc, "a poisoned village copy is dropped and reloaded");
                let size = entry.size;
                e.map.remove(doc);
                e.bytes = e.bytes.saturating_sub(size);
            }
        }
        if let Some(detail) = self.broken().get(doc) {
            return Err(StorageError::Corrupt {
                doc: doc.clone(),
                detail: detail.clone(),
            });
        }
        // Loaded without holding the map's lock: a large village takes a
        // while, and sessions on other villages must not wait for it.
        let (am, size) = match self.storage.load(doc)? {
            None => (Automerge::new(), VILLAGE_BASE),
            Some(bytes) => match Automerge::load(&bytes) {
                Ok(am) => (am, village_cost(bytes.len())),
                Err(e) => {
                    let detail = e.to_string();
                    tracing::error!(village = %doc, %detail, "village does not load: quarantined");
                    self.broken().insert(doc.clone(), detail.clone());
                    return Err(StorageError::Corrupt {
                        doc: doc.clone(),
                        detail,
                    });
                }
            },
        };
        self.loads.fetch_add(1, Ordering::Relaxed);
        let mut e = self.entries();
        e.clock += 1;
        let now = e.clock;
        // If another session loaded it meanwhile, the first copy wins.
        let shared = match e.map.get_mut(doc) {
            Some(entry) => {
                entry.used = now;
                Arc::clone(&entry.doc)
            }
            None => {
                let shared = Arc::new(Mutex::new(am));
                e.map.insert(
                    doc.clone(),
                    Entry {
                        doc: Arc::clone(&shared),
                        size,
                        used: now,
                    },
                );
                e.bytes += size;
                shared
            }
        };
        self.shrink(&mut e);
        Ok(shared)
    }

    /// After a call on `doc` ended: counts the `appended` saved bytes, then
    /// brings the cache back within its budget (`doc` may be evicted now).
    fn settle(&self, doc: &DocId, appended: usize) {
        let mut e = self.entries();
        if let Some(entry) = e.map.get_mut(doc) {
            let n = cost(appended);
            entry.size += n;
            e.bytes += n;
        }
        self.shrink(&mut e);
    }

    /// Evicts least recently used villages nobody is using until the cache
    /// is within its budget (or only villages in use are left).
    fn shrink(&self, e: &mut Entries) {
        while e.bytes > self.budget {
            // In use: someone holds a clone of its Arc (a call in progress,
            // or a caller about to lock it).
            let victim = e
                .map
                .iter()
                .filter(|(_, entry)| Arc::strong_count(&entry.doc) == 1)
                .min_by_key(|(_, entry)| entry.used)
                .map(|(id, _)| id.clone());
            let Some(id) = victim else { break };
            if let Some(entry) = e.map.remove(&id) {
                e.bytes = e.bytes.saturating_sub(entry.size);
                self.evictions.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(village = %id, bytes = entry.size, "evicted from the document cache");
            }
        }
        self.peak.fetch_max(e.bytes as u64, Ordering::Relaxed);
    }

    /// The heads of `doc` as the relay holds it (empty if it holds nothing).
    #[cfg(test)]
    pub fn heads(&self, doc: &DocId) -> Result<Vec<automerge::ChangeHash>, StorageError> {
        let mut heads = Vec::new();
        self.with_doc(doc, &mut |am| heads = am.get_heads())?;
        Ok(heads)
    }

    /// Forgets the in-memory copy of `doc` (reloaded on next use) and its
    /// quarantine if it did not load.
    pub fn evict(&self, doc: &DocId) {
        let mut e = self.entries();
        if let Some(entry) = e.map.remove(doc) {
            e.bytes = e.bytes.saturating_sub(entry.size);
        }
        drop(e);
        self.broken().remove(doc);
    }

    /// Puts back what storage holds into `am` (the locked copy of `doc`),
    /// after a panic or a discarded change; drops the copy if that fails.
    fn reload_into(&self, doc: &DocId, am: &mut Automerge) -> Result<(), StorageError> {
        match minqing_sync::load_doc(&*self.storage, doc) {
            Ok(fresh) => {
                *am = fresh.unwrap_or_default();
                Ok(())
            }
            Err(e) => {
                self.evict(doc);
                Err(e)
            }
        }
    }
}

impl DocHost for DocCache {
    fn with_doc(&self, doc: &DocId, f: &mut dyn FnMut(&mut Automerge)) -> Result<(), StorageError> {
        self.try_with_doc(doc, &mut |am| {
            f(am);
            true
        })
        .map(|_| ())
    }

    fn try_with_doc(
        &self,
        doc: &DocId,
        f: &mut dyn FnMut(&mut Automerge) -> bool,
    ) -> Result<bool, StorageError> {
        let shared = self.entry(doc)?;
        let mut am = match shared.lock() {
            Ok(g) => g,
            Err(_) => {
                // Poisoned between the lookup and the lock: never used as is.
                self.evict(doc);
                return Err(torn(doc));
            }
        };
        let before = am.get_heads();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if !f(&mut am) {
                return None;
            }
            Some((am.get_heads() != before).then(|| am.save_after(&before)))
        }));
        let appended = match run {
            Ok(Some(Some(bytes))) => {
                if let Err(e) = self.storage.append(doc, &bytes) {
                    // Not stored: the copy must not keep what storage lacks.
                    let _ = self.reload_into(doc, &mut am);
                    return Err(e);
                }
                bytes.len()
            }
            Ok(Some(None)) => 0,
            Ok(None) => {
                // Discarded: put back what storage holds, under the same lock.
                if am.get_heads() != before || !am.get_missing_deps(&[]).is_empty() {
                    self.reload_into(doc, &mut am)?;
                }
                drop(am);
                drop(shared);
                self.settle(doc, 0);
                return Ok(false);
            }
            Err(panic) => {
                let _ = self.reload_into(doc, &mut am);
                std::panic::resume_unwind(panic);
            }
        };
        drop(am);
        drop(shared);
        self.settle(doc, appended);
        Ok(true)
    }

    fn sync_state(&self, device: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.storage.sync_state(device, doc)
    }

    fn set_sync_state(&self, device: &str, doc: &DocId, state: &[u8]) -> Result<(), StorageError> {
        self.storage.set_sync_state(device, doc, state)
    }
}

#[cfg(test)]
mod tests {
    //! A load that touches more villages than the budget holds: every sync
    //! succeeds, nothing is lost, and the cache stays within its budget
    //! whenever no session is using a village.

    use std::collections::BTreeSet;

    use automerge::transaction::Transactable;
    use automerge::{ActorId, ObjType, ROOT};
    use minqing_sync::{
        DeviceEvent, DeviceSession, Incarnation, MemStorage, RelaySession, SessionConfig,
        device_actor, load_doc,
    };

    use super::*;

    const RELAY: &str = "county";
    const VILLAGES: usize = 12;

    fn village(i: usize) -> DocId {
        DocId::new(format!("V{i:02}")).expect("valid id")
    }

    /// Poorly compressible text.
    fn text(seed: u64, n: usize) -> String {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from_u32(0x4e00 + (x % 3000) as u32).unwrap_or('好')
            })
            .collect()
    }

    /// A village of 40 visits, as the relay holds it.
    fn seed_village(storage: &MemStorage, i: usize) {
        let mut am = Automerge::new().with_actor(ActorId::from(b"relay-actor".to_vec()));
        let mut tx = am.transaction();
        let visits = tx.put_object(ROOT, "visits", ObjType::Map).expect("map");
        for v in 0..40 {
            tx.put(&visits, format!("v{v}"), text((i * 100 + v) as u64, 150))
                .expect("put");
        }
        tx.commit();
        storage.append(&village(i), &am.save()).expect("append");
    }

    /// One lockstep session of `device` (holding `local`) over `village`;
    /// returns the device's copy after it.
    fn sync(
        cache: &DocCache,
        device: &str,
        doc: &DocId,
        local: Option<Automerge>,
        budget: usize,
    ) -> Automerge {
        let held: Vec<_> = local
            .map(|am| (doc.clone(), am, None))
            .into_iter()
            .collect();
        let mut dev = DeviceSession::new(SessionConfig::default(), device, held).expect("starts");
        let mut relay = RelaySession::new(
            SessionConfig::default(),
            RELAY,
            device,
            BTreeSet::from([doc.clone()]),
        );
        let mut copy: Option<Automerge> = None;
        for _ in 0..20 {
            let mut up = Vec::new();
            while let Some(f) = dev.poll_transmit() {
                up.extend(f);
            }
            relay
                .handle_input(&up, cache as &dyn DocHost)
                .expect("the relay takes the device's flight");
            // Between calls no village is in use: the budget holds.
            let s = cache.stats();
            assert!(s.bytes as usize <= budget, "{s:?}");
            assert!(s.resident <= 3, "room for three villages: {s:?}");
            let mut down = Vec::new();
            while let Some(f) = relay.poll_transmit() {
                down.extend(f);
            }
            dev.handle_input(&down)
                .expect("the device takes the answer");
            while let Some(ev) = dev.poll_event() {
                match ev {
                    DeviceEvent::DocAdded { bytes, .. } => {
                        copy = Some(Automerge::load(&bytes).expect("loads"));
                    }
                    DeviceEvent::DocChanged { bytes, .. } => {
                        let am = copy.get_or_insert_with(Automerge::new);
                        am.load_incremental(&bytes).expect("applies");
                    }
                    DeviceEvent::Finished(_) => return copy.unwrap_or_default(),
                    _ => {}
                }
            }
        }
        panic!("the session of {device} did not finish");
    }

    #[test]
    fn more_villages_than_the_budget_holds_all_sync_and_the_cache_stays_within_it() {
        let storage = Arc::new(MemStorage::new());
        for i in 0..VILLAGES {
            seed_village(&storage, i);
        }
        let one = storage
            .load(&village(0))
            .expect("load")
            .expect("held")
            .len();
        // Room for three villages (and a little growth), not twelve.
        let budget = 3 * village_cost(one) + cost(one / 2);
        let cache = DocCache::new(storage.clone(), budget);
        for round in 0..2 {
            for i in 0..VILLAGES {
                let device = format!("dev{i:02}");
                let doc = village(i);
                // First contact: the device gets the village.
                let mut am = sync(&cache, &device, &doc, None, budget);
                assert!(am.get(ROOT, "visits").expect("get").is_some());
                // A day's work, written with the device's own actor, sent up.
                am.set_actor(device_actor(
                    &device,
                    Incarnation::from_random([1, 2, 3, 4]),
                ));
                let visits = am.get(ROOT, "visits").expect("get").expect("visits").1;
                let mut tx = am.transaction();
                tx.put(&visits, format!("{device}-{round}"), text(round, 50))
                    .expect("put");
                tx.commit();
                let key = format!("{device}-{round}");
                // The session finishes (or `sync` panics).
                sync(&cache, &device, &doc, Some(am), budget);
                // Stored, whatever the cache evicted meanwhile.
                let stored = load_doc(&*storage, &doc).expect("loads").expect("held");
                assert!(
                    stored.get(&visits, key.as_str()).expect("get").is_some(),
                    "{key} reached the relay's storage"
                );
            }
        }
        let s = cache.stats();
        assert!(s.peak_bytes as usize <= budget, "{s:?}");
        assert!(
            s.evictions >= (VILLAGES - 3) as u64,
            "the load needed evictions: {s:?}"
        );
        assert!(
            s.loads > VILLAGES as u64,
            "evicted villages were reloaded: {s:?}"
        );
    }

    #[test]
    fn a_panic_while_a_village_is_locked_leaves_no_torn_copy() {
        let storage = Arc::new(MemStorage::new());
        seed_village(&storage, 0);
        let doc = village(0);
        let cache = DocCache::new(storage.clone(), usize::MAX);
        let heads = cache.heads(&doc).expect("loads");
        let stored = storage.load(&doc).expect("load").expect("held");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cache.with_doc(&doc, &mut |am| {
                let mut tx = am.transaction();
                tx.put(ROOT, "half", "way").expect("put");
                tx.commit();
                panic!("a bug half-way through a change");
            })
        }));
        assert!(r.is_err(), "the panic goes on");
        // Nothing of the torn change is used or stored.
        assert_eq!(cache.heads(&doc).expect("reloads"), heads);
        assert_eq!(
            storage.load(&doc).expect("load").expect("held"),
            stored,
            "nothing appended"
        );
        // The village works as before.
        cache
            .with_doc(&doc, &mut |am| {
                let mut tx = am.transaction();
                tx.put(ROOT, "after", "ok").expect("put");
                tx.commit();
            })
            .expect("a later change");
        let reloaded = load_doc(&*storage, &doc).expect("loads").expect("held");
        assert!(reloaded.get(ROOT, "after").expect("get").is_some());
        assert!(reloaded.get(ROOT, "half").expect("get").is_none());
    }
}
