//! minqing's spreadsheet edge: household registers read from `.csv` and
//! `.xlsx` files into rows for the model's import planner, and reports (the
//! model's [`minqing_model::Table`]s) drawn as text and written as CSV and
//! `.xlsx`. The only crate that knows calamine, csv, rust_xlsxwriter and zip;
//! the binaries call it with the paths a user gave.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod read;
pub mod render;
pub mod write;

pub use read::{ReadError, read_csv, read_rows, read_sheet, read_upload};
pub use render::{char_width, render_table, render_tables, str_width};
pub use write::{
    ReportOutput, ReportTargets, SheetError, write_csv, write_report, write_xlsx, xlsx_bytes,
};
