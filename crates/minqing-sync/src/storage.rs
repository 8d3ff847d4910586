//! The `Storage` trait through which sync and the binaries reach stored documents
//! and the small metadata a laptop or a relay keeps, and `MemStorage`, an
//! in-memory implementation for tests and the simulator.

use std::collections::BTreeMap;
use std::sync::Mutex;

use automerge::ReadDoc;

use crate::{DocId, INCARNATION_LEN, Incarnation};

/// Metadata key of a store's incarnation ([`Store::incarnation`]).
pub const INCARNATION_KEY: &str = "incarnation";

/// A [`MemStorage`] document is compacted once it holds more appends than this
/// since its last compaction (the sled store's rule, simplified).
const MEM_COMPACT_APPENDS: usize = 64;

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
    /// The backend (disk, database) failed. Shown as the backend's own
    /// error, whose causes follow it; [`StorageError::backend`] gives the
    /// backend's typed error (e.g. `minqing_store::StoreError`) to match on.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl StorageError {
    /// The backend's own error, for callers that decide on its cause (a full
    /// disk, a locked store): downcast it to the backend's error type.
    pub fn backend(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            StorageError::Backend(e) => Some(&**e),
            StorageError::Corrupt { .. } => None,
        }
    }
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
/// acknowledge data to a peer. Metadata and compaction are on [`Store`].
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

/// A whole store, as a binary holds it: a [`Storage`] that also keeps
/// **metadata** (small values under string keys: a laptop's identity and
/// enrolment bundle, sync bookkeeping) and **compacts** a document's log when
/// told that now is a good time ([`Store::compact_if_needed`]: after a
/// command's output was printed, or from a background thread).
///
/// A sibling of [`Storage`] rather than more of it: sync sessions need only
/// documents and sync states, and the adapters that shape a store for one
/// session (keep a village's unsynced work before removing it, hide sync
/// states) implement [`Storage`] alone. The binaries hold an
/// `Arc<dyn Store>` and name the backend only where they open it; an
/// `Arc<dyn Store>` is an `Arc<dyn Storage>` where a session or a
/// [`crate::DocHost`] wants one (docs/store.md, "API").
///
/// `meta_put` and `meta_remove` are durable at the next [`Storage::flush`].
pub trait Store: Storage {
    /// The metadata value kept under `key`.
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Keeps `value` under metadata `key` (durable at the next flush).
    fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StorageError>;

    /// Removes metadata `key`; nothing happens if it is absent.
    fn meta_remove(&self, key: &str) -> Result<(), StorageError>;

    /// Every metadata entry whose key starts with `prefix`, sorted by key.
    fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError>;

    /// Compacts the stored log of `doc` if it has grown enough to be worth it
    /// (the backend decides); returns whether it did. `load` returns bytes
    /// that load to the same document before and after. Not on any write
    /// path: call it after a command's result is durable and reported.
    fn compact_if_needed(&self, doc: &DocId) -> Result<bool, StorageError>;

    /// What `doc`'s stored records are now, without reading their payloads:
    /// any append, compaction or removal gives a different version
    /// (docs/store.md, "Document version"). `None` when the backend cannot
    /// tell; callers then treat the document as changed. Derived caches (the
    /// laptop's village index, the service's loaded villages) are trusted only
    /// while the version they were made at is still the store's.
    fn doc_version(&self, doc: &DocId) -> Result<Option<DocVersion>, StorageError> {
        let _ = doc;
        Ok(None)
    }

    /// The store's incarnation (the suffix of its device's automerge actor;
    /// docs/data-model.md, "Actors"), `None` if none was started yet.
    fn incarnation(&self) -> Result<Option<Incarnation>, StorageError> {
        Ok(self
            .meta_get(INCARNATION_KEY)?
            .and_then(|b| Incarnation::from_stored(&b)))
    }

    /// Starts a new incarnation from 4 random bytes and makes it durable
    /// (it flushes): from now on the device writes with a new automerge actor,
    /// so that a store restored from a backup or copied never reuses a
    /// sequence number of the actor it was copied with. Call it when a store
    /// is created, restored or copied.
    fn start_new_incarnation(
        &self,
        random: [u8; INCARNATION_LEN],
    ) -> Result<Incarnation, StorageError> {
        let inc = Incarnation::from_random(random);
        self.meta_put(INCARNATION_KEY, &inc.bytes())?;
        self.flush()?;
        Ok(inc)
    }
}

/// An opaque version of a stored document ([`Store::doc_version`]): equal
/// versions mean the same stored records.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DocVersion(String);

impl DocVersion {
    /// A version from the backend's own description of the records.
    pub fn new(text: String) -> DocVersion {
        DocVersion(text)
    }

    /// The version as text (kept by callers next to what they derived).
    pub fn as_str(&self) -> &str {
        &self.0
    }
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

/// An in-memory [`Storage`]: for tests and the simulator. Everything the trait
/// offers works as in the sled store (documents, sync states, metadata,
/// compaction into one saved document); `flush` has nothing to do.
#[derive(Debug, Default)]
pub struct MemStorage {
    inner: Mutex<MemInner>,
}

#[derive(Debug, Default)]
struct MemDoc {
    /// Concatenated automerge bytes, as `load` returns them.
    bytes: Vec<u8>,
    /// Appends since the last compaction.
    appends: usize,
    /// Changed on every append and compaction ([`Store::doc_version`]).
    generation: u64,
}

#[derive(Debug, Default)]
struct MemInner {
    docs: BTreeMap<DocId, MemDoc>,
    sync_states: BTreeMap<(String, DocId), Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
    /// The last generation handed out to a document.
    generations: u64,
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
        Ok(self.lock().docs.get(doc).map(|d| d.bytes.clone()))
    }

    fn append(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.generations += 1;
        let generation = inner.generations;
        let d = inner.docs.entry(doc.clone()).or_default();
        d.bytes.extend_from_slice(bytes);
        d.appends += 1;
        d.generation = generation;
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

impl Store for MemStorage {
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.lock().meta.get(key).cloned())
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.lock().meta.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn meta_remove(&self, key: &str) -> Result<(), StorageError> {
        self.lock().meta.remove(key);
        Ok(())
    }

    fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        Ok(self
            .lock()
            .meta
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn compact_if_needed(&self, doc: &DocId) -> Result<bool, StorageError> {
        let mut inner = self.lock();
        inner.generations += 1;
        let generation = inner.generations;
        let Some(d) = inner.docs.get_mut(doc) else {
            return Ok(false);
        };
        if d.appends <= MEM_COMPACT_APPENDS {
            return Ok(false);
        }
        let am = automerge::Automerge::load(&d.bytes).map_err(|e| StorageError::Corrupt {
            doc: doc.clone(),
            detail: format!("the stored changes do not load: {e}"),
        })?;
        if !am.get_missing_deps(&[]).is_empty() {
            // `save` would drop changes still waiting for their dependencies
            // (the sled store leaves such a document alone too).
            return Ok(false);
        }
        d.bytes = am.save();
        d.appends = 0;
        d.generation = generation;
        Ok(true)
    }

    fn doc_version(&self, doc: &DocId) -> Result<Option<DocVersion>, StorageError> {
        Ok(Some(DocVersion::new(match self.lock().docs.get(doc) {
            Some(d) => format!("mem:{}", d.generation),
            None => "mem:-".to_owned(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    fn id(s: &str) -> DocId {
        DocId::new(s).expect("valid id")
    }

    #[test]
    fn mem_metadata_round_trips_and_scans_in_key_order() {
        let s = MemStorage::new();
        assert_eq!(s.meta_get("device").unwrap(), None);
        s.meta_put("relay/b", b"2").unwrap();
        s.meta_put("relay/a", b"1").unwrap();
        s.meta_put("relayz", b"x").unwrap();
        s.meta_put("device", b"d").unwrap();
        s.meta_remove("absent").unwrap();
        s.meta_remove("relayz").unwrap();
        assert_eq!(s.meta_get("device").unwrap().as_deref(), Some(&b"d"[..]));
        let scan = s.meta_scan("relay/").unwrap();
        assert_eq!(
            scan,
            vec![
                ("relay/a".into(), b"1".to_vec()),
                ("relay/b".into(), b"2".to_vec())
            ]
        );
        assert_eq!(s.meta_scan("").unwrap().len(), 3);
        assert_eq!(s.incarnation().unwrap(), None);
        let inc = s.start_new_incarnation([1, 2, 3, 4]).unwrap();
        assert_eq!(s.incarnation().unwrap(), Some(inc));
    }

    #[test]
    fn mem_compaction_keeps_the_document_and_shrinks_the_log() {
        let s = MemStorage::new();
        let v = id("V1");
        let mut am = automerge::AutoCommit::new();
        for i in 0..=MEM_COMPACT_APPENDS {
            let before = am.get_heads();
            am.put(automerge::ROOT, "n", i as i64).unwrap();
            am.commit();
            s.append(&v, &am.save_after(&before)).unwrap();
            if i < MEM_COMPACT_APPENDS {
                assert!(!s.compact_if_needed(&v).unwrap(), "too early at {i}");
            }
        }
        let before = s.load(&v).unwrap().unwrap();
        assert!(s.compact_if_needed(&v).unwrap());
        let after = s.load(&v).unwrap().unwrap();
        assert!(
            after.len() < before.len(),
            "{} >= {}",
            after.len(),
            before.len()
        );
        let loaded = load_doc(&s, &v).unwrap().unwrap();
        assert_eq!(loaded.get_heads(), am.get_heads());
        assert!(!s.compact_if_needed(&v).unwrap());
        assert!(!s.compact_if_needed(&id("absent")).unwrap());
    }
}
