//! `minqing report monthly|ledger`: the supervisors' reports over the villages
//! held on this laptop, as a readable table (default), JSON, CSV or xlsx.
//! Dates are read in China Standard Time, as the model's reports do.

use anyhow::Context;
use chrono::NaiveDate;
use minqing_model::{Month, Table, parse_date};
use serde::Serialize;

use crate::cli::{ReportCmd, ReportOut, TodayArg};
use crate::home::{Home, Reader};
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
            let report = minqing_model::monthly_report(villages.iter().map(|v| &**v), month);
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
            let report =
                minqing_model::ledger_report(villages.iter().map(|v| &**v), from, to, today);
            emit(&report, &report.tables(), &out)
        }
    }
}

fn load(home: &Home, village: Option<String>) -> anyhow::Result<Vec<Reader>> {
    match village {
        Some(id) => Ok(vec![home.require_reader(id.trim())?]),
        None => home.readers(),
    }
}

/// Writes the report where asked (`minqing_sheet::write_report`)
/// and prints what it says to print.
pub fn emit<T: Serialize>(report: &T, tables: &[Table], out: &ReportOut) -> anyhow::Result<()> {
    let printed = minqing_sheet::write_report(report, tables, &out.targets())?;
    for note in &printed.stderr {
        crate::output::err(note);
    }
    output::line(&printed.stdout)
}
