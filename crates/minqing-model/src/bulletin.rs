//! The monthly supervision bulletin (督查通报): visit coverage by area, the
//! cadres named for missed visits (点名) and those on leave, and how the
//! month's demands were handled.
//!
//! Every figure is read off the reports the dashboard and `report … --json`
//! use — [`monthly_report`] (per area and over the whole scope),
//! [`ledger_report`] over the demands opened in the month, [`settle_leaves`]
//! and the demand fold — never counted a second way. Definitions:
//!
//! - Coverage of an area: the sums over the cadres of the area's monthly
//!   report of `households_assigned` (应访户数), `households_visited` (已访),
//!   `key_residents_assigned` and `key_residents_visited`; coverage = visited /
//!   due (0 when none due). The 合计 row is the same over the whole scope.
//! - 点名 ([`missed_visits`]): a cadre with households due, not all of them
//!   visited in the month, and no leave for the month. A cadre with a leave
//!   for the month is listed under 请假 instead (whether or not they missed),
//!   with the date of the 补访 that settled the leave, if one has.
//! - Demands: the ledger over demands opened in the month, overdue judged on
//!   `today`. Satisfaction ([`revisits_in`]): per demand, the latest valid 回访
//!   dated in the month; 满意率 = (满意 + 基本满意) / demands revisited.
//!
//! Only cadres' names are in it: no resident is named, no number shown.

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};
use serde::Serialize;

use crate::duty::{LeaveStatus, month_of, settle_leaves};
use crate::ledger::{DemandStatus, EventKind, Satisfaction, fold};
use crate::report::{LedgerReport, MonthlyReport, ledger_report, local_date, monthly_report};
use crate::table::{Cell, Table};
use crate::validate::{Month, VisitKind};
use crate::village::ReadVillage;

/// Visit coverage of one area (a township, a village, or the whole scope).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Coverage {
    /// The area's name.
    pub area: String,
    /// Households due (the cadres' `households_assigned`, summed).
    pub households_due: usize,
    /// Households visited (the cadres' `households_visited`, summed).
    pub households_visited: usize,
    /// visited / due (0 when none due).
    pub coverage: f64,
    /// Key-group residents due (`key_residents_assigned`, summed).
    pub key_due: usize,
    /// Key-group residents met (`key_residents_visited`, summed).
    pub key_visited: usize,
}

impl Coverage {
    /// The coverage of `area` as its monthly report gives it.
    pub fn of(area: impl Into<String>, report: &MonthlyReport) -> Coverage {
        let sum = |f: fn(&crate::report::CadreMonth) -> usize| -> usize {
            report.cadres.iter().map(f).sum()
        };
        let due = sum(|c| c.households_assigned);
        let visited = sum(|c| c.households_visited);
        Coverage {
            area: area.into(),
            households_due: due,
            households_visited: visited,
            coverage: ratio(visited, due),
            key_due: sum(|c| c.key_residents_assigned),
            key_visited: sum(|c| c.key_residents_visited),
        }
    }
}

/// A cadre named in the bulletin: missed visits and no leave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Missed {
    /// The cadre.
    pub cadre: String,
    /// The cadre's villages (ids, as in the monthly report).
    pub villages: Vec<String>,
    /// Households visited in the month.
    pub households_visited: usize,
    /// Households due.
    pub households_due: usize,
}

/// A cadre with a leave for the month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OnLeave {
    /// The cadre.
    pub cadre: String,
    /// The cadre's villages (ids).
    pub villages: Vec<String>,
    /// Households visited in the month.
    pub households_visited: usize,
    /// Households due.
    pub households_due: usize,
    /// Date of the 补访 that settled the leave, `YYYY-MM-DD`; `None`: not yet.
    pub makeup_on: Option<String>,
}

/// Who missed the month's visits: named (no leave) and on leave.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MissedVisits {
    /// 点名: households due, not all visited, no leave for the month.
    pub named: Vec<Missed>,
    /// 请假: a leave for the month, with its 补访 if made.
    pub on_leave: Vec<OnLeave>,
}

/// Splits the cadres of `report` into those named for missed visits and
/// those on leave for its month; `leaves` are [`settle_leaves`]'s answer
/// over the same villages (for whether the make-up visit was done).
pub fn missed_visits(report: &MonthlyReport, leaves: &[LeaveStatus]) -> MissedVisits {
    let mut out = MissedVisits::default();
    for c in &report.cadres {
        if c.leave > 0 {
            let makeup_on = leaves
                .iter()
                .find(|s| s.leave.cadre == c.cadre && s.leave.month == report.month)
                .and_then(|s| s.settled_on.clone());
            out.on_leave.push(OnLeave {
                cadre: c.cadre.clone(),
                villages: c.villages.clone(),
                households_visited: c.households_visited,
                households_due: c.households_assigned,
                makeup_on,
            });
        } else if c.households_assigned > 0 && c.households_visited < c.households_assigned {
            out.named.push(Missed {
                cadre: c.cadre.clone(),
                villages: c.villages.clone(),
                households_visited: c.households_visited,
                households_due: c.households_assigned,
            });
        }
    }
    out
}

/// Every leave in `villages` with the 补访 that settled it ([`settle_leaves`]
/// over all their leaves and make-up visits, whatever their date).
pub fn leave_statuses<'a, V: ReadVillage + ?Sized + 'a>(
    villages: impl IntoIterator<Item = &'a V>,
) -> Vec<LeaveStatus> {
    let mut leaves = Vec::new();
    let mut makeups = Vec::new();
    for v in villages {
        leaves.extend(v.leaves().iter().cloned());
        makeups.extend(
            v.visits()
                .iter()
                .filter(|x| x.kind == VisitKind::Makeup.as_str())
                .cloned(),
        );
    }
    settle_leaves(&leaves, &makeups)
}

/// Satisfaction of the demands revisited in `month`: per demand, the latest
/// valid 回访 dated (China time) in the month. All three values are present.
pub fn revisits_in<'a, V: ReadVillage + ?Sized + 'a>(
    villages: impl IntoIterator<Item = &'a V>,
    month: Month,
) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = Satisfaction::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for v in villages {
        for d in v.demands().iter() {
            let Ok(id) = crate::id::Id::parse(&d.id) else {
                continue;
            };
            let f = fold(&v.demand_events(&id));
            let latest = f
                .steps
                .iter()
                .filter(|s| s.flag.is_none() && s.event.kind == EventKind::Revisited)
                .filter(|s| month_of(local_date(s.event.at_ms)) == month)
                .filter_map(|s| {
                    Satisfaction::parse(s.event.fields.get("satisfaction")?.as_str()).ok()
                })
                .next_back();
            if let Some(s) = latest {
                *out.entry(s.as_str().to_owned()).or_default() += 1;
            }
        }
    }
    out
}

/// The bulletin of one scope for one month.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bulletin {
    /// The month, `YYYY-MM`.
    pub month: String,
    /// The day it was made (overdue is judged on it), `YYYY-MM-DD`.
    pub today: String,
    /// Coverage by area, in the order given.
    pub areas: Vec<Coverage>,
    /// Coverage of the whole scope (合计).
    pub total: Coverage,
    /// Cadres named and on leave (village ids replaced by names).
    pub missed: MissedVisits,
    /// The ledger of the demands opened in the month.
    pub ledger: LedgerReport,
    /// Demands revisited in the month, by satisfaction.
    pub revisits: BTreeMap<String, usize>,
    /// Demands revisited in the month.
    pub revisited: usize,
    /// (满意 + 基本满意) / revisited (0 when none).
    pub satisfaction_rate: f64,
}

/// The first and last day of `month`.
pub fn month_range(month: Month) -> Option<(NaiveDate, NaiveDate)> {
    let first = NaiveDate::from_ymd_opt(month.year, month.month, 1)?;
    let last = first.checked_add_months(Months::new(1))?.pred_opt()?;
    Some((first, last))
}

/// Builds the bulletin for `month` over `areas` (each a name and its
/// villages; the scope is all of them), naming villages by `names` (id →
/// name; an id not there is shown as is), overdue judged on `today`.
pub fn bulletin<'a, V: ReadVillage + ?Sized + 'a>(
    areas: &[(String, Vec<&'a V>)],
    names: &BTreeMap<String, String>,
    month: Month,
    today: NaiveDate,
) -> Bulletin {
    let all: Vec<&V> = areas.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let scope = monthly_report(all.iter().copied(), month);
    let coverage = areas
        .iter()
        .map(|(name, vs)| Coverage::of(name.clone(), &monthly_report(vs.iter().copied(), month)))
        .collect();
    let mut missed = missed_visits(&scope, &leave_statuses(all.iter().copied()));
    let name_all = |ids: &mut Vec<String>| {
        for id in ids.iter_mut() {
            if let Some(n) = names.get(id.as_str()) {
                id.clone_from(n);
            }
        }
    };
    for m in &mut missed.named {
        name_all(&mut m.villages);
    }
    for m in &mut missed.on_leave {
        name_all(&mut m.villages);
    }
    let (from, to) = month_range(month).map_or((None, None), |(f, t)| (Some(f), Some(t)));
    let ledger = ledger_report(all.iter().copied(), from, to, today);
    let revisits = revisits_in(all.iter().copied(), month);
    let revisited: usize = revisits.values().sum();
    let good: usize = [Satisfaction::Satisfied, Satisfaction::Basic]
        .iter()
        .map(|s| revisits.get(s.as_str()).copied().unwrap_or(0))
        .sum();
    Bulletin {
        month: month.to_string(),
        today: today.to_string(),
        areas: coverage,
        total: Coverage::of("合计", &scope),
        missed,
        ledger,
        revisits,
        revisited,
        satisfaction_rate: ratio(good, revisited),
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

impl Bulletin {
    /// The bulletin as tables, one per section: 走访覆盖, 点名, 请假, 诉求办理,
    /// 回访满意度 (`area` heads the coverage table: 乡镇 or 村).
    pub fn tables(&self, area: &str) -> Vec<Table> {
        let mut cov = Table::new(
            "走访覆盖",
            &[
                area,
                "应访户数",
                "已访户数",
                "覆盖率",
                "重点人员已访",
                "重点人员应访",
            ],
        );
        for c in self.areas.iter().chain([&self.total]) {
            cov.push(vec![
                Cell::text(&c.area),
                Cell::count(c.households_due),
                Cell::count(c.households_visited),
                Cell::Percent(c.coverage),
                Cell::count(c.key_visited),
                Cell::count(c.key_due),
            ]);
        }
        let mut named = Table::new(
            "未按要求走访（点名）",
            &["干部", "村", "已访户数", "应访户数"],
        );
        for m in &self.missed.named {
            named.push(vec![
                Cell::text(&m.cadre),
                Cell::text(m.villages.join("、")),
                Cell::count(m.households_visited),
                Cell::count(m.households_due),
            ]);
        }
        let mut leave = Table::new("请假", &["干部", "村", "已访户数", "应访户数", "补访"]);
        for m in &self.missed.on_leave {
            leave.push(vec![
                Cell::text(&m.cadre),
                Cell::text(m.villages.join("、")),
                Cell::count(m.households_visited),
                Cell::count(m.households_due),
                Cell::text(match &m.makeup_on {
                    Some(d) => format!("已补访 {d}"),
                    None => "未补访".to_owned(),
                }),
            ]);
        }
        let l = &self.ledger;
        let mut demands = Table::new("诉求办理", &["项目", "件数"]);
        demands.push(vec![Cell::text("本月受理"), Cell::count(l.collected)]);
        demands.push(vec![Cell::text("已销号"), Cell::count(l.closed)]);
        demands.push(vec![Cell::text("办结率"), Cell::Percent(l.resolution_rate)]);
        demands.push(vec![Cell::text("逾期"), Cell::count(l.overdue.len())]);
        for status in DemandStatus::ALL {
            if let Some(n) = l.open_by_status.get(status.name()) {
                demands.push(vec![
                    Cell::text(format!("未销号·{}", status.name())),
                    Cell::count(*n),
                ]);
            }
        }
        let mut sat = Table::new("回访满意度", &["满意度", "件数"]);
        for s in Satisfaction::ALL {
            sat.push(vec![
                Cell::text(s.as_str()),
                Cell::count(self.revisits.get(s.as_str()).copied().unwrap_or(0)),
            ]);
        }
        sat.push(vec![Cell::text("本月回访"), Cell::count(self.revisited)]);
        sat.push(vec![
            Cell::text("满意率"),
            Cell::Percent(self.satisfaction_rate),
        ]);
        vec![cov, named, leave, demands, sat]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duty::LeaveReason;
    use crate::ledger::Transition;
    use crate::testkit::*;
    use crate::validate::Note;
    use crate::village::Village;

    fn month(s: &str) -> Month {
        Month::parse(s).unwrap()
    }

    /// V1 (小河村, 3 households): 李书记 visits all three in May, 王芳 one
    /// and takes a leave for May (made up on 06-03), 赵强 one and no leave.
    /// V2 (大河村, 1 household, key resident): 赵强 visits it too.
    fn may() -> (Village, Village) {
        let mut r = rng(5);
        let li = author(DEV_A, "李书记", ms("2026-05-02"));
        let wang = author(DEV_A, "王芳", ms("2026-05-02"));
        let zhao = author(DEV_A, "赵强", ms("2026-05-02"));
        let mut v1 = village("V1", "小河村");
        let hs: Vec<Id> = (1..=3)
            .map(|i| household(&mut v1, &mut r, &li, &format!("小河村1组{i}号")))
            .collect();
        let mut v2 = village("V2", "大河村");
        let h4 = household(&mut v2, &mut r, &zhao, "大河村1组1号");
        resident(&mut v2, &mut r, &zhao, &h4, "周奶奶", &["独居老人"]);
        for (i, h) in hs.iter().enumerate() {
            visit(
                &mut v1,
                &mut r,
                &li,
                h,
                None,
                VisitKind::Regular,
                &format!("2026-05-1{i}"),
            );
        }
        visit(
            &mut v1,
            &mut r,
            &wang,
            &hs[0],
            None,
            VisitKind::Regular,
            "2026-05-20",
        );
        v1.add_leave(
            &mut r,
            &wang,
            month("2026-05"),
            &LeaveReason::parse("县里培训").unwrap(),
        )
        .unwrap();
        visit(
            &mut v1,
            &mut r,
            &wang,
            &hs[1],
            None,
            VisitKind::Makeup,
            "2026-06-03",
        );
        visit(
            &mut v1,
            &mut r,
            &zhao,
            &hs[2],
            None,
            VisitKind::Regular,
            "2026-05-21",
        );
        visit(
            &mut v2,
            &mut r,
            &zhao,
            &h4,
            None,
            VisitKind::Regular,
            "2026-05-22",
        );
        (v1, v2)
    }

    use crate::id::Id;

    #[test]
    fn only_a_cadre_who_missed_without_leave_is_named() {
        let (v1, v2) = may();
        let m = month("2026-05");
        let report = monthly_report([&v1, &v2], m);
        let split = missed_visits(&report, &leave_statuses([&v1, &v2]));
        // 李书记 visited 3/3: in neither list. 王芳 missed with a leave.
        assert_eq!(
            split.named,
            [Missed {
                cadre: "赵强".into(),
                villages: vec!["V1".into(), "V2".into()],
                households_visited: 2,
                households_due: 4,
            }]
        );
        assert_eq!(
            split.on_leave,
            [OnLeave {
                cadre: "王芳".into(),
                villages: vec!["V1".into()],
                households_visited: 1,
                households_due: 3,
                makeup_on: Some("2026-06-03".into()),
            }]
        );
        // Before the 补访 the leave shows as not made up; a cadre with no
        // households due (no village yet) is never named.
        let leaves: Vec<LeaveStatus> = leave_statuses([&v1, &v2])
            .into_iter()
            .map(|mut s| {
                s.settled_on = None;
                s
            })
            .collect();
        assert_eq!(missed_visits(&report, &leaves).on_leave[0].makeup_on, None);
        let none = MonthlyReport {
            month: "2026-05".into(),
            cadres: vec![crate::report::CadreMonth {
                households_assigned: 0,
                ..report.cadres[0].clone()
            }],
            demands_opened: 0,
            demands_closed: 0,
        };
        assert!(missed_visits(&none, &[]).named.is_empty());
    }

    #[test]
    fn bulletin_sums_the_monthly_report_by_area_and_counts_the_months_revisits() {
        let (mut v1, v2) = may();
        let mut r = rng(9);
        let li = |day: &str| author(DEV_A, "李书记", ms(day));
        let h = v1.households()[0].id.clone();
        let h = Id::parse(&h).unwrap();
        let p = resident(&mut v1, &mut r, &li("2026-04-01"), &h, "张三", &[]);
        let open = |v: &mut Village, r: &mut rand::rngs::StdRng, day: &str| {
            demand(v, r, &li(day), &p, "供水")
        };
        let d1 = open(&mut v1, &mut r, "2026-04-10");
        let d2 = open(&mut v1, &mut r, "2026-05-10");
        let d3 = open(&mut v1, &mut r, "2026-05-11");
        let step = |v: &mut Village, day: &str, d: &Id, t: Transition| {
            v.record_step(&mut rng(ms(day) as u64), &li(day), d, &t)
                .unwrap();
        };
        let revisit = |s: &str| Transition::Revisit {
            satisfaction: Satisfaction::parse(s).unwrap(),
            note: None,
        };
        for d in [&d1, &d2, &d3] {
            step(&mut v1, "2026-05-12", d, Transition::Handle);
            step(
                &mut v1,
                "2026-05-13",
                d,
                Transition::Feedback {
                    text: Note::parse("已告知").unwrap(),
                },
            );
        }
        // d1: revisited twice in May, the latest counts (基本满意).
        step(&mut v1, "2026-05-14", &d1, revisit("不满意"));
        step(&mut v1, "2026-05-15", &d1, revisit("基本满意"));
        step(&mut v1, "2026-05-16", &d1, Transition::Close);
        // d2: 满意 in May; d3: revisited in June only.
        step(&mut v1, "2026-05-20", &d2, revisit("满意"));
        step(&mut v1, "2026-06-01", &d3, revisit("不满意"));
        let names: BTreeMap<String, String> = [("V1", "小河村"), ("V2", "大河村")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        let m = month("2026-05");
        let today = NaiveDate::from_ymd_opt(2026, 6, 5).unwrap();
        let b = bulletin(
            &[
                ("城关镇".to_owned(), vec![&v1]),
                ("河口镇".to_owned(), vec![&v2]),
            ],
            &names,
            m,
            today,
        );
        let scope = monthly_report([&v1, &v2], m);
        let due: usize = scope.cadres.iter().map(|c| c.households_assigned).sum();
        let visited: usize = scope.cadres.iter().map(|c| c.households_visited).sum();
        // 李 3/3, 王 1/3, 赵 2/4 (V1 and V2).
        assert_eq!(
            (b.total.households_due, b.total.households_visited),
            (10, 6)
        );
        assert_eq!((due, visited), (10, 6));
        assert_eq!((b.total.key_due, b.total.key_visited), (1, 1));
        assert_eq!(b.areas[0].area, "城关镇");
        assert_eq!(
            (b.areas[0].households_due, b.areas[0].households_visited),
            (9, 5)
        );
        assert_eq!(
            (b.areas[1].households_due, b.areas[1].households_visited),
            (1, 1)
        );
        assert_eq!(b.areas[1].coverage, 1.0);
        assert_eq!(b.missed.named[0].villages, ["小河村", "大河村"]);
        assert_eq!(b.missed.on_leave[0].cadre, "王芳");
        // The ledger of May's demands is ledger_report's over May.
        let (from, to) = month_range(m).unwrap();
        assert_eq!(to, NaiveDate::from_ymd_opt(2026, 5, 31).unwrap());
        assert_eq!(
            b.ledger,
            ledger_report([&v1, &v2], Some(from), Some(to), today)
        );
        assert_eq!((b.ledger.collected, b.ledger.closed), (2, 0));
        let sat: Vec<usize> = ["满意", "基本满意", "不满意"]
            .iter()
            .map(|k| b.revisits[*k])
            .collect();
        assert_eq!(sat, [1, 1, 0]);
        assert_eq!((b.revisited, b.satisfaction_rate), (2, 1.0));
        let tables = b.tables("乡镇");
        let titles: Vec<&str> = tables.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "走访覆盖",
                "未按要求走访（点名）",
                "请假",
                "诉求办理",
                "回访满意度"
            ]
        );
        assert_eq!(tables[0].rows.len(), 3, "two areas and 合计");
        assert_eq!(tables[0].cell(2, 1), &Cell::count(10));
        assert_eq!(tables[2].cell(0, 4), &Cell::text("已补访 2026-06-03"));
        let text = format!("{tables:?}");
        assert!(
            !text.contains("张三") && !text.contains("周奶奶"),
            "no resident is named"
        );
    }
}
