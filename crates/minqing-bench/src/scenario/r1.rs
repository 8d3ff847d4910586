//! R1: every simulated laptop of the data set (1,000 on the county profile)
//! syncs at once with one relay process, each pushing 2 visits of its day and
//! pulling: total time, per-device p50 and p99, relay peak RSS, errors.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use minqing_sync::{DocId, MemStorage, Storage};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::Ctx;
use super::sync::accepted;
use crate::datagen::SimDevice;
use crate::harness::{self, Authors, RelayProc, Work, device_sync, percentile};
use crate::homes::{Laptop, copy_dir, open_store};
use crate::report::{Report, Target, Unit};

/// What one R1 run measured.
struct R1Run {
    total: f64,
    p50: f64,
    p99: f64,
    rss_mib: f64,
    errors: usize,
}

/// Runs R1 and adds its rows.
pub async fn run(ctx: &Ctx<'_>, report: &mut Report) -> Result<()> {
    let sims: Vec<SimDevice> = serde_json::from_slice(&std::fs::read(ctx.data.join("r1.json"))?)?;
    let mut runs = Vec::new();
    for run in 0..ctx.opts.r1_runs() {
        runs.push(run_once(ctx, &sims, ctx.opts.seed + run as u64).await?);
        if runs[run].errors > 0 {
            eprintln!("R1 run {run}: {} errors", runs[run].errors);
        }
    }
    rows(report, sims.len(), &runs);
    Ok(())
}

/// Each device holds its village as the relay has it, plus 2 visits of its day.
fn devices(
    relay_dir: &std::path::Path,
    sims: &[SimDevice],
    seed: u64,
) -> Result<Vec<(Arc<MemStorage>, Laptop)>> {
    let relay_store = open_store(relay_dir)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let date = chrono::NaiveDate::from_ymd_opt(2025, 1, 3).context("date")?;
    let mut out = Vec::with_capacity(sims.len());
    for s in sims {
        let id = DocId::new(s.village.clone())?;
        let bytes = relay_store.load(&id)?.context("R1 village on the relay")?;
        let store = MemStorage::new();
        store.append(&id, &bytes)?;
        store.set_sync_state(&s.bundle.relay_name, &id, &s.state)?;
        let work = Work {
            visits: 2,
            events: 0,
            date,
        };
        let authors = Authors::One(&s.bundle.device_id);
        harness::day_of_work(&store, std::slice::from_ref(&id), &authors, &mut rng, work)?;
        out.push((Arc::new(store), s.bundle.clone()));
    }
    Ok(out)
}

/// One run: every device at once against a fresh copy of the relay.
async fn run_once(ctx: &Ctx<'_>, sims: &[SimDevice], seed: u64) -> Result<R1Run> {
    let dir = ctx.scratch.join("r1");
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&ctx.data.join("relay"), &dir.join("relay"))?;
    let devices = devices(&dir.join("relay/store"), sims, seed)?;
    let relay = RelayProc::start(ctx.bins, &dir.join("relay"))?;
    let addr = relay.addr;
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (store, bundle) in devices {
        tasks.spawn(async move {
            // Connect to outcome, as every sync time in the report; a
            // refused or missing village is an error.
            let r = device_sync(&*store, &bundle, addr).await?;
            accepted(&r.outcome, 1)?;
            Ok::<f64, anyhow::Error>(r.elapsed.as_secs_f64())
        });
    }
    let mut lat = Vec::with_capacity(sims.len());
    let mut errors = 0usize;
    let mut first_error = None;
    while let Some(j) = tasks.join_next().await {
        let why = match j {
            Ok(Ok(secs)) => {
                lat.push(secs);
                continue;
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) => e.to_string(),
        };
        errors += 1;
        first_error.get_or_insert(why);
    }
    let total = t.elapsed().as_secs_f64();
    if let Some(e) = first_error {
        eprintln!("R1: first error: {e}");
    }
    let rss_mib = relay
        .peak_rss()
        .map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0));
    relay.stop();
    Ok(R1Run {
        total,
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        rss_mib,
        errors,
    })
}

fn rows(report: &mut Report, n: usize, runs: &[R1Run]) {
    let col = |f: fn(&R1Run) -> f64| super::col(runs, f);
    report
        .add("R1", format!("{n} devices at once, each pushes 2 visits and pulls: total"), Unit::S, col(|r| r.total))
        .note("one bench process (all devices, own certificate and QUIC connection each) and one relay process share the 2 cores");
    report.add("R1", "per-device sync time p50", Unit::S, col(|r| r.p50));
    report.add("R1", "per-device sync time p99", Unit::S, col(|r| r.p99));
    report
        .add(
            "R1",
            "relay peak RSS (VmHWM)",
            Unit::MiB,
            col(|r| r.rss_mib),
        )
        .target(Target::at_most(1024.0, "≤ 1 GiB").every_run());
    report
        .add("R1", "errors", Unit::Count, col(|r| r.errors as f64))
        .target(Target::at_most(0.0, "0").every_run());
}
