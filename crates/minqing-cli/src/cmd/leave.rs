//! `minqing leave add|list`: a cadre's leave from a monthly visit round, and
//! the 补访 (make-up) visit in a later month that settles it.

use anyhow::Context;
use minqing_model::{LeaveReason, LeaveView, Month, VisitView, settle_leaves};

use crate::cli::LeaveCmd;
use crate::error::usage;
use crate::home::Home;
use crate::output;

/// Runs a leave command.
pub fn run(home: &Home, cmd: LeaveCmd) -> anyhow::Result<()> {
    match cmd {
        LeaveCmd::Add {
            month,
            reason,
            village,
        } => {
            let month = Month::parse(&month).context("--month")?;
            let reason = LeaveReason::parse(&reason).context("--reason")?;
            let mut v = match village {
                Some(id) => home.require_village(id.trim())?,
                None => {
                    let mut all = home.villages()?;
                    match all.len() {
                        0 => anyhow::bail!(
                            "no village on this laptop to record the leave in: add one with `minqing village add` (or sync)"
                        ),
                        1 => all.remove(0),
                        _ => {
                            let ids: Vec<String> = all.iter().map(|v| v.id().to_string()).collect();
                            return Err(usage(format!(
                                "this laptop holds several villages ({}): say which one the leave belongs to with --village ID",
                                ids.join(", ")
                            )));
                        }
                    }
                }
            };
            let id = v.add_leave(&mut *crate::home::rng(), &home.author(), month, &reason)?;
            home.save(&mut v, "leave")?;
            output::line(&format!(
                "recorded leave of {} for {month} in {}; a 补访 visit in a later month settles it",
                home.cadre,
                v.id()
            ))?;
            output::line(id.as_str())?;
            home.compact_later(v.id());
            Ok(())
        }
        LeaveCmd::List { village, json } => {
            let villages = match village {
                Some(id) => vec![home.require_village(id.trim())?],
                None => home.villages()?,
            };
            let leaves: Vec<LeaveView> = villages.iter().flat_map(|v| v.leaves()).collect();
            let visits: Vec<VisitView> = villages.iter().flat_map(|v| v.visits()).collect();
            let settled = settle_leaves(&leaves, &visits);
            if json.json {
                return output::json(&settled);
            }
            let rows: Vec<Vec<String>> = settled
                .into_iter()
                .map(|s| {
                    let makeup = match (&s.settled_on, &s.settled_by) {
                        (Some(on), Some(by)) => format!("补访 {on} ({by})"),
                        _ => "待补访".to_owned(),
                    };
                    vec![
                        s.leave.month,
                        s.leave.cadre,
                        s.leave.village_id,
                        makeup,
                        output::clip(&s.leave.reason, 30),
                    ]
                })
                .collect();
            output::table(&["月份", "干部", "村", "补访", "原因"], &rows, "no leaves")
        }
    }
}
