//! Integration tests of minqing-sync: sessions, round trips, simulation.
//!
//! One integration-test binary for the package (docs/testing.md, "Test layout"):
//! add new tests as modules here, never as new files directly under `tests/`.
//! The sync suite (`suite/`) runs here over the in-memory storage, and in
//! minqing-store's tests over sled.

mod frame_fuzz;
mod suite;

/// The storage the sync suite runs on here: `MemStorage`.
mod backend {
    /// The storage type the suite's tests hold.
    pub type TestStorage = minqing_sync::MemStorage;

    /// A new, empty storage.
    pub fn new_storage() -> TestStorage {
        minqing_sync::MemStorage::new()
    }
}
