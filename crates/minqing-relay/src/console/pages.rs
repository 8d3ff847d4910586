//! What the console answers: the fences (session, account, CSRF) and then
//! each page and write, on the blocking pool (see `mod.rs`).

use std::collections::BTreeMap;

use axum::http::{HeaderMap, Method, StatusCode, header};
use chrono::NaiveDate;
use minqing_model::{
    CountyAuthor, CountyRole, CountyStep, DemandView, Id, Note, ReadVillage, Village, local_date,
    parse_date,
};
use minqing_sync::DocId;
use minqing_web::console::{self as web, ConsoleCtx, DemandActions, InboxRow, ResidentCard, paths};
use minqing_web::{CSRF_FIELD, Notice};

use super::accounts::{self, Account, Role, mask_id_card, mask_phone, verify_password};
use super::data::WriteError;
use super::departments;
use super::session::{Expired, Session, same_secret};
use super::{Console, Req, Resp};
use crate::registry::VillageEntry;

/// The session cookie.
const COOKIE: &str = "mq_console";
/// The login form's own CSRF cookie (before there is a session).
const LOGIN_COOKIE: &str = "mq_console_login";
/// Longest login name or password read from the form.
const MAX_FIELD: usize = 4096;

/// Audit kinds of the console (docs/console.md).
pub mod kind {
    /// A login.
    pub const LOGIN: &str = "console_login";
    /// Failed logins, aggregated per name.
    pub const LOGIN_FAILED: &str = "console_login_failed";
    /// A logout.
    pub const LOGOUT: &str = "console_logout";
    /// A step written from the console.
    pub const STEP: &str = "console_step";
    /// A view of a resident's unmasked numbers.
    pub const VIEW_UNMASKED: &str = "console_view_unmasked";
    /// A page the account may not open (URL guessing), aggregated.
    pub const REFUSED: &str = "console_refused";
}

/// A hash no password matches, checked when the name is unknown so that an
/// unknown name takes as long as a wrong password.
const NO_ACCOUNT_HASH: &str = "argon2id$v=19$m=19456,t=2,p=1$00000000000000000000000000000000$0000000000000000000000000000000000000000000000000000000000000000";

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| v.len() <= MAX_FIELD)
        .collect()
}

fn today() -> NaiveDate {
    local_date(chrono::Utc::now().timestamp_millis())
}

fn session_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// What a page knows of who asks.
struct Who {
    token: String,
    session: Session,
    account: Account,
}

impl Who {
    fn ctx(&self, notice: Option<Notice>) -> ConsoleCtx<'_> {
        ConsoleCtx {
            display: &self.account.display,
            role: self.account.role.name_zh(),
            unit: self.account.department.as_deref(),
            dashboard: matches!(self.account.role, Role::Supervisor | Role::Viewer),
            inbox: match self.account.role {
                Role::Department => Some("待办诉求"),
                Role::Supervisor => Some("辖区诉求"),
                Role::Operator | Role::Viewer => None,
            },
            csrf: &self.session.csrf,
            today: today(),
            notice,
        }
    }
}

impl Console {
    /// Answers one request.
    pub fn dispatch(&self, req: Req) -> Resp {
        if req.method == Method::GET
            && let Some(asset) = minqing_web::assets::asset(&req.path)
        {
            let mut r = Resp::html(StatusCode::OK, asset.body.to_owned());
            r.content_type = asset.content_type;
            r.cache = true;
            return r;
        }
        // A post from another site is refused whatever it carries.
        if req.method == Method::POST
            && let Some(origin) = req.headers.get(header::ORIGIN)
        {
            let host = req
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if origin.to_str().ok() != Some(&format!("https://{host}")) {
                return Resp::html(StatusCode::FORBIDDEN, "来自其他网站的请求被拒绝。".into());
            }
        }
        match (req.method.clone(), req.path.as_str()) {
            (Method::GET, paths::LOGIN) => return self.login_form(None, "", StatusCode::OK),
            (Method::POST, paths::LOGIN) => return self.login(&req),
            _ => {}
        }
        let who = match self.who(&req) {
            Ok(w) => w,
            Err(resp) => return *resp,
        };
        if req.method == Method::POST {
            let f = form(&req.body);
            let ok = f
                .get(CSRF_FIELD)
                .is_some_and(|t| same_secret(t, &who.session.csrf));
            if !ok {
                return Resp::html(
                    StatusCode::FORBIDDEN,
                    web::message_page(
                        &who.ctx(None),
                        "拒绝",
                        "表单已失效（缺少或不符的校验码），请回到页面重新提交。",
                    ),
                );
            }
        }
        let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        match (req.method.clone(), segments.as_slice()) {
            (Method::GET, [""]) => {
                if who.account.role == Role::Department {
                    Resp::redirect(paths::INBOX)
                } else if matches!(who.account.role, Role::Supervisor | Role::Viewer) {
                    Resp::redirect(paths::DASHBOARD)
                } else {
                    Resp::html(StatusCode::OK, web::home_page(&who.ctx(None)))
                }
            }
            (Method::POST, ["logout"]) => {
                self.sessions.end(&who.token);
                self.audit.event(
                    kind::LOGOUT,
                    None,
                    None,
                    format!("account {}", who.account.name),
                );
                Resp::redirect(paths::LOGIN).cookie(format!(
                    "{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
                ))
            }
            (Method::GET, ["inbox"]) => self.inbox(&who),
            (Method::GET, ["dashboard"]) => self.dashboard(&who, Board::Page),
            (Method::GET, ["dashboard", "ledger.xlsx"]) => self.dashboard(&who, Board::Ledger),
            (Method::GET, ["dashboard", "monthly.xlsx"]) => self.dashboard(&who, Board::Monthly),
            (Method::GET, ["bulletin"]) => self.bulletin(&who, &req.query, false),
            (Method::GET, ["bulletin.xlsx"]) => self.bulletin(&who, &req.query, true),
            (Method::GET, ["demand", village, id]) => {
                let notice = (req.query == "done=step")
                    .then(|| Notice::ok("已保存（已写入县里的存储），干部下次同步时就能看到。"));
                self.demand(&who, village, id, notice, false)
            }
            (Method::POST, ["demand", village, id, "step"]) => {
                self.step(&who, village, id, &form(&req.body))
            }
            (Method::POST, ["demand", village, id, "reveal"]) => {
                self.demand(&who, village, id, None, true)
            }
            _ => self.not_found(&who, &req.path),
        }
    }

    fn login_form(&self, error: Option<&str>, name: &str, status: StatusCode) -> Resp {
        let token = super::session::new_token();
        Resp::html(status, web::login_page(&token, name, error)).cookie(format!(
            "{LOGIN_COOKIE}={token}; Path=/login; Max-Age=3600; Secure; HttpOnly; SameSite=Strict"
        ))
    }

    fn login(&self, req: &Req) -> Resp {
        let f = form(&req.body);
        let pre = cookie(&req.headers, LOGIN_COOKIE);
        let csrf_ok = match (pre, f.get(CSRF_FIELD)) {
            (Some(c), Some(t)) => same_secret(c, t),
            _ => false,
        };
        let name: String = f
            .get("name")
            .map(|n| n.trim().to_lowercase())
            .unwrap_or_default()
            .chars()
            .take(64)
            .collect();
        if !csrf_ok {
            return self.login_form(
                Some("登录表单已失效，请重新输入。"),
                &name,
                StatusCode::FORBIDDEN,
            );
        }
        if let Err(wait) = self.throttle.check(&name) {
            let secs = wait.as_secs().max(1);
            return self.login_form(
                Some(&format!("这个账号密码错误次数过多，请 {secs} 秒后再试。")),
                &name,
                StatusCode::TOO_MANY_REQUESTS,
            );
        }
        let password = f.get("password").map(String::as_str).unwrap_or("");
        let account = match accounts::load(&self.home) {
            Ok(all) => all.get(&name).cloned(),
            Err(e) => {
                tracing::error!("cannot read the console accounts: {e:#}");
                return Resp::html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "无法读取账号文件，请联系运维人员。".into(),
                );
            }
        };
        let hash = account
            .as_ref()
            .map_or(NO_ACCOUNT_HASH, |a| a.hash.as_str());
        let password_ok = verify_password(password, hash);
        match account {
            Some(a) if password_ok && !a.disabled => {
                self.throttle.succeeded(&name);
                let token = self.sessions.start(&a.name);
                self.audit.event(
                    kind::LOGIN,
                    None,
                    None,
                    format!("account {} ({})", a.name, a.role),
                );
                Resp::redirect(paths::HOME).cookie(session_cookie(&token))
            }
            Some(a) if password_ok => {
                self.audit.event(
                    kind::LOGIN_FAILED,
                    None,
                    None,
                    format!("account {} is disabled", a.name),
                );
                self.login_form(
                    Some("这个账号已停用，请联系运维人员。"),
                    &name,
                    StatusCode::FORBIDDEN,
                )
            }
            _ => {
                let n = self.throttle.failed(&name);
                self.audit.aggregated(
                    kind::LOGIN_FAILED,
                    &format!("login:{name}"),
                    None,
                    None,
                    format!("wrong password or unknown account {name:?} ({n} in a row)"),
                );
                self.login_form(Some("账号或密码不对。"), &name, StatusCode::UNAUTHORIZED)
            }
        }
    }

    /// The session and its account, or the answer that sends the browser to
    /// the login page.
    fn who(&self, req: &Req) -> Result<Who, Box<Resp>> {
        let to_login = |_why: &str| -> Box<Resp> {
            Box::new(Resp::redirect(paths::LOGIN).cookie(format!(
                "{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
            )))
        };
        let Some(token) = cookie(&req.headers, COOKIE) else {
            return Err(to_login("no session"));
        };
        let session = match self.sessions.touch(token) {
            Ok(s) => s,
            Err(Expired::Expired) => return Err(to_login("expired")),
            Err(Expired::Unknown) => return Err(to_login("unknown")),
        };
        let account = accounts::load(&self.home)
            .ok()
            .and_then(|all| all.get(&session.account).cloned());
        match account {
            Some(a) if !a.disabled => Ok(Who {
                token: token.to_owned(),
                session,
                account: a,
            }),
            _ => {
                // Disabled or removed: out at this request.
                self.sessions.end_account(&session.account);
                Err(to_login("disabled"))
            }
        }
    }

    fn refused(&self, who: &Who, what: &str) {
        self.audit.aggregated(
            kind::REFUSED,
            &format!("account:{}", who.account.name),
            None,
            None,
            format!(
                "account {} ({}) refused {what}",
                who.account.name, who.account.role
            ),
        );
    }

    fn not_found(&self, who: &Who, path: &str) -> Resp {
        self.refused(who, path);
        Resp::html(
            StatusCode::NOT_FOUND,
            web::message_page(
                &who.ctx(None),
                "没有这个页面",
                "没有这个页面，或者您的账号无权查看。",
            ),
        )
    }

    fn villages(&self) -> BTreeMap<String, VillageEntry> {
        self.home.villages().unwrap_or_else(|e| {
            tracing::error!("cannot read the village list: {e:#}");
            BTreeMap::new()
        })
    }

    /// The ledger over the villages of a supervisor's scope (a viewer: the
    /// county), as a page or as .xlsx.
    fn dashboard(&self, who: &Who, what: Board) -> Resp {
        let Some(scope) = Self::board_scope(who) else {
            return self.not_found(who, "/dashboard");
        };
        let docs: Vec<DocId> = self
            .villages()
            .into_iter()
            .filter(|(_, e)| scope.covers(e.township.as_deref()))
            .filter_map(|(id, _)| DocId::new(id).ok())
            .collect();
        let month = minqing_model::month_of(today());
        let (ledger, monthly) = self.villages.read_all(&docs, |held| {
            (
                minqing_model::ledger_report(held.iter().copied(), None, None, today()),
                minqing_model::monthly_report(held.iter().copied(), month),
            )
        });
        let scope_words = match &scope {
            accounts::Scope::County => "全县".to_owned(),
            accounts::Scope::Township(t) => t.clone(),
        };
        let (tables, file, name) = match what {
            Board::Page => {
                return Resp::html(
                    StatusCode::OK,
                    web::dashboard_page(&who.ctx(None), &scope_words, &ledger, &monthly),
                );
            }
            Board::Ledger => (
                ledger.tables(),
                "ledger.xlsx",
                "%E9%97%AE%E9%A2%98%E5%8F%B0%E8%B4%A6.xlsx",
            ),
            Board::Monthly => (
                monthly.tables(),
                "monthly.xlsx",
                "%E6%9C%88%E5%BA%A6%E8%B5%B0%E8%AE%BF.xlsx",
            ),
        };
        self.xlsx(who, &tables, file, name)
    }

    /// `tables` as an .xlsx download named `file` (`name`: the same in
    /// Chinese, percent-encoded).
    fn xlsx(&self, who: &Who, tables: &[minqing_model::Table], file: &str, name: &str) -> Resp {
        match minqing_sheet::xlsx_bytes(tables, file) {
            Ok(bytes) => {
                let mut r = Resp::html(StatusCode::OK, String::new());
                r.body = bytes;
                r.content_type =
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
                r.extra.push((
                    "content-disposition",
                    format!("attachment; filename=\"{file}\"; filename*=UTF-8''{name}"),
                ));
                r
            }
            Err(e) => {
                tracing::error!("the {file} download was not made: {e}");
                Resp::html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    web::message_page(
                        &who.ctx(Some(Notice::error("下载失败"))),
                        "下载失败",
                        "文件生成失败，请稍后再试。",
                    ),
                )
            }
        }
    }

    /// The scope of a supervisor or viewer (the dashboard's), or `None`.
    fn board_scope(who: &Who) -> Option<accounts::Scope> {
        match (who.account.role, &who.account.scope) {
            (Role::Supervisor, Some(s)) => Some(s.clone()),
            (Role::Viewer, _) => Some(accounts::Scope::County),
            _ => None,
        }
    }

    /// The 督查通报 of `?month=YYYY-MM` (default: last month, China time)
    /// over the account's scope: by township (county) or by village
    /// (township); as the page or as .xlsx.
    fn bulletin(&self, who: &Who, query: &str, xlsx: bool) -> Resp {
        let Some(scope) = Self::board_scope(who) else {
            return self.not_found(who, "/bulletin");
        };
        let today = today();
        let month = match form(query.as_bytes()).get("month").map(|m| m.trim()) {
            Some(raw) if !raw.is_empty() => match minqing_model::Month::parse(raw) {
                Ok(m) => m,
                Err(e) => {
                    return Resp::html(
                        StatusCode::BAD_REQUEST,
                        web::message_page(
                            &who.ctx(Some(Notice::error("月份不对"))),
                            "月份不对",
                            &format!("月份请写成 2026-03 这样：{e}"),
                        ),
                    );
                }
            },
            _ => previous_month(today),
        };
        let (area_head, scope_words) = match &scope {
            accounts::Scope::County => ("乡镇", "全县".to_owned()),
            accounts::Scope::Township(t) => ("村", t.clone()),
        };
        // village id -> its area (township, or the village's own name).
        let mut area_of: BTreeMap<String, String> = BTreeMap::new();
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut docs = Vec::new();
        for (id, e) in self.villages() {
            if !scope.covers(e.township.as_deref()) {
                continue;
            }
            let Ok(doc) = DocId::new(id.clone()) else {
                continue;
            };
            let area = match &scope {
                accounts::Scope::County => e.township.clone().unwrap_or_else(|| "未分乡镇".into()),
                accounts::Scope::Township(_) => e.name.clone(),
            };
            area_of.insert(id.clone(), area);
            names.insert(id, e.name);
            docs.push(doc);
        }
        let b = self.villages.read_all(&docs, |held| {
            let mut areas: BTreeMap<&str, Vec<&Village>> = BTreeMap::new();
            for v in held {
                if let Some(a) = area_of.get(v.id().as_str()) {
                    areas.entry(a.as_str()).or_default().push(*v);
                }
            }
            let areas: Vec<(String, Vec<&Village>)> = areas
                .into_iter()
                .map(|(a, vs)| (a.to_owned(), vs))
                .collect();
            minqing_model::bulletin(&areas, &names, month, today)
        });
        let title = web::bulletin_title(&scope_words, &month);
        if xlsx {
            let file = format!("bulletin-{month}.xlsx");
            let name = percent_encode(&format!("督查通报{month}.xlsx"));
            return self.xlsx(who, &b.tables(area_head), &file, &name);
        }
        Resp::html(
            StatusCode::OK,
            web::bulletin_page(&who.ctx(None), &title, area_head, &b, today),
        )
    }

    /// A department's inbox (its demands) or a supervisor's demands in
    /// scope; not yet 已销号, overdue first, then by due date.
    fn inbox(&self, who: &Who) -> Resp {
        let list = departments::load(&self.home).unwrap_or_default();
        let account = &who.account;
        let (title, what) = match account.role {
            Role::Department => ("待办诉求", "转给本部门、尚未销号的诉求"),
            Role::Supervisor => ("辖区诉求", "辖区内尚未销号的诉求"),
            Role::Operator | Role::Viewer => return self.not_found(who, "/inbox"),
        };
        let today = today();
        let mut rows = Vec::new();
        for (id, entry) in self.villages() {
            let in_scope = account
                .scope
                .as_ref()
                .is_some_and(|s| s.covers(entry.township.as_deref()));
            if account.role == Role::Supervisor && !in_scope {
                continue;
            }
            let Ok(doc) = DocId::new(id.clone()) else {
                continue;
            };
            let found = self.villages.read(&doc, |v| {
                v.demands()
                    .into_iter()
                    .filter(|d| d.status != minqing_model::DemandStatus::Closed.name())
                    .filter(|d| match (&account.role, &account.department) {
                        (Role::Department, Some(dept)) => ours(&list, d, dept),
                        (Role::Department, None) => false,
                        _ => true,
                    })
                    .map(|d| InboxRow {
                        village_id: id.clone(),
                        village: entry.name.clone(),
                        resident: Id::parse(&d.resident_id)
                            .ok()
                            .and_then(|rid| v.resident(&rid))
                            .map(|r| r.name)
                            .unwrap_or_default(),
                        days_overdue: days_overdue(&d, today),
                        demand: d,
                    })
                    .collect::<Vec<_>>()
            });
            match found {
                Ok(mut r) => rows.append(&mut r),
                Err(e) => tracing::warn!(village = %id, "left out of the inbox: {e:#}"),
            }
        }
        rows.sort_by(|a, b| {
            let key = |r: &InboxRow| {
                (
                    r.days_overdue == 0,
                    r.demand.due.is_none(),
                    r.demand.due.clone(),
                    r.demand.opened_at.clone(),
                    r.demand.id.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        Resp::html(
            StatusCode::OK,
            web::inbox_page(&who.ctx(None), title, what, &rows),
        )
    }

    /// The demand `id` of `village` if `who` may open it, with the village's
    /// name and the resident.
    fn open(&self, who: &Who, village: &str, id: &str) -> Option<Opened> {
        let entry = self.villages().get(village).cloned()?;
        let doc = DocId::new(village.to_owned()).ok()?;
        let demand = Id::parse(id).ok()?;
        let list = departments::load(&self.home).unwrap_or_default();
        let account = &who.account;
        let found = self
            .villages
            .read(&doc, |v: &Village| {
                let d = v.demand(&demand)?;
                let allowed = match account.role {
                    Role::Department => account
                        .department
                        .as_deref()
                        .is_some_and(|dept| ours(&list, &d, dept)),
                    Role::Supervisor => account
                        .scope
                        .as_ref()
                        .is_some_and(|s| s.covers(entry.township.as_deref())),
                    Role::Operator | Role::Viewer => false,
                };
                if !allowed {
                    return None;
                }
                let r = Id::parse(&d.resident_id)
                    .ok()
                    .and_then(|rid| v.resident(&rid));
                Some((d, r))
            })
            .ok()
            .flatten()?;
        Some(Opened {
            doc,
            village_name: entry.name,
            id: demand,
            demand: found.0,
            resident: found.1,
        })
    }

    fn demand(
        &self,
        who: &Who,
        village: &str,
        id: &str,
        notice: Option<Notice>,
        reveal: bool,
    ) -> Resp {
        let Some(Opened {
            village_name: vname,
            demand: d,
            resident,
            ..
        }) = self.open(who, village, id)
        else {
            return self.not_found(who, &format!("demand {village}/{id}"));
        };
        let can_reveal = who.account.role == Role::Department;
        if reveal && !can_reveal {
            return self.not_found(who, &format!("reveal {village}/{id}"));
        }
        let revealed = reveal && resident.is_some();
        if revealed && let Some(r) = &resident {
            let fields: Vec<&str> = [
                r.id_card.as_ref().map(|_| "id_card"),
                r.phone.as_ref().map(|_| "phone"),
            ]
            .into_iter()
            .flatten()
            .collect();
            self.audit.event(
                kind::VIEW_UNMASKED,
                None,
                Some(village),
                format!(
                    "account {} ({}) viewed resident {} unmasked ({}) on demand {}",
                    who.account.name,
                    who.account.role,
                    r.id,
                    fields.join(", "),
                    d.id
                ),
            );
            // On disk before the numbers are shown.
            self.audit.flush();
        }
        let card = match &resident {
            Some(r) => ResidentCard {
                name: r.name.clone(),
                address: r.address.clone(),
                id_card: r.id_card.as_deref().map(|c| {
                    if revealed {
                        c.to_owned()
                    } else {
                        mask_id_card(c)
                    }
                }),
                phone: r.phone.as_deref().map(|p| {
                    if revealed {
                        p.to_owned()
                    } else {
                        mask_phone(p)
                    }
                }),
                revealed,
                can_reveal,
            },
            None => ResidentCard {
                name: "-".into(),
                address: "-".into(),
                id_card: None,
                phone: None,
                revealed: false,
                can_reveal: false,
            },
        };
        let actions = self.actions(who, &d);
        Resp::html(
            StatusCode::OK,
            web::demand_page(&who.ctx(notice), village, &vname, &d, &card, actions),
        )
    }

    fn actions(&self, who: &Who, d: &DemandView) -> DemandActions {
        let open = d.status == minqing_model::DemandStatus::InProgress.name();
        match who.account.role {
            Role::Department => DemandActions {
                progress: open,
                done: open,
                supervise: false,
            },
            Role::Supervisor => DemandActions {
                progress: false,
                done: false,
                supervise: d.status != minqing_model::DemandStatus::Closed.name(),
            },
            Role::Operator | Role::Viewer => DemandActions::default(),
        }
    }

    fn step(&self, who: &Who, village: &str, id: &str, f: &BTreeMap<String, String>) -> Resp {
        let Some(Opened {
            doc,
            id: demand,
            demand: d,
            ..
        }) = self.open(who, village, id)
        else {
            return self.not_found(who, &format!("step on {village}/{id}"));
        };
        let role = match who.account.role {
            Role::Department => CountyRole::Department,
            Role::Supervisor => CountyRole::Supervisor,
            Role::Operator | Role::Viewer => {
                return self.not_found(who, &format!("step on {village}/{id}"));
            }
        };
        let note = |key: &str| Note::parse(f.get(key).map(String::as_str).unwrap_or(""));
        let transfer_name = d.department.clone().unwrap_or_default();
        let step = match (f.get("step").map(String::as_str), role) {
            (Some("progress"), CountyRole::Department) => {
                note("note").map(|note| CountyStep::Progress {
                    department: transfer_name,
                    note,
                })
            }
            (Some("done"), CountyRole::Department) => {
                note("answer").map(|answer| CountyStep::Done {
                    department: transfer_name,
                    answer,
                })
            }
            (Some("supervise"), CountyRole::Supervisor) => {
                let due = match f.get("due").map(|s| s.trim()).filter(|s| !s.is_empty()) {
                    None => None,
                    Some(raw) => match parse_date(raw) {
                        Ok(d) => Some(d),
                        Err(e) => {
                            return self.step_error(
                                who,
                                village,
                                id,
                                &format!("新的办理期限不对：{e}"),
                            );
                        }
                    },
                };
                note("note").map(|note| CountyStep::Supervise { note, due })
            }
            _ => {
                return self.not_found(who, &format!("step {:?} on {village}/{id}", f.get("step")));
            }
        };
        let step = match step {
            Ok(s) => s,
            Err(e) => return self.step_error(who, village, id, &format!("没有保存：{e}")),
        };
        let author = CountyAuthor {
            account: who.account.name.clone(),
            display: who.account.display.clone(),
            role,
            now_ms: chrono::Utc::now().timestamp_millis(),
        };
        match self.villages.write(&doc, &author, &demand, &step) {
            Ok(event) => {
                self.audit.event(
                    kind::STEP,
                    None,
                    Some(village),
                    format!(
                        "account {} ({}) recorded {} on demand {} (event {event})",
                        who.account.name,
                        who.account.role,
                        step.kind().name(),
                        demand
                    ),
                );
                Resp::redirect(&format!("{}?done=step", paths::demand(village, id)))
            }
            Err(WriteError::Refused(e)) => {
                self.step_error(who, village, id, &format!("没有保存：{e}"))
            }
            Err(WriteError::Storage(e)) => {
                tracing::error!(village, "a console step was not saved: {e:#}");
                self.step_error(
                    who,
                    village,
                    id,
                    "没有保存：县里的存储出错，请稍后再试或联系运维人员。",
                )
            }
        }
    }

    fn step_error(&self, who: &Who, village: &str, id: &str, text: &str) -> Resp {
        let mut r = self.demand(who, village, id, Some(Notice::error(text)), false);
        if r.status == StatusCode::OK {
            r.status = StatusCode::BAD_REQUEST;
        }
        r
    }
}

/// What the dashboard answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Board {
    /// The page.
    Page,
    /// The ledger as .xlsx.
    Ledger,
    /// This month's duty report as .xlsx.
    Monthly,
}

/// A demand an account may open.
struct Opened {
    doc: DocId,
    village_name: String,
    id: Id,
    demand: DemandView,
    resident: Option<minqing_model::ResidentView>,
}

/// Whether `d`'s 转办 in force names `dept` (by name or alias).
fn ours(list: &departments::Departments, d: &DemandView, dept: &str) -> bool {
    d.department
        .as_deref()
        .and_then(|typed| list.resolve(typed))
        .is_some_and(|canonical| canonical == dept)
}

/// The month before `today`'s.
fn previous_month(today: NaiveDate) -> minqing_model::Month {
    let m = minqing_model::month_of(today);
    if m.month == 1 {
        minqing_model::Month {
            year: m.year - 1,
            month: 12,
        }
    } else {
        minqing_model::Month {
            year: m.year,
            month: m.month - 1,
        }
    }
}

/// `s` percent-encoded for a `filename*=UTF-8''` parameter.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn days_overdue(d: &DemandView, today: NaiveDate) -> i64 {
    match d.due.as_deref().and_then(|s| parse_date(s).ok()) {
        Some(due) if d.is_overdue(today) => (today - due).num_days(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bulletin_defaults_to_last_month_and_names_its_file() {
        let day = |s: &str| parse_date(s).unwrap();
        assert_eq!(previous_month(day("2026-01-05")).to_string(), "2025-12");
        assert_eq!(previous_month(day("2026-12-31")).to_string(), "2026-11");
        assert_eq!(
            percent_encode("督查通报2026-11.xlsx"),
            "%E7%9D%A3%E6%9F%A5%E9%80%9A%E6%8A%A52026-11.xlsx"
        );
    }
}
