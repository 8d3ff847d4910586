//! `DocHost`: how a relay session reaches the shared documents it does not own,
//! and `StorageDocHost`, an in-memory cache of documents persisted through `Storage`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::{Automerge, ChangeHash};

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
}

impl std::fmt::Debug for StorageDocHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageDocHost").finish_non_exhaustive()
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a document was locked can only come from a bug; automerge
    // applies a message or fails before mutating, so the value is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StorageDocHost {
    /// A host over `storage`; nothing is loaded until a session asks.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        StorageDocHost {
            storage,
            docs: Mutex::new(BTreeMap::new()),
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
        // Load without holding the map lock: a large village takes a while, and
        // sessions on other villages must not wait for it. If two sessions load
        // the same village at once, the first to insert wins and both use it.
        let loaded = load_doc(&*self.storage, doc)?.unwrap_or_default();
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

    /// Forgets the in-memory copy of `doc` (it is reloaded from storage on next use).
    pub fn evict(&self, doc: &DocId) {
        relock(&self.docs).remove(doc);
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
                // The copy may be half-changed (found by the sync_message fuzz
                // target: automerge 0.12 panicked in the middle of applying
                // changes, and every later use of the village panicked too).
                // Storage holds only what was appended before: reload from it.
                drop(am);
                self.evict(doc);
                std::panic::resume_unwind(panic);
            }
        }
        Ok(())
    }

    fn sync_state(&self, device: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.storage.sync_state(device, doc)
    }

    fn set_sync_state(&self, device: &str, doc: &DocId, state: &[u8]) -> Result<(), StorageError> {
        self.storage.set_sync_state(device, doc, state)
    }
}
