//! S1: a fresh laptop receives its 4 villages (initial sync, 0 ms RTT):
//! time, bytes on the wire against the villages' saved size, round trips;
//! against the naive baseline and automerge-repo.

use anyhow::Result;

use super::baselines::{Baselines, ratio_note};
use super::sync::{Measured, fresh_once};
use super::{Ctx, col};
use crate::harness::summary;
use crate::report::{Report, Target, Unit};

/// Runs S1 and adds its rows.
pub async fn run(ctx: &Ctx<'_>, base: &Baselines, report: &mut Report) -> Result<()> {
    let m = ctx.m;
    let saved: u64 = m
        .device_villages
        .iter()
        .filter_map(|v| m.saved_bytes.get(v))
        .sum();
    let (mut ours, mut naive) = (Vec::new(), Vec::new());
    for _ in 0..ctx.opts.runs {
        ours.push(fresh_once(ctx, false).await?);
    }
    for _ in 0..ctx.opts.runs {
        naive.push(fresh_once(ctx, true).await?);
    }
    let t = col(&ours, |x| x.secs);
    let tn = col(&naive, |x| x.secs);
    report.add(
        "S1",
        "initial sync of a fresh laptop, 4 villages, 0 ms: time",
        Unit::S,
        t.clone(),
    );
    report
        .add(
            "S1",
            "  naive baseline (one village per session, no sync state): time",
            Unit::S,
            tn.clone(),
        )
        .note(format!(
            "naive ÷ minqing = {:.2}×",
            summary(&tn).0 / summary(&t).0
        ));
    if let Some(a) = base.amr4.as_ref().filter(|a| !a.initial.is_empty()) {
        let ta = col(&a.initial, |x| x.secs);
        report
            .add(
                "S1",
                "  automerge-repo, 4 villages, 0 ms: time",
                Unit::S,
                ta.clone(),
            )
            .note(ratio_note(&ta, &t));
        report.add(
            "S1",
            "  automerge-repo bytes on the wire (TCP both ways)",
            Unit::B,
            col(&a.initial, |x| x.bytes),
        );
    }
    bytes_and_round_trips(report, &ours, saved);
    Ok(())
}

fn bytes_and_round_trips(report: &mut Report, ours: &[Measured], saved: u64) {
    let bytes = col(ours, |x| x.bytes);
    let on_wire = summary(&bytes).0;
    report
        .add(
            "S1",
            format!("bytes on the wire (UDP payload both ways) vs saved size {saved} B"),
            Unit::Ratio,
            vec![on_wire / saved as f64],
        )
        .target(Target::at_most(1.1, "≤ 1.1×"))
        .note(format!(
            "{on_wire:.0} B on the wire; sync frames alone: {} B",
            ours.first().map_or(0, |x| x.protocol_bytes)
        ));
    report.add(
        "S1",
        "round trips after the handshake (sans-IO lockstep, same stores)",
        Unit::Count,
        col(ours, |x| x.round_trips as f64),
    );
}
