//! C1: the cadre's everyday commands on the device profile (4 full villages),
//! timed as the cadre waits for them — exec of `minqing` to its exit — with
//! no local service and with `minqing app` running (the command then goes
//! through it); and the service's own answer times for the 今日 page, a
//! resident search, a resident page and a visit post (issue 13's latency
//! must-show, issue 15 item 3).
//!
//! Each of `runs` runs takes `samples` of every command, commands
//! interleaved; a row's values are the runs' p50 (or p99), so the figure is
//! their median with min and max. One warm-up round of each command, after
//! the home was copied, is left out (it builds the village index, as the
//! first command after a sync does) and reported on its own row.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use minqing_model::Village;
use minqing_sync::{DocId, Storage};

use super::Ctx;
use crate::harness::percentile;
use crate::homes::{self, copy_dir, open_store};
use crate::report::{Report, Target, Unit};

/// Per figure: the runs' p50s and p99s (ms).
type Percentiles = (Vec<f64>, Vec<f64>);

/// Records of the home the commands name.
pub(super) struct Pick {
    village: String,
    pub(super) household: String,
    pub(super) resident: String,
    resident_name: String,
    month: String,
}

/// One everyday command: its label, arguments and target without / with the service (ms).
struct Cmd {
    label: String,
    args: Vec<String>,
    alone: f64,
    through: f64,
}

/// Runs C1 and adds its rows.
pub fn run(ctx: &Ctx<'_>, report: &mut Report) -> Result<()> {
    let home = ctx.scratch.join("c1-device");
    copy_dir(&ctx.data.join("device"), &home)?;
    let pick = pick(&home.join("store"), &ctx.m.device_villages)?;
    let cmds = commands(&pick);
    let runs = ctx.opts.runs;
    let samples = if ctx.opts.quick { 3 } else { 20 };

    // Without the service. The first round builds the index and the views
    // kept on disk (reported apart) and unlocks once: later commands find
    // the data key in the login's key cache (docs/security.md) while it lasts.
    let first: Vec<f64> = cmds
        .iter()
        .map(|c| minqing(ctx, &home, &c.args, Unlock::Cached))
        .collect::<Result<_>>()?;
    let cached = key_cache_works(ctx, &home)?;
    let alone = measure(ctx, &home, &cmds, runs, samples, Unlock::Cached)?;
    let how = if cached {
        "the data key from the login's key cache (unlocked by the first round)"
    } else {
        "the kernel refused the key cache here, so argon2id ran every time"
    };
    for ((c, (p50, p99)), first) in cmds.iter().zip(&alone).zip(&first) {
        report
            .add(
                "C1",
                format!("`minqing {}`, no service: p50", c.label),
                Unit::Ms,
                p50.clone(),
            )
            .note(format!("exec to exit, new process each time; {how}"));
        report
            .add("C1", format!("`minqing {}`, no service: p99", c.label), Unit::Ms, p99.clone())
            .target(Target::at_most(c.alone, format!("≤ {} ms", c.alone)))
            .note(format!(
                "{samples} samples per run; first run on the fresh copy (village index and views built; the round's first command unlocked with argon2id): {first:.0} ms"
            ));
    }
    // The same with no key cache: a command after 15 idle minutes or `minqing lock`.
    let locked = measure(ctx, &home, &cmds, runs, samples, Unlock::Passphrase)?;
    for (c, (p50, p99)) in cmds.iter().zip(&locked) {
        report
            .add(
                "C1",
                format!("`minqing {}`, no service, locked: p50", c.label),
                Unit::Ms,
                p50.clone(),
            )
            .note("MINQING_KEY_CACHE=off: argon2id (m = 64 MiB, t = 3) in every process");
        report.add(
            "C1",
            format!("`minqing {}`, no service, locked: p99", c.label),
            Unit::Ms,
            p99.clone(),
        );
    }

    // With the service: every command goes through it.
    let app = App::start(ctx, &home)?;
    for c in &cmds {
        minqing(ctx, &home, &c.args, Unlock::Cached)?;
    }
    let through = measure(ctx, &home, &cmds, runs, samples, Unlock::Cached)?;
    for (c, (p50, p99)) in cmds.iter().zip(&through) {
        report
            .add(
                "C1",
                format!("`minqing {}`, through `minqing app`: p50", c.label),
                Unit::Ms,
                p50.clone(),
            )
            .note("exec to exit; the running service unlocked once and keeps the villages loaded");
        report
            .add(
                "C1",
                format!("`minqing {}`, through `minqing app`: p99", c.label),
                Unit::Ms,
                p99.clone(),
            )
            .target(Target::at_most(c.through, format!("≤ {} ms", c.through)));
    }
    let pages = pages(&app, &pick, runs, samples)?;
    for (label, (p50, p99)) in pages {
        report
            .add("C1", format!("`minqing app` {label}: p50"), Unit::Ms, p50)
            .note(
                "one HTTP/1.1 request on 127.0.0.1, connect to last byte (server time + loopback)",
            );
        report
            .add("C1", format!("`minqing app` {label}: p99"), Unit::Ms, p99)
            .target(Target::at_most(100.0, "≤ 100 ms"));
    }
    let rss = app.stop()?;
    // The key the first round cached goes with the run.
    homes::command(&ctx.bins.minqing)?
        .arg("--home")
        .arg(&home)
        .arg("lock")
        .output()?;
    if let Some(kib) = rss {
        report
            .add(
                "C1",
                "peak RSS of `minqing app` (4 villages kept)",
                Unit::MiB,
                vec![kib / 1024.0],
            )
            .note("VmHWM at the end of C1");
    }
    Ok(())
}

/// The commands timed, with their targets.
fn commands(p: &Pick) -> Vec<Cmd> {
    let cmd = |label: &str, args: &[&str], alone: f64| Cmd {
        label: label.to_owned(),
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        alone,
        through: 100.0,
    };
    vec![
        cmd(
            "resident show ID --json",
            &["resident", "show", &p.resident, "--json"],
            150.0,
        ),
        cmd(
            "visit log --household H --resident R",
            &[
                "visit",
                "log",
                "--household",
                &p.household,
                "--resident",
                &p.resident,
                "--kind",
                "普遍走访",
                "--note",
                "C1 入户走访，了解近况",
            ],
            150.0,
        ),
        cmd(
            "demand list --overdue --village V --json",
            &[
                "demand",
                "list",
                "--overdue",
                "--village",
                &p.village,
                "--json",
            ],
            150.0,
        ),
        cmd(
            "visit list --month M --village V --json",
            &[
                "visit",
                "list",
                "--month",
                &p.month,
                "--village",
                &p.village,
                "--json",
            ],
            150.0,
        ),
        cmd(
            "report monthly --month M --json",
            &["report", "monthly", "--month", &p.month, "--json"],
            500.0,
        ),
    ]
}

/// `runs` runs of `samples` rounds of every command: per command, the runs'
/// p50s and p99s (ms).
fn measure(
    ctx: &Ctx<'_>,
    home: &Path,
    cmds: &[Cmd],
    runs: usize,
    samples: usize,
    unlock: Unlock,
) -> Result<Vec<Percentiles>> {
    let mut out = vec![(Vec::new(), Vec::new()); cmds.len()];
    for _ in 0..runs {
        let mut ms = vec![Vec::new(); cmds.len()];
        for _ in 0..samples {
            for (i, c) in cmds.iter().enumerate() {
                ms[i].push(minqing(ctx, home, &c.args, unlock)?);
            }
        }
        for (o, m) in out.iter_mut().zip(&ms) {
            o.0.push(percentile(m, 50.0));
            o.1.push(percentile(m, 99.0));
        }
    }
    Ok(out)
}

/// How a command without the service gets the data key.
#[derive(Clone, Copy)]
enum Unlock {
    /// From the login's key cache when it holds it (the default).
    Cached,
    /// From the passphrase, argon2id every time (`MINQING_KEY_CACHE=off`).
    Passphrase,
}

/// One `minqing --home HOME ARGS…`, exec to exit (ms); fails if it does.
fn minqing(ctx: &Ctx<'_>, home: &Path, args: &[String], unlock: Unlock) -> Result<f64> {
    let mut cmd = homes::command(&ctx.bins.minqing)?;
    if let Unlock::Cached = unlock {
        cmd.env_remove("MINQING_KEY_CACHE");
    }
    cmd.arg("--home").arg(home).args(args);
    let t = Instant::now();
    let out = cmd.output()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        bail!(
            "minqing {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(ms)
}

/// Whether a command now finds the data key without the passphrase: run
/// with a passphrase file that does not exist, it succeeds only from the cache.
fn key_cache_works(ctx: &Ctx<'_>, home: &Path) -> Result<bool> {
    let out = homes::command(&ctx.bins.minqing)?
        .env_remove("MINQING_KEY_CACHE")
        .env(
            "MINQING_PASSPHRASE_FILE",
            home.join("no-such-passphrase-file"),
        )
        .arg("--home")
        .arg(home)
        .args(["village", "list", "--json"])
        .stdin(Stdio::null())
        .output()?;
    Ok(out.status.success())
}

/// Finds what the commands name in the first device village: a resident
/// with a household, and the month with the most visits.
pub(super) fn pick(store_dir: &Path, villages: &[String]) -> Result<Pick> {
    let id = villages
        .first()
        .context("the device profile has no village")?;
    let store = open_store(store_dir)?;
    let doc = DocId::new(id)?;
    let bytes = store
        .load(&doc)?
        .context("the device home lacks its village")?;
    let village = Village::load(doc, &bytes)?;
    drop(store);
    let resident = village
        .residents()
        .into_iter()
        .find(|r| !r.household_id.is_empty())
        .context("the village has no resident")?;
    let mut months: BTreeMap<String, usize> = BTreeMap::new();
    for v in village.visits() {
        if let Some(m) = v.date.get(..7) {
            *months.entry(m.to_owned()).or_default() += 1;
        }
    }
    let month = months
        .into_iter()
        .max_by_key(|(m, n)| (*n, m.clone()))
        .map(|(m, _)| m)
        .context("the village has no visits")?;
    Ok(Pick {
        village: id.clone(),
        household: resident.household_id.clone(),
        resident: resident.id.clone(),
        resident_name: resident.name.clone(),
        month,
    })
}

/// A running `minqing app` for the bench's home.
struct App {
    child: Child,
    port: u16,
    secret: String,
}

impl App {
    fn start(ctx: &Ctx<'_>, home: &Path) -> Result<App> {
        let discovery = home.join("app.json");
        let _ = std::fs::remove_file(&discovery);
        let child = homes::command(&ctx.bins.minqing)?
            .arg("--home")
            .arg(home)
            .args(["app", "--no-browser", "--timeout", "2"])
            .env("MINQING_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start minqing app")?;
        let mut app = App {
            child,
            port: 0,
            secret: String::new(),
        };
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(raw) = std::fs::read(&discovery)
                && let Ok(d) = serde_json::from_slice::<serde_json::Value>(&raw)
                && let (Some(port), Some(secret)) = (d["port"].as_u64(), d["secret"].as_str())
            {
                app.port = u16::try_from(port)?;
                app.secret = secret.to_owned();
                return Ok(app);
            }
            if let Ok(Some(status)) = app.child.try_wait() {
                bail!("minqing app exited before it listened ({status})");
            }
            if Instant::now() > until {
                bail!(
                    "minqing app did not write {} within 60 s",
                    discovery.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One request; its status, body and time (ms).
    fn request(
        &self,
        method: &str,
        path: &str,
        body: &str,
        csrf: &str,
    ) -> Result<(u16, String, f64)> {
        let t = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {secret}\r\n\
             X-CSRF-Token: {csrf}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {len}\r\nConnection: close\r\n\r\n",
            port = self.port,
            secret = self.secret,
            len = body.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(body.as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("the service's answer has no status line")?;
        Ok((status, text, ms))
    }

    /// Stops it (SIGTERM: it flushes and exits); its peak RSS in KiB.
    fn stop(mut self) -> Result<Option<f64>> {
        let rss = crate::harness::vm_hwm(self.child.id()).map(|b| b as f64 / 1024.0);
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("minqing app stopped with {status}");
                }
                return Ok(rss);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("minqing app did not stop within 20 s of SIGTERM")
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Percent-encodes a query or form value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the hidden `csrf` input in a page.
fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\"")?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let value = tag.split("value=\"").nth(1)?.split('"').next()?;
    Some(value.to_owned())
}

/// The pages' answer times: per page, the runs' p50s and p99s (ms).
fn pages(app: &App, p: &Pick, runs: usize, samples: usize) -> Result<Vec<(String, Percentiles)>> {
    // The CSRF token of this launch, from a form.
    let path = format!("/visit/new?household={}", p.household);
    let (status, form, _) = app.request("GET", &path, "", "")?;
    anyhow::ensure!(status == 200, "GET {path} answered {status}");
    let csrf = csrf_of(&form).context("no CSRF field in the visit form")?;
    let search = format!("/search?q={}", encode(&p.resident_name));
    let resident = format!("/resident/{}", p.resident);
    let visit = format!(
        "household={}&resident={}&kind={}&note={}",
        p.household,
        p.resident,
        encode("普遍走访"),
        encode("C1 网页记一条民情日记")
    );
    let asks: Vec<(String, &str, String, String, u16)> = vec![
        (
            "今日 page (GET /)".into(),
            "GET",
            "/".into(),
            String::new(),
            200,
        ),
        (
            "resident search by name (GET /search)".into(),
            "GET",
            search,
            String::new(),
            200,
        ),
        (
            "resident page (GET /resident/ID)".into(),
            "GET",
            resident,
            String::new(),
            200,
        ),
        (
            "visit post (POST /visits)".into(),
            "POST",
            "/visits".into(),
            visit,
            303,
        ),
    ];
    for (label, method, path, body, want) in &asks {
        let (status, text, _) = app.request(method, path, body, &csrf)?;
        if status != *want {
            bail!(
                "{label}: answered {status}, expected {want}: {}",
                text.chars().take(300).collect::<String>()
            );
        }
    }
    let mut out: Vec<(String, Percentiles)> = asks
        .iter()
        .map(|(l, ..)| (l.clone(), (Vec::new(), Vec::new())))
        .collect();
    for _ in 0..runs {
        let mut ms = vec![Vec::new(); asks.len()];
        for _ in 0..samples {
            for (i, (label, method, path, body, want)) in asks.iter().enumerate() {
                let (status, _, t) = app.request(method, path, body, &csrf)?;
                anyhow::ensure!(status == *want, "{label}: answered {status}");
                ms[i].push(t);
            }
        }
        for (o, m) in out.iter_mut().zip(&ms) {
            o.1.0.push(percentile(m, 50.0));
            o.1.1.push(percentile(m, 99.0));
        }
    }
    Ok(out)
}
