//! 同步: the background sync per village — when it was last in sync, the
//! changes not yet at the county, how the last pass ended — and a button for
//! a pass now. The service fills [`SyncPage`] from its sync loop's state.

use maud::html;

use crate::layout::{self, Nav};
use crate::{Ctx, SyncSummary, routes, time};

/// One village on the 同步 page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncVillage {
    /// The village id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Changes on this laptop the relay is not known to have.
    pub pending_changes: usize,
    /// When a pass last ended with it in sync (RFC 3339, UTC), kept across
    /// launches of the app.
    pub last_sync: Option<String>,
    /// How the last pass ended for it: `in_sync`, `added`, `removed`, `refused`.
    pub outcome: Option<String>,
}

/// What the 同步 page shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncPage {
    /// The sentence also shown on 今日.
    pub summary: SyncSummary,
    /// The relay's name, when enrolled.
    pub relay_name: Option<String>,
    /// Whether a pass is running now.
    pub syncing: bool,
    /// Every village held.
    pub villages: Vec<SyncVillage>,
}

fn outcome_zh(outcome: &str) -> &'static str {
    match outcome {
        "in_sync" => "已同步",
        "added" => "新分配，已取得",
        "removed" => "已不再分配给本机",
        "refused" => "县里拒收",
        _ => "—",
    }
}

/// The 同步 page.
pub fn sync_page(ctx: &Ctx<'_>, page: &SyncPage) -> String {
    let body = html! {
        (crate::today::sync_state(&page.summary))
        @if let Some(relay) = &page.relay_name {
            p.muted { "县里的中继：" (relay) @if page.syncing { " · 正在同步…" } }
        }
        @if page.summary.enrolled {
            form.no-print method="post" action=(routes::SYNC) {
                (layout::csrf(ctx))
                button type="submit" { "立即同步" }
            }
        }
        table #sync-villages {
            caption { "各村同步情况" }
            thead {
                tr { th scope="col" { "村/社区" } th scope="col" { "上次同步" }
                     th scope="col" { "未上传到县里的更改" } th scope="col" { "上次结果" } }
            }
            tbody {
                @for v in &page.villages {
                    tr {
                        td { (v.name) " " small.muted { (v.id) } }
                        td { @match &v.last_sync { Some(t) => (time::datetime(t)), None => "—" } }
                        td {
                            @if !page.summary.enrolled { "单机使用" }
                            @else if v.pending_changes == 0 { "无（已同步到县里）" }
                            @else { (v.pending_changes) " 条" }
                        }
                        td { (v.outcome.as_deref().map_or("—", outcome_zh)) }
                    }
                }
            }
        }
        @if page.villages.is_empty() {
            (layout::none("本机还没有村的数据。"))
        }
    };
    // The state changes by itself (the background sync): shown again every
    // few seconds while a pass runs, and every half minute otherwise.
    let refresh = page.summary.enrolled.then_some(if page.syncing {
        SYNCING_REFRESH_SECS
    } else {
        IDLE_REFRESH_SECS
    });
    layout::page_refreshing(ctx, Nav::Sync, "同步", body, refresh)
}

/// How often the 同步 page reloads while a pass runs, in seconds.
pub const SYNCING_REFRESH_SECS: u32 = 2;
/// How often the 同步 page reloads between passes, in seconds.
pub const IDLE_REFRESH_SECS: u32 = 10;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::ctx;

    fn page() -> SyncPage {
        SyncPage {
            summary: SyncSummary {
                enrolled: true,
                online: Some(false),
                last_sync_ms: None,
                pending_villages: 1,
                last_error: Some("the relay at 127.0.0.1:4433 is unreachable".into()),
            },
            relay_name: Some("县中继".into()),
            syncing: false,
            villages: vec![
                SyncVillage {
                    id: "V1".into(),
                    name: "小河村".into(),
                    pending_changes: 3,
                    last_sync: Some("2026-03-01T17:30:00Z".into()),
                    outcome: Some("in_sync".into()),
                },
                SyncVillage {
                    id: "V2".into(),
                    name: "<大山村>".into(),
                    pending_changes: 0,
                    last_sync: None,
                    outcome: None,
                },
            ],
        }
    }

    #[test]
    fn each_village_shows_its_last_sync_and_what_is_not_at_the_county() {
        let html = sync_page(&ctx("2026-03-02"), &page());
        assert!(html.contains("离线"), "{html}");
        // The sync loop's English error, said in Chinese (crate::zh).
        assert!(html.contains("连不上县里的中继"), "{html}");
        assert!(!html.contains("unreachable"), "{html}");
        assert!(html.contains("小河村"), "{html}");
        assert!(html.contains("3 条"), "{html}");
        // China time.
        assert!(html.contains("2026-03-02 01:30"), "{html}");
        assert!(html.contains("无（已同步到县里）"), "{html}");
        // Names are escaped; the button posts with the CSRF field.
        assert!(html.contains("&lt;大山村&gt;"), "{html}");
        assert!(html.contains("action=\"/sync\""), "{html}");
        assert!(html.contains("name=\"csrf\""), "{html}");
        assert!(html.contains("立即同步"), "{html}");
    }

    #[test]
    fn the_page_reloads_itself_faster_while_a_pass_runs() {
        let mut p = page();
        let idle = sync_page(&ctx("2026-03-02"), &p);
        assert!(
            idle.contains(r#"http-equiv="refresh" content="10""#),
            "{idle}"
        );
        p.syncing = true;
        let busy = sync_page(&ctx("2026-03-02"), &p);
        assert!(
            busy.contains(r#"http-equiv="refresh" content="2""#),
            "{busy}"
        );
        p.summary = SyncSummary::default();
        let alone = sync_page(&ctx("2026-03-02"), &p);
        assert!(
            !alone.contains("http-equiv"),
            "a standalone laptop has nothing to wait for"
        );
    }

    #[test]
    fn a_standalone_laptop_has_no_button() {
        let mut p = page();
        p.summary = SyncSummary::default();
        p.relay_name = None;
        let html = sync_page(&ctx("2026-03-02"), &p);
        assert!(!html.contains("立即同步"), "{html}");
        assert!(html.contains("单机使用"), "{html}");
    }
}
