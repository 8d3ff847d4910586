//! End-to-end tests of the real `minqing` and `minqing-relay` binaries.
//!
//! One integration-test binary for the package (docs/testing.md, "Test layout"):
//! add new tests as modules here, never as new files directly under `tests/`.

mod app_service;
mod app_views;
mod at_rest;
mod cli_comfort;
mod closed_loop;
mod closed_loop_relay;
mod console;
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
mod village_index;

/// The programs under test are this package's own builds, the ones cargo built
/// for this test run (unless `MINQING_E2E_BIN_DIR` names others).
#[test]
fn the_programs_under_test_are_the_builds_cargo_made_for_this_run() {
    if std::env::var_os("MINQING_E2E_BIN_DIR").is_some() {
        return;
    }
    assert_eq!(
        minqing_e2e::bin("minqing"),
        std::path::Path::new(env!("CARGO_BIN_EXE_e2e-minqing"))
    );
    assert_eq!(
        minqing_e2e::bin("minqing-relay"),
        std::path::Path::new(env!("CARGO_BIN_EXE_e2e-minqing-relay"))
    );
    assert_eq!(
        minqing_e2e::bin("mq-hostile"),
        std::path::Path::new(env!("CARGO_BIN_EXE_mq-hostile"))
    );
    // Usage and messages name the program as the real binaries do.
    let out = minqing_e2e::command("minqing")
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Usage: minqing "),
        "{out:?}"
    );
    let out = minqing_e2e::command("minqing-relay")
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Usage: minqing-relay "),
        "{out:?}"
    );
}
