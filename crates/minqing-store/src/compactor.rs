//! A background thread that compacts documents while a long-running process
//! (the relay, `minqing sync --watch`) goes about its work.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use minqing_sync::Store;

/// Keeps the compaction thread alive; dropping it stops the thread and waits
/// for a compaction in progress to finish.
#[derive(Debug)]
pub struct CompactorHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CompactorHandle {
    /// Stops the thread and waits for it (the same as dropping the handle).
    pub fn stop(self) {}
}

impl Drop for CompactorHandle {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread with `Disconnected`.
        self.stop.take();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the compaction thread panicked");
        }
    }
}

/// Starts a background thread that runs [`Store::compact_if_needed`] over
/// every document of `store` every `interval`. It stops when the returned
/// handle is dropped. Works with any [`Store`]; a store that never needs
/// compaction makes it a cheap loop.
pub fn spawn_compactor(store: Arc<dyn Store>, interval: Duration) -> CompactorHandle {
    let (tx, rx) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("minqing-compactor".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                run_once(&*store, &rx);
            }
        });
    match thread {
        Ok(t) => CompactorHandle {
            stop: Some(tx),
            thread: Some(t),
        },
        Err(e) => {
            // Without a thread nothing is compacted in the background; the
            // store still works and `compact_if_needed` can be called directly.
            tracing::error!(error = %e, "cannot start the compaction thread");
            CompactorHandle {
                stop: None,
                thread: None,
            }
        }
    }
}

/// One pass over every document; stops early if the handle was dropped.
fn run_once(store: &dyn Store, rx: &mpsc::Receiver<()>) {
    let docs = match store.docs() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "compactor cannot list documents");
            return;
        }
    };
    for doc in docs {
        if let Err(mpsc::TryRecvError::Disconnected) = rx.try_recv() {
            return;
        }
        // `compact_if_needed` flushes after it compacts.
        if let Err(e) = store.compact_if_needed(&doc) {
            tracing::warn!(%doc, error = %e, "compaction failed");
        }
    }
}
