//! One measured sync, shared by S1–S3: fresh copies of the stores, a day's
//! work if the case has one, the real relay process behind the UDP shaper, the
//! sync over QUIC (minqing's one session, or the naive baseline's session per
//! village), then the round trips counted on the sans-IO core on copies of
//! the same stores.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use minqing_sync::{DocId, DocOutcome, MemStorage, SessionOutcome, Storage};
use minqing_testkit::shaper::{LinkConfig, UdpShaper};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::Ctx;
use crate::harness::{self, Authors, NoSyncState, OnlyDocs, RelayProc, Work, device_sync};
use crate::homes::{Laptop, copy_dir, open_store};

/// What a sync case starts from.
pub struct Case {
    /// The device home to copy (None: a fresh laptop from `fresh.bundle.json`).
    pub device: Option<&'static str>,
    /// Its villages.
    pub villages: Vec<String>,
    /// 50 visits and 20 demand events over the first 4 villages before the sync.
    pub work: bool,
}

/// What one sync run measured.
pub struct Measured {
    /// Sync time, summed over sessions, s.
    pub secs: f64,
    /// UDP payload bytes both ways.
    pub bytes: f64,
    /// Of `bytes`, those of QUIC long-header packets (the handshake).
    pub handshake_bytes: f64,
    /// Round trips after the handshake (sans-IO lockstep).
    pub round_trips: usize,
    /// Frame bytes both ways in the lockstep count.
    pub protocol_bytes: usize,
}

/// Who syncs: the laptop, or the naive baseline (one device per village).
pub enum Who<'a> {
    /// minqing: one session for every village.
    Laptop(&'a Laptop),
    /// The naive baseline: one session per village, no sync state, each by
    /// the device enrolled for that village alone (`naive.json`).
    Naive(&'a [Laptop]),
}

/// The naive baseline's bundles.
pub fn naive_bundles(data: &Path) -> Result<Vec<Laptop>> {
    Ok(serde_json::from_slice(&std::fs::read(
        data.join("naive.json"),
    )?)?)
}

/// The naive device enrolled for `village` alone.
fn naive_for<'a>(bundles: &'a [Laptop], village: &str) -> Result<&'a Laptop> {
    bundles
        .iter()
        .find(|b| b.villages.len() == 1 && b.villages[0] == village)
        .with_context(|| format!("no naive bundle for {village}"))
}

/// Fails unless the relay settled exactly `expected` villages and refused none.
pub fn accepted(outcome: &SessionOutcome, expected: usize) -> Result<()> {
    let refused: Vec<String> = outcome
        .docs
        .iter()
        .filter_map(|(d, o)| match o {
            DocOutcome::Refused { reason } => Some(format!("{d}: {reason}")),
            _ => None,
        })
        .collect();
    anyhow::ensure!(
        refused.is_empty(),
        "the relay refused {}",
        refused.join("; ")
    );
    let settled = outcome
        .docs
        .values()
        .filter(|o| matches!(o, DocOutcome::InSync { .. } | DocOutcome::Added { .. }))
        .count();
    anyhow::ensure!(
        settled == expected && outcome.docs.len() == expected,
        "{settled} of {expected} villages settled ({:?})",
        outcome.docs.keys().collect::<Vec<_>>()
    );
    Ok(())
}

/// Syncs `villages` of `store` over QUIC with the relay at `addr`; seconds,
/// summed over sessions. Fails if any village was not accepted.
pub async fn sync_villages(
    store: &dyn Storage,
    who: &Who<'_>,
    villages: &[String],
    addr: SocketAddr,
) -> Result<f64> {
    match who {
        Who::Laptop(laptop) => {
            let r = device_sync(store, laptop, addr).await?;
            accepted(&r.outcome, villages.len())?;
            Ok(r.elapsed.as_secs_f64())
        }
        Who::Naive(bundles) => {
            let mut secs = 0.0;
            for v in villages {
                let only = OnlyDocs {
                    inner: store,
                    docs: [DocId::new(v.clone())?].into_iter().collect(),
                };
                let r = device_sync(&NoSyncState(&only), naive_for(bundles, v)?, addr).await?;
                accepted(&r.outcome, 1).with_context(|| format!("naive sync of {v}"))?;
                secs += r.elapsed.as_secs_f64();
            }
            Ok(secs)
        }
    }
}

/// Round trips after the handshake and frame bytes, in lockstep on the
/// sans-IO core, of the sync `who` makes from `dev` with the relay store in
/// `relay_dir`. The naive count adds a handshake per village after the first.
pub fn lockstep(
    ctx: &Ctx<'_>,
    relay_dir: &Path,
    dev: &dyn Storage,
    who: &Who<'_>,
    villages: &[String],
) -> Result<(usize, usize)> {
    let relay_store: Arc<dyn Storage> = Arc::new(open_store(relay_dir)?);
    let host = harness::relay_host(relay_store);
    let relay_name = &ctx.m.relay_name;
    match who {
        Who::Laptop(laptop) => {
            let assignment: BTreeSet<DocId> = laptop
                .villages
                .iter()
                .map(|v| DocId::new(v.clone()))
                .collect::<Result<_, _>>()?;
            harness::lockstep_round_trips(&laptop.device_id, relay_name, dev, &host, &assignment)
        }
        Who::Naive(bundles) => {
            let (mut round_trips, mut bytes) = (0, 0);
            for v in villages {
                let only = OnlyDocs {
                    inner: dev,
                    docs: [DocId::new(v.clone())?].into_iter().collect(),
                };
                let b = naive_for(bundles, v)?;
                let (rt, by) = harness::lockstep_round_trips(
                    &b.device_id,
                    relay_name,
                    &NoSyncState(&only),
                    &host,
                    &only.docs,
                )?;
                round_trips += rt + 1;
                bytes += by;
            }
            Ok((round_trips.saturating_sub(1), bytes))
        }
    }
}

/// A relay process behind a shaper with `rtt_ms`; returns both (drop the
/// shaper, then stop the relay).
async fn relay_behind_shaper(
    ctx: &Ctx<'_>,
    relay_home: &Path,
    rtt_ms: u64,
) -> Result<(RelayProc, UdpShaper)> {
    let relay = RelayProc::start(ctx.bins, relay_home)?;
    let shaper = UdpShaper::start(
        "127.0.0.1:0".parse()?,
        relay.addr,
        LinkConfig::delay(Duration::from_millis(rtt_ms / 2)),
    )
    .await?;
    Ok((relay, shaper))
}

/// The sync over QUIC: seconds and (bytes, handshake bytes) at the shaper.
async fn over_quic(
    ctx: &Ctx<'_>,
    run: &Path,
    device_store: &dyn Storage,
    who: &Who<'_>,
    villages: &[String],
    rtt_ms: u64,
) -> Result<(f64, f64, f64)> {
    let (relay, shaper) = relay_behind_shaper(ctx, &run.join("relay"), rtt_ms).await?;
    let secs = sync_villages(device_store, who, villages, shaper.local_addr()).await;
    let stats = shaper.handle().stats();
    tracing::debug!("shaper: {stats:?}");
    drop(shaper);
    relay.stop();
    Ok((
        secs?,
        (stats.up.bytes + stats.down.bytes) as f64,
        (stats.up.quic_handshake_bytes + stats.down.quic_handshake_bytes) as f64,
    ))
}

/// The offline day before a sync: the laptop's work (by the devices that will
/// push it) and teammates' work on the relay, which the laptop pulls.
fn offline_day(run: &Path, case: &Case, who: &Who<'_>, seed: u64) -> Result<()> {
    let villages: Vec<DocId> = case
        .villages
        .iter()
        .take(4)
        .map(|v| DocId::new(v.clone()))
        .collect::<Result<_, _>>()?;
    let naive_devices: BTreeMap<DocId, String>;
    let authors = match who {
        Who::Laptop(l) => Authors::One(&l.device_id),
        Who::Naive(bundles) => {
            naive_devices = villages
                .iter()
                .map(|v| Ok((v.clone(), naive_for(bundles, v.as_str())?.device_id.clone())))
                .collect::<Result<_>>()?;
            Authors::PerVillage(&naive_devices)
        }
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let date = chrono::NaiveDate::from_ymd_opt(2025, 1, 3).context("date")?;
    let device_store = open_store(&run.join("device/store"))?;
    let work = Work {
        visits: 50,
        events: 20,
        date,
    };
    harness::day_of_work(&device_store, &villages, &authors, &mut rng, work)?;
    device_store.flush()?;
    drop(device_store);
    // Teammates' work on the relay: 5 visits per village.
    let relay_store = open_store(&run.join("relay/store"))?;
    let mate = minqing_model::Id::random(&mut rng);
    let work = Work {
        visits: 5 * villages.len(),
        events: 0,
        date,
    };
    harness::day_of_work(
        &relay_store,
        &villages,
        &Authors::One(mate.as_str()),
        &mut rng,
        work,
    )?;
    relay_store.flush()?;
    Ok(())
}

/// One run of a case from an existing device home: fresh copies, the day's
/// work, the sync over QUIC at `rtt_ms`, then the lockstep count on copies
/// of both stores taken just before the sync.
pub async fn sync_once(
    ctx: &Ctx<'_>,
    case: &Case,
    rtt_ms: u64,
    naive: bool,
    seed: u64,
) -> Result<Measured> {
    let name = case.device.context("sync_once needs a device home")?;
    let run: PathBuf = ctx.scratch.join("sync");
    let _ = std::fs::remove_dir_all(&run);
    copy_dir(&ctx.data.join("relay"), &run.join("relay"))?;
    copy_dir(&ctx.data.join(name), &run.join("device"))?;
    let laptop = Laptop::read(&ctx.data.join(format!("{name}.bundle.json")))?;
    let bundles = naive_bundles(ctx.data)?;
    let who = if naive {
        Who::Naive(&bundles)
    } else {
        Who::Laptop(&laptop)
    };
    if case.work {
        offline_day(&run, case, &who, seed)?;
    }
    copy_dir(&run.join("relay/store"), &run.join("lockstep-relay"))?;
    copy_dir(&run.join("device/store"), &run.join("lockstep-device"))?;
    let device_store = open_store(&run.join("device/store"))?;
    let (secs, bytes, handshake_bytes) =
        over_quic(ctx, &run, &device_store, &who, &case.villages, rtt_ms).await?;
    drop(device_store);
    let dev = open_store(&run.join("lockstep-device"))?;
    let (round_trips, protocol_bytes) =
        lockstep(ctx, &run.join("lockstep-relay"), &dev, &who, &case.villages)?;
    Ok(Measured {
        secs,
        bytes,
        handshake_bytes,
        round_trips,
        protocol_bytes,
    })
}

/// Fresh copies of the relay and of the case's laptop under
/// `scratch/<dir>`, with the day's work if the case has one: the run's
/// directory and the laptop.
pub(super) fn laptop_run(
    ctx: &Ctx<'_>,
    case: &Case,
    dir: &str,
    seed: u64,
) -> Result<(PathBuf, Laptop)> {
    let name = case.device.context("this run needs a device home")?;
    let run: PathBuf = ctx.scratch.join(dir);
    let _ = std::fs::remove_dir_all(&run);
    copy_dir(&ctx.data.join("relay"), &run.join("relay"))?;
    copy_dir(&ctx.data.join(name), &run.join("device"))?;
    let laptop = Laptop::read(&ctx.data.join(format!("{name}.bundle.json")))?;
    if case.work {
        offline_day(&run, case, &Who::Laptop(&laptop), seed)?;
    }
    Ok((run, laptop))
}

/// One run of a case as `minqing app` syncs it: fresh copies, the day's
/// work if any, then the 4-village laptop's sync on a reused endpoint at
/// `rtt_ms`, resumed with 0-RTT or not ([`harness::device_sync_on_endpoint`]);
/// seconds from the connect to the outcome, and of them loading the laptop's
/// villages; bytes on the wire of the timed connection (UDP payload both
/// ways, close included) and of them the handshake's (long-header packets).
pub async fn on_endpoint_once(
    ctx: &Ctx<'_>,
    case: &Case,
    rtt_ms: u64,
    resume: bool,
    seed: u64,
) -> Result<(f64, f64, (f64, f64))> {
    let (run, laptop) = laptop_run(ctx, case, "sync-endpoint", seed)?;
    let device_store = open_store(&run.join("device/store"))?;
    let (relay, shaper) = relay_behind_shaper(ctx, &run.join("relay"), rtt_ms).await?;
    let link = shaper.handle();
    let wire = move || {
        let s = link.stats();
        (
            s.up.bytes + s.down.bytes,
            s.up.quic_handshake_bytes + s.down.quic_handshake_bytes,
        )
    };
    let r = harness::device_sync_on_endpoint(
        &device_store,
        &laptop,
        shaper.local_addr(),
        Duration::from_millis(rtt_ms),
        resume,
        &wire,
    )
    .await;
    drop(shaper);
    relay.stop();
    let (r, load, bytes) = r?;
    accepted(&r.outcome, case.villages.len())?;
    Ok((
        r.elapsed.as_secs_f64(),
        load.as_secs_f64(),
        (bytes.0 as f64, bytes.1 as f64),
    ))
}

/// `runs` runs of a case (seeds `seed`, `seed + 1` …).
pub async fn measure_runs(
    ctx: &Ctx<'_>,
    case: &Case,
    rtt_ms: u64,
    naive: bool,
) -> Result<Vec<Measured>> {
    let mut out = Vec::new();
    for i in 0..ctx.opts.runs {
        out.push(sync_once(ctx, case, rtt_ms, naive, ctx.opts.seed + i as u64).await?);
    }
    Ok(out)
}

/// One S1 run: a fresh, empty laptop receives its villages (0 ms RTT).
pub async fn fresh_once(ctx: &Ctx<'_>, naive: bool) -> Result<Measured> {
    let fresh = Laptop::read(&ctx.data.join("fresh.bundle.json"))?;
    let bundles = naive_bundles(ctx.data)?;
    let who = if naive {
        Who::Naive(&bundles)
    } else {
        Who::Laptop(&fresh)
    };
    let run = ctx.scratch.join("s1");
    let _ = std::fs::remove_dir_all(&run);
    copy_dir(&ctx.data.join("relay"), &run.join("relay"))?;
    copy_dir(&ctx.data.join("relay/store"), &run.join("lockstep-relay"))?;
    let villages = &ctx.m.device_villages;
    let store = open_store(&run.join("device"))?;
    let (secs, bytes, handshake_bytes) = over_quic(ctx, &run, &store, &who, villages, 0).await?;
    drop(store);
    let (round_trips, protocol_bytes) = lockstep(
        ctx,
        &run.join("lockstep-relay"),
        &MemStorage::new(),
        &who,
        villages,
    )?;
    Ok(Measured {
        secs,
        bytes,
        handshake_bytes,
        round_trips,
        protocol_bytes,
    })
}

/// One whole-process run of a case (issue 15): fresh copies, the day's work,
/// the relay process behind the UDP shaper with `link`, the device home's
/// bundle pointed at the shaper, then `minqing sync` executed — seconds from
/// exec to exit, as the cadre waits for it (the unlock, opening the store,
/// the handshake, the session and closing the connection included).
pub async fn process_once(ctx: &Ctx<'_>, case: &Case, link: LinkConfig, seed: u64) -> Result<f64> {
    let (run, _) = laptop_run(ctx, case, "process", seed)?;
    let relay = RelayProc::start(ctx.bins, &run.join("relay"))?;
    let shaper = UdpShaper::start("127.0.0.1:0".parse()?, relay.addr, link).await?;
    let home = run.join("device");
    crate::lockout::retarget(&home, &shaper.local_addr().to_string())?;
    let bins = ctx.bins.clone();
    let secs = tokio::task::spawn_blocking(move || crate::lockout::sync_once(&bins, &home)).await?;
    drop(shaper);
    relay.stop();
    secs
}
