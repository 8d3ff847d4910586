//! The `Storage` trait through which sync and the binaries reach stored documents,
//! and `MemStorage`, an in-memory implementation for tests and the simulator.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::DocId;

/// Errors a [`Storage`] reports.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A document's stored bytes fail their checksum or do not load.
    #[error("village {doc}: stored data is corrupt ({detail}); other villages are unaffected")]
    Corrupt {
        /// The document whose bytes are damaged.
        doc: DocId,
        /// What is wrong, for the operator.
        detail: String,
    },
    /// The backend (disk, database) failed.
    #[error("storage failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Durable storage of automerge documents and of per-peer sync states.
///
/// Documents are append-only logs of automerge bytes: `load` returns the
/// concatenation of everything kept (a snapshot, then incremental chunks), which
/// `automerge::Automerge::load` accepts as is. An implementation may compact the
/// log into a snapshot at any time, as long as `load` keeps returning bytes that
/// load to the same document.
///
/// Writes (`append`, `remove`, `set_sync_state`) need not be durable until
/// [`Storage::flush`] returns: callers flush before they report success or
/// acknowledge data to a peer.
pub trait Storage: Send + Sync {
    /// Every document held, sorted by id.
    fn docs(&self) -> Result<Vec<DocId>, StorageError>;

    /// The stored bytes of `doc`, or `None` if it is not held.
    fn load(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError>;

    /// Appends automerge bytes (changes from `save_after` / `save_incremental`,
    /// or a whole saved document) to `doc`, creating it if absent.
    fn append(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StorageError>;

    /// Removes `doc` and every sync state kept for it.
    fn remove(&self, doc: &DocId) -> Result<(), StorageError>;

    /// The encoded `automerge::sync::State` kept for (`peer`, `doc`).
    fn sync_state(&self, peer: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError>;

    /// Keeps the encoded `automerge::sync::State` for (`peer`, `doc`).
    fn set_sync_state(&self, peer: &str, doc: &DocId, state: &[u8]) -> Result<(), StorageError>;

    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StorageError>;
}

/// Loads `doc` from `storage` into an automerge document, naming the document
/// if its bytes do not load.
pub fn load_doc(
    storage: &dyn Storage,
    doc: &DocId,
) -> Result<Option<automerge::Automerge>, StorageError> {
    let Some(bytes) = storage.load(doc)? else {
        return Ok(None);
    };
    automerge::Automerge::load(&bytes)
        .map(Some)
        .map_err(|e| StorageError::Corrupt {
            doc: doc.clone(),
            detail: e.to_string(),
        })
}

/// An in-memory [`Storage`]: for tests and the simulator. `flush` does nothing.
#[derive(Debug, Default)]
pub struct MemStorage {
    inner: Mutex<MemInner>,
}

#[derive(Debug, Default)]
struct MemInner {
    docs: BTreeMap<DocId, Vec<u8>>,
    sync_states: BTreeMap<(String, DocId), Vec<u8>>,
}

impl MemStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemInner> {
        // A panic while holding this lock can only come from a bug in this file;
        // the data is plain bytes, so carrying on with it is safe.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Storage for MemStorage {
    fn docs(&self) -> Result<Vec<DocId>, StorageError> {
        Ok(self.lock().docs.keys().cloned().collect())
    }

    fn load(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.lock().docs.get(doc).cloned())
    }

    fn append(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StorageError> {
        self.lock()
            .docs
            .entry(doc.clone())
            .or_default()
            .extend_from_slice(bytes);
        Ok(())
    }

    fn remove(&self, doc: &DocId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.docs.remove(doc);
        inner.sync_states.retain(|(_, d), _| d != doc);
        Ok(())
    }

    fn sync_state(&self, peer: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .lock()
            .sync_states
            .get(&(peer.to_owned(), doc.clone()))
            .cloned())
    }

    fn set_sync_state(&self, peer: &str, doc: &DocId, state: &[u8]) -> Result<(), StorageError> {
        self.lock()
            .sync_states
            .insert((peer.to_owned(), doc.clone()), state.to_vec());
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
