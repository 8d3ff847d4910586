//! 报表: the monthly report (visits per cadre, coverage, leave and make-up
//! visits, demands) and the demand ledger (states, resolution rate, overdue
//! by name, categories, departments, satisfaction), as tables with charts,
//! the resolution rate over the last six months, and the cadre's monthly
//! diary for printing. Every figure comes from `minqing_model::monthly_report`
//! and `ledger_report`, the functions behind `minqing report monthly|ledger
//! --json`, so the page and the CLI agree; the `.xlsx` downloads are the
//! same reports' tables ([`monthly_tables`], [`ledger_tables`]).

use chrono::{Datelike, NaiveDate};
use maud::{Markup, html};
use minqing_model::{
    Id, LedgerReport, Month, MonthlyReport, Table, Village, ledger_report, monthly_report,
    parse_date,
};

use crate::layout::{self, Nav};
use crate::names::Names;
use crate::{Ctx, routes};

/// How many months the resolution-rate chart shows (this one included).
pub const TREND_MONTHS: usize = 6;

/// The month a `?month=YYYY-MM` asks for, else the month of `today`.
pub fn month_or(raw: Option<&str>, today: NaiveDate) -> Month {
    raw.and_then(|m| Month::parse(m).ok())
        .unwrap_or_else(|| minqing_model::month_of(today))
}

/// The first and last day of a month.
pub fn month_bounds(m: Month) -> (NaiveDate, NaiveDate) {
    let first = NaiveDate::from_ymd_opt(m.year, m.month, 1).unwrap_or_default();
    let next = if m.month == 12 {
        NaiveDate::from_ymd_opt(m.year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(m.year, m.month + 1, 1)
    }
    .unwrap_or(first);
    (first, next.pred_opt().unwrap_or(first))
}

/// The month before `m`.
fn previous(m: Month) -> Month {
    if m.month == 1 {
        Month {
            year: m.year - 1,
            month: 12,
        }
    } else {
        Month {
            year: m.year,
            month: m.month - 1,
        }
    }
}

/// The monthly report's tables (the `.xlsx` download).
pub fn monthly_tables(villages: &[&Village], month: Month) -> Vec<Table> {
    monthly_report(villages.iter().copied(), month).tables()
}

/// The ledger's tables over every demand, overdue judged on `today`.
pub fn ledger_tables(villages: &[&Village], today: NaiveDate) -> Vec<Table> {
    ledger_report(villages.iter().copied(), None, None, today).tables()
}

/// One bar of a chart.
pub(crate) struct Bar {
    pub(crate) label: String,
    pub(crate) value: f64,
    pub(crate) shown: String,
}

/// A horizontal bar chart as inline SVG (attributes only: the service's CSP
/// allows no inline style). `max` is the full width's value.
pub(crate) fn bars(id: &str, title: &str, bars: &[Bar], max: f64) -> Markup {
    const LABEL: u32 = 96;
    const WIDTH: u32 = 230;
    const ROW: u32 = 26;
    let height = ROW * u32::try_from(bars.len()).unwrap_or(0) + 4;
    let total = LABEL + WIDTH + 70;
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            svg.chart xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title)
                viewBox=(format!("0 0 {total} {height}")) width=(total) height=(height) {
                @for (i, b) in bars.iter().enumerate() {
                    @let y = ROW * u32::try_from(i).unwrap_or(0);
                    @let w = if max > 0.0 { (b.value / max * f64::from(WIDTH)).round().clamp(0.0, f64::from(WIDTH)) } else { 0.0 };
                    text x=(LABEL - 6) y=(y + 17) text-anchor="end" font-size="13" fill="#1f2328" { (b.label) }
                    rect x=(LABEL) y=(y + 4) width=(w) height="18" rx="3" fill="#b0232a" {}
                    text x=(f64::from(LABEL) + w + 6.0) y=(y + 17) font-size="13" fill="#5c6370" { (b.shown) }
                }
            }
        }
    }
}

pub(crate) fn percent(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// The 报表 page for `month`; overdue judged on `ctx.today`.
pub fn report_page(ctx: &Ctx<'_>, villages: &[&Village], month: Month) -> String {
    let monthly: MonthlyReport = monthly_report(villages.iter().copied(), month);
    let ledger: LedgerReport = ledger_report(villages.iter().copied(), None, None, ctx.today);
    let names = Names::new(villages);
    let resident_of = |demand: &str, village: &str| -> Option<(String, String)> {
        let id = Id::parse(demand).ok()?;
        let v = villages.iter().find(|v| v.id().as_str() == village)?;
        let d = v.demand(&id)?;
        Some((
            d.resident_id.clone(),
            names.resident(&d.resident_id).to_owned(),
        ))
    };
    // The resolution rate of the demands opened in each of the last months.
    let mut trend = Vec::new();
    let mut m = minqing_model::month_of(ctx.today);
    for _ in 0..TREND_MONTHS {
        let (first, last) = month_bounds(m);
        let r = ledger_report(villages.iter().copied(), Some(first), Some(last), ctx.today);
        trend.push((m, r.collected, r.closed, r.resolution_rate));
        m = previous(m);
    }
    trend.reverse();
    let month_s = month.to_string();
    let body = html! {
        form.inline.no-print method="get" action=(routes::REPORT) {
            div.field {
                label for="month" { "月份" }
                input #month type="month" name="month" value=(month_s);
            }
            button type="submit" { "查看" }
        }
        div.actions {
            a.button href=(format!("{}?month={month_s}", routes::REPORT_MONTHLY_XLSX)) download { "下载月报（.xlsx）" }
            a.button.secondary href=(routes::REPORT_LEDGER_XLSX) download { "下载诉求台账（.xlsx）" }
            a.button.secondary href=(format!("{}?month={month_s}", routes::DIARY)) { "本月民情日记（打印）" }
        }
        h2 { (month_s) " 走访情况" }
        @if monthly.cadres.is_empty() {
            (layout::none("这个月还没有走访记录。"))
        } @else {
            table #monthly {
                thead { tr {
                    th { "干部" } th.num { "走访次数" } th.num { "普遍走访" } th.num { "重点走访" } th.num { "补访" }
                    th.num { "已访户/应访户" } th.num { "覆盖率" } th.num { "重点人员" } th.num { "请假" } th.num { "待补访" }
                    th.num { "受理诉求" } th.num { "销号" }
                } }
                tbody {
                    @for c in &monthly.cadres {
                        tr {
                            td { (c.cadre) }
                            td.num { (c.visits) }
                            td.num { (c.visits_by_kind.get("普遍走访").copied().unwrap_or(0)) }
                            td.num { (c.visits_by_kind.get("重点走访").copied().unwrap_or(0)) }
                            td.num { (c.visits_by_kind.get("补访").copied().unwrap_or(0)) }
                            td.num { (c.households_visited) "/" (c.households_assigned) }
                            td.num { (percent(c.coverage)) }
                            td.num { (c.key_residents_visited) }
                            td.num { (c.leave) }
                            td.num { (c.makeups_owed) }
                            td.num { (c.demands_opened) }
                            td.num { (c.demands_closed) }
                        }
                    }
                }
            }
            div.charts {
                (bars("chart-visits", "走访次数（按干部）", &monthly.cadres.iter().map(|c| Bar {
                    label: c.cadre.clone(), value: c.visits as f64, shown: c.visits.to_string(),
                }).collect::<Vec<_>>(), monthly.cadres.iter().map(|c| c.visits).max().unwrap_or(0) as f64))
                (bars("chart-coverage", "走访覆盖率（按干部）", &monthly.cadres.iter().map(|c| Bar {
                    label: c.cadre.clone(), value: c.coverage, shown: percent(c.coverage),
                }).collect::<Vec<_>>(), 1.0))
            }
        }
        h2 { "诉求台账" }
        div.stats #ledger {
            div.stat { span.n #ledger-collected { (ledger.collected) } span.l { "受理诉求" } }
            div.stat { span.n #ledger-closed { (ledger.closed) } span.l { "已销号" } }
            div.stat { span.n #ledger-rate { (percent(ledger.resolution_rate)) } span.l { "办结率" } }
            div.stat.alert[!ledger.overdue.is_empty()] { span.n #ledger-overdue { (ledger.overdue.len()) } span.l { "逾期" } }
        }
        div.charts {
            (bars("chart-states", "未办结诉求（按状态）", &ledger.open_by_status.iter().map(|(s, n)| Bar {
                label: s.clone(), value: *n as f64, shown: n.to_string(),
            }).collect::<Vec<_>>(), ledger.open_by_status.values().copied().max().unwrap_or(0) as f64))
            (bars("chart-trend", "办结率（按受理月份）", &trend.iter().map(|(m, collected, closed, rate)| Bar {
                label: m.to_string(), value: *rate,
                shown: if *collected == 0 { "—".to_owned() } else { format!("{}（{closed}/{collected}）", percent(*rate)) },
            }).collect::<Vec<_>>(), 1.0))
            (bars("chart-satisfaction", "回访满意度", &ledger.satisfaction.iter().map(|(s, n)| Bar {
                label: s.clone(), value: *n as f64, shown: n.to_string(),
            }).collect::<Vec<_>>(), ledger.satisfaction.values().copied().max().unwrap_or(0) as f64))
        }
        h2 { "逾期诉求（" (ledger.overdue.len()) "）" }
        @if ledger.overdue.is_empty() {
            (layout::none("没有逾期的诉求。"))
        } @else {
            table #ledger-overdue-list {
                thead { tr { th { "居民" } th { "村" } th { "类别" } th { "部门" } th { "期限" } th.num { "逾期天数" } th { "状态" } } }
                tbody {
                    @for o in &ledger.overdue {
                        tr {
                            td {
                                @match resident_of(&o.id, &o.village_id) {
                                    Some((rid, name)) => a href=(routes::resident(&rid)) { (name) },
                                    None => "未知居民",
                                }
                            }
                            td { (names.village(&o.village_id)) }
                            td { a href=(routes::demand(&o.id)) { (o.category) } }
                            td { (o.department.as_deref().unwrap_or("—")) }
                            td.overdue { (o.due) }
                            td.num.overdue { (o.days_overdue) }
                            td { (layout::status(&o.status)) }
                        }
                    }
                }
            }
        }
        h2 { "按类别" }
        (groups("类别", &ledger.by_category))
        h2 { "按承办部门" }
        (groups("部门", &ledger.by_department))
    };
    layout::page(ctx, Nav::Reports, "报表", body)
}

fn groups(
    what: &str,
    counts: &std::collections::BTreeMap<String, minqing_model::GroupCount>,
) -> Markup {
    html! {
        @if counts.is_empty() {
            (layout::none("还没有诉求。"))
        } @else {
            table {
                thead { tr { th { (what) } th.num { "受理" } th.num { "销号" } th.num { "办结率" } th.num { "逾期" } } }
                tbody {
                    @for (k, g) in counts {
                        tr { td { (k) } td.num { (g.collected) } td.num { (g.closed) } td.num { (percent(g.resolution_rate)) } td.num { (g.overdue) } }
                    }
                }
            }
        }
    }
}

/// The cadre's 民情日记 for a month, for printing (supervision inspections
/// still ask for paper): every visit the cadre logged in the month, oldest
/// first, with the household's address and the resident's name.
pub fn diary_page(ctx: &Ctx<'_>, villages: &[&Village], month: Month) -> String {
    let names = Names::new(villages);
    let mut visits: Vec<_> = villages
        .iter()
        .flat_map(|v| v.visits())
        .filter(|v| v.cadre == ctx.cadre)
        .filter(|v| parse_date(&v.date).is_ok_and(|d| month.contains(d)))
        .collect();
    visits.sort_by(|a, b| (&a.date, &a.created_at).cmp(&(&b.date, &b.created_at)));
    let (first, _) = month_bounds(month);
    let title = format!("{}年{}月民情日记", first.year(), first.month());
    let body = html! {
        p { "干部：" (ctx.cadre) " · 共 " span #diary-count { (visits.len()) } " 次走访" }
        div.actions { (layout::print_button()) a.button.secondary.no-print href=(format!("{}?month={month}", routes::REPORT)) { "返回报表" } }
        @if visits.is_empty() {
            (layout::none("这个月还没有走访记录。"))
        } @else {
            table #diary {
                thead { tr { th { "日期" } th { "村" } th { "住户" } th { "走访对象" } th { "类型" } th { "记录" } } }
                tbody {
                    @for v in &visits {
                        tr {
                            td { (v.date) }
                            td { (names.village(&v.village_id)) }
                            td { (names.household(&v.household_id)) }
                            td { @match &v.resident_id { Some(r) => (names.resident(r)), None => "全户" } }
                            td { (v.kind) }
                            td { (layout::multiline(&v.note)) }
                        }
                    }
                }
            }
        }
    };
    layout::page(ctx, Nav::Reports, &title, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ctx, sample};

    #[test]
    fn month_bounds_cover_the_month() {
        let m = Month::parse("2026-02").unwrap();
        assert_eq!(
            month_bounds(m),
            (
                crate::testkit::date("2026-02-01"),
                crate::testkit::date("2026-02-28")
            )
        );
        let d = Month::parse("2026-12").unwrap();
        assert_eq!(month_bounds(d).1, crate::testkit::date("2026-12-31"));
        assert_eq!(
            previous(Month::parse("2026-01").unwrap()).to_string(),
            "2025-12"
        );
    }

    #[test]
    fn page_shows_the_models_figures_by_name() {
        let s = sample();
        let month = Month::parse("2026-03").unwrap();
        let html = report_page(&ctx("2026-03-15"), &[&s.village], month);
        let report = monthly_report([&s.village], month);
        let c = &report.cadres[0];
        assert!(
            html.contains(&format!(
                "<td>{}</td><td class=\"num\">{}</td>",
                c.cadre, c.visits
            )),
            "{html}"
        );
        let ledger = ledger_report([&s.village], None, None, crate::testkit::date("2026-03-15"));
        assert!(html.contains(&format!("id=\"ledger-collected\">{}<", ledger.collected)));
        assert!(html.contains("monthly.xlsx?month=2026-03"));
        // Overdue demands are named by resident, not by id.
        for o in &ledger.overdue {
            assert!(!html.contains(&format!(">{}<", o.id)));
        }
        assert!(html.contains("<svg"), "charts");
    }

    #[test]
    fn diary_lists_the_cadres_visits_of_the_month() {
        let s = sample();
        let html = diary_page(
            &ctx("2026-03-15"),
            &[&s.village],
            Month::parse("2026-03").unwrap(),
        );
        let n = s
            .village
            .visits()
            .into_iter()
            .filter(|v| v.cadre == "张伟" && v.date.starts_with("2026-03"))
            .count();
        assert!(html.contains(&format!("id=\"diary-count\">{n}<")), "{html}");
        assert!(html.contains("2026年3月民情日记"));
    }
}
