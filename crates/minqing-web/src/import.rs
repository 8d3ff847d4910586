//! 导入户籍: upload a household register (.xlsx or .csv), see a dry-run
//! preview — what would be added, what is already there, and every rejected
//! row by its spreadsheet row number with the reason — then confirm. The plan
//! is the model's (`plan_import`, what `minqing import residents --dry-run
//! --json` prints). The upload posts to [`routes::IMPORT`] (multipart, the
//! CSRF token in the action's query); the confirmation to
//! [`routes::IMPORT_CONFIRM`] with the preview's token.

use maud::html;
use minqing_model::{ImportSummary, Village};

use crate::layout::{self, Nav};
use crate::names::village_name;
use crate::{Ctx, routes};

/// A dry run to show: the file, the village, the model's summary, and the
/// token that confirms it.
pub struct Preview<'a> {
    /// The uploaded file's name (as the cadre's computer named it).
    pub file_name: &'a str,
    /// The village it goes into.
    pub village: &'a Village,
    /// The plan's summary.
    pub summary: &'a ImportSummary,
    /// The token of the pending import (a confirmation names it).
    pub token: &'a str,
}

/// The 导入户籍 page: the upload form, and the preview of an upload if any.
pub fn import_page(ctx: &Ctx<'_>, villages: &[&Village], preview: Option<&Preview<'_>>) -> String {
    let action = format!("{}?{}={}", routes::IMPORT, crate::CSRF_FIELD, ctx.csrf);
    let body = html! {
        @if let Some(p) = preview {
            @let s = p.summary;
            h2 { "预览：" (p.file_name) " → " (village_name(p.village)) }
            div.stats #import-preview {
                div.stat { span.n #import-rows { (s.data_rows) } span.l { "数据行" } }
                div.stat { span.n #import-new { (s.residents_new) } span.l { "新增居民" } }
                div.stat { span.n #import-unchanged { (s.unchanged) } span.l { "已有（不变）" } }
                div.stat { span.n #import-households { (s.households_new) } span.l { "新增户" } }
                div.stat.alert[!s.rejected.is_empty()] { span.n #import-rejected { (s.rejected.len()) } span.l { "拒绝的行" } }
            }
            @if !s.rejected.is_empty() {
                h2 { "拒绝的行（不会导入；改正后可再导入，已导入的行不会重复）" }
                table #rejected {
                    thead { tr { th { "行号" } th { "原因" } } }
                    tbody {
                        @for r in &s.rejected {
                            tr { td { "第" (r.row) "行" } td { (crate::zh::import_reason(&r.reason)) } }
                        }
                    }
                }
            }
            @if !s.converted.is_empty() {
                p.muted { (s.converted.len()) " 个 15 位身份证号将按规则转为 18 位。" }
            }
            @if s.residents_new == 0 && s.households_new == 0 {
                (layout::none("没有新内容可导入。"))
            } @else {
                form.inline method="post" action=(routes::IMPORT_CONFIRM) {
                    (layout::csrf(ctx))
                    input type="hidden" name="token" value=(p.token);
                    button type="submit" { "确认导入" }
                    a.button.secondary href=(routes::IMPORT) { "取消" }
                }
            }
        }
        h2 { "上传户籍登记表" }
        @if villages.is_empty() {
            (layout::none("本机还没有村：先加入县里的同步，或用 minqing village add 建村。"))
        } @else {
            form.stack method="post" action=(action) enctype="multipart/form-data" {
                div.field {
                    label for="village" { "导入到村" }
                    select #village name="village" required {
                        @for v in villages {
                            option value=(v.id().as_str()) selected[preview.is_some_and(|p| p.village.id() == v.id())] { (village_name(v)) }
                        }
                    }
                }
                div.field {
                    label for="file" { "户籍登记表（.xlsx 或 .csv）" }
                    input #file type="file" name="file" accept=".xlsx,.csv" required;
                }
                div.actions { button type="submit" { "预览" } }
                p.muted { "先预览，不会写入；确认后才导入。第一行（或前几行中）要有表头：姓名、身份证号、户号、住址、与户主关系、联系电话、人员类别等。" }
            }
        }
    };
    layout::page(ctx, Nav::Import, "导入户籍", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ctx, sample};
    use minqing_model::RejectedRow;

    #[test]
    fn preview_lists_rejected_rows_by_number_and_confirms_by_token() {
        let s = sample();
        let empty = || ImportSummary {
            data_rows: 0,
            blank_rows: 0,
            households_in_file: 0,
            households: 0,
            households_new: 0,
            residents_new: 0,
            unchanged: 0,
            imported: 0,
            rejected: Vec::new(),
            converted: Vec::new(),
        };
        let summary = ImportSummary {
            data_rows: 3,
            residents_new: 2,
            households_new: 1,
            rejected: vec![RejectedRow {
                row: 4,
                reason: "身份证号 校验位不对".into(),
            }],
            ..empty()
        };
        let p = Preview {
            file_name: "登记表.csv",
            village: &s.village,
            summary: &summary,
            token: "t0k",
        };
        let html = import_page(&ctx("2026-03-15"), &[&s.village], Some(&p));
        assert!(
            html.contains("<td>第4行</td><td>身份证号 校验位不对</td>"),
            "{html}"
        );
        assert!(html.contains("name=\"token\" value=\"t0k\""));
        assert!(html.contains("action=\"/import?csrf=tok123\""));
        assert!(html.contains("enctype=\"multipart/form-data\""));
        let none = empty();
        let p = Preview {
            summary: &none,
            ..p
        };
        let html = import_page(&ctx("2026-03-15"), &[&s.village], Some(&p));
        assert!(!html.contains("确认导入"));
    }
}
