//! Cleaning of free text typed by cadres: trimming (full-width spaces too),
//! folding full-width digits and letters, and bounded lengths; the invisible
//! characters refused at entry (bidi overrides, zero-width characters); and
//! escaping for a terminal, so that text arriving by sync cannot rewrite what a
//! cadre or an operator sees.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Trims ASCII and Unicode whitespace, including the full-width space U+3000.
pub fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{3000}')
}

/// Folds full-width ASCII forms (`０１２`, `Ｘ`, `－`) to their ASCII
/// characters, as typed by Chinese input methods in full-width mode.
pub fn fold_full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect()
}

/// Whether `c` changes how the text around it is shown without being seen
/// itself: bidirectional embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069), directional marks (U+200E, U+200F, U+061C), zero-width and
/// invisible characters (U+200B–U+200D, U+2060–U+2064, U+FEFF, U+180E,
/// U+00AD). Names and notes refuse them at entry.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}')
}

/// The first invisible character (see [`is_invisible`]) in `s`, if any.
pub fn find_invisible(s: &str) -> Option<char> {
    s.chars().find(|&c| is_invisible(c))
}

/// Whether a terminal would act on `c` instead of showing it: C0 controls
/// except the newline, DEL, C1 controls (U+0080–U+009F, which include CSI),
/// line and paragraph separators, and the invisible characters.
fn is_unsafe_for_terminal(c: char, keep_newline: bool) -> bool {
    (c.is_control() && !(keep_newline && matches!(c, '\n' | '\t')))
        || matches!(c, '\u{2028}' | '\u{2029}')
        || is_invisible(c)
}

/// Text as it may be printed to a terminal: control characters (ESC, BEL,
/// CR, C1 CSI, ...), bidi overrides and zero-width characters are shown as
/// visible escapes such as `\u{1b}` or `\u{202e}`; everything else, Chinese
/// included, is unchanged. Newlines and tabs are kept (the caller lays lines
/// out; a tab moves the cursor, it rewrites nothing).
/// Stored text is never changed: only what is printed.
pub fn escape_for_terminal(s: &str) -> Cow<'_, str> {
    escape_with(s, true, |out, c| {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    })
}

/// Pretty JSON as it may be printed to a terminal: the same characters as
/// [`escape_for_terminal`] are written as JSON `\uXXXX` escapes (serde_json
/// escapes only C0), so the JSON still parses to the very same strings.
pub fn escape_json_for_terminal(json: &str) -> Cow<'_, str> {
    escape_with(json, true, |out, c| {
        let mut units = [0u16; 2];
        for u in c.encode_utf16(&mut units) {
            let _ = write!(out, "\\u{u:04x}");
        }
    })
}

fn escape_with(s: &str, keep_newline: bool, esc: impl Fn(&mut String, char)) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe_for_terminal(c, keep_newline)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe_for_terminal(c, keep_newline) {
            esc(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A CSV cell safe from formula injection: a text cell beginning with `=`,
/// `+`, `-`, `@`, TAB or CR gets a leading `'`, so that Excel, WPS and
/// LibreOffice show it as text instead of running it (OWASP's advice).
pub fn neutralise_formula(s: &str) -> Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_are_visible_and_json_stays_json() {
        let evil = "张三\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{202e}abc\u{200b}\u{9b}x";
        let shown = escape_for_terminal(evil);
        assert_eq!(
            shown,
            "张三\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{d}\\u{202e}abc\\u{200b}\\u{9b}x"
        );
        assert!(matches!(
            escape_for_terminal("李秀英\n小河村"),
            Cow::Borrowed(_)
        ));
        let json = serde_json::to_string(&evil).unwrap();
        let safe = escape_json_for_terminal(&json);
        assert!(!safe.contains('\u{202e}') && !safe.contains('\u{9b}'));
        let back: String = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, evil);
    }

    #[test]
    fn formulas_are_neutralised_and_other_text_is_not() {
        for (cell, out) in [
            ("=1+2", "'=1+2"),
            ("+86", "'+86"),
            ("-5", "'-5"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("水务局", "水务局"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(neutralise_formula(cell), out);
        }
    }

    #[test]
    fn invisible_characters_are_found() {
        assert_eq!(find_invisible("张\u{202e}三"), Some('\u{202e}'));
        assert_eq!(find_invisible("张\u{200b}三"), Some('\u{200b}'));
        assert_eq!(find_invisible("张三 Zhang"), None);
    }

    #[test]
    fn trims_full_width_spaces_and_folds_full_width_digits() {
        assert_eq!(trim("\u{3000} 张三\u{3000}\n"), "张三");
        assert_eq!(fold_full_width("１３８０００Ｘ－"), "138000X-");
        assert_eq!(fold_full_width("小河村"), "小河村");
    }
}
