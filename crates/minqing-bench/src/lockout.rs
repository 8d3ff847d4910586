//! L1: the relay cannot be locked out. A laptop's real `minqing sync` (the
//! data set's `device/` home, 4 full villages, nothing new: the everyday
//! no-change pass) is timed alone, then during a flood of half-open QUIC
//! handshakes from one process (`minqing_testkit::hostile::InitialFlood`, raw
//! Initial packets, 10,000 per second); then six enrolled laptops each send
//! 50 MiB of a 60 MiB frame and stall, and the relay's RSS growth is compared
//! with its configured buffer budget (docs/relay.md, "Limits": the budget
//! counts partial frames, changes waiting for their dependencies and every
//! connection's QUIC receive window, so the target is the budget itself);
//! last, the same six laptops stream orphans (changes whose dependency is
//! never sent) over fresh sessions for [`ORPHAN_SECS`], and the relay's RSS
//! growth is compared with the budget again.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use minqing_testkit::hostile::{HostilePeer, InitialFlood};

use crate::datagen::SimDevice;
use crate::harness::{RelayProc, summary};
use crate::homes::{Bins, copy_dir, open_store};

/// Half-open handshakes per second in the flood.
pub const FLOOD_RATE: u32 = 10_000;
/// The buffer budget L1 configures (MiB), small enough that six partial
/// frames of 50 MiB exceed it.
const BUDGET_MIB: u64 = 64;

/// What L1 measured.
#[derive(Debug, Default)]
pub struct Lockout {
    /// `minqing sync` wall times alone, s.
    pub normal: Vec<f64>,
    /// `minqing sync` wall times during the flood, s.
    pub flooded: Vec<f64>,
    /// Failed syncs during the flood.
    pub failed: usize,
    /// Achieved flood rate, packets/s.
    pub rate: f64,
    /// Retry packets the flood received per second.
    pub retries_per_s: f64,
    /// Relay RSS with the six attacking connections open and idle, MiB.
    pub rss_before: f64,
    /// Relay peak RSS during it, MiB.
    pub rss_peak: f64,
    /// The configured buffer budget, MiB.
    pub budget: f64,
    /// Relay RSS before the orphan flood, MiB.
    pub orphan_before: f64,
    /// Relay peak RSS during the orphan flood, MiB.
    pub orphan_peak: f64,
    /// Orphan bytes (raw change bytes) the six laptops sent, MiB.
    pub orphan_sent: f64,
    /// Sessions the orphan flood opened.
    pub orphan_sessions: usize,
    /// The relay's document cache at its peak during the orphan flood (what
    /// the villages the attack made it load are counted for), MiB.
    pub orphan_cache_peak: f64,
    /// What the relay said about its document cache as it stopped.
    pub orphan_cache_line: Option<String>,
}

impl Lockout {
    /// What relay RSS may grow by under either attack: the buffer budget
    /// (MiB), which counts QUIC's receive windows too.
    pub fn rss_bound(&self) -> f64 {
        self.budget
    }
}

/// The longest a single send or close of an attacking peer may take: the
/// phases below end on time even if the relay neither reads nor closes.
const STEP_LIMIT: Duration = Duration::from_secs(20);

/// `fut` within [`STEP_LIMIT`]; a step that takes longer is an error.
async fn bounded<T, E>(fut: impl std::future::Future<Output = Result<T, E>>) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(STEP_LIMIT, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(anyhow::anyhow!(
            "a step of the attack took longer than {STEP_LIMIT:?}"
        )),
    }
}

/// Seconds the orphan flood lasts.
pub const ORPHAN_SECS: u64 = 12;
/// Raw bytes of one orphan change's payload.
const ORPHAN_PAYLOAD: usize = 16 * 1024;
/// Orphans per sync message.
const ORPHANS_PER_MESSAGE: usize = 16;

fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// One `minqing sync` of `home`, exec to exit: its seconds, or its stderr
/// as the error.
pub fn sync_once(bins: &Bins, home: &Path) -> Result<f64> {
    let t = Instant::now();
    let out = crate::homes::command(&bins.minqing)?
        .arg("--home")
        .arg(home)
        .args(["sync", "--timeout", "30"])
        .env_remove("MINQING_HOME")
        .output()
        .context("cannot run minqing sync")?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "minqing sync failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(secs)
}

/// Points the device home's stored bundle at `addr`.
pub fn retarget(home: &Path, addr: &str) -> Result<()> {
    let store = open_store(&home.join("store"))?;
    let raw = store
        .meta_get("relay_bundle")?
        .context("the device home is not enrolled")?;
    let mut v: serde_json::Value = serde_json::from_slice(&raw)?;
    v["relay_addr"] = serde_json::Value::String(addr.to_owned());
    store.meta_put("relay_bundle", &serde_json::to_vec(&v)?)?;
    minqing_sync::Storage::flush(&store)?;
    Ok(())
}

/// Runs L1 (`runs` syncs alone and as many during the flood).
pub async fn l1(bins: &Bins, data: &Path, scratch: &Path, runs: usize) -> Result<Lockout> {
    let dir = scratch.join("l1");
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&data.join("relay"), &dir.join("relay"))?;
    copy_dir(&data.join("device"), &dir.join("device"))?;
    let config_path = dir.join("relay/config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
    config["limits"] = serde_json::json!({ "buffer_budget_mib": BUDGET_MIB, "silence_secs": 10 });
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    let relay = RelayProc::start(bins, &dir.join("relay"))?;
    let home = dir.join("device");
    retarget(&home, &relay.addr.to_string())?;
    let mut out = Lockout {
        budget: BUDGET_MIB as f64,
        ..Lockout::default()
    };
    // Warm-up (first contact of this relay process with the store's pages).
    sync_once(bins, &home)?;
    for _ in 0..runs {
        out.normal.push(sync_once(bins, &home)?);
    }
    flood_phase(bins, &relay, &home, runs, &mut out).await?;
    // Six enrolled laptops of the data set.
    let sims: Vec<SimDevice> = serde_json::from_slice(&std::fs::read(data.join("r1.json"))?)?;
    partial_frames(&sims, &relay, &mut out).await?;
    // Orphans, against a fresh relay process: memory the partial frames
    // left in the allocator would otherwise hide the growth. Its document
    // cache starts empty: the villages the attack makes it load count in
    // the cache's budget, and its peak is read as the relay stops.
    relay.stop();
    let relay = RelayProc::start(bins, &dir.join("relay"))?;
    orphans(&sims, &relay, &mut out).await?;
    let line = relay.stop();
    out.orphan_cache_peak = line
        .as_deref()
        .and_then(crate::harness::cache_peak)
        .unwrap_or(f64::NAN);
    out.orphan_cache_line = line;
    Ok(out)
}

/// Syncs of `home` during a flood of half-open handshakes against `relay`.
async fn flood_phase(
    bins: &Bins,
    relay: &RelayProc,
    home: &Path,
    runs: usize,
    out: &mut Lockout,
) -> Result<()> {
    let flood = InitialFlood {
        target: relay.addr,
        per_second: FLOOD_RATE,
        server_name: minqing_net::DEFAULT_SERVER_NAME.into(),
    }
    .start()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..runs {
        let (b, h) = (bins.clone(), home.to_path_buf());
        match tokio::task::spawn_blocking(move || sync_once(&b, &h)).await? {
            Ok(s) => out.flooded.push(s),
            Err(e) => {
                eprintln!("L1: a sync during the flood failed: {e:#}");
                out.failed += 1;
            }
        }
    }
    let stats = flood.stop()?;
    out.rate = stats.sent as f64 / stats.seconds.max(1e-9);
    out.retries_per_s = stats.retries as f64 / stats.seconds.max(1e-9);
    eprintln!("L1 flood: {stats:?}");

    Ok(())
}

/// Partial frames: six laptops each send 50 MiB of a 60 MiB frame.
async fn partial_frames(sims: &[SimDevice], relay: &RelayProc, out: &mut Lockout) -> Result<()> {
    let pid = relay.pid();
    // The six connections first (their TLS state, QUIC buffers and session
    // tasks): the baseline the partial frames are measured against.
    let mut peers = Vec::new();
    for s in sims.iter().take(6) {
        let mut bundle = s.bundle.bundle.clone();
        bundle.relay_addr = relay.addr.to_string();
        peers.push(
            HostilePeer::connect(&bundle, &s.bundle.identity(), Duration::from_secs(20)).await?,
        );
    }
    for p in &mut peers {
        // One byte of a frame header: each session is running and waiting.
        bounded(p.send_raw(&[0x03])).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(pid);
    let mut tasks = Vec::new();
    for mut p in peers {
        tasks.push(tokio::spawn(async move {
            // The rest of a header announcing 60 MiB (0x03C0_0000), then 50 MiB of it.
            let zeros = vec![0u8; 64 * 1024];
            let _ = tokio::time::timeout(Duration::from_secs(15), async {
                if p.send_raw(&[0xC0, 0x00, 0x00]).await.is_err() {
                    return;
                }
                for _ in 0..(50 * 16) {
                    if p.send_raw(&zeros).await.is_err() {
                        break;
                    }
                }
            })
            .await;
            Some(p)
        }));
    }
    let mut peak = before;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(14) {
        peak = peak.max(rss(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        if let Ok(Some(p)) = t.await {
            let _ = tokio::time::timeout(STEP_LIMIT, p.close()).await;
        }
    }
    out.rss_before = before as f64 / (1024.0 * 1024.0);
    out.rss_peak = peak as f64 / (1024.0 * 1024.0);

    Ok(())
}

/// Orphan changes from six laptops against `relay` for [`ORPHAN_SECS`].
async fn orphans(sims: &[SimDevice], relay: &RelayProc, out: &mut Lockout) -> Result<()> {
    let pid = relay.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(pid);
    let deadline = Instant::now() + Duration::from_secs(ORPHAN_SECS);
    let mut tasks = Vec::new();
    for (i, s) in sims.iter().take(6).enumerate() {
        let mut bundle = s.bundle.bundle.clone();
        bundle.relay_addr = relay.addr.to_string();
        let identity = s.bundle.identity();
        let village = s.village.clone();
        // The relay's heads as the laptop knows them: the relay then has
        // nothing to send back, and the laptop need not read.
        let heads = automerge::sync::State::decode(&s.state)
            .map(|st| st.shared_heads)
            .unwrap_or_default();
        tasks.push(tokio::spawn(async move {
            orphan_stream(&bundle, &identity, &village, &heads, i as u64, deadline).await
        }));
    }
    let mut peak = before;
    while Instant::now() < deadline + Duration::from_secs(1) {
        peak = peak.max(rss(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        let (sent, sessions) = t.await?;
        out.orphan_sent += sent as f64 / (1024.0 * 1024.0);
        out.orphan_sessions += sessions;
    }
    out.orphan_before = before as f64 / (1024.0 * 1024.0);
    out.orphan_peak = peak as f64 / (1024.0 * 1024.0);
    Ok(())
}

/// One laptop streaming orphans until `deadline`: a session per round, each
/// sending sync messages whose changes all depend on a change never sent,
/// until the relay ends the session (its limit on waiting changes) or the
/// deadline. Returns the raw change bytes sent and the sessions opened.
async fn orphan_stream(
    bundle: &minqing_net::Bundle,
    identity: &minqing_net::Identity,
    village: &str,
    heads: &[automerge::ChangeHash],
    seed: u64,
    deadline: Instant,
) -> (u64, usize) {
    let (mut sent, mut sessions) = (0u64, 0usize);
    let mut round = 0u64;
    while Instant::now() < deadline {
        let Ok(mut p) = HostilePeer::connect(bundle, identity, Duration::from_secs(20)).await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        sessions += 1;
        let villages = [village.to_owned()];
        let Ok(doc) = minqing_sync::DocId::new(village) else {
            return (sent, sessions);
        };
        let hello = minqing_sync::frame::Frame::hello(
            bundle.device_id.clone(),
            vec![minqing_sync::frame::DocHeads {
                doc,
                heads: minqing_sync::frame::Heads::List(heads.to_vec()),
            }],
        );
        let Ok(hello) = hello.encode() else {
            return (sent, sessions);
        };
        if bounded(p.send_raw(&hello)).await.is_err() {
            let _ = tokio::time::timeout(STEP_LIMIT, p.close()).await;
            continue;
        }
        while Instant::now() < deadline {
            round += 1;
            let (message, bytes) = orphan_message(&bundle.device_id, seed, round);
            // A relay that stops reading (flow control) without ending the
            // session must not hold the bench past the deadline.
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, p.sync_frames(&villages, &message)).await {
                Ok(Ok(())) => sent += bytes as u64,
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let _ = tokio::time::timeout(STEP_LIMIT, p.close()).await;
    }
    (sent, sessions)
}

/// A sync message of [`ORPHANS_PER_MESSAGE`] changes by `device` (a valid
/// actor of its own), each depending on the one before, without the first
/// change of the chain: none of them can be applied. Returns the encoded
/// message and its raw change bytes.
fn orphan_message(device: &str, seed: u64, round: u64) -> (Vec<u8>, usize) {
    use automerge::transaction::Transactable;
    let incarnation = minqing_sync::Incarnation::from_random([0x80, 0, 0, 1]);
    let mut am =
        automerge::Automerge::new().with_actor(minqing_sync::device_actor(device, incarnation));
    let mut chunks = Vec::new();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ round;
    for i in 0..=ORPHANS_PER_MESSAGE {
        // Text that does not compress: each change really weighs its payload.
        let text: String = (0..ORPHAN_PAYLOAD / 16)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{x:016x}")
            })
            .collect();
        let mut tx = am.transaction();
        let _ = tx.put(automerge::ROOT, format!("orphan-{round}-{i}"), text);
        tx.commit();
        if i > 0
            && let Some(c) = am.get_last_local_change()
        {
            chunks.push(c.raw_bytes().to_vec());
        }
    }
    let bytes = chunks.iter().map(Vec::len).sum();
    let message = automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: vec![automerge::sync::Have::default()],
        changes: automerge::sync::ChunkList::from(chunks),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode();
    (message, bytes)
}

/// Median of a list (NaN if empty).
pub fn median(xs: &[f64]) -> f64 {
    summary(xs).0
}
