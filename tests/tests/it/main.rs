//! End-to-end tests of the real `minqing` and `minqing-relay` binaries.
//!
//! One integration-test binary for the package (docs/testing.md, "Test layout"):
//! add new tests as modules here, never as new files directly under `tests/`.

mod at_rest;
mod closed_loop;
mod closed_loop_relay;
mod enrolment;
mod hostile_content;
mod hostile_env;
mod hostile_import;
mod hostile_peers;
mod hostile_relay;
mod hostile_text;
mod ledger_bad_input;
mod ledger_crash;
mod ledger_merge;
mod ledger_roundtrip;
mod power_cut;
mod readme_tour;
mod relay_sync;
