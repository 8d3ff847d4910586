//! Supervisors' reports over one or many villages: the monthly duty report per
//! cadre and the demand ledger (问题台账). Both are pure functions of the
//! villages given (and of `today` for overdue), serialisable for `--json`, and
//! convertible to [`Table`]s for text, CSV and xlsx output.
//!
//! Definitions (monthly report for month M):
//! - A cadre is identified by name (the `cadre` field of visits, leaves and
//!   demand events). Listed: every cadre with a visit dated up to the end of M,
//!   a leave for a month up to M, or a demand opened or closed in M.
//! - `visits`, `visits_by_kind`: the cadre's visits dated in M.
//! - `households_visited`: distinct households among those visits.
//! - `households_assigned`: the households (as they are now) of the cadre's
//!   villages, i.e. the villages where the cadre has a visit dated up to the
//!   end of M or a leave for a month up to M (the document does not know
//!   relay assignments; these are the villages the cadre works in).
//! - `key_residents_visited`: distinct residents with a known key tag (老党员,
//!   困难户, 留守儿童, 独居老人, 残疾人, 低保户, 退役军人) met in M: the resident
//!   named by a visit, or, when a visit names none, every resident of the
//!   visited household (the whole household was visited).
//! - `key_residents_assigned`: the residents with a known key tag (as they are
//!   now) in the cadre's villages, the key-group counterpart of
//!   `households_assigned`.
//! - `leave`: the cadre's leaves for M (a leave is one per cadre and month).
//! - `makeups_owed`: the cadre's leaves for months up to M not settled by a
//!   补访 dated by the end of M ([`settle_leaves`]); `makeups_done`: the
//!   cadre's 补访 visits dated in M.
//! - `demands_opened`: demands the cadre opened in M; `demands_closed`:
//!   valid (unflagged) 销号 steps the cadre recorded in M.
//!
//! Times stored as unix milliseconds are read as dates in China Standard Time
//! (UTC+8, [`local_date`]).
//!
//! Ledger over `[from, to]` (demands by the date they were opened): collected,
//! closed (now 已销号), resolution rate = closed / collected (0 when none),
//! open demands by status, the overdue list (due before `today`, not closed),
//! counts by category and by department (the latest valid 转办's department;
//! `直办` when handled directly without a transfer; `未分派` otherwise), and the
//! satisfaction of the latest valid 回访 (`未回访` when none).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::Serialize;

use crate::duty::{month_of, settle_leaves};
use crate::ledger::{DemandStatus, EventKind, Fold, Satisfaction, fold};
use crate::table::{Cell, Table};
use crate::validate::{KNOWN_TAGS, Month, VisitKind, parse_date};
use crate::village::ReadVillage;

/// Offset of the dates in reports from UTC, in seconds (China Standard Time).
pub const REPORT_UTC_OFFSET_SECS: i32 = 8 * 3600;

/// The date (China Standard Time) of a time in unix milliseconds.
pub fn local_date(ms: i64) -> NaiveDate {
    let shifted = ms.saturating_add(i64::from(REPORT_UTC_OFFSET_SECS) * 1000);
    chrono::DateTime::from_timestamp_millis(shifted)
        .unwrap_or_default()
        .date_naive()
}

/// One cadre's line of the monthly report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CadreMonth {
    /// The cadre's name.
    pub cadre: String,
    /// Visits in the month.
    pub visits: usize,
    /// Visits in the month by kind (普遍走访, 重点走访, 补访; all three present).
    pub visits_by_kind: BTreeMap<String, usize>,
    /// Distinct households visited in the month.
    pub households_visited: usize,
    /// Households in the cadre's villages.
    pub households_assigned: usize,
    /// households_visited / households_assigned (0 when none assigned).
    pub coverage: f64,
    /// Distinct key-group residents met in the month.
    pub key_residents_visited: usize,
    /// Key-group residents in the cadre's villages.
    pub key_residents_assigned: usize,
    /// Leaves taken for the month.
    pub leave: usize,
    /// Leaves up to the month still owed a 补访 at its end.
    pub makeups_owed: usize,
    /// 补访 visits made in the month.
    pub makeups_done: usize,
    /// Demands the cadre opened in the month.
    pub demands_opened: usize,
    /// 销号 steps the cadre recorded in the month.
    pub demands_closed: usize,
    /// The cadre's villages (ids).
    pub villages: Vec<String>,
}

/// The monthly report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MonthlyReport {
    /// The month, `YYYY-MM`.
    pub month: String,
    /// One line per cadre, by name.
    pub cadres: Vec<CadreMonth>,
    /// Demands opened in the month (all cadres).
    pub demands_opened: usize,
    /// 销号 steps recorded in the month (all cadres).
    pub demands_closed: usize,
}

fn is_key_tag(tag: &str) -> bool {
    KNOWN_TAGS.iter().any(|(zh, _)| *zh == tag)
}

/// Builds the monthly report for `month` over `villages`.
pub fn monthly_report<'a, V: ReadVillage + ?Sized + 'a>(
    villages: impl IntoIterator<Item = &'a V>,
    month: Month,
) -> MonthlyReport {
    #[derive(Default)]
    struct Acc {
        visits: usize,
        by_kind: BTreeMap<String, usize>,
        households: BTreeSet<(String, String)>,
        key_residents: BTreeSet<(String, String)>,
        villages: BTreeSet<String>,
        makeups_done: usize,
        opened: usize,
        closed: usize,
    }
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    let mut household_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut key_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut all_leaves = Vec::new();
    let mut all_visits = Vec::new();
    let (mut opened_total, mut closed_total) = (0, 0);
    for v in villages {
        let vid = v.id().to_string();
        household_counts.insert(vid.clone(), v.households().len());
        // household id -> key residents in it
        let mut key_by_household: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut key_residents: BTreeSet<String> = BTreeSet::new();
        for r in v.residents().iter() {
            if r.tags.iter().any(|t| is_key_tag(t)) {
                key_by_household
                    .entry(r.household_id.clone())
                    .or_default()
                    .push(r.id.clone());
                key_residents.insert(r.id.clone());
            }
        }
        key_counts.insert(vid.clone(), key_residents.len());
        let visits = v.visits();
        for visit in visits.iter() {
            let Ok(date) = parse_date(&visit.date) else {
                continue;
            };
            let m = month_of(date);
            if m > month {
                continue;
            }
            let a = acc.entry(visit.cadre.clone()).or_default();
            a.villages.insert(vid.clone());
            if m != month {
                continue;
            }
            a.visits += 1;
            *a.by_kind.entry(visit.kind.clone()).or_default() += 1;
            if visit.kind == VisitKind::Makeup.as_str() {
                a.makeups_done += 1;
            }
            a.households
                .insert((vid.clone(), visit.household_id.clone()));
            match &visit.resident_id {
                Some(r) if key_residents.contains(r) => {
                    a.key_residents.insert((vid.clone(), r.clone()));
                }
                Some(_) => {}
                None => {
                    for r in key_by_household
                        .get(&visit.household_id)
                        .into_iter()
                        .flatten()
                    {
                        a.key_residents.insert((vid.clone(), r.clone()));
                    }
                }
            }
        }
        for leave in v.leaves().iter() {
            if leave.month().is_some_and(|m| m <= month) {
                acc.entry(leave.cadre.clone())
                    .or_default()
                    .villages
                    .insert(vid.clone());
            }
            all_leaves.push(leave.clone());
        }
        // `settle_leaves` reads the 补访 visits only.
        all_visits.extend(
            visits
                .iter()
                .filter(|v| v.kind == VisitKind::Makeup.as_str())
                .cloned(),
        );
        for d in v.demands().iter() {
            let Ok(id) = crate::id::Id::parse(&d.id) else {
                continue;
            };
            let f = fold(&v.demand_events(&id));
            if let Some(open) = f.steps.iter().find(|s| s.event.kind == EventKind::Opened)
                && month_of(local_date(open.event.at_ms)) == month
            {
                acc.entry(d.cadre.clone()).or_default().opened += 1;
                opened_total += 1;
            }
            for s in &f.steps {
                if s.flag.is_none()
                    && s.event.kind == EventKind::Closed
                    && month_of(local_date(s.event.at_ms)) == month
                {
                    acc.entry(s.event.cadre.clone()).or_default().closed += 1;
                    closed_total += 1;
                }
            }
        }
    }
    let settled = settle_leaves(&all_leaves, &all_visits);
    let mut leave_taken: BTreeMap<&str, usize> = BTreeMap::new();
    let mut owed: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &settled {
        let Some(m) = s.leave.month() else { continue };
        if m == month {
            *leave_taken.entry(&s.leave.cadre).or_default() += 1;
        }
        let settled_in_time = s
            .settled_on
            .as_deref()
            .and_then(|d| parse_date(d).ok())
            .is_some_and(|d| month_of(d) <= month);
        if m <= month && !settled_in_time {
            *owed.entry(&s.leave.cadre).or_default() += 1;
        }
    }
    let cadres = acc
        .into_iter()
        .map(|(cadre, a)| {
            let mut by_kind: BTreeMap<String, usize> =
                [VisitKind::Regular, VisitKind::Key, VisitKind::Makeup]
                    .iter()
                    .map(|k| (k.as_str().to_owned(), 0))
                    .collect();
            for (k, n) in a.by_kind {
                *by_kind.entry(k).or_default() += n;
            }
            let assigned: usize = a
                .villages
                .iter()
                .map(|v| household_counts.get(v).copied().unwrap_or(0))
                .sum();
            let key_assigned: usize = a
                .villages
                .iter()
                .map(|v| key_counts.get(v).copied().unwrap_or(0))
                .sum();
            let visited = a.households.len();
            CadreMonth {
                visits: a.visits,
                visits_by_kind: by_kind,
                households_visited: visited,
                households_assigned: assigned,
                coverage: ratio(visited, assigned),
                key_residents_visited: a.key_residents.len(),
                key_residents_assigned: key_assigned,
                leave: leave_taken.get(cadre.as_str()).copied().unwrap_or(0),
                makeups_owed: owed.get(cadre.as_str()).copied().unwrap_or(0),
                makeups_done: a.makeups_done,
                demands_opened: a.opened,
                demands_closed: a.closed,
                villages: a.villages.into_iter().collect(),
                cadre,
            }
        })
        .collect();
    MonthlyReport {
        month: month.to_string(),
        cadres,
        demands_opened: opened_total,
        demands_closed: closed_total,
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        // Counts are far below 2^53: exact as f64.
        part as f64 / whole as f64
    }
}

impl MonthlyReport {
    /// The report as one table (one row per cadre, and a 合计 row).
    pub fn tables(&self) -> Vec<Table> {
        let mut t = Table::new(
            format!("月度走访 {}", self.month),
            &[
                "干部",
                "走访",
                "普遍走访",
                "重点走访",
                "补访",
                "走访户数",
                "应访户数",
                "覆盖率",
                "重点人员",
                "请假",
                "待补访",
                "已补访",
                "受理诉求",
                "销号诉求",
            ],
        );
        let kind = |c: &CadreMonth, k: VisitKind| {
            Cell::count(c.visits_by_kind.get(k.as_str()).copied().unwrap_or(0))
        };
        for c in &self.cadres {
            t.push(vec![
                Cell::text(&c.cadre),
                Cell::count(c.visits),
                kind(c, VisitKind::Regular),
                kind(c, VisitKind::Key),
                kind(c, VisitKind::Makeup),
                Cell::count(c.households_visited),
                Cell::count(c.households_assigned),
                Cell::Percent(c.coverage),
                Cell::count(c.key_residents_visited),
                Cell::count(c.leave),
                Cell::count(c.makeups_owed),
                Cell::count(c.makeups_done),
                Cell::count(c.demands_opened),
                Cell::count(c.demands_closed),
            ]);
        }
        let sum = |f: fn(&CadreMonth) -> usize| Cell::count(self.cadres.iter().map(f).sum());
        t.push(vec![
            Cell::text("合计"),
            sum(|c| c.visits),
            Cell::count(
                self.cadres
                    .iter()
                    .map(|c| {
                        c.visits_by_kind
                            .get(VisitKind::Regular.as_str())
                            .copied()
                            .unwrap_or(0)
                    })
                    .sum(),
            ),
            Cell::count(
                self.cadres
                    .iter()
                    .map(|c| {
                        c.visits_by_kind
                            .get(VisitKind::Key.as_str())
                            .copied()
                            .unwrap_or(0)
                    })
                    .sum(),
            ),
            Cell::count(
                self.cadres
                    .iter()
                    .map(|c| {
                        c.visits_by_kind
                            .get(VisitKind::Makeup.as_str())
                            .copied()
                            .unwrap_or(0)
                    })
                    .sum(),
            ),
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            sum(|c| c.leave),
            sum(|c| c.makeups_owed),
            sum(|c| c.makeups_done),
            Cell::count(self.demands_opened),
            Cell::count(self.demands_closed),
        ]);
        vec![t]
    }
}

/// Counts of a group (category or department) in the ledger.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GroupCount {
    /// Demands collected.
    pub collected: usize,
    /// Of those, closed.
    pub closed: usize,
    /// closed / collected.
    pub resolution_rate: f64,
    /// Of those, overdue.
    pub overdue: usize,
}

/// An overdue demand in the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OverdueDemand {
    /// Demand id.
    pub id: String,
    /// Village id.
    pub village_id: String,
    /// Category.
    pub category: String,
    /// Department it was transferred to.
    pub department: Option<String>,
    /// Due date, `YYYY-MM-DD`.
    pub due: String,
    /// Days past due on `today`.
    pub days_overdue: i64,
    /// Status (受理 ...).
    pub status: String,
    /// Who opened it.
    pub cadre: String,
    /// What was asked.
    pub text: String,
}

/// The demand ledger report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LedgerReport {
    /// First opening date included, `YYYY-MM-DD`, if bounded.
    pub from: Option<String>,
    /// Last opening date included, if bounded.
    pub to: Option<String>,
    /// The day overdue is judged on.
    pub today: String,
    /// Demands opened in the range.
    pub collected: usize,
    /// Of those, 已销号 now.
    pub closed: usize,
    /// closed / collected, 0..1 (0 when none collected).
    pub resolution_rate: f64,
    /// Open demands by status (受理, 办理中, 已反馈, 已回访; all present).
    pub open_by_status: BTreeMap<String, usize>,
    /// Overdue demands, most overdue first.
    pub overdue: Vec<OverdueDemand>,
    /// Counts by category.
    pub by_category: BTreeMap<String, GroupCount>,
    /// Counts by department (`直办`, `未分派` for none).
    pub by_department: BTreeMap<String, GroupCount>,
    /// Satisfaction of the latest valid 回访 (满意, 基本满意, 不满意, 未回访; all present).
    pub satisfaction: BTreeMap<String, usize>,
}

/// Department key of a demand in the ledger.
fn department_of(f: &Fold) -> String {
    match &f.department {
        Some(d) => d.clone(),
        None if f.handled_directly => "直办".to_owned(),
        None => "未分派".to_owned(),
    }
}

/// Builds the ledger over demands opened in `[from, to]` (either bound
/// optional), judging overdue on `today`.
pub fn ledger_report<'a, V: ReadVillage + ?Sized + 'a>(
    villages: impl IntoIterator<Item = &'a V>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    today: NaiveDate,
) -> LedgerReport {
    let mut r = LedgerReport {
        from: from.map(|d| d.to_string()),
        to: to.map(|d| d.to_string()),
        today: today.to_string(),
        collected: 0,
        closed: 0,
        resolution_rate: 0.0,
        open_by_status: DemandStatus::ALL
            .iter()
            .filter(|s| **s != DemandStatus::Closed)
            .map(|s| (s.name().to_owned(), 0))
            .collect(),
        overdue: Vec::new(),
        by_category: BTreeMap::new(),
        by_department: BTreeMap::new(),
        satisfaction: Satisfaction::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .chain(["未回访".to_owned()])
            .map(|s| (s, 0))
            .collect(),
    };
    for v in villages {
        for d in v.demands().iter() {
            let Ok(id) = crate::id::Id::parse(&d.id) else {
                continue;
            };
            let f = fold(&v.demand_events(&id));
            let opened_ms = f
                .steps
                .iter()
                .find(|s| s.event.kind == EventKind::Opened)
                .map(|s| s.event.at_ms)
                .unwrap_or(0);
            let opened = local_date(opened_ms);
            if from.is_some_and(|f| opened < f) || to.is_some_and(|t| opened > t) {
                continue;
            }
            r.collected += 1;
            let closed = f.is_closed();
            let overdue = f.is_overdue(today);
            if closed {
                r.closed += 1;
            } else {
                *r.open_by_status
                    .entry(f.status.name().to_owned())
                    .or_default() += 1;
            }
            for g in [
                r.by_category.entry(d.category.clone()).or_default(),
                r.by_department.entry(department_of(&f)).or_default(),
            ] {
                g.collected += 1;
                g.closed += usize::from(closed);
                g.overdue += usize::from(overdue);
            }
            let sat = f
                .satisfaction
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|| "未回访".to_owned());
            *r.satisfaction.entry(sat).or_default() += 1;
            if overdue && let Some(due) = f.due {
                r.overdue.push(OverdueDemand {
                    id: d.id.clone(),
                    village_id: d.village_id.clone(),
                    category: d.category.clone(),
                    department: f.department.clone(),
                    due: due.to_string(),
                    days_overdue: (today - due).num_days(),
                    status: f.status.name().to_owned(),
                    cadre: d.cadre.clone(),
                    text: d.text.clone(),
                });
            }
        }
    }
    r.resolution_rate = ratio(r.closed, r.collected);
    for g in r
        .by_category
        .values_mut()
        .chain(r.by_department.values_mut())
    {
        g.resolution_rate = ratio(g.closed, g.collected);
    }
    r.overdue
        .sort_by(|a, b| (b.days_overdue, &a.id).cmp(&(a.days_overdue, &b.id)));
    r
}

impl LedgerReport {
    /// The report as tables: summary, open by status, overdue list, by
    /// category, by department, satisfaction.
    pub fn tables(&self) -> Vec<Table> {
        let range = match (&self.from, &self.to) {
            (None, None) => "全部".to_owned(),
            (f, t) => format!(
                "{} 至 {}",
                f.as_deref().unwrap_or("…"),
                t.as_deref().unwrap_or("…")
            ),
        };
        let mut summary = Table::new(format!("问题台账 {range}"), &["项目", "数值"]);
        summary.push(vec![Cell::text("收集"), Cell::count(self.collected)]);
        summary.push(vec![Cell::text("销号"), Cell::count(self.closed)]);
        summary.push(vec![
            Cell::text("解决率"),
            Cell::Percent(self.resolution_rate),
        ]);
        summary.push(vec![Cell::text("逾期"), Cell::count(self.overdue.len())]);
        summary.push(vec![Cell::text("统计日"), Cell::text(&self.today)]);
        let mut status = Table::new("未销号 按状态", &["状态", "件数"]);
        for s in DemandStatus::ALL {
            if let Some(n) = self.open_by_status.get(s.name()) {
                status.push(vec![Cell::text(s.name()), Cell::count(*n)]);
            }
        }
        let mut overdue = Table::new(
            "逾期清单",
            &[
                "诉求 id",
                "村",
                "类别",
                "部门",
                "到期",
                "逾期天数",
                "状态",
                "受理人",
                "内容",
            ],
        );
        for o in &self.overdue {
            overdue.push(vec![
                Cell::text(&o.id),
                Cell::text(&o.village_id),
                Cell::text(&o.category),
                Cell::text(o.department.as_deref().unwrap_or("")),
                Cell::text(&o.due),
                Cell::Int(o.days_overdue),
                Cell::text(&o.status),
                Cell::text(&o.cadre),
                Cell::text(&o.text),
            ]);
        }
        let group = |title: &str, head: &str, map: &BTreeMap<String, GroupCount>| {
            let mut t = Table::new(title, &[head, "收集", "销号", "解决率", "逾期"]);
            for (name, g) in map {
                t.push(vec![
                    Cell::text(name),
                    Cell::count(g.collected),
                    Cell::count(g.closed),
                    Cell::Percent(g.resolution_rate),
                    Cell::count(g.overdue),
                ]);
            }
            t
        };
        let mut sat = Table::new("满意度", &["满意度", "件数", "占比"]);
        let order = Satisfaction::ALL
            .iter()
            .map(|s| s.as_str())
            .chain(["未回访"]);
        for name in order {
            let n = self.satisfaction.get(name).copied().unwrap_or(0);
            sat.push(vec![
                Cell::text(name),
                Cell::count(n),
                Cell::Percent(ratio(n, self.collected)),
            ]);
        }
        vec![
            summary,
            status,
            overdue,
            group("按类别", "类别", &self.by_category),
            group("按部门", "部门", &self.by_department),
            sat,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duty::LeaveReason;
    use crate::id::Id;
    use crate::ledger::{Department, Transition};
    use crate::testkit::*;
    use crate::validate::{Month, Note, VisitKind::*};
    use crate::village::Village;

    fn step(v: &mut Village, cadre: &str, day: &str, d: &Id, t: Transition) {
        v.record_step(
            &mut rng(ms(day) as u64),
            &author(DEV_A, cadre, ms(day)),
            d,
            &t,
        )
        .unwrap();
    }

    fn note(s: &str) -> Note {
        Note::parse(s).unwrap()
    }

    fn revisit(s: &str) -> Transition {
        Transition::Revisit {
            satisfaction: Satisfaction::parse(s).unwrap(),
            note: None,
        }
    }

    fn leave(v: &mut Village, cadre: &str, month: &str, day: &str) {
        v.add_leave(
            &mut rng(ms(day) as u64),
            &author(DEV_A, cadre, ms(day)),
            Month::parse(month).unwrap(),
            &LeaveReason::parse("县里培训").unwrap(),
        )
        .unwrap();
    }

    /// Two villages with a known March 2026 (see the comments for the
    /// hand-computed figures).
    fn march() -> (Village, Village, Id, Id, Id) {
        let mut r = rng(42);
        let li = |day: &str| author(DEV_A, "李书记", ms(day));
        let wang = |day: &str| author(DEV_A, "王芳", ms(day));
        let zhao = |day: &str| author(DEV_A, "赵强", ms(day));
        let setup = li("2026-01-01");
        // V1: 4 households; key residents r1 (老党员, h1), r3 (困难户, h2),
        // r5 (独居老人, h4); r6 has a free tag only.
        let mut v1 = village("V1", "小河村");
        let h1 = household(&mut v1, &mut r, &setup, "小河村1组1号");
        let h2 = household(&mut v1, &mut r, &setup, "小河村1组2号");
        let h3 = household(&mut v1, &mut r, &setup, "小河村1组3号");
        let h4 = household(&mut v1, &mut r, &setup, "小河村1组4号");
        let r1 = resident(&mut v1, &mut r, &setup, &h1, "张大爷", &["老党员"]);
        resident(&mut v1, &mut r, &setup, &h1, "张小明", &[]);
        let r3 = resident(&mut v1, &mut r, &setup, &h2, "刘婶", &["needy"]);
        resident(&mut v1, &mut r, &setup, &h3, "陈三", &[]);
        resident(&mut v1, &mut r, &setup, &h4, "周奶奶", &["独居老人"]);
        resident(&mut v1, &mut r, &setup, &h4, "周六", &["种植大户"]);
        // V2: 2 households; s1 (留守儿童, g1).
        let mut v2 = village("V2", "大河村");
        let g1 = household(&mut v2, &mut r, &setup, "大河村1号");
        let g2 = household(&mut v2, &mut r, &setup, "大河村2号");
        let s1 = resident(&mut v2, &mut r, &setup, &g1, "孙小小", &["留守儿童"]);
        let s2 = resident(&mut v2, &mut r, &setup, &g2, "孙大", &[]);

        // 李书记, V1. March: 4 visits (普遍 2, 重点 1, 补访 1), households
        // h1 h2 h3 = 3 of 4, key residents r1 (household visit) and r3 = 2.
        visit(
            &mut v1,
            &mut r,
            &li("2026-02-27"),
            &h1,
            None,
            Regular,
            "2026-02-27",
        );
        visit(
            &mut v1,
            &mut r,
            &li("2026-03-02"),
            &h1,
            None,
            Regular,
            "2026-03-02",
        );
        visit(
            &mut v1,
            &mut r,
            &li("2026-03-03"),
            &h2,
            Some(&r3),
            Regular,
            "2026-03-03",
        );
        visit(
            &mut v1,
            &mut r,
            &li("2026-03-05"),
            &h1,
            Some(&r1),
            Key,
            "2026-03-05",
        );
        visit(
            &mut v1,
            &mut r,
            &li("2026-03-10"),
            &h3,
            None,
            Makeup,
            "2026-03-10",
        );
        visit(
            &mut v1,
            &mut r,
            &li("2026-04-01"),
            &h4,
            None,
            Regular,
            "2026-04-01",
        );
        visit(
            &mut v1,
            &mut r,
            &li("2026-04-02"),
            &h4,
            None,
            Makeup,
            "2026-04-02",
        );
        // Leave for February (settled by the 03-10 补访) and for March (owed
        // at the end of March; the April 补访 does not count yet).
        leave(&mut v1, "李书记", "2026-02", "2026-02-01");
        leave(&mut v1, "李书记", "2026-03", "2026-03-01");

        // 王芳: V1 h4 (household visit: r5 key, r6 free tag), V2 g1 with s1
        // (key), V2 g2. 3 visits (普遍 2, 重点 1), 3 households of 4 + 2 = 6,
        // key residents 2.
        visit(
            &mut v1,
            &mut r,
            &wang("2026-03-15"),
            &h4,
            None,
            Regular,
            "2026-03-15",
        );
        visit(
            &mut v2,
            &mut r,
            &wang("2026-03-16"),
            &g1,
            Some(&s1),
            Key,
            "2026-03-16",
        );
        visit(
            &mut v2,
            &mut r,
            &wang("2026-03-20"),
            &g2,
            None,
            Regular,
            "2026-03-20",
        );

        // 赵强: visited V2 in January, on leave for January, never made up.
        visit(
            &mut v2,
            &mut r,
            &zhao("2026-01-10"),
            &g1,
            None,
            Regular,
            "2026-01-10",
        );
        leave(&mut v2, "赵强", "2026-01", "2026-01-02");

        // Demands. d2 (李书记, 医疗, opened Feb) closed by 李书记 on 03-02.
        let d2 = demand(&mut v1, &mut r, &li("2026-02-20"), &r3, "医疗");
        step(&mut v1, "李书记", "2026-02-21", &d2, Transition::Handle);
        step(
            &mut v1,
            "李书记",
            "2026-02-25",
            &d2,
            Transition::Feedback {
                text: note("已联系卫生院"),
            },
        );
        step(&mut v1, "李书记", "2026-03-01", &d2, revisit("满意"));
        step(&mut v1, "李书记", "2026-03-02", &d2, Transition::Close);
        // d1 (李书记, 道路, opened 03-04) transferred, due 03-20: overdue.
        let d1 = demand(&mut v1, &mut r, &li("2026-03-04"), &r1, "道路");
        step(
            &mut v1,
            "李书记",
            "2026-03-05",
            &d1,
            Transition::Transfer {
                department: Department::parse("镇交通所").unwrap(),
                due: Some(date("2026-03-20")),
            },
        );
        // d3 (王芳, 道路, V2, opened 03-16) closed by 王芳 on 03-20, 不满意.
        let d3 = demand(&mut v2, &mut r, &wang("2026-03-16"), &s2, "道路");
        step(&mut v2, "王芳", "2026-03-17", &d3, Transition::Handle);
        step(
            &mut v2,
            "王芳",
            "2026-03-18",
            &d3,
            Transition::Feedback {
                text: note("已答复"),
            },
        );
        step(&mut v2, "王芳", "2026-03-19", &d3, revisit("不满意"));
        step(&mut v2, "王芳", "2026-03-20", &d3, Transition::Close);
        (v1, v2, d1, d2, d3)
    }

    fn kinds(regular: usize, key: usize, makeup: usize) -> BTreeMap<String, usize> {
        [("普遍走访", regular), ("重点走访", key), ("补访", makeup)]
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect()
    }

    #[test]
    fn monthly_report_matches_a_hand_computed_month() {
        let (v1, v2, ..) = march();
        let rep = monthly_report([&v1, &v2], Month::parse("2026-03").unwrap());
        assert_eq!(rep.month, "2026-03");
        let names: Vec<&str> = rep.cadres.iter().map(|c| c.cadre.as_str()).collect();
        assert_eq!(names, ["李书记", "王芳", "赵强"]);
        let li = &rep.cadres[0];
        assert_eq!(
            (
                li.visits,
                &li.visits_by_kind,
                li.households_visited,
                li.households_assigned
            ),
            (4, &kinds(2, 1, 1), 3, 4)
        );
        assert_eq!(li.coverage, 0.75);
        assert_eq!(li.key_residents_visited, 2);
        assert_eq!(li.key_residents_assigned, 3, "r1, r3, r5 of V1");
        assert_eq!((li.leave, li.makeups_owed, li.makeups_done), (1, 1, 1));
        assert_eq!((li.demands_opened, li.demands_closed), (1, 1));
        assert_eq!(li.villages, ["V1"]);
        let wang = &rep.cadres[1];
        assert_eq!(
            (
                wang.visits,
                &wang.visits_by_kind,
                wang.households_visited,
                wang.households_assigned
            ),
            (3, &kinds(2, 1, 0), 3, 6)
        );
        assert_eq!(wang.coverage, 0.5);
        assert_eq!(wang.key_residents_visited, 2);
        assert_eq!(
            (wang.leave, wang.makeups_owed, wang.makeups_done),
            (0, 0, 0)
        );
        assert_eq!((wang.demands_opened, wang.demands_closed), (1, 1));
        assert_eq!(wang.villages, ["V1", "V2"]);
        let zhao = &rep.cadres[2];
        assert_eq!(
            (
                zhao.visits,
                zhao.households_visited,
                zhao.households_assigned
            ),
            (0, 0, 2)
        );
        assert_eq!(
            (zhao.leave, zhao.makeups_owed, zhao.makeups_done),
            (0, 1, 0)
        );
        assert_eq!((rep.demands_opened, rep.demands_closed), (2, 2));

        // April: 李书记's March leave is settled by the 04-02 补访.
        let april = monthly_report([&v1, &v2], Month::parse("2026-04").unwrap());
        let li = &april.cadres[0];
        assert_eq!(
            (li.visits, li.leave, li.makeups_owed, li.makeups_done),
            (2, 0, 0, 1)
        );
        // February: the February leave is owed at the end of February.
        let feb = monthly_report([&v1, &v2], Month::parse("2026-02").unwrap());
        assert_eq!(feb.cadres[0].cadre, "李书记");
        assert_eq!((feb.cadres[0].leave, feb.cadres[0].makeups_owed), (1, 1));
        assert_eq!(feb.demands_opened, 1);

        let json = serde_json::to_value(&rep).unwrap();
        for key in [
            "cadre",
            "visits",
            "visits_by_kind",
            "households_visited",
            "households_assigned",
            "key_residents_visited",
            "key_residents_assigned",
            "leave",
            "makeups_owed",
            "makeups_done",
            "demands_opened",
            "demands_closed",
        ] {
            assert!(json["cadres"][0].get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["cadres"][0]["visits_by_kind"]["补访"], 1);
    }

    #[test]
    fn ledger_matches_a_hand_computed_month() {
        let (v1, v2, d1, ..) = march();
        let today = date("2026-03-31");
        let all = ledger_report([&v1, &v2], None, None, today);
        assert_eq!((all.collected, all.closed), (3, 2));
        assert!((all.resolution_rate - 2.0 / 3.0).abs() < 1e-12);
        let open: Vec<(&str, usize)> = all
            .open_by_status
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(open.len(), 5, "受理, 办理中, 已办结, 已反馈, 已回访");
        assert_eq!(all.open_by_status["办理中"], 1);
        assert_eq!(all.open_by_status.values().sum::<usize>(), 1);
        assert_eq!(all.overdue.len(), 1);
        let o = &all.overdue[0];
        assert_eq!(
            (o.id.as_str(), o.due.as_str(), o.days_overdue),
            (d1.as_str(), "2026-03-20", 11)
        );
        assert_eq!(o.department.as_deref(), Some("镇交通所"));
        assert_eq!(
            all.by_category["道路"],
            GroupCount {
                collected: 2,
                closed: 1,
                resolution_rate: 0.5,
                overdue: 1
            }
        );
        assert_eq!(
            all.by_category["医疗"],
            GroupCount {
                collected: 1,
                closed: 1,
                resolution_rate: 1.0,
                overdue: 0
            }
        );
        assert_eq!(
            all.by_department["镇交通所"],
            GroupCount {
                collected: 1,
                closed: 0,
                resolution_rate: 0.0,
                overdue: 1
            }
        );
        assert_eq!(
            all.by_department["直办"],
            GroupCount {
                collected: 2,
                closed: 2,
                resolution_rate: 1.0,
                overdue: 0
            }
        );
        let sat: Vec<(&str, usize)> = all
            .satisfaction
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(sat.len(), 4);
        assert_eq!(
            (
                all.satisfaction["满意"],
                all.satisfaction["不满意"],
                all.satisfaction["未回访"],
                all.satisfaction["基本满意"]
            ),
            (1, 1, 1, 0)
        );

        // March only: d1 and d3.
        let march = ledger_report(
            [&v1, &v2],
            Some(date("2026-03-01")),
            Some(date("2026-03-31")),
            today,
        );
        assert_eq!(
            (march.collected, march.closed, march.resolution_rate),
            (2, 1, 0.5)
        );
        // Nothing in range: rate 0, not NaN.
        let none = ledger_report(
            [&v1, &v2],
            Some(date("2025-01-01")),
            Some(date("2025-01-31")),
            today,
        );
        assert_eq!((none.collected, none.resolution_rate), (0, 0.0));
        // Before the due date, nothing is overdue.
        assert!(
            ledger_report([&v1, &v2], None, None, date("2026-03-20"))
                .overdue
                .is_empty()
        );

        let json = serde_json::to_value(&all).unwrap();
        for key in [
            "collected",
            "closed",
            "resolution_rate",
            "open_by_status",
            "overdue",
            "by_category",
            "by_department",
            "satisfaction",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
    }

    /// The tables a report gives, cell by cell (what `minqing-sheet` draws as
    /// text and writes to CSV and xlsx: row `r` of a table is row `r + 1` of
    /// its sheet, under the header).
    #[test]
    fn reports_as_tables() {
        let (v1, v2, ..) = march();
        let rep = monthly_report([&v1, &v2], Month::parse("2026-03").unwrap());
        let m = &rep.tables()[0];
        assert_eq!(m.title, "月度走访 2026-03");
        assert_eq!(m.columns[0], "干部");
        assert_eq!(m.columns[7], "覆盖率");
        assert_eq!(m.cell(0, 0), &Cell::text("李书记"));
        assert_eq!(m.cell(0, 1), &Cell::Int(4));
        assert_eq!(m.cell(0, 7), &Cell::Percent(0.75));
        assert_eq!(m.cell(0, 7).display(), "75.0%");
        assert_eq!(m.cell(1, 6), &Cell::Int(6));
        assert_eq!(m.cell(3, 0), &Cell::text("合计"));
        assert_eq!(m.cell(3, 1), &Cell::Int(7));
        let ledger = ledger_report([&v1, &v2], None, None, date("2026-03-31"));
        let lt = ledger.tables();
        let titles: Vec<&str> = lt.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles[0], "问题台账 全部");
        let s = &lt[0];
        assert_eq!(s.cell(0, 0), &Cell::text("收集"));
        assert_eq!(s.cell(0, 1), &Cell::Int(3));
        assert_eq!(s.cell(2, 0), &Cell::text("解决率"));
        let Cell::Percent(rate) = s.cell(2, 1) else {
            panic!("解决率 is {:?}", s.cell(2, 1));
        };
        assert!((rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.cell(2, 1).display(), "66.7%");
        let o = lt.iter().find(|t| t.title == "逾期清单").unwrap();
        assert_eq!(o.cell(0, 5), &Cell::Int(11));
    }
}
