//! `minqing-bench`: the benchmark harness behind `cargo xtask gen-data` and
//! `cargo xtask bench` — a deterministic county generator writing real minqing
//! stores, and the scenarios that write docs/benchmarks.md.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod amr;
mod bench;
mod county;
mod datagen;
mod harness;
mod heap;
mod homes;
mod lockout;
mod render;
mod report;
mod scenario;
mod text;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// minqing-bench: data generator and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "minqing-bench", about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Generate a deterministic data set into real minqing stores.
    GenData {
        /// device (4 villages, ~5,000 residents), county (500 villages, the
        /// relay's view) or quick (tiny, for CI).
        #[arg(long, default_value = "device")]
        profile: String,
        /// Seed: the same seed makes the same records.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Run every scenario and write docs/benchmarks.md (with --quick: tiny
    /// sizes, target/bench-quick.md).
    Bench {
        /// Tiny data set, few runs; the report goes to target/bench-quick.md.
        #[arg(long)]
        quick: bool,
        /// Runs per figure (default 5, or 1 with --quick).
        #[arg(long)]
        runs: Option<usize>,
        /// Seed of the data set.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The workspace root (default: the current directory).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Run only these scenario groups (comma-separated: W1, W2, C1, S, S1, S2, S3, R1, L1); the
        /// report then goes to target/bench-only.md, never to docs/.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Measure what one village of a relay store costs in memory once
    /// loaded (run by the bench in a fresh process; prints one JSON line).
    #[command(hide = true)]
    HeapProbe {
        /// The relay's store directory.
        #[arg(long)]
        store: PathBuf,
        /// The village id.
        #[arg(long)]
        village: String,
        /// Copies loaded and kept.
        #[arg(long, default_value_t = 4)]
        copies: usize,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MINQING_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::GenData { profile, seed, out } => {
            let profile = datagen::Profile::named(&profile)?;
            let bins = homes::Bins::locate()?;
            let m = datagen::generate(&bins, profile, seed, &out)?;
            println!(
                "{} profile, seed {}: {} villages on the relay, {} on the laptop ({} residents, {} visits, {} demands) in {:.1} s → {}",
                m.profile,
                m.seed,
                m.all_villages.len(),
                m.device_villages.len(),
                m.device_counts[0],
                m.device_counts[1],
                m.device_counts[2],
                m.seconds,
                out.display()
            );
        }
        Cmd::Bench {
            quick,
            runs,
            seed,
            root,
            only,
        } => {
            let bins = homes::Bins::locate()?;
            let opts = bench::Options {
                quick,
                runs: runs.unwrap_or(if quick { 1 } else { 5 }).max(1),
                seed,
                only: only.iter().map(|s| s.trim().to_uppercase()).collect(),
                root: match root {
                    Some(r) => r,
                    None => std::env::current_dir()?,
                },
            };
            let out = bench::run(&bins, &opts)?;
            println!("report written to {}", out.display());
        }
        Cmd::HeapProbe {
            store,
            village,
            copies,
        } => {
            let p = heap::probe(&store, &village, copies)?;
            println!("{}", serde_json::to_string(&p)?);
        }
    }
    Ok(())
}
