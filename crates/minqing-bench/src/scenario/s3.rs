//! S3: a sync with nothing to do, 100 villages (the profile's many-village
//! laptop, or the 4-village one without it), 0 ms RTT: time, round trips and
//! bytes after the handshake; against the naive baseline and automerge-repo.

use anyhow::Result;

use super::baselines::{Baselines, ratio_note};
use super::sync::{Case, Measured, measure_runs};
use super::{Ctx, col};
use crate::harness::summary;
use crate::report::{Report, Target, Unit};

/// Runs S3 and adds its rows.
pub async fn run(ctx: &Ctx<'_>, base: &Baselines, report: &mut Report) -> Result<()> {
    let m = ctx.m;
    let many = !m.many_villages.is_empty();
    let case = Case {
        device: Some(if many { "device100" } else { "device" }),
        villages: if many {
            m.many_villages.clone()
        } else {
            m.device_villages.clone()
        },
        work: false,
    };
    let n = case.villages.len();
    let ours = measure_runs(ctx, &case, 0, false).await?;
    let naive = measure_runs(ctx, &case, 0, true).await?;
    let t = col(&ours, |x| x.secs);
    let tn = col(&naive, |x| x.secs);
    report.add(
        "S3",
        format!("nothing to do, {n} villages, 0 ms: time"),
        Unit::S,
        t.clone(),
    );
    report
        .add(
            "S3",
            format!("  naive baseline, {n} villages: time"),
            Unit::S,
            tn.clone(),
        )
        .note(format!(
            "naive ÷ minqing = {:.2}×",
            summary(&tn).0 / summary(&t).0
        ));
    if let Some(a) = base.for_villages(n).filter(|a| !a.noop.is_empty()) {
        let ta = col(&a.noop, |x| x.secs);
        report
            .add(
                "S3",
                format!("  automerge-repo, {n} villages: time"),
                Unit::S,
                ta.clone(),
            )
            .note(ratio_note(&ta, &t));
        report.add(
            "S3",
            format!("  automerge-repo bytes on the wire (TCP both ways), {n} villages"),
            Unit::B,
            col(&a.noop, |x| x.bytes),
        );
    }
    wire(n, &ours, &naive, report);
    Ok(())
}

/// Round trips and bytes: after the handshake (the targets), the whole
/// connection, and the naive baseline's.
fn wire(n: usize, ours: &[Measured], naive: &[Measured], report: &mut Report) {
    report
        .add(
            "S3",
            format!("round trips after the handshake, {n} villages"),
            Unit::Count,
            col(ours, |x| x.round_trips as f64),
        )
        .target(Target::at_most(1.0, "≤ 1").every_run());
    // After the handshake, as round trips are counted: the 1-RTT packets.
    report
        .add(
            "S3",
            format!("bytes on the wire after the handshake, {n} villages"),
            Unit::B,
            col(ours, |x| x.bytes - x.handshake_bytes),
        )
        .target(Target::at_most(4096.0, "≤ 4 KB (4,096 B)"))
        .note(format!(
            "UDP payload both ways of QUIC 1-RTT packets: sync frames ({} B), QUIC packet and frame overhead, ACKs, connection IDs, close",
            ours.first().map_or(0, |x| x.protocol_bytes)
        ));
    let hs = summary(&col(ours, |x| x.handshake_bytes)).0;
    report
        .add(
            "S3",
            format!("  bytes on the wire, whole connection, {n} villages"),
            Unit::B,
            col(ours, |x| x.bytes),
        )
        .note(format!(
            "of which the QUIC/TLS 1.3 handshake (long-header packets: both certificates, Initial padding to 1,200 B, its ACKs): {hs:.0} B"
        ));
    report.add(
        "S3",
        format!("  naive baseline bytes, {n} villages"),
        Unit::B,
        col(naive, |x| x.bytes),
    );
}
