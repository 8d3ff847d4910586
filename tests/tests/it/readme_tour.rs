//! The README's tour runs as written: its `sh` block is executed with bash
//! (`set -e`) against the built `minqing`, in a temporary home, so the first
//! thing a newcomer copies never goes stale.

use std::process::Command;

/// The first ```sh block after "## A short tour" in README.md.
fn tour() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md is readable");
    let section = readme
        .split("## A short tour")
        .nth(1)
        .expect("README.md has a section '## A short tour'");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the tour section has a ```sh block");
    block.to_owned()
}

#[test]
fn the_readme_tour_runs_as_written() {
    let script = tour();
    assert!(script.contains("minqing init"), "{script}");
    let home = tempfile::tempdir().expect("a temporary directory");
    let work = tempfile::tempdir().expect("a temporary directory");
    // The tour exports its own MINQING_HOME; point it at the temporary home.
    let script = script.replace(
        "export MINQING_HOME=~/民情",
        &format!("export MINQING_HOME='{}'", home.path().display()),
    );
    assert!(
        script.contains(&home.path().display().to_string()),
        "the tour no longer sets MINQING_HOME the way this test expects:\n{script}"
    );
    // The tour calls `minqing` by name: put one on PATH that is the build under test.
    let bins = tempfile::tempdir().expect("a temporary directory");
    std::os::unix::fs::symlink(minqing_e2e::bin("minqing"), bins.path().join("minqing"))
        .expect("a symbolic link can be made");
    let bin_dir = bins.path().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(work.path())
        .env("PATH", path)
        .env_remove("MINQING_TEST_RNG_SEED")
        .output()
        .expect("bash runs");
    // The tour runs as a cadre would, the key cache on: its key goes with the test.
    let _forget = minqing_store::keyring::Keyring::load(&home.path().join("store"))
        .ok()
        .map(|ring| minqing_e2e::ForgetCachedKey(ring.store_id));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the README tour failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // What the tour shows really happened: the visit (listed for the current
    // month, so the tour works on any day) and the closed demand.
    assert!(stdout.contains("老人腿脚不便"), "{stdout}");
    // `--resident 李秀英` found her: the visit is hers, not the household's.
    let visits = stdout
        .split_once("[\n")
        .map(|(_, rest)| format!("[\n{rest}"))
        .and_then(|json| {
            let end = json.find("\n]")? + 2;
            serde_json::from_str::<serde_json::Value>(&json[..end]).ok()
        })
        .unwrap_or_else(|| panic!("the tour prints `visit list --json`: {stdout}"));
    assert!(
        visits[0]["resident_id"].is_string(),
        "the visit logged with --resident 李秀英 names her: {visits}"
    );
    assert!(stdout.contains("销号"), "{stdout}");
    // The report it writes is a real file.
    let xlsx = work.path().join("本月.xlsx");
    assert!(
        xlsx.metadata().map(|m| m.len() > 0).unwrap_or(false),
        "report monthly --xlsx wrote nothing at {}",
        xlsx.display()
    );
}
