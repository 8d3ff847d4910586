//! `cargo xtask fuzz`: builds the libFuzzer targets of `crates/minqing-fuzz` on
//! the stable toolchain (LLVM's SanitizerCoverage pass through `-Cpasses` and
//! `-Cllvm-args`, no `-Z` flag) and runs them, one after another.
//!
//! The corpus kept in the tree (`crates/minqing-fuzz/corpus/<target>/`) is read,
//! never written, during a run: new inputs go to `target/fuzz/corpus/<target>/`,
//! and `--merge` folds them back, minimised, into the tree. Crashing inputs are
//! written straight to `crates/minqing-fuzz/crashers/<target>/`, where the
//! replay test (`cargo test -p minqing-fuzz`) picks them up.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{cargo_env, root};

/// Every target, with the longest input the fuzzer may make for it.
const TARGETS: [(&str, usize); 5] = [
    ("frame", 8192),
    ("relay_session", 16384),
    ("sync_message", 16384),
    ("bundle", 8192),
    ("enrol", 8192),
];

/// The coverage instrumentation, as cargo-fuzz passes it, minus its `-Z` flags:
/// edge coverage with inline 8-bit counters and a PC table (libFuzzer's
/// `cov:`/`ft:`), comparison tracing (so it learns magic numbers), stack depth;
/// debug assertions and overflow checks on, as in `cargo test`.
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions -Coverflow-checks --cfg fuzzing";

/// libFuzzer's memory limits: a single allocation above `malloc_limit_mb`, or
/// a process above `rss_limit_mb`, is reported as a crash (bounded allocations).
const MALLOC_LIMIT_MB: u32 = 512;
const RSS_LIMIT_MB: u32 = 2048;

fn usage() -> String {
    "usage: cargo xtask fuzz [TARGET|all] [--runs N | --seconds S] [--merge] [--seeds] [-- LIBFUZZER_ARGS]\n\
     targets: frame, relay_session, sync_message, bundle, enrol (default: all)\n\
     --runs N      stop each target after N executions\n\
     --seconds S   stop each target after S seconds (default 60)\n\
     --merge       fold new coverage into crates/minqing-fuzz/corpus/<target>, minimised\n\
     --seeds       first rewrite the in-tree corpus from the seed generator\n\
     --build-only  build the fuzz binaries and stop"
        .to_owned()
}

/// A target's final figures, from libFuzzer's output.
#[derive(Debug, Default)]
struct Figures {
    execs: u64,
    exec_per_sec: u64,
    cov: u64,
    ft: u64,
    corpus: u64,
    peak_rss_mb: u64,
    seconds: f64,
    crashed: bool,
}

/// `cargo xtask fuzz ARGS`.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut targets: Vec<&str> = Vec::new();
    let mut limit = vec!["-max_total_time=60".to_owned()];
    let (mut merge, mut seeds, mut build_only) = (false, false, false);
    let mut extra: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" | "--seconds" => {
                let v = it
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| format!("{a} needs a number\n{}", usage()))?;
                limit = vec![if a == "--runs" {
                    format!("-runs={v}")
                } else {
                    format!("-max_total_time={v}")
                }];
            }
            "--merge" => merge = true,
            "--seeds" => seeds = true,
            "--build-only" => build_only = true,
            "--" => extra.extend(it.by_ref().cloned()),
            "all" => targets.extend(TARGETS.iter().map(|t| t.0)),
            name => match TARGETS.iter().find(|t| t.0 == name) {
                Some(t) => targets.push(t.0),
                None => return Err(format!("unknown fuzz target {name:?}\n{}", usage())),
            },
        }
    }
    if targets.is_empty() {
        targets.extend(TARGETS.iter().map(|t| t.0));
    }
    let root = root();
    let crate_dir = root.join("crates/minqing-fuzz");
    if seeds {
        let out = crate_dir.join("corpus");
        let out = out.to_string_lossy();
        let mut a = vec![
            "run",
            "-p",
            "minqing-fuzz",
            "--bin",
            "minqing-fuzz-seeds",
            "--",
            &out,
        ];
        a.extend(targets.iter().copied());
        crate::cargo(&a)?;
    }
    let bin_dir = build(&root)?;
    if build_only {
        return Ok(());
    }
    let mut report = Vec::new();
    for name in &targets {
        let max_len = TARGETS.iter().find(|t| t.0 == *name).map_or(4096, |t| t.1);
        let figures = run_target(&bin_dir, &root, &crate_dir, name, max_len, &limit, &extra)?;
        if merge && !figures.crashed {
            merge_corpus(&bin_dir, &root, &crate_dir, name)?;
        }
        report.push((*name, figures));
    }
    eprintln!();
    eprintln!(
        "| target | executions | seconds | exec/s | cov | ft | corpus | peak RSS MB | crashes |"
    );
    eprintln!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut total = 0;
    for (name, f) in &report {
        total += f.execs;
        eprintln!(
            "| {name} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            f.execs,
            f.seconds,
            f.exec_per_sec,
            f.cov,
            f.ft,
            f.corpus,
            f.peak_rss_mb,
            u8::from(f.crashed)
        );
    }
    eprintln!("total executions: {total}");
    let crashed: Vec<&str> = report.iter().filter(|r| r.1.crashed).map(|r| r.0).collect();
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "crash in {}: the input is in crates/minqing-fuzz/crashers/<target>/; \
             `cargo test -p minqing-fuzz` replays it",
            crashed.join(", ")
        ))
    }
}

/// Builds the instrumented binaries into `target/fuzz`; returns their folder.
fn build(root: &Path) -> Result<PathBuf, String> {
    let triple = host_triple()?;
    let target_dir = target_dir(root).join("fuzz");
    let td = target_dir.to_string_lossy().into_owned();
    let bins: Vec<String> = TARGETS.iter().map(|t| format!("fuzz_{}", t.0)).collect();
    let mut args = vec![
        "build",
        "--release",
        "-p",
        "minqing-fuzz",
        "--features",
        "libfuzzer",
        "--target",
        &triple,
        "--target-dir",
        &td,
    ];
    // Only the libFuzzer binaries: the seed generator has no libFuzzer to link.
    for b in &bins {
        args.extend(["--bin", b.as_str()]);
    }
    // `--target` keeps the flags off build scripts and proc macros.
    cargo_env(&args, &[("RUSTFLAGS", RUSTFLAGS)])?;
    Ok(target_dir.join(&triple).join("release"))
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV names no host".to_owned())
}

fn run_target(
    bin_dir: &Path,
    root: &Path,
    crate_dir: &Path,
    name: &str,
    max_len: usize,
    limit: &[String],
    extra: &[String],
) -> Result<Figures, String> {
    let work = target_dir(root).join("fuzz/corpus").join(name);
    let crashers = crate_dir.join("crashers").join(name);
    for d in [&work, &crashers] {
        std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    let bin = bin_dir.join(format!("fuzz_{name}"));
    let mut cmd = Command::new(&bin);
    cmd.arg(format!("-artifact_prefix={}/", crashers.display()))
        .arg(format!("-max_len={max_len}"))
        .arg(format!("-malloc_limit_mb={MALLOC_LIMIT_MB}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg("-timeout=20")
        .arg("-print_final_stats=1")
        .args(limit)
        .args(extra)
        .arg(&work)
        .arg(crate_dir.join("corpus").join(name))
        .stderr(Stdio::piped());
    eprintln!("$ {}", describe(&cmd));
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let mut f = Figures::default();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("{line}");
            parse_line(&line, &mut f);
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {name}: {e}"))?;
    f.seconds = started.elapsed().as_secs_f64();
    f.crashed = !status.success();
    Ok(f)
}

/// Picks the figures out of libFuzzer's status lines
/// (`#1234 NEW cov: 100 ft: 200 corp: 10/1Kb ... exec/s: 99 rss: 40Mb`)
/// and final stats (`stat::number_of_executed_units: N`).
fn parse_line(line: &str, f: &mut Figures) {
    let num = |s: &str| s.trim().trim_end_matches("Mb").parse::<u64>().ok();
    if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
        f.execs = num(v).unwrap_or(f.execs);
    } else if let Some(v) = line.strip_prefix("stat::average_exec_per_sec:") {
        f.exec_per_sec = num(v).unwrap_or(f.exec_per_sec);
    } else if let Some(v) = line.strip_prefix("stat::peak_rss_mb:") {
        f.peak_rss_mb = num(v).unwrap_or(f.peak_rss_mb);
    } else if line.starts_with('#') {
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(2) {
            match w[0] {
                "cov:" => f.cov = num(w[1]).unwrap_or(f.cov),
                "ft:" => f.ft = num(w[1]).unwrap_or(f.ft),
                "corp:" => {
                    f.corpus = w[1]
                        .split('/')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(f.corpus)
                }
                _ => {}
            }
        }
    }
}

/// Minimises the in-tree corpus and the work corpus into a fresh folder
/// (libFuzzer `-set_cover_merge=1 -use_counters=0`: a small set of inputs that keeps every edge), then
/// puts that folder in the tree's place.
fn merge_corpus(bin_dir: &Path, root: &Path, crate_dir: &Path, name: &str) -> Result<(), String> {
    let tree = crate_dir.join("corpus").join(name);
    let work = target_dir(root).join("fuzz/corpus").join(name);
    let fresh = target_dir(root).join("fuzz/merged").join(name);
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).map_err(|e| format!("creating {}: {e}", fresh.display()))?;
    let max_len = TARGETS.iter().find(|t| t.0 == name).map_or(4096, |t| t.1);
    let mut cmd = Command::new(bin_dir.join(format!("fuzz_{name}")));
    // Edges only (no hit counters): a much smaller set for the tree; the work
    // corpus under target/ keeps everything for the next run.
    cmd.arg("-set_cover_merge=1")
        .arg("-use_counters=0")
        .arg(format!("-max_len={max_len}"))
        .arg(format!("-malloc_limit_mb={MALLOC_LIMIT_MB}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(&fresh)
        .arg(&tree)
        .arg(&work);
    eprintln!("$ {}", describe(&cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run the merge for {name}: {e}"))?;
    if !status.success() {
        return Err(format!("merging the {name} corpus failed ({status})"));
    }
    let kept = std::fs::read_dir(&fresh)
        .map_err(|e| format!("reading {}: {e}", fresh.display()))?
        .count();
    if kept == 0 {
        return Err(format!(
            "merging the {name} corpus kept nothing; the tree is unchanged"
        ));
    }
    std::fs::remove_dir_all(&tree).map_err(|e| format!("removing {}: {e}", tree.display()))?;
    std::fs::rename(&fresh, &tree)
        .or_else(|_| copy_dir(&fresh, &tree))
        .map_err(|e| format!("moving the merged corpus into {}: {e}", tree.display()))?;
    eprintln!("{name}: {kept} inputs kept in {}", tree.display());
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        std::fs::copy(e.path(), to.join(e.file_name()))?;
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
