//! Integration tests of minqing-store.
//!
//! One integration-test binary for the package (docs/testing.md, "Test layout"):
//! add new tests as modules here, never as new files directly under `tests/`.

mod crash;
mod large;
mod power_cut;
mod sealed;
mod store;

/// minqing-sync's sync suite (sessions, round trips, the simulator's seeds,
/// hostile changes, a village larger than a frame), the same files its own
/// tests run over `MemStorage`, run here over sled.
#[path = "../../../minqing-sync/tests/it/suite/mod.rs"]
mod sync_suite;

/// The storage the sync suite runs on here: a `SledStorage` in a directory of
/// its own, removed when the storage is dropped.
mod backend {
    use minqing_store::SledStorage;
    use minqing_sync::{DocId, Storage, StorageError};

    /// A sled store and the temporary directory that holds it (dropped after it).
    pub struct TestStorage {
        store: SledStorage,
        _dir: tempfile::TempDir,
    }

    /// A new, empty sled store.
    pub fn new_storage() -> TestStorage {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SledStorage::open(&dir.path().join("store")).expect("sled opens");
        TestStorage { store, _dir: dir }
    }

    impl Storage for TestStorage {
        fn docs(&self) -> Result<Vec<DocId>, StorageError> {
            self.store.docs()
        }
        fn load(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
            self.store.load(doc)
        }
        fn append(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StorageError> {
            self.store.append(doc, bytes)
        }
        fn remove(&self, doc: &DocId) -> Result<(), StorageError> {
            self.store.remove(doc)
        }
        fn sync_state(&self, peer: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
            self.store.sync_state(peer, doc)
        }
        fn set_sync_state(
            &self,
            peer: &str,
            doc: &DocId,
            state: &[u8],
        ) -> Result<(), StorageError> {
            self.store.set_sync_state(peer, doc, state)
        }
        fn flush(&self) -> Result<(), StorageError> {
            self.store.flush()
        }
    }
}
