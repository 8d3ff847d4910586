//! Tables drawn as readable text: the title, then aligned columns (numbers to
//! the right), two spaces apart, widths counted in display columns (a CJK
//! character is two).

use std::fmt::Write as _;

use minqing_model::Table;

/// Longest column drawn in text and xlsx output, in display columns; longer
/// text is cut with `…` in the text table only.
pub const MAX_COLUMN_WIDTH: usize = 60;

/// Display width of a character in a terminal: 2 for CJK and full-width
/// forms, 0 for control characters, 1 otherwise.
pub fn char_width(c: char) -> usize {
    let u = c as u32;
    if c.is_control() {
        0
    } else if matches!(u,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x20000..=0x3FFFD)
    {
        2
    } else {
        1
    }
}

/// Display width of a string (see [`char_width`]).
pub fn str_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// Cuts `s` to at most `max` display columns, ending with `…` if cut.
fn clip(s: &str, max: usize) -> String {
    if str_width(s) <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = char_width(c);
        if w + cw + 1 > max {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

fn pad(s: &str, width: usize, right: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(str_width(s)));
    if right {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

/// The readable text table: the title, then aligned columns (numbers to the
/// right), two spaces apart, widths counted in display columns.
pub fn render_table(table: &Table) -> String {
    let cells: Vec<Vec<String>> = (0..table.rows.len())
        .map(|r| {
            (0..table.columns.len())
                .map(|c| clip(&table.cell(r, c).display(), MAX_COLUMN_WIDTH))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..table.columns.len())
        .map(|c| {
            cells
                .iter()
                .map(|r| str_width(&r[c]))
                .chain([str_width(&table.columns[c])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |parts: Vec<String>| parts.join("  ").trim_end().to_owned();
    out.push_str(&table.title);
    out.push('\n');
    out.push_str(&line(
        table
            .columns
            .iter()
            .zip(&widths)
            .map(|(h, w)| pad(h, *w, false))
            .collect(),
    ));
    out.push('\n');
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    out.push('\n');
    if table.rows.is_empty() {
        out.push_str("(none)\n");
    }
    for (r, row) in cells.iter().enumerate() {
        let parts = row
            .iter()
            .enumerate()
            .map(|(c, s)| pad(s, widths[c], table.cell(r, c).is_number()))
            .collect();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{}", line(parts));
    }
    out
}

/// Renders several tables one after another, separated by a blank line.
pub fn render_tables(tables: &[Table]) -> String {
    tables
        .iter()
        .map(render_table)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::tests::sample;

    #[test]
    fn widths_count_cjk_as_two_columns() {
        assert_eq!(str_width("李书记"), 6);
        assert_eq!(str_width("ab"), 2);
        assert_eq!(str_width("１２"), 4);
        assert_eq!(str_width("a\u{3000}b"), 4);
        assert_eq!(clip("一二三四五", 7), "一二三…");
    }

    #[test]
    fn text_tables_align_chinese_and_numbers() {
        let text = render_table(&sample()[0]);
        let expected = "\
月度走访
干部    走访次数  覆盖率  平均
------  --------  ------  ----
李书记        12   75.0%  1.50
Wang           3    0.0%
";
        assert_eq!(text, expected);
        assert!(render_tables(&sample()).contains("\n\n月度走访\n类别\n----\n(none)\n"));
    }
}
