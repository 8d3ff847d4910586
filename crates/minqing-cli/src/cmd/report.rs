//! `minqing report monthly|ledger`: the supervisors' reports over the villages
//! held on this laptop, as a readable table (default), JSON, CSV or xlsx.
//! Dates are read in China Standard Time, as the model's reports do.

use std::path::Path;

use anyhow::Context;
use chrono::NaiveDate;
use minqing_model::{Month, Table, Village, parse_date, render_tables};
use serde::Serialize;

use crate::cli::{ReportCmd, ReportOut, TodayArg};
use crate::home::Home;
use crate::output;

/// The day given by `--today`, else today in China Standard Time.
pub fn today_or(arg: &TodayArg) -> anyhow::Result<NaiveDate> {
    match &arg.today {
        Some(d) => Ok(parse_date(d).context("--today")?),
        None => Ok(crate::home::today()),
    }
}

/// Runs a report command.
pub fn run(home: &Home, cmd: ReportCmd) -> anyhow::Result<()> {
    match cmd {
        ReportCmd::Monthly {
            month,
            village,
            out,
        } => {
            let month = Month::parse(&month).context("--month")?;
            let villages = load(home, village)?;
            let report = minqing_model::monthly_report(&villages, month);
            emit(&report, &report.tables(), &out)
        }
        ReportCmd::Ledger {
            from,
            to,
            village,
            today,
            out,
        } => {
            let from = from.map(|d| parse_date(&d).context("--from")).transpose()?;
            let to = to.map(|d| parse_date(&d).context("--to")).transpose()?;
            let today = today_or(&today)?;
            let villages = load(home, village)?;
            let report = minqing_model::ledger_report(&villages, from, to, today);
            emit(&report, &report.tables(), &out)
        }
    }
}

fn load(home: &Home, village: Option<String>) -> anyhow::Result<Vec<Village>> {
    match village {
        Some(id) => Ok(vec![home.require_village(id.trim())?]),
        None => home.villages(),
    }
}

/// Writes the report where asked: the files first (each flushed to disk),
/// then stdout — JSON alone with `--json`; otherwise the paths written, or
/// the readable tables when no file was asked for.
pub fn emit<T: Serialize>(report: &T, tables: &[Table], out: &ReportOut) -> anyhow::Result<()> {
    let mut written: Vec<&Path> = Vec::new();
    if let Some(path) = &out.csv {
        minqing_model::write_csv(tables, path)
            .with_context(|| format!("--csv: cannot write {}", path.display()))?;
        written.push(path);
    }
    if let Some(path) = &out.xlsx {
        minqing_model::write_xlsx(tables, path)
            .with_context(|| format!("--xlsx: cannot write {}", path.display()))?;
        written.push(path);
    }
    if out.json {
        for p in &written {
            eprintln!("wrote {}", p.display());
        }
        return output::json(report);
    }
    if written.is_empty() {
        return output::line(render_tables(tables).trim_end());
    }
    for p in written {
        output::line(&p.display().to_string())?;
    }
    Ok(())
}
