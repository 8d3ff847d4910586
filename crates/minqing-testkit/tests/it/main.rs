//! Integration tests of minqing-testkit: the shapers and the power-cut file system.
//!
//! One integration-test binary for the package (docs/testing.md, "Test layout"):
//! add new tests as modules here, never as new files directly under `tests/`.

mod powercut;
mod tcp_shaper;
mod udp_shaper;
