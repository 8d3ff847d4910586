//! A resident's page (居民档案): the file, the household and its members,
//! every visit naming the resident (newest first), every demand with its
//! state. Printable (print CSS keeps the file, drops the buttons). The same
//! data as `minqing resident show --json` (`Village::resident_detail`).

use maud::html;
use minqing_model::validate::KNOWN_TAGS;
use minqing_model::{Id, ReadVillage, Village};

use crate::forms::Form;
use crate::layout::{self, Nav};
use crate::names::village_name;
use crate::{Ctx, Notice, routes, time};

/// The warning after adding resident `id` whose 身份证号 another resident of
/// the village already has: names who (a warning, not a refusal — the two
/// may be one person entered twice, merged with `minqing resident merge`).
pub fn duplicate_notice(village: &(impl ReadVillage + ?Sized), id: &Id) -> Option<Notice> {
    let residents = village.residents();
    let new = residents.iter().find(|r| r.id == id.as_str())?;
    let card = new.id_card.as_deref()?;
    let others: Vec<String> = residents
        .iter()
        .filter(|r| r.id != new.id && r.id_card.as_deref() == Some(card) && r.merged_into.is_none())
        .map(crate::names::resident_label)
        .collect();
    (!others.is_empty()).then(|| {
        Notice::warn(format!(
            "已添加居民。注意：本村的{}也登记了这个身份证号。如是同一人，请核对后用 minqing resident merge 合并。",
            others.join("、")
        ))
    })
}

/// The form adding a resident to a household (`GET /resident/new?household=…`,
/// or a refused post with what was typed), or `None` if the household is not
/// in `village`.
pub fn resident_new_page(ctx: &Ctx<'_>, village: &Village, form: &Form) -> Option<String> {
    let hid = Id::parse(form.value("household")?).ok()?;
    let h = village.household(&hid)?;
    let checked: Vec<&str> = form.all("tag").collect();
    let body = html! {
        p { "住户：" strong { (h.address) } "（" (village_name(village)) "） " a href=(routes::household(&h.id)) { "返回本户" } }
        form.stack method="post" action=(routes::RESIDENTS) {
            (layout::csrf(ctx))
            input type="hidden" name="household" value=(h.id);
            div.field { label for="name" { "姓名" } input #name type="text" name="name" required autofocus value=(form.get("name").unwrap_or("")); }
            div.field {
                label for="gender" { "性别" }
                select #gender name="gender" {
                    @for (v, l) in [("", "未填"), ("男", "男"), ("女", "女")] {
                        option value=(v) selected[form.value("gender").unwrap_or("") == v] { (l) }
                    }
                }
            }
            div.field { label for="id_card" { "身份证号" } input #id_card type="text" name="id_card" inputmode="numeric" value=(form.get("id_card").unwrap_or("")); }
            div.field { label for="phone" { "联系电话" } input #phone type="text" name="phone" inputmode="tel" value=(form.get("phone").unwrap_or("")); }
            div.field { label for="relation" { "与户主关系" } input #relation type="text" name="relation" placeholder="如：户主、配偶、子" value=(form.get("relation").unwrap_or("")); }
            fieldset {
                legend { "人员类别" }
                @for (tag, _) in KNOWN_TAGS {
                    label { input type="checkbox" name="tag" value=(tag) checked[checked.contains(tag)]; " " (tag) } " "
                }
            }
            div.actions { button type="submit" { "添加居民" } }
        }
    };
    Some(layout::page(ctx, Nav::Browse, "添加居民", body))
}

/// The resident's page, or `None` if `id` is no resident of `village`.
pub fn resident_page(
    ctx: &Ctx<'_>,
    village: &(impl ReadVillage + ?Sized),
    id: &Id,
) -> Option<String> {
    let detail = village.resident_detail(id)?;
    let r = &detail.resident;
    let household = Id::parse(&r.household_id)
        .ok()
        .and_then(|h| village.household(&h));
    let all = village.residents();
    let members: Vec<_> = all
        .iter()
        .filter(|m| m.household_id == r.household_id && m.id != r.id)
        .cloned()
        .collect();
    let vname = village_name(village);
    let mut visits = detail.visits.clone();
    visits.reverse();
    let body = html! {
        div.actions {
            a.button href=(routes::visit_for_resident(&r.id)) { "记民情日记" }
            a.button.secondary href=(routes::demand_for_resident(&r.id)) { "受理诉求" }
            (layout::print_button())
        }
        p.print-only { "居民档案 · " (vname) " · 打印日期 " (time::date_zh(ctx.today)) }
        section.card aria-labelledby="file" {
            h2 #file { "基本信息" }
            dl.file {
                dt { "姓名" } dd #resident-name { (r.name) }
                dt { "性别" } dd { (r.gender.as_deref().unwrap_or("-")) }
                dt { "出生日期" } dd { (r.birth.as_deref().unwrap_or("-")) }
                dt { "身份证号" } dd { (r.id_card.as_deref().unwrap_or("-")) }
                dt { "联系电话" } dd { (r.phone.as_deref().unwrap_or("-")) }
                dt { "与户主关系" } dd { (r.relation.as_deref().unwrap_or("-")) }
                dt { "人员类别" } dd { @if r.tags.is_empty() { "-" } @else { (layout::tags(&r.tags)) } }
                dt { "村" } dd { a href=(routes::village(&r.village_id)) { (vname) } }
                dt { "住址" } dd {
                    a href=(routes::household(&r.household_id)) { (r.address) }
                    @if let Some(no) = household.as_ref().and_then(|h| h.number.as_deref()) {
                        " （户号 " (no) "）"
                    }
                }
                dt { "建档" } dd { (r.cadre) " · " (time::date(&r.created_at)) }
            }
        }
        section.card aria-labelledby="members" {
            h2 #members { "同户人员" }
            @if members.is_empty() {
                (layout::none("本户没有其他人员。"))
            } @else {
                ul.plain {
                    @for m in &members {
                        li {
                            a href=(routes::resident(&m.id)) { (m.name) }
                            @if let Some(rel) = &m.relation { " · " (rel) }
                            " " (layout::tags(&m.tags))
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="visits" {
            h2 #visits { "走访记录（" (visits.len()) "）" }
            @if visits.is_empty() {
                (layout::none("还没有走访记录。"))
            } @else {
                table {
                    thead { tr { th { "日期" } th { "类型" } th { "干部" } th { "记录" } } }
                    tbody {
                        @for v in &visits {
                            tr {
                                td { (v.date) }
                                td { (v.kind) }
                                td { (v.cadre) }
                                td { (layout::multiline(&v.note)) }
                            }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="demands" {
            h2 #demands { "诉求（" (detail.demands.len()) "）" }
            @if detail.demands.is_empty() {
                (layout::none("没有诉求。"))
            } @else {
                table {
                    thead { tr { th { "受理日期" } th { "类别" } th { "内容" } th { "状态" } th { "部门" } th { "期限" } } }
                    tbody {
                        @for d in &detail.demands {
                            tr {
                                td { (time::date(&d.opened_at)) }
                                td { a href=(routes::demand(&d.id)) { (d.category) } }
                                td { (d.text) }
                                td { (layout::status(&d.status)) @if d.flagged > 0 { " ⚠" } }
                                td { (d.department.as_deref().unwrap_or("-")) }
                                td { (d.due.as_deref().unwrap_or("-")) }
                            }
                        }
                    }
                }
            }
        }
    };
    Some(layout::page(ctx, Nav::Browse, &r.name, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ctx, sample};

    #[test]
    fn a_new_resident_with_a_known_id_card_is_saved_with_a_warning_naming_who() {
        let mut s = crate::testkit::sample();
        let form = Form::parse(&format!(
            "household={}&name=%E6%9D%8E%E7%A7%80%E9%9F%B3&id_card=370811195803151224&tag=%E8%80%81%E5%85%9A%E5%91%98",
            s.h2
        ));
        let new = crate::forms::resident(&form, crate::testkit::date("2026-03-15")).unwrap();
        assert_eq!(new.tags.len(), 1);
        let id = s
            .village
            .add_resident(
                &mut crate::testkit::rng(),
                &crate::testkit::author("张伟", "2026-03-15"),
                &new,
            )
            .unwrap();
        let notice = duplicate_notice(&s.village, &id).unwrap();
        assert!(
            notice.text.contains("李秀英（小河村三组12号）"),
            "{notice:?}"
        );
        assert_eq!(duplicate_notice(&s.village, &s.wang), None);
        // A 身份证号 that says 女 with 性别 男 is refused, as the CLI refuses it.
        let bad = Form::parse(&format!(
            "household={}&name=x&gender=%E7%94%B7&id_card=370811195803151224",
            s.h2
        ));
        assert!(crate::forms::resident(&bad, crate::testkit::date("2026-03-15")).is_err());
        let html =
            resident_new_page(&crate::testkit::ctx("2026-03-15"), &s.village, &form).unwrap();
        assert!(html.contains("value=\"李秀音\""), "what was typed is kept");
        assert!(html.contains("value=\"老党员\" checked"));
    }

    #[test]
    fn shows_the_file_household_visits_and_demands() {
        let s = sample();
        let html = resident_page(&ctx("2026-03-15"), &s.village, &s.li).unwrap();
        assert!(html.contains("<title>李秀英 · 民情日记</title>"));
        assert!(html.contains("370811195803151224"));
        assert!(html.contains("1958-03-15"), "birth from the 身份证号");
        assert!(html.contains("小河村三组12号"));
        assert!(html.contains("独居老人") && html.contains("老党员"));
        assert!(html.contains("重点走访"));
        assert!(html.contains("走访了解情况<br>第二行"), "line breaks kept");
        assert!(html.contains("供水") && html.contains("办理中") && html.contains("县水务局"));
        assert!(html.contains(&format!("/demand/{}", s.demand)));
        assert!(html.contains(&format!("/visit/new?resident={}", s.li)));
        assert!(html.contains("打印"));
    }

    #[test]
    fn household_members_are_linked_and_an_unknown_id_is_none() {
        let s = sample();
        let html = resident_page(&ctx("2026-03-15"), &s.village, &s.wang).unwrap();
        assert!(html.contains(&format!("/resident/{}\">赵小红</a>", s.zhao)));
        assert!(html.contains("还没有走访记录"));
        assert!(resident_page(&ctx("2026-03-15"), &s.village, &s.h1).is_none());
    }

    #[test]
    fn resident_text_is_escaped() {
        let mut s = sample();
        s.village
            .log_visit(
                &mut crate::testkit::rng(),
                &crate::testkit::author("张伟", "2026-03-05"),
                &minqing_model::NewVisit {
                    household: s.h1.clone(),
                    resident: Some(s.li.clone()),
                    kind: minqing_model::VisitKind::Regular,
                    note: minqing_model::Note::parse("<script>alert('x')</script>\"&").unwrap(),
                    date: crate::testkit::date("2026-03-05"),
                },
            )
            .unwrap();
        let html = resident_page(&ctx("2026-03-15"), &s.village, &s.li).unwrap();
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt;&quot;&amp;"));
    }
}
