//! Dates and times as a cadre reads them: China Standard Time (UTC+8), whatever
//! the laptop's time zone. Views carry times as RFC 3339 strings in UTC
//! (`minqing_model::view`); pages show them through these helpers only.

use chrono::{DateTime, FixedOffset, NaiveDate};

/// China Standard Time, UTC+8 (the offset the reports use:
/// `minqing_model::report::REPORT_UTC_OFFSET_SECS`).
const CHINA: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

fn parse(rfc3339: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.with_timezone(&CHINA))
}

/// `2026-03-02T01:58:00.598Z` → `2026-03-02 09:58` (China time). Text that is
/// not a time is shown as it is.
pub fn datetime(rfc3339: &str) -> String {
    parse(rfc3339).map_or_else(
        || rfc3339.to_owned(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// `2026-03-01T17:00:00Z` → `2026-03-02` (the China date). Text that is not a
/// time is shown as it is.
pub fn date(rfc3339: &str) -> String {
    parse(rfc3339).map_or_else(|| rfc3339.to_owned(), |t| t.format("%Y-%m-%d").to_string())
}

/// The China date of an RFC 3339 time, if it is one.
pub fn naive_date(rfc3339: &str) -> Option<NaiveDate> {
    parse(rfc3339).map(|t| t.date_naive())
}

/// A date as `2026年3月2日`.
pub fn date_zh(d: NaiveDate) -> String {
    d.format("%Y年%-m月%-d日").to_string()
}

/// Unix milliseconds → `2026-03-02 09:58` (China time).
pub fn from_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(String::new, |t| {
        t.with_timezone(&CHINA).format("%Y-%m-%d %H:%M").to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_evening_is_next_china_day() {
        assert_eq!(datetime("2026-03-01T17:30:00.000Z"), "2026-03-02 01:30");
        assert_eq!(date("2026-03-01T17:30:00.000Z"), "2026-03-02");
        assert_eq!(date("2026-03-01T15:59:59.999Z"), "2026-03-01");
        assert_eq!(
            naive_date("2026-03-01T16:00:00Z"),
            NaiveDate::from_ymd_opt(2026, 3, 2)
        );
    }

    #[test]
    fn garbage_is_shown_as_is() {
        assert_eq!(datetime("昨天"), "昨天");
        assert_eq!(date(""), "");
    }

    #[test]
    fn millis_and_chinese_dates() {
        assert_eq!(from_ms(0), "1970-01-01 08:00");
        let d = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        assert_eq!(date_zh(d), "2026年3月2日");
    }
}
