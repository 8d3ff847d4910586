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
//! Memory a call needs only while it runs — the buffers of a load, of a
//! whole-history answer built from the document (`generate_sync_message` for a
//! peer that holds nothing: the village's compact saved form), of an export's
//! `save()` — is counted too, as [`call_cost`] of the village's saved size,
//! from before the load until the call returns; and at most [`DOC_WORKERS`]
//! calls run at once (the others wait), so those transients are bounded by
//! what the budget holds however many sessions ask at once.
//!
//! A panic while a village was locked leaves it possibly half-changed: the
//! copy is put back from storage under the same lock before the panic goes
//! on (as `minqing_sync::StorageDocHost` does), and a village whose lock is
//! found poisoned anyway is dropped and reloaded, never used as it was left.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

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

/// Calls on villages ([`DocHost::with_doc`] and the rest, a load included)
/// that run at once; more wait for one of them to end. Two: the relay's
/// machine has two cores, and the work of a call is CPU (automerge), so a
/// third at once would not finish sooner — it would only add its transient
/// memory ([`call_cost`]) to the relay's.
pub const DOC_WORKERS: usize = 2;

/// Bytes of memory a call on a village may need while it runs, beyond the
/// loaded copy, per byte of the village's saved form ([`call_cost`]).
/// Measured (`minqing-bench heap-probe` on the county profile, a fresh
/// process): loading a full-size village (1.18 MB saved) peaks 4.6–4.8 MB
/// above what the copy then keeps (3.9–4.1× its saved size), and building its
/// whole history as one compact message 5.5–5.6 MB (4.6–4.7×); a small village
/// (53 KB saved) peaks at most 1.04 MB, which [`CALL_BASE`] covers.
pub const CALL_PER_SAVED_BYTE: usize = 5;

/// Bytes every call is counted for while it runs, whatever the village's size.
pub const CALL_BASE: usize = 1024 * 1024;

/// What a call on a village of `saved` bytes is counted for while it runs
/// (see [`CALL_PER_SAVED_BYTE`]).
pub fn call_cost(saved: usize) -> usize {
    CALL_BASE.saturating_add(saved.saturating_mul(CALL_PER_SAVED_BYTE))
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
    /// Its saved size: what it was loaded from plus what was appended since.
    saved: usize,
    /// Value of the cache's clock at its last use.
    used: u64,
}

#[derive(Default)]
struct Entries {
    map: BTreeMap<DocId, Entry>,
    clock: u64,
    /// Sum of the entries' sizes and of the calls in progress
    /// ([`call_cost`]).
    bytes: usize,
    /// The part of `bytes` counted for calls in progress.
    calls: usize,
}

/// What the cache did since the relay started (for the operator and the
/// benchmarks: `serve` prints it when it stops).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// What the villages in memory now are counted for (bytes).
    pub bytes: u64,
    /// Villages in memory now.
    pub resident: u64,
    /// The most it held (calls in progress included).
    pub peak_bytes: u64,
    /// The most it counted for calls in progress at once.
    pub peak_calls: u64,
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
    peak_calls: AtomicU64,
    /// Calls running now (at most [`DOC_WORKERS`]).
    running: Mutex<usize>,
    /// Signalled when a call ends.
    ended: Condvar,
}

/// One of the [`DOC_WORKERS`] places, given back when dropped.
struct Pass<'a>(&'a DocCache);

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut n = self.0.running();
        *n = n.saturating_sub(1);
        drop(n);
        self.0.ended.notify_one();
    }
}

/// What a call in progress is counted for, given back when dropped (whatever
/// way the call ends).
struct Counted<'a> {
    cache: &'a DocCache,
    bytes: usize,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        let mut e = self.cache.entries();
        e.bytes = e.bytes.saturating_sub(self.bytes);
        e.calls = e.calls.saturating_sub(self.bytes);
    }
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
            peak_calls: AtomicU64::new(0),
            running: Mutex::new(0),
            ended: Condvar::new(),
        }
    }

    fn running(&self) -> MutexGuard<'_, usize> {
        // Poisoned (nothing in its sections panics): counted again from zero.
        lock_or_reload(&self.running, "the running village calls", || 0)
    }

    /// Waits for one of the [`DOC_WORKERS`] places.
    fn pass(&self) -> Pass<'_> {
        let mut n = self.running();
        while *n >= DOC_WORKERS {
            n = crate::lock::recover(
                &self.running,
                self.ended.wait(n),
                "the running village calls",
                || 0,
            );
        }
        *n += 1;
        Pass(self)
    }

    /// Counts a call on a village of `saved` bytes until the result drops.
    fn count_call(&self, saved: usize) -> Counted<'_> {
        let bytes = call_cost(saved);
        let mut e = self.entries();
        e.bytes = e.bytes.saturating_add(bytes);
        e.calls = e.calls.saturating_add(bytes);
        self.peak_calls.fetch_max(e.calls as u64, Ordering::Relaxed);
        // Room for it, if villages nobody uses can go.
        self.shrink(&mut e);
        Counted { cache: self, bytes }
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
            peak_calls: self.peak_calls.load(Ordering::Relaxed),
            budget: self.budget as u64,
            loads: self.loads.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// The village, loaded if needed; marks it used. The call is counted
    /// ([`call_cost`]) from before the load until the second value drops.
    fn entry(&self, doc: &DocId) -> Result<(Arc<Mutex<Automerge>>, Counted<'_>), StorageError> {
        {
            let mut e = self.entries();
            e.clock += 1;
            let now = e.clock;
            if let Some(entry) = e.map.get_mut(doc) {
                if !entry.doc.is_poisoned() {
                    entry.used = now;
                    let (shared, saved) = (Arc::clone(&entry.doc), entry.saved);
                    drop(e);
                    return Ok((shared, self.count_call(saved)));
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
        let stored = self.storage.load(doc)?;
        let saved = stored.as_ref().map_or(0, Vec::len);
        let counted = self.count_call(saved);
        let (am, size) = match stored {
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
                        saved,
                        used: now,
                    },
                );
                e.bytes += size;
                shared
            }
        };
        self.shrink(&mut e);
        Ok((shared, counted))
    }

    /// After a call on `doc` ended: counts the `appended` saved bytes, then
    /// brings the cache back within its budget (`doc` may be evicted now).
    fn settle(&self, doc: &DocId, appended: usize) {
        let mut e = self.entries();
        if let Some(entry) = e.map.get_mut(doc) {
            let n = cost(appended);
            entry.size += n;
            entry.saved += appended;
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
        // The place first, then the village's lock: a call never waits for a
        // place while it holds a village.
        let _pass = self.pass();
        let (shared, counted) = self.entry(doc)?;
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
                drop(counted);
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
        drop(counted);
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
    fn a_call_in_progress_is_counted_until_it_returns() {
        let storage = Arc::new(MemStorage::new());
        seed_village(&storage, 0);
        let saved = storage
            .load(&village(0))
            .expect("load")
            .expect("held")
            .len();
        let cache = DocCache::new(storage, usize::MAX);
        let mut inside = None;
        cache
            .with_doc(&village(0), &mut |_| inside = Some(cache.stats().bytes))
            .expect("call");
        // The load's and the call's memory while it runs, the village after.
        assert_eq!(
            inside,
            Some((village_cost(saved) + call_cost(saved)) as u64)
        );
        let after = cache.stats();
        assert_eq!(after.bytes, village_cost(saved) as u64, "{after:?}");
        assert_eq!(after.peak_calls, call_cost(saved) as u64, "{after:?}");
        // A failing call is given back too.
        let missing = DocId::new("V99".to_owned()).expect("valid id");
        let _ = cache.with_doc(&missing, &mut |_| {});
        assert_eq!(cache.stats().bytes - after.bytes, VILLAGE_BASE as u64);
    }

    #[test]
    fn at_most_doc_workers_calls_run_at_once() {
        use std::sync::atomic::AtomicUsize;
        let storage = Arc::new(MemStorage::new());
        for i in 0..6 {
            seed_village(&storage, i);
        }
        let cache = Arc::new(DocCache::new(storage, usize::MAX));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let (cache, running, most) = (cache.clone(), running.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..3 {
                        cache
                            .with_doc(&village(i), &mut |_| {
                                let n = running.fetch_add(1, Ordering::SeqCst) + 1;
                                most.fetch_max(n, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_millis(20));
                                running.fetch_sub(1, Ordering::SeqCst);
                            })
                            .expect("call");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most <= DOC_WORKERS, "{most} calls ran at once");
        let s = cache.stats();
        let one = (0..6)
            .map(|i| call_cost(cache.entries().map[&village(i)].saved))
            .max()
            .unwrap_or(0);
        assert!(s.peak_calls as usize <= DOC_WORKERS * one, "{s:?}");
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
