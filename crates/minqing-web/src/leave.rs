//! 请假/补访: record a leave from a month's visit round, and see every leave
//! with its make-up visit (补访) or that one is still owed. A 补访 is a visit
//! of kind 补访 in a later month, logged with 记民情日记; the settlement is the
//! model's (`settle_leaves`, what `minqing leave list --json` prints). Posts
//! to [`routes::LEAVES`] ([`crate::forms::leave`]).

use maud::html;
use minqing_model::{Village, VisitKind, month_of, settle_leaves};

use crate::forms::Form;
use crate::layout::{self, Nav};
use crate::names::{Names, village_name};
use crate::{Ctx, routes};

/// The 请假/补访 page: the form (what a refused post typed is kept) and the
/// list of leaves, the cadre's own first.
pub fn leave_page(ctx: &Ctx<'_>, villages: &[&Village], form: &Form) -> String {
    let names = Names::new(villages);
    let leaves: Vec<_> = villages.iter().flat_map(|v| v.leaves()).collect();
    let visits: Vec<_> = villages.iter().flat_map(|v| v.visits()).collect();
    let mut settled = settle_leaves(&leaves, &visits);
    settled.sort_by(|a, b| {
        (
            a.leave.cadre != ctx.cadre,
            std::cmp::Reverse(&a.leave.month),
        )
            .cmp(&(
                b.leave.cadre != ctx.cadre,
                std::cmp::Reverse(&b.leave.month),
            ))
    });
    let this_month = month_of(ctx.today).to_string();
    let makeup = format!("{}?kind={}", routes::VISIT_NEW, VisitKind::Makeup.as_str());
    let body = html! {
        h2 { "记录请假" }
        @if villages.is_empty() {
            (layout::none("本机还没有村，无法记录请假。"))
        } @else {
            form.stack method="post" action=(routes::LEAVES) {
                (layout::csrf(ctx))
                div.field {
                    label for="month" { "请假月份" }
                    input #month type="month" name="month" value=(form.value("month").unwrap_or(&this_month)) required;
                }
                @if villages.len() == 1 {
                    input type="hidden" name="village" value=(villages[0].id().as_str());
                } @else {
                    div.field {
                        label for="village" { "村" }
                        select #village name="village" required {
                            @for v in villages {
                                option value=(v.id().as_str()) selected[form.value("village") == Some(v.id().as_str())] { (village_name(v)) }
                            }
                        }
                    }
                }
                div.field {
                    label for="reason" { "请假原因" }
                    textarea #reason name="reason" required placeholder="如：参加县里培训" { (form.get("reason").unwrap_or("")) }
                }
                div.actions { button type="submit" { "记录请假" } }
            }
        }
        h2 { "请假与补访（" (settled.len()) "）" }
        @if settled.is_empty() {
            (layout::none("还没有请假记录。"))
        } @else {
            table #leaves {
                thead { tr { th { "月份" } th { "干部" } th { "村" } th { "原因" } th { "补访" } } }
                tbody {
                    @for s in &settled {
                        tr {
                            td { (s.leave.month) }
                            td { (s.leave.cadre) }
                            td { (names.village(&s.leave.village_id)) }
                            td { (s.leave.reason) }
                            td {
                                @match &s.settled_on {
                                    Some(on) => span.status.s-closed { "已补访 " (on) },
                                    _ => {
                                        span.status.s-open { "待补访" }
                                        @if s.leave.cadre == ctx.cadre {
                                            " " a.no-print href=(makeup) { "记补访" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        p.muted { "补访：在以后的月份记一次“补访”类型的走访，就抵销最早一次未补的请假。" }
    };
    layout::page(ctx, Nav::Leave, "请假/补访", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{author, ctx, rng, sample};
    use minqing_model::{LeaveReason, Month, NewVisit, Note};

    #[test]
    fn a_leave_is_owed_until_a_later_makeup_visit() {
        let mut s = sample();
        s.village
            .add_leave(
                &mut rng(),
                &author("张伟", "2026-02-20"),
                Month::parse("2026-02").unwrap(),
                &LeaveReason::parse("参加县里培训").unwrap(),
            )
            .unwrap();
        let html = leave_page(&ctx("2026-03-15"), &[&s.village], &Form::parse(""));
        assert!(
            html.contains("待补访") && html.contains("参加县里培训"),
            "{html}"
        );
        assert!(html.contains("/visit/new?kind=补访"));
        assert!(html.contains("name=\"csrf\" value=\"tok123\""));
        s.village
            .log_visit(
                &mut rng(),
                &author("张伟", "2026-03-10"),
                &NewVisit {
                    household: s.h1.clone(),
                    resident: None,
                    kind: VisitKind::Makeup,
                    note: Note::parse("补访").unwrap(),
                    date: crate::testkit::date("2026-03-10"),
                },
            )
            .unwrap();
        let html = leave_page(&ctx("2026-03-15"), &[&s.village], &Form::parse(""));
        assert!(html.contains("已补访 2026-03-10<"), "{html}");
        assert!(!html.contains("记补访</a>"));
    }
}
