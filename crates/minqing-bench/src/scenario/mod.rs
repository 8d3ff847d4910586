//! The scenarios of `cargo xtask bench`, one module each (docs/benchmarks.md
//! says what each measures): W1 a write, W2 a cold open, S1–S3 syncs against
//! the naive and automerge-repo baselines, R1 a thousand laptops at once, L1
//! the relay under attack, C1 the cadre's everyday commands and pages. Each adds its rows to a [`Report`].

use std::path::Path;

use anyhow::Result;

use crate::bench::Options;
use crate::datagen::Manifest;
use crate::homes::Bins;
use crate::report::Report;

mod baselines;
mod c1;
mod l1;
mod outage;
mod r1;
mod resumed;
mod s1;
mod s2;
mod s3;
mod sync;
mod w1;
mod w2;
mod whole;

/// What every scenario works with.
pub struct Ctx<'a> {
    /// The built binaries.
    pub bins: &'a Bins,
    /// The run's options.
    pub opts: &'a Options,
    /// The generated data set (read only: scenarios copy from it).
    pub data: &'a Path,
    /// Its manifest.
    pub m: &'a Manifest,
    /// A scratch directory, removed after the run.
    pub scratch: &'a Path,
}

/// Runs every scenario `ctx.opts` asks for, in the report's order.
pub fn run_all(ctx: &Ctx<'_>, report: &mut Report) -> Result<()> {
    let opts = ctx.opts;
    if opts.wants("W1") {
        eprintln!("W1 …");
        w1::run(ctx, report)?;
    }
    if opts.wants("W2") {
        eprintln!("W2 …");
        w2::run(ctx, report)?;
    }
    if opts.wants("C1") {
        eprintln!("C1 …");
        c1::run(ctx, report)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if opts.wants("S1") || opts.wants("S2") || opts.wants("S3") {
        eprintln!("S1–S3 …");
        let base = rt.block_on(baselines::prepare(ctx, report))?;
        if opts.wants("S1") {
            rt.block_on(s1::run(ctx, &base, report))?;
        }
        if opts.wants("S2") {
            rt.block_on(s2::run(ctx, &base, report))?;
            rt.block_on(whole::s2(ctx, &base, report))?;
            rt.block_on(resumed::run(ctx, "S2", true, report))?;
        }
        if opts.wants("S3") {
            rt.block_on(s3::run(ctx, &base, report))?;
            rt.block_on(whole::s3(ctx, &base, report))?;
            rt.block_on(resumed::run(ctx, "S3", false, report))?;
        }
    }
    // `--only RES`: just the rows of the app's resumed passes (they are also
    // part of S2 and S3).
    if opts.wants("RES") && !opts.wants("S2") {
        eprintln!("S2/S3 on the app's endpoint …");
        rt.block_on(resumed::run(ctx, "S2", true, report))?;
        rt.block_on(resumed::run(ctx, "S3", false, report))?;
    }
    if opts.wants("OUT") {
        eprintln!("OUT …");
        rt.block_on(outage::run(ctx, report))?;
    }
    if opts.wants("R1") {
        eprintln!("R1 …");
        rt.block_on(r1::run(ctx, report))?;
    }
    if opts.wants("L1") {
        eprintln!("L1 …");
        rt.block_on(l1::run(ctx, report))?;
    }
    Ok(())
}

/// `values` with `f` applied to each.
pub fn col<T>(values: &[T], f: impl Fn(&T) -> f64) -> Vec<f64> {
    values.iter().map(f).collect()
}
