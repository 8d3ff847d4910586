//! The county console's pages (served by `minqing-relay serve --console`,
//! docs/console.md), as pure functions like the cadre's pages: views in,
//! HTML out, with the cadre app's stylesheet, script and icons
//! ([`crate::assets`], served by the relay at the same paths). The relay
//! decides who may see what and masks personal data before it calls these:
//! a page shows what it is given.

use chrono::NaiveDate;
use maud::{DOCTYPE, Markup, html};
use minqing_model::{Bulletin, DemandView, LedgerReport, MonthlyReport};

use crate::report::{Bar, bars, percent};

use crate::{CSRF_FIELD, Notice, NoticeKind, layout, routes, time};

/// Paths of the console.
pub mod paths {
    /// The login form (GET) and login (POST).
    pub const LOGIN: &str = "/login";
    /// Logout (POST).
    pub const LOGOUT: &str = "/logout";
    /// A department's inbox.
    pub const INBOX: &str = "/inbox";
    /// The supervisors' and viewers' dashboard (the ledger of their scope).
    pub const DASHBOARD: &str = "/dashboard";
    /// The dashboard's ledger as an .xlsx download.
    pub const DASHBOARD_XLSX: &str = "/dashboard/ledger.xlsx";
    /// The dashboard's monthly duty report (this month) as an .xlsx download.
    pub const DASHBOARD_MONTHLY_XLSX: &str = "/dashboard/monthly.xlsx";
    /// The monthly supervision bulletin (督查通报), `?month=YYYY-MM`.
    pub const BULLETIN: &str = "/bulletin";
    /// The bulletin as an .xlsx download, `?month=YYYY-MM`.
    pub const BULLETIN_XLSX: &str = "/bulletin.xlsx";
    /// The first page after login.
    pub const HOME: &str = "/";

    /// A demand's page.
    pub fn demand(village: &str, id: &str) -> String {
        format!("/demand/{village}/{id}")
    }

    /// A demand's step form (POST).
    pub fn demand_step(village: &str, id: &str) -> String {
        format!("/demand/{village}/{id}/step")
    }

    /// Showing the resident's full numbers (POST, audited).
    pub fn demand_reveal(village: &str, id: &str) -> String {
        format!("/demand/{village}/{id}/reveal")
    }
}

/// What every console page needs: who is logged in.
#[derive(Clone, Debug)]
pub struct ConsoleCtx<'a> {
    /// The account's shown name.
    pub display: &'a str,
    /// The account's role, in Chinese (职能部门 …).
    pub role: &'a str,
    /// The department (department accounts) or scope (supervisors), shown.
    pub unit: Option<&'a str>,
    /// The title of the account's demand list in the navigation (待办诉求
    /// for a department, 辖区诉求 for a supervisor), if it has one.
    pub inbox: Option<&'a str>,
    /// Whether the account has the dashboard (supervisors, viewers).
    pub dashboard: bool,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// Today in China time.
    pub today: NaiveDate,
    /// A line above the page.
    pub notice: Option<Notice>,
}

fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(token); }
}

fn notice(n: &Option<Notice>) -> Markup {
    html! {
        @if let Some(n) = n {
            div.notice.(match n.kind { NoticeKind::Ok => "ok", NoticeKind::Warn => "warn", NoticeKind::Error => "error" }) role="status" { (n.text) }
        }
    }
}

fn shell(title: &str, header: Markup, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · 县级控制台" }
                link rel="icon" href=(routes::FAVICON);
                link rel="stylesheet" href=(routes::CSS);
                script src=(routes::JS) defer {}
            }
            body {
                header.top { (header) }
                main { h1 { (title) } (body) }
            }
        }
    }
    .into_string()
}

/// A page of a logged-in account.
pub fn page(ctx: &ConsoleCtx<'_>, title: &str, body: Markup) -> String {
    let header = html! {
        a.brand href=(paths::HOME) { "民情 · 县级控制台" }
        nav.main aria-label="主导航" {
            @if ctx.dashboard { a href=(paths::DASHBOARD) { "看板" } }
            @if let Some(title) = ctx.inbox { a href=(paths::INBOX) { (title) } }
        }
        span.who {
            (ctx.display) "（" (ctx.role) @if let Some(u) = ctx.unit { " · " (u) } "）· " (time::date_zh(ctx.today))
        }
        form.inline method="post" action=(paths::LOGOUT) {
            (csrf_field(ctx.csrf))
            button.secondary type="submit" { "退出" }
        }
    };
    let body = html! { (notice(&ctx.notice)) (body) };
    shell(title, header, body)
}

/// The login form. `csrf` is the login form's own token (a pre-session
/// cookie holds the same); `error` says why the last try failed.
pub fn login_page(csrf: &str, name: &str, error: Option<&str>) -> String {
    let header = html! { span.brand { "民情 · 县级控制台" } };
    let body = html! {
        @if let Some(e) = error { div.notice.error role="alert" { (e) } }
        form.stack method="post" action=(paths::LOGIN) aria-label="登录" {
            (csrf_field(csrf))
            div.field {
                label for="login-name" { "账号" }
                input #login-name type="text" name="name" autocomplete="username" required autofocus value=(name);
            }
            div.field {
                label for="login-password" { "密码" }
                input #login-password type="password" name="password" autocomplete="current-password" required;
            }
            div.actions { button type="submit" { "登录" } }
        }
        p.muted { "账号由县里的运维人员用 minqing-relay user add 开通。" }
    };
    shell("登录", header, body)
}

/// A page saying why something was refused or not found.
pub fn message_page(ctx: &ConsoleCtx<'_>, title: &str, text: &str) -> String {
    page(
        ctx,
        title,
        html! { p { (text) } p { a href=(paths::HOME) { "返回首页" } } },
    )
}

/// The first page of an account without an inbox (built so far: who it is
/// and what comes later).
pub fn home_page(ctx: &ConsoleCtx<'_>) -> String {
    let body = html! {
        p { "已登录。" }
        @if let Some(title) = ctx.inbox {
            p { a href=(paths::INBOX) { "查看" (title) } }
        }
        @if ctx.dashboard {
            p { a href=(paths::DASHBOARD) { "查看看板" } }
        }
        p.muted { "走访覆盖看板和督查通报尚未开通。" }
    };
    page(ctx, "首页", body)
}

/// One demand of a department's inbox.
#[derive(Clone, Debug)]
pub struct InboxRow {
    /// The village's id.
    pub village_id: String,
    /// The village's name.
    pub village: String,
    /// The resident's name.
    pub resident: String,
    /// The demand.
    pub demand: DemandView,
    /// Days overdue (0: not overdue).
    pub days_overdue: i64,
}

/// A demand list (a department's inbox, a supervisor's demands in scope):
/// rows already sorted (overdue first, then by due date).
pub fn inbox_page(ctx: &ConsoleCtx<'_>, title: &str, what: &str, rows: &[InboxRow]) -> String {
    let body = html! {
        @if rows.is_empty() {
            (layout::none(&format!("没有{what}。")))
        } @else {
            table.list {
                caption { (what) "（" (rows.len()) " 件，逾期在前，按期限排序）" }
                thead { tr { th { "诉求" } th { "村" } th { "居民" } th { "状态" } th { "办理期限" } th { "受理" } } }
                tbody {
                    @for r in rows {
                        tr.overdue-row[r.days_overdue > 0] {
                            td { a href=(paths::demand(&r.village_id, &r.demand.id)) { (r.demand.category) "：" (clip(&r.demand.text, 30)) } }
                            td { (r.village) }
                            td { (r.resident) }
                            td { (layout::status(&r.demand.status)) }
                            td {
                                (r.demand.due.as_deref().unwrap_or("-"))
                                @if r.days_overdue > 0 { " " span.overdue { "逾期 " (r.days_overdue) " 天" } }
                            }
                            td { (time::datetime(&r.demand.opened_at)) }
                        }
                    }
                }
            }
        }
    };
    page(ctx, title, body)
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// The resident as a console page shows it: numbers masked unless the
/// account revealed them (and the relay audited it).
#[derive(Clone, Debug)]
pub struct ResidentCard {
    /// Name.
    pub name: String,
    /// Address of the household.
    pub address: String,
    /// 身份证号, masked or full.
    pub id_card: Option<String>,
    /// Phone, masked or full.
    pub phone: Option<String>,
    /// Whether the numbers shown are the full ones.
    pub revealed: bool,
    /// Whether the account may reveal them.
    pub can_reveal: bool,
}

/// Which forms a demand page offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DemandActions {
    /// 办理情况 (a department, while it may).
    pub progress: bool,
    /// 办结 (a department, while it may).
    pub done: bool,
    /// 督办 (a supervisor in scope).
    pub supervise: bool,
}

/// A demand's page in the console.
pub fn demand_page(
    ctx: &ConsoleCtx<'_>,
    village_id: &str,
    village: &str,
    d: &DemandView,
    resident: &ResidentCard,
    actions: DemandActions,
) -> String {
    let overdue = d.is_overdue(ctx.today);
    let body = html! {
        section.card aria-labelledby="about" {
            h2 #about { "诉求内容" }
            dl.file {
                dt { "村" } dd { (village) }
                dt { "类别" } dd { (d.category) }
                dt { "内容" } dd { (layout::multiline(&d.text)) }
                dt { "状态" } dd #demand-status { (layout::status(&d.status)) }
                dt { "承办部门" } dd { (d.department.as_deref().unwrap_or("-")) }
                dt { "办理期限" } dd {
                    (d.due.as_deref().unwrap_or("-"))
                    @if overdue { " " span.overdue { "逾期" } }
                }
                dt { "受理" } dd { (d.cadre) " · " (time::datetime(&d.opened_at)) }
            }
        }
        section.card aria-labelledby="resident" {
            h2 #resident { "诉求人" }
            dl.file {
                dt { "姓名" } dd { (resident.name) }
                dt { "住址" } dd { (resident.address) }
                dt { "身份证号" } dd #resident-id-card { (resident.id_card.as_deref().unwrap_or("-")) }
                dt { "电话" } dd #resident-phone { (resident.phone.as_deref().unwrap_or("-")) }
            }
            @if resident.can_reveal && !resident.revealed {
                form method="post" action=(paths::demand_reveal(village_id, &d.id)) aria-label="显示完整号码" {
                    (csrf_field(ctx.csrf))
                    button.secondary type="submit" { "显示完整号码（将记入审计日志）" }
                }
            }
            @if resident.revealed { p.muted { "完整号码的这次查看已记入审计日志。" } }
        }
        @if actions.progress || actions.done || actions.supervise {
            section aria-labelledby="next" {
                h2 #next { "办理" }
                div.steps {
                    @if actions.progress {
                        form method="post" action=(paths::demand_step(village_id, &d.id)) aria-label="办理情况" {
                            (csrf_field(ctx.csrf))
                            input type="hidden" name="step" value="progress";
                            div.field { label for="progress-note" { "办理情况" } textarea #progress-note name="note" required {} }
                            button type="submit" { "记录办理情况" }
                        }
                    }
                    @if actions.done {
                        form method="post" action=(paths::demand_step(village_id, &d.id)) aria-label="办结" {
                            (csrf_field(ctx.csrf))
                            input type="hidden" name="step" value="done";
                            div.field { label for="done-answer" { "办结答复" } textarea #done-answer name="answer" required {} }
                            button type="submit" { "办结" }
                        }
                    }
                    @if actions.supervise {
                        form method="post" action=(paths::demand_step(village_id, &d.id)) aria-label="督办" {
                            (csrf_field(ctx.csrf))
                            input type="hidden" name="step" value="supervise";
                            div.field { label for="supervise-note" { "督办意见" } textarea #supervise-note name="note" required {} }
                            div.field { label for="supervise-due" { "新的办理期限" } input #supervise-due type="date" name="due"; }
                            button type="submit" { "督办" }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="timeline" {
            h2 #timeline { "办理过程" }
            ol.timeline {
                @for e in &d.events {
                    li.flagged[e.flag.is_some()] {
                        strong { (e.kind_name) } " · " (e.cadre) " · " span.muted { (time::datetime(&e.at)) }
                        @for (k, v) in &e.fields {
                            br; span.muted { (crate::demand::field_label(k)) "：" } (crate::demand::field_value(k, v))
                        }
                        @if let Some(flag) = &e.flag {
                            br; span.flag { "⚠ 未生效：" (flag) }
                        }
                    }
                }
            }
        }
    };
    page(ctx, &format!("诉求：{}", d.category), body)
}

/// The dashboard: the demand ledger over the villages of the account's
/// scope (`scope` in words), the same figures as `minqing-relay report
/// ledger --json` over those villages, with charts and the .xlsx download.
pub fn dashboard_page(
    ctx: &ConsoleCtx<'_>,
    scope: &str,
    ledger: &LedgerReport,
    monthly: &MonthlyReport,
) -> String {
    let count_bars = |m: &std::collections::BTreeMap<String, usize>| -> Vec<Bar> {
        m.iter()
            .map(|(k, n)| Bar {
                label: k.clone(),
                value: *n as f64,
                shown: n.to_string(),
            })
            .collect()
    };
    let max = |m: &std::collections::BTreeMap<String, usize>| {
        m.values().copied().max().unwrap_or(0) as f64
    };
    let by_department: Vec<Bar> = ledger
        .by_department
        .iter()
        .map(|(d, g)| Bar {
            label: d.clone(),
            value: g.resolution_rate,
            shown: format!(
                "{} {}/{}",
                percent(g.resolution_rate),
                g.closed,
                g.collected
            ),
        })
        .collect();
    let body = html! {
        p.muted { "范围：" (scope) "；逾期按 " (ledger.today) " 计。" }
        h2 #ledger-title { "问题台账" }
        div.stats #ledger {
            div.stat { span.n #ledger-collected { (ledger.collected) } span.l { "受理诉求" } }
            div.stat { span.n #ledger-closed { (ledger.closed) } span.l { "已销号" } }
            div.stat { span.n #ledger-rate { (percent(ledger.resolution_rate)) } span.l { "办结率" } }
            div.stat.alert[!ledger.overdue.is_empty()] { span.n #ledger-overdue { (ledger.overdue.len()) } span.l { "逾期" } }
        }
        div.charts {
            (bars("chart-states", "未销号诉求（按状态）", &count_bars(&ledger.open_by_status), max(&ledger.open_by_status)))
            (bars("chart-departments", "办结率（按部门）", &by_department, 1.0))
            (bars("chart-satisfaction", "回访满意度", &count_bars(&ledger.satisfaction), max(&ledger.satisfaction)))
        }
        p { a.button href=(paths::DASHBOARD_XLSX) download="问题台账.xlsx" { "下载问题台账（.xlsx）" } }
        h2 #monthly { "本月走访（" (monthly.month) "，按干部）" }
        @if monthly.cadres.is_empty() {
            (layout::none("本月还没有走访记录。"))
        } @else {
            div.charts {
                (bars("chart-coverage", "走访覆盖率（按干部）", &monthly.cadres.iter().map(|c| Bar {
                    label: c.cadre.clone(), value: c.coverage,
                    shown: format!("{} {}/{}", percent(c.coverage), c.households_visited, c.households_assigned),
                }).collect::<Vec<_>>(), 1.0))
            }
            table.list #monthly-cadres {
                thead { tr { th { "干部" } th.num { "走访次数" } th.num { "走访户数" } th.num { "应访户数" } th.num { "重点人员走访" } th.num { "请假" } th.num { "补访" } } }
                tbody {
                    @for c in &monthly.cadres {
                        tr {
                            td { (c.cadre) }
                            td.num { (c.visits) }
                            td.num { (c.households_visited) }
                            td.num { (c.households_assigned) }
                            td.num { (c.key_residents_visited) }
                            td.num { (c.leave) }
                            td.num { (c.makeups_done) "/" (c.makeups_owed) }
                        }
                    }
                }
            }
        }
        p { a.button href=(paths::DASHBOARD_MONTHLY_XLSX) download="月度走访.xlsx" { "下载本月走访（.xlsx）" } }
        h2 { "督查通报" }
        p { a.button href=(paths::BULLETIN) { "上月督查通报（可打印）" } " " span.muted { "走访覆盖、点名、请假与补访、诉求办理，可选月份，可下载 .xlsx。" } }
    };
    page(ctx, "看板", body)
}

/// The heading of the bulletin of `scope` (全县, or a township) for `month`.
pub fn bulletin_title(scope: &str, month: &minqing_model::Month) -> String {
    format!(
        "{scope}民情走访督查通报（{}年{}月）",
        month.year, month.month
    )
}

/// The monthly supervision bulletin (督查通报) of a scope: `title` from
/// [`bulletin_title`], `area` heads the coverage table (乡镇 or 村), `made`
/// is the day it was generated. Prints as a clean A4 page (the stylesheet's
/// print rules drop the navigation, forms and buttons). Names cadres only.
pub fn bulletin_page(
    ctx: &ConsoleCtx<'_>,
    title: &str,
    area: &str,
    b: &Bulletin,
    made: NaiveDate,
) -> String {
    let l = &b.ledger;
    let cov_row = |c: &minqing_model::Coverage, id: Option<&str>| {
        html! {
            tr id=[id] {
                td { (c.area) }
                td.num data-k="due" { (c.households_due) }
                td.num data-k="visited" { (c.households_visited) }
                td.num data-k="coverage" { (percent(c.coverage)) }
                td.num data-k="key" { (c.key_visited) "/" (c.key_due) }
            }
        }
    };
    let body = html! {
        p #bulletin-made { "生成日期：" (time::date_zh(made)) "（诉求逾期按此日计）" }
        div.actions {
            form.inline method="get" action=(paths::BULLETIN) {
                label for="bulletin-month" { "月份" }
                " "
                input #bulletin-month type="month" name="month" value=(b.month);
                " "
                button.secondary type="submit" { "查看" }
            }
            " "
            (layout::print_button())
            " "
            a.button.secondary.no-print href=(format!("{}?month={}", paths::BULLETIN_XLSX, b.month)) download=(format!("督查通报{}.xlsx", b.month)) { "下载 .xlsx" }
        }
        h2 { "一、走访覆盖" }
        table.list #coverage {
            thead { tr { th { (area) } th.num { "应访户数" } th.num { "已访户数" } th.num { "覆盖率" } th.num { "重点人员 已访/应访" } } }
            tbody {
                @for c in &b.areas { (cov_row(c, None)) }
                (cov_row(&b.total, Some("coverage-total")))
            }
        }
        p.muted { "应访户数为各干部所在村户数之和，与月度走访报表一致。" }
        h2 { "二、未按要求走访（点名）" }
        @if b.missed.named.is_empty() {
            p #named-none { "本月没有未按要求走访且未请假的干部。" }
        } @else {
            table.list #named {
                thead { tr { th { "干部" } th { "村" } th.num { "已访/应访户数" } } }
                tbody {
                    @for m in &b.missed.named {
                        tr { td { (m.cadre) } td { (m.villages.join("、")) } td.num { (m.households_visited) "/" (m.households_due) } }
                    }
                }
            }
        }
        h3 { "请假" }
        @if b.missed.on_leave.is_empty() {
            p #leave-none { "本月没有干部请假。" }
        } @else {
            table.list #on-leave {
                thead { tr { th { "干部" } th { "村" } th.num { "已访/应访户数" } th { "补访" } } }
                tbody {
                    @for m in &b.missed.on_leave {
                        tr {
                            td { (m.cadre) } td { (m.villages.join("、")) }
                            td.num { (m.households_visited) "/" (m.households_due) }
                            td { @match &m.makeup_on { Some(d) => { "已补访（" (d) "）" }, None => { "未补访" } } }
                        }
                    }
                }
            }
        }
        h2 { "三、诉求办理" }
        p.muted { "本月受理的诉求，办理状态截至生成日期。" }
        table.list #demands {
            tbody {
                tr { th { "本月受理" } td.num #demands-collected { (l.collected) } }
                tr { th { "已销号" } td.num #demands-closed { (l.closed) } }
                tr { th { "办结率" } td.num #demands-rate { (percent(l.resolution_rate)) } }
                tr { th { "逾期" } td.num #demands-overdue { (l.overdue.len()) } }
                @for status in minqing_model::DemandStatus::ALL.map(|s| s.name()) {
                    @if let Some(n) = l.open_by_status.get(status) {
                        tr { th { "未销号 · " (status) } td.num data-status=(status) { (n) } }
                    }
                }
            }
        }
        h3 { "本月回访满意度" }
        table.list #satisfaction {
            tbody {
                @for k in minqing_model::Satisfaction::ALL.map(|s| s.as_str()) {
                    tr { th { (k) } td.num data-sat=(k) { (b.revisits.get(k).copied().unwrap_or(0)) } }
                }
                tr { th { "本月回访" } td.num #revisited { (b.revisited) } }
                tr { th { "满意率（满意+基本满意）" } td.num #satisfaction-rate { (percent(b.satisfaction_rate)) } }
            }
        }
    };
    page(ctx, title, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{date, sample};

    fn ctx(inbox: Option<&'static str>) -> ConsoleCtx<'static> {
        ConsoleCtx {
            display: "张科长",
            role: "职能部门",
            unit: Some("县水务局"),
            inbox,
            dashboard: false,
            csrf: "tok123",
            today: date("2026-03-15"),
            notice: None,
        }
    }

    #[test]
    fn login_form_has_labels_and_its_token() {
        let html = login_page("pre456", "shuiwu", Some("账号或密码不对。"));
        assert!(html.contains("<label for=\"login-name\">账号</label>"));
        assert!(html.contains("<label for=\"login-password\">密码</label>"));
        assert!(html.contains("name=\"csrf\" value=\"pre456\""));
        assert!(html.contains("value=\"shuiwu\""));
        assert!(html.contains("role=\"alert\">账号或密码不对。"));
    }

    #[test]
    fn inbox_marks_overdue_rows_and_escapes_text() {
        let s = sample();
        let mut d = s.village.demand(&s.demand).unwrap();
        d.text = "<script>alert(1)</script>".into();
        let rows = [InboxRow {
            village_id: "V001".into(),
            village: "小河村".into(),
            resident: "李秀英".into(),
            demand: d,
            days_overdue: 5,
        }];
        let html = inbox_page(
            &ctx(Some("待办诉求")),
            "待办诉求",
            "转给本部门的诉求",
            &rows,
        );
        assert!(html.contains("逾期 5 天") && html.contains("李秀英"));
        assert!(html.contains(&format!("href=\"/demand/V001/{}\"", s.demand)));
        assert!(!html.contains("<script>alert"), "resident text is escaped");
        assert!(
            html.contains("href=\"/inbox\">待办诉求</a>"),
            "the navigation names the list"
        );
        let empty = inbox_page(&ctx(Some("待办诉求")), "待办诉求", "转给本部门的诉求", &[]);
        assert!(empty.contains("没有转给本部门的诉求。"));
    }

    #[test]
    fn demand_page_offers_only_the_given_actions_and_shows_what_it_is_given() {
        let s = sample();
        let d = s.village.demand(&s.demand).unwrap();
        let masked = ResidentCard {
            name: "李秀英".into(),
            address: "小河村三组12号".into(),
            id_card: Some("3708**********1224".into()),
            phone: Some("139****1234".into()),
            revealed: false,
            can_reveal: true,
        };
        let dept = DemandActions {
            progress: true,
            done: true,
            supervise: false,
        };
        let html = demand_page(&ctx(None), "V001", "小河村", &d, &masked, dept);
        assert!(html.contains("3708**********1224") && html.contains("139****1234"));
        assert!(html.contains("显示完整号码（将记入审计日志）"));
        assert!(html.contains(">办理情况</label>") && html.contains(">办结答复</label>"));
        assert!(!html.contains(">督办意见</label>"));
        assert_eq!(
            html.matches("name=\"csrf\" value=\"tok123\"").count(),
            4,
            "logout, reveal, two steps"
        );
        let none = demand_page(
            &ctx(None),
            "V001",
            "小河村",
            &d,
            &ResidentCard {
                can_reveal: false,
                ..masked
            },
            DemandActions::default(),
        );
        assert!(!none.contains("显示完整号码") && !none.contains("<textarea"));
    }

    #[test]
    fn bulletin_names_the_cadres_it_is_given_and_prints_without_navigation() {
        let s = sample();
        let month = minqing_model::Month::parse("2026-03").unwrap();
        let mut b = minqing_model::bulletin(
            &[("城关镇".to_owned(), vec![&s.village])],
            &Default::default(),
            month,
            date("2026-04-02"),
        );
        b.missed.named.push(minqing_model::Missed {
            cadre: "赵强".into(),
            villages: vec!["小河村".into(), "大河村".into()],
            households_visited: 1,
            households_due: 4,
        });
        let title = bulletin_title("城关镇", &month);
        assert_eq!(title, "城关镇民情走访督查通报（2026年3月）");
        let mut c = ctx(Some("辖区诉求"));
        c.dashboard = true;
        let html = bulletin_page(&c, &title, "村", &b, date("2026-04-02"));
        assert!(html.contains("<h1>城关镇民情走访督查通报（2026年3月）</h1>"));
        assert!(html.contains("生成日期：2026年4月2日"), "{html}");
        assert!(html.contains("<td>赵强</td><td>小河村、大河村</td><td class=\"num\">1/4</td>"));
        assert!(html.contains("本月没有干部请假。"));
        assert!(html.contains("<label for=\"bulletin-month\">月份</label>"));
        assert!(html.contains("href=\"/bulletin.xlsx?month=2026-03\""));
        // The stylesheet's print rules hide what is not the bulletin.
        assert!(html.contains("<header class=\"top\">") && html.contains("data-print"));
        let css = crate::assets::asset(crate::routes::CSS).unwrap().body;
        assert!(css.contains(
            "header.top, nav, form, .actions, .no-print, button { display: none !important; }"
        ));
        assert!(css.contains("@page { size: A4;"));
    }
}
