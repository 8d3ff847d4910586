//! OUT: outage recovery as the cadre lives it (issue 15's must-show):
//! `minqing sync --watch` running on the 4-village laptop, the link to the
//! relay cut (the UDP shaper drops everything), a visit logged meanwhile,
//! the link restored 20 s after the cut; timed from the link's return to
//! the watcher's report that its pass reached the relay (`… is reachable
//! again`, printed once the relay recorded the sync — so the relay held
//! the visit a little earlier: an upper bound).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use minqing_testkit::shaper::{LinkConfig, UdpShaper};

use super::Ctx;
use super::c1::pick;
use super::sync::{Case, laptop_run};
use crate::harness::RelayProc;
use crate::homes;
use crate::report::{Report, Target, Unit};

/// The link's round trip, ms.
const RTT_MS: u64 = 300;

/// Adds OUT's row.
pub async fn run(ctx: &Ctx<'_>, report: &mut Report) -> Result<()> {
    let case = Case {
        device: Some("device"),
        villages: ctx.m.device_villages.clone(),
        work: false,
    };
    let cut = Duration::from_secs(20);
    let mut secs = Vec::new();
    for i in 0..ctx.opts.runs {
        secs.push(once(ctx, &case, cut, ctx.opts.seed + i as u64).await?);
    }
    report
        .add(
            "OUT",
            format!(
                "`minqing sync --watch`, link cut for {} s while a visit is logged, {RTT_MS} ms RTT: link back → the relay has the visit",
                cut.as_secs()
            ),
            Unit::S,
            secs,
        )
        .target(Target::at_most(2.0, "≤ 2 s"))
        .note("until the watcher prints that its pass reached the relay (an upper bound: the relay recorded the sync half a round trip earlier)");
    Ok(())
}

/// One run: seconds from the link's return to the watcher's report.
async fn once(ctx: &Ctx<'_>, case: &Case, cut: Duration, seed: u64) -> Result<f64> {
    let (run, _) = laptop_run(ctx, case, "outage", seed)?;
    let home = run.join("device");
    let target = pick(&home.join("store"), &case.villages)?;
    let relay = RelayProc::start(ctx.bins, &run.join("relay"))?;
    let shaper = UdpShaper::start(
        "127.0.0.1:0".parse()?,
        relay.addr,
        LinkConfig::delay(Duration::from_millis(RTT_MS / 2)),
    )
    .await?;
    crate::lockout::retarget(&home, &shaper.local_addr().to_string())?;
    let link = shaper.handle();
    let bins = ctx.bins.clone();
    let villages = case.villages.len();
    let result = tokio::task::spawn_blocking(move || -> Result<f64> {
        let mut watcher = Watcher::start(&bins.minqing, &home)?;
        // The first pass: every village in sync.
        watcher.wait_stdout_lines(villages, Duration::from_secs(60))?;
        let cut_at = Instant::now();
        link.outage(true);
        std::thread::sleep(Duration::from_secs(1));
        log_visit(&bins.minqing, &home, &target.household, &target.resident)?;
        watcher.wait_stderr("trying again every second", Duration::from_secs(60))?;
        std::thread::sleep(cut.saturating_sub(cut_at.elapsed()));
        let back = Instant::now();
        link.outage(false);
        let reached = watcher.wait_stderr("is reachable again", Duration::from_secs(60))?;
        Ok(reached.duration_since(back).as_secs_f64())
    })
    .await?;
    drop(shaper);
    relay.stop();
    result
}

/// `minqing sync --watch` with its output read line by line, each line
/// stamped with when it arrived.
struct Watcher {
    child: Child,
    stdout: mpsc::Receiver<(Instant, String)>,
    stderr: mpsc::Receiver<(Instant, String)>,
}

impl Watcher {
    fn start(bin: &Path, home: &Path) -> Result<Watcher> {
        let mut child = homes::command(bin)?
            .arg("--home")
            .arg(home)
            .args(["sync", "--watch", "--timeout", "10", "--interval", "600"])
            .env_remove("MINQING_HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start minqing sync --watch")?;
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().context("no stdout")?));
        let stderr = lines(Box::new(child.stderr.take().context("no stderr")?));
        Ok(Watcher {
            child,
            stdout,
            stderr,
        })
    }

    fn wait_stdout_lines(&mut self, n: usize, within: Duration) -> Result<()> {
        let end = Instant::now() + within;
        for _ in 0..n {
            let left = end.saturating_duration_since(Instant::now());
            self.stdout
                .recv_timeout(left)
                .context("the watcher's first pass did not finish")?;
        }
        Ok(())
    }

    /// When the first stderr line containing `text` arrived.
    fn wait_stderr(&mut self, text: &str, within: Duration) -> Result<Instant> {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let (at, line) = self
                .stderr
                .recv_timeout(left)
                .with_context(|| format!("the watcher never said {text:?}"))?;
            tracing::debug!("watcher: {line}");
            if line.contains(text) {
                return Ok(at);
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `minqing visit log` on the watched home, again while the watcher has
/// the store open for a moment.
fn log_visit(bin: &Path, home: &Path, household: &str, resident: &str) -> Result<()> {
    for _ in 0..100 {
        let out = homes::command(bin)?
            .arg("--home")
            .arg(home)
            .args([
                "visit",
                "log",
                "--household",
                household,
                "--resident",
                resident,
            ])
            .args(["--kind", "普遍走访", "--note", "OUT 断网时入户走访"])
            .env_remove("MINQING_HOME")
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("another minqing process is using") {
            bail!("minqing visit log failed: {}", err.trim());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the watched store stayed busy through 100 attempts")
}
