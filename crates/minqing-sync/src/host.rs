//! `DocHost`: how a relay session reaches the shared documents it does not own,
//! and `StorageDocHost`, an in-memory cache of documents persisted through `Storage`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::{Automerge, ChangeHash, ReadDoc};

use crate::{DocId, Storage, StorageError, load_doc};

/// The relay's documents, shared by every session the relay serves.
///
/// A relay session borrows a `DocHost` for the duration of each `handle_input`
/// call; many sessions (one per connected device) use the same host. Methods take
/// `&self`: implementations lock inside.
pub trait DocHost {
    /// Runs `f` on the relay's copy of `doc`, an empty document if the relay holds
    /// none yet. If `f` changes the document, the host must append the new changes
    /// (`save_after(heads before f)`) to its storage before it returns, so that the
    /// driver's next flush makes them durable. If `f` (or the save) panics —
    /// automerge can, in the middle of applying a peer's malformed changes —
    /// the host must drop its in-memory copy (the next use reloads it from
    /// storage), append nothing, and let the panic go on.
    fn with_doc(&self, doc: &DocId, f: &mut dyn FnMut(&mut Automerge)) -> Result<(), StorageError>;

    /// Like [`DocHost::with_doc`], but `f` says whether to keep what it did:
    /// if it returns `false`, the host puts the document back exactly as it was
    /// before `f` (nothing is appended) before any other session sees it.
    /// Returns what `f` returned. The default keeps a copy of the document
    /// while `f` runs; a host that can reload the document from its storage
    /// should do that instead.
    fn try_with_doc(
        &self,
        doc: &DocId,
        f: &mut dyn FnMut(&mut Automerge) -> bool,
    ) -> Result<bool, StorageError> {
        let mut kept = true;
        self.with_doc(doc, &mut |am| {
            let backup = am.clone();
            if !f(am) {
                *am = backup;
                kept = false;
            }
        })?;
        Ok(kept)
    }

    /// The persisted `sync::State` (encoded) of (`device`, `doc`).
    fn sync_state(&self, device: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError>;

    /// Persists the `sync::State` (encoded) of (`device`, `doc`).
    fn set_sync_state(&self, device: &str, doc: &DocId, state: &[u8]) -> Result<(), StorageError>;
}

/// A [`DocHost`] keeping each document loaded in memory (loaded on first use)
/// and appending every change to a [`Storage`]. One lock per document, so
/// sessions syncing different villages do not wait for each other.
pub struct StorageDocHost {
    storage: Arc<dyn Storage>,
    docs: Mutex<BTreeMap<DocId, Arc<Mutex<Automerge>>>>,
    /// Documents whose stored bytes do not load, with why: quarantined (not
    /// loaded again on every use) until [`StorageDocHost::evict`].
    broken: Mutex<BTreeMap<DocId, String>>,
}

impl std::fmt::Debug for StorageDocHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageDocHost").finish_non_exhaustive()
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside automerge is caught under the document's lock and the
    // copy is put back from storage (`reload_after_panic`), so no lock is
    // poisoned by one; the maps hold plain entries that a panic cannot leave
    // half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StorageDocHost {
    /// A host over `storage`; nothing is loaded until a session asks.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        StorageDocHost {
            storage,
            docs: Mutex::new(BTreeMap::new()),
            broken: Mutex::new(BTreeMap::new()),
        }
    }

    /// The storage behind this host (flush it before transmitting).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    fn entry(&self, doc: &DocId) -> Result<Arc<Mutex<Automerge>>, StorageError> {
        if let Some(d) = relock(&self.docs).get(doc) {
            return Ok(Arc::clone(d));
        }
        if let Some(detail) = relock(&self.broken).get(doc) {
            return Err(StorageError::Corrupt {
                doc: doc.clone(),
                detail: detail.clone(),
            });
        }
        // Load without holding the map lock: a large village takes a while, and
        // sessions on other villages must not wait for it. If two sessions load
        // the same village at once, the first to insert wins and both use it.
        let loaded = match load_doc(&*self.storage, doc) {
            Ok(d) => d.unwrap_or_default(),
            Err(StorageError::Corrupt { doc, detail }) => {
                tracing::error!(village = %doc, %detail, "village does not load: quarantined");
                relock(&self.broken).insert(doc.clone(), detail.clone());
                return Err(StorageError::Corrupt { doc, detail });
            }
            Err(e) => return Err(e),
        };
        let mut docs = relock(&self.docs);
        let d = docs
            .entry(doc.clone())
            .or_insert_with(|| Arc::new(Mutex::new(loaded)));
        Ok(Arc::clone(d))
    }

    /// The heads of `doc` as the relay holds it (empty if it holds nothing).
    pub fn heads(&self, doc: &DocId) -> Result<Vec<ChangeHash>, StorageError> {
        let d = self.entry(doc)?;
        let heads = relock(&d).get_heads();
        Ok(heads)
    }

    /// A copy of `doc` as the relay holds it.
    pub fn snapshot(&self, doc: &DocId) -> Result<Automerge, StorageError> {
        let d = self.entry(doc)?;
        let copy = relock(&d).clone();
        Ok(copy)
    }

    /// Forgets the in-memory copy of `doc` (it is reloaded from storage on next
    /// use), and its quarantine if it did not load.
    pub fn evict(&self, doc: &DocId) {
        relock(&self.docs).remove(doc);
        relock(&self.broken).remove(doc);
    }

    /// After automerge panicked on `am` (the locked copy of `doc`), possibly
    /// halfway through applying a peer's changes: puts back what storage
    /// holds (every change of the copy before the panic was appended), under
    /// the same lock, so no session uses a half-changed village. Found by the
    /// `sync_message` fuzz target: every later use of such a copy panicked
    /// too, for every device, until the relay restarted.
    fn reload_after_panic(&self, doc: &DocId, am: &mut Automerge) {
        match load_doc(&*self.storage, doc) {
            Ok(fresh) => *am = fresh.unwrap_or_default(),
            // Not to be used again: the next use loads it afresh (or quarantines it).
            Err(_) => {
                relock(&self.docs).remove(doc);
            }
        }
    }

    /// Villages found not to load, with why (sorted by id).
    pub fn quarantined(&self) -> Vec<(DocId, String)> {
        relock(&self.broken)
            .iter()
            .map(|(d, w)| (d.clone(), w.clone()))
            .collect()
    }
}

impl DocHost for StorageDocHost {
    fn with_doc(&self, doc: &DocId, f: &mut dyn FnMut(&mut Automerge)) -> Result<(), StorageError> {
        let d = self.entry(doc)?;
        let mut am = relock(&d);
        let before = am.get_heads();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f(&mut am);
            (am.get_heads() != before).then(|| am.save_after(&before))
        }));
        match run {
            Ok(Some(bytes)) => self.storage.append(doc, &bytes)?,
            Ok(None) => {}
            Err(panic) => {
                self.reload_after_panic(doc, &mut am);
                std::panic::resume_unwind(panic);
            }
        }
        Ok(())
    }

    fn try_with_doc(
        &self,
        doc: &DocId,
        f: &mut dyn FnMut(&mut Automerge) -> bool,
    ) -> Result<bool, StorageError> {
        let d = self.entry(doc)?;
        let mut am = relock(&d);
        let before = am.get_heads();
        let keep = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut am))) {
            Ok(keep) => keep,
            Err(panic) => {
                self.reload_after_panic(doc, &mut am);
                std::panic::resume_unwind(panic);
            }
        };
        if !keep {
            // Put back what storage holds, under the same lock: no session saw
            // the discarded changes, and nothing of them was appended. (Storage
            // holds every change of the in-memory copy: `with_doc` appends
            // before it returns.)
            if am.get_heads() != before || !am.get_missing_deps(&[]).is_empty() {
                match load_doc(&*self.storage, doc) {
                    Ok(fresh) => *am = fresh.unwrap_or_default(),
                    Err(e) => {
                        // Not to be used again: the next use loads it afresh.
                        relock(&self.docs).remove(doc);
                        return Err(e);
                    }
                }
            }
            return Ok(false);
        }
        if am.get_heads() != before {
            let save =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| am.save_after(&before)));
            match save {
                Ok(bytes) => self.storage.append(doc, &bytes)?,
                Err(panic) => {
                    self.reload_after_panic(doc, &mut am);
                    std::panic::resume_unwind(panic);
                }
            }
        }
        Ok(true)
    }

    fn sync_state(&self, device: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.storage.sync_state(device, doc)
    }

    fn set_sync_state(&self, device: &str, doc: &DocId, state: &[u8]) -> Result<(), StorageError> {
        self.storage.set_sync_state(device, doc, state)
    }
}
