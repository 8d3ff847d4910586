//! A store that lets go of the home while a sync waits on the network.
//!
//! sled allows one process per store. A sync session holds the store only
//! while it applies what the relay sent; when no call has come for
//! [`IDLE_GRACE`] (the relay is slow, or stuck), the store is flushed and
//! closed, so the cadre's own commands (`visit log`, `visit list`) work
//! meanwhile. The next call opens it again. Anything the session keeps in
//! memory (documents, sync states) stays valid: a visit logged in between is
//! a change the relay does not know of yet, and goes with the next sync.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use minqing_store::DataKey;
use minqing_sync::{DocId, DocVersion, Storage, StorageError, Store};

/// How long the store stays open with no call before it is closed.
pub const IDLE_GRACE: Duration = Duration::from_millis(500);
/// How often the idle check runs.
const TICK: Duration = Duration::from_millis(50);

struct Slot {
    store: Option<Arc<dyn Store>>,
    last_used: Instant,
}

/// The home's store, opened on demand and closed when idle (module docs).
pub struct IdleStore {
    dir: PathBuf,
    /// The data key the store is opened with, each time.
    key: DataKey,
    slot: Arc<Mutex<Slot>>,
    stop: Arc<AtomicBool>,
    closer: Option<std::thread::JoinHandle<()>>,
}

fn lock(m: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // A plain Option and an Instant: a panic while held leaves nothing half-done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl IdleStore {
    /// Opens the store of home `dir` now (so errors show at once) and starts
    /// the thread that closes it when idle.
    pub fn open(dir: &Path, key: &DataKey) -> anyhow::Result<IdleStore> {
        let store = crate::home::open_store(dir, key)?;
        let slot = Arc::new(Mutex::new(Slot {
            store: Some(store),
            last_used: Instant::now(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let closer = {
            let (slot, stop) = (slot.clone(), stop.clone());
            std::thread::Builder::new()
                .name("minqing-idle-store".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(TICK);
                        let mut s = lock(&slot);
                        if s.store.is_some() && s.last_used.elapsed() >= IDLE_GRACE {
                            if let Some(store) = s.store.take()
                                && let Err(e) = store.flush()
                            {
                                // Every write was flushed by the session before
                                // it waited; this is a second look.
                                tracing::warn!("flushing the store before closing it: {e}");
                            }
                            tracing::debug!("store closed while waiting for the relay");
                        }
                    }
                })?
        };
        Ok(IdleStore {
            dir: dir.to_path_buf(),
            key: key.clone(),
            slot,
            stop,
            closer: Some(closer),
        })
    }

    /// Runs `f` on the open store (opening it again if it was closed).
    pub fn with<T>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut s = lock(&self.slot);
        if s.store.is_none() {
            let store = crate::home::open_store(&self.dir, &self.key)
                .map_err(|e| StorageError::Backend(e.into()))?;
            s.store = Some(store);
        }
        s.last_used = Instant::now();
        let Some(store) = s.store.as_ref() else {
            return Err(StorageError::Backend("the store closed itself".into()));
        };
        let out = f(&**store);
        s.last_used = Instant::now();
        out
    }
}

impl Drop for IdleStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.closer.take() {
            let _ = t.join();
        }
    }
}

impl Storage for IdleStore {
    fn docs(&self) -> Result<Vec<DocId>, StorageError> {
        self.with(|s| s.docs())
    }
    fn load(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.with(|s| s.load(doc))
    }
    fn append(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StorageError> {
        self.with(|s| s.append(doc, bytes))
    }
    fn remove(&self, doc: &DocId) -> Result<(), StorageError> {
        self.with(|s| s.remove(doc))
    }
    fn sync_state(&self, peer: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.with(|s| s.sync_state(peer, doc))
    }
    fn set_sync_state(&self, peer: &str, doc: &DocId, state: &[u8]) -> Result<(), StorageError> {
        self.with(|s| s.set_sync_state(peer, doc, state))
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.with(|s| s.flush())
    }
}

impl Store for IdleStore {
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.with(|s| s.meta_get(key))
    }
    fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.with(|s| s.meta_put(key, value))
    }
    fn meta_remove(&self, key: &str) -> Result<(), StorageError> {
        self.with(|s| s.meta_remove(key))
    }
    fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.with(|s| s.meta_scan(prefix))
    }
    fn compact_if_needed(&self, doc: &DocId) -> Result<bool, StorageError> {
        self.with(|s| s.compact_if_needed(doc))
    }
    fn doc_version(&self, doc: &DocId) -> Result<Option<DocVersion>, StorageError> {
        self.with(|s| s.doc_version(doc))
    }
}
