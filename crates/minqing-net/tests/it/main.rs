//! Integration tests of minqing-net.
//!
//! One integration-test binary for the package (docs/testing.md, "Test layout"):
//! add new tests as modules here, never as new files directly under `tests/`.

mod tls;
