//! The whole `minqing sync` process as a cadre waits for it (issue 15 item 1):
//! exec to exit of the release binary on a copy of the device profile's
//! 4-village laptop, through the UDP shaper to a fresh relay process — the
//! unlock (argon2id), opening the store, the handshake, the session and
//! closing the connection all inside the figure. S2 after an offline day at
//! 0 and 300 ms RTT and at 300 ms with 10 % loss; S3 with nothing to do at 0
//! and 300 ms; automerge-repo's whole client process (`node client.mjs`,
//! exec to exit) beside them where the baseline ran at that RTT.

use std::time::Duration;

use anyhow::Result;
use minqing_testkit::shaper::LinkConfig;

use super::baselines::Baselines;
use super::sync::{Case, process_once};
use super::{Ctx, col};
use crate::harness::summary;
use crate::report::{Report, Target, Unit};

/// One link of the figures: RTT, loss, and the target (s).
struct Link {
    rtt_ms: u64,
    loss: f64,
    target: f64,
}

fn config(link: &Link, seed: u64) -> LinkConfig {
    LinkConfig {
        loss: link.loss,
        seed,
        ..LinkConfig::delay(Duration::from_millis(link.rtt_ms / 2))
    }
}

fn label(link: &Link) -> String {
    if link.loss > 0.0 {
        format!("{} ms RTT, {:.0} % loss", link.rtt_ms, link.loss * 100.0)
    } else {
        format!("{} ms RTT", link.rtt_ms)
    }
}

/// The S2 rows: an offline day (50 visits, 20 demand events), 4 villages.
pub async fn s2(ctx: &Ctx<'_>, base: &Baselines, report: &mut Report) -> Result<()> {
    let case = Case {
        device: Some("device"),
        villages: ctx.m.device_villages.clone(),
        work: true,
    };
    let links: &[Link] = if ctx.opts.quick {
        &[Link {
            rtt_ms: 0,
            loss: 0.0,
            target: 0.3,
        }]
    } else {
        &[
            Link {
                rtt_ms: 0,
                loss: 0.0,
                target: 0.3,
            },
            Link {
                rtt_ms: 300,
                loss: 0.0,
                target: 1.0,
            },
            Link {
                rtt_ms: 300,
                loss: 0.1,
                target: 2.0,
            },
        ]
    };
    for link in links {
        let secs = runs(ctx, &case, link).await?;
        let (median, _, _) = summary(&secs);
        report
            .add(
                "S2",
                format!(
                    "`minqing sync` whole process (exec to exit), offline day, 4 villages, {}",
                    label(link)
                ),
                Unit::S,
                secs,
            )
            .target(Target::at_most(link.target, format!("≤ {} s", link.target)))
            .note("release binary; unlock (argon2id), store open, handshake, session and close included");
        if link.loss > 0.0 {
            continue;
        }
        let amr = base
            .amr4
            .as_ref()
            .and_then(|a| a.incremental.iter().find(|(r, _)| *r == link.rtt_ms))
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty());
        if let Some(amr) = amr {
            let t = col(amr, |x| x.process_secs);
            let ratio = summary(&t).0 / median;
            report
                .add(
                    "S2",
                    format!(
                        "  automerge-repo whole client process (node client.mjs, exec to exit), 4 villages, {}",
                        label(link)
                    ),
                    Unit::S,
                    t,
                )
                .note(format!(
                    "automerge-repo ÷ minqing = {ratio:.2}× (its process loads its documents before it syncs)"
                ));
        }
    }
    Ok(())
}

/// The S3 rows: a sync with nothing to do, 4 villages.
pub async fn s3(ctx: &Ctx<'_>, base: &Baselines, report: &mut Report) -> Result<()> {
    let case = Case {
        device: Some("device"),
        villages: ctx.m.device_villages.clone(),
        work: false,
    };
    let links: &[Link] = if ctx.opts.quick {
        &[Link {
            rtt_ms: 0,
            loss: 0.0,
            target: 0.3,
        }]
    } else {
        &[
            Link {
                rtt_ms: 0,
                loss: 0.0,
                target: 0.3,
            },
            Link {
                rtt_ms: 300,
                loss: 0.0,
                target: 0.8,
            },
        ]
    };
    for link in links {
        let secs = runs(ctx, &case, link).await?;
        let (median, _, _) = summary(&secs);
        report
            .add(
                "S3",
                format!(
                    "`minqing sync` whole process (exec to exit), nothing to do, 4 villages, {}",
                    label(link)
                ),
                Unit::S,
                secs,
            )
            .target(Target::at_most(link.target, format!("≤ {} s", link.target)))
            .note("release binary; unlock (argon2id), store open, handshake, session and close included");
        let amr = base
            .amr4
            .as_ref()
            .map(|a| &a.noop)
            .filter(|v| link.rtt_ms == 0 && !v.is_empty());
        if let Some(amr) = amr {
            let t = col(amr, |x| x.process_secs);
            let ratio = summary(&t).0 / median;
            report
                .add(
                    "S3",
                    "  automerge-repo whole client process (node client.mjs, exec to exit), nothing to do, 4 villages, 0 ms RTT",
                    Unit::S,
                    t,
                )
                .note(format!("automerge-repo ÷ minqing = {ratio:.2}×"));
        }
    }
    Ok(())
}

/// `ctx.opts.runs` whole-process runs over `link` (seeds from the options').
async fn runs(ctx: &Ctx<'_>, case: &Case, link: &Link) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for i in 0..ctx.opts.runs {
        let seed = ctx.opts.seed + i as u64;
        out.push(process_once(ctx, case, config(link, seed), seed).await?);
    }
    Ok(out)
}
