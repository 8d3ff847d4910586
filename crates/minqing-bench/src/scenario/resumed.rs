//! S2 and S3 as `minqing app`'s background sync makes them (issue 15 item
//! 2): the 4-village laptop on a reused client endpoint, in the bench
//! process, through the UDP shaper to the real relay — its first pass (a full
//! handshake, as every one-shot `minqing sync`) against a later pass that
//! resumes the TLS session and sends its first flight as 0-RTT data. Timed
//! from the connect to the session's outcome, as the in-process S2/S3 rows.

use anyhow::Result;

use super::Ctx;
use super::sync::{Case, on_endpoint_once};
use crate::harness::summary;
use crate::report::{Report, Unit};

/// The link of these rows: 300 ms RTT (0 ms with `--quick`).
fn rtt(ctx: &Ctx<'_>) -> u64 {
    if ctx.opts.quick { 0 } else { 300 }
}

/// Adds the rows of S2 (`work`: an offline day) or S3 (nothing to do).
pub async fn run(ctx: &Ctx<'_>, id: &'static str, work: bool, report: &mut Report) -> Result<()> {
    let case = Case {
        device: Some("device"),
        villages: ctx.m.device_villages.clone(),
        work,
    };
    let rtt = rtt(ctx);
    let what = if work {
        "offline day (50 visits, 20 demand events)"
    } else {
        "nothing to do"
    };
    let (mut full, mut resumed, mut loads) = (Vec::new(), Vec::new(), Vec::new());
    let (mut full_bytes, mut resumed_bytes) = (Vec::new(), Vec::new());
    let (mut full_hs, mut resumed_hs) = (Vec::new(), Vec::new());
    for i in 0..ctx.opts.runs {
        let seed = ctx.opts.seed + i as u64;
        let (t, _, bytes) = on_endpoint_once(ctx, &case, rtt, false, seed).await?;
        full.push(t);
        full_bytes.push(bytes.0);
        full_hs.push(bytes.1);
        let (t, load, bytes) = on_endpoint_once(ctx, &case, rtt, true, seed).await?;
        resumed.push(t);
        loads.push(load);
        resumed_bytes.push(bytes.0);
        resumed_hs.push(bytes.1);
    }
    let n = case.villages.len();
    let in_rtt = |xs: &[f64]| {
        if rtt == 0 {
            String::new()
        } else {
            format!(" = {:.1} RTT", summary(xs).0 * 1000.0 / rtt as f64)
        }
    };
    report
        .add(
            id,
            format!(
                "{what}, {n} villages, {rtt} ms RTT, the app's first pass (full handshake): time"
            ),
            Unit::S,
            full.clone(),
        )
        .note(format!(
            "connect to outcome on minqing app's reused endpoint{}",
            in_rtt(&full)
        ));
    report
        .add(
            id,
            format!("{what}, {n} villages, {rtt} ms RTT, a later pass (TLS resumed, first flight as 0-RTT data): time"),
            Unit::S,
            resumed.clone(),
        )
        .note(format!(
            "the ticket of an earlier connection on the endpoint; the relay took the early data in every run{}; first pass ÷ this = {:.2}×; of this, {:.2} s loading the laptop's villages (the relay, a fresh process each run, also loads them cold)",
            in_rtt(&resumed),
            summary(&full).0 / summary(&resumed).0,
            summary(&loads).0
        ));
    report
        .add(
            id,
            format!(
                "  bytes on the wire, {what}, {n} villages: the app's first pass (whole connection)"
            ),
            Unit::B,
            full_bytes,
        )
        .note(format!(
            "UDP payload both ways at the shaper: handshake with both certificates, session, close; of which the handshake (long-header packets): {:.0} B",
            summary(&full_hs).0
        ));
    report
        .add(
            id,
            format!("  bytes on the wire, {what}, {n} villages: a later pass, resumed (whole connection)"),
            Unit::B,
            resumed_bytes,
        )
        .note(format!(
            "UDP payload both ways at the shaper: a resumed handshake (no certificates), session, close; of which the handshake (long-header packets, the 0-RTT packets with the first flight included): {:.0} B",
            summary(&resumed_hs).0
        ));
    Ok(())
}
