//! The cadre's web interface as pure functions: model views in, HTML strings
//! out. No I/O: the service (`minqing app`, crates/minqing-cli/src/app/) owns
//! the store, the HTTP server, the secret cookie and the CSRF check, and calls
//! these functions with the villages it holds; a page shows what
//! `minqing_model::Village` and its views say, the same functions the CLI's
//! `--json` prints, so the figures agree.
//!
//! - Every interpolated value is escaped (maud does it by default); resident
//!   text is untrusted. Raw markup is only this crate's own SVG.
//! - Every asset is embedded ([`assets`]); pages load nothing from elsewhere.
//! - Chinese first; names, not ids, wherever a person reads; every date and
//!   time in China Standard Time (UTC+8, [`time`]).
//! - Forms work without JavaScript; every input has a label.
//!
//! Adding a page: a module with a `pub fn …_page(ctx, …) -> String` and unit
//! tests on its content, a path in [`routes`], a `Nav` entry if it belongs in
//! the navigation bar, and a route in the service.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod assets;
pub mod browse;
pub mod console;
pub mod demand;
pub mod forms;
pub mod import;
pub mod layout;
pub mod leave;
pub mod names;
pub mod report;
pub mod resident;
pub mod search;
pub mod settings;
pub mod sync;
pub mod time;
pub mod today;
pub mod visit;
pub mod zh;

#[cfg(test)]
mod testkit;

use chrono::NaiveDate;

pub use layout::Nav;
pub use search::{SearchHit, SearchIndex};

/// The name of the hidden form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// What every page needs from the service.
#[derive(Clone, Debug)]
pub struct Ctx<'a> {
    /// The cadre using this laptop (shown in the header).
    pub cadre: &'a str,
    /// The CSRF token that forms carry in [`CSRF_FIELD`].
    pub csrf: &'a str,
    /// Today's date in China Standard Time (`minqing_model::local_date(now)`).
    pub today: NaiveDate,
    /// A line shown above the page (after a write, or an error).
    pub notice: Option<Notice>,
}

/// A line shown above a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// How it is shown.
    pub kind: NoticeKind,
    /// The text (escaped when shown).
    pub text: String,
}

impl Notice {
    /// A success line (`已保存 …`).
    pub fn ok(text: impl Into<String>) -> Notice {
        Notice {
            kind: NoticeKind::Ok,
            text: text.into(),
        }
    }

    /// A warning that did not stop anything.
    pub fn warn(text: impl Into<String>) -> Notice {
        Notice {
            kind: NoticeKind::Warn,
            text: text.into(),
        }
    }

    /// An error: nothing was written.
    pub fn error(text: impl Into<String>) -> Notice {
        Notice {
            kind: NoticeKind::Error,
            text: text.into(),
        }
    }
}

/// The notices a redirect may ask for with `?done=CODE` after a write: a
/// fixed text per code, so nothing from the URL is ever shown.
pub const DONE: &[(&str, &str)] = &[
    ("visit", "已保存走访记录。"),
    ("demand", "已受理诉求。"),
    ("step", "已记录办理步骤。"),
    ("import", "已导入户籍。"),
    ("resident", "已添加居民。"),
    ("leave", "已记录请假。记得在以后的月份补访。"),
    ("sync", "同步已完成。"),
    (
        "enrolled",
        "本机已登记到县里的中继，正在取得分配给你的村（第一次同步）。",
    ),
    (
        "sync-failed",
        "这次没有同步成功：记录都保存在本机，联网后会自动同步。",
    ),
];

impl Notice {
    /// The notice for `?done=CODE`, if the code is known.
    pub fn done(code: &str) -> Option<Notice> {
        DONE.iter()
            .find(|(c, _)| *c == code)
            .map(|(_, text)| Notice::ok(*text))
    }
}

/// How a [`Notice`] is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    /// Green: done.
    Ok,
    /// Yellow: done, but look.
    Warn,
    /// Red: not done.
    Error,
}

/// The state of the background sync, as the service knows it (shown on 今日).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Whether this laptop is enrolled with a relay at all.
    pub enrolled: bool,
    /// Whether the last attempt reached the relay (`None`: the service has
    /// not tried since it started, or runs no sync loop).
    pub online: Option<bool>,
    /// When the last successful sync ended (unix ms), if ever.
    pub last_sync_ms: Option<i64>,
    /// Villages with changes the relay has not acknowledged yet.
    pub pending_villages: usize,
    /// The last error, in words, if the last attempt failed.
    pub last_error: Option<String>,
}

/// The paths of the pages and assets. The service routes these; pages link to
/// them. Record pages take the full record id after the prefix
/// (`/resident/<id>`).
pub mod routes {
    /// 今日.
    pub const TODAY: &str = "/";
    /// 同步: `GET /sync`; a pass now: `POST /sync`.
    pub const SYNC: &str = "/sync";
    /// 设置: `GET /settings` (on a home not set up yet, the enrolment form).
    pub const SETTINGS: &str = "/settings";
    /// Enrol this laptop: `POST /settings/enrol?csrf=…` (multipart: `bundle`,
    /// the file; `passphrase`, `passphrase2`).
    pub const SETTINGS_ENROL: &str = "/settings/enrol";
    /// Villages (村).
    pub const VILLAGES: &str = "/villages";
    /// One village's households: `/village/<village id>`.
    pub const VILLAGE: &str = "/village/";
    /// One household's residents and visits: `/household/<id>`.
    pub const HOUSEHOLD: &str = "/household/";
    /// Resident search: `GET /search?q=…&tag=…`.
    pub const SEARCH: &str = "/search";
    /// The new-resident form: `GET /resident/new?household=…`.
    pub const RESIDENT_NEW: &str = "/resident/new";
    /// Add a resident: `POST /residents` ([`crate::forms::resident`]).
    pub const RESIDENTS: &str = "/residents";
    /// A resident's page: `/resident/<id>`.
    pub const RESIDENT: &str = "/resident/";
    /// The visit form: `GET /visit/new?resident=…&household=…&q=…`.
    pub const VISIT_NEW: &str = "/visit/new";
    /// Log a visit: `POST /visits` (form fields in [`crate::forms::VisitForm`]).
    pub const VISITS: &str = "/visits";
    /// The demand list: `GET /demands?status=…&overdue=1`; open a demand:
    /// `POST /demands` ([`crate::forms::DemandForm`]).
    pub const DEMANDS: &str = "/demands";
    /// The form to open a demand: `GET /demand/new?resident=…`.
    pub const DEMAND_NEW: &str = "/demand/new";
    /// A demand's page: `/demand/<id>`; a step: `POST /demand/<id>/step`
    /// ([`crate::forms::StepForm`]).
    pub const DEMAND: &str = "/demand/";
    /// 请假/补访: `GET /leave`; record a leave: `POST /leaves`
    /// ([`crate::forms::leave`]).
    pub const LEAVE: &str = "/leave";
    /// Record a leave.
    pub const LEAVES: &str = "/leaves";
    /// 导入户籍: `GET /import`; upload: `POST /import?csrf=…` (multipart:
    /// `village`, `file`), answered with the dry-run preview.
    pub const IMPORT: &str = "/import";
    /// Confirm the previewed import: `POST /import/confirm` (`token`).
    pub const IMPORT_CONFIRM: &str = "/import/confirm";
    /// 报表: `GET /report?month=YYYY-MM`.
    pub const REPORT: &str = "/report";
    /// The monthly report as `.xlsx`: `GET /report/monthly.xlsx?month=YYYY-MM`.
    pub const REPORT_MONTHLY_XLSX: &str = "/report/monthly.xlsx";
    /// The demand ledger as `.xlsx`: `GET /report/ledger.xlsx`.
    pub const REPORT_LEDGER_XLSX: &str = "/report/ledger.xlsx";
    /// The cadre's monthly diary, for printing: `GET /report/diary?month=YYYY-MM`.
    pub const DIARY: &str = "/report/diary";
    /// The stylesheet.
    pub const CSS: &str = "/assets/app.css";
    /// The script.
    pub const JS: &str = "/assets/app.js";
    /// The favicon.
    pub const FAVICON: &str = "/assets/icon.svg";

    /// `/resident/<id>`.
    pub fn resident(id: &str) -> String {
        format!("{RESIDENT}{id}")
    }

    /// `/household/<id>`.
    pub fn household(id: &str) -> String {
        format!("{HOUSEHOLD}{id}")
    }

    /// `/village/<id>`.
    pub fn village(id: &str) -> String {
        format!("{VILLAGE}{id}")
    }

    /// `/demand/<id>`.
    pub fn demand(id: &str) -> String {
        format!("{DEMAND}{id}")
    }

    /// `/demand/<id>/step`.
    pub fn demand_step(id: &str) -> String {
        format!("{DEMAND}{id}/step")
    }

    /// `/visit/new?resident=<id>`.
    pub fn visit_for_resident(id: &str) -> String {
        format!("{VISIT_NEW}?resident={id}")
    }

    /// `/visit/new?household=<id>`.
    pub fn visit_for_household(id: &str) -> String {
        format!("{VISIT_NEW}?household={id}")
    }

    /// `/resident/new?household=<id>`.
    pub fn resident_for_household(id: &str) -> String {
        format!("{RESIDENT_NEW}?household={id}")
    }

    /// `/demand/new?resident=<id>`.
    pub fn demand_for_resident(id: &str) -> String {
        format!("{DEMAND_NEW}?resident={id}")
    }
}
