//! `SledStorage`: the sled implementation of `minqing_sync::Storage` (snapshots plus
//! incremental chunks, compaction), and the small metadata tree devices and the relay keep.
//!
//! See `docs/store.md` for the on-disk layout, durability and compaction rules.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod compactor;
pub mod crypt;
pub mod escrow;
pub mod files;
pub mod hex;
pub mod keycache;
pub mod keyring;
mod large;
mod record;
pub mod sealed;
pub mod secret;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use minqing_sync::{DocId, DocVersion, Storage, StorageError, Store};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

pub use compactor::{CompactorHandle, spawn_compactor};
pub use crypt::DataKey;

use crypt::Codec;
pub use large::INLINE_MAX;

use large::{LargeError, LargeFiles, Pointer, Tag};
use record::Stored;

/// A document is compacted when it has more chunks than this.
pub const COMPACT_CHUNKS: u64 = 64;

/// A document whose chunks outweigh its snapshot is compacted only once the
/// chunks hold at least this many bytes, so that small documents do not churn.
pub const COMPACT_MIN_BYTES: u64 = 64 * 1024;

/// How long `open` keeps retrying while the directory is locked.
pub const OPEN_LOCK_WAIT: Duration = Duration::from_secs(2);

/// Longest peer name accepted for a sync state, in bytes.
pub const MAX_PEER_LEN: usize = 256;

/// Metadata key of the store's incarnation (`Storage::incarnation`).
pub use minqing_sync::INCARNATION_KEY;

/// Longest metadata key accepted, in bytes (bounded so that no sled index
/// node can reach sled's blob threshold; docs/store.md, "Large values").
pub const MAX_META_KEY_LEN: usize = 256;

/// Errors of the sled store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another handle in this process) holds the store.
    #[error(
        "another minqing process is using {}; wait for it to finish or stop it, then try again",
        path.display()
    )]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// A document's stored bytes are damaged. Other documents are unaffected.
    #[error("village {doc}: stored data is corrupt ({detail}); other villages are unaffected")]
    Corrupt {
        /// The damaged document.
        doc: DocId,
        /// What is wrong, e.g. "chunk 17 fails its checksum".
        detail: String,
    },
    /// A key in the store is not what this build writes (a damaged or foreign store).
    #[error("store key {key:?} in tree {tree} is malformed")]
    BadKey {
        /// The tree holding the key.
        tree: &'static str,
        /// The key, lossily decoded.
        key: String,
    },
    /// A caller passed a peer name or metadata key the store cannot hold.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was invalid ("peer name", "metadata key").
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// sled failed.
    #[error("the store at {} failed: {source}", path.display())]
    Sled {
        /// The store directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// A large-value file that a metadata or sync-state record points to is
    /// missing or damaged.
    #[error("the store file {} is damaged: {detail}", path.display())]
    LargeFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A stored value cannot be decrypted (damaged, or written under another key).
    #[error("stored {what} cannot be read: it {detail}")]
    Unreadable {
        /// Which value ("meta key device", "sync state of V1").
        what: String,
        /// Why.
        detail: String,
    },
    /// The file system failed.
    #[error("cannot use the store directory {}: {source}", path.display())]
    Io {
        /// The directory concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// The operating system's error behind this one, if any (a full disk, a
    /// read-only mount), so that callers can say what to do about it.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            StoreError::Sled {
                source: sled::Error::Io(e),
                ..
            }
            | StoreError::Io { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt { doc, detail } => StorageError::Corrupt { doc, detail },
            other => StorageError::Backend(Box::new(other)),
        }
    }
}

/// Sizes of what is stored for one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DocStats {
    /// Number of incremental chunks since the last compaction.
    pub chunks: u64,
    /// Payload bytes of those chunks.
    pub chunk_bytes: u64,
    /// Payload bytes of the snapshot (0 if there is none).
    pub snapshot_bytes: u64,
}

impl DocStats {
    /// Whether these sizes call for a compaction (see [`COMPACT_CHUNKS`],
    /// [`COMPACT_MIN_BYTES`]).
    pub fn needs_compaction(&self) -> bool {
        self.chunks > COMPACT_CHUNKS
            || (self.chunks > 1
                && self.chunk_bytes > self.snapshot_bytes
                && self.chunk_bytes >= COMPACT_MIN_BYTES)
    }
}

/// The sled store. Cheap to clone: clones share one database.
#[derive(Clone)]
pub struct SledStorage {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SledStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStorage")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    snapshots: sled::Tree,
    chunks: sled::Tree,
    sync_states: sled::Tree,
    meta: sled::Tree,
    /// Plain (relay) or sealed under the data key (laptop): see `crypt`.
    codec: Codec,
    /// Pointers to large metadata values (docs/store.md, "Large values").
    meta_large: sled::Tree,
    /// Pointers to large sync states.
    sync_large: sled::Tree,
    /// The `large/` directory.
    large: LargeFiles,
    /// Large-value files whose records are gone, to delete once a flush has
    /// made that durable.
    pending_deletes: Mutex<Vec<String>>,
    /// Next chunk seq per document, filled lazily from the last stored key.
    next_seq: Mutex<BTreeMap<DocId, u64>>,
    /// sled's log file, kept open to fsync it (see `flush_inner`).
    log_file: std::fs::File,
    /// Blob files already fsynced (see `flush_inner`).
    synced_blobs: Mutex<std::collections::BTreeSet<std::ffi::OsString>>,
    /// Held by compaction and `remove`, so that two of them never interleave
    /// on the same store (sled's lock makes this process the only writer).
    maintenance: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is a plain map / unit; a panic elsewhere while holding it
    // cannot leave it half-updated in a way that matters, so carry on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn chunk_prefix(doc: &DocId) -> Vec<u8> {
    let mut k = Vec::with_capacity(doc.as_str().len() + 1);
    k.extend_from_slice(doc.as_str().as_bytes());
    k.push(0);
    k
}

fn chunk_key(doc: &DocId, seq: u64) -> Vec<u8> {
    let mut k = chunk_prefix(doc);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(key: &[u8], prefix_len: usize) -> Option<u64> {
    let tail: [u8; 8] = key.get(prefix_len..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

fn check_peer(peer: &str) -> Result<(), StoreError> {
    if peer.is_empty() || peer.len() > MAX_PEER_LEN || peer.contains('\0') {
        return Err(StoreError::Invalid {
            what: "peer name",
            detail: format!("{peer:?} must be 1 to {MAX_PEER_LEN} bytes without NUL"),
        });
    }
    Ok(())
}

fn check_meta_key(key: &str) -> Result<(), StoreError> {
    if key.len() > MAX_META_KEY_LEN {
        return Err(StoreError::Invalid {
            what: "metadata key",
            detail: format!("{} bytes long; at most {MAX_META_KEY_LEN}", key.len()),
        });
    }
    Ok(())
}

fn sync_key(peer: &str, doc: &DocId) -> Vec<u8> {
    let mut k = Vec::with_capacity(peer.len() + 1 + doc.as_str().len());
    k.extend_from_slice(peer.as_bytes());
    k.push(0);
    k.extend_from_slice(doc.as_str().as_bytes());
    k
}

/// Deletes `snap.*.generating` files that a process killed while sled was writing
/// its own snapshot left behind. sled 0.34.7 picks the newest `snap.*` file when it
/// opens, and a half-written `.generating` one sorts after the finished snapshot of
/// the same position, so without this the store would never open again ("empty/
/// corrupt snapshot file found"). Only done while holding the lock on sled's `db`
/// file, so that no live process is writing one; if another process holds it,
/// opening reports that instead.
fn remove_interrupted_snapshots(path: &Path) -> Result<(), StoreError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Io { path, source }
    };
    let db_file = path.join("db");
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&db_file)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(&db_file)(e)),
    };
    if file.try_lock().is_err() {
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(io_err(path))?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "removing a snapshot sled did not finish writing");
            std::fs::remove_file(entry.path()).map_err(io_err(&entry.path()))?;
        }
    }
    Ok(())
}

/// Everything read from disk for one document.
struct Loaded {
    /// The snapshot record as stored (inline or pointer).
    snapshot: Option<sled::IVec>,
    /// The snapshot's payload.
    snapshot_payload: Option<Vec<u8>>,
    /// (key, stored record, payload) in seq order.
    chunks: Vec<(sled::IVec, sled::IVec, Vec<u8>)>,
}

/// The large-value file a stored document record points to, if it does.
fn pointed_file(stored: &[u8]) -> Option<String> {
    match record::decode_stored(stored) {
        Ok(Stored::Pointer(body)) => Pointer::decode(body).map(|p| p.name),
        _ => None,
    }
}

/// Payload length of a stored document record, without reading its file.
fn payload_len(stored: &[u8]) -> u64 {
    match record::decode_stored(stored) {
        Ok(Stored::Inline(p)) => p.len() as u64,
        Ok(Stored::Pointer(body)) => Pointer::decode(body)
            .map(|p| p.len.saturating_sub(record::HEADER_LEN as u64))
            .unwrap_or(0),
        Err(_) => stored.len().saturating_sub(record::HEADER_LEN) as u64,
    }
}

/// Why a compaction transaction gave up.
#[derive(Debug)]
enum CompactAbort {
    /// The snapshot or a chunk changed since it was read.
    Changed,
}

impl SledStorage {
    /// Opens (creating if needed) the store in directory `path`.
    ///
    /// If the directory is locked, retries for [`OPEN_LOCK_WAIT`] (a `Db`
    /// dropped a moment ago in this process releases its lock asynchronously),
    /// then reports [`StoreError::Locked`].
    pub fn open(path: &Path) -> Result<SledStorage, StoreError> {
        Self::open_with(path, Codec::Plain)
    }

    /// Opens (creating if needed) the store in directory `path` with every
    /// value encrypted under `key` (a laptop's store; see docs/security.md).
    /// The key is not checked here: unlock it with [`keyring::unlock`] first.
    pub fn open_sealed(path: &Path, key: &DataKey) -> Result<SledStorage, StoreError> {
        Self::open_with(path, Codec::Sealed(Arc::new(key.cipher())))
    }

    /// Whether values are encrypted in this store.
    pub fn is_sealed(&self) -> bool {
        matches!(self.inner.codec, Codec::Sealed(_))
    }

    fn open_with(path: &Path, codec: Codec) -> Result<SledStorage, StoreError> {
        if !path.join("db").exists() {
            create_store(path)?;
        }
        remove_interrupted_snapshots(path)?;
        let started = Instant::now();
        let db = loop {
            match sled::Config::new().path(path).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    if started.elapsed() >= OPEN_LOCK_WAIT {
                        return Err(StoreError::Locked {
                            path: path.to_owned(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(source) => {
                    return Err(StoreError::Sled {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        };
        let sled_err = |source| StoreError::Sled {
            path: path.to_owned(),
            source,
        };
        let snapshots = db.open_tree("snapshots").map_err(sled_err)?;
        let chunks = db.open_tree("chunks").map_err(sled_err)?;
        let sync_states = db.open_tree("sync_states").map_err(sled_err)?;
        let meta = db.open_tree("meta").map_err(sled_err)?;
        let meta_large = db.open_tree("meta_large").map_err(sled_err)?;
        let sync_large = db.open_tree("sync_states_large").map_err(sled_err)?;
        let large = LargeFiles::open(path).map_err(large_io)?;
        let log_path = path.join("db");
        let log_file = std::fs::File::open(&log_path).map_err(|source| StoreError::Io {
            path: log_path,
            source,
        })?;
        SledStorage {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                db,
                snapshots,
                chunks,
                sync_states,
                meta,
                codec,
                meta_large,
                sync_large,
                large,
                pending_deletes: Mutex::new(Vec::new()),
                next_seq: Mutex::new(BTreeMap::new()),
                log_file,
                synced_blobs: Mutex::new(std::collections::BTreeSet::new()),
                maintenance: Mutex::new(()),
            }),
        }
        .with_orphans_removed()
    }

    /// Deletes every large-value file no record points to (written but never
    /// pointed to, or left by a cut before its delete). Runs while sled's lock
    /// keeps every other process out.
    fn with_orphans_removed(self) -> Result<SledStorage, StoreError> {
        let names = self.inner.large.list().map_err(large_io)?;
        if names.is_empty() {
            return Ok(self);
        }
        let mut small_refs = std::collections::BTreeSet::new();
        for tree in [&self.inner.meta_large, &self.inner.sync_large] {
            for kv in tree.iter() {
                let (_, v) = kv.map_err(|e| self.sled(e))?;
                if let Some(p) = Pointer::decode(&v) {
                    small_refs.insert(p.name);
                }
            }
        }
        for name in names {
            let keep = match large::parse_name(&name) {
                Some((Tag::Snapshot, key)) => self.points_to(&self.inner.snapshots, &key, &name)?,
                Some((Tag::Chunk, key)) => self.points_to(&self.inner.chunks, &key, &name)?,
                Some((Tag::Meta | Tag::SyncState, _)) => small_refs.contains(&name),
                None => false,
            };
            if !keep {
                tracing::info!(file = %name, "removing a large-value file no record points to");
                self.inner.large.delete(&name).map_err(large_io)?;
            }
        }
        Ok(self)
    }

    fn points_to(&self, tree: &sled::Tree, key: &[u8], name: &str) -> Result<bool, StoreError> {
        Ok(tree
            .get(key)
            .map_err(|e| self.sled(e))?
            .and_then(|v| pointed_file(&v))
            .is_some_and(|n| n == name))
    }

    fn large_err(&self, e: LargeError) -> StoreError {
        match e {
            LargeError::Io { path, source } => StoreError::Io { path, source },
            LargeError::Damaged { name, detail } => StoreError::LargeFile {
                path: self.inner.large.dir().join(name),
                detail,
            },
        }
    }

    /// Queues large-value files for deletion after the next flush.
    fn queue_delete(&self, names: impl IntoIterator<Item = String>) {
        lock(&self.inner.pending_deletes).extend(names);
    }

    /// What to store for a document record: the record itself, or (if larger
    /// than [`INLINE_MAX`]) a pointer record to a durable file holding it.
    fn doc_value(&self, tag: Tag, key: &[u8], rec: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        if rec.len() <= INLINE_MAX {
            return Ok(rec);
        }
        let p = self
            .inner
            .large
            .write(tag, key, &rec)
            .map_err(|e| self.large_err(e))?;
        Ok(record::encode_pointer(&p.encode()))
    }

    /// The payload of a stored document record, following a pointer.
    /// `what` names the record in errors ("the snapshot", "chunk 17").
    /// The record's payload is sealed under the store's codec with `tree` and
    /// `key` (the sled key) as associated data, and opened here.
    fn doc_payload(
        &self,
        doc: &DocId,
        what: &str,
        tree: &str,
        key: &[u8],
        stored: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let sealed = self.doc_record_payload(doc, what, stored)?;
        self.inner
            .codec
            .open(tree, key, &sealed)
            .map_err(|e| StoreError::Corrupt {
                doc: doc.clone(),
                detail: format!("{what} {e}"),
            })
    }

    /// A document record's payload as stored (still sealed), following a pointer.
    fn doc_record_payload(
        &self,
        doc: &DocId,
        what: &str,
        stored: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            doc: doc.clone(),
            detail,
        };
        match record::decode_stored(stored).map_err(|e| corrupt(format!("{what} {e}")))? {
            Stored::Inline(p) => Ok(p.to_vec()),
            Stored::Pointer(body) => {
                let p = Pointer::decode(body)
                    .ok_or_else(|| corrupt(format!("{what} has a malformed file pointer")))?;
                let bytes = match self.inner.large.read(&p) {
                    Ok(b) => b,
                    Err(LargeError::Damaged { name, detail }) => {
                        return Err(corrupt(format!("{what} is in file {name}, which {detail}")));
                    }
                    Err(e) => return Err(self.large_err(e)),
                };
                let payload = record::decode(&bytes)
                    .map_err(|e| corrupt(format!("{what} (file {}) {e}", p.name)))?;
                Ok(payload.to_vec())
            }
        }
    }

    /// Puts `value` under `key` in a raw tree with an overflow tree
    /// (`meta`/`meta_large`, `sync_states`/`sync_states_large`).
    fn pair_put(
        &self,
        main: &sled::Tree,
        overflow: &sled::Tree,
        tag: Tag,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        if value.len() <= INLINE_MAX {
            main.insert(key, value).map_err(|e| self.sled(e))?;
            if let Some(old) = overflow.remove(key).map_err(|e| self.sled(e))? {
                self.queue_delete(Pointer::decode(&old).map(|p| p.name));
            }
        } else {
            let p = self
                .inner
                .large
                .write(tag, b"", value)
                .map_err(|e| self.large_err(e))?;
            if let Some(old) = overflow.insert(key, p.encode()).map_err(|e| self.sled(e))? {
                self.queue_delete(Pointer::decode(&old).map(|p| p.name));
            }
            main.remove(key).map_err(|e| self.sled(e))?;
        }
        Ok(())
    }

    fn pair_get(
        &self,
        main: &sled::Tree,
        overflow: &sled::Tree,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = main.get(key).map_err(|e| self.sled(e))? {
            return Ok(Some(v.to_vec()));
        }
        match overflow.get(key).map_err(|e| self.sled(e))? {
            None => Ok(None),
            Some(v) => self.read_overflow(&v).map(Some),
        }
    }

    fn read_overflow(&self, pointer: &[u8]) -> Result<Vec<u8>, StoreError> {
        let p = Pointer::decode(pointer).ok_or_else(|| StoreError::LargeFile {
            path: self.inner.large.dir().to_owned(),
            detail: "a record holds a malformed file pointer".into(),
        })?;
        self.inner.large.read(&p).map_err(|e| self.large_err(e))
    }

    fn pair_remove(
        &self,
        main: &sled::Tree,
        overflow: &sled::Tree,
        key: &[u8],
    ) -> Result<(), StoreError> {
        main.remove(key).map_err(|e| self.sled(e))?;
        if let Some(old) = overflow.remove(key).map_err(|e| self.sled(e))? {
            self.queue_delete(Pointer::decode(&old).map(|p| p.name));
        }
        Ok(())
    }

    /// The directory this store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn sled(&self, source: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.inner.path.clone(),
            source,
        }
    }

    fn tx_err<E>(
        &self,
        e: TransactionError<E>,
        on_abort: impl FnOnce(E) -> StoreError,
    ) -> StoreError {
        match e {
            TransactionError::Abort(a) => on_abort(a),
            TransactionError::Storage(s) => self.sled(s),
        }
    }

    /// The value kept under metadata `key`.
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_meta_key(key)?;
        self.pair_get(&self.inner.meta, &self.inner.meta_large, key.as_bytes())?
            .map(|v| self.unseal("meta", key.as_bytes(), &v, || format!("meta key {key}")))
            .transpose()
    }

    /// Decrypts a stored value (`what` names it in the error).
    fn unseal(
        &self,
        tree: &'static str,
        key: &[u8],
        stored: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, StoreError> {
        self.inner
            .codec
            .open(tree, key, stored)
            .map_err(|e| StoreError::Unreadable {
                what: what(),
                detail: e.to_string(),
            })
    }

    /// Keeps `value` under metadata `key`. Not durable until [`Storage::flush`].
    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_meta_key(key)?;
        self.pair_put(
            &self.inner.meta,
            &self.inner.meta_large,
            Tag::Meta,
            key.as_bytes(),
            &self.inner.codec.seal("meta", key.as_bytes(), value),
        )
    }

    /// Removes metadata `key` (nothing happens if it is absent).
    pub fn meta_remove(&self, key: &str) -> Result<(), StoreError> {
        check_meta_key(key)?;
        self.pair_remove(&self.inner.meta, &self.inner.meta_large, key.as_bytes())
    }

    /// Every metadata entry whose key starts with `prefix`, sorted by key.
    pub fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_meta_key(prefix)?;
        let mut out = BTreeMap::new();
        for (tree, overflow) in [(&self.inner.meta, false), (&self.inner.meta_large, true)] {
            for kv in tree.scan_prefix(prefix.as_bytes()) {
                let (k, v) = kv.map_err(|e| self.sled(e))?;
                let key = String::from_utf8(k.to_vec()).map_err(|e| StoreError::BadKey {
                    tree: "meta",
                    key: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                })?;
                if out.contains_key(&key) {
                    continue; // the main tree wins (docs/store.md)
                }
                let value = if overflow {
                    self.read_overflow(&v)?
                } else {
                    v.to_vec()
                };
                let value =
                    self.unseal("meta", key.as_bytes(), &value, || format!("meta key {key}"))?;
                out.insert(key, value);
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Sizes of what is kept for `doc`.
    pub fn stats(&self, doc: &DocId) -> Result<DocStats, StoreError> {
        let mut stats = DocStats::default();
        if let Some(s) = self
            .inner
            .snapshots
            .get(doc.as_str().as_bytes())
            .map_err(|e| self.sled(e))?
        {
            stats.snapshot_bytes =
                payload_len(&s).saturating_sub(self.inner.codec.overhead() as u64);
        }
        for kv in self.inner.chunks.scan_prefix(chunk_prefix(doc)) {
            let (_, v) = kv.map_err(|e| self.sled(e))?;
            stats.chunks += 1;
            stats.chunk_bytes += payload_len(&v).saturating_sub(self.inner.codec.overhead() as u64);
        }
        Ok(stats)
    }

    /// What `doc`'s records are now (docs/store.md, "Document version"):
    /// the snapshot's sled value (crc32 and length) and the last chunk's key
    /// and value, read without touching a payload or a large file. Every
    /// append, compaction or removal changes it; on a sealed store every
    /// value carries a fresh nonce, so a record written again differs too.
    pub fn doc_version(&self, doc: &DocId) -> Result<DocVersion, StoreError> {
        let snapshot = self
            .inner
            .snapshots
            .get(doc.as_str().as_bytes())
            .map_err(|e| self.sled(e))?;
        let prefix = chunk_prefix(doc);
        let last = self
            .inner
            .chunks
            .scan_prefix(&prefix)
            .next_back()
            .transpose()
            .map_err(|e| self.sled(e))?;
        let snap = match &snapshot {
            Some(s) => format!("{:08x}.{}", crc32fast::hash(s), s.len()),
            None => "-".to_owned(),
        };
        let chunk = match &last {
            Some((k, v)) => format!(
                "{}.{:08x}",
                seq_of(k, prefix.len()).map_or_else(|| "?".to_owned(), |s| s.to_string()),
                crc32fast::hash(v)
            ),
            None => "-".to_owned(),
        };
        Ok(DocVersion::new(format!("v1:{snap}:{chunk}")))
    }

    /// Reads and checks every record of `doc`.
    fn read_doc(&self, doc: &DocId) -> Result<Loaded, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            doc: doc.clone(),
            detail,
        };
        let snapshot = self
            .inner
            .snapshots
            .get(doc.as_str().as_bytes())
            .map_err(|e| self.sled(e))?;
        let snapshot_payload = match &snapshot {
            Some(s) => Some(self.doc_payload(
                doc,
                "the snapshot",
                "snapshots",
                doc.as_str().as_bytes(),
                s,
            )?),
            None => None,
        };
        let prefix = chunk_prefix(doc);
        let mut chunks = Vec::new();
        for kv in self.inner.chunks.scan_prefix(&prefix) {
            let (k, v) = kv.map_err(|e| self.sled(e))?;
            let Some(seq) = seq_of(&k, prefix.len()) else {
                return Err(corrupt(format!(
                    "a chunk key of {} bytes is malformed",
                    k.len()
                )));
            };
            let payload = self.doc_payload(doc, &format!("chunk {seq}"), "chunks", &k, &v)?;
            chunks.push((k.clone(), v.clone(), payload));
        }
        Ok(Loaded {
            snapshot,
            snapshot_payload,
            chunks,
        })
    }

    /// Compacts `doc` (see [`SledStorage::compact`]) if [`DocStats::needs_compaction`]
    /// says so. Returns whether it did.
    pub fn compact_if_needed(&self, doc: &DocId) -> Result<bool, StoreError> {
        if !self.stats(doc)?.needs_compaction() {
            return Ok(false);
        }
        self.compact_inner(doc)
    }

    /// Rewrites `doc` as one snapshot (`Automerge::save`) and deletes the chunks
    /// folded into it. Chunks appended meanwhile are kept. Flushes before it
    /// returns (so that the next write's flush does not pay for the snapshot).
    pub fn compact(&self, doc: &DocId) -> Result<(), StoreError> {
        self.compact_inner(doc).map(|_| ())
    }

    fn compact_inner(&self, doc: &DocId) -> Result<bool, StoreError> {
        self.compact_inner_with(doc, &mut || {})
    }

    /// Compaction, with `between` run after the document was read and saved
    /// and before the transaction (tests use it to write in that window).
    fn compact_inner_with(
        &self,
        doc: &DocId,
        between: &mut dyn FnMut(),
    ) -> Result<bool, StoreError> {
        let _guard = lock(&self.inner.maintenance);
        let loaded = self.read_doc(doc)?;
        if loaded.chunks.is_empty() {
            return Ok(false);
        }
        let mut bytes = loaded.snapshot_payload.clone().unwrap_or_default();
        for (_, _, c) in &loaded.chunks {
            bytes.extend_from_slice(c);
        }
        let am = automerge::Automerge::load(&bytes).map_err(|e| StoreError::Corrupt {
            doc: doc.clone(),
            detail: format!("the stored changes do not load: {e}"),
        })?;
        use automerge::ReadDoc;
        let missing = am.get_missing_deps(&[]);
        if !missing.is_empty() {
            // Changes whose dependencies are not here yet sit in automerge's
            // queue and `save` would drop them: keep the chunks as they are.
            tracing::warn!(%doc, missing = missing.len(), "not compacting: changes wait for missing dependencies");
            return Ok(false);
        }
        let key = doc.as_str().as_bytes();
        let snapshot = self.doc_value(
            Tag::Snapshot,
            key,
            self.inner.codec.seal_record("snapshots", key, &am.save()),
        )?;
        let old = loaded.snapshot.clone();
        let chunk_keys: Vec<sled::IVec> = loaded.chunks.iter().map(|(k, _, _)| k.clone()).collect();
        // Files the old records point to: deleted once the new snapshot's
        // transaction is durable.
        let mut old_files: Vec<String> = old.iter().filter_map(|s| pointed_file(s)).collect();
        old_files.extend(loaded.chunks.iter().filter_map(|(_, v, _)| pointed_file(v)));
        between();
        let res = (&self.inner.snapshots, &self.inner.chunks).transaction(|(snaps, chunks)| {
            if snaps.get(key)? != old {
                return Err(ConflictableTransactionError::Abort(CompactAbort::Changed));
            }
            for k in &chunk_keys {
                if chunks.remove(k)?.is_none() {
                    return Err(ConflictableTransactionError::Abort(CompactAbort::Changed));
                }
            }
            snaps.insert(key, snapshot.as_slice())?;
            Ok(())
        });
        match res {
            Ok(()) => {
                // Flush here, off the write path: otherwise the next command's
                // flush would pay for writing the whole new snapshot. The
                // flush also deletes the files of the records just replaced.
                self.queue_delete(old_files);
                self.flush_inner()?;
                tracing::debug!(%doc, chunks = chunk_keys.len(), snapshot = snapshot.len(), "compacted");
                Ok(true)
            }
            Err(TransactionError::Abort(CompactAbort::Changed)) => {
                tracing::debug!(%doc, "compaction skipped: the document changed under it");
                // Nothing ever pointed to the new snapshot's file.
                if let Some(name) = pointed_file(&snapshot) {
                    self.inner
                        .large
                        .delete(&name)
                        .map_err(|e| self.large_err(e))?;
                }
                Ok(false)
            }
            Err(TransactionError::Storage(e)) => Err(self.sled(e)),
        }
    }

    /// Starts a background thread that runs [`SledStorage::compact_if_needed`]
    /// over every document every `interval`.
    /// It stops when the returned handle is dropped.
    pub fn spawn_compactor(&self, interval: Duration) -> CompactorHandle {
        compactor::spawn_compactor(Arc::new(self.clone()), interval)
    }

    fn next_seq(&self, doc: &DocId) -> Result<u64, StoreError> {
        let mut seqs = lock(&self.inner.next_seq);
        if let Some(n) = seqs.get_mut(doc) {
            let seq = *n;
            *n += 1;
            return Ok(seq);
        }
        let prefix = chunk_prefix(doc);
        let last = self
            .inner
            .chunks
            .scan_prefix(&prefix)
            .next_back()
            .transpose()
            .map_err(|e| self.sled(e))?;
        let seq = match last {
            None => 0,
            Some((k, _)) => match seq_of(&k, prefix.len()) {
                Some(s) => s.checked_add(1).ok_or_else(|| StoreError::Corrupt {
                    doc: doc.clone(),
                    detail: "chunk sequence numbers are exhausted".into(),
                })?,
                None => {
                    return Err(StoreError::Corrupt {
                        doc: doc.clone(),
                        detail: format!("a chunk key of {} bytes is malformed", k.len()),
                    });
                }
            },
        };
        seqs.insert(doc.clone(), seq + 1);
        Ok(seq)
    }

    fn docs_inner(&self) -> Result<Vec<DocId>, StoreError> {
        let mut out = std::collections::BTreeSet::new();
        // A malformed key (only sled-level damage could write one) is skipped
        // with a warning, so that one damaged record does not hide every village.
        for k in self.inner.snapshots.iter().keys() {
            let k = k.map_err(|e| self.sled(e))?;
            match self.doc_from_key(&k, "snapshots") {
                Ok(doc) => {
                    out.insert(doc);
                }
                Err(e) => tracing::warn!(error = %e, "skipping a malformed snapshot key"),
            }
        }
        // Jump from one document's chunks to the next instead of reading them all.
        let mut from: Vec<u8> = Vec::new();
        while let Some(kv) = self.inner.chunks.range(from.as_slice()..).next() {
            let (k, _) = kv.map_err(|e| self.sled(e))?;
            let end = k.iter().position(|&b| b == 0).unwrap_or(k.len());
            match self.doc_from_key(&k[..end], "chunks") {
                Ok(doc) => {
                    from = chunk_prefix(&doc);
                    // `doc 0x01` sorts after every key `doc 0x00 ..`.
                    if let Some(last) = from.last_mut() {
                        *last = 1;
                    }
                    out.insert(doc);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a malformed chunk key");
                    // The smallest key after `k`.
                    from = k.to_vec();
                    from.push(0);
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    fn doc_from_key(&self, k: &[u8], tree: &'static str) -> Result<DocId, StoreError> {
        std::str::from_utf8(k)
            .ok()
            .and_then(|s| DocId::new(s).ok())
            .ok_or_else(|| StoreError::BadKey {
                tree,
                key: String::from_utf8_lossy(k).into_owned(),
            })
    }

    fn load_inner(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError> {
        let loaded = self.read_doc(doc)?;
        if loaded.snapshot.is_none() && loaded.chunks.is_empty() {
            return Ok(None);
        }
        let mut out = loaded.snapshot_payload.unwrap_or_default();
        for (_, _, c) in &loaded.chunks {
            out.extend_from_slice(c);
        }
        Ok(Some(out))
    }

    fn append_inner(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StoreError> {
        let seq = self.next_seq(doc)?;
        let key = chunk_key(doc, seq);
        let value = self.doc_value(
            Tag::Chunk,
            &key,
            self.inner.codec.seal_record("chunks", &key, bytes),
        )?;
        self.inner
            .chunks
            .insert(key, value)
            .map_err(|e| self.sled(e))?;
        Ok(())
    }

    fn remove_inner(&self, doc: &DocId) -> Result<(), StoreError> {
        let _guard = lock(&self.inner.maintenance);
        let key = doc.as_str().as_bytes();
        let mut files = Vec::new();
        if let Some(s) = self.inner.snapshots.get(key).map_err(|e| self.sled(e))? {
            files.extend(pointed_file(&s));
        }
        let mut chunk_keys = Vec::new();
        for kv in self.inner.chunks.scan_prefix(chunk_prefix(doc)) {
            let (k, v) = kv.map_err(|e| self.sled(e))?;
            files.extend(pointed_file(&v));
            chunk_keys.push(k);
        }
        let mut state_keys = Vec::new();
        for k in self.inner.sync_states.iter().keys() {
            let k = k.map_err(|e| self.sled(e))?;
            let doc_part = k.iter().position(|&b| b == 0).map(|i| &k[i + 1..]);
            if doc_part == Some(doc.as_str().as_bytes()) {
                state_keys.push(k);
            }
        }
        let mut large_state_keys = Vec::new();
        for kv in self.inner.sync_large.iter() {
            let (k, v) = kv.map_err(|e| self.sled(e))?;
            let doc_part = k.iter().position(|&b| b == 0).map(|i| &k[i + 1..]);
            if doc_part == Some(doc.as_str().as_bytes()) {
                files.extend(Pointer::decode(&v).map(|p| p.name));
                large_state_keys.push(k);
            }
        }
        (
            &self.inner.snapshots,
            &self.inner.chunks,
            &self.inner.sync_states,
            &self.inner.sync_large,
        )
            .transaction(|(snaps, chunks, states, large_states)| {
                snaps.remove(key)?;
                for k in &chunk_keys {
                    chunks.remove(k)?;
                }
                for k in &state_keys {
                    states.remove(k)?;
                }
                for k in &large_state_keys {
                    large_states.remove(k)?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| self.tx_err(e, |()| unreachable_abort()))?;
        // Deleted by the next flush, once the removal is durable.
        self.queue_delete(files);
        Ok(())
    }

    /// Makes every write so far durable, also against power loss.
    ///
    /// On Linux, sled 0.34.7's `flush` ends in `sync_file_range`, which writes
    /// the log's pages but neither commits the file's size nor flushes the
    /// disk's write cache, and it never fsyncs the blob files it writes for
    /// large values (snapshots, a whole village received in one piece). So
    /// after sled's flush this fdatasyncs the log file and fsyncs every blob
    /// file not synced before, and then the blob directory.
    ///
    /// Then deletes the large-value files queued before it started: the
    /// records that pointed to them are gone, and that is now durable.
    fn flush_inner(&self) -> Result<(), StoreError> {
        let doomed = std::mem::take(&mut *lock(&self.inner.pending_deletes));
        if let Err(e) = self.flush_sled() {
            lock(&self.inner.pending_deletes).extend(doomed);
            return Err(e);
        }
        for name in doomed {
            if let Err(e) = self.inner.large.delete(&name) {
                // Left as an orphan; the next `open` removes it.
                tracing::warn!(error = %e, "cannot delete a large-value file");
            }
        }
        Ok(())
    }

    fn flush_sled(&self) -> Result<(), StoreError> {
        self.inner.db.flush().map_err(|e| self.sled(e))?;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        self.inner
            .log_file
            .sync_data()
            .map_err(io(&self.inner.path.join("db")))?;
        let blobs = self.inner.path.join("blobs");
        let entries = match std::fs::read_dir(&blobs) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&blobs)(e)),
        };
        let mut synced = lock(&self.inner.synced_blobs);
        let mut present = std::collections::BTreeSet::new();
        let mut any_new = false;
        for entry in entries {
            let entry = entry.map_err(io(&blobs))?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                let file = entry.path();
                match std::fs::File::open(&file) {
                    Ok(f) => f.sync_all().map_err(io(&file))?,
                    // sled removed it meanwhile (blob garbage collection).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(&file)(e)),
                }
                any_new = true;
            }
            present.insert(name);
        }
        if any_new {
            std::fs::File::open(&blobs)
                .and_then(|d| d.sync_all())
                .map_err(io(&blobs))?;
        }
        *synced = present;
        Ok(())
    }
}

/// Maps an I/O failure of the large-value layer while opening.
fn large_io(e: LargeError) -> StoreError {
    match e {
        LargeError::Io { path, source } => StoreError::Io { path, source },
        LargeError::Damaged { name, detail } => StoreError::LargeFile {
            path: PathBuf::from(name),
            detail,
        },
    }
}

/// Names sled and this crate create in a store directory.
/// Whether `name` is one of an encrypted store's key files (docs/security.md).
fn is_key_file(name: &str) -> bool {
    name == keyring::KEYRING_FILE || name == keyring::THROTTLE_FILE
}

fn is_store_entry(name: &str) -> bool {
    matches!(name, "conf" | "db" | "blobs" | large::LARGE_DIR) || name.starts_with("snap.")
}

/// Creates a new, empty store at `path` so that a power cut at any moment
/// leaves either no store or a complete one: sled creates its files in a
/// staging directory next to `path`, everything there is fsynced, and only
/// then is it renamed into place (and the parent fsynced). sled alone writes
/// its `conf` without syncing it; a torn `conf` makes sled refuse the store
/// for ever. A `path` that exists without sled's `db` holds nothing that was
/// ever acknowledged and is replaced, if it holds only store files.
fn create_store(path: &Path) -> Result<(), StoreError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| StoreError::Io { path: p, source }
    };
    let sled_err = |p: &Path| {
        let p = p.to_owned();
        move |source| StoreError::Sled { path: p, source }
    };
    let name = path
        .file_name()
        .ok_or_else(|| StoreError::Invalid {
            what: "store path",
            detail: format!("{} has no final component", path.display()),
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    large::create_dir_all_durable(&parent).map_err(large_io)?;
    let staging = parent.join(format!(".{name}.creating"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    large::create_dir_all_durable(&staging).map_err(large_io)?;
    {
        let db = sled::Config::new()
            .path(&staging)
            .open()
            .map_err(sled_err(&staging))?;
        db.flush().map_err(sled_err(&staging))?;
    }
    LargeFiles::open(&staging).map_err(large_io)?;
    sync_new_store(&staging).map_err(large_io)?;
    if path.exists() {
        for entry in std::fs::read_dir(path).map_err(io(path))? {
            let entry = entry.map_err(io(path))?;
            let entry_name = entry.file_name().to_string_lossy().into_owned();
            if is_key_file(&entry_name) {
                // An encrypted store's keyring is written before the store
                // (nothing is ever stored under a key that is not kept): it
                // moves into the new store with it.
                let to = staging.join(&entry_name);
                std::fs::copy(entry.path(), &to).map_err(io(&to))?;
                std::fs::File::open(&to)
                    .and_then(|f| f.sync_all())
                    .map_err(io(&to))?;
                large::sync_dir(&staging).map_err(large_io)?;
                continue;
            }
            if !is_store_entry(&entry_name) {
                return Err(StoreError::Invalid {
                    what: "store directory",
                    detail: format!(
                        "{} holds {entry_name}, which is not part of a minqing store",
                        path.display()
                    ),
                });
            }
        }
        std::fs::remove_dir_all(path).map_err(io(path))?;
    }
    std::fs::rename(&staging, path).map_err(io(path))?;
    large::sync_dir(&parent).map_err(large_io)?;
    Ok(())
}

/// Makes a store sled has just created durable: its files' contents and the
/// directory's entries (sled syncs neither).
fn sync_new_store(path: &Path) -> Result<(), LargeError> {
    let io = |source| LargeError::Io {
        path: path.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_type().map_err(io)?.is_file() {
            std::fs::File::open(entry.path())
                .and_then(|f| f.sync_all())
                .map_err(|source| LargeError::Io {
                    path: entry.path(),
                    source,
                })?;
        }
    }
    large::sync_dir(path)
}

/// The transactions above only abort with the reasons they handle themselves.
fn unreachable_abort() -> StoreError {
    StoreError::Invalid {
        what: "transaction",
        detail: "aborted for no reason (a bug in minqing-store)".into(),
    }
}

impl Storage for SledStorage {
    fn docs(&self) -> Result<Vec<DocId>, StorageError> {
        Ok(self.docs_inner()?)
    }

    fn load(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.load_inner(doc)?)
    }

    fn append(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StorageError> {
        Ok(self.append_inner(doc, bytes)?)
    }

    fn remove(&self, doc: &DocId) -> Result<(), StorageError> {
        Ok(self.remove_inner(doc)?)
    }

    fn sync_state(&self, peer: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        check_peer(peer)?;
        let key = sync_key(peer, doc);
        Ok(self
            .pair_get(&self.inner.sync_states, &self.inner.sync_large, &key)?
            .map(|v| {
                self.unseal("sync_states", &key, &v, || {
                    format!("sync state of {doc} with {peer}")
                })
            })
            .transpose()?)
    }

    fn set_sync_state(&self, peer: &str, doc: &DocId, state: &[u8]) -> Result<(), StorageError> {
        check_peer(peer)?;
        let key = sync_key(peer, doc);
        let value = self.inner.codec.seal("sync_states", &key, state);
        Ok(self.pair_put(
            &self.inner.sync_states,
            &self.inner.sync_large,
            Tag::SyncState,
            &key,
            &value,
        )?)
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(self.flush_inner()?)
    }
}

impl Store for SledStorage {
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(SledStorage::meta_get(self, key)?)
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        Ok(SledStorage::meta_put(self, key, value)?)
    }

    fn meta_remove(&self, key: &str) -> Result<(), StorageError> {
        Ok(SledStorage::meta_remove(self, key)?)
    }

    fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        Ok(SledStorage::meta_scan(self, prefix)?)
    }

    fn compact_if_needed(&self, doc: &DocId) -> Result<bool, StorageError> {
        Ok(SledStorage::compact_if_needed(self, doc)?)
    }

    fn doc_version(&self, doc: &DocId) -> Result<Option<DocVersion>, StorageError> {
        Ok(Some(SledStorage::doc_version(self, doc)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT, ReadDoc};

    #[test]
    fn a_chunk_appended_after_compaction_read_its_chunks_survives() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStorage::open(dir.path()).unwrap();
        let v = DocId::new("V1").unwrap();
        let mut am = AutoCommit::new();
        let mut put = |store: &SledStorage, key: &str| {
            let heads = am.get_heads();
            am.put(ROOT, key, "走访").unwrap();
            am.commit();
            store.append(&v, &am.save_after(&heads)).unwrap();
        };
        for i in 0..3 {
            put(&store, &format!("k{i}"));
        }
        let did = store
            .compact_inner_with(&v, &mut || put(&store, "late"))
            .unwrap();
        assert!(did);
        assert_eq!(store.stats(&v).unwrap().chunks, 1, "the late chunk is kept");
        let loaded = minqing_sync::load_doc(&store, &v).unwrap().unwrap();
        for key in ["k0", "k1", "k2", "late"] {
            assert!(loaded.get(ROOT, key).unwrap().is_some(), "{key} is lost");
        }
    }

    #[test]
    fn the_document_version_changes_with_every_write_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate();
        let store = SledStorage::open_sealed(dir.path(), &key).unwrap();
        let v = DocId::new("V1").unwrap();
        let other = DocId::new("V2").unwrap();
        let mut seen = vec![store.doc_version(&v).unwrap()];
        let mut am = AutoCommit::new();
        let mut put = |store: &SledStorage, doc: &DocId, k: &str| {
            let heads = am.get_heads();
            am.put(ROOT, k, 1).unwrap();
            am.commit();
            store.append(doc, &am.save_after(&heads)).unwrap();
        };
        for i in 0..3 {
            put(&store, &v, &format!("k{i}"));
            seen.push(store.doc_version(&v).unwrap());
            assert_eq!(
                store.doc_version(&v).unwrap(),
                seen[seen.len() - 1],
                "stable"
            );
        }
        // Another document's writes leave it alone.
        let before = store.doc_version(&v).unwrap();
        put(&store, &other, "x");
        assert_eq!(store.doc_version(&v).unwrap(), before);
        store.compact(&v).unwrap();
        seen.push(store.doc_version(&v).unwrap());
        put(&store, &v, "after");
        seen.push(store.doc_version(&v).unwrap());
        store.remove(&v).unwrap();
        seen.push(store.doc_version(&v).unwrap());
        let mut distinct = seen.clone();
        distinct.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        distinct.dedup();
        assert_eq!(distinct.len(), seen.len() - 1, "{seen:?}");
        assert_eq!(seen[0], seen[seen.len() - 1], "empty before and after");
        // The same bytes appended again, after a removal: a new version.
        put(&store, &v, "again");
        let a = store.doc_version(&v).unwrap();
        assert!(!seen.contains(&a));
    }

    #[test]
    fn compaction_gives_up_if_the_document_was_removed_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStorage::open(dir.path()).unwrap();
        let v = DocId::new("V1").unwrap();
        let mut am = AutoCommit::new();
        am.put(ROOT, "k", "v").unwrap();
        store.append(&v, &am.save()).unwrap();
        // `remove` takes the maintenance lock, so delete the chunk directly,
        // as a second process-level writer would.
        let did = store
            .compact_inner_with(&v, &mut || {
                store.inner.chunks.remove(chunk_key(&v, 0)).unwrap();
            })
            .unwrap();
        assert!(!did);
        assert_eq!(
            store.load(&v).unwrap(),
            None,
            "compaction must not resurrect it"
        );
    }
}
