//! S2: an offline day (50 visits, 20 demand events) synced at 0, 100 and 300
//! ms RTT, by the 4-village laptop and (county profile) the 100-village one;
//! against the naive baseline and automerge-repo.

use anyhow::Result;

use super::baselines::{Baselines, ratio_note, s2_rtts};
use super::sync::{Case, Measured, measure_runs};
use super::{Ctx, col};
use crate::harness::summary;
use crate::report::{Report, Target, Unit};

/// Runs S2 and adds its rows.
pub async fn run(ctx: &Ctx<'_>, base: &Baselines, report: &mut Report) -> Result<()> {
    let m = ctx.m;
    let mut cases = vec![(
        "4 villages".to_owned(),
        Case {
            device: Some("device"),
            villages: m.device_villages.clone(),
            work: true,
        },
    )];
    if !m.many_villages.is_empty() {
        cases.push((
            format!("{} villages", m.many_villages.len()),
            Case {
                device: Some("device100"),
                villages: m.many_villages.clone(),
                work: true,
            },
        ));
    }
    let rtts = s2_rtts(ctx.opts.quick);
    for (label, case) in &cases {
        for &rtt in rtts {
            one_rtt(ctx, base, label, case, rtt, rtt == rtts[0], report).await?;
        }
    }
    Ok(())
}

/// One case at one RTT: minqing, automerge-repo and the naive baseline.
async fn one_rtt(
    ctx: &Ctx<'_>,
    base: &Baselines,
    label: &str,
    case: &Case,
    rtt: u64,
    first_rtt: bool,
    report: &mut Report,
) -> Result<()> {
    let ours = measure_runs(ctx, case, rtt, false).await?;
    // The naive baseline is sequential; with 100 villages over a delayed
    // link it took about 20 s per village here (far more than its round
    // trips explain; not investigated yet), so there it is left out.
    let naive = if case.villages.len() > 10 && rtt > 0 {
        Vec::new()
    } else {
        measure_runs(ctx, case, rtt, true).await?
    };
    let t = col(&ours, |x| x.secs);
    report.add(
        "S2",
        format!("offline day (50 visits, 20 demand events), {label}, {rtt} ms RTT: time"),
        Unit::S,
        t.clone(),
    );
    amr_rows(base, label, case, rtt, &t, report);
    if naive.is_empty() {
        return Ok(());
    }
    let tn = col(&naive, |x| x.secs);
    report
        .add(
            "S2",
            format!("  naive baseline, {label}, {rtt} ms RTT: time"),
            Unit::S,
            tn.clone(),
        )
        .note(format!(
            "naive ÷ minqing = {:.2}×",
            summary(&tn).0 / summary(&t).0
        ));
    if first_rtt {
        counts(label, &ours, &naive, report);
    }
    Ok(())
}

/// automerge-repo's time at this RTT and, at 300 ms, the target against it.
fn amr_rows(
    base: &Baselines,
    label: &str,
    case: &Case,
    rtt: u64,
    ours: &[f64],
    report: &mut Report,
) {
    let Some(runs) = base
        .for_villages(case.villages.len())
        .and_then(|a| a.incremental.iter().find(|(r, _)| *r == rtt))
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
    else {
        return;
    };
    let ta = col(runs, |x| x.secs);
    let ratio = summary(&ta).0 / summary(ours).0;
    report
        .add(
            "S2",
            format!("  automerge-repo, {label}, {rtt} ms RTT: time"),
            Unit::S,
            ta.clone(),
        )
        .note(format!(
            "{}; {:.0} B on the wire (TCP both ways)",
            ratio_note(&ta, ours),
            summary(&col(runs, |x| x.bytes)).0
        ));
    if rtt == 300 {
        report
            .add(
                "S2",
                format!("automerge-repo time ÷ minqing time, {label}, 300 ms RTT"),
                Unit::Ratio,
                vec![ratio],
            )
            .target(Target::at_least(3.0, "≥ 3× (minqing faster)"));
    }
}

/// Round trips and bytes of minqing and the naive baseline.
fn counts(label: &str, ours: &[Measured], naive: &[Measured], report: &mut Report) {
    report
        .add(
            "S2",
            format!("round trips after the handshake, {label}"),
            Unit::Count,
            col(ours, |x| x.round_trips as f64),
        )
        .target(Target::at_most(2.0, "≤ 2").every_run());
    report.add(
        "S2",
        format!("  naive baseline round trips, {label}"),
        Unit::Count,
        col(naive, |x| x.round_trips as f64),
    );
    report.add(
        "S2",
        format!("bytes on the wire, {label}"),
        Unit::B,
        col(ours, |x| x.bytes),
    );
    report.add(
        "S2",
        format!("  naive baseline bytes, {label}"),
        Unit::B,
        col(naive, |x| x.bytes),
    );
}
