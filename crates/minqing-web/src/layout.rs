//! The page shell every page shares: `<head>` with the embedded stylesheet and
//! script, the red header with the navigation, the notice line, and helpers
//! for the small pieces pages repeat (tags, statuses, links by name).

use maud::{DOCTYPE, Markup, PreEscaped, html};
use minqing_model::validate::KNOWN_TAGS;

use crate::assets::{self, Icon};
use crate::{Ctx, NoticeKind, routes};

/// One entry of the navigation bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    /// 今日.
    Today,
    /// 村/户/人.
    Browse,
    /// 记民情日记.
    Visit,
    /// 诉求.
    Demands,
    /// 请假/补访.
    Leave,
    /// 报表.
    Reports,
    /// 导入户籍.
    Import,
    /// 同步.
    Sync,
    /// 设置.
    Settings,
    /// No entry is current (an error page).
    None,
}

/// The navigation bar's entries: page, label, path, icon. Pages not built yet
/// are left out, so no link leads nowhere.
const NAV: &[(Nav, &str, &str, Icon)] = &[
    (Nav::Today, "今日", routes::TODAY, Icon::Home),
    (Nav::Browse, "村/户/人", routes::VILLAGES, Icon::People),
    (Nav::Visit, "记民情日记", routes::VISIT_NEW, Icon::Pen),
    (Nav::Demands, "诉求", routes::DEMANDS, Icon::Flag),
    (Nav::Leave, "请假/补访", routes::LEAVE, Icon::Pen),
    (Nav::Reports, "报表", routes::REPORT, Icon::Chart),
    (Nav::Import, "导入户籍", routes::IMPORT, Icon::People),
    (Nav::Sync, "同步", routes::SYNC, Icon::Sync),
    (Nav::Settings, "设置", routes::SETTINGS, Icon::Gear),
];

/// Renders a whole page: `title` (also the `<h1>`), the current navigation
/// entry, and the body.
pub fn page(ctx: &Ctx<'_>, nav: Nav, title: &str, body: Markup) -> String {
    page_refreshing(ctx, nav, title, body, None)
}

/// [`page`] that the browser loads again every `refresh` seconds (a page
/// showing state that changes by itself, e.g. 同步 while a pass runs).
pub fn page_refreshing(
    ctx: &Ctx<'_>,
    nav: Nav,
    title: &str,
    body: Markup,
    refresh: Option<u32>,
) -> String {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                @if let Some(secs) = refresh {
                    meta http-equiv="refresh" content=(secs);
                }
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · 民情日记" }
                link rel="icon" href=(routes::FAVICON);
                link rel="stylesheet" href=(routes::CSS);
                script src=(routes::JS) defer {}
            }
            body {
                header.top {
                    a.brand href=(routes::TODAY) { "民情日记" }
                    nav.main aria-label="主导航" {
                        @for (entry, label, path, icon) in NAV {
                            a href=(path) aria-current=[(*entry == nav).then_some("page")] {
                                (assets::icon(*icon)) (label)
                            }
                        }
                    }
                    span.who { "干部：" (ctx.cadre) " · " (crate::time::date_zh(ctx.today)) }
                }
                main {
                    h1 { (title) }
                    @if let Some(notice) = &ctx.notice {
                        div.notice.(notice_class(notice.kind)) role="status" { (notice.text) }
                    }
                    (body)
                }
            }
        }
    }
    .into_string()
}

fn notice_class(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Ok => "ok",
        NoticeKind::Warn => "warn",
        NoticeKind::Error => "error",
    }
}

/// Whether a tag is one of the known key groups (老党员, 困难户 …) that drive
/// the monthly key-visit duty.
pub fn is_key_tag(tag: &str) -> bool {
    KNOWN_TAGS.iter().any(|(zh, _)| *zh == tag)
}

/// A resident's tags as chips, key groups highlighted.
pub fn tags(tags: &[String]) -> Markup {
    html! {
        @for t in tags {
            span.tag.key[is_key_tag(t)] { (t) }
        }
    }
}

/// A demand status as a coloured badge.
pub fn status(status: &str) -> Markup {
    let class = if status == "已销号" {
        "s-closed"
    } else {
        "s-open"
    };
    html! { span.status.(class) { (status) } }
}

/// The hidden CSRF field every form that writes carries.
pub fn csrf(ctx: &Ctx<'_>) -> Markup {
    html! { input type="hidden" name=(crate::CSRF_FIELD) value=(ctx.csrf); }
}

/// A print button (works with the embedded script; the browser's own print
/// works without it).
pub fn print_button() -> Markup {
    html! { button.secondary.no-print type="button" data-print { "打印" } }
}

/// Text with its line breaks kept (`white-space: pre-wrap` would keep every
/// space; notes are prose).
pub fn multiline(text: &str) -> Markup {
    html! {
        @for (i, line) in text.split('\n').enumerate() {
            @if i > 0 { br; }
            (line)
        }
    }
}

/// An empty-state line.
pub fn none(text: &str) -> Markup {
    html! { p.muted { (text) } }
}

/// Marks raw SVG produced by this crate (never resident text) as safe.
pub(crate) fn trusted_svg(svg: &'static str) -> Markup {
    PreEscaped(svg.to_owned())
}
