//! Renders a [`Report`] as the markdown block of docs/benchmarks.md (between
//! `<!-- bench:begin -->` and `<!-- bench:end -->`) or of the quick and
//! `--only` reports under target/: the header (command, commit, machine,
//! data, how), the table of every figure and the table of targets with their
//! verdicts.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::datagen::Manifest;
use crate::harness::summary;
use crate::report::{Report, Row, Verdict};

/// Marks the start of the generated block.
pub const BEGIN: &str = "<!-- bench:begin -->";
/// Marks its end.
pub const END: &str = "<!-- bench:end -->";

/// What the header says about the run itself.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `--quick`.
    pub quick: bool,
    /// The scenario groups of `--only` (empty: all).
    pub only: Vec<String>,
    /// Seed of the data set.
    pub seed: u64,
    /// Runs per figure.
    pub runs: usize,
    /// Runs of R1.
    pub r1_runs: usize,
    /// Runs of W1.
    pub w1_runs: usize,
    /// Wall time of the whole run.
    pub took: Duration,
    /// The 1-minute load average when the run started and when it ended
    /// (other work on the machine shows in the tails).
    pub load: (Option<f64>, Option<f64>),
}

/// The 1-minute load average (Linux), if it can be read.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The whole block (without the markers).
pub fn render(run: &RunInfo, m: &Manifest, report: &Report) -> Result<String> {
    let mut s = String::new();
    header(&mut s, run, m)?;
    for n in &report.notes {
        writeln!(s, "- {n}")?;
    }
    writeln!(s)?;
    figures(&mut s, report)?;
    writeln!(s)?;
    targets(&mut s, report)?;
    writeln!(s)?;
    Ok(s)
}

/// The block with its markers, as the quick and `--only` reports hold it.
pub fn standalone(text: &str) -> String {
    format!("{BEGIN}\n{text}{END}\n")
}

/// Replaces what lies between the markers in `path` (or appends the block).
pub fn splice(path: &Path, text: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n{text}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => format!("{}{block}{}", &old[..b], &old[e + END.len()..]),
        _ if old.trim().is_empty() => format!("# Benchmarks\n\n{block}\n"),
        _ => format!("{}\n\n{block}\n", old.trim_end()),
    };
    std::fs::write(path, new)?;
    Ok(())
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// "2 × AMD EPYC, 23.5 GiB RAM, Linux …; rustc 1.95.0".
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|n| n.trim().to_owned())
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let rustc = sh("rustc", &["--version"]);
    format!(
        "{} × {cpu}, {:.1} GiB RAM, {}; rustc {}",
        sh("nproc", &[]),
        mem_kib as f64 / 1_048_576.0,
        sh("uname", &["-sr"]),
        rustc.split_whitespace().nth(1).unwrap_or("")
    )
}

/// The command line that reproduces the run.
fn command(run: &RunInfo) -> String {
    let mut c = String::from("cargo xtask bench");
    if run.quick {
        c.push_str(" --quick");
    }
    if !run.only.is_empty() {
        write!(c, " --only {}", run.only.join(",")).unwrap_or(());
    }
    c
}

fn header(s: &mut String, run: &RunInfo, m: &Manifest) -> Result<()> {
    let quick = if run.quick {
        " --quick (tiny sizes; not a measurement)"
    } else {
        ""
    };
    writeln!(s, "## Measured by `cargo xtask bench`{quick}\n")?;
    writeln!(
        s,
        "- **Command**: `{}` (seed {}, {} runs per figure unless noted; W1 {} runs; R1 {} runs)",
        command(run),
        run.seed,
        run.runs,
        run.w1_runs,
        run.r1_runs
    )?;
    let dirty = !sh("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    writeln!(
        s,
        "- **Commit**: `{}`{}",
        sh("git", &["rev-parse", "--short", "HEAD"]),
        if dirty {
            " (with uncommitted changes in the tree)"
        } else {
            ""
        }
    )?;
    writeln!(s, "- **Machine**: {}", machine())?;
    writeln!(
        s,
        "- **Data**: profile `{}` seed {}: {} villages on the relay; the laptop holds {} villages with {} residents, {} visits, {} demands; many-village laptop: {} villages",
        m.profile,
        m.seed,
        m.all_villages.len(),
        m.device_villages.len(),
        m.device_counts[0],
        m.device_counts[1],
        m.device_counts[2],
        m.many_villages.len()
    )?;
    let load = |l: Option<f64>| l.map_or_else(|| "–".to_owned(), |l| format!("{l:.1}"));
    writeln!(
        s,
        "- **Took**: {:.0} s; 1-minute load average {} at the start, {} at the end",
        run.took.as_secs_f64(),
        load(run.load.0),
        load(run.load.1)
    )?;
    writeln!(s, "- **How**: {HOW}")?;
    let amr_runs = if run.quick { run.runs.max(1) } else { run.runs };
    writeln!(
        s,
        "- **automerge-repo baseline** {AMR_HOW_1}{amr_runs}{AMR_HOW_2}"
    )?;
    Ok(())
}

fn figures(s: &mut String, report: &Report) -> Result<()> {
    writeln!(
        s,
        "| id | figure | median | min | max | unit | target | met | notes |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|")?;
    for r in &report.rows {
        let (med, min, max) = summary(&r.values);
        let met = match r.verdict() {
            Verdict::NoTarget => "",
            Verdict::Met => "yes",
            Verdict::Missed { .. } => "**no**",
            Verdict::NotMeasured => "not measured",
        };
        writeln!(
            s,
            "| {} | {} | **{}** | {} | {} | {} | {} | {met} | {} |",
            r.id,
            r.what,
            r.unit.format(med),
            r.unit.format(min),
            r.unit.format(max),
            r.unit.as_str(),
            r.target.as_ref().map_or("", |t| t.label.as_str()),
            notes(r)
        )?;
    }
    Ok(())
}

/// The notes column: the row's note, then how far a target was missed.
fn notes(r: &Row) -> String {
    match (r.verdict(), r.note.is_empty()) {
        (Verdict::Missed { by: Some(by) }, true) => format!("missed by {by:.2}× the target"),
        (Verdict::Missed { by: Some(by) }, false) => {
            format!("{}; missed by {by:.2}× the target", r.note)
        }
        _ => r.note.clone(),
    }
}

fn targets(s: &mut String, report: &Report) -> Result<()> {
    writeln!(s, "### Targets, computed from the table above\n")?;
    writeln!(s, "| id | figure | measured (median) | target | verdict |")?;
    writeln!(s, "|---|---|---|---|---|")?;
    for r in &report.rows {
        let Some(t) = &r.target else { continue };
        let verdict = match r.verdict() {
            Verdict::Met => "met".to_owned(),
            Verdict::Missed { by: Some(by) } => format!("**missed by {by:.2}× the target**"),
            Verdict::Missed { by: None } => "**missed**".to_owned(),
            Verdict::NotMeasured | Verdict::NoTarget => "**not measured**".to_owned(),
        };
        writeln!(
            s,
            "| {} | {} | {} {} | {} | {verdict} |",
            r.id,
            r.what.trim(),
            r.unit.format(r.median()),
            r.unit.as_str(),
            t.label,
        )?;
    }
    Ok(())
}

const HOW: &str = "sync times run from the start of the QUIC connect to the session's outcome (every village settled and flushed on both sides), summed over sessions; closing the connection afterwards (the relay's end of stream, the QUIC close) is not timed, as `minqing sync` prints its result before it closes and automerge-repo's clock stops at the same point (naive: one connection and session per village, one after another, no sync state on either side; each village is pushed by a device enrolled for that village alone, which also authored that village's offline work, as the relay accepts a change only from the device whose actor wrote it); a sync counts only if the relay accepted every village (no refusal); the device is in the bench process, the relay is the real `minqing-relay serve` process, the link is the UDP shaper (`minqing_testkit::shaper`) with the stated RTT. Bytes on the wire are UDP payload bytes both ways at the shaper (QUIC, TLS and ACKs included); \"after the handshake\" leaves out QUIC long-header packets (Initial and Handshake: the TLS handshake with both certificates, Initial padding, their ACKs), which the shaper tells apart by parsing each datagram's packet headers. The QUIC transport as configured in `minqing-net`: initial congestion window 32 packets, no path-MTU probing (datagrams of 1,200 B), no TLS session ticket for a one-shot `minqing sync` (it asks for none; `minqing app` resumes with one: docs/sync.md). Round trips are counted on the sans-IO core in lockstep (each side answers a whole flight at once) on copies of the same stores taken just before the QUIC run; the naive count adds one handshake per village after the first. The naive baseline over a delayed link runs for the 4-village laptop only: with 100 villages at 300 ms RTT it took about 20 s per village (far more than its round trips explain; not investigated yet), over half an hour per run. W1 is the median over its runs of each run's figure (p50, p99, ratio); each run writes fresh copies of the same villages, plain and encrypted lanes and the fsync baseline in a new random order every round.";

const AMR_HOW_1: &str = "(`bench/automerge-repo`: npm `@automerge/automerge-repo` 2.5.6 with websocket and nodefs storage, on this machine's Node, 127.0.0.1): fixtures are exported from the same data as the minqing runs: each village as `<village>.automerge` (`save()` of the relay's copy before the offline day) and the offline day of the first minqing run (same seed) as `<village>.changes` (`save_after(heads before the day)` of the device's copy: the bytes minqing's S2 pushes). `server.mjs` imports them; each scenario is one `client.mjs` process through a `TcpShaper` (`minqing_testkit`) with the same one-way delay as minqing's UDP shaper; a fresh copy of the server's and the client's storage (as left by an `initial` sync) for every `incremental`/`noop` run; one warm-up run discarded, then ";

const AMR_HOW_2: &str = " runs. Time is the client's own span: from adding the WebSocket adapter (TCP connect, HTTP upgrade) until, for every document, the heads the server reports in the sync protocol equal the client's heads (the device knows the relay holds its changes; the same stopping point as minqing's session outcome), plus the client's `repo.flush()`. Bytes are TCP stream bytes both ways at the shaper (HTTP upgrade and WebSocket framing included). Differences in the work: minqing's S2 also pulls 5 teammates' visits per worked village from the relay, automerge-repo's only pushes; automerge-repo's server acknowledges from memory and writes to disk up to 100 ms later, minqing's relay acknowledges after its flush. automerge-repo 2.5.6 re-sends whole documents in `incremental` (it throttles sync-state saves per peer, not per document, so some documents' sync states never reach disk; see testing.md): that is its real behaviour. Ratios are automerge-repo median ÷ minqing median.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Target, Unit};

    #[test]
    fn verdicts_and_misses_are_rendered_from_the_typed_verdict() {
        let mut r = Report::default();
        r.add("W1", "p99", Unit::Ms, vec![12.0, 11.0, 13.0])
            .target(Target::at_most(10.0, "≤ 10 ms"))
            .note("plain 1 ms");
        r.add("R1", "errors", Unit::Count, vec![0.0, 1.0])
            .target(Target::at_most(0.0, "0").every_run());
        r.add("W1", "  p50", Unit::Ms, vec![0.4]);
        r.add("S3", "bytes", Unit::B, vec![])
            .target(Target::at_most(4096.0, "≤ 4 KB"));
        let mut s = String::new();
        figures(&mut s, &r).unwrap();
        assert!(s.contains("| W1 | p99 | **12** | 11 | 13 | ms | ≤ 10 ms | **no** | plain 1 ms; missed by 1.20× the target |"), "{s}");
        assert!(
            s.contains("| W1 |   p50 | **0.40** | 0.40 | 0.40 | ms |  |  |  |"),
            "{s}"
        );
        let mut s = String::new();
        targets(&mut s, &r).unwrap();
        assert!(
            s.contains("| W1 | p99 | 12 ms | ≤ 10 ms | **missed by 1.20× the target** |"),
            "{s}"
        );
        assert!(
            s.contains("| R1 | errors | 0 count | 0 | **missed** |"),
            "{s}"
        );
        assert!(
            s.contains("| S3 | bytes | – B | ≤ 4 KB | **not measured** |"),
            "{s}"
        );
        assert!(
            !s.contains("p50"),
            "a row without a target is not in the targets table: {s}"
        );
    }

    #[test]
    fn splice_replaces_only_the_block() {
        let dir = std::env::temp_dir().join(format!("minqing-bench-splice-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("b.md");
        std::fs::write(&p, format!("head\n{BEGIN}\nold\n{END}\ntail\n")).unwrap();
        splice(&p, "new\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("head\n{BEGIN}\nnew\n{END}\ntail\n")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
