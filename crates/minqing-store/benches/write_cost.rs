//! Write-cost benchmark: the time to log one visit (automerge put + commit +
//! `save_after` + `append` + `flush`) in a village that already holds N visits,
//! on a store reopened from disk as a CLI invocation would, and the time to
//! open and load that store.
//!
//! `cargo bench -p minqing-store --bench write_cost` (full: N = 0, 100, 5,000,
//! 20,000; 500 writes each) or `... -- --quick` (smoke: tiny N, few writes);
//! `--sizes 100,20000` and `--writes 2000` override the defaults.
//! Prints a markdown table; the figures go to docs/benchmarks.md.
#![allow(clippy::print_stdout, missing_docs)] // a benchmark binary reports on stdout

use std::path::Path;
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ObjType, ROOT, ReadDoc};
use minqing_store::SledStorage;
use minqing_sync::{DocId, Storage};

/// The characters notes are drawn from: random picks from this set compress
/// about as well as real notes do (a run of one fixed note would compress to nothing).
const NOTE: &str = "走访了解到该户家庭成员身体状况良好，老人腿脚不便需要定期上门看望，子女在外务工每月按时寄钱回家。\
村里的道路硬化工程已经完工，群众反映出行方便了许多。户主提出希望村委会协调解决灌溉用水问题，\
本人已记录并承诺在下周村两委会议上提出，同时告知其医保缴费的截止日期和办理流程，群众表示满意。";

struct Config {
    sizes: Vec<usize>,
    writes: usize,
    open_reps: usize,
}

/// xorshift64*: deterministic ids without an RNG crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A 150-character note of characters drawn at random from [`NOTE`].
fn note(rng: &mut Rng) -> String {
    let chars: Vec<char> = NOTE.chars().collect();
    (0..150)
        .map(|_| chars[(rng.next() % chars.len() as u64) as usize])
        .collect()
}

/// Adds one visit to `visits` and commits it as one change.
fn add_visit(am: &mut AutoCommit, visits: &automerge::ObjId, rng: &mut Rng, i: usize) {
    let id = format!("{:016x}", rng.next());
    let v = am
        .put_object(visits, id.as_str(), ObjType::Map)
        .expect("visits is a map");
    am.put(
        &v,
        "date",
        format!("2026-{:02}-{:02}", i % 12 + 1, i % 28 + 1),
    )
    .expect("put");
    am.put(&v, "kind", "普遍走访").expect("put");
    am.put(&v, "cadre", "王芳").expect("put");
    am.put(&v, "household", format!("H{:05}", i % 400))
        .expect("put");
    let text = note(rng);
    am.put(&v, "note", text).expect("put");
    am.commit();
}

fn visits_obj(am: &AutoCommit) -> automerge::ObjId {
    match am.get(ROOT, "visits").expect("get") {
        Some((automerge::Value::Object(ObjType::Map), id)) => id,
        _ => panic!("the benchmark document has a visits map"),
    }
}

/// Builds a village with `n` prior visits (one change each) and stores it as
/// one compacted snapshot in a fresh store at `dir`.
fn prepare(dir: &Path, n: usize, rng: &mut Rng) -> u64 {
    let mut am = AutoCommit::new();
    am.put_object(ROOT, "visits", ObjType::Map)
        .expect("root put");
    am.commit();
    let visits = visits_obj(&am);
    for i in 0..n {
        add_visit(&mut am, &visits, rng, i);
    }
    let store = SledStorage::open(dir).expect("open");
    let doc = village();
    store.append(&doc, &am.save()).expect("append");
    store.compact(&doc).expect("compact");
    store.flush().expect("flush");
    store.stats(&doc).expect("stats").snapshot_bytes
}

fn village() -> DocId {
    DocId::new("V-bench").expect("valid id")
}

/// Opens the store and loads the village as the CLI does.
fn open_and_load(dir: &Path) -> (SledStorage, AutoCommit, Duration) {
    let t = Instant::now();
    let store = SledStorage::open(dir).expect("open");
    let bytes = store.load(&village()).expect("load").expect("village held");
    let am = AutoCommit::load(&bytes).expect("automerge load");
    (store, am, t.elapsed())
}

struct Row {
    n: usize,
    snapshot_kib: u64,
    open_ms: f64,
    total: Summary,
    edit: Summary,
    save_after: Summary,
    store: Summary,
    fsync: Summary,
}

struct Summary {
    p50: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

fn summarize(mut us: Vec<f64>) -> Summary {
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    Summary {
        p50: at(0.5),
        p99: at(0.99),
        max: us[us.len() - 1],
        mean: us.iter().sum::<f64>() / us.len() as f64,
    }
}

/// One village under test, with the samples taken from it.
struct Bench {
    n: usize,
    _dir: tempfile::TempDir,
    snapshot_bytes: u64,
    open_ms: f64,
    store: SledStorage,
    am: AutoCommit,
    visits: automerge::ObjId,
    heads: Vec<ChangeHash>,
    rng: Rng,
    /// Baseline for the disk itself: 300 bytes appended to a plain file and fsynced.
    plain: std::fs::File,
    samples: [Vec<f64>; 5],
}

fn setup(cfg: &Config, n: usize) -> Bench {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    let snapshot_bytes = prepare(dir.path(), n, &mut rng);
    let mut opens = Vec::new();
    for _ in 0..cfg.open_reps {
        let (store, _, took) = open_and_load(dir.path());
        drop(store);
        opens.push(took.as_secs_f64() * 1e3);
    }
    opens.sort_by(f64::total_cmp);
    let open_ms = opens[opens.len() / 2];
    let (store, mut am, _) = open_and_load(dir.path());
    let visits = visits_obj(&am);
    let heads = am.get_heads();
    let plain = std::fs::File::create(dir.path().join("fsync-baseline")).expect("baseline file");
    Bench {
        n,
        _dir: dir,
        snapshot_bytes,
        open_ms,
        store,
        am,
        visits,
        heads,
        rng,
        plain,
        samples: Default::default(),
    }
}

impl Bench {
    /// Logs one visit as the CLI does, timing its parts.
    fn write_one(&mut self, i: usize) {
        let doc = village();
        let t0 = Instant::now();
        add_visit(&mut self.am, &self.visits, &mut self.rng, self.n + i);
        let ta = Instant::now();
        let bytes = self.am.save_after(&self.heads);
        self.heads = self.am.get_heads();
        let t1 = Instant::now();
        self.store.append(&doc, &bytes).expect("append");
        self.store.flush().expect("flush");
        let t2 = Instant::now();
        std::io::Write::write_all(&mut self.plain, &[0x5a; 300]).expect("baseline write");
        self.plain.sync_data().expect("baseline fsync");
        let t3 = Instant::now();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        for (v, d) in self
            .samples
            .iter_mut()
            .zip([t2 - t0, ta - t0, t1 - ta, t2 - t1, t3 - t2])
        {
            v.push(us(d));
        }
        // As the CLI does after printing its result: not timed.
        self.store.compact_if_needed(&doc).expect("compact");
    }

    fn row(self) -> Row {
        let [total, edit, sa, st, raw] = self.samples;
        Row {
            n: self.n,
            snapshot_kib: self.snapshot_bytes / 1024,
            open_ms: self.open_ms,
            total: summarize(total),
            edit: summarize(edit),
            save_after: summarize(sa),
            store: summarize(st),
            fsync: summarize(raw),
        }
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let cfg = if quick {
        Config {
            sizes: vec![0, 100, 500],
            writes: 30,
            open_reps: 1,
        }
    } else {
        Config {
            sizes: vec![0, 100, 5_000, 20_000],
            writes: 500,
            open_reps: 3,
        }
    };
    let mut cfg = cfg;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--sizes") {
        let list = args
            .get(i + 1)
            .expect("--sizes takes a list such as 100,20000");
        cfg.sizes = list
            .split(',')
            .map(|n| n.trim().parse().expect("--sizes takes numbers"))
            .collect();
    }
    if let Some(i) = args.iter().position(|a| a == "--writes") {
        cfg.writes = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .expect("--writes takes a number");
    }
    let mut benches = Vec::new();
    for &n in &cfg.sizes {
        eprintln!("write_cost: preparing a village with {n} prior visits …");
        benches.push(setup(&cfg, n));
    }
    // Interleave the villages write by write, so that every size sees the same
    // machine (other processes, disk) while it is measured.
    eprintln!(
        "write_cost: {} writes to each village, interleaved …",
        cfg.writes
    );
    for i in 0..cfg.writes {
        for b in &mut benches {
            b.write_one(i);
        }
    }
    let rows: Vec<Row> = benches.into_iter().map(Bench::row).collect();
    println!(
        "{} single-visit writes per row (put + commit + save_after + append + flush), the rows interleaved write by write; times in µs unless noted\n",
        cfg.writes
    );
    println!(
        "| prior visits | snapshot KiB | open+load ms | p50 | p99 | max | mean | put+commit p50 / p99 | save_after+heads p50 / p99 | append+flush p50 / p99 | plain fsync p50 / p99 |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} / {:.0} |",
            r.n,
            r.snapshot_kib,
            r.open_ms,
            r.total.p50,
            r.total.p99,
            r.total.max,
            r.total.mean,
            r.edit.p50,
            r.edit.p99,
            r.save_after.p50,
            r.save_after.p99,
            r.store.p50,
            r.store.p99,
            r.fsync.p50,
            r.fsync.p99
        );
    }
    let find = |n: usize| rows.iter().find(|r| r.n == n);
    let big = *cfg.sizes.last().expect("at least one size");
    if let (Some(small), Some(large)) = (find(100), find(big)) {
        println!(
            "\nratio visit {big} / visit 100: p50 {:.2}×, p99 {:.2}×, mean {:.2}×",
            large.total.p50 / small.total.p50,
            large.total.p99 / small.total.p99,
            large.total.mean / small.total.mean
        );
    }
}
