//! L1: the relay cannot be locked out (docs/relay.md, "Limits"). The
//! measurement lives in `crate::lockout`; this turns it into rows.

use anyhow::Result;

use super::Ctx;
use crate::lockout::{FLOOD_RATE, Lockout, median};
use crate::report::{Report, Target, Unit};

/// Runs L1 and adds its rows.
pub async fn run(ctx: &Ctx<'_>, report: &mut Report) -> Result<()> {
    let runs = if ctx.opts.quick {
        3
    } else {
        ctx.opts.runs.clamp(3, 10)
    };
    let l = crate::lockout::l1(ctx.bins, ctx.data, ctx.scratch, runs).await?;
    rows(&l, report);
    Ok(())
}

fn rows(l: &Lockout, report: &mut Report) {
    let normal = median(&l.normal);
    let flooded = median(&l.flooded);
    report
        .add(
            "L1",
            "`minqing sync` (4 villages, no change), relay idle",
            Unit::S,
            l.normal.clone(),
        )
        .note("whole process: start to exit; real `minqing` binary against the real relay");
    let worst = l.flooded.iter().cloned().fold(0.0, f64::max);
    report
        .add(
            "L1",
            format!("the same during a flood of {FLOOD_RATE} half-open QUIC handshakes/s from one process"),
            Unit::S,
            l.flooded.clone(),
        )
        .target(Target::at_most(3.0 * normal, "≤ 3 × the idle sync, every run").every_run())
        .failed_runs(l.failed)
        .note(format!(
            "flood achieved {:.0} Initial packets/s; the relay answered {:.0} Retry/s; {} sync(s) failed; slowest {:.2}× idle, median {:.2}×",
            l.rate,
            l.retries_per_s,
            l.failed,
            worst / normal,
            flooded / normal
        ));
    let grew = l.rss_peak - l.rss_before;
    // The budget counts partial frames and every connection's QUIC receive
    // window (docs/relay.md, "Limits").
    let bound = l.rss_bound();
    report
        .add(
            "L1",
            "relay RSS growth under 6 × 50 MiB partial frames",
            Unit::MiB,
            vec![grew],
        )
        .target(Target::at_most(
            bound,
            format!(
                "≤ buffer budget {} MiB (QUIC windows counted in it)",
                l.budget
            ),
        ))
        .note(format!(
            "RSS {:.0} MiB with the six connections open and idle, {:.0} MiB at peak",
            l.rss_before, l.rss_peak
        ));
    let grew = l.orphan_peak - l.orphan_before;
    // The attack makes the relay load the villages it names: they are held
    // in the document cache, counted against its own budget; the orphans
    // and every other buffer against the buffer budget.
    let bound = l.budget + l.orphan_cache_peak;
    report
        .add(
            "L1",
            "relay RSS growth under an orphan flood (6 laptops)",
            Unit::MiB,
            vec![grew],
        )
        .target(Target::at_most(
            bound,
            format!(
                "≤ buffer budget {} MiB + what the document cache counted at its peak ({:.1} MiB)",
                l.budget, l.orphan_cache_peak
            ),
        ))
        .note(format!(
            "{:.0} MiB of orphan changes sent over {} sessions in {} s; RSS {:.0} MiB before, {:.0} MiB at peak; the relay said as it stopped: {}",
            l.orphan_sent,
            l.orphan_sessions,
            crate::lockout::ORPHAN_SECS,
            l.orphan_before,
            l.orphan_peak,
            l.orphan_cache_line.as_deref().unwrap_or("nothing")
        ));
}
