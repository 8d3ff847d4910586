//! Integration tests of minqing-store.
//!
//! One integration-test binary for the package (docs/testing.md, "Test layout"):
//! add new tests as modules here, never as new files directly under `tests/`.

mod crash;
mod large;
mod power_cut;
mod sealed;
mod store;
