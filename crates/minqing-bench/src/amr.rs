//! The automerge-repo baseline of issue 5: exports minqing's benchmark villages
//! as automerge fixtures and drives `bench/automerge-repo` (`server.mjs`,
//! `client.mjs`) through a [`TcpShaper`] with the same one-way delay as the
//! minqing runs, on 127.0.0.1 only.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use automerge::AutoCommit;
use minqing_sync::{DocId, Storage};
use minqing_testkit::shaper::{LinkConfig, TcpShaper};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::harness;
use crate::homes::{copy_dir, open_store};

/// The Node side of the baseline: where the scripts are and the `node` to run.
pub struct Amr {
    dir: PathBuf,
}

impl Amr {
    /// Checks `node` and `npm`, runs `npm install` once if `node_modules` is
    /// missing. `Err(reason)`: the baseline is skipped with that reason.
    pub fn prepare(root: &Path) -> std::result::Result<Amr, String> {
        let dir = root.join("bench/automerge-repo");
        let ok = |cmd: &str| {
            Command::new(cmd)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !ok("node") {
            return Err("`node` is not on PATH".into());
        }
        if !dir
            .join("node_modules/@automerge/automerge-repo/package.json")
            .exists()
        {
            if !ok("npm") {
                return Err(
                    "`npm` is not on PATH and bench/automerge-repo/node_modules is missing".into(),
                );
            }
            eprintln!("npm install in {} …", dir.display());
            let st = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .stdout(Stdio::null())
                .status()
                .map_err(|e| format!("cannot run npm: {e}"))?;
            if !st.success() {
                return Err(format!(
                    "`npm install` in bench/automerge-repo failed ({st})"
                ));
            }
        }
        Ok(Amr { dir })
    }
}

/// One timed client run.
#[derive(Debug, Clone, Copy)]
pub struct AmrRun {
    /// The client's timed span, seconds.
    pub secs: f64,
    /// TCP stream bytes both ways at the shaper.
    pub bytes: f64,
    /// The whole `node client.mjs` process, exec to exit, seconds (what a
    /// user of that client waits for: start-up and loading its documents
    /// included).
    pub process_secs: f64,
}

/// A running `server.mjs`.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(
        amr: &Amr,
        storage: &Path,
        fixtures: Option<&Path>,
        docs_out: &Path,
    ) -> Result<Server> {
        let mut cmd = Command::new("node");
        cmd.arg(amr.dir.join("server.mjs"))
            .arg("--storage")
            .arg(storage)
            .arg("--docs-out")
            .arg(docs_out)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(f) = fixtures {
            cmd.arg("--fixtures").arg(f);
        }
        let mut child = cmd.spawn().context("starting node server.mjs")?;
        let out = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .context("reading the server's listening line")?;
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse::<u16>().ok());
        match port {
            Some(port) => Ok(Server { child, port }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("server.mjs did not start (printed {line:?})")
            }
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGTERM (the server flushes its storage and exits), then waits.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one `client.mjs` scenario through a TCP shaper at `rtt_ms`.
async fn client(
    amr: &Amr,
    server: &Server,
    scenario: &str,
    rtt_ms: u64,
    docs: &Path,
    storage: &Path,
    changes: &Path,
) -> Result<AmrRun> {
    let shaper = TcpShaper::start(
        "127.0.0.1:0".parse()?,
        server.addr(),
        LinkConfig::delay(Duration::from_millis(rtt_ms / 2)),
    )
    .await?;
    let mut cmd = Command::new("node");
    cmd.arg(amr.dir.join("client.mjs"))
        .args(["--scenario", scenario])
        .arg("--url")
        .arg(format!("ws://{}", shaper.local_addr()))
        .arg("--warmup-url")
        .arg(format!("ws://{}", server.addr()))
        .arg("--docs")
        .arg(docs)
        .arg("--storage")
        .arg(storage)
        .arg("--changes")
        .arg(changes)
        .args(["--timeout-ms", "600000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        cmd.output().map(|o| (o, t.elapsed().as_secs_f64()))
    })
    .await?
    .context("running node client.mjs")?;
    let (out, process_secs) = out;
    let stats = shaper.stats();
    drop(shaper);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line).with_context(|| {
        format!(
            "client.mjs {scenario}: no JSON line (stderr: {})",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if let Some(e) = v.get("error") {
        bail!("client.mjs {scenario}: {e}");
    }
    let ms = v
        .get("ms")
        .and_then(serde_json::Value::as_f64)
        .context("client.mjs: no ms")?;
    Ok(AmrRun {
        secs: ms / 1e3,
        bytes: (stats.up.bytes + stats.down.bytes) as f64,
        process_secs,
    })
}

/// What to measure for one fixture set.
pub struct Plan<'a> {
    /// Timed runs per figure (one warm-up run more is discarded).
    pub runs: usize,
    /// Measure `initial` (else it runs once, untimed, to fill the client storage).
    pub initial: bool,
    /// RTTs of `incremental`.
    pub rtts: &'a [u64],
    /// Measure `noop` at 0 ms.
    pub noop: bool,
    /// Stop starting new runs after this long (what was measured is kept).
    pub budget: Duration,
}

/// Results of one fixture set; empty vectors were not measured.
#[derive(Default)]
pub struct Results {
    /// `initial` at 0 ms.
    pub initial: Vec<AmrRun>,
    /// `incremental` per RTT of the plan.
    pub incremental: Vec<(u64, Vec<AmrRun>)>,
    /// `noop` at 0 ms.
    pub noop: Vec<AmrRun>,
    /// Why something was left out.
    pub skipped: Vec<String>,
}

/// Runs the plan on `fixtures` in `work` (wiped first).
pub async fn measure(amr: &Amr, fixtures: &Path, work: &Path, plan: &Plan<'_>) -> Result<Results> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work)?;
    let started = Instant::now();
    let over = |what: &str, res: &mut Results| {
        let late = started.elapsed() > plan.budget;
        if late {
            res.skipped.push(format!(
                "{what}: left out, the baseline's time budget of {} s was spent",
                plan.budget.as_secs()
            ));
        }
        late
    };
    let mut res = Results::default();
    let docs = work.join("docs.json");
    let base = work.join("server-base");
    let changes = fixtures;
    // Initial: one server with the fixtures imported; a fresh client storage per run.
    let server = Server::start(amr, &base, Some(fixtures), &docs)?;
    let n_initial = if plan.initial { plan.runs + 1 } else { 1 };
    let client_base = work.join("client-base");
    for i in 0..n_initial {
        let storage = work.join(format!("client-init-{i}"));
        let r = client(amr, &server, "initial", 0, &docs, &storage, changes).await?;
        if plan.initial && i > 0 {
            res.initial.push(r);
        }
        if i + 1 == n_initial {
            // Give the client's throttled saves time (client.mjs waits 500 ms itself).
            std::fs::rename(&storage, &client_base)?;
        } else {
            let _ = std::fs::remove_dir_all(&storage);
        }
    }
    server.stop();

    let one = async |scenario: &str, rtt: u64| -> Result<AmrRun> {
        let srv = work.join("server-run");
        let cli = work.join("client-run");
        let _ = std::fs::remove_dir_all(&srv);
        let _ = std::fs::remove_dir_all(&cli);
        copy_dir(&base, &srv)?;
        copy_dir(&client_base, &cli)?;
        let server = Server::start(amr, &srv, None, &work.join("docs-run.json"))?;
        let r = client(amr, &server, scenario, rtt, &docs, &cli, changes).await;
        server.stop();
        r
    };
    for &rtt in plan.rtts {
        if over(&format!("incremental at {rtt} ms RTT"), &mut res) {
            continue;
        }
        let mut v = Vec::new();
        for i in 0..=plan.runs {
            let r = one("incremental", rtt).await?;
            if i > 0 {
                v.push(r);
            }
        }
        res.incremental.push((rtt, v));
    }
    if plan.noop && !over("noop", &mut res) {
        for i in 0..=plan.runs {
            let r = one("noop", 0).await?;
            if i > 0 {
                res.noop.push(r);
            }
        }
    }
    Ok(res)
}

/// Writes the fixture set of one S2 case into `out`: `<village>.automerge` is
/// `save()` of the relay's copy before the offline day, for every village of
/// the case; `<village>.changes` is `save_after(heads before the day)` of the
/// device's copy after the day — the bytes minqing's S2 pushes — for the worked
/// villages. The day is the one `sync_once` makes for the same seed (its first
/// run). Returns a note when the device's copy before the day differed from the
/// relay's (then the changes may depend on more than the fixture holds).
pub fn export(
    data: &Path,
    device: &str,
    villages: &[String],
    seed: u64,
    scratch: &Path,
    out: &Path,
) -> Result<Option<String>> {
    let run = scratch.join("amr-export");
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out)?;
    copy_dir(&data.join(device), &run.join("device"))?;
    copy_dir(&data.join("relay/store"), &run.join("relay"))?;
    let bundle = crate::homes::Laptop::read(&data.join(format!("{device}.bundle.json")))?;
    let device_id = bundle.device_id.as_str();
    let relay = open_store(&run.join("relay"))?;
    let dev = open_store(&run.join("device/store"))?;
    let work: Vec<DocId> = villages
        .iter()
        .take(4)
        .map(|v| DocId::new(v.clone()))
        .collect::<Result<_, _>>()?;
    let mut mismatch = Vec::new();
    let mut before = Vec::new();
    for v in villages {
        let id = DocId::new(v.clone())?;
        let bytes = relay
            .load(&id)?
            .with_context(|| format!("{v} on the relay"))?;
        let mut doc = AutoCommit::load(&bytes)?;
        std::fs::write(out.join(format!("{v}.automerge")), doc.save())?;
        if work.contains(&id) {
            let dbytes = dev
                .load(&id)?
                .with_context(|| format!("{v} on the device"))?;
            let mut d = AutoCommit::load(&dbytes)?;
            let heads = d.get_heads();
            if heads != doc.get_heads() {
                mismatch.push(v.clone());
            }
            before.push((id, heads));
        }
    }
    drop(relay);
    let mut rng = StdRng::seed_from_u64(seed);
    let date = chrono::NaiveDate::from_ymd_opt(2025, 1, 3).context("date")?;
    let day = harness::Work {
        visits: 50,
        events: 20,
        date,
    };
    harness::day_of_work(
        &dev,
        &work,
        &harness::Authors::One(device_id),
        &mut rng,
        day,
    )?;
    for (id, heads) in before {
        let bytes = dev.load(&id)?.context("worked village")?;
        let mut d = AutoCommit::load(&bytes)?;
        std::fs::write(out.join(format!("{id}.changes")), d.save_after(&heads))?;
    }
    drop(dev);
    let _ = std::fs::remove_dir_all(&run);
    Ok((!mismatch.is_empty()).then(|| {
        format!(
            "device and relay copies differed before the day in {}",
            mismatch.join(", ")
        )
    }))
}
