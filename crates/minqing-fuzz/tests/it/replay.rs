//! Replays every file of `corpus/<target>/` and `crashers/<target>/`, and the
//! freshly generated seeds, through the fuzz targets without libFuzzer: each
//! must run without a panic (errors from the code under test are fine). This
//! is how CI keeps the corpus and every crasher ever found in the test run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use minqing_fuzz::Target;
use minqing_sync::Storage;

fn dir(kind: &str, t: Target) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(t.name())
}

/// The files of `dir`, sorted, without dot files (`.gitkeep`).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

/// Runs each input; returns the names of those that panicked, with the message.
fn replay(t: Target, inputs: impl IntoIterator<Item = (String, Vec<u8>)>) -> (usize, Vec<String>) {
    let mut n = 0;
    let mut failures = Vec::new();
    for (name, bytes) in inputs {
        n += 1;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| t.run(&bytes))) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}/{name}: {msg}", t.name()));
        }
    }
    (n, failures)
}

fn read_all(paths: Vec<PathBuf>) -> Vec<(String, Vec<u8>)> {
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.display().to_string(), bytes)
        })
        .collect()
}

fn check_target(t: Target) {
    let corpus = files(&dir("corpus", t));
    assert!(
        !corpus.is_empty(),
        "{}: the in-tree corpus is empty ({})",
        t.name(),
        dir("corpus", t).display()
    );
    let crashers = files(&dir("crashers", t));
    let (nc, mut failures) = replay(t, read_all(corpus));
    let (nk, f) = replay(t, read_all(crashers));
    failures.extend(f);
    let (ns, f) = replay(t, minqing_fuzz::seeds::seeds(t));
    failures.extend(f);
    eprintln!(
        "{}: replayed {nc} corpus files, {nk} crashers, {ns} fresh seeds",
        t.name()
    );
    assert!(failures.is_empty(), "panics:\n{}", failures.join("\n"));
}

#[test]
fn frame_corpus_and_crashers_replay_without_panic() {
    check_target(Target::Frame);
}

#[test]
fn relay_session_corpus_and_crashers_replay_without_panic() {
    check_target(Target::RelaySession);
}

#[test]
fn sync_message_corpus_and_crashers_replay_without_panic() {
    check_target(Target::SyncMessage);
}

#[test]
fn bundle_corpus_and_crashers_replay_without_panic() {
    check_target(Target::Bundle);
}

#[test]
fn enrol_corpus_and_crashers_replay_without_panic() {
    check_target(Target::Enrol);
}

/// The harness itself: an invariant that breaks is reported (a target that
/// cannot fail would be worse than none).
#[test]
fn a_broken_invariant_is_a_panic() {
    // A relay that stored bytes which do not load must fail the check.
    let relay = minqing_fuzz::relay::Relay::new();
    relay
        .storage
        .append(
            &minqing_sync::DocId::new(minqing_fuzz::relay::EMPTY).expect("valid id"),
            b"\x85\x6f\x4a\x83garbage",
        )
        .expect("memory storage");
    let r = catch_unwind(AssertUnwindSafe(|| relay.check()));
    assert!(r.is_err(), "stored garbage went unnoticed");
}
