//! Power cuts under the store API: a child process writes to a store kept on
//! the power-cut file system (`minqing_testkit::powercut`, FUSE), the power is
//! cut at a seeded random operation, and the image of what was durable must
//! open and hold every write the child acknowledged (flushed, then printed).
//!
//! Workloads: `visits` (a village that arrived whole, then small visit
//! appends with the background compactor rewriting snapshots every 5 ms) and
//! `arrive` (several villages arriving whole, each (~180 KiB saved) well above
//! sled's 128 KiB blob threshold, with small writes between them).
//!
//! `MINQING_POWERCUT_PRECREATE=1` starts each run from an existing, fully
//! durable empty store instead of none.
//! `MINQING_POWERCUT_CUTS` (default 4 per workload) sets the number of cuts,
//! `MINQING_POWERCUT_SEED` the first seed (cut `i` uses seed + i); a failure
//! prints the seed and operation that replay it
//! (`MINQING_POWERCUT_SEED=S MINQING_POWERCUT_AT=op:N MINQING_POWERCUT_CUTS=1`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc};
use minqing_store::SledStorage;
use minqing_sync::{DocId, Storage, load_doc};
use minqing_testkit::powercut::{CutPlan, CutPoint, FsStats, PowerCutFs, SplitMix, workload_stats};

const DIR_VAR: &str = "MINQING_POWERCUT_CHILD_DIR";
const WORK_VAR: &str = "MINQING_POWERCUT_CHILD_WORK";

/// A village document of `bytes` of hexadecimal text (which compresses to
/// about half: `save()` is a little over `bytes / 2`).
fn big_village(seed: u64, bytes: usize) -> AutoCommit {
    let mut rng = SplitMix::new(seed);
    let mut am = AutoCommit::new();
    let per = 120;
    for i in 0..bytes / per {
        let value: String = (0..per / 8)
            .map(|_| format!("{:08x}", rng.next_u64() as u32))
            .collect();
        am.put(ROOT, format!("h{i:05}").as_str(), value).unwrap();
    }
    am.put(ROOT, "arrived", true).unwrap();
    am.commit();
    am
}

fn ack(out: &mut impl Write, doc: &DocId, key: &str) {
    writeln!(out, "ACK {doc} {key}").unwrap();
    out.flush().unwrap();
}

/// The workload run in the child process. Does nothing unless started by
/// one of the tests below.
#[test]
fn power_cut_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let work = std::env::var(WORK_VAR).unwrap();
    let store = SledStorage::open(Path::new(&dir)).unwrap();
    let mut out = std::io::stdout().lock();
    let small = |store: &SledStorage, am: &mut AutoCommit, id: &DocId, key: &str| {
        let heads = am.get_heads();
        am.put(ROOT, key, format!("走访 {key} {}", "记".repeat(60)))
            .unwrap();
        am.commit();
        store.append(id, &am.save_after(&heads)).unwrap();
        store.flush().unwrap();
    };
    match work.as_str() {
        "visits" => {
            let v1 = DocId::new("V1").unwrap();
            let mut am = big_village(1, 400 * 1024);
            store.append(&v1, &am.save()).unwrap();
            store.flush().unwrap();
            ack(&mut out, &v1, "arrived");
            let _compactor = store.spawn_compactor(Duration::from_millis(5));
            for i in 0..150 {
                let key = format!("visit{i}");
                small(&store, &mut am, &v1, &key);
                ack(&mut out, &v1, &key);
            }
        }
        "arrive" => {
            for n in 0..4u64 {
                let id = DocId::new(format!("A{n}")).unwrap();
                let mut am = big_village(10 + n, 320 * 1024);
                store.append(&id, &am.save()).unwrap();
                store.flush().unwrap();
                ack(&mut out, &id, "arrived");
                for i in 0..5 {
                    let key = format!("visit{i}");
                    small(&store, &mut am, &id, &key);
                    ack(&mut out, &id, &key);
                }
                store.compact(&id).unwrap();
                ack(&mut out, &id, "compacted");
            }
        }
        other => panic!("unknown workload {other}"),
    }
    writeln!(out, "DONE").unwrap();
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// Runs `work` once on a fresh power-cut mount; returns the acknowledged
/// writes, the file-system counters and the directory holding the image.
fn one_run(
    work: &str,
    seed: u64,
    cut: Option<CutPoint>,
) -> (
    Vec<(String, String)>,
    FsStats,
    tempfile::TempDir,
    bool,
    String,
) {
    let mnt = tempfile::tempdir().unwrap();
    let fs = PowerCutFs::mount(mnt.path(), CutPlan::never(seed))
        .expect("mount the power-cut file system (needs /dev/fuse and root)");
    if std::env::var_os("MINQING_POWERCUT_PRECREATE").is_some() {
        // Start from an existing store made fully durable, so that only the
        // workload's own writes are at stake (how the old store was measured:
        // it did not make a new store durable at all).
        let store = SledStorage::open(&mnt.path().join("store")).unwrap();
        store.flush().unwrap();
        drop(store);
        std::thread::sleep(Duration::from_millis(100));
        fs.settle();
    }
    // Operations are counted from the start of the workload.
    let base = fs.stats();
    if let Some(cut) = cut {
        cut.arm(&fs, base);
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(&exe)
        .args([
            child_test_name("power_cut_child").as_str(),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, mnt.path().join("store"))
        .env(WORK_VAR, work)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let acks = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(Mutex::new(false));
    let reader = {
        let (acks, done) = (acks.clone(), done.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let (doc, key) = rest.split_once(' ').unwrap();
                    acks.lock().unwrap().push((doc.to_owned(), key.to_owned()));
                } else if line == "DONE" {
                    *done.lock().unwrap() = true;
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if fs.is_cut() || Instant::now() > deadline {
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    reader.join().unwrap();
    let was_cut = fs.is_cut();
    let (image, stats) = fs.finish().unwrap();
    let out = tempfile::tempdir().unwrap();
    image.write_to(out.path()).unwrap();
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    let note = format!(
        "{} files in the image, {} torn, {} lost their unsynced data",
        image.files(),
        image.torn_files,
        image.lost_files
    );
    let finished = *done.lock().unwrap();
    assert!(
        was_cut || finished,
        "the workload neither finished nor was cut"
    );
    (acks, workload_stats(stats, base), out, was_cut, note)
}

/// Checks one cut image: the store opens and holds every acknowledged write.
fn check_image(dir: &Path, acks: &[(String, String)]) -> Result<(), String> {
    let store = SledStorage::open(&dir.join("store"))
        .map_err(|e| format!("the store does not open: {e}"))?;
    // Every village in the store loads (a damaged one would be lost work too),
    for id in store
        .docs()
        .map_err(|e| format!("the store lists no villages: {e}"))?
    {
        load_doc(&store, &id).map_err(|e| format!("{id} does not load: {e}"))?;
    }
    // and every acknowledged write is there.
    let mut docs: Vec<&str> = acks.iter().map(|(d, _)| d.as_str()).collect();
    docs.dedup();
    for doc in docs {
        let id = DocId::new(doc).unwrap();
        let am = load_doc(&store, &id)
            .map_err(|e| format!("{doc} does not load: {e}"))?
            .ok_or_else(|| format!("{doc} is missing"))?;
        for (_, key) in acks.iter().filter(|(d, k)| d == doc && k != "compacted") {
            if am.get(ROOT, key.as_str()).ok().flatten().is_none() {
                return Err(format!("acknowledged write {doc}/{key} is lost"));
            }
        }
    }
    // Measuring the old store (whose large values were sled blobs) needs
    // this check off: MINQING_POWERCUT_ALLOW_BLOBS=1.
    let blobs = std::fs::read_dir(dir.join("store/blobs"))
        .map(|d| d.count())
        .unwrap_or(0);
    if blobs > 0 && std::env::var_os("MINQING_POWERCUT_ALLOW_BLOBS").is_none() {
        return Err(
            "sled wrote blob files (a value reached sled above its inline threshold)".into(),
        );
    }
    Ok(())
}

fn matrix(work: &str) {
    let cuts = env_u64("MINQING_POWERCUT_CUTS").unwrap_or(4);
    let base = env_u64("MINQING_POWERCUT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000)
            .unwrap_or(1)
    });
    let pinned = std::env::var("MINQING_POWERCUT_AT")
        .ok()
        .map(|s| CutPoint::parse(&s).expect("MINQING_POWERCUT_AT is op:N or sync:N"));
    // One uncut run tells how many operations and syncs the workload takes
    // (skipped when a replay pins the cut point).
    let total = match pinned {
        Some(_) => FsStats::default(),
        None => {
            let (acks, total, dir, _, _) = one_run(work, base, None);
            check_image(dir.path(), &acks).unwrap_or_else(|e| panic!("{work} without a cut: {e}"));
            total
        }
    };
    eprintln!(
        "{work}: {} operations, {} syncs uncut; {cuts} cuts from seed {base}",
        total.ops,
        total.syncs()
    );
    let mut failures = Vec::new();
    for i in 0..cuts {
        let seed = base + i;
        let op = pinned.unwrap_or_else(|| CutPoint::choose(seed, total));
        let (acks, _, dir, was_cut, note) = one_run(work, seed, Some(op));
        // sled itself may panic on a damaged store (the old store did:
        // "cannot find pid 6 in view_for_key"): that is a failed cut too.
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_image(dir.path(), &acks)
        }))
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            Err(format!("reading the store panicked: {msg}"))
        });
        if res.is_err() && std::env::var_os("MINQING_POWERCUT_KEEP").is_some() {
            eprintln!("image kept in {}", dir.keep().display());
        }
        eprintln!(
            "{work} seed {seed} cut before {op}{}: {} acknowledged, {note}: {}",
            if was_cut {
                ""
            } else {
                " (workload ended first)"
            },
            acks.len(),
            match &res {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("FAILED: {e}"),
            }
        );
        if let Err(e) = res {
            failures.push(format!(
                "seed {seed} (op {op}): {e} — replay: MINQING_POWERCUT_SEED={seed} MINQING_POWERCUT_AT={op} MINQING_POWERCUT_CUTS=1"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{work}: {} of {cuts} cuts failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn power_cuts_during_visits_and_compaction() {
    if std::env::var(DIR_VAR).is_ok() {
        return;
    }
    matrix("visits");
}

#[test]
fn power_cuts_while_villages_arrive_whole() {
    if std::env::var(DIR_VAR).is_ok() {
        return;
    }
    matrix("arrive");
}

/// The full name libtest gives `test` of this module inside the package's one
/// test binary (`power_cut::power_cut_child`), for `--exact`.
fn child_test_name(test: &str) -> String {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    format!("{module}::{test}")
}
