//! Crash safety of the store alone: a child process appends and flushes in a
//! loop (with the background compactor running) and is killed with SIGKILL at
//! seeded random moments; every write it acknowledged must be there after reopen.
//!
//! The child is this test binary itself, re-executed with `MINQING_STORE_CRASH_DIR`
//! set and filtered to `crash_writer_child`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc};
use minqing_store::SledStorage;
use minqing_sync::{DocId, Storage, load_doc};

const DIR_VAR: &str = "MINQING_STORE_CRASH_DIR";
const ROUND_VAR: &str = "MINQING_STORE_CRASH_ROUND";
const VILLAGES: [&str; 2] = ["V1", "V2"];

/// The writer run in the child process. Does nothing unless started by
/// `acknowledged_writes_survive_sigkill`.
#[test]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let round: u32 = std::env::var(ROUND_VAR).unwrap().parse().unwrap();
    let store = SledStorage::open(Path::new(&dir)).unwrap();
    let _compactor = store.spawn_compactor(Duration::from_millis(5));
    let mut docs = Vec::new();
    for v in VILLAGES {
        let id = DocId::new(v).unwrap();
        let am = match store.load(&id).unwrap() {
            Some(bytes) => AutoCommit::load(&bytes).unwrap(),
            None => AutoCommit::new(),
        };
        docs.push((id, am));
    }
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let (id, am) = &mut docs[(i % 2) as usize];
        let heads = am.get_heads();
        let key = format!("r{round}-{i}");
        am.put(
            ROOT,
            key.as_str(),
            format!("第{round}轮 第{i}次走访 {}", "记".repeat(40)),
        )
        .unwrap();
        am.commit();
        store.append(id, &am.save_after(&heads)).unwrap();
        store.flush().unwrap();
        writeln!(out, "ACK {id} {key}").unwrap();
        out.flush().unwrap();
    }
}

/// A small seeded generator (xorshift64*), so that the test needs no RNG crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if std::env::var(DIR_VAR).is_ok() {
        return; // we are the child of another run of this test
    }
    let seed = match std::env::var("MINQING_STORE_CRASH_SEED") {
        Ok(s) => s.parse().expect("MINQING_STORE_CRASH_SEED is a u64"),
        Err(_) => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        }
    };
    eprintln!("crash test seed {seed} (rerun with MINQING_STORE_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<(String, String)> = Vec::new();

    for round in 0..8u32 {
        let mut child = Command::new(&exe)
            .args([
                child_test_name("crash_writer_child").as_str(),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .env(ROUND_VAR, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                let mut first = Some(first_tx);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.strip_prefix("ACK ") {
                        let (doc, key) = rest.split_once(' ').unwrap();
                        lines.lock().unwrap().push((doc.to_owned(), key.to_owned()));
                        if let Some(tx) = first.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            })
        };
        // Let the child acknowledge at least one write, then kill it at a random moment.
        first_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the writer acknowledged a write");
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        reader.join().unwrap();
        let round_acked = std::mem::take(&mut *lines.lock().unwrap());
        assert!(!round_acked.is_empty());
        acked.extend(round_acked);

        let store = SledStorage::open(dir.path())
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: store does not reopen: {e}"));
        for v in VILLAGES {
            let id = DocId::new(v).unwrap();
            let Some(am) = load_doc(&store, &id)
                .unwrap_or_else(|e| panic!("seed {seed} round {round}: {v} does not load: {e}"))
            else {
                // The child was killed before its first write to this village.
                assert!(
                    !acked.iter().any(|(d, _)| d == v),
                    "seed {seed}: {v} vanished"
                );
                continue;
            };
            for (_, key) in acked.iter().filter(|(d, _)| d == v) {
                assert!(
                    am.get(ROOT, key.as_str()).unwrap().is_some(),
                    "seed {seed} round {round}: acknowledged write {v}/{key} is lost"
                );
            }
        }
        eprintln!(
            "round {round}: {} writes acknowledged so far, store {:?}",
            acked.len(),
            VILLAGES.map(|v| store.stats(&DocId::new(v).unwrap()).unwrap())
        );
    }
}

/// The full name libtest gives `test` of this module inside the package's one
/// test binary (`crash::crash_writer_child`), for `--exact`.
fn child_test_name(test: &str) -> String {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    format!("{module}::{test}")
}
