//! Household registers (户籍登记表) read from `.csv` and `.xlsx` files into
//! rows of text for the model's import planner (`minqing_model::plan_import`),
//! within bounds that hold whatever the file: size, rows, columns, cells, cell
//! text, and for `.xlsx` the unpacked size, parts and shared strings (zip
//! bombs and sparse sheets are refused before they cost memory).

use std::path::Path;

use calamine::{DataRef, Reader};
use minqing_model::RawRow;

/// Largest file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;
/// Most rows read from a file.
pub const MAX_ROWS: usize = 100_000;
/// Most columns read from a row.
pub const MAX_COLUMNS: usize = 200;
/// Rows searched for the header.
pub const HEADER_SEARCH_ROWS: usize = 20;
/// Most bytes an `.xlsx` file may expand to (all its parts, decompressed).
/// Counted while decompressing, before the spreadsheet is parsed, so a zip
/// bomb is refused after at most this much work and no memory.
pub const MAX_UNCOMPRESSED_BYTES: u64 = 128 * 1024 * 1024;
/// Most parts (zip entries) in an `.xlsx` file.
pub const MAX_ZIP_ENTRIES: usize = 1_000;
/// Most cells kept from a file, counting the empty cells that pad a row up
/// to its last filled column (a sparse sheet with A1 and XFD1048576 cannot
/// make the importer build a 17-billion-cell grid).
pub const MAX_CELLS: usize = 2_000_000;
/// Most bytes of cell text kept from a file (a shared string referenced by a
/// million cells counts a million times).
pub const MAX_TEXT_BYTES: usize = 64 * 1024 * 1024;
/// Most distinct shared strings an `.xlsx` may declare (its `uniqueCount`,
/// which the spreadsheet reader reserves memory for up front).
pub const MAX_SHARED_STRINGS: u64 = MAX_CELLS as u64;
/// The memory an import may use, whatever the file: the limits above keep the
/// whole `minqing import` process under this peak resident size (measured by
/// `tests/tests/it/hostile_import.rs`; docs/cli.md#import).
pub const MEMORY_BOUND_BYTES: u64 = 512 * 1024 * 1024;

/// Errors reading a register file into rows (bad rows are not errors: the
/// planner, `minqing_model::plan_import`, reports them).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error(
        "{path} is {bytes} bytes; at most {MAX_FILE_BYTES} can be imported: split the register"
    )]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        bytes: u64,
    },
    /// More rows than [`MAX_ROWS`].
    #[error("{path} has more than {MAX_ROWS} rows: split the register")]
    TooManyRows {
        /// The file.
        path: String,
    },
    /// More cells or more text than a register can have ([`MAX_CELLS`],
    /// [`MAX_TEXT_BYTES`], [`MAX_SHARED_STRINGS`]).
    #[error(
        "{path} is too big to import: {what}; a register has at most {MAX_ROWS} rows of {MAX_COLUMNS} columns — remove empty far-away cells or split the register"
    )]
    TooManyCells {
        /// The file.
        path: String,
        /// What is over its limit.
        what: String,
    },
    /// An `.xlsx` that expands to more than [`MAX_UNCOMPRESSED_BYTES`] or has
    /// more than [`MAX_ZIP_ENTRIES`] parts (a zip bomb, or not a register).
    #[error(
        "{path} expands to {what} when unpacked; at most {} MiB and {MAX_ZIP_ENTRIES} parts are read: it is not a household register (or split it)",
        MAX_UNCOMPRESSED_BYTES / (1024 * 1024)
    )]
    Expands {
        /// The file.
        path: String,
        /// How much it expands to, e.g. "more than 128 MiB".
        what: String,
    },
    /// Not `.csv` or `.xlsx` (`.xls` and `.ods` included: their readers build
    /// the whole grid in memory before any size can be checked).
    #[error("{path}: only .csv and .xlsx registers can be imported; save the sheet as one of them")]
    UnknownFormat {
        /// The file.
        path: String,
    },
    /// A CSV file that is not UTF-8 (often GBK from older Excel).
    #[error(
        "{path} is not UTF-8 text (GBK?): save it as \"CSV UTF-8\" or as .xlsx and import again"
    )]
    NotUtf8 {
        /// The file.
        path: String,
    },
    /// The CSV could not be parsed.
    #[error("{path}: {source}")]
    Csv {
        /// The file.
        path: String,
        /// Why.
        source: csv::Error,
    },
    /// The spreadsheet could not be read.
    #[error("{path}: cannot read the spreadsheet: {message}")]
    Sheet {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// Reads a `.csv` or `.xlsx` file (by extension) into rows.
pub fn read_rows(path: &Path) -> Result<Vec<RawRow>, ReadError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| ReadError::Io {
        path: shown.clone(),
        source,
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge {
            path: shown,
            bytes: meta.len(),
        });
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "csv" => {
            let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
                path: shown.clone(),
                source,
            })?;
            read_csv(&shown, &bytes)
        }
        "xlsx" | "xlsm" => read_sheet(path),
        _ => Err(ReadError::UnknownFormat { path: shown }),
    }
}

/// Counts the cells and text kept from a file against [`MAX_CELLS`] and
/// [`MAX_TEXT_BYTES`].
struct Budget<'p> {
    path: &'p str,
    cells: usize,
    text: usize,
}

impl Budget<'_> {
    fn take(&mut self, cells: usize, text: usize) -> Result<(), ReadError> {
        self.cells = self.cells.saturating_add(cells);
        self.text = self.text.saturating_add(text);
        if self.cells > MAX_CELLS {
            return Err(ReadError::TooManyCells {
                path: self.path.to_owned(),
                what: format!(
                    "more than {MAX_CELLS} cells (counting empty cells up to each row's last)"
                ),
            });
        }
        if self.text > MAX_TEXT_BYTES {
            return Err(ReadError::TooManyCells {
                path: self.path.to_owned(),
                what: format!(
                    "more than {} MiB of cell text",
                    MAX_TEXT_BYTES / (1024 * 1024)
                ),
            });
        }
        Ok(())
    }
}

/// Reads CSV bytes (UTF-8, with or without a byte-order mark).
pub fn read_csv(name: &str, bytes: &[u8]) -> Result<Vec<RawRow>, ReadError> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    if std::str::from_utf8(bytes).is_err() {
        return Err(ReadError::NotUtf8 {
            path: name.to_owned(),
        });
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut budget = Budget {
        path: name,
        cells: 0,
        text: 0,
    };
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        if i >= MAX_ROWS {
            return Err(ReadError::TooManyRows {
                path: name.to_owned(),
            });
        }
        let record = record.map_err(|source| ReadError::Csv {
            path: name.to_owned(),
            source,
        })?;
        let cells: Vec<String> = record.iter().take(MAX_COLUMNS).map(str::to_owned).collect();
        budget.take(cells.len(), cells.iter().map(String::len).sum())?;
        rows.push(RawRow { row: i + 1, cells });
    }
    Ok(rows)
}

/// A spreadsheet cell as text: whole numbers without `.0`, dates as
/// `YYYY-MM-DD`.
fn cell_text(cell: &DataRef<'_>) -> String {
    match cell {
        DataRef::String(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Int(n) => n.to_string(),
        DataRef::Float(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        DataRef::Float(x) => x.to_string(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(dt) => dt
            .as_datetime()
            .map(|d| d.date().format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        DataRef::DateTimeIso(s) => s.chars().take(10).collect(),
        DataRef::DurationIso(s) => s.clone(),
        DataRef::Error(_) | DataRef::Empty => String::new(),
    }
}

/// How long the start of `sharedStrings.xml` searched for its `uniqueCount`
/// may be.
const SST_HEAD_BYTES: usize = 64 * 1024;

/// Checks an `.xlsx` before the spreadsheet reader sees it: at most
/// [`MAX_ZIP_ENTRIES`] parts, at most [`MAX_UNCOMPRESSED_BYTES`] once
/// decompressed (counted while streaming, never trusting the sizes the file
/// declares), and a shared-string table that does not ask for more than
/// [`MAX_SHARED_STRINGS`] entries.
fn check_xlsx_container<R: std::io::Read + std::io::Seek>(
    reader: R,
    shown: &str,
) -> Result<(), ReadError> {
    use std::io::Read;
    let sheet_err = |message: String| ReadError::Sheet {
        path: shown.to_owned(),
        message,
    };
    let expands = |what: String| ReadError::Expands {
        path: shown.to_owned(),
        what,
    };
    let mut zip = zip::ZipArchive::new(reader)
        .map_err(|e| sheet_err(format!("not an .xlsx workbook ({e})")))?;
    if zip.len() > MAX_ZIP_ENTRIES {
        return Err(expands(format!("{} parts", zip.len())));
    }
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| sheet_err(format!("a part of the workbook is damaged ({e})")))?;
        let is_sst = entry
            .name()
            .map(|n| n.to_ascii_lowercase().ends_with("sharedstrings.xml"))
            .unwrap_or(false);
        let mut head: Vec<u8> = Vec::new();
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| sheet_err(format!("a part of the workbook is damaged ({e})")))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > MAX_UNCOMPRESSED_BYTES {
                return Err(expands(format!(
                    "more than {} MiB",
                    MAX_UNCOMPRESSED_BYTES / (1024 * 1024)
                )));
            }
            if is_sst && head.len() < SST_HEAD_BYTES {
                let room = SST_HEAD_BYTES - head.len();
                head.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        if is_sst
            && let Some(count) = unique_count(&head)
            && count > MAX_SHARED_STRINGS
        {
            return Err(ReadError::TooManyCells {
                path: shown.to_owned(),
                what: format!("it declares {count} distinct texts"),
            });
        }
    }
    Ok(())
}

/// The `uniqueCount` attribute of a shared-string table's start tag
/// (`u64::MAX` if it is there but not a number that fits).
fn unique_count(head: &[u8]) -> Option<u64> {
    let key = b"uniqueCount";
    let at = head.windows(key.len()).position(|w| w == key)?;
    let rest = &head[at + key.len()..];
    let rest = rest.strip_prefix(b"=")?;
    let quote = *rest.first()?;
    let digits: Vec<u8> = rest[1..]
        .iter()
        .copied()
        .take_while(|&b| b != quote)
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    Some(
        std::str::from_utf8(&digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(u64::MAX),
    )
}

/// Reads the first sheet of an `.xlsx` workbook, cell by cell: the container
/// is checked first ([`MAX_UNCOMPRESSED_BYTES`], [`MAX_SHARED_STRINGS`]), then
/// cells are streamed and kept only within [`MAX_ROWS`] × [`MAX_COLUMNS`],
/// [`MAX_CELLS`] and [`MAX_TEXT_BYTES`] — the grid the sheet claims
/// (`<dimension ref="A1:XFD1048576">`) is never built.
pub fn read_sheet(path: &Path) -> Result<Vec<RawRow>, ReadError> {
    let shown = path.display().to_string();
    let open = || {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|source| ReadError::Io {
                path: shown.clone(),
                source,
            })
    };
    sheet_rows(open()?, open()?, &shown)
}

/// Reads an uploaded register (the app's 导入户籍 page) from memory: `.csv`
/// or `.xlsx` by `name`'s extension, with the same bounds as [`read_rows`].
/// Nothing touches the disk (a register holds personal data).
pub fn read_upload(name: &str, bytes: &[u8]) -> Result<Vec<RawRow>, ReadError> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge {
            path: name.to_owned(),
            bytes: bytes.len() as u64,
        });
    }
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "csv" => read_csv(name, bytes),
        "xlsx" | "xlsm" => sheet_rows(
            std::io::Cursor::new(bytes),
            std::io::Cursor::new(bytes),
            name,
        ),
        _ => Err(ReadError::UnknownFormat {
            path: name.to_owned(),
        }),
    }
}

/// [`read_sheet`] over two readers of the same workbook: the container is
/// checked through the first, the cells read through the second.
fn sheet_rows<R: std::io::Read + std::io::Seek>(
    check: R,
    cells: R,
    shown: &str,
) -> Result<Vec<RawRow>, ReadError> {
    check_xlsx_container(check, shown)?;
    let shown = shown.to_owned();
    let sheet_err = |message: String| ReadError::Sheet {
        path: shown.clone(),
        message,
    };
    let mut book: calamine::Xlsx<R> =
        calamine::Xlsx::new(cells).map_err(|e: calamine::XlsxError| sheet_err(e.to_string()))?;
    let Some(first) = book.sheet_names().first().cloned() else {
        return Err(sheet_err("it has no sheets".to_owned()));
    };
    let mut cells = book
        .worksheet_cells_reader(&first)
        .map_err(|e| sheet_err(e.to_string()))?;
    let mut budget = Budget {
        path: &shown,
        cells: 0,
        text: 0,
    };
    let mut rows: Vec<RawRow> = Vec::new();
    while let Some(cell) = cells.next_cell().map_err(|e| sheet_err(e.to_string()))? {
        let (r, c) = cell.get_position();
        let (r, c) = (r as usize, c as usize);
        if r >= MAX_ROWS {
            return Err(ReadError::TooManyRows { path: shown });
        }
        if c >= MAX_COLUMNS {
            continue;
        }
        let text = cell_text(cell.get_value());
        if text.is_empty() {
            continue;
        }
        if rows.last().is_none_or(|last| last.row != r + 1) {
            if rows.last().is_some_and(|last| last.row > r + 1) {
                return Err(sheet_err(format!(
                    "row {} comes after row {}",
                    r + 1,
                    rows.len()
                )));
            }
            // Blank rows between filled ones are kept (the plan counts them);
            // at most MAX_ROWS of them, without cells.
            let from = rows.last().map_or(r + 1, |last| last.row + 1);
            rows.extend((from..=r + 1).map(|row| RawRow {
                row,
                cells: Vec::new(),
            }));
        }
        let Some(row) = rows.last_mut() else {
            continue;
        };
        if c < row.cells.len() {
            // A repeated cell reference: the later value wins, as in Excel.
            budget.take(0, text.len())?;
            row.cells[c] = text;
            continue;
        }
        budget.take(c + 1 - row.cells.len(), text.len())?;
        row.cells.resize(c, String::new());
        row.cells.push(text);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use minqing_model::{
        Author, Gender, Id, ImportError, ImportSummary, PersonName, Village, VillageId,
        new_village, plan_import,
    };
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::path::Path;

    const DEV_A: &str = "aaaaaaaaaaaaaaaa";

    fn date(s: &str) -> NaiveDate {
        minqing_model::parse_date(s).unwrap()
    }

    fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    fn author(now_ms: i64) -> Author {
        Author {
            device_id: Id::parse(DEV_A).unwrap(),
            cadre: PersonName::parse("李书记").unwrap(),
            now_ms,
        }
    }

    /// A fresh village `id` made on device A.
    fn village(id: &str, name: &str) -> Village {
        let doc_id = VillageId::new(id).unwrap();
        let doc = new_village(&doc_id, name, None, DEV_A.as_bytes(), 1_000).unwrap();
        let mut v = Village::from_new_doc(doc_id, doc).unwrap();
        v.set_actor(DEV_A.as_bytes());
        v
    }

    fn today() -> NaiveDate {
        date("2026-03-01")
    }

    fn register() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/register.csv")
    }

    fn expected() -> serde_json::Value {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/register.expected.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    /// Imports `path` into `v` and checks the counts against
    /// register.expected.json; returns the summary.
    fn import_and_check(v: &mut Village, path: &Path) -> ImportSummary {
        let exp = expected();
        let rows = read_rows(path).unwrap();
        let plan = plan_import(v, &rows, today()).unwrap();
        let s = plan.summary();
        assert_eq!(s.data_rows as u64, exp["data_rows"].as_u64().unwrap());
        assert_eq!(s.blank_rows as u64, exp["blank_rows"].as_u64().unwrap());
        assert_eq!(s.imported as u64, exp["imported"].as_u64().unwrap());
        assert_eq!(s.rejected.len() as u64, exp["rejected"].as_u64().unwrap());
        assert_eq!(
            s.households_in_file as u64,
            exp["households"].as_u64().unwrap()
        );
        // Households 0017 and 0051 have one member each, on a rejected row.
        assert_eq!(s.households, 118);
        let rows_bad: Vec<u64> = s.rejected.iter().map(|r| r.row as u64).collect();
        let rows_exp: Vec<u64> = exp["bad_rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["row"].as_u64().unwrap())
            .collect();
        assert_eq!(rows_bad, rows_exp);
        let reasons: Vec<&str> = s.rejected.iter().map(|r| r.reason.as_str()).collect();
        let must = [
            "身份证号: 身份证号 check digit is wrong",
            "姓名: the name is empty",
            "联系电话: phone \"12345\"",
            "身份证号: 身份证号 \"37081119\" has 8 characters",
            "性别 ",
            "出生日期 1999-01-01 disagrees with the 身份证号",
            "出生日期: date \"1970-13-45\" is not a date",
        ];
        for (got, want) in reasons.iter().zip(must) {
            assert!(
                got.starts_with(want),
                "{got:?} does not start with {want:?}"
            );
        }
        let before = (v.households().len(), v.residents().len());
        let out = plan.apply(v, &mut rng(3), &author(5_000)).unwrap();
        assert_eq!(out.residents_added.len(), s.residents_new);
        assert_eq!(v.households().len(), before.0 + s.households_new);
        assert_eq!(v.residents().len(), before.1 + s.residents_new);
        s
    }

    #[test]
    fn uploads_read_from_memory_as_files_do() {
        let tables = crate::write::tests::sample();
        let bytes = crate::write::xlsx_bytes(&tables, "r.xlsx").unwrap();
        let rows = read_upload("登记表.XLSX", &bytes).unwrap();
        assert_eq!(rows[0].row, 1);
        assert_eq!(rows[1].cells[0], "李书记");
        let csv = read_upload("r.csv", "\u{feff}姓名,户号\n李秀英,0312\n".as_bytes()).unwrap();
        assert_eq!(csv[1].cells, ["李秀英", "0312"]);
        assert!(matches!(
            read_upload("r.pdf", b"%PDF"),
            Err(ReadError::UnknownFormat { .. })
        ));
        assert!(matches!(
            read_upload("r.xlsx", b"not a zip"),
            Err(ReadError::Sheet { .. })
        ));
    }

    #[test]
    fn the_sample_register_imports_and_reimport_is_a_noop() {
        let mut v = village("V1", "小河村");
        let s = import_and_check(&mut v, &register());
        assert_eq!(
            (s.households_new, s.residents_new, s.unchanged),
            (118, 274, 0)
        );
        // Derived from the 身份证号 where the sheet left them blank.
        let r = v.residents();
        assert!(r.iter().all(|r| r.gender.is_some() && r.birth.is_some()));
        // Row 7: 刘德明, 退役军人、独居老人.
        let liu = r.iter().find(|r| r.name == "刘德明").unwrap();
        assert_eq!(liu.tags, ["独居老人", "退役军人"]);
        assert_eq!(liu.address, "小河村1组3号");
        // Full-width spaces around names are trimmed.
        assert!(r.iter().all(|r| !r.name.contains('\u{3000}')));
        let heads = v.heads();
        let again = import_and_check(&mut v, &register());
        assert_eq!(
            (again.households_new, again.residents_new, again.unchanged),
            (0, 0, 274)
        );
        assert_eq!(v.heads(), heads, "re-import wrote something");
    }

    #[test]
    fn the_same_register_as_xlsx_imports_the_same() {
        let rows = read_rows(&register()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("register.xlsx");
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        for (r, row) in rows.iter().enumerate() {
            for (c, cell) in row.cells.iter().enumerate() {
                if !cell.is_empty() {
                    sheet
                        .write_string(r as u32, c as u16, cell.as_str())
                        .unwrap();
                }
            }
        }
        book.save(&path).unwrap();
        let mut v = village("V1", "小河村");
        let s = import_and_check(&mut v, &path);
        assert_eq!(s.residents_new, 274);
        // And the xlsx after the csv changes nothing.
        let mut w = village("V1", "小河村");
        import_and_check(&mut w, &register());
        let heads = w.heads();
        let again = import_and_check(&mut w, &path);
        assert_eq!(again.residents_new, 0);
        assert_eq!(w.heads(), heads);
    }

    #[test]
    fn dry_run_plans_write_nothing_and_headers_are_recognised() {
        let csv = "户籍登记表（小河村）\n\
                   序号,＊姓名,公民身份号码,手机号,家庭住址,户号,标签,出生日期,其他\n\
                   1,王五,11010519491231002X,138 0013 8000,小河村2组1号,0101,老党员；困难户 独居老人,,x\n\
                   2,王小五,,,小河村2组1号,0101,,2010/5/6,\n\
                   ,,,,,,,,\n\
                   3,赵六,,,,,,,\n";
        let rows = read_csv("t.csv", format!("\u{feff}{csv}").as_bytes()).unwrap();
        let mut v = village("V1", "小河村");
        let heads = v.heads();
        let plan = plan_import(&v, &rows, today()).unwrap();
        assert_eq!(v.heads(), heads);
        let s = plan.summary();
        assert_eq!(
            (s.data_rows, s.blank_rows, s.households, s.residents_new),
            (3, 1, 1, 2)
        );
        assert_eq!(s.rejected.len(), 1);
        assert_eq!(s.rejected[0].row, 6);
        assert!(
            s.rejected[0].reason.starts_with("住址 is empty"),
            "{:?}",
            s.rejected
        );
        let wang = &plan.residents_new[0];
        assert_eq!(wang.fields.phone.as_ref().unwrap().as_str(), "13800138000");
        assert_eq!(wang.fields.gender, Some(Gender::Female));
        let tags: Vec<&str> = wang.tags.iter().map(|t| t.as_str()).collect();
        assert_eq!(tags, ["老党员", "困难户", "独居老人"]);
        assert_eq!(plan.residents_new[1].fields.birth, Some(date("2010-05-06")));
        assert_eq!(
            plan.households[0].new.number.as_ref().unwrap().as_str(),
            "0101"
        );
        assert!(matches!(
            plan_import(
                &v,
                &read_csv("t.csv", "a,b\n1,2\n".as_bytes()).unwrap(),
                today()
            ),
            Err(ImportError::NoHeader)
        ));
    }

    #[test]
    fn csv_that_is_not_utf8_is_refused_with_advice() {
        let err = read_csv("t.csv", &[0xd0, 0xd5, 0xc3, 0xfb]).unwrap_err();
        assert!(matches!(err, ReadError::NotUtf8 { .. }), "{err}");
        assert!(err.to_string().contains("CSV UTF-8"), "{err}");
    }
}
