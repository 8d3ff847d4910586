//! 诉求: the demand list (with the overdue filter), the form that opens a
//! demand for a resident, and a demand's page — its timeline (China time,
//! flagged events marked ⚠ with what conflicted) and the closed-loop steps
//! (直办, 转办, 督办, 反馈, 回访, 销号, 重开) offered only when the model's
//! workflow allows them (`Fold::can_apply`).

use chrono::NaiveDate;
use maud::{Markup, html};
use minqing_model::{DemandStatus, EventKind, Fold, Id, RecordKind, Village, parse_date};

use crate::forms::{Form, STEPS, village_of};
use crate::layout::{self, Nav};
use crate::names::{Names, village_name};
use crate::today::{OverdueDemand, overdue_table};
use crate::{Ctx, routes, time};

/// Departments offered as suggestions when transferring (any name may be typed).
const DEPARTMENTS: &[&str] = &[
    "县水务局",
    "县民生热线服务中心",
    "县住建局",
    "县人社局",
    "县民政局",
    "县交通运输局",
    "镇卫生院",
    "镇政府",
];

/// Categories offered as suggestions when opening a demand.
const CATEGORIES: &[&str] = &[
    "供水", "道路", "医疗", "就业", "低保", "住房", "教育", "养老", "环境", "治安", "其他",
];

/// The steps valid now, in the order the page offers them.
pub fn valid_steps(fold: &Fold, demand: &Id) -> Vec<(EventKind, &'static str)> {
    STEPS
        .iter()
        .filter(|(kind, _)| fold.can_apply(demand, kind).is_ok())
        .cloned()
        .collect()
}

/// The Chinese label of an event's payload field.
pub(crate) fn field_label(key: &str) -> &str {
    match key {
        "department" => "承办部门",
        "due" => "办理期限",
        "note" => "说明",
        "text" => "反馈内容",
        "satisfaction" => "满意度",
        "reason" => "原因",
        "answer" => "办结答复",
        "account" => "县级账号",
        "role" => "角色",
        other => other,
    }
}

/// An event field's value as shown: a county role in Chinese, else as stored.
pub(crate) fn field_value<'a>(key: &str, value: &'a str) -> &'a str {
    match (key, value) {
        ("role", "department") => "职能部门",
        ("role", "supervisor") => "督导",
        _ => value,
    }
}

/// A demand's page, or `None` if `id` is no demand of `village`.
pub fn demand_page(ctx: &Ctx<'_>, village: &Village, id: &Id) -> Option<String> {
    let d = village.demand(id)?;
    let fold = village.demand_fold(id)?;
    let names = Names::of(village);
    let overdue = fold.is_overdue(ctx.today);
    let steps = valid_steps(&fold, id);
    let title = format!("诉求：{}", d.category);
    let body = html! {
        section.card aria-labelledby="about" {
            h2 #about { "诉求内容" }
            dl.file {
                dt { "居民" } dd { a href=(routes::resident(&d.resident_id)) { (names.resident(&d.resident_id)) } " · " (names.household(&d.household_id)) }
                dt { "村" } dd { (village_name(village)) }
                dt { "类别" } dd { (d.category) }
                dt { "内容" } dd { (layout::multiline(&d.text)) }
                dt { "状态" } dd #demand-status { (layout::status(&d.status)) }
                dt { "承办部门" } dd { (d.department.as_deref().unwrap_or("-")) }
                dt { "办理期限" } dd {
                    (d.due.as_deref().unwrap_or("-"))
                    @if overdue { " " span.overdue { "逾期" } }
                }
                dt { "满意度" } dd { (d.satisfaction.as_deref().unwrap_or("-")) }
                dt { "受理" } dd { (d.cadre) " · " (time::datetime(&d.opened_at)) }
            }
            @if d.flagged > 0 {
                p.flag role="note" { "⚠ 有 " (d.flagged) " 条记录与同事离线时的操作冲突，已保留但未生效，见下方办理过程。" }
            }
        }
        section aria-labelledby="next" {
            h2 #next { "下一步" }
            @if steps.is_empty() {
                (layout::none("这条诉求已销号，没有可办理的步骤。"))
            } @else {
                div.steps { @for (kind, name) in &steps { (step_form(ctx, &d.id, kind, name)) } }
            }
        }
        section.card aria-labelledby="timeline" {
            h2 #timeline { "办理过程" }
            ol.timeline {
                @for e in &d.events {
                    li.flagged[e.flag.is_some()] {
                        strong { (e.kind_name) } " · " (e.cadre) " · " span.muted { (time::datetime(&e.at)) }
                        @for (k, v) in &e.fields {
                            br; span.muted { (field_label(k)) "：" } (field_value(k, v))
                        }
                        @if let Some(flag) = &e.flag {
                            br; span.flag { "⚠ 未生效：" (flag) }
                        }
                    }
                }
            }
        }
    };
    Some(layout::page(ctx, Nav::Demands, &title, body))
}

/// One step's form: its fields, each labelled, and a button named after the step.
fn step_form(ctx: &Ctx<'_>, demand: &str, kind: &EventKind, step: &str) -> Markup {
    let name = kind.name();
    html! {
        form method="post" action=(routes::demand_step(demand)) aria-label=(name) {
            (layout::csrf(ctx))
            input type="hidden" name="step" value=(step);
            @match kind {
                EventKind::Transferred => {
                    div.field {
                        label for="transfer-department" { "承办部门" }
                        input #transfer-department type="text" name="department" list="departments" required;
                        datalist #departments { @for d in DEPARTMENTS { option value=(d) {} } }
                    }
                    div.field {
                        label for="transfer-due" { "办理期限" }
                        input #transfer-due type="date" name="due" min=(ctx.today.format("%Y-%m-%d").to_string());
                    }
                }
                EventKind::Supervised => {
                    div.field {
                        label for="supervise-note" { "督办意见" }
                        textarea #supervise-note name="note" required {}
                    }
                }
                EventKind::Feedback => {
                    div.field {
                        label for="feedback-text" { "反馈内容" }
                        textarea #feedback-text name="text" required {}
                    }
                }
                EventKind::Revisited => {
                    div.field {
                        label for="revisit-satisfaction" { "满意度" }
                        select #revisit-satisfaction name="satisfaction" {
                            option value="满意" { "满意" }
                            option value="基本满意" { "基本满意" }
                            option value="不满意" { "不满意" }
                        }
                    }
                    div.field {
                        label for="revisit-note" { "回访记录" }
                        textarea #revisit-note name="note" {}
                    }
                }
                EventKind::Reopened => {
                    div.field {
                        label for="reopen-reason" { "重开原因" }
                        textarea #reopen-reason name="reason" required {}
                    }
                }
                _ => {
                    p.muted { (step_hint(kind)) }
                }
            }
            button type="submit" { (name) }
        }
    }
}

fn step_hint(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Handled => "由本人直接办理。",
        EventKind::Closed => "群众已回访，办结销号。",
        _ => "",
    }
}

/// The form opening a demand for a resident (`GET /demand/new?resident=…`),
/// or `None` if the resident is not held. `form` keeps what a refused post
/// carried.
pub fn demand_new_page(ctx: &Ctx<'_>, villages: &[&Village], form: &Form) -> Option<String> {
    let rid = Id::parse(form.value("resident")?).ok()?;
    let v = villages[village_of(villages, RecordKind::Resident, &rid)?];
    let r = v.resident(&rid)?;
    let body = html! {
        form.stack method="post" action=(routes::DEMANDS) {
            (layout::csrf(ctx))
            input type="hidden" name="resident" value=(r.id);
            p { "居民：" a href=(routes::resident(&r.id)) { (r.name) } "（" (r.address) "，" (village_name(v)) "）" }
            div.field {
                label for="category" { "类别" }
                input #category type="text" name="category" list="categories" required autofocus value=(form.get("category").unwrap_or(""));
                datalist #categories { @for c in CATEGORIES { option value=(c) {} } }
            }
            div.field {
                label for="text" { "诉求内容" }
                textarea #text name="text" required { (form.get("text").unwrap_or("")) }
            }
            div.actions { button type="submit" { "受理" } }
        }
    };
    Some(layout::page(ctx, Nav::Demands, "受理诉求", body))
}

/// Which demands the list shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemandFilter {
    /// Only this status (受理, 办理中, 已办结, 已反馈, 已回访, 已销号).
    pub status: Option<DemandStatus>,
    /// Only overdue demands.
    pub overdue: bool,
}

impl DemandFilter {
    /// From the list's query string (`status=办理中&overdue=1`); an unknown
    /// status is ignored.
    pub fn from_form(form: &Form) -> DemandFilter {
        DemandFilter {
            status: form
                .value("status")
                .and_then(|s| DemandStatus::parse(s).ok()),
            overdue: form.value("overdue").is_some(),
        }
    }
}

/// The demand list (`GET /demands`), newest first, with the overdue list
/// on top; the same demands as `demand list [--status S] [--overdue] --json`.
pub fn demands_page(ctx: &Ctx<'_>, villages: &[&Village], filter: &DemandFilter) -> String {
    let mut rows = Vec::new();
    let mut overdue = Vec::new();
    for v in villages {
        let names = Names::of(v);
        for d in v.demands() {
            let due = d.due.as_deref().and_then(|s| parse_date(s).ok());
            let late =
                due.filter(|due| *due < ctx.today && d.status != DemandStatus::Closed.name());
            if let Some(due) = late {
                overdue.push(OverdueDemand {
                    resident_name: names.resident(&d.resident_id).to_owned(),
                    village_name: names.village(&d.village_id).to_owned(),
                    days_overdue: days(ctx.today, due),
                    demand: d.clone(),
                });
            }
            let keep = filter.status.is_none_or(|s| s.name() == d.status)
                && (!filter.overdue || late.is_some());
            if keep {
                rows.push((
                    names.resident(&d.resident_id).to_owned(),
                    names.village(&d.village_id).to_owned(),
                    d,
                ));
            }
        }
    }
    overdue.sort_by(|a, b| (b.days_overdue, &a.demand.id).cmp(&(a.days_overdue, &b.demand.id)));
    rows.sort_by(|a, b| (&b.2.opened_at, &b.2.id).cmp(&(&a.2.opened_at, &a.2.id)));
    let statuses = [
        DemandStatus::Accepted,
        DemandStatus::InProgress,
        DemandStatus::Done,
        DemandStatus::Answered,
        DemandStatus::Revisited,
        DemandStatus::Closed,
    ];
    let body = html! {
        @if !overdue.is_empty() && !filter.overdue {
            section aria-labelledby="overdue" {
                h2 #overdue { "逾期诉求（" (overdue.len()) "）" }
                (overdue_table(&overdue))
            }
        }
        form.inline.no-print method="get" action=(routes::DEMANDS) {
            div.field {
                label for="status" { "状态" }
                select #status name="status" {
                    option value="" selected[filter.status.is_none()] { "全部" }
                    @for s in statuses { option value=(s.name()) selected[filter.status == Some(s)] { (s.name()) } }
                }
            }
            div.field {
                label { input type="checkbox" name="overdue" value="1" checked[filter.overdue]; " 只看逾期" }
            }
            button type="submit" { "筛选" }
        }
        h2 { "诉求（" (rows.len()) "）" }
        @if rows.is_empty() {
            (layout::none("没有符合条件的诉求。在居民页面可受理新诉求。"))
        } @else {
            table #demands {
                thead { tr { th { "受理日期" } th { "居民" } th { "村" } th { "类别" } th { "内容" } th { "状态" } th { "部门" } th { "期限" } } }
                tbody {
                    @for (resident, village, d) in &rows {
                        tr {
                            td { (time::date(&d.opened_at)) }
                            td { a href=(routes::demand(&d.id)) { (resident) } }
                            td { (village) }
                            td { (d.category) }
                            td { (d.text) }
                            td { (layout::status(&d.status)) @if d.flagged > 0 { " ⚠" } }
                            td { (d.department.as_deref().unwrap_or("-")) }
                            td { (d.due.as_deref().unwrap_or("-")) }
                        }
                    }
                }
            }
        }
    };
    layout::page(ctx, Nav::Demands, "诉求", body)
}

fn days(today: NaiveDate, due: NaiveDate) -> i64 {
    (today - due).num_days()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{author, ctx, rng, sample};
    use minqing_model::{Note, Satisfaction, Transition};

    fn step(s: &mut crate::testkit::Sample, day: &str, t: Transition) {
        s.village
            .record_step(&mut rng(), &author("张伟", day), &s.demand, &t)
            .unwrap();
    }

    fn offered(html: &str) -> Vec<&'static str> {
        ["直办", "转办", "督办", "反馈", "回访", "销号", "重开"]
            .into_iter()
            .filter(|n| html.contains(&format!("<button type=\"submit\">{n}</button>")))
            .collect()
    }

    #[test]
    fn only_valid_next_steps_are_offered() {
        let mut s = sample();
        let page = |s: &crate::testkit::Sample| {
            demand_page(&ctx("2026-03-15"), &s.village, &s.demand).unwrap()
        };
        // 办理中 after the transfer.
        assert_eq!(offered(&page(&s)), ["直办", "转办", "督办", "反馈"]);
        step(
            &mut s,
            "2026-03-04",
            Transition::Feedback {
                text: Note::parse("已修复").unwrap(),
            },
        );
        assert_eq!(offered(&page(&s)), ["督办", "反馈", "回访", "重开"]);
        step(
            &mut s,
            "2026-03-05",
            Transition::Revisit {
                satisfaction: Satisfaction::parse("满意").unwrap(),
                note: None,
            },
        );
        assert_eq!(offered(&page(&s)), ["督办", "回访", "销号", "重开"]);
        step(&mut s, "2026-03-06", Transition::Close);
        let html = page(&s);
        assert_eq!(offered(&html), ["重开"]);
        assert!(html.contains("已销号"));
        assert!(!html.contains("逾期"), "a closed demand is not overdue");
    }

    #[test]
    fn a_department_answer_from_the_county_shows_and_makes_feedback_next() {
        let mut s = sample();
        let author = minqing_model::CountyAuthor {
            account: "shuiwu".into(),
            display: "张科长".into(),
            role: minqing_model::CountyRole::Department,
            now_ms: crate::testkit::ms("2026-03-08"),
        };
        s.village
            .record_county_step(
                &mut rng(),
                &author,
                &s.demand,
                &minqing_model::CountyStep::Done {
                    department: "县水务局".into(),
                    answer: Note::parse("管道已修复，已恢复供水").unwrap(),
                },
            )
            .unwrap();
        let html = demand_page(&ctx("2026-03-15"), &s.village, &s.demand).unwrap();
        assert!(
            html.contains("已办结"),
            "the status shows the department's 办结"
        );
        assert!(html.contains("<strong>办结</strong> · 张科长"));
        assert!(html.contains("办结答复：</span>管道已修复，已恢复供水"));
        assert!(html.contains("角色：</span>职能部门"));
        assert_eq!(offered(&html), ["督办", "反馈", "重开"]);
    }

    #[test]
    fn page_shows_names_timeline_in_china_time_and_labels() {
        let s = sample();
        let html = demand_page(&ctx("2026-03-15"), &s.village, &s.demand).unwrap();
        assert!(html.contains(&format!("/resident/{}\">李秀英</a>", s.li)));
        assert!(html.contains("小河村三组12号"));
        assert!(html.contains("县水务局") && html.contains("2026-03-10"));
        assert!(html.contains("<span class=\"overdue\">逾期</span>"));
        assert!(
            html.contains("2026-03-03 10:00"),
            "转办 at 02:00 UTC shows as 10:00"
        );
        for label in ["承办部门", "办理期限", "督办意见", "反馈内容"] {
            assert!(html.contains(&format!("\">{label}</label>")), "{label}");
        }
        assert!(demand_page(&ctx("2026-03-15"), &s.village, &s.li).is_none());
    }

    #[test]
    fn conflicts_are_flagged_with_what_conflicted() {
        let mut s = sample();
        step(
            &mut s,
            "2026-03-04",
            Transition::Feedback {
                text: Note::parse("已修复").unwrap(),
            },
        );
        step(
            &mut s,
            "2026-03-05",
            Transition::Revisit {
                satisfaction: Satisfaction::parse("满意").unwrap(),
                note: None,
            },
        );
        // Two laptops close it offline.
        let mut other = {
            let bytes = s.village.save();
            let mut v = Village::load(s.village.id().clone(), &bytes).unwrap();
            v.set_actor(b"bbbbbbbbbbbbbbbb");
            v
        };
        other
            .record_step(
                &mut rng(),
                &author("王芳", "2026-03-06"),
                &s.demand,
                &Transition::Close,
            )
            .unwrap();
        step(&mut s, "2026-03-07", Transition::Close);
        s.village.merge(&mut other).unwrap();
        let html = demand_page(&ctx("2026-03-15"), &s.village, &s.demand).unwrap();
        assert!(html.contains("⚠ 有 1 条记录"), "{html}");
        assert!(html.contains("⚠ 未生效：销号 by 张伟 after 销号 by 王芳"));
    }

    #[test]
    fn list_filters_and_names_the_overdue() {
        let s = sample();
        let html = demands_page(&ctx("2026-03-15"), &[&s.village], &DemandFilter::default());
        assert!(html.contains("逾期诉求（1）"));
        assert!(html.contains(">李秀英</a>"));
        let closed = DemandFilter {
            status: Some(DemandStatus::Closed),
            overdue: false,
        };
        let html = demands_page(&ctx("2026-03-15"), &[&s.village], &closed);
        assert!(html.contains("诉求（0）"));
        let f =
            DemandFilter::from_form(&Form::parse("status=%E5%8A%9E%E7%90%86%E4%B8%AD&overdue=1"));
        assert_eq!(
            f,
            DemandFilter {
                status: Some(DemandStatus::InProgress),
                overdue: true
            }
        );
        let html = demands_page(&ctx("2026-03-09"), &[&s.village], &f);
        assert!(
            html.contains("诉求（0）"),
            "not overdue before the due date"
        );
    }

    #[test]
    fn new_demand_form_names_the_resident() {
        let s = sample();
        let html = demand_new_page(
            &ctx("2026-03-15"),
            &[&s.village],
            &Form::parse(&format!("resident={}", s.li)),
        )
        .unwrap();
        assert!(html.contains(">李秀英</a>（小河村三组12号，小河村）"));
        assert!(html.contains(">类别</label>") && html.contains(">诉求内容</label>"));
        assert!(
            demand_new_page(
                &ctx("2026-03-15"),
                &[&s.village],
                &Form::parse("resident=zzzzzzzzzzzzzzzz")
            )
            .is_none()
        );
    }
}
