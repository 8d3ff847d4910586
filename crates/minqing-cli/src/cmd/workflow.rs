//! `minqing demand handle|transfer|supervise|feedback|revisit|close|reopen`:
//! the closed-loop steps. Each checks the step against the demand's merged
//! state (the model refuses an invalid one, exit 1, nothing written), writes
//! one automerge change, flushes it, and prints the new event's id last.

use anyhow::Context;
use minqing_model::{Department, Note, RecordKind, Satisfaction, Transition, parse_date};

use crate::cli::DemandCmd;
use crate::error::usage;
use crate::home::Home;
use crate::output;

/// Runs one workflow step (`cmd` is one of the step variants).
pub fn run(home: &Home, cmd: DemandCmd) -> anyhow::Result<()> {
    let (typed, step) = parse(cmd)?;
    let (mut village, demand) = home.find_record(RecordKind::Demand, &typed)?;
    let v = &mut village;
    let event = v.record_step(&mut *crate::home::rng(), &home.author(), &demand, &step)?;
    home.save(v, "demand step")?;
    let status = v
        .demand_fold(&demand)
        .map(|f| f.status.name())
        .unwrap_or("?");
    output::line(&format!(
        "{} recorded on demand {demand}: now {status}",
        step.kind().name()
    ))?;
    output::line(event.as_str())?;
    home.compact_later(v.id());
    Ok(())
}

/// Checks a step's arguments (exit 2 on a bad value) before anything is read.
fn parse(cmd: DemandCmd) -> anyhow::Result<(String, Transition)> {
    let note = |flag: &str, raw: &str| Note::parse(raw).with_context(|| flag.to_owned());
    Ok(match cmd {
        DemandCmd::Handle { id } => (id, Transition::Handle),
        DemandCmd::Transfer { id, to, due } => {
            let department = Department::parse(&to).context("--to")?;
            let due = due.map(|d| parse_date(&d).context("--due")).transpose()?;
            (id, Transition::Transfer { department, due })
        }
        DemandCmd::Supervise { id, note: n } => (
            id,
            Transition::Supervise {
                note: note("--note", &n)?,
            },
        ),
        DemandCmd::Feedback { id, text } => (
            id,
            Transition::Feedback {
                text: note("--text", &text)?,
            },
        ),
        DemandCmd::Revisit {
            id,
            satisfaction,
            note: n,
        } => {
            let satisfaction = Satisfaction::parse(&satisfaction)
                .map_err(|e| usage(format!("--satisfaction: {e}")))?;
            let note = n.map(|n| note("--note", &n)).transpose()?;
            (id, Transition::Revisit { satisfaction, note })
        }
        DemandCmd::Close { id } => (id, Transition::Close),
        DemandCmd::Reopen { id, reason } => (
            id,
            Transition::Reopen {
                reason: note("--reason", &reason)?,
            },
        ),
        other => {
            return Err(usage(format!(
                "not a workflow step: {other:?} (this is a bug in minqing)"
            )));
        }
    })
}
