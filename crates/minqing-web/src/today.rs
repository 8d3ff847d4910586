//! 今日: this month's visits against the duty, key-group residents not yet
//! visited this month, overdue demands, make-up visits owed, and the sync
//! state. The figures are computed by [`TodayFigures::new`] with the model's
//! own definitions (docs/cli.md), so they equal `minqing … --json`:
//! - 应访户数: the households of the villages held (`village list --json`,
//!   the sum of `households`);
//! - 已访户数: distinct households the cadre visited this month
//!   (`report monthly --json`, the cadre's `households_visited`);
//! - 重点人员未访: residents with a key tag whom the cadre has not met this
//!   month (met: named by a visit, or in a household visited without naming
//!   anyone — the report's `key_residents_visited` rule);
//! - 逾期诉求: `demand list --overdue --json`;
//! - 待补访: the cadre's leaves with no settling 补访 (`leave list --json`,
//!   `settled_by` null).

use std::collections::BTreeSet;

use chrono::NaiveDate;
use maud::{Markup, html};
use minqing_model::{
    DemandView, LeaveStatus, ReadVillage, ResidentView, month_of, parse_date, settle_leaves,
};

use crate::layout::{self, Nav, is_key_tag};
use crate::names::{Names, village_name};
use crate::{Ctx, SyncSummary, routes, time};

/// A key-group resident not yet met this month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyResident {
    /// The resident.
    pub resident: ResidentView,
    /// The village's name.
    pub village_name: String,
}

/// An overdue demand with the names a person reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverdueDemand {
    /// The demand.
    pub demand: DemandView,
    /// The resident's name.
    pub resident_name: String,
    /// The village's name.
    pub village_name: String,
    /// Days past the due date.
    pub days_overdue: i64,
}

/// Everything 今日 shows, computed from the villages held.
#[derive(Clone, Debug, PartialEq)]
pub struct TodayFigures {
    /// The month, `YYYY-MM`.
    pub month: String,
    /// Households in the villages held (应访户数).
    pub households_due: usize,
    /// Distinct households the cadre visited this month (已访户数).
    pub households_visited: usize,
    /// The cadre's visits this month.
    pub visits: usize,
    /// Key-group residents (all villages held).
    pub key_residents: usize,
    /// Key-group residents not met by the cadre this month, by village and address.
    pub key_not_visited: Vec<KeyResident>,
    /// Overdue demands, most overdue first.
    pub overdue: Vec<OverdueDemand>,
    /// The cadre's leaves still owed a 补访.
    pub makeups_owed: Vec<LeaveStatus>,
    /// Whether the cadre has a leave for this month.
    pub on_leave_this_month: bool,
}

impl TodayFigures {
    /// Computes the figures for `cadre` on `today` (China date).
    pub fn new<V: ReadVillage + ?Sized>(
        villages: &[&V],
        cadre: &str,
        today: NaiveDate,
    ) -> TodayFigures {
        let month = month_of(today);
        let mut households_due = 0;
        let mut visited: BTreeSet<(String, String)> = BTreeSet::new();
        let mut visits_this_month = 0;
        let mut key_residents = 0;
        let mut key_not_visited = Vec::new();
        let mut overdue = Vec::new();
        let mut all_leaves = Vec::new();
        let mut all_visits = Vec::new();
        for v in villages {
            let vid = v.id().to_string();
            let vname = village_name(v);
            households_due += v.households().len();
            let visits = v.visits();
            let mut met: BTreeSet<String> = BTreeSet::new();
            let mut whole_households: BTreeSet<String> = BTreeSet::new();
            for visit in visits.iter() {
                let in_month = parse_date(&visit.date).is_ok_and(|d| month_of(d) == month);
                if !in_month || visit.cadre != cadre {
                    continue;
                }
                visits_this_month += 1;
                visited.insert((vid.clone(), visit.household_id.clone()));
                match &visit.resident_id {
                    Some(r) => {
                        met.insert(r.clone());
                    }
                    None => {
                        whole_households.insert(visit.household_id.clone());
                    }
                }
            }
            let residents = v.residents();
            let names = |id: &str| {
                residents
                    .iter()
                    .find(|r| r.id == id)
                    .map_or_else(|| "未知居民".to_owned(), |r| r.name.clone())
            };
            for r in residents.iter() {
                if !r.tags.iter().any(|t| is_key_tag(t)) {
                    continue;
                }
                key_residents += 1;
                if !met.contains(&r.id) && !whole_households.contains(&r.household_id) {
                    key_not_visited.push(KeyResident {
                        resident: r.clone(),
                        village_name: vname.clone(),
                    });
                }
            }
            for d in v.demands().iter() {
                let due = d.due.as_deref().and_then(|s| parse_date(s).ok());
                if let Some(due) = due.filter(|due| *due < today && d.status != "已销号") {
                    overdue.push(OverdueDemand {
                        resident_name: names(&d.resident_id),
                        village_name: vname.clone(),
                        days_overdue: (today - due).num_days(),
                        demand: d.clone(),
                    });
                }
            }
            all_leaves.extend(v.leaves().iter().cloned());
            // `settle_leaves` reads the 补访 visits only.
            all_visits.extend(
                visits
                    .iter()
                    .filter(|v| v.kind == minqing_model::VisitKind::Makeup.as_str())
                    .cloned(),
            );
        }
        key_not_visited.sort_by(|a, b| {
            (&a.village_name, &a.resident.address, &a.resident.name).cmp(&(
                &b.village_name,
                &b.resident.address,
                &b.resident.name,
            ))
        });
        overdue.sort_by(|a, b| (b.days_overdue, &a.demand.id).cmp(&(a.days_overdue, &b.demand.id)));
        let settled = settle_leaves(&all_leaves, &all_visits);
        let month_str = month.to_string();
        let on_leave_this_month = settled
            .iter()
            .any(|s| s.leave.cadre == cadre && s.leave.month == month_str);
        let makeups_owed = settled
            .into_iter()
            .filter(|s| s.leave.cadre == cadre && s.settled_by.is_none())
            .collect();
        TodayFigures {
            month: month_str,
            households_due,
            households_visited: visited.len(),
            visits: visits_this_month,
            key_residents,
            key_not_visited,
            overdue,
            makeups_owed,
            on_leave_this_month,
        }
    }

    /// Households still to visit this month.
    pub fn households_remaining(&self) -> usize {
        self.households_due.saturating_sub(self.households_visited)
    }
}

/// The 今日 page.
pub fn today_page<V: ReadVillage + ?Sized>(
    ctx: &Ctx<'_>,
    villages: &[&V],
    sync: &SyncSummary,
) -> String {
    let f = TodayFigures::new(villages, ctx.cadre, ctx.today);
    let names = Names::new(villages);
    let percent = (f.households_visited * 100)
        .checked_div(f.households_due)
        .unwrap_or(0);
    let body = html! {
        section aria-labelledby="duty" {
            h2 #duty { (f.month) " 走访任务" }
            div.stats {
                div.stat { span.n #households-due { (f.households_due) } span.l { "应访户数" } }
                div.stat { span.n #households-visited { (f.households_visited) } span.l { "已访户数" } }
                div.stat.alert[f.households_remaining() > 0] {
                    span.n #households-remaining { (f.households_remaining()) } span.l { "未访户数" }
                }
                div.stat { span.n #visits-month { (f.visits) } span.l { "本月走访次数" } }
            }
            label.muted for="duty-progress" { "本月走访进度 " (percent) "%" }
            progress #duty-progress value=(f.households_visited) max=(f.households_due.max(1)) {
                (percent) "%"
            }
            @if f.on_leave_this_month {
                p.muted { "本月已请假，下月须补访。" }
            }
            div.actions {
                a.button href=(routes::VISIT_NEW) { "记民情日记" }
                a.button.secondary href=(routes::SEARCH) { "查找居民" }
            }
        }
        section aria-labelledby="key" {
            h2 #key { "重点人员本月未走访（" (f.key_not_visited.len()) "/" (f.key_residents) "）" }
            @if f.key_not_visited.is_empty() {
                (layout::none("本月重点人员都已走访。"))
            } @else {
                table {
                    thead { tr { th { "姓名" } th { "类别" } th { "住址" } th { "村" } th { span.no-print { "操作" } } } }
                    tbody {
                        @for k in &f.key_not_visited {
                            tr {
                                td { a href=(routes::resident(&k.resident.id)) { (k.resident.name) } }
                                td { (layout::tags(&k.resident.tags)) }
                                td { (k.resident.address) }
                                td { (k.village_name) }
                                td { a.no-print href=(routes::visit_for_resident(&k.resident.id)) { "记日记" } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="overdue" {
            h2 #overdue { "逾期诉求（" (f.overdue.len()) "）" }
            @if f.overdue.is_empty() {
                (layout::none("没有逾期诉求。"))
            } @else {
                (overdue_table(&f.overdue))
            }
        }
        section aria-labelledby="makeup" {
            h2 #makeup { "待补访（" (f.makeups_owed.len()) "）" }
            @if f.makeups_owed.is_empty() {
                (layout::none("没有待补访的请假。"))
            } @else {
                ul {
                    @for s in &f.makeups_owed {
                        li { (s.leave.month) " 请假（" (s.leave.reason) "，" (names.village(&s.leave.village_id)) "）：须补访" }
                    }
                }
            }
        }
        section aria-labelledby="sync" {
            h2 #sync { "同步" }
            (sync_state(sync))
        }
    };
    layout::page(ctx, Nav::Today, "今日", body)
}

/// Overdue demands as a table (also used by the demand list).
pub fn overdue_table(overdue: &[OverdueDemand]) -> Markup {
    html! {
        table {
            thead { tr { th { "居民" } th { "村" } th { "类别" } th { "部门" } th { "期限" } th.num { "逾期天数" } th { "状态" } } }
            tbody {
                @for o in overdue {
                    tr {
                        td { a href=(routes::demand(&o.demand.id)) { (o.resident_name) } }
                        td { (o.village_name) }
                        td { (o.demand.category) }
                        td { (o.demand.department.as_deref().unwrap_or("-")) }
                        td.overdue { (o.demand.due.as_deref().unwrap_or("-")) }
                        td.num.overdue { (o.days_overdue) }
                        td { (layout::status(&o.demand.status)) }
                    }
                }
            }
        }
    }
}

/// The sync state in a sentence.
pub fn sync_state(sync: &SyncSummary) -> Markup {
    html! {
        p #sync-state {
            @if !sync.enrolled {
                span.sync-off { "本机未加入县里的同步（单机使用）。" }
            } @else if sync.online == Some(true) {
                span.sync-ok { "已连接县里" }
            } @else if sync.online == Some(false) {
                span.sync-off { "离线：数据保存在本机，联网后自动同步" }
            } @else {
                span { "已加入县里的同步" }
            }
            @if let Some(ms) = sync.last_sync_ms {
                " · 上次同步 " (time::from_ms(ms))
            }
            @if sync.pending_villages > 0 {
                " · " (sync.pending_villages) " 个村有未上传的记录"
            } @else if sync.enrolled && sync.last_sync_ms.is_some() {
                " · 已同步到县里"
            }
            @if let Some(e) = &sync.last_error {
                br; span.muted { "上次同步未成功：" (crate::zh::message(e)) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ctx, sample};

    #[test]
    fn figures_follow_the_duty_definitions() {
        let s = sample();
        let f = TodayFigures::new(&[&s.village], "张伟", crate::testkit::date("2026-03-15"));
        assert_eq!(f.month, "2026-03");
        assert_eq!(f.households_due, 3);
        // Only 赵小红's household was visited in March; 李秀英's in February.
        assert_eq!(f.households_visited, 1);
        assert_eq!(f.households_remaining(), 2);
        assert_eq!(f.visits, 1);
        assert_eq!(f.key_residents, 2);
        let names: Vec<_> = f
            .key_not_visited
            .iter()
            .map(|k| k.resident.name.as_str())
            .collect();
        assert_eq!(names, ["王建国", "李秀英"], "sorted by address");
        assert_eq!(f.overdue.len(), 1);
        assert_eq!(f.overdue[0].days_overdue, 5);
        assert_eq!(f.overdue[0].resident_name, "李秀英");
        // Another cadre has visited nobody.
        let other = TodayFigures::new(&[&s.village], "王芳", crate::testkit::date("2026-03-15"));
        assert_eq!(other.households_visited, 0);
        assert_eq!(other.key_not_visited.len(), 2);
        // Not overdue on the due date itself.
        let due_day = TodayFigures::new(&[&s.village], "张伟", crate::testkit::date("2026-03-10"));
        assert!(due_day.overdue.is_empty());
    }

    #[test]
    fn a_household_visit_meets_everyone_in_it() {
        let mut s = sample();
        let mut r = crate::testkit::rng();
        s.village
            .log_visit(
                &mut r,
                &crate::testkit::author("张伟", "2026-03-05"),
                &minqing_model::NewVisit {
                    household: s.h2.clone(),
                    resident: None,
                    kind: minqing_model::VisitKind::Regular,
                    note: minqing_model::Note::parse("入户").unwrap(),
                    date: crate::testkit::date("2026-03-05"),
                },
            )
            .unwrap();
        let f = TodayFigures::new(&[&s.village], "张伟", crate::testkit::date("2026-03-15"));
        let names: Vec<_> = f
            .key_not_visited
            .iter()
            .map(|k| k.resident.name.as_str())
            .collect();
        assert_eq!(names, ["李秀英"]);
        assert_eq!(f.households_visited, 1, "same household twice counts once");
        assert_eq!(f.visits, 2);
    }

    #[test]
    fn page_shows_figures_names_and_sync_state() {
        let s = sample();
        let html = today_page(
            &ctx("2026-03-15"),
            &[&s.village],
            &SyncSummary {
                enrolled: true,
                online: Some(false),
                last_sync_ms: Some(crate::testkit::ms("2026-03-14")),
                pending_villages: 1,
                last_error: None,
            },
        );
        assert!(html.contains(r#"id="households-due">3<"#), "{html}");
        assert!(html.contains(r#"id="households-visited">1<"#));
        assert!(html.contains(r#"id="households-remaining">2<"#));
        assert!(html.contains("王建国") && html.contains("李秀英"));
        assert!(html.contains("县水务局"));
        assert!(html.contains("离线"));
        assert!(html.contains("2026-03-14 10:00"), "China time");
        // Links go to the resident, never show the id as text.
        assert!(html.contains(&format!("/resident/{}\"", s.wang)));
        assert!(!html.contains(&format!(">{}<", s.wang)));
        assert!(html.contains("<html lang=\"zh-CN\">"));
    }
}
