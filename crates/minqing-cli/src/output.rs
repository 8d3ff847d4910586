//! Printing: JSON (UTF-8, pretty) for scripts, and compact tables whose columns
//! line up with Chinese text (CJK characters take two columns).
//!
//! Everything a command prints goes through [`line`], [`json`] or [`err`]: in
//! the local service (`minqing app`) a command's output is captured per thread
//! ([`capture`]) and sent back to the CLI that asked, byte for byte.

use std::cell::RefCell;
use std::io::Write;

/// What one command printed while captured.
#[derive(Debug, Default)]
pub struct Captured {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Whether a village that does not load was met (the exit code becomes 1).
    pub unloadable: bool,
}

thread_local! {
    static CAPTURE: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Runs `f` with everything it prints on this thread captured instead of
/// written to the process's stdout and stderr.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Captured) {
    let previous = CAPTURE.with(|c| c.borrow_mut().replace(Captured::default()));
    let out = f();
    let captured = CAPTURE.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous));
    (out, captured.unwrap_or_default())
}

/// Applies `f` to the capture of this thread, if any; `false` when there is none.
pub(crate) fn with_capture(f: impl FnOnce(&mut Captured)) -> bool {
    CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(cap) => {
            f(cap);
            true
        }
        None => false,
    })
}

/// Prints one line to stderr as it is (notices, warnings and errors the
/// command composed; text from elsewhere is escaped by the caller).
pub fn err(text: &str) {
    let captured = with_capture(|c| {
        c.stderr.push_str(text);
        c.stderr.push('\n');
    });
    if !captured {
        eprintln!("{text}");
    }
}

use serde::Serialize;

/// Prints a value as pretty JSON (non-ASCII characters as they are, except
/// control, bidi and zero-width characters, written as `\uXXXX` escapes so
/// that the JSON parses to the same strings and cannot drive a terminal).
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_line(&minqing_model::text::escape_json_for_terminal(&text))
}

/// Prints one line (or several, split by `\n`) to stdout. Control characters,
/// bidi overrides and zero-width characters — which may arrive by sync in any
/// text — are shown as visible escapes (`\u{1b}`), never sent to the terminal.
/// A closed pipe (`minqing ... | head`) is not an error.
pub fn line(text: &str) -> anyhow::Result<()> {
    write_line(&minqing_model::text::escape_for_terminal(text))
}

fn write_line(text: &str) -> anyhow::Result<()> {
    if with_capture(|c| {
        c.stdout.push_str(text);
        c.stdout.push('\n');
    }) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// Display width of a string in a terminal: wide (CJK, full-width) characters
/// count two columns.
pub fn width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = c as u32;
            let wide = matches!(u,
                0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
                | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD);
            if wide { 2 } else { 1 }
        })
        .sum()
}

/// Cuts `s` to at most `max` display columns, marking a cut with `…`.
pub fn clip(s: &str, max: usize) -> String {
    let flat: String = s.chars().map(|c| if c == '\n' { ' ' } else { c }).collect();
    if width(&flat) <= max {
        return flat;
    }
    let mut out = String::new();
    let mut w = 0;
    for c in flat.chars() {
        let cw = width(c.encode_utf8(&mut [0; 4]));
        if w + cw + 1 > max {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// Prints rows as a table with a header; columns padded by display width. An
/// empty table prints `empty` instead.
pub fn table(header: &[&str], rows: &[Vec<String>], empty: &str) -> anyhow::Result<()> {
    if rows.is_empty() {
        return line(empty);
    }
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(width(cell));
            }
        }
    }
    let render = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(cell);
            if i + 1 < widths.len() {
                s.push_str(&" ".repeat(widths[i].saturating_sub(width(cell))));
            }
        }
        s.trim_end().to_owned()
    };
    line(&render(&mut header.iter().copied()))?;
    for row in rows {
        line(&render(&mut row.iter().map(String::as_str)))?;
    }
    Ok(())
}

/// `Some(s)` as is, `None` as `-`.
pub fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_count_chinese_as_two_columns() {
        assert_eq!(width("李秀英"), 6);
        assert_eq!(width("V001"), 4);
        assert_eq!(clip("老人腿脚不便，需要代购药品", 10), "老人腿脚…");
        assert_eq!(clip("短", 10), "短");
    }
}
