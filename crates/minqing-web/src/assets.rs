//! Every asset the pages use, embedded in the binary: the stylesheet, the one
//! script, the favicon and the icons (inline SVG). Nothing is fetched from
//! anywhere but the service itself; fonts are the system's.

use maud::Markup;

use crate::layout::trusted_svg;

/// The stylesheet (`GET` [`crate::routes::CSS`]).
pub const CSS: &str = include_str!("../assets/app.css");

/// The script (`GET` [`crate::routes::JS`]); every page works without it.
pub const JS: &str = include_str!("../assets/app.js");

/// The favicon, an SVG (`GET` [`crate::routes::FAVICON`]).
pub const FAVICON: &str = concat!(
    r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">"##,
    r##"<rect width="32" height="32" rx="6" fill="#b0232a"/>"##,
    r##"<path d="M9 8h14v3H9zM9 14h14v3H9zM9 20h9v3H9z" fill="#fff"/></svg>"##
);

/// An asset served by the service: its content type and body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    /// The `Content-Type` header value.
    pub content_type: &'static str,
    /// The body.
    pub body: &'static str,
}

/// The asset at `path`, if `path` names one (the routes under `/assets/`).
pub fn asset(path: &str) -> Option<Asset> {
    let (content_type, body) = match path {
        crate::routes::CSS => ("text/css; charset=utf-8", CSS),
        crate::routes::JS => ("text/javascript; charset=utf-8", JS),
        crate::routes::FAVICON => ("image/svg+xml", FAVICON),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

/// The icons of the navigation bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icon {
    /// 今日.
    Home,
    /// 村/户/人.
    People,
    /// 记民情日记.
    Pen,
    /// 诉求.
    Flag,
    /// 报表.
    Chart,
    /// 同步.
    Sync,
    /// 设置.
    Gear,
}

/// An icon as inline SVG (decorative: hidden from screen readers).
pub fn icon(icon: Icon) -> Markup {
    trusted_svg(match icon {
        Icon::Home => {
            r#"<svg aria-hidden="true" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><path d="M3 11l9-8 9 8v10h-6v-6H9v6H3z"/></svg>"#
        }
        Icon::People => {
            r#"<svg aria-hidden="true" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><circle cx="9" cy="8" r="3.5"/><path d="M2 21c0-4 3-6 7-6s7 2 7 6"/><circle cx="17" cy="9" r="2.5"/><path d="M17 14c3 0 5 2 5 5"/></svg>"#
        }
        Icon::Pen => {
            r#"<svg aria-hidden="true" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><path d="M4 20l4-1 11-11-3-3L5 16z"/><path d="M14 6l3 3"/></svg>"#
        }
        Icon::Flag => {
            r#"<svg aria-hidden="true" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><path d="M5 21V4h11l-2 4 2 4H5"/></svg>"#
        }
        Icon::Chart => {
            r#"<svg aria-hidden="true" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><path d="M4 20V10M10 20V4M16 20v-7M22 20H2"/></svg>"#
        }
        Icon::Sync => {
            r#"<svg aria-hidden="true" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><path d="M20 8a8 8 0 0 0-14-3L4 7M4 16a8 8 0 0 0 14 3l2-2"/><path d="M4 3v4h4M20 21v-4h-4"/></svg>"#
        }
        Icon::Gear => {
            r#"<svg aria-hidden="true" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><circle cx="12" cy="12" r="3"/><path d="M12 2v3M12 19v3M2 12h3M19 12h3M4.9 4.9l2.1 2.1M17 17l2.1 2.1M4.9 19.1L7 17M17 7l2.1-2.1"/></svg>"#
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_served_and_load_nothing_from_elsewhere() {
        for path in [
            crate::routes::CSS,
            crate::routes::JS,
            crate::routes::FAVICON,
        ] {
            let a = asset(path).unwrap();
            assert!(!a.body.is_empty());
            assert!(!a.body.contains("http://") || a.body.contains("http://www.w3.org/2000/svg"));
            assert!(!a.body.contains("https://"), "{path} refers outside");
            assert!(!a.body.contains("@import"), "{path} imports");
        }
        assert!(asset("/assets/../secret").is_none());
    }
}
