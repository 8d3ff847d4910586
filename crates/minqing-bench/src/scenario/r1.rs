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
use minqing_relay::{MEMORY_PER_SAVED_BYTE, VILLAGE_BASE, village_cost};

/// Copies of each village the heap probe loads and keeps.
const HEAP_COPIES: usize = 4;

/// How long R1 waits for the relay to stop: its stop writes the final
/// exports of every village changed since the last export (up to all 500),
/// which takes far longer than 10 s.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// What one R1 run measured.
struct R1Run {
    total: f64,
    p50: f64,
    p99: f64,
    rss_mib: f64,
    errors: usize,
    /// The document cache's peak (MiB), from the line `serve` prints as it stops.
    cache_peak: f64,
    /// That line.
    cache_line: Option<String>,
    /// From SIGTERM to the relay's exit, s (NaN if it did not stop in [`STOP_WAIT`]).
    stop_secs: f64,
    /// What the relay said about its final exports.
    exports_line: Option<String>,
}

/// Runs R1 and adds its rows.
pub async fn run(ctx: &Ctx<'_>, report: &mut Report) -> Result<()> {
    let sims: Vec<SimDevice> = serde_json::from_slice(&std::fs::read(ctx.data.join("r1.json"))?)?;
    let cache = R1Cache::new(&sims, ctx.m);
    let mut runs = Vec::new();
    for run in 0..ctx.opts.r1_runs() {
        runs.push(run_once(ctx, &sims, &cache, ctx.opts.seed + run as u64).await?);
        if runs[run].errors > 0 {
            eprintln!("R1 run {run}: {} errors", runs[run].errors);
        }
    }
    rows(report, sims.len(), &runs);
    cache_row(report, &cache, &runs);
    heap_rows(ctx, report)?;
    Ok(())
}

/// What a loaded village costs in memory per saved byte (`crate::heap`),
/// for the data set's full villages and a sample of its small ones, against
/// what the relay's document cache counts ([`MEMORY_PER_SAVED_BYTE`]).
fn heap_rows(ctx: &Ctx<'_>, report: &mut Report) -> Result<()> {
    let dir = ctx.scratch.join("heap");
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&ctx.data.join("relay/store"), &dir)?;
    let full = &ctx.m.device_villages;
    let small: Vec<&String> = ctx
        .m
        .all_villages
        .iter()
        .filter(|v| !full.contains(v))
        .take(6)
        .collect();
    for (what, villages) in [
        ("full-size villages", full.iter().collect::<Vec<_>>()),
        ("small villages", small),
    ] {
        if villages.is_empty() {
            continue;
        }
        let mut probes = Vec::new();
        for v in villages {
            probes.push(crate::heap::probe_in_child(&dir, v, HEAP_COPIES)?);
        }
        let saved = probes.iter().map(|p| p.saved).sum::<u64>() / probes.len() as u64;
        let mut factors: Vec<f64> = probes.iter().map(crate::heap::Probe::factor).collect();
        factors.sort_by(f64::total_cmp);
        let reply = probes
            .iter()
            .map(|p| p.reply_peak as f64 / p.saved.max(1) as f64)
            .fold(0.0, f64::max);
        let reply_bytes = probes.iter().map(|p| p.reply_bytes).max().unwrap_or(0);
        report
            .add(
                "R1",
                format!("memory of a loaded village ÷ what the document cache counts for it, {what}"),
                Unit::Ratio,
                probes
                    .iter()
                    .map(|p| p.per_copy as f64 / village_cost(p.saved as usize) as f64)
                    .collect(),
            )
            .target(Target::at_most(1.0, "≤ 1: every byte counted").every_run())
            .note(format!(
                "RSS growth of a fresh process per copy kept ({HEAP_COPIES} copies of each village, one value per village): {:.1}–{:.1} bytes per saved byte (villages of {saved} B saved on average); the cache counts {} KiB + {MEMORY_PER_SAVED_BYTE} per saved byte; generating one sync message with the whole history (a peer asking for everything) peaks {reply:.1}× the saved size more ({reply_bytes} B message at most)",
                factors.first().copied().unwrap_or(f64::NAN),
                factors.last().copied().unwrap_or(f64::NAN),
                VILLAGE_BASE / 1024
            ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// R1's document cache: a budget (`limits.doc_cache_mib`) that holds about
/// half of what the villages R1 touches count for, so the load touches more
/// villages than the budget holds.
struct R1Cache {
    villages: usize,
    counted_mib: f64,
    budget_mib: u64,
}

impl R1Cache {
    fn new(sims: &[SimDevice], m: &crate::datagen::Manifest) -> R1Cache {
        let touched: std::collections::BTreeSet<&str> =
            sims.iter().map(|s| s.village.as_str()).collect();
        let counted: usize = touched
            .iter()
            .filter_map(|v| m.saved_bytes.get(*v))
            .map(|b| village_cost(*b as usize))
            .sum();
        let counted_mib = counted as f64 / (1024.0 * 1024.0);
        R1Cache {
            villages: touched.len(),
            counted_mib,
            budget_mib: ((counted_mib / 2.0) as u64).max(1),
        }
    }

    fn configure(&self, relay_home: &std::path::Path) -> Result<()> {
        let path = relay_home.join("config.json");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        if !config["limits"].is_object() {
            config["limits"] = serde_json::json!({});
        }
        config["limits"]["doc_cache_mib"] = serde_json::json!(self.budget_mib);
        std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
        Ok(())
    }
}

fn cache_row(report: &mut Report, cache: &R1Cache, runs: &[R1Run]) {
    let last = runs.iter().rev().find_map(|r| r.cache_line.as_deref());
    let exports = runs.iter().rev().find_map(|r| r.exports_line.as_deref());
    report
        .add(
            "R1",
            "relay stop after the load (SIGTERM to exit: final flush and exports)",
            Unit::S,
            super::col(runs, |r| r.stop_secs),
        )
        .note(format!(
            "the harness waits up to {} s; the relay said: {}",
            STOP_WAIT.as_secs(),
            exports.unwrap_or("nothing")
        ));
    report
        .add(
            "R1",
            format!(
                "relay document cache peak (villages counted at {} KiB + {MEMORY_PER_SAVED_BYTE}× saved size)",
                VILLAGE_BASE / 1024
            ),
            Unit::MiB,
            super::col(runs, |r| r.cache_peak),
        )
        .target(
            Target::at_most(
                cache.budget_mib as f64,
                format!("≤ doc_cache_mib {} MiB", cache.budget_mib),
            )
            .every_run(),
        )
        .note(format!(
            "the {} villages R1 touches count for {:.0} MiB in all; the configured budget holds {:.0} % of that; the relay said as it stopped: {}",
            cache.villages,
            cache.counted_mib,
            100.0 * cache.budget_mib as f64 / cache.counted_mib.max(1e-9),
            last.unwrap_or("nothing")
        ));
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
async fn run_once(ctx: &Ctx<'_>, sims: &[SimDevice], cache: &R1Cache, seed: u64) -> Result<R1Run> {
    let dir = ctx.scratch.join("r1");
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&ctx.data.join("relay"), &dir.join("relay"))?;
    cache.configure(&dir.join("relay"))?;
    let devices = devices(&dir.join("relay/store"), sims, seed)?;
    let relay = RelayProc::start(ctx.bins, &dir.join("relay"))?;
    let addr = relay.addr;
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (store, bundle) in devices {
        tasks.spawn(async move {
            // Connect to outcome, as every sync time in the report; a
            // refused or missing village is an error.
            let started = Instant::now();
            let r = device_sync(&*store, &bundle, addr)
                .await
                .with_context(|| format!("after {:.1} s", started.elapsed().as_secs_f64()))?;
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
        // Every error, with how long it took to fail: what the handshake
        // deadlines (the relay's 10 s, a Retry token's 15 s) look like.
        eprintln!("R1: error: {why}");
        first_error.get_or_insert(why);
    }
    let total = t.elapsed().as_secs_f64();
    if let Some(e) = first_error {
        eprintln!("R1: first error: {e}");
    }
    let rss_mib = relay
        .peak_rss()
        .map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0));
    let stopped = relay.stop_within(STOP_WAIT);
    if stopped.is_none() {
        eprintln!(
            "R1: the relay did not stop within {} s",
            STOP_WAIT.as_secs()
        );
    }
    // The relay's peak with its stop (the final exports load villages too).
    let (lines, stop_secs) = stopped.map_or((Default::default(), f64::NAN), |s| (s.lines, s.secs));
    let harness::StopLines {
        cache: cache_line,
        exports: exports_line,
    } = lines;
    Ok(R1Run {
        total,
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        rss_mib,
        errors,
        cache_peak: cache_line
            .as_deref()
            .and_then(harness::cache_peak)
            .unwrap_or(f64::NAN),
        cache_line,
        stop_secs,
        exports_line,
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
