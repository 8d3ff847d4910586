//! Shared pieces of the scenarios: a relay process on a fresh port, an
//! in-process device sync over QUIC (through the link shaper), the lockstep
//! round-trip counter on the sans-IO core, a day's offline work, peak RSS.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use minqing_model::{NewVisit, Note, Village, VisitKind};
use minqing_net::ConnectOptions;

use crate::homes::Laptop;
use minqing_sync::{
    DeviceSession, DocId, RelaySession, SessionConfig, SessionOutcome, Storage, StorageDocHost,
    StorageError,
};
use rand::Rng;
use rand::rngs::StdRng;

use crate::county::{self, Cadre};
use crate::homes::Bins;
use crate::text;

/// Environment variable: a log filter for the relays the bench starts, whose
/// stderr is then kept in `minqing-bench-relay-PID.log` in the temporary
/// directory.
pub const RELAY_LOG_ENV: &str = "MINQING_BENCH_RELAY_LOG";

/// A running `minqing-relay serve`.
pub struct RelayProc {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Reads the rest of its stderr; returns the lines `serve` prints as it
    /// stops (its final exports, its document cache).
    stderr: Option<std::thread::JoinHandle<StopLines>>,
}

/// What `serve` said as it stopped.
#[derive(Debug, Default, Clone)]
pub struct StopLines {
    /// "document cache: peak …"
    pub cache: Option<String>,
    /// "final exports: N village(s) written in S s"
    pub exports: Option<String>,
}

/// A relay that stopped within the wait.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// What it said as it stopped.
    pub lines: StopLines,
    /// From SIGTERM to its exit, s.
    pub secs: f64,
}

impl RelayProc {
    /// Starts `minqing-relay serve` on `home` at a fresh loopback port.
    pub fn start(bins: &Bins, home: &Path) -> Result<RelayProc> {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let config_path = home.join("config.json");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
        config["listen"] = serde_json::Value::String(addr.to_string());
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        // Diagnostics: `MINQING_BENCH_RELAY_LOG=<filter>` runs the relay with
        // that log filter and keeps its whole stderr in a file of the
        // temporary directory (named on the bench's stderr).
        let diag = std::env::var(RELAY_LOG_ENV).ok();
        let mut child = crate::homes::command(&bins.relay)?
            .arg("--home")
            .arg(home)
            .arg("serve")
            .env("MINQING_LOG", diag.as_deref().unwrap_or("error"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start minqing-relay serve")?;
        let stderr = child.stderr.take().context("relay stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening on") => break,
                Some(Ok(_)) => {}
                _ => {
                    let _ = child.kill();
                    bail!("minqing-relay serve exited before listening");
                }
            }
        }
        let mut keep = match diag {
            Some(_) => {
                let path =
                    std::env::temp_dir().join(format!("minqing-bench-relay-{}.log", child.id()));
                eprintln!("relay {} logs to {}", child.id(), path.display());
                Some(std::io::BufWriter::new(
                    std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                ))
            }
            None => None,
        };
        let stderr = std::thread::spawn(move || {
            use std::io::Write;
            let mut out = StopLines::default();
            for l in lines.map_while(Result::ok) {
                if let Some(w) = &mut keep {
                    let _ = writeln!(w, "{l}");
                }
                if l.starts_with("document cache:") {
                    out.cache = Some(l);
                } else if l.starts_with("final exports:") {
                    out.exports = Some(l);
                }
            }
            out
        });
        Ok(RelayProc {
            child,
            addr,
            stderr: Some(stderr),
        })
    }

    /// The relay's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        vm_hwm(self.child.id())
    }

    /// Stops it (SIGTERM, then SIGKILL after 10 s); returns what it said
    /// about its document cache as it stopped, if it stopped cleanly.
    pub fn stop(self) -> Option<String> {
        self.stop_within(Duration::from_secs(10))
            .and_then(|s| s.lines.cache)
    }

    /// Stops it (SIGTERM, then SIGKILL after `wait`); what it said as it
    /// stopped and how long the stop took, if it stopped cleanly in time.
    pub fn stop_within(mut self, wait: Duration) -> Option<Stopped> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let started = Instant::now();
        let until = started + wait;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                let secs = started.elapsed().as_secs_f64();
                let lines = self.stderr.take().and_then(|t| t.join().ok())?;
                return Some(Stopped { lines, secs });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmHWM of a process, in bytes.
pub fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The peak (MiB) in the relay's "document cache: peak X MiB of …" line
/// (what [`RelayProc::stop`] returns).
pub fn cache_peak(line: &str) -> Option<f64> {
    line.strip_prefix("document cache: peak ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What one device sync over QUIC cost.
#[derive(Debug, Clone)]
pub struct SyncRun {
    /// From the start of `connect` to the session's outcome.
    pub elapsed: Duration,
    /// The outcome.
    pub outcome: SessionOutcome,
}

/// Syncs a device store with the relay at `addr` (usually the shaper) over
/// QUIC: connect, one session over every held village, persisted and flushed
/// like `minqing sync`. `store` may hide sync states (the naive baseline).
pub async fn device_sync(
    store: &dyn Storage,
    laptop: &Laptop,
    addr: SocketAddr,
) -> Result<SyncRun> {
    let mut bundle = laptop.bundle.clone();
    bundle.relay_addr = addr.to_string();
    let started = Instant::now();
    let conn = minqing_net::connect(
        &bundle,
        &laptop.identity(),
        ConnectOptions {
            timeout: Duration::from_secs(120),
        },
    )
    .await?;
    let t_conn = started.elapsed();
    let (outcome, load) = session_on(&conn, store, &bundle).await?;
    let t_load = t_conn + load;
    let elapsed = started.elapsed();
    tracing::debug!(
        "device sync: connected at {:.3} s, documents loaded at {:.3} s, outcome at {:.3} s; quic {:?}",
        t_conn.as_secs_f64(),
        t_load.as_secs_f64(),
        elapsed.as_secs_f64(),
        conn.connection.stats()
    );
    conn.close().await;
    Ok(SyncRun { elapsed, outcome })
}

/// One session over every village of `store` on `conn`, persisted and
/// flushed like `minqing sync`; its outcome and the time spent loading the
/// villages.
async fn session_on(
    conn: &minqing_net::DeviceConnection,
    store: &dyn Storage,
    bundle: &minqing_net::Bundle,
) -> Result<(SessionOutcome, Duration)> {
    let loading = Instant::now();
    let docs = minqing_sync::device_docs(store, &bundle.relay_name)?;
    let load = loading.elapsed();
    let mut session = DeviceSession::new(SessionConfig::default(), &bundle.device_id, docs)?;
    let outcome =
        minqing_net::run_device_session(conn, &mut session, store, &bundle.relay_name, &mut |_| {})
            .await?;
    Ok((outcome, load))
}

/// [`device_sync`] as `minqing app`'s background sync makes it: on a
/// reused [`minqing_net::ClientEndpoint`]. With `resume`, a first connection
/// on the endpoint only handshakes and waits (`2 × rtt` + 100 ms) for the
/// relay's ticket, untimed; the timed sync then resumes with it and sends
/// its first flight as 0-RTT data — and fails unless the relay took it so.
/// Without, the timed sync is the endpoint's first connection (a full
/// handshake, as every pass of a one-shot `minqing sync`). Also returns the
/// part of the time spent loading the laptop's villages, and the bytes the
/// timed connection put on the wire, all and of them the handshake's
/// (`wire()`: the link's counts, read before it starts and after it is
/// closed).
pub async fn device_sync_on_endpoint(
    store: &dyn Storage,
    laptop: &Laptop,
    addr: SocketAddr,
    rtt: Duration,
    resume: bool,
    wire: &(dyn Fn() -> (u64, u64) + Sync),
) -> Result<(SyncRun, Duration, (u64, u64))> {
    let mut bundle = laptop.bundle.clone();
    bundle.relay_addr = addr.to_string();
    let opts = ConnectOptions {
        timeout: Duration::from_secs(120),
    };
    let endpoint = minqing_net::client_endpoint(&bundle, &laptop.identity()).await?;
    if resume {
        let warm = minqing_net::connect_on(&endpoint, &bundle, opts).await?;
        tokio::time::sleep(rtt * 2 + Duration::from_millis(100)).await;
        warm.close().await;
    }
    let bytes_before = wire();
    let started = Instant::now();
    let conn = minqing_net::connect_on(&endpoint, &bundle, opts).await?;
    let (outcome, load) = session_on(&conn, store, &bundle).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        conn.used_0rtt() == resume,
        "the timed sync {} 0-RTT data",
        if resume { "did not send" } else { "sent" }
    );
    conn.close().await;
    let after = wire();
    let bytes = (
        after.0.saturating_sub(bytes_before.0),
        after.1.saturating_sub(bytes_before.1),
    );
    Ok((SyncRun { elapsed, outcome }, load, bytes))
}

/// A storage that never keeps sync states: the naive baseline's device.
pub struct NoSyncState<'a>(pub &'a dyn Storage);

impl Storage for NoSyncState<'_> {
    fn docs(&self) -> Result<Vec<DocId>, StorageError> {
        self.0.docs()
    }
    fn load(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.load(doc)
    }
    fn append(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StorageError> {
        self.0.append(doc, bytes)
    }
    fn remove(&self, doc: &DocId) -> Result<(), StorageError> {
        self.0.remove(doc)
    }
    fn sync_state(&self, _: &str, _: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(None)
    }
    fn set_sync_state(&self, _: &str, _: &DocId, _: &[u8]) -> Result<(), StorageError> {
        Ok(())
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.0.flush()
    }
}

/// A storage restricted to some documents (the naive baseline syncs one
/// village per session).
pub struct OnlyDocs<'a> {
    /// The storage.
    pub inner: &'a dyn Storage,
    /// The documents it shows.
    pub docs: BTreeSet<DocId>,
}

impl Storage for OnlyDocs<'_> {
    fn docs(&self) -> Result<Vec<DocId>, StorageError> {
        Ok(self
            .inner
            .docs()?
            .into_iter()
            .filter(|d| self.docs.contains(d))
            .collect())
    }
    fn load(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.load(doc)
    }
    fn append(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StorageError> {
        self.inner.append(doc, bytes)
    }
    fn remove(&self, doc: &DocId) -> Result<(), StorageError> {
        self.inner.remove(doc)
    }
    fn sync_state(&self, peer: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.sync_state(peer, doc)
    }
    fn set_sync_state(&self, peer: &str, doc: &DocId, state: &[u8]) -> Result<(), StorageError> {
        self.inner.set_sync_state(peer, doc, state)
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
}

/// Round trips of one session on the sans-IO core, driven in lockstep (each
/// side answers everything it received in one flight): the relay flights the
/// device waited for, minus the handshake's `Welcome`. Also the frame bytes
/// each way (protocol bytes, before QUIC).
pub fn lockstep_round_trips(
    device: &str,
    relay_name: &str,
    dev: &dyn Storage,
    host: &StorageDocHost,
    assignment: &BTreeSet<DocId>,
) -> Result<(usize, usize)> {
    let docs = minqing_sync::device_docs(dev, relay_name)?;
    let mut d = DeviceSession::new(SessionConfig::default(), device, docs)?;
    let mut r = RelaySession::new(
        SessionConfig::default(),
        relay_name,
        device,
        assignment.clone(),
    );
    let mut to_relay: Vec<u8> = Vec::new();
    let mut bytes = 0;
    while let Some(b) = d.poll_transmit() {
        to_relay.extend(b);
    }
    let mut finished = false;
    // `flights`: relay flights the device waited for so far.
    for flights in 0..64usize {
        bytes += to_relay.len();
        let up = minqing_sync::relay_step(&mut r, host, &**host.storage(), &to_relay)?;
        up.result?;
        if finished {
            return Ok((flights.saturating_sub(1), bytes));
        }
        let to_device = up.frames.concat();
        bytes += to_device.len();
        let down = minqing_sync::device_step(&mut d, dev, relay_name, &to_device)?;
        down.result?;
        finished = down.outcome.is_some();
        to_relay = down.frames.concat();
    }
    bail!("lockstep session of {device} did not finish in 64 flights")
}

/// Opens a relay store for the lockstep counter.
pub fn relay_host(store: Arc<dyn Storage>) -> StorageDocHost {
    StorageDocHost::new(store)
}

/// Who writes a day's work: the device id that authors each village's
/// changes (the relay refuses a change whose actor is not the sending
/// device's, so the work must be written by the device that will push it).
pub enum Authors<'a> {
    /// One laptop for every village.
    One(&'a str),
    /// A device per village (the naive baseline: one enrolled device per
    /// village, each pushing only its own).
    PerVillage(&'a std::collections::BTreeMap<DocId, String>),
}

impl Authors<'_> {
    fn of(&self, village: &DocId) -> Result<&str> {
        match self {
            Authors::One(d) => Ok(d),
            Authors::PerVillage(m) => m
                .get(village)
                .map(String::as_str)
                .with_context(|| format!("no device writes village {village}")),
        }
    }
}

/// A day of offline work on a laptop: `work.visits` visits and `work.events`
/// demand events (steps on open demands, or new demands where none is open),
/// spread over `villages`, written like the CLI writes (one commit each,
/// appended and flushed). Each village's actor is its author's device id with
/// one new incarnation drawn from `rng` (docs/data-model.md, "Actors"), as a
/// laptop's store would have; the records drawn from `rng` do not depend on
/// who the authors are.
pub fn day_of_work(
    store: &dyn Storage,
    villages: &[DocId],
    authors: &Authors<'_>,
    rng: &mut StdRng,
    work: Work,
) -> Result<()> {
    let mut cadre = Cadre::random(rng)?;
    let incarnation = minqing_sync::Incarnation::from_random(rng.random());
    for (i, id) in villages.iter().enumerate() {
        let device_id = authors.of(id)?;
        cadre.device_id = minqing_model::Id::parse(device_id)?;
        let actor = minqing_sync::device_actor(device_id, incarnation);
        let bytes = store.load(id)?.context("village held")?;
        let mut v = Village::load(id.clone(), &bytes)?;
        v.set_actor(actor.to_bytes());
        let share = |n: usize| n / villages.len() + usize::from(i < n % villages.len());
        log_visits(&mut v, &cadre, rng, share(work.visits), work.date)?;
        let open: Vec<String> = v
            .demands()
            .into_iter()
            .filter(|d| d.status != "已销号")
            .map(|d| d.id)
            .collect();
        for k in 0..share(work.events) {
            let author = cadre.author(county::ms_on(rng, work.date));
            let demand = minqing_model::Id::parse(&open[k % open.len().max(1)])?;
            county::next_step(&mut v, rng, &author, &demand)?;
        }
        store.append(id, &v.take_unsaved())?;
        store.flush()?;
    }
    Ok(())
}

/// How much a day's work holds.
#[derive(Debug, Clone, Copy)]
pub struct Work {
    /// Visits, over all villages.
    pub visits: usize,
    /// Demand events, over all villages.
    pub events: usize,
    /// The day.
    pub date: chrono::NaiveDate,
}

fn log_visits(
    v: &mut Village,
    cadre: &Cadre,
    rng: &mut StdRng,
    n: usize,
    date: chrono::NaiveDate,
) -> Result<()> {
    let households = v.households();
    for _ in 0..n {
        let h = &households[rng.random_range(0..households.len())];
        let note = text::note(rng);
        let author = cadre.author(county::ms_on(rng, date));
        v.log_visit(
            rng,
            &author,
            &NewVisit {
                household: minqing_model::Id::parse(&h.id)?,
                resident: None,
                kind: VisitKind::Regular,
                note: Note::parse(&note)?,
                date,
            },
        )?;
    }
    Ok(())
}

/// Median, minimum and maximum.
pub fn summary(xs: &[f64]) -> (f64, f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// The `p`-th percentile (nearest rank), `p` in 0..=100.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}
