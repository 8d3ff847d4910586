//! The sync suite: sessions, round trips, the simulator's seeds, hostile
//! changes and a village larger than a frame, written once against the
//! storage of `crate::backend` (`TestStorage`, `new_storage()`).
//!
//! This package runs it over `MemStorage`; minqing-store's integration tests
//! include the same files (`#[path]`) and run it over `SledStorage`, so both
//! implementations of `minqing_sync::Storage` pass the whole suite.

mod big_village;
mod hostile_changes;
mod round_trips;
mod sessions;
mod sim;
pub mod support;
