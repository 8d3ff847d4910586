//! 记民情日记: log a visit. Pick the resident (or household) by search, then
//! kind, note and date (today by default). Works with the keyboard alone: the
//! search box has focus first, results are links, and once a resident is
//! picked the note has focus. Posts to [`routes::VISITS`]
//! ([`crate::forms::visit`]).

use maud::html;
use minqing_model::{Id, RecordKind, Village, VisitKind};

use crate::browse::{SEARCH_LIMIT, search_form, search_results};
use crate::forms::{Form, village_of};
use crate::layout::{self, Nav, is_key_tag};
use crate::names::village_name;
use crate::search::SearchIndex;
use crate::{Ctx, routes};

/// What the visit form shows: the query string of `GET /visit/new`, or the
/// refused post (so nothing typed is lost).
pub fn visit_page(
    ctx: &Ctx<'_>,
    villages: &[&Village],
    index: &SearchIndex,
    form: &Form,
) -> String {
    let query = form.get("q").unwrap_or("");
    let resident = form
        .value("resident")
        .and_then(|r| Id::parse(r).ok())
        .and_then(|r| {
            let i = village_of(villages, RecordKind::Resident, &r)?;
            Some((villages[i], villages[i].resident(&r)?))
        });
    let household = match &resident {
        Some((v, r)) => Id::parse(&r.household_id).ok().map(|h| (*v, h)),
        None => form
            .value("household")
            .and_then(|h| Id::parse(h).ok())
            .and_then(|h| {
                let i = village_of(villages, RecordKind::Household, &h)?;
                Some((villages[i], h))
            }),
    }
    .and_then(|(v, h)| Some((v, v.household(&h)?)));
    let default_kind = match (&resident, form.value("kind")) {
        (_, Some(k)) => VisitKind::parse(k).unwrap_or(VisitKind::Regular),
        (Some((_, r)), None) if r.tags.iter().any(|t| is_key_tag(t)) => VisitKind::Key,
        _ => VisitKind::Regular,
    };
    let today = ctx.today.format("%Y-%m-%d").to_string();
    // A kind asked for (`?kind=补访` from 请假/补访) survives the search.
    let asked_kind = form
        .value("kind")
        .and_then(|k| VisitKind::parse(k).ok())
        .map(|k| k.as_str());
    let keep: Vec<(&str, &str)> = asked_kind.iter().map(|k| ("kind", *k)).collect();
    let link = |id: &str| match asked_kind {
        Some(k) => format!("{}&kind={k}", routes::visit_for_resident(id)),
        None => routes::visit_for_resident(id),
    };
    let body = html! {
        @match &household {
            None => {
                p { "先找到要走访的居民：" }
                (search_form(routes::VISIT_NEW, query, None, None, &keep))
                @if !query.trim().is_empty() {
                    (search_results(&index.search(query, None, SEARCH_LIMIT), &link))
                } @else {
                    div #results {}
                }
            }
            Some((village, h)) => {
                form.stack method="post" action=(routes::VISITS) {
                    (layout::csrf(ctx))
                    input type="hidden" name="household" value=(h.id);
                    p #visit-target {
                        "住户：" strong { (h.address) } "（" (village_name(village)) "） "
                        a.no-print href=(routes::VISIT_NEW) { "换一户" }
                    }
                    div.field {
                        label for="resident" { "走访对象" }
                        select #resident name="resident" {
                            option value="" selected[resident.is_none()] { "全户（不指定人员）" }
                            @for m in village.residents().iter().filter(|m| m.household_id == h.id) {
                                option value=(m.id) selected[resident.as_ref().is_some_and(|(_, r)| r.id == m.id)] {
                                    (m.name) @if !m.tags.is_empty() { "（" (m.tags.join("、")) "）" }
                                }
                            }
                        }
                    }
                    div.field {
                        label for="kind" { "走访类型" }
                        select #kind name="kind" {
                            @for k in [VisitKind::Regular, VisitKind::Key, VisitKind::Makeup] {
                                option value=(k.as_str()) selected[k == default_kind] { (k.as_str()) }
                            }
                        }
                    }
                    div.field {
                        label for="date" { "日期" }
                        input #date type="date" name="date" value=(form.value("date").unwrap_or(&today)) max=(today) required;
                    }
                    div.field {
                        label for="note" { "走访记录" }
                        textarea #note name="note" required autofocus
                            placeholder="了解到的情况、群众反映的问题、已做的工作" { (form.get("note").unwrap_or("")) }
                    }
                    div.actions { button type="submit" { "保存" } }
                }
            }
        }
    };
    layout::page(ctx, Nav::Visit, "记民情日记", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ctx, sample};

    #[test]
    fn search_first_then_the_form_for_the_picked_resident() {
        let s = sample();
        let index = SearchIndex::new(&[&s.village]);
        let html = visit_page(
            &ctx("2026-03-15"),
            &[&s.village],
            &index,
            &Form::parse("q=lxy"),
        );
        assert!(!html.contains("<textarea"), "no form before a pick");
        assert!(html.contains(&format!("/visit/new?resident={}\">李秀英</a>", s.li)));

        let html = visit_page(
            &ctx("2026-03-15"),
            &[&s.village],
            &index,
            &Form::parse(&format!("resident={}", s.li)),
        );
        assert!(html.contains(&format!("name=\"household\" value=\"{}\"", s.h1)));
        assert!(html.contains(&format!("<option value=\"{}\" selected>李秀英", s.li)));
        assert!(
            html.contains("<option value=\"重点走访\" selected>"),
            "key group: 重点走访"
        );
        assert!(
            html.contains("value=\"2026-03-15\" max=\"2026-03-15\""),
            "today by default"
        );
        assert!(html.contains("name=\"csrf\" value=\"tok123\""));
        for label in ["走访对象", "走访类型", "日期", "走访记录"] {
            assert!(html.contains(&format!(">{label}</label>")), "{label}");
        }
    }

    #[test]
    fn household_pick_and_a_refused_post_keeps_the_text() {
        let s = sample();
        let index = SearchIndex::new(&[&s.village]);
        let form = Form::parse(&format!(
            "household={}&kind=%E8%A1%A5%E8%AE%BF&note=%3Cb%3E",
            s.h2
        ));
        let html = visit_page(&ctx("2026-03-15"), &[&s.village], &index, &form);
        assert!(html.contains("<option value=\"\" selected>全户"));
        assert!(html.contains("<option value=\"补访\" selected>"));
        assert!(html.contains("&lt;b&gt;</textarea>"), "escaped");
        assert!(html.contains("小河村一组3号"));
    }
}
