//! Cleaning of free text typed by cadres: trimming (full-width spaces too),
//! folding full-width digits and letters, and bounded lengths.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_full_width_spaces_and_folds_full_width_digits() {
        assert_eq!(trim("\u{3000} 张三\u{3000}\n"), "张三");
        assert_eq!(fold_full_width("１３８０００Ｘ－"), "138000X-");
        assert_eq!(fold_full_width("小河村"), "小河村");
    }
}
