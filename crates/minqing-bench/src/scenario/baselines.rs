//! The automerge-repo baseline of S1–S3 (`bench/automerge-repo`), measured
//! once before the minqing runs on fixtures exported from the same data: the
//! 4-village laptop and, on the county profile, the 100-village one.

use std::time::Duration;

use anyhow::Result;

use super::Ctx;
use crate::amr;
use crate::harness::summary;
use crate::report::Report;

/// What the baseline measured (None: not run, skipped or failed; the
/// report's notes say which).
#[derive(Default)]
pub struct Baselines {
    /// The 4-village laptop.
    pub amr4: Option<amr::Results>,
    /// The many-village laptop.
    pub amr_many: Option<amr::Results>,
}

impl Baselines {
    /// The results for a case of `villages` villages.
    pub fn for_villages(&self, villages: usize) -> Option<&amr::Results> {
        if villages > 10 {
            self.amr_many.as_ref()
        } else {
            self.amr4.as_ref()
        }
    }
}

/// "automerge-repo ÷ minqing = 3.91×" from both sides' runs.
pub fn ratio_note(theirs: &[f64], ours: &[f64]) -> String {
    format!(
        "automerge-repo ÷ minqing = {:.2}×",
        summary(theirs).0 / summary(ours).0
    )
}

/// Runs the baseline unless the options leave it out (`--quick` runs it only
/// with `MINQING_BENCH_NODE=1`; `MINQING_BENCH_NODE=0` skips it).
pub async fn prepare(ctx: &Ctx<'_>, report: &mut Report) -> Result<Baselines> {
    let node = match std::env::var("MINQING_BENCH_NODE").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => !ctx.opts.quick,
    };
    let mut base = Baselines::default();
    if !node {
        report.notes.push("**automerge-repo baseline**: not run (`--quick` runs it only with `MINQING_BENCH_NODE=1`; `MINQING_BENCH_NODE=0` skips it).".into());
        return Ok(base);
    }
    let a = match amr::Amr::prepare(&ctx.opts.root) {
        Err(why) => {
            report
                .notes
                .push(format!("**automerge-repo baseline**: skipped: {why}."));
            return Ok(base);
        }
        Ok(a) => a,
    };
    base.amr4 = four_villages(ctx, &a, report).await?;
    if !ctx.m.many_villages.is_empty() {
        base.amr_many = many_villages(ctx, &a, report).await?;
    }
    for r in [&base.amr4, &base.amr_many].into_iter().flatten() {
        for s in &r.skipped {
            report.notes.push(format!("automerge-repo baseline: {s}."));
        }
    }
    Ok(base)
}

fn rtts(quick: bool) -> &'static [u64] {
    if quick { &[0, 100] } else { &[0, 100, 300] }
}

async fn four_villages(
    ctx: &Ctx<'_>,
    a: &amr::Amr,
    report: &mut Report,
) -> Result<Option<amr::Results>> {
    let m = ctx.m;
    eprintln!(
        "automerge-repo baseline, {} villages …",
        m.device_villages.len()
    );
    let fx = ctx.scratch.join("amr-fx4");
    let seed = ctx.opts.seed;
    if let Some(n) = amr::export(
        ctx.data,
        "device",
        &m.device_villages,
        seed,
        ctx.scratch,
        &fx,
    )? {
        report
            .notes
            .push(format!("automerge-repo fixtures (4 villages): {n}"));
    }
    let plan = amr::Plan {
        runs: ctx.opts.runs,
        initial: true,
        rtts: rtts(ctx.opts.quick),
        noop: true,
        budget: Duration::from_secs(600),
    };
    match amr::measure(a, &fx, &ctx.scratch.join("amr4"), &plan).await {
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            report.notes.push(format!(
                "automerge-repo baseline, 4 villages, failed: {e:#}"
            ));
            Ok(None)
        }
    }
}

async fn many_villages(
    ctx: &Ctx<'_>,
    a: &amr::Amr,
    report: &mut Report,
) -> Result<Option<amr::Results>> {
    let (m, quick) = (ctx.m, ctx.opts.quick);
    let n_many = m.many_villages.len();
    eprintln!("automerge-repo baseline, {n_many} villages …");
    let fx = ctx.scratch.join("amr-fx-many");
    let seed = ctx.opts.seed;
    if let Some(n) = amr::export(
        ctx.data,
        "device100",
        &m.many_villages,
        seed,
        ctx.scratch,
        &fx,
    )? {
        report
            .notes
            .push(format!("automerge-repo fixtures ({n_many} villages): {n}"));
    }
    let many_rtts: &[u64] = if quick { &[0] } else { &[0, 300] };
    let runs = ctx.opts.runs.min(3);
    report.notes.push(format!(
        "automerge-repo with {n_many} villages: `incremental` at {many_rtts:?} ms RTT and `noop` at 0 ms only, {runs} runs each after the warm-up; its `initial` runs once, untimed, to fill the client storage (each run loads all {n_many} documents in a fresh Node process and takes about 30 s of wall time, so 100 ms RTT and more runs were left out to keep the whole bench near 20 minutes)"
    ));
    let plan = amr::Plan {
        runs,
        initial: false,
        rtts: many_rtts,
        noop: true,
        budget: Duration::from_secs(if quick { 120 } else { 300 }),
    };
    match amr::measure(a, &fx, &ctx.scratch.join("amr-many"), &plan).await {
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            report.notes.push(format!(
                "automerge-repo baseline, {n_many} villages, failed: {e:#}"
            ));
            Ok(None)
        }
    }
}

/// The RTTs the S2 cases run at.
pub fn s2_rtts(quick: bool) -> &'static [u64] {
    rtts(quick)
}
