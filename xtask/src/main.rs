//! Project automation: `cargo xtask ci` (what CI runs), `cargo xtask tidy` (the
//! architecture's boundaries), `cargo xtask demo` (the main job),
//! `cargo xtask browser` (the browser tests, also run by `ci`),
//! `cargo xtask gen-data` and `cargo xtask bench` (the benchmark harness in
//! `crates/minqing-bench`, run in release mode), `cargo xtask fuzz` (the
//! libFuzzer targets of `crates/minqing-fuzz`).
//!
//! xtask depends on nothing in the workspace so that it compiles in seconds; it
//! drives the workspace through `cargo` and the built binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod demo;
mod fuzz;
mod json;
mod tidy;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("demo") => demo::run(&root()),
        Some("gen-data") => bench_tool("gen-data", &args[1..]),
        Some("bench") => bench_tool("bench", &args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("tidy") => tidy::run(&root()),
        Some("browser") => cargo(&["build", "-p", "minqing", "-p", "minqing-relay", "--bins"])
            .and_then(|()| browser(&args[1..])),
        _ => {
            eprintln!("usage: cargo xtask <ci|tidy|demo|gen-data|bench|fuzz>");
            eprintln!(
                "  ci        tidy, fmt check, clippy -D warnings, build, every test, the browser tests"
            );
            eprintln!("  tidy      the architecture's boundaries (docs/testing.md#the-tidy-test)");
            eprintln!(
                "  browser   [--shots docs/app] [--console-shots docs/console] the browser tests in chromium (tests/browser/; docs/app.md, docs/console.md)"
            );
            eprintln!("  demo      a cadre's offline day, then sync through a relay, on 127.0.0.1");
            eprintln!(
                "  gen-data  --profile device|county|quick --seed N --out DIR: a deterministic data set in real stores"
            );
            eprintln!(
                "  bench     [--quick] [--only W1,W2,C1,S1,S2,S3,RES,OUT,R1,L1] every benchmark scenario; writes docs/benchmarks.md (--quick: target/bench-quick.md; --only: target/bench-only.md)"
            );
            eprintln!(
                "  fuzz      [TARGET] [--runs N | --seconds S] [--merge] coverage-guided fuzzing on stable (docs/testing.md#fuzzing)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's folder).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `cargo ARGS` in the workspace root, failing on a non-zero exit.
pub fn cargo(args: &[&str]) -> Result<(), String> {
    cargo_env(args, &[])
}

/// Runs `cargo ARGS` in the workspace root with extra environment variables.
pub fn cargo_env(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

/// The browser tests (tests/browser/, docs/app.md): a cadre's day in Debian's
/// chromium driven by Playwright, against `minqing app` built above. `.ci/run`
/// installs chromium, chromium-driver, fonts-noto-cjk and PyPI playwright.
/// `args` go to the script (`--shots docs/app` takes the screenshots again).
fn browser(args: &[String]) -> Result<(), String> {
    let root = root();
    let target = target_dir();
    let minqing = target.join("debug").join("minqing");
    let relay = target.join("debug").join("minqing-relay");
    // `--console-shots DIR` goes to the console's test as its `--shots DIR`.
    let mut cadre_args = Vec::new();
    let mut console_args = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--console-shots" {
            console_args.push("--shots".to_owned());
            console_args.extend(it.next().cloned());
        } else {
            cadre_args.push(a.clone());
        }
    }
    let dir = root.join("tests").join("browser");
    let runs = [
        (
            dir.join("cadre_day.py"),
            vec![
                "--minqing".into(),
                minqing.display().to_string(),
                "--relay".into(),
                relay.display().to_string(),
            ],
            cadre_args,
        ),
        (
            dir.join("console_loop.py"),
            vec![
                "--minqing".into(),
                minqing.display().to_string(),
                "--relay".into(),
                relay.display().to_string(),
            ],
            console_args,
        ),
    ];
    for (script, bins, extra) in runs {
        eprintln!("$ python3 {} {}", script.display(), bins.join(" "));
        let status = Command::new("python3")
            .arg(&script)
            .args(&bins)
            .args(&extra)
            .current_dir(&root)
            .status()
            .map_err(|e| format!("cannot run python3 for the browser tests: {e}"))?;
        if !status.success() {
            return Err(format!(
                "the browser test {} failed ({status}); it needs /usr/bin/chromium and PyPI playwright (.ci/run installs them)",
                script.display()
            ));
        }
    }
    Ok(())
}

/// Builds the benchmark harness and the binaries it drives in one release
/// build (one feature set, so the dependencies are compiled once), then runs
/// `target/release/minqing-bench SUB ARGS` directly.
fn bench_tool(sub: &str, args: &[String]) -> Result<(), String> {
    cargo(&[
        "build",
        "--release",
        "-p",
        "minqing",
        "-p",
        "minqing-relay",
        "-p",
        "minqing-testkit",
        "-p",
        "minqing-bench",
        "--bins",
    ])?;
    let bench = target_dir().join("release").join("minqing-bench");
    eprintln!("$ {} {sub} {}", bench.display(), args.join(" "));
    let status = Command::new(&bench)
        .arg(sub)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", bench.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("minqing-bench {sub} failed ({status})"))
    }
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `target/`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn ci() -> Result<(), String> {
    // The tidy rules first (a second, and the same rules as the `tree_is_tidy`
    // test that `cargo test --workspace` runs below).
    tidy::run(&root())?;
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    // `cargo test` before any `cargo build`: on CI's fresh clone this is the
    // plain `cargo test` with no binary built first (issue 11), so a test that
    // only passes when something else built the programs fails here.
    cargo(&["test", "--workspace", "--no-fail-fast"])?;
    cargo(&["build", "--workspace", "--bins"])?;
    browser(&[])?;
    // Benchmarks are not timed in CI; their smallest profile runs so the harness keeps working.
    cargo(&[
        "bench",
        "-p",
        "minqing-store",
        "--bench",
        "write_cost",
        "--",
        "--quick",
    ])?;
    bench_tool("bench", &["--quick".to_owned()])?;
    Ok(())
}
