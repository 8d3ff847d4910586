//! Report files and what a binary prints for a report: a report's tables
//! written as CSV (UTF-8 with a BOM, formulas neutralised) and as an `.xlsx`
//! workbook with one sheet per table, and [`write_report`], the one behaviour
//! behind the `report` commands of both binaries.

use std::path::Path;

use minqing_model::{Cell, Table};
use rust_xlsxwriter::{Format, Workbook};
use serde::Serialize;

use crate::render::{MAX_COLUMN_WIDTH, render_tables, str_width};

/// Most rows written to one table (a bound on report size).
pub const MAX_ROWS: usize = 1_000_000;

/// Errors writing a report file.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The CSV writer failed.
    #[error("cannot write CSV {path}: {source}")]
    Csv {
        /// The file.
        path: String,
        /// Why.
        source: csv::Error,
    },
    /// The xlsx writer failed.
    #[error("cannot write spreadsheet {path}: {source}")]
    Xlsx {
        /// The file.
        path: String,
        /// Why.
        source: rust_xlsxwriter::XlsxError,
    },
    /// The report could not be turned into JSON.
    #[error("cannot write the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A table has more rows than [`MAX_ROWS`].
    #[error("table {title:?} has {rows} rows; at most {MAX_ROWS} can be written")]
    TooManyRows {
        /// The table.
        title: String,
        /// Its rows.
        rows: usize,
    },
}

/// Where a report goes, as the `report` commands of both binaries take it:
/// `--json`, `--csv FILE`, `--xlsx FILE`, any combination.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReportTargets<'a> {
    /// Print the report as JSON, and nothing else on stdout.
    pub json: bool,
    /// Write the tables as CSV here.
    pub csv: Option<&'a Path>,
    /// Write the tables as an `.xlsx` workbook here.
    pub xlsx: Option<&'a Path>,
}

/// What a binary prints once [`write_report`] has written the files.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportOutput {
    /// For stdout: the JSON alone with `json`; else the paths written, or the
    /// readable tables when no file was asked for.
    pub stdout: String,
    /// For stderr: the paths written, when stdout carries JSON.
    pub stderr: Vec<String>,
}

/// Writes a report where `to` asks — the files first, each synced to disk — and
/// says what to print. One behaviour for the laptop's and the relay's reports.
pub fn write_report<T: Serialize>(
    report: &T,
    tables: &[Table],
    to: &ReportTargets<'_>,
) -> Result<ReportOutput, SheetError> {
    let mut written = Vec::new();
    if let Some(path) = to.csv {
        write_csv(tables, path)?;
        written.push(path.display().to_string());
    }
    if let Some(path) = to.xlsx {
        write_xlsx(tables, path)?;
        written.push(path.display().to_string());
    }
    if to.json {
        let stderr = written.iter().map(|p| format!("wrote {p}")).collect();
        return Ok(ReportOutput {
            stdout: serde_json::to_string_pretty(report)?,
            stderr,
        });
    }
    let stdout = if written.is_empty() {
        render_tables(tables).trim_end().to_owned()
    } else {
        written.join("\n")
    };
    Ok(ReportOutput {
        stdout,
        stderr: Vec::new(),
    })
}

fn check_rows(tables: &[Table]) -> Result<(), SheetError> {
    match tables.iter().find(|t| t.rows.len() > MAX_ROWS) {
        Some(t) => Err(SheetError::TooManyRows {
            title: t.title.clone(),
            rows: t.rows.len(),
        }),
        None => Ok(()),
    }
}

/// Writes the tables to one CSV file (UTF-8 with a byte-order mark, so that
/// Excel and WPS read the Chinese correctly). Each table is a one-cell title
/// row, a header row and its rows; tables are separated by an empty row.
/// Percentages are written as `95.0%`. Text cells that a spreadsheet would run
/// as a formula (beginning with `=`, `+`, `-`, `@`, TAB or CR) get a leading
/// `'` (`text::neutralise_formula`); titles and headers are ours.
pub fn write_csv(tables: &[Table], path: &Path) -> Result<(), SheetError> {
    check_rows(tables)?;
    let shown = path.display().to_string();
    let io = |source| SheetError::Io {
        path: shown.clone(),
        source,
    };
    let csv_err = |source| SheetError::Csv {
        path: shown.clone(),
        source,
    };
    let mut file = std::fs::File::create(path).map_err(io)?;
    std::io::Write::write_all(&mut file, "\u{feff}".as_bytes()).map_err(io)?;
    let mut w = csv::WriterBuilder::new().flexible(true).from_writer(file);
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            w.write_record([""]).map_err(csv_err)?;
        }
        w.write_record([t.title.as_str()]).map_err(csv_err)?;
        w.write_record(&t.columns).map_err(csv_err)?;
        for r in 0..t.rows.len() {
            let rec: Vec<String> = (0..t.columns.len())
                .map(|c| match t.cell(r, c) {
                    Cell::Text(s) => minqing_model::text::neutralise_formula(s).into_owned(),
                    other => other.display(),
                })
                .collect();
            w.write_record(&rec).map_err(csv_err)?;
        }
    }
    let mut file = w.into_inner().map_err(|e| io(e.into_error()))?;
    std::io::Write::flush(&mut file).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// A valid, unique sheet name for a title: no `[]:*?/\`, at most 31
/// characters.
fn sheet_name(title: &str, taken: &[String]) -> String {
    let clean: String = title
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\'))
        .collect();
    let clean = clean.trim_matches('\'').trim();
    let base: String = if clean.is_empty() {
        "Sheet".to_owned()
    } else {
        clean.chars().take(31).collect()
    };
    let mut name = base.clone();
    let mut n = 2;
    while taken.iter().any(|t| t.eq_ignore_ascii_case(&name)) {
        let suffix = format!(" ({n})");
        let keep = 31usize.saturating_sub(suffix.chars().count());
        name = format!("{}{suffix}", base.chars().take(keep).collect::<String>());
        n += 1;
    }
    name
}

/// Writes the tables to an `.xlsx` workbook: one sheet per table, named after
/// its title, the header in the first row (bold, frozen), numbers as numbers,
/// percentages as numbers with a `0.0%` format, column widths set to fit.
pub fn write_xlsx(tables: &[Table], path: &Path) -> Result<(), SheetError> {
    let shown = path.display().to_string();
    let mut book = workbook(tables, &shown)?;
    book.save(path).map_err(|source| SheetError::Xlsx {
        path: shown,
        source,
    })
}

/// The `.xlsx` workbook of [`write_xlsx`] as bytes, for a download (`name`
/// is what an error calls it). Nothing touches the disk.
pub fn xlsx_bytes(tables: &[Table], name: &str) -> Result<Vec<u8>, SheetError> {
    let mut book = workbook(tables, name)?;
    book.save_to_buffer().map_err(|source| SheetError::Xlsx {
        path: name.to_owned(),
        source,
    })
}

fn workbook(tables: &[Table], shown: &str) -> Result<Workbook, SheetError> {
    check_rows(tables)?;
    let xl = |source| SheetError::Xlsx {
        path: shown.to_owned(),
        source,
    };
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let percent = Format::new().set_num_format("0.0%");
    let decimal = Format::new().set_num_format("0.00");
    let mut names: Vec<String> = Vec::new();
    for t in tables {
        let name = sheet_name(&t.title, &names);
        let sheet = book.add_worksheet();
        sheet.set_name(name.as_str()).map_err(xl)?;
        names.push(name);
        for (c, h) in t.columns.iter().enumerate() {
            let col = u16::try_from(c).unwrap_or(u16::MAX);
            sheet
                .write_string_with_format(0, col, h, &bold)
                .map_err(xl)?;
            let width = (0..t.rows.len())
                .map(|r| str_width(&t.cell(r, c).display()))
                .chain([str_width(h)])
                .max()
                .unwrap_or(8)
                .clamp(6, MAX_COLUMN_WIDTH);
            // Widths are whole display columns, well within f64.
            sheet
                .set_column_width(col, (width + 2) as f64)
                .map_err(xl)?;
        }
        for r in 0..t.rows.len() {
            // `check_rows` bounds rows far below u32::MAX.
            let row = u32::try_from(r + 1).unwrap_or(u32::MAX);
            for c in 0..t.columns.len() {
                let col = u16::try_from(c).unwrap_or(u16::MAX);
                match t.cell(r, c) {
                    Cell::Text(s) => {
                        sheet.write_string(row, col, s.as_str()).map_err(xl)?;
                    }
                    // Report counts are far below 2^53: exact as f64.
                    Cell::Int(n) => {
                        sheet.write_number(row, col, *n as f64).map_err(xl)?;
                    }
                    Cell::Float(x) => {
                        sheet
                            .write_number_with_format(row, col, *x, &decimal)
                            .map_err(xl)?;
                    }
                    Cell::Percent(x) => {
                        sheet
                            .write_number_with_format(row, col, *x, &percent)
                            .map_err(xl)?;
                    }
                    Cell::Empty => {}
                }
            }
        }
        sheet.set_freeze_panes(1, 0).map_err(xl)?;
    }
    Ok(book)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use calamine::{Data, Reader, open_workbook_auto};

    pub(crate) fn sample() -> Vec<Table> {
        let mut a = Table::new("月度走访", &["干部", "走访次数", "覆盖率", "平均"]);
        a.push(vec![
            Cell::text("李书记"),
            Cell::Int(12),
            Cell::Percent(0.75),
            Cell::Float(1.5),
        ]);
        a.push(vec![Cell::text("Wang"), Cell::Int(3), Cell::Percent(0.0)]);
        let b = Table::new("月度走访", &["类别"]);
        vec![a, b]
    }

    #[test]
    fn csv_has_a_bom_titles_and_percentages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        write_csv(&sample(), &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "\u{feff}月度走访\n干部,走访次数,覆盖率,平均\n李书记,12,75.0%,1.50\nWang,3,0.0%,\n\"\"\n月度走访\n类别\n"
        );
    }

    #[test]
    fn xlsx_bytes_are_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.xlsx");
        std::fs::write(&path, xlsx_bytes(&sample(), "r.xlsx").unwrap()).unwrap();
        let mut book = open_workbook_auto(&path).unwrap();
        let range = book.worksheet_range("月度走访").unwrap();
        assert_eq!(range.get((1, 0)), Some(&Data::String("李书记".into())));
        assert_eq!(range.get((1, 1)), Some(&Data::Float(12.0)));
    }

    #[test]
    fn xlsx_reads_back_with_calamine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.xlsx");
        write_xlsx(&sample(), &path).unwrap();
        let mut book = open_workbook_auto(&path).unwrap();
        assert_eq!(book.sheet_names(), ["月度走访", "月度走访 (2)"]);
        let range = book.worksheet_range("月度走访").unwrap();
        assert_eq!(range.get((0, 0)), Some(&Data::String("干部".into())));
        assert_eq!(range.get((0, 2)), Some(&Data::String("覆盖率".into())));
        assert_eq!(range.get((1, 0)), Some(&Data::String("李书记".into())));
        assert_eq!(range.get((1, 1)), Some(&Data::Float(12.0)));
        assert_eq!(range.get((1, 2)), Some(&Data::Float(0.75)));
        assert_eq!(range.get((1, 3)), Some(&Data::Float(1.5)));
        assert_eq!(range.get((2, 1)), Some(&Data::Float(3.0)));
        assert_eq!(range.height(), 3);
        let empty = book.worksheet_range("月度走访 (2)").unwrap();
        assert_eq!(empty.get((0, 0)), Some(&Data::String("类别".into())));
        assert_eq!(empty.height(), 1);
    }

    #[test]
    fn csv_text_cells_cannot_run_as_formulas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        let mut t = Table::new("台账", &["部门", "诉求", "数"]);
        t.push(vec![
            Cell::text("=1+2"),
            Cell::text("=HYPERLINK(\"http://x\",\"点\")"),
            Cell::Int(-3),
        ]);
        t.push(vec![
            Cell::text("@SUM(A1)"),
            Cell::text("\t+1"),
            Cell::Int(1),
        ]);
        write_csv(&[t], &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let cells: Vec<Vec<String>> = rows
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        assert_eq!(
            cells[2],
            ["'=1+2", "'=HYPERLINK(\"http://x\",\"点\")", "-3"]
        );
        assert_eq!(cells[3], ["'@SUM(A1)", "'\t+1", "1"]);
    }

    #[test]
    fn sheet_names_are_cleaned_and_unique() {
        let taken = vec!["台账".to_owned()];
        assert_eq!(sheet_name("台账", &taken), "台账 (2)");
        assert_eq!(sheet_name("a/b:c?", &[]), "abc");
        assert_eq!(sheet_name("", &[]), "Sheet");
        assert_eq!(sheet_name(&"长".repeat(40), &[]).chars().count(), 31);
    }
}
