//! Integration tests of minqing-sync: sessions, round trips, simulation.
//!
//! One integration-test binary for the package (docs/testing.md, "Test layout"):
//! add new tests as modules here, never as new files directly under `tests/`.

mod big_village;
mod frame_fuzz;
mod hostile_changes;
mod round_trips;
mod sessions;
mod sim;
mod support;
