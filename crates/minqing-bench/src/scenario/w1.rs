//! W1: logging one visit, including the durable flush, in villages of growing
//! size, in a plain store and in an encrypted one (the laptop's,
//! `open_sealed`), with a plain-file fsync as the disk's own baseline.
//!
//! Each of at least 5 runs writes fresh copies of the same villages (written,
//! closed, reopened and loaded as a CLI invocation would). In a run, every
//! round writes one visit into every lane and one fsync baseline, in a new
//! random order each round, so that no lane always follows another (a lane
//! that always wrote right after another lane's compaction paid for its disk
//! traffic in its tail). Each run gives its own p50, p99 and ratios; a row's
//! figure is the median over the runs, with their min and max.
//!
//! The encryption cost is a ratio of two p99s, and a p99 of a few thousand
//! writes rests on a few dozen tail samples that are mostly disk stalls. So
//! every size also has a second plain lane (the control: plain against plain,
//! the same statistic with no difference to find), and the ratio held to the
//! target is the p99 of all runs' writes pooled (encrypted ÷ plain), beside
//! the per-run ratios and the control's figures.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use minqing_model::{HouseholdView, NewVisit, Note, Village, VisitKind};
use minqing_store::{DataKey, SledStorage};
use minqing_sync::{DocId, Storage};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::{Ctx, col};
use crate::county::{self, Cadre, VillageSize};
use crate::harness::{percentile, summary};
use crate::homes::open_store;
use crate::report::{Report, Target, Unit};

/// A village of one size, built once and copied into every run's stores.
struct Built {
    prior: usize,
    id: DocId,
    bytes: Vec<u8>,
    households: Vec<HouseholdView>,
}

/// One store being written in a run.
struct Lane {
    kind: LaneKind,
    id: DocId,
    store: SledStorage,
    village: Village,
    households: Vec<HouseholdView>,
    cadre: Cadre,
    lat: Vec<f64>,
}

/// Which store a lane writes: plain, encrypted, or the second plain store
/// that measures the noise of the comparison.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LaneKind {
    Plain,
    Sealed,
    Control,
}

/// What one run measured: per size, every write's latency in each kind of
/// lane; the fsync baseline's. Milliseconds.
struct RunResult {
    plain: Vec<Vec<f64>>,
    sealed: Vec<Vec<f64>>,
    control: Vec<Vec<f64>>,
    fsync: Vec<f64>,
}

/// (p50, p99) of some latencies.
fn p50_p99(lat: &[f64]) -> (f64, f64) {
    (percentile(lat, 50.0), percentile(lat, 99.0))
}

/// The p99 of one size's writes of every run, pooled.
fn pooled_p99(runs: &[RunResult], pick: impl Fn(&RunResult) -> &Vec<f64>) -> f64 {
    let all: Vec<f64> = runs.iter().flat_map(|r| pick(r).iter().copied()).collect();
    percentile(&all, 99.0)
}

/// Runs W1 and adds its rows.
pub fn run(ctx: &Ctx<'_>, report: &mut Report) -> Result<()> {
    let quick = ctx.opts.quick;
    let sizes: &[usize] = if quick {
        &[0, 50, 200]
    } else {
        &[0, 5_000, 20_000]
    };
    let writes = if quick { 30 } else { 2_000 };
    let seed = ctx.opts.seed;
    let built = sizes
        .iter()
        .map(|&prior| build(seed, prior))
        .collect::<Result<Vec<_>>>()?;
    let key = DataKey::generate();
    let mut runs = Vec::new();
    for run in 0..ctx.opts.w1_runs() {
        let dir = ctx.scratch.join(format!("w1-{run}"));
        runs.push(run_once(&dir, &built, &key, writes, seed + run as u64)?);
        let _ = std::fs::remove_dir_all(&dir);
    }
    rows(report, sizes, &runs, writes);
    Ok(())
}

/// A village with `prior` visits, saved.
fn build(seed: u64, prior: usize) -> Result<Built> {
    let mut rng = StdRng::seed_from_u64(seed ^ prior as u64);
    let size = VillageSize {
        households: 380,
        visits: prior,
        demands: 0,
    };
    let (info, mut village) = county::build_village(&mut rng, 9000, size, &[1u8; 16])?;
    Ok(Built {
        prior,
        id: info.id,
        bytes: village.save(),
        households: village.households(),
    })
}

/// A lane's store in `dir`: the village written, closed, reopened and loaded.
fn open_lane(
    dir: &Path,
    b: &Built,
    kind: LaneKind,
    key: &DataKey,
    rng: &mut StdRng,
) -> Result<Lane> {
    let key = (kind == LaneKind::Sealed).then_some(key);
    let open = || -> Result<SledStorage> {
        match key {
            Some(k) => Ok(SledStorage::open_sealed(dir, k)?),
            None => open_store(dir),
        }
    };
    {
        let store = open()?;
        store.append(&b.id, &b.bytes)?;
        store.flush()?;
    }
    let store = open()?;
    let bytes = store.load(&b.id)?.context("W1 village")?;
    let mut village = Village::load(b.id.clone(), &bytes)?;
    let cadre = Cadre::random(rng)?;
    village.set_actor(cadre.device_id.as_bytes());
    Ok(Lane {
        kind,
        id: b.id.clone(),
        store,
        village,
        households: b.households.clone(),
        cadre,
        lat: Vec::new(),
    })
}

/// One visit into `lane`, timed from `log_visit` to the end of the flush;
/// then, untimed, compaction as the CLI runs it after printing its result.
fn write_one(lane: &mut Lane, rng: &mut StdRng) -> Result<()> {
    let h = &lane.households[rng.random_range(0..lane.households.len())];
    let note = Note::parse(&crate::text::note(rng))?;
    let household = minqing_model::Id::parse(&h.id)?;
    let date = chrono::NaiveDate::from_ymd_opt(2025, 1, 2).context("date")?;
    let t = Instant::now();
    lane.village.log_visit(
        rng,
        &lane.cadre.author(1_735_800_000_000),
        &NewVisit {
            household,
            resident: None,
            kind: VisitKind::Regular,
            note,
            date,
        },
    )?;
    lane.store.append(&lane.id, &lane.village.take_unsaved())?;
    lane.store.flush()?;
    lane.lat.push(t.elapsed().as_secs_f64() * 1e3);
    lane.store.compact_if_needed(&lane.id)?;
    Ok(())
}

/// One run: fresh stores for every size, plain and encrypted, written in
/// rounds in a random order with the fsync baseline.
fn run_once(
    dir: &Path,
    built: &[Built],
    key: &DataKey,
    writes: usize,
    seed: u64,
) -> Result<RunResult> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut lanes = Vec::new();
    for b in built {
        for (kind, name) in [
            (LaneKind::Plain, "plain"),
            (LaneKind::Sealed, "enc"),
            (LaneKind::Control, "control"),
        ] {
            let path = dir.join(format!("{}-{name}", b.prior));
            lanes.push(open_lane(&path, b, kind, key, &mut rng)?);
        }
    }
    // The disk's own cost and noise: 300 bytes appended to a file and fsynced.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("fsync.bin"))?;
    let mut fsync = Vec::with_capacity(writes);
    // Index `lanes.len()` stands for the fsync baseline.
    let mut order: Vec<usize> = (0..=lanes.len()).collect();
    for _ in 0..writes {
        order.shuffle(&mut rng);
        for &i in &order {
            match lanes.get_mut(i) {
                Some(lane) => write_one(lane, &mut rng)?,
                None => {
                    let t = Instant::now();
                    file.write_all(&[b'x'; 300])?;
                    file.sync_all()?;
                    fsync.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
    }
    let of = |kind: LaneKind| {
        lanes
            .iter()
            .filter(|l| l.kind == kind)
            .map(|l| l.lat.clone())
            .collect()
    };
    Ok(RunResult {
        plain: of(LaneKind::Plain),
        sealed: of(LaneKind::Sealed),
        control: of(LaneKind::Control),
        fsync,
    })
}

fn rows(report: &mut Report, sizes: &[usize], runs: &[RunResult], writes: usize) {
    let n = runs.len();
    let how = format!(
        "{writes} writes per size and lane in each of {n} runs; lanes (every size: plain, encrypted, a second plain store as control) and the fsync baseline in a new random order every round; each `log_visit` + append + fsync flush"
    );
    for (i, prior) in sizes.iter().enumerate() {
        let p50 = col(runs, |r| p50_p99(&r.plain[i]).0);
        let p99 = col(runs, |r| p50_p99(&r.plain[i]).1);
        report
            .add(
                "W1",
                format!("log a visit, {prior} prior visits: p50"),
                Unit::Ms,
                p50,
            )
            .note(how.clone());
        report
            .add(
                "W1",
                format!("log a visit, {prior} prior visits: p99"),
                Unit::Ms,
                p99,
            )
            .target(Target::at_most(10.0, "≤ 10 ms"));
    }
    for (i, prior) in sizes.iter().enumerate() {
        encrypted_rows(report, *prior, i, runs);
    }
    report
        .add(
            "W1",
            "  plain fsync baseline (300 B appended to a file + fsync): p50",
            Unit::Ms,
            col(runs, |r| p50_p99(&r.fsync).0),
        )
        .note("same loop, once per round: the disk's own cost and noise");
    let f99 = col(runs, |r| p50_p99(&r.fsync).1);
    let f99_median = summary(&f99).0;
    report.add("W1", "  plain fsync baseline: p99", Unit::Ms, f99);
    let last = sizes.len() - 1;
    let plain = |r: &RunResult, i: usize| p50_p99(&r.plain[i]);
    let ratio = col(runs, |r| plain(r, last).1 / plain(r, 0).1);
    let p50_ratio = summary(&col(runs, |r| plain(r, last).0 / plain(r, 0).0)).0;
    let (first99, last99) = (
        summary(&col(runs, |r| plain(r, 0).1)).0,
        summary(&col(runs, |r| plain(r, last).1)).0,
    );
    report
        .add("W1", format!("p99 at {} prior visits ÷ p99 at 0", sizes[last]), Unit::Ratio, ratio)
        .target(Target::at_most(1.5, "≤ 1.5×"))
        .note(format!(
            "per-run ratios; p50 ratio {p50_ratio:.2}×; plain fsync p99 {f99_median:.2} ms against these p99s of {first99:.2} and {last99:.2} ms"
        ));
}

/// The encrypted lane of size `i`: its p50 and p99, and its p99 against the
/// plain lane's: per run, and over every run's writes pooled (held to the
/// target), with the control lane's figures for the same statistics beside.
fn encrypted_rows(report: &mut Report, prior: usize, i: usize, runs: &[RunResult]) {
    let plain = |r: &RunResult| p50_p99(&r.plain[i]);
    let sealed = |r: &RunResult| p50_p99(&r.sealed[i]);
    let control = |r: &RunResult| p50_p99(&r.control[i]);
    let e99 = col(runs, |r| sealed(r).1);
    let (e99_median, p99_median) = (summary(&e99).0, summary(&col(runs, |r| plain(r).1)).0);
    report
        .add(
            "W1",
            format!("encrypted store (XChaCha20-Poly1305), {prior} prior visits: p50"),
            Unit::Ms,
            col(runs, |r| sealed(r).0),
        )
        .note("the same writes into an `open_sealed` store, interleaved with the plain ones");
    report
        .add(
            "W1",
            format!("encrypted store, {prior} prior visits: p99"),
            Unit::Ms,
            e99,
        )
        .target(Target::at_most(10.0, "≤ 10 ms"));
    let p50_ratio = summary(&col(runs, |r| sealed(r).0 / plain(r).0)).0;
    let control_runs = summary(&col(runs, |r| control(r).1 / plain(r).1));
    report
        .add(
            "W1",
            format!("encrypted p99 ÷ plain p99, {prior} prior visits, per run"),
            Unit::Ratio,
            col(runs, |r| sealed(r).1 / plain(r).1),
        )
        .note(format!(
            "median of {} runs' ratios (each run: both lanes in the same rounds); p99 medians: plain {p99_median:.2} ms, encrypted {e99_median:.2} ms; p50 ratio {p50_ratio:.2}×; control (plain ÷ plain, same statistic): {:.2}× ({:.2}–{:.2})",
            runs.len(),
            control_runs.0,
            control_runs.1,
            control_runs.2
        ));
    let (plain_all, sealed_all, control_all) = (
        pooled_p99(runs, |r| &r.plain[i]),
        pooled_p99(runs, |r| &r.sealed[i]),
        pooled_p99(runs, |r| &r.control[i]),
    );
    let writes: usize = runs.iter().map(|r| r.plain[i].len()).sum();
    report
        .add(
            "W1",
            format!("encrypted p99 ÷ plain p99, {prior} prior visits, all runs' writes pooled"),
            Unit::Ratio,
            vec![sealed_all / plain_all],
        )
        .target(Target::at_most(1.10, "≤ 1.10×"))
        .note(format!(
            "p99 of {writes} writes per lane: plain {plain_all:.2} ms, encrypted {sealed_all:.2} ms; control (a second plain store, same rounds) {control_all:.2} ms, control ÷ plain {:.2}×",
            control_all / plain_all
        ));
}
