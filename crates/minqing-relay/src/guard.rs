//! The relay's store as sessions see it: writes refused before the disk is
//! full, and flushes with a deadline on one dedicated thread.
//!
//! sled 0.34 does not survive running out of space: after a failed write its
//! `flush` waits forever (in `make_stable`), and so does every later flush,
//! even once space is freed. So the relay (1) refuses to write when the store's
//! file system has less than [`RESERVE_BYTES`] (plus twice the write) free —
//! the session fails with a message, sled never sees `ENOSPC`, other sessions
//! go on, and writes work again as soon as space returns — and (2) runs every
//! flush on a single flusher thread and waits at most [`FLUSH_DEADLINE`]: if
//! sled hangs anyway (the disk filled from elsewhere between the check and the
//! write), only that thread is stuck, the session fails, the store is marked
//! stuck and later sessions fail at once instead of piling up, and shutdown
//! stays bounded.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use minqing_sync::{DocId, Storage, StorageError, Store};

/// Free space a bulk write (a village's changes) must leave on the store's
/// file system.
pub const RESERVE_BYTES: u64 = 32 * 1024 * 1024;
/// Free space a small write (a sync state) needs.
pub const MIN_FREE_BYTES: u64 = 4 * 1024 * 1024;
/// Longest wait for a flush before the store is declared stuck.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(20);

/// Test-only: when set, the flusher thread hangs instead of flushing, as
/// sled does after a failed write — so end-to-end tests can stall a session
/// while QUIC keeps the connection alive (tests/tests/hostile_relay.rs).
pub const TEST_STALL_FLUSH_ENV: &str = "MINQING_TEST_STALL_FLUSH";

/// The store behind the relay's sessions (see the module docs).
pub struct GuardedStore {
    inner: Arc<dyn Store>,
    path: PathBuf,
    stuck: Arc<AtomicBool>,
    /// `Sender` is `Sync`: no lock, so nothing to poison.
    flusher: mpsc::Sender<mpsc::SyncSender<Result<(), String>>>,
}

fn backend(msg: String) -> StorageError {
    StorageError::Backend(msg.into())
}

impl GuardedStore {
    /// Wraps the relay's store (at `path`) and starts its flusher thread.
    pub fn new(inner: Arc<dyn Store>, path: PathBuf) -> std::io::Result<GuardedStore> {
        let (tx, rx) = mpsc::channel::<mpsc::SyncSender<Result<(), String>>>();
        let store = inner.clone();
        let stall = std::env::var_os(TEST_STALL_FLUSH_ENV).is_some();
        std::thread::Builder::new()
            .name("minqing-flusher".into())
            .spawn(move || {
                while let Ok(reply) = rx.recv() {
                    if stall {
                        tracing::warn!("{TEST_STALL_FLUSH_ENV} is set: the flusher hangs");
                        loop {
                            std::thread::park();
                        }
                    }
                    // Requests that queued up meanwhile share one flush.
                    let mut waiting = vec![reply];
                    while let Ok(more) = rx.try_recv() {
                        waiting.push(more);
                    }
                    let result = store.flush().map_err(|e| e.to_string());
                    for w in waiting {
                        let _ = w.send(result.clone());
                    }
                }
            })?;
        Ok(GuardedStore {
            inner,
            path,
            stuck: Arc::new(AtomicBool::new(false)),
            flusher: tx,
        })
    }

    /// Whether a flush missed its deadline: sled is hung and only a restart
    /// of the relay (after freeing space) brings the store back.
    pub fn is_stuck(&self) -> bool {
        self.stuck.load(Ordering::SeqCst)
    }

    fn refuse_if_stuck(&self) -> Result<(), StorageError> {
        if self.is_stuck() {
            return Err(backend(format!(
                "the relay's store at {} is stuck after a disk error (full or failing disk): nothing more can be saved until the relay is restarted — operator: free space, then restart `minqing-relay serve`",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Refuses a write of `bytes` unless enough space stays free.
    fn check_space(&self, bytes: usize, reserve: u64) -> Result<(), StorageError> {
        self.refuse_if_stuck()?;
        let free = match fs2::available_space(&self.path) {
            Ok(f) => f,
            // Unknown: let the write try (sled reports real errors).
            Err(_) => return Ok(()),
        };
        let need = reserve.saturating_add(2 * bytes as u64);
        if free < need {
            return Err(backend(format!(
                "the relay's disk is full ({} MiB free at {}, {} MiB needed): this sync was not saved; it is sent again once the operator frees space",
                free / (1024 * 1024),
                self.path.display(),
                need.div_ceil(1024 * 1024)
            )));
        }
        Ok(())
    }

    /// Flushes on the flusher thread, waiting at most `deadline`.
    pub fn flush_within(&self, deadline: Duration) -> Result<(), StorageError> {
        self.refuse_if_stuck()?;
        let (tx, rx) = mpsc::sync_channel(1);
        self.flusher
            .send(tx)
            .map_err(|_| backend("the relay's flusher thread is gone".into()))?;
        match rx.recv_timeout(deadline) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(backend(e)),
            Err(_) => {
                self.stuck.store(true, Ordering::SeqCst);
                tracing::error!(
                    store = %self.path.display(),
                    "a flush did not finish within {} s: the store is stuck (disk full or failing); sessions are refused until the relay is restarted",
                    deadline.as_secs()
                );
                Err(backend(format!(
                    "the relay's store did not finish writing within {} s (full or failing disk): this sync was not acknowledged; it is sent again later",
                    deadline.as_secs()
                )))
            }
        }
    }
}

impl Storage for GuardedStore {
    fn docs(&self) -> Result<Vec<DocId>, StorageError> {
        self.inner.docs()
    }
    fn load(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.load(doc)
    }
    fn append(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StorageError> {
        self.check_space(bytes.len(), RESERVE_BYTES)?;
        self.inner.append(doc, bytes)
    }
    fn remove(&self, doc: &DocId) -> Result<(), StorageError> {
        self.check_space(0, MIN_FREE_BYTES)?;
        self.inner.remove(doc)
    }
    fn sync_state(&self, peer: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.sync_state(peer, doc)
    }
    fn set_sync_state(&self, peer: &str, doc: &DocId, state: &[u8]) -> Result<(), StorageError> {
        self.check_space(state.len(), MIN_FREE_BYTES)?;
        self.inner.set_sync_state(peer, doc, state)
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.flush_within(FLUSH_DEADLINE)
    }
}

impl Store for GuardedStore {
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.meta_get(key)
    }
    fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.check_space(value.len(), MIN_FREE_BYTES)?;
        self.inner.meta_put(key, value)
    }
    fn meta_remove(&self, key: &str) -> Result<(), StorageError> {
        self.check_space(0, MIN_FREE_BYTES)?;
        self.inner.meta_remove(key)
    }
    fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.inner.meta_scan(prefix)
    }
    fn compact_if_needed(&self, doc: &DocId) -> Result<bool, StorageError> {
        // A compaction writes a whole snapshot.
        self.check_space(0, RESERVE_BYTES)?;
        self.inner.compact_if_needed(doc)
    }
}

/// The relay's background compactor: like `minqing_store::spawn_compactor`, but
/// it skips a pass while the disk is short of [`RESERVE_BYTES`] or the store is
/// stuck (a compaction writes a whole snapshot), and stopping it never waits
/// more than [`STOP_WAIT`] for a pass caught in a hung write.
pub struct Compactor {
    stop: Option<mpsc::Sender<()>>,
    done: mpsc::Receiver<()>,
}

/// Longest wait for the compactor to stop.
pub const STOP_WAIT: Duration = Duration::from_secs(5);

impl GuardedStore {
    /// Starts the compactor: a pass every `interval`.
    pub fn spawn_compactor(self: &Arc<Self>, interval: Duration) -> std::io::Result<Compactor> {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let guarded = self.clone();
        std::thread::Builder::new()
            .name("minqing-compactor".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(interval) {
                    if guarded.check_space(0, RESERVE_BYTES).is_err() {
                        tracing::warn!("compaction skipped: the disk is short of space");
                        continue;
                    }
                    let docs = guarded.inner.docs().unwrap_or_default();
                    for doc in docs {
                        if let Err(mpsc::TryRecvError::Disconnected) = stop_rx.try_recv() {
                            break;
                        }
                        if let Err(e) = guarded.inner.compact_if_needed(&doc) {
                            tracing::warn!(%doc, error = %e, "compaction failed");
                        }
                    }
                }
                let _ = done_tx.send(());
            })?;
        Ok(Compactor {
            stop: Some(stop_tx),
            done: done_rx,
        })
    }
}

impl Compactor {
    /// Stops the compactor, waiting at most [`STOP_WAIT`] for a pass in progress.
    pub fn stop(mut self) {
        self.stop.take();
        if self.done.recv_timeout(STOP_WAIT).is_err() {
            tracing::error!(
                "the compactor did not stop within {} s (a write hung); leaving it",
                STOP_WAIT.as_secs()
            );
        }
    }
}
