//! 村/户/人: browse villages → households → residents, and search residents
//! (name, pinyin initials, 身份证号 or phone prefix, address; tag filter).

use maud::{Markup, html};
use minqing_model::{Id, ReadVillage};

use crate::layout::{self, Nav};
use crate::names::village_name;
use crate::search::{SearchIndex, SearchResult};
use crate::{Ctx, routes, time};

/// How many search hits a page shows.
pub const SEARCH_LIMIT: usize = 50;

/// The villages held, with their record counts (`village list --json`).
pub fn villages_page<V: ReadVillage + ?Sized>(ctx: &Ctx<'_>, villages: &[&V]) -> String {
    let body = html! {
        (search_form(routes::SEARCH, "", None, None, &[]))
        @if villages.is_empty() {
            (layout::none("本机还没有村。加入县里的同步后，分配给本机的村会自动下载。"))
        } @else {
            table #villages {
                thead { tr { th { "村" } th { "乡镇" } th.num { "户数" } th.num { "人数" } th.num { "走访" } th.num { "诉求" } } }
                tbody {
                    @for v in villages {
                        @let view = v.view();
                        tr {
                            td { a href=(routes::village(&view.id)) { (village_name(v)) } }
                            td { (view.township.as_deref().unwrap_or("-")) }
                            td.num { (view.households) }
                            td.num { (view.residents) }
                            td.num { (view.visits) }
                            td.num { (view.demands) }
                        }
                    }
                }
            }
        }
    };
    layout::page(ctx, Nav::Browse, "村/户/人", body)
}

/// One village: its households with their members' names.
pub fn village_page(ctx: &Ctx<'_>, village: &(impl ReadVillage + ?Sized)) -> String {
    let residents = village.residents();
    let households = village.households();
    let body = html! {
        p { a href=(routes::VILLAGES) { "← 全部村" } }
        table #households {
            thead { tr { th { "住址" } th { "户号" } th { "人员" } th { span.no-print { "操作" } } } }
            tbody {
                @for h in households.iter() {
                    tr {
                        td { a href=(routes::household(&h.id)) { (h.address) } }
                        td { (h.number.as_deref().unwrap_or("-")) }
                        td {
                            @for (i, r) in residents.iter().filter(|r| r.household_id == h.id).enumerate() {
                                @if i > 0 { "、" }
                                a href=(routes::resident(&r.id)) { (r.name) }
                            }
                        }
                        td { a.no-print href=(routes::visit_for_household(&h.id)) { "记日记" } }
                    }
                }
            }
        }
        @if households.is_empty() { (layout::none("这个村还没有住户。可用 minqing import 导入户籍登记表。")) }
    };
    layout::page(ctx, Nav::Browse, &village_name(village), body)
}

/// One household: members and every visit to it (newest first).
pub fn household_page(
    ctx: &Ctx<'_>,
    village: &(impl ReadVillage + ?Sized),
    id: &Id,
) -> Option<String> {
    let h = village.household(id)?;
    let residents = village.residents();
    let members: Vec<_> = residents
        .iter()
        .filter(|r| r.household_id == h.id)
        .collect();
    let all_visits = village.visits();
    let mut visits: Vec<_> = all_visits
        .iter()
        .filter(|v| v.household_id == h.id)
        .collect();
    visits.reverse();
    let name_of = |rid: &str| {
        residents
            .iter()
            .find(|r| r.id == rid)
            .map_or("未知居民", |r| r.name.as_str())
    };
    let body = html! {
        p { a href=(routes::village(village.id().as_str())) { "← " (village_name(village)) } }
        div.actions {
            a.button href=(routes::visit_for_household(&h.id)) { "记民情日记" }
            a.button.secondary href=(routes::resident_for_household(&h.id)) { "添加居民" }
        }
        section.card {
            h2 { "人员" }
            @if members.is_empty() { (layout::none("本户还没有人员。")) }
            ul.plain {
                @for r in &members {
                    li {
                        a href=(routes::resident(&r.id)) { (r.name) }
                        @if let Some(rel) = &r.relation { " · " (rel) }
                        " " (layout::tags(&r.tags))
                    }
                }
            }
        }
        section.card {
            h2 { "走访记录（" (visits.len()) "）" }
            @if visits.is_empty() { (layout::none("还没有走访记录。")) } @else {
                table {
                    thead { tr { th { "日期" } th { "类型" } th { "干部" } th { "对象" } th { "记录" } } }
                    tbody {
                        @for v in &visits {
                            tr {
                                td { (v.date) }
                                td { (v.kind) }
                                td { (v.cadre) }
                                td { (v.resident_id.as_deref().map_or("全户", name_of)) }
                                td { (layout::multiline(&v.note)) }
                            }
                        }
                    }
                }
            }
        }
        p.muted { "户号 " (h.number.as_deref().unwrap_or("-")) " · 建档 " (h.cadre) " " (time::date(&h.created_at)) }
    };
    Some(layout::page(ctx, Nav::Browse, &h.address, body))
}

/// The search form: a labelled query box and a tag filter. `action` is the
/// page the form reloads (the search page, or the visit form's resident
/// picker); `keep` are hidden fields kept across the search.
pub fn search_form(
    action: &str,
    query: &str,
    tag: Option<&str>,
    index: Option<&SearchIndex>,
    keep: &[(&str, &str)],
) -> Markup {
    html! {
        form.inline.no-print role="search" method="get" action=(action) {
            @for (name, value) in keep { input type="hidden" name=(name) value=(value); }
            div.field {
                label for="q" { "查找居民" }
                input #q type="search" name="q" value=(query) autocomplete="off"
                    placeholder="姓名、拼音首字母（如 lxy）、身份证号、电话或地址"
                    size="40" data-live-search="results" autofocus;
            }
            @if let Some(index) = index {
                div.field {
                    label for="tag" { "人员类别" }
                    select #tag name="tag" {
                        option value="" selected[tag.is_none()] { "全部" }
                        @for t in index.tags() {
                            option value=(t) selected[tag == Some(t)] { (t) }
                        }
                    }
                }
            }
            button type="submit" { "查找" }
        }
    }
}

/// The result list of a search: each resident by name, with tags, address
/// and village, linking to `link(id)`.
pub fn search_results(result: &SearchResult<'_>, link: &dyn Fn(&str) -> String) -> Markup {
    html! {
        div #results aria-live="polite" {
            p.muted { "找到 " (result.total) " 人" @if result.total > result.hits.len() { "，显示前 " (result.hits.len()) " 人" } }
            @if !result.hits.is_empty() {
                ul.results.plain {
                    @for h in &result.hits {
                        li {
                            a href=(link(&h.resident.id)) { (h.resident.name) }
                            " " (layout::tags(&h.resident.tags))
                            span.muted { " " (h.resident.address) " · " (h.village_name) }
                        }
                    }
                }
            }
        }
    }
}

/// The search page (`GET /search?q=…&tag=…`). With no query and no tag, it
/// lists nobody (5,000 names help no one) and invites a search.
pub fn search_page(ctx: &Ctx<'_>, index: &SearchIndex, query: &str, tag: Option<&str>) -> String {
    let tag = tag.filter(|t| !t.is_empty());
    let body = html! {
        (search_form(routes::SEARCH, query, tag, Some(index), &[]))
        @if query.trim().is_empty() && tag.is_none() {
            div #results { p.muted { "输入姓名、拼音首字母、身份证号或电话的开头、地址，或选择人员类别。" } }
        } @else {
            (search_results(&index.search(query, tag, SEARCH_LIMIT), &routes::resident))
        }
        p { a href=(routes::VILLAGES) { "按村浏览" } }
    };
    layout::page(ctx, Nav::Browse, "查找居民", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ctx, sample};

    #[test]
    fn villages_households_and_members_by_name() {
        let s = sample();
        let html = villages_page(&ctx("2026-03-15"), &[&s.village]);
        assert!(html.contains(">小河村</a>"));
        assert!(html.contains("城关镇"));
        let html = village_page(&ctx("2026-03-15"), &s.village);
        assert!(html.contains(&format!("/resident/{}\">王建国</a>", s.wang)));
        assert!(
            html.contains("</a>、<a"),
            "members of one household on one line"
        );
        let html = household_page(&ctx("2026-03-15"), &s.village, &s.h2).unwrap();
        assert!(html.contains("赵小红") && html.contains("普遍走访"));
        assert!(household_page(&ctx("2026-03-15"), &s.village, &s.li).is_none());
    }

    #[test]
    fn search_page_finds_by_initials_and_filters_by_tag() {
        let s = sample();
        let index = SearchIndex::new(&[&s.village]);
        let html = search_page(&ctx("2026-03-15"), &index, "lxy", None);
        assert!(html.contains("找到 1 人"), "{html}");
        assert!(html.contains(&format!("/resident/{}\">李秀英</a>", s.li)));
        let html = search_page(&ctx("2026-03-15"), &index, "", Some("退役军人"));
        assert!(html.contains(">王建国</a>") && !html.contains(">李秀英</a>"));
        assert!(html.contains("<option value=\"退役军人\" selected>"));
        assert!(html.contains("<label for=\"q\">查找居民</label>"));
    }
}
