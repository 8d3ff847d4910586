//! Reports as data: a titled [`Table`] of typed [`Cell`]s. The model builds
//! tables (`report`); how they are drawn or written to a file (text, CSV,
//! `.xlsx`) is the edge's business (`minqing-sheet`).

use serde::Serialize;

/// One cell of a table.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A decimal number, shown with two decimals.
    Float(f64),
    /// A ratio 0..1, shown as a percentage with one decimal.
    Percent(f64),
    /// Nothing.
    Empty,
}

impl Cell {
    /// A text cell.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    /// An integer cell from a count.
    pub fn count(n: usize) -> Cell {
        Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// How the cell reads in text and CSV output.
    pub fn display(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Float(x) => format!("{x:.2}"),
            Cell::Percent(x) => format!("{:.1}%", x * 100.0),
            Cell::Empty => String::new(),
        }
    }

    /// Whether the cell is a number (drawn right-aligned).
    pub fn is_number(&self) -> bool {
        matches!(self, Cell::Int(_) | Cell::Float(_) | Cell::Percent(_))
    }
}

/// A titled table with column headers and rows of typed cells.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Table {
    /// The title (the sheet name in xlsx, a heading in text and CSV).
    pub title: String,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows; each as long as `columns` (shorter rows are padded when drawn).
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with a title and headers, and no rows yet.
    pub fn new(title: impl Into<String>, columns: &[&str]) -> Table {
        Table {
            title: title.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn push(&mut self, row: Vec<Cell>) {
        self.rows.push(row);
    }

    /// The cell at (`row`, `col`); [`Cell::Empty`] past the end of a short row
    /// or of the table.
    pub fn cell(&self, row: usize, col: usize) -> &Cell {
        self.rows
            .get(row)
            .and_then(|r| r.get(col))
            .unwrap_or(&Cell::Empty)
    }
}
