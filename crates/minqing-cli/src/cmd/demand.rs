//! `minqing demand open|list|show`; the workflow steps (handle, transfer, ...)
//! are in `cmd/workflow.rs`.

use anyhow::Context;
use minqing_model::{
    Category, DemandStatus, DemandText, DemandView, NewDemand, RecordKind, WorkflowError,
};

use crate::cli::DemandCmd;
use crate::error::usage;
use crate::home::Home;
use crate::output;

use super::report::today_or;
use super::workflow;

pub fn run(home: &Home, cmd: DemandCmd) -> anyhow::Result<()> {
    match cmd {
        DemandCmd::Open {
            resident,
            category,
            text,
        } => {
            let category = Category::parse(&category).context("--category")?;
            let text = DemandText::parse(&text).context("--text")?;
            let (mut village, resident) = resident_anywhere(home, &resident)?;
            let v = &mut village;
            let new = NewDemand {
                resident,
                category,
                text,
            };
            let id = v.open_demand(&mut *crate::home::rng(), &home.author(), &new)?;
            home.save(v, "demand")?;
            output::line(&format!(
                "opened demand ({}) 受理 in {}",
                new.category,
                v.id()
            ))?;
            output::line(id.as_str())?;
            home.compact_later(v.id());
            Ok(())
        }
        DemandCmd::List {
            village,
            status,
            overdue,
            today,
            json,
        } => list(home, village, status, overdue, &today, json.json),
        DemandCmd::Show { id, today, json } => show(home, &id, &today, json.json),
        step => workflow::run(home, step),
    }
}

/// Parses `--status`, as a usage error (exit 2) when unknown.
fn parse_status(raw: &str) -> anyhow::Result<DemandStatus> {
    DemandStatus::parse(raw).map_err(|e: WorkflowError| usage(format!("--status: {e}")))
}

fn list(
    home: &Home,
    village: Option<String>,
    status: Option<String>,
    overdue: bool,
    today: &crate::cli::TodayArg,
    json: bool,
) -> anyhow::Result<()> {
    let status = status.as_deref().map(parse_status).transpose()?;
    let today = today_or(today)?;
    let villages = match village {
        Some(id) => vec![home.require_reader(id.trim())?],
        None => home.readers()?,
    };
    let all: Vec<DemandView> = villages
        .iter()
        .flat_map(|v| {
            v.demands()
                .iter()
                .filter(|d| status.is_none_or(|s| d.status == s.name()))
                .filter(|d| !overdue || d.is_overdue(today))
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    if json {
        return output::json(&all);
    }
    let rows: Vec<Vec<String>> = all
        .into_iter()
        .map(|d| {
            let late = if d.is_overdue(today) { " 逾期" } else { "" };
            vec![
                china_time(&d.opened_at)
                    .get(..10)
                    .unwrap_or_default()
                    .to_owned(),
                d.status.clone(),
                d.category.clone(),
                output::opt(&d.department),
                d.due
                    .clone()
                    .map(|x| format!("{x}{late}"))
                    .unwrap_or_else(|| "-".to_owned()),
                d.id.clone(),
                output::clip(&d.text, 40),
            ]
        })
        .collect();
    output::table(
        &[
            "受理日期",
            "状态",
            "类别",
            "部门",
            "期限",
            "诉求 id",
            "内容",
        ],
        &rows,
        "no demands match",
    )
}

/// The Chinese label of an event's payload field (unknown ones as stored).
fn field_label(key: &str) -> &str {
    match key {
        "department" => "部门",
        "due" => "期限",
        "note" => "备注",
        "text" => "答复",
        "satisfaction" => "满意度",
        "reason" => "原因",
        "answer" => "办结答复",
        "account" => "账号",
        "role" => "角色",
        other => other,
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM` in China Standard Time (as reports
/// read dates); the input as is if it does not parse.
fn china_time(at: &str) -> String {
    let cst = chrono::FixedOffset::east_opt(minqing_model::report::REPORT_UTC_OFFSET_SECS);
    match (chrono::DateTime::parse_from_rfc3339(at), cst) {
        (Ok(t), Some(cst)) => t.with_timezone(&cst).format("%Y-%m-%d %H:%M").to_string(),
        _ => at.to_owned(),
    }
}

fn show(home: &Home, typed: &str, today: &crate::cli::TodayArg, json: bool) -> anyhow::Result<()> {
    let today = today_or(today)?;
    let (village, id) = home.find_record(RecordKind::Demand, typed)?;
    let d = village
        .demand(&id)
        .context("the demand vanished while reading")?;
    let overdue = d.is_overdue(today);
    if json {
        // The model's view: the same object `resident show --json` lists.
        return output::json(&d);
    }
    output::line(&format!("诉求  {}", d.id))?;
    output::line(&format!("状态  {}", d.status))?;
    output::line(&format!("类别  {}", d.category))?;
    output::line(&format!("内容  {}", d.text))?;
    output::line(&format!(
        "居民  {} (户 {}, 村 {})",
        d.resident_id, d.household_id, d.village_id
    ))?;
    output::line(&format!("部门  {}", output::opt(&d.department)))?;
    let due = match &d.due {
        Some(due) if overdue => format!("{due} (逾期 overdue as of {today})"),
        Some(due) => due.clone(),
        None => "-".to_owned(),
    };
    output::line(&format!("期限  {due}"))?;
    if let Some(s) = &d.satisfaction {
        output::line(&format!("满意度 {s}"))?;
    }
    if d.flagged > 0 {
        output::line(&format!(
            "注意  {} step(s) recorded concurrently were kept but not applied (⚠ below)",
            d.flagged
        ))?;
    }
    output::line(&format!("时间线 ({})", d.events.len()))?;
    for e in &d.events {
        let details: Vec<String> = e
            .fields
            .iter()
            .map(|(k, v)| format!("{}: {v}", field_label(k)))
            .collect();
        let mut line = format!("  {}  {}  {}", china_time(&e.at), e.kind_name, e.cadre);
        if !details.is_empty() {
            line.push_str("  ");
            line.push_str(&output::clip(&details.join("; "), 80));
        }
        output::line(&line)?;
        if let Some(flag) = &e.flag {
            output::line(&format!("      ⚠ 已标记: {flag}"))?;
        }
    }
    Ok(())
}

/// The resident named by `typed` in any village held: by id or prefix
/// through the index (one village loaded), by name over every village — the
/// answers and errors of [`crate::lookup::resident`] over every village.
fn resident_anywhere(
    home: &Home,
    typed: &str,
) -> anyhow::Result<(minqing_model::Village, minqing_model::Id)> {
    let mut finder = home.index()?;
    if let Ok((doc, id)) = finder.find(RecordKind::Resident, typed)
        && let Some(v) = finder.take(&doc)?
        && v.contains(RecordKind::Resident, &id)
    {
        return Ok((v, id));
    }
    let mut all = home.villages()?;
    let (vi, id) = crate::lookup::resident(&all, typed, None).context("--resident")?;
    Ok((all.swap_remove(vi), id))
}
