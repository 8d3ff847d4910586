//! `minqing-bench bench`: runs the scenarios (`scenario/`: W1, W2, S1–S3 with
//! their baselines, R1, L1) on a generated data set and writes the report
//! (`render`) between the `<!-- bench:begin -->` / `<!-- bench:end -->`
//! markers of docs/benchmarks.md, or to target/ for `--quick` and `--only`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;

use crate::datagen::{self, Profile};
use crate::homes::Bins;
use crate::render::{self, RunInfo};
use crate::report::Report;
use crate::scenario::{self, Ctx};

/// Options of one bench run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Tiny sizes, few runs, report to target/bench-quick.md.
    pub quick: bool,
    /// Runs per figure.
    pub runs: usize,
    /// Seed of the data set.
    pub seed: u64,
    /// Workspace root (for target/ and docs/).
    pub root: PathBuf,
    /// Scenario groups to run (W1, W2, S, S1, S2, S3, R1, L1); empty: all.
    pub only: Vec<String>,
}

impl Options {
    /// Whether scenario `id` (W1, W2, S1, S2, S3, R1, L1) runs; `S` in
    /// `only` stands for S1–S3.
    pub fn wants(&self, id: &str) -> bool {
        self.only.is_empty()
            || self
                .only
                .iter()
                .any(|g| g == id || (g == "S" && id.starts_with('S')))
    }

    /// Runs of R1 (each starts 1,000 laptops on the county profile).
    pub fn r1_runs(&self) -> usize {
        if self.quick { 1 } else { self.runs.min(3) }
    }

    /// Runs of W1: at least 5, as its ratios are medians of per-run ratios.
    pub fn w1_runs(&self) -> usize {
        self.runs.max(5)
    }
}

/// Runs what `opts` asks for and writes the report; returns where.
pub fn run(bins: &Bins, opts: &Options) -> Result<PathBuf> {
    let profile = Profile::named(if opts.quick { "quick" } else { "county" })?;
    let data = opts
        .root
        .join("target/bench-data")
        .join(format!("{}-seed{}", profile.name, opts.seed));
    let manifest = datagen::cached(bins, profile, opts.seed, &data)?;
    let scratch = opts.root.join("target/bench-scratch");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let started = Instant::now();
    let load_start = render::load_average();
    let ctx = Ctx {
        bins,
        opts,
        data: &data,
        m: &manifest,
        scratch: &scratch,
    };
    let mut report = Report::default();
    scenario::run_all(&ctx, &mut report)?;
    let _ = std::fs::remove_dir_all(&scratch);

    let info = RunInfo {
        quick: opts.quick,
        only: opts.only.clone(),
        seed: opts.seed,
        runs: opts.runs,
        r1_runs: opts.r1_runs(),
        w1_runs: opts.w1_runs(),
        took: started.elapsed(),
        load: (load_start, render::load_average()),
    };
    let text = render::render(&info, &manifest, &report)?;
    if opts.quick || !opts.only.is_empty() {
        let p = opts.root.join(if opts.quick {
            "target/bench-quick.md"
        } else {
            "target/bench-only.md"
        });
        std::fs::write(&p, render::standalone(&text))?;
        Ok(p)
    } else {
        let p = opts.root.join("docs/benchmarks.md");
        render::splice(&p, &text)?;
        Ok(p)
    }
}
