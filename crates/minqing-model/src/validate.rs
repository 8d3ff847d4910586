//! Checked values: 身份证号 (GB 11643), phone numbers, gender, visit kinds, tags,
//! dates, months and bounded free text. Each type can only be built by parsing,
//! so a value that exists is valid.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::text::{fold_full_width, trim};

/// Why a value typed by a cadre is not accepted. Every message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A 身份证号 that is neither 18 characters nor a 15-digit first-generation number.
    #[error(
        "身份证号 {input:?} has {len} characters: it must have 18 (17 digits and a check digit 0-9 or X), or 15 digits for a first-generation card"
    )]
    IdCardLength {
        /// What was typed.
        input: String,
        /// How many characters it had.
        len: usize,
    },
    /// A 身份证号 with a character other than digits (and a final X).
    #[error("身份证号 {input:?} may contain only digits, and X as the last character")]
    IdCardChars {
        /// What was typed.
        input: String,
    },
    /// The GB 11643 MOD 11-2 check digit does not match.
    #[error(
        "身份证号 check digit is wrong: expected {expected}, got {got}; check the number against the card"
    )]
    IdCardCheckDigit {
        /// The check character the first 17 digits call for.
        expected: char,
        /// The check character typed.
        got: char,
    },
    /// The first two digits are not a province code.
    #[error(
        "身份证号 starts with {code}, which is not a province code (11-91): check the first digits"
    )]
    IdCardRegion {
        /// The first two digits.
        code: String,
    },
    /// The six-digit area code is not a GB/T 2260 administrative division
    /// code, current or historic.
    #[error(
        "身份证号 area code {code} (digits 1-6) is not an administrative division code (GB/T 2260, current or historic): check the first six digits against the card"
    )]
    IdCardArea {
        /// The first six digits.
        code: String,
    },
    /// Digits 7-14 are not a real date, or it is in the future or before 1900.
    #[error(
        "身份证号 birth date {digits} (digits 7-14) is {why}: check the number against the card"
    )]
    IdCardBirth {
        /// The eight birth digits.
        digits: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `--birth` disagrees with the 身份证号.
    #[error("--birth {given} disagrees with the 身份证号, which says {from_card}: fix one of them")]
    BirthMismatch {
        /// Birth date embedded in the card number.
        from_card: NaiveDate,
        /// Birth date given.
        given: NaiveDate,
    },
    /// `--gender` disagrees with the 身份证号's 17th digit.
    #[error(
        "--gender {given} disagrees with the 身份证号, whose 17th digit says {from_card}: fix one of them"
    )]
    GenderMismatch {
        /// Gender from the card number.
        from_card: Gender,
        /// Gender given.
        given: Gender,
    },
    /// Not a mainland mobile or a landline number.
    #[error(
        "phone {input:?} is not a phone number: use an 11-digit mobile number starting 13-19 (13800138000) or a landline with area code (0537-1234567)"
    )]
    Phone {
        /// What was typed.
        input: String,
    },
    /// Not a gender.
    #[error("gender {input:?} is not known: use 男 or 女 (or male/female)")]
    Gender {
        /// What was typed.
        input: String,
    },
    /// Not a visit kind.
    #[error(
        "visit kind {input:?} is not known: use 普遍走访 (regular), 重点走访 (key) or 补访 (makeup)"
    )]
    VisitKind {
        /// What was typed.
        input: String,
    },
    /// Not `YYYY-MM-DD`, or not a real date.
    #[error("date {input:?} is not a date: write it as YYYY-MM-DD, e.g. 2026-03-01")]
    Date {
        /// What was typed.
        input: String,
    },
    /// Not `YYYY-MM`.
    #[error("month {input:?} is not a month: write it as YYYY-MM, e.g. 2026-03")]
    Month {
        /// What was typed.
        input: String,
    },
    /// A date later than today.
    #[error("{field} {date} is in the future (today is {today}): check the date")]
    FutureDate {
        /// Which field.
        field: &'static str,
        /// The date given.
        date: NaiveDate,
        /// Today's date.
        today: NaiveDate,
    },
    /// A required text is empty (after trimming).
    #[error("the {field} is empty: give some text, e.g. {example}")]
    Empty {
        /// Which field.
        field: &'static str,
        /// An example of a good value.
        example: &'static str,
    },
    /// A text longer than its limit.
    #[error("the {field} is {len} characters long; at most {max} are allowed: shorten it")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A text containing control characters (other than newlines in long texts).
    #[error("the {field} contains a control character: remove it")]
    ControlChar {
        /// Which field.
        field: &'static str,
    },
    /// A text containing a bidi override or a zero-width character, which
    /// would change how the text around it is shown.
    #[error(
        "the {field} contains the invisible character U+{code:04X}, which changes how text is shown: remove it"
    )]
    InvisibleChar {
        /// Which field.
        field: &'static str,
        /// The character's code point.
        code: u32,
    },
}

/// Province codes (first two digits of a 身份证号), GB/T 2260.
const PROVINCES: &[u8] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91,
];
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// The GB 11643 MOD 11-2 check character for the first 17 digits.
/// `digits17` must be 17 ASCII digits.
pub fn id_card_check_char(digits17: &str) -> Option<char> {
    if digits17.len() != 17 || !digits17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = digits17
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    Some(char::from(CHECK_CHARS[(sum % 11) as usize]))
}

/// The GB/T 2260 area codes (current and historic) accepted as digits 1-6 of a
/// 身份证号, from `data/area_codes.txt` (sources and licences in its header).
const AREA_CODES_TXT: &str = include_str!("../data/area_codes.txt");

/// The area codes, parsed once and sorted.
fn area_codes() -> &'static [u32] {
    static CODES: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    CODES.get_or_init(|| {
        let mut out = Vec::with_capacity(8_000);
        for line in AREA_CODES_TXT.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_ascii_whitespace();
            // A malformed line in the embedded file would drop its codes; the
            // unit test `area_code_table_is_complete` keeps the file whole.
            let Some(prefix) = parts.next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            out.extend(
                parts
                    .filter_map(|t| t.parse::<u32>().ok())
                    .map(|tail| prefix * 100 + tail),
            );
        }
        out.sort_unstable();
        out.dedup();
        out
    })
}

/// Whether `code` (six digits) is a GB/T 2260 administrative division code,
/// current or historic. Also accepted: `××××01` (市辖区, from 1984), `××××02`
/// (first 城区, 1984), `××××11` (first 郊区, 1984) and `××××20` (市区, 1980 and
/// 1982) under a known prefecture `××××00` — codes printed on real cards that
/// the published lists leave out (the independent implementation we compare
/// with, PyPI `id-validator`, makes the same exception).
pub fn is_area_code(code: &str) -> bool {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(c) = code.parse::<u32>() else {
        return false;
    };
    let known = |c: u32| area_codes().binary_search(&c).is_ok();
    known(c) || (matches!(c % 100, 1 | 2 | 11 | 20) && known(c / 100 * 100))
}

/// How many area codes are known (for docs and tests).
pub fn area_code_count() -> usize {
    area_codes().len()
}

/// The 18-digit form of a 15-digit first-generation 身份证号 (GB 11643-1989):
/// `19` inserted before the two-digit birth year and the MOD 11-2 check
/// character appended. `None` if `digits15` is not 15 ASCII digits.
pub fn upgrade_15_to_18(digits15: &str) -> Option<String> {
    if digits15.len() != 15 || !digits15.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let body = format!("{}19{}", &digits15[..6], &digits15[6..]);
    let check = id_card_check_char(&body)?;
    Some(format!("{body}{check}"))
}

/// A checked 18-character 身份证号 (GB 11643-1999): a GB/T 2260 area code
/// (current or historic), a real birth date not in the future, and a matching
/// MOD 11-2 check character. A 15-digit first-generation number is converted
/// to 18 digits on parsing ([`upgrade_15_to_18`]; callers tell the cadre, see
/// [`IdCardNumber::first_generation`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct IdCardNumber(String);

impl IdCardNumber {
    /// Parses a 身份证号 as typed (full-width digits and a lower-case x are
    /// accepted). `today` bounds the birth date.
    pub fn parse(input: &str, today: NaiveDate) -> Result<IdCardNumber, ValidationError> {
        let s = fold_full_width(trim(input)).to_ascii_uppercase();
        let s = upgrade_15_to_18(&s).unwrap_or(s);
        let len = s.chars().count();
        if len != 18 {
            return Err(ValidationError::IdCardLength {
                input: input.to_owned(),
                len,
            });
        }
        let (body, last) = s.split_at(17);
        if !body.bytes().all(|b| b.is_ascii_digit())
            || !last.bytes().all(|b| b.is_ascii_digit() || b == b'X')
        {
            return Err(ValidationError::IdCardChars {
                input: input.to_owned(),
            });
        }
        let province: u8 = body[..2].parse().unwrap_or(0);
        if !PROVINCES.contains(&province) {
            return Err(ValidationError::IdCardRegion {
                code: body[..2].to_owned(),
            });
        }
        if !is_area_code(&body[..6]) {
            return Err(ValidationError::IdCardArea {
                code: body[..6].to_owned(),
            });
        }
        let digits = &body[6..14];
        let birth = NaiveDate::parse_from_str(digits, "%Y%m%d").map_err(|_| {
            ValidationError::IdCardBirth {
                digits: digits.to_owned(),
                why: "not a real date",
            }
        })?;
        if birth > today {
            return Err(ValidationError::IdCardBirth {
                digits: digits.to_owned(),
                why: "in the future",
            });
        }
        if birth.year() < 1900 {
            return Err(ValidationError::IdCardBirth {
                digits: digits.to_owned(),
                why: "before 1900",
            });
        }
        let expected = id_card_check_char(body).ok_or_else(|| ValidationError::IdCardChars {
            input: input.to_owned(),
        })?;
        let got = last.chars().next().unwrap_or(' ');
        if expected != got {
            return Err(ValidationError::IdCardCheckDigit { expected, got });
        }
        Ok(IdCardNumber(s))
    }

    /// If `input` is a 15-digit first-generation number, it (trimmed, digits
    /// folded): [`IdCardNumber::parse`] converts such a number to 18 digits,
    /// and whoever parsed it tells the cadre so.
    pub fn first_generation(input: &str) -> Option<String> {
        let s = fold_full_width(trim(input));
        (s.len() == 15 && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
    }

    /// The number, 18 characters, upper-case X.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The birth date embedded in digits 7-14.
    pub fn birth(&self) -> NaiveDate {
        // Checked in `parse`; the fallback is never taken.
        NaiveDate::parse_from_str(&self.0[6..14], "%Y%m%d").unwrap_or(NaiveDate::MIN)
    }

    /// The gender given by the 17th digit: odd 男, even 女.
    pub fn gender(&self) -> Gender {
        if self.0.as_bytes()[16] % 2 == 1 {
            Gender::Male
        } else {
            Gender::Female
        }
    }

    /// Checks that `birth` and `gender` given alongside agree with the number.
    pub fn check_consistent(
        &self,
        birth: Option<NaiveDate>,
        gender: Option<Gender>,
    ) -> Result<(), ValidationError> {
        if let Some(given) = birth
            && given != self.birth()
        {
            return Err(ValidationError::BirthMismatch {
                from_card: self.birth(),
                given,
            });
        }
        if let Some(given) = gender
            && given != self.gender()
        {
            return Err(ValidationError::GenderMismatch {
                from_card: self.gender(),
                given,
            });
        }
        Ok(())
    }
}

impl fmt::Display for IdCardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A checked phone number: an 11-digit mainland mobile (1[3-9]…) or a landline
/// with its area code, kept as `0537-1234567`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// Parses a phone number; spaces and hyphens inside a mobile number and a
    /// `+86` prefix are dropped.
    pub fn parse(input: &str) -> Result<Phone, ValidationError> {
        let bad = || ValidationError::Phone {
            input: input.to_owned(),
        };
        let s = fold_full_width(trim(input));
        let s = s.strip_prefix("+86").unwrap_or(&s).trim();
        let digits: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let b = digits.as_bytes();
        if b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) {
            return Ok(Phone(digits));
        }
        if b.first() != Some(&b'0') {
            return Err(bad());
        }
        // Landline: area code 0 + 2 digits (010, 02x) or 0 + 3 digits, then a local
        // number of 7 or 8 digits not starting with 0.
        let area_len = match s.split_once('-') {
            Some((area, _)) => area.len(),
            None if matches!(b.get(1), Some(b'1' | b'2')) => 3,
            None => 4,
        };
        if !(3..=4).contains(&area_len) || b.len() < area_len {
            return Err(bad());
        }
        let (area, local) = digits.split_at(area_len);
        if !(7..=8).contains(&local.len()) || local.starts_with('0') {
            return Err(bad());
        }
        Ok(Phone(format!("{area}-{local}")))
    }

    /// The normalised number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resident's gender, stored and shown as 男 / 女.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Gender {
    /// 男.
    Male,
    /// 女.
    Female,
}

impl Gender {
    /// Parses 男 / 女 or male / female / m / f (any case).
    pub fn parse(input: &str) -> Result<Gender, ValidationError> {
        match trim(input).to_lowercase().as_str() {
            "男" | "male" | "m" => Ok(Gender::Male),
            "女" | "female" | "f" => Ok(Gender::Female),
            _ => Err(ValidationError::Gender {
                input: input.to_owned(),
            }),
        }
    }

    /// The Chinese name stored in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "男",
            Gender::Female => "女",
        }
    }
}

impl fmt::Display for Gender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a visit, stored and shown in Chinese.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VisitKind {
    /// 普遍走访: the monthly round to every household.
    Regular,
    /// 重点走访: a visit to a key group (needy, elderly alone, ...).
    Key,
    /// 补访: a make-up visit for a missed round.
    Makeup,
}

impl VisitKind {
    /// Parses 普遍走访 / 重点走访 / 补访 or regular / key / makeup.
    pub fn parse(input: &str) -> Result<VisitKind, ValidationError> {
        match trim(input).to_lowercase().as_str() {
            "普遍走访" | "regular" => Ok(VisitKind::Regular),
            "重点走访" | "key" => Ok(VisitKind::Key),
            "补访" | "makeup" | "make-up" => Ok(VisitKind::Makeup),
            _ => Err(ValidationError::VisitKind {
                input: input.to_owned(),
            }),
        }
    }

    /// The Chinese name stored in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            VisitKind::Regular => "普遍走访",
            VisitKind::Key => "重点走访",
            VisitKind::Makeup => "补访",
        }
    }
}

impl fmt::Display for VisitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The known tag vocabulary: (stored Chinese name, English alias).
pub const KNOWN_TAGS: &[(&str, &str)] = &[
    ("老党员", "veteran-party-member"),
    ("困难户", "needy"),
    ("留守儿童", "left-behind-child"),
    ("独居老人", "elderly-alone"),
    ("残疾人", "disabled"),
    ("低保户", "subsistence"),
    ("退役军人", "veteran"),
];
/// Longest free tag, in characters.
pub const MAX_TAG_CHARS: usize = 20;

/// A resident tag: one of [`KNOWN_TAGS`] (an English alias is stored as its
/// Chinese name) or a free tag of at most [`MAX_TAG_CHARS`] characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Tag(String);

impl Tag {
    /// Parses a tag.
    pub fn parse(input: &str) -> Result<Tag, ValidationError> {
        let s = trim(input);
        let lower = s.to_lowercase();
        if let Some((zh, _)) = KNOWN_TAGS
            .iter()
            .find(|(zh, en)| *zh == s || en.eq_ignore_ascii_case(&lower))
        {
            return Ok(Tag((*zh).to_owned()));
        }
        let text = check_text("tag", "独居老人", s, MAX_TAG_CHARS, false)?;
        Ok(Tag(text))
    }

    /// Whether this tag is from the known vocabulary.
    pub fn is_known(&self) -> bool {
        KNOWN_TAGS.iter().any(|(zh, _)| *zh == self.0)
    }

    /// The tag as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a calendar date written `YYYY-MM-DD` (exactly that shape).
pub fn parse_date(input: &str) -> Result<NaiveDate, ValidationError> {
    let s = fold_full_width(trim(input));
    let shape_ok = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    shape_ok
        .then(|| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| ValidationError::Date {
            input: input.to_owned(),
        })
}

/// Parses a date and refuses one later than `today`; `field` names it in the error.
pub fn parse_past_date(
    field: &'static str,
    input: &str,
    today: NaiveDate,
) -> Result<NaiveDate, ValidationError> {
    let date = parse_date(input)?;
    if date > today {
        return Err(ValidationError::FutureDate { field, date, today });
    }
    Ok(date)
}

/// A calendar month, written `YYYY-MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// The year.
    pub year: i32,
    /// The month, 1-12.
    pub month: u32,
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(input: &str) -> Result<Month, ValidationError> {
        let s = fold_full_width(trim(input));
        let bad = || ValidationError::Month {
            input: input.to_owned(),
        };
        let shape_ok = s.len() == 7
            && s.bytes().enumerate().all(|(i, b)| {
                if i == 4 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if !shape_ok {
            return Err(bad());
        }
        let year: i32 = s[..4].parse().map_err(|_| bad())?;
        let month: u32 = s[5..].parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Month { year, month })
    }

    /// Whether `date` falls in this month.
    pub fn contains(&self, date: NaiveDate) -> bool {
        date.year() == self.year && date.month() == self.month
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Trims `input` and checks it is non-empty, at most `max` characters and free of
/// control characters (newlines and tabs are allowed when `multiline`; a CR is
/// allowed only as part of CRLF, which is kept as LF) and of invisible
/// characters (bidi overrides, zero-width characters: `text::is_invisible`).
pub fn check_text(
    field: &'static str,
    example: &'static str,
    input: &str,
    max: usize,
    multiline: bool,
) -> Result<String, ValidationError> {
    let s = trim(input);
    if s.is_empty() {
        return Err(ValidationError::Empty { field, example });
    }
    let len = s.chars().count();
    if len > max {
        return Err(ValidationError::TooLong { field, len, max });
    }
    let s = if multiline && s.contains("\r\n") {
        s.replace("\r\n", "\n")
    } else {
        s.to_owned()
    };
    if s.chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\t')))
    {
        return Err(ValidationError::ControlChar { field });
    }
    if let Some(c) = crate::text::find_invisible(&s) {
        return Err(ValidationError::InvisibleChar {
            field,
            code: u32::from(c),
        });
    }
    Ok(s)
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $example:literal, $max:expr, $multiline:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Longest value accepted, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Trims and checks the text (non-empty, bounded, no control characters).
            pub fn parse(input: &str) -> Result<Self, ValidationError> {
                check_text($field, $example, input, $max, $multiline).map($name)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// A person's name (resident or cadre), 1-50 characters.
    PersonName, "name", "--name 张三", 50, false
);
text_type!(
    /// A village's or township's name, 1-50 characters.
    PlaceName, "place name", "--name 小河村", 50, false
);
text_type!(
    /// A household's address, 1-200 characters.
    Address, "address", "--address '小河村三组12号'", 200, false
);
text_type!(
    /// A household number (户号), 1-32 characters.
    HouseholdNumber, "household number", "--number 0012", 32, false
);
text_type!(
    /// A resident's relation to the householder (户主, 配偶, 子女...), 1-20 characters.
    Relation, "relation", "--relation 户主", 20, false
);
text_type!(
    /// A visit note, 1-10,000 characters; newlines allowed.
    Note, "visit note", "--note '了解到老人腿脚不便，需要代购药品'", 10_000, true
);
text_type!(
    /// A demand category (医疗, 就业, 道路...), 1-50 characters.
    Category, "demand category", "--category 医疗", 50, false
);
text_type!(
    /// A demand's text, 1-10,000 characters; newlines allowed.
    DemandText, "demand text", "--text '希望村口路灯尽快修好'", 10_000, true
);
text_type!(
    /// A service team's name, 1-50 characters.
    TeamName, "team name", "--team 第三服务队", 50, false
);

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    }

    /// Builds a valid 身份证号 from 17 digits by computing its check character.
    fn card(body17: &str) -> String {
        format!("{body17}{}", id_card_check_char(body17).unwrap())
    }

    fn check<T: fmt::Display>(got: Result<T, ValidationError>, expected: Result<&str, &str>) {
        match (got, expected) {
            (Ok(v), Ok(e)) => assert_eq!(v.to_string(), e),
            (Err(err), Err(e)) => {
                let msg = err.to_string();
                assert!(msg.contains(e), "error {msg:?} does not contain {e:?}")
            }
            (got, expected) => panic!(
                "got {:?}, expected {expected:?}",
                got.map(|v| v.to_string())
            ),
        }
    }

    #[test]
    fn check_char_matches_known_numbers() {
        // The GB 11643 standard's own example.
        assert_eq!(id_card_check_char("11010519491231002"), Some('X'));
        // Computed by hand: weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2.
        // 4 4 0 5 2 4 1 9 9 0 0 1 0 1 0 0 1 -> sum 28+36+0+25+16+16+2+9+54+0+0+9+0+5+0+0+2 = 202, 202 % 11 = 4 -> '8'.
        assert_eq!(id_card_check_char("44052419900101001"), Some('8'));
        assert_eq!(id_card_check_char("1234"), None);
    }

    #[test]
    fn id_card_numbers() {
        let t = today();
        let c = |s: &str| IdCardNumber::parse(s, t);
        check(c("11010519491231002X"), Ok("11010519491231002X"));
        check(c("11010519491231002x"), Ok("11010519491231002X"));
        check(
            c(" １１０１０５１９４９１２３１００２Ｘ\u{3000}"),
            Ok("11010519491231002X"),
        );
        check(c("440524199001010018"), Ok("440524199001010018"));
        let v = card("37088119800215234");
        check(c(&v), Ok(v.as_str()));
        check(
            c("440524199001010015"),
            Err("check digit is wrong: expected 8, got 5"),
        );
        check(c("11010519491231002"), Err("has 17 characters"));
        check(c("1101051949123100X2"), Err("only digits"));
        check(c(&card("99010519491231002")), Err("not a province code"));
        check(c(&card("11010519490231002")), Err("not a real date"));
        check(c(&card("11010520300101002")), Err("in the future"));
        check(c(&card("11010518800101002")), Err("before 1900"));
    }

    #[test]
    fn id_card_birth_and_gender_consistency() {
        let n = IdCardNumber::parse("11010519491231002X", today()).unwrap();
        assert_eq!(n.birth(), NaiveDate::from_ymd_opt(1949, 12, 31).unwrap());
        assert_eq!(n.gender(), Gender::Female); // 17th digit 2
        let m = IdCardNumber::parse(&card("37088119800215235"), today()).unwrap();
        assert_eq!(m.gender(), Gender::Male);
        assert!(
            n.check_consistent(Some(n.birth()), Some(Gender::Female))
                .is_ok()
        );
        check(
            n.check_consistent(NaiveDate::from_ymd_opt(1950, 1, 1), None)
                .map(|_| ""),
            Err("--birth 1950-01-01 disagrees with the 身份证号, which says 1949-12-31"),
        );
        check(
            n.check_consistent(None, Some(Gender::Male)).map(|_| ""),
            Err("--gender 男 disagrees"),
        );
    }

    #[test]
    fn phones() {
        check(Phone::parse("13800138000"), Ok("13800138000"));
        check(Phone::parse("+86 138 0013 8000"), Ok("13800138000"));
        check(Phone::parse("１９９１２３４５６７８"), Ok("19912345678"));
        check(Phone::parse("0537-1234567"), Ok("0537-1234567"));
        check(Phone::parse("010-87654321"), Ok("010-87654321"));
        check(Phone::parse("05371234567"), Ok("0537-1234567"));
        check(Phone::parse("01087654321"), Ok("010-87654321"));
        check(Phone::parse("12800138000"), Err("is not a phone number"));
        check(Phone::parse("1380013800"), Err("is not a phone number"));
        check(Phone::parse("0537-0234567"), Err("is not a phone number"));
        check(Phone::parse("电话"), Err("is not a phone number"));
        check(Phone::parse(""), Err("is not a phone number"));
    }

    #[test]
    fn genders_kinds_and_tags() {
        check(Gender::parse("男"), Ok("男"));
        check(Gender::parse("Female"), Ok("女"));
        check(Gender::parse("f"), Ok("女"));
        check(Gender::parse("x"), Err("use 男 or 女"));
        check(VisitKind::parse("普遍走访"), Ok("普遍走访"));
        check(VisitKind::parse("key"), Ok("重点走访"));
        check(VisitKind::parse(" MAKEUP "), Ok("补访"));
        check(
            VisitKind::parse("走访"),
            Err("visit kind \"走访\" is not known"),
        );
        check(Tag::parse("独居老人"), Ok("独居老人"));
        check(Tag::parse("Elderly-Alone"), Ok("独居老人"));
        check(Tag::parse("veteran"), Ok("退役军人"));
        check(Tag::parse("\u{3000}种粮大户 "), Ok("种粮大户"));
        check(Tag::parse("  "), Err("the tag is empty"));
        check(Tag::parse(&"长".repeat(21)), Err("at most 20"));
        assert!(Tag::parse("needy").unwrap().is_known());
        assert!(!Tag::parse("种粮大户").unwrap().is_known());
    }

    #[test]
    fn dates_and_months() {
        check(parse_date("2026-03-01"), Ok("2026-03-01"));
        check(parse_date("2026-3-1"), Err("write it as YYYY-MM-DD"));
        check(parse_date("2026-02-30"), Err("is not a date"));
        check(parse_date("2026/03/01"), Err("is not a date"));
        check(parse_date("昨天"), Err("is not a date"));
        check(
            parse_past_date("visit date", "2026-03-02", today()),
            Err("in the future"),
        );
        check(
            parse_past_date("visit date", "2026-03-01", today()),
            Ok("2026-03-01"),
        );
        check(Month::parse("2026-03"), Ok("2026-03"));
        check(Month::parse("2026-13"), Err("write it as YYYY-MM"));
        check(Month::parse("2026-3"), Err("is not a month"));
        assert!(Month::parse("2026-03").unwrap().contains(today()));
    }

    #[test]
    fn area_codes_and_first_generation_numbers() {
        let t = today();
        let c = |s: &str| IdCardNumber::parse(s, t);
        assert_eq!(area_code_count(), 7196, "data/area_codes.txt lost lines");
        assert!(is_area_code("110105"));
        assert!(is_area_code("370881")); // 曲阜市
        assert!(!is_area_code("370899"));
        assert!(is_area_code("440401")); // 珠海 市辖区: not listed, on real cards
        assert!(!is_area_code("999901"));
        check(c(&card("37089919491231002")), Err("area code 370899"));
        // Historic: 370802 (济宁市 市中区, abolished 2013) is still accepted.
        assert!(is_area_code("370802"));
        assert_eq!(
            upgrade_15_to_18("110105491231002").as_deref(),
            Some("11010519491231002X")
        );
        check(c("110105491231002"), Ok("11010519491231002X"));
        assert_eq!(
            IdCardNumber::first_generation(" 110105491231002 ").as_deref(),
            Some("110105491231002")
        );
        assert_eq!(IdCardNumber::first_generation("11010519491231002X"), None);
        check(c("110105491331002"), Err("not a real date"));
        check(c("11010549123100"), Err("has 14 characters"));
    }

    #[test]
    fn texts() {
        check(
            Note::parse("  老人腿脚不便\n需要代购药品\u{3000}"),
            Ok("老人腿脚不便\n需要代购药品"),
        );
        check(Note::parse("\u{3000} "), Err("the visit note is empty"));
        check(PersonName::parse("张\n三"), Err("control character"));
        check(PersonName::parse(&"张".repeat(51)), Err("at most 50"));
        check(Address::parse("小河村三组12号"), Ok("小河村三组12号"));
        check(PersonName::parse("张\u{202e}三"), Err("U+202E"));
        check(PersonName::parse("张\u{200b}三"), Err("U+200B"));
        check(
            Note::parse("甲\u{2066}乙"),
            Err("invisible character U+2066"),
        );
        check(Note::parse("第一行\r\n第二行"), Ok("第一行\n第二行"));
        check(Note::parse("覆盖\r前文"), Err("control character"));
        check(Note::parse("a\u{1b}[2J"), Err("control character"));
        check(Address::parse(&"路".repeat(1_000_000)), Err("at most 200"));
    }
}
