//! A resident's fields beyond name, household and tags (gender, birth date,
//! 身份证号, phone, relation): the one list that writing, reading, merging,
//! importing and the binaries share.
//!
//! Each field is one string register of the resident's record under its key,
//! the same key in `--json`. [`ResidentFields`] holds them checked (the input
//! of `resident add`, `resident edit` and an import), [`ResidentView`] as
//! stored, and [`RESIDENT_FIELDS`] says for each its key, label, import
//! headers and how to read it from text. Adding a field: a member of both
//! structs and an entry in the list here (its checked type in `validate.rs`
//! if it needs a new one, its flag in the CLI's `cli.rs`).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::text::{fold_full_width, trim};
use crate::validate::{Gender, IdCardNumber, Phone, Relation, ValidationError, parse_past_date};

/// A resident's fields, checked; `None` is "not given". Birth date and gender
/// follow the 身份证号 when it is given (see [`ResidentFields::settle_card`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResidentFields {
    /// Gender.
    pub gender: Option<Gender>,
    /// Birth date.
    pub birth: Option<NaiveDate>,
    /// 身份证号.
    pub id_card: Option<IdCardNumber>,
    /// Phone.
    pub phone: Option<Phone>,
    /// Relation to the householder.
    pub relation: Option<Relation>,
}

impl ResidentFields {
    /// Checks a given birth date and gender against the 身份证号, then takes
    /// them from it. Without a card, nothing changes.
    pub fn settle_card(&mut self) -> Result<(), ValidationError> {
        if let Some(card) = &self.id_card {
            card.check_consistent(self.birth, self.gender)?;
            self.gender = Some(card.gender());
            self.birth = Some(card.birth());
        }
        Ok(())
    }

    /// Whether no field is given.
    pub fn is_empty(&self) -> bool {
        *self == ResidentFields::default()
    }
}

/// A resident (居民) as stored: what `--json` prints (the other views are in
/// `view.rs`, which re-exports this one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidentView {
    /// Resident id.
    pub id: String,
    /// Name.
    pub name: String,
    /// 男 / 女, if known.
    pub gender: Option<String>,
    /// Birth date `YYYY-MM-DD`, if known.
    pub birth: Option<String>,
    /// 身份证号, if given.
    pub id_card: Option<String>,
    /// Phone, if given.
    pub phone: Option<String>,
    /// Relation to the householder, if given.
    pub relation: Option<String>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Household id.
    pub household_id: String,
    /// Village id.
    pub village_id: String,
    /// The household's address (empty if the household is unknown).
    pub address: String,
    /// Cadre who added the resident.
    pub cadre: String,
    /// When the resident was added (RFC 3339, UTC).
    pub created_at: String,
    /// If this resident was merged into another (a duplicate), the resident
    /// it now stands for; such residents are left out of lists.
    pub merged_into: Option<String>,
}

/// Reads one field from text into [`ResidentFields`] (`today` bounds dates).
pub type ParseFn = fn(&mut ResidentFields, &str, NaiveDate) -> Result<(), ValidationError>;

/// One field of a resident: its names and how to read, write and show it.
pub struct ResidentField {
    /// The key in the document and in `--json`; the CLI flag is this with
    /// `-` for `_` ([`ResidentField::flag`]).
    pub key: &'static str,
    /// Its label in `resident show`.
    pub label: &'static str,
    /// Import column headers (after removing spaces and `*` marks); the
    /// first names the column in a rejected row's reason.
    pub headers: &'static [&'static str],
    /// Reads the field, as a cadre types it (a flag, a form), into
    /// [`ResidentFields`] (`today` bounds dates).
    pub parse: ParseFn,
    /// Reads it from a register's cell, where that takes more forms than
    /// `parse` (dates written `1990/1/2`); `None`: as `parse`.
    pub parse_cell: Option<ParseFn>,
    /// The field as stored, if given.
    pub get: fn(&ResidentFields) -> Option<String>,
    /// The field in a view.
    pub shown: fn(&ResidentView) -> &Option<String>,
    /// The field in a view, to fill it.
    pub shown_mut: fn(&mut ResidentView) -> &mut Option<String>,
}

impl ResidentField {
    /// The CLI flag, e.g. `--id-card`.
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }

    /// The import column's name in messages (its first header).
    pub fn header(&self) -> &'static str {
        self.headers.first().copied().unwrap_or(self.key)
    }

    /// Reads the field from a register's cell ([`ResidentField::parse_cell`]).
    pub fn read_cell(
        &self,
        fields: &mut ResidentFields,
        cell: &str,
        today: NaiveDate,
    ) -> Result<(), ValidationError> {
        (self.parse_cell.unwrap_or(self.parse))(fields, cell, today)
    }
}

/// Every field of [`ResidentFields`], in the order they are written, shown
/// and read.
pub const RESIDENT_FIELDS: &[ResidentField] = &[
    ResidentField {
        key: "gender",
        label: "性别",
        headers: &["性别"],
        parse: |f, s, _| {
            f.gender = Some(Gender::parse(s)?);
            Ok(())
        },
        parse_cell: None,
        get: |f| f.gender.map(|g| g.as_str().to_owned()),
        shown: |v| &v.gender,
        shown_mut: |v| &mut v.gender,
    },
    ResidentField {
        key: "birth",
        label: "出生",
        headers: &["出生日期", "出生年月日", "生日"],
        parse: |f, s, today| {
            f.birth = Some(parse_past_date("birth date", s, today)?);
            Ok(())
        },
        parse_cell: Some(|f, s, today| {
            f.birth = Some(parse_birth(s, today)?);
            Ok(())
        }),
        get: |f| f.birth.map(|b| b.format("%Y-%m-%d").to_string()),
        shown: |v| &v.birth,
        shown_mut: |v| &mut v.birth,
    },
    ResidentField {
        key: "id_card",
        label: "身份证",
        headers: &[
            "身份证号",
            "身份证号码",
            "公民身份号码",
            "公民身份证号码",
            "证件号码",
        ],
        parse: |f, s, today| {
            f.id_card = Some(IdCardNumber::parse(s, today)?);
            Ok(())
        },
        parse_cell: None,
        get: |f| f.id_card.as_ref().map(|c| c.as_str().to_owned()),
        shown: |v| &v.id_card,
        shown_mut: |v| &mut v.id_card,
    },
    ResidentField {
        key: "phone",
        label: "电话",
        headers: &["联系电话", "手机号", "手机号码", "电话", "联系方式"],
        parse: |f, s, _| {
            f.phone = Some(Phone::parse(s)?);
            Ok(())
        },
        parse_cell: None,
        get: |f| f.phone.as_ref().map(|p| p.as_str().to_owned()),
        shown: |v| &v.phone,
        shown_mut: |v| &mut v.phone,
    },
    ResidentField {
        key: "relation",
        label: "关系",
        headers: &["与户主关系", "与户主的关系", "关系"],
        parse: |f, s, _| {
            f.relation = Some(Relation::parse(s)?);
            Ok(())
        },
        parse_cell: None,
        get: |f| f.relation.as_ref().map(|r| r.as_str().to_owned()),
        shown: |v| &v.relation,
        shown_mut: |v| &mut v.relation,
    },
];

/// The field with this key.
pub fn resident_field(key: &str) -> Option<&'static ResidentField> {
    RESIDENT_FIELDS.iter().find(|f| f.key == key)
}

/// Reads a birth date written `YYYY-MM-DD`, `YYYY/M/D`, `YYYY.M.D` or
/// `YYYYMMDD` (full-width digits too); not after `today`.
pub fn parse_birth(s: &str, today: NaiveDate) -> Result<NaiveDate, ValidationError> {
    let folded = fold_full_width(trim(s));
    let parts: Vec<&str> = folded.split(['-', '/', '.']).collect();
    let normal = match parts.as_slice() {
        [y, m, d] if y.len() == 4 && (1..=2).contains(&m.len()) && (1..=2).contains(&d.len()) => {
            format!("{y}-{m:0>2}-{d:0>2}")
        }
        [all] if all.len() == 8 && all.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{}-{}-{}", &all[..4], &all[4..6], &all[6..])
        }
        _ => folded.clone(),
    };
    parse_past_date("出生日期", &normal, today).map_err(|e| match e {
        ValidationError::Date { .. } => ValidationError::Date {
            input: s.to_owned(),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    }

    #[test]
    fn every_field_reads_back_what_it_writes() {
        let samples = [
            ("gender", "女", "女"),
            ("birth", "1990-01-02", "1990-01-02"),
            ("id_card", "11010519491231002X", "11010519491231002X"),
            ("phone", "13800138000", "13800138000"),
            ("relation", "户主", "户主"),
        ];
        assert_eq!(samples.len(), RESIDENT_FIELDS.len());
        let mut fields = ResidentFields::default();
        for (key, text, stored) in samples {
            let f = resident_field(key).unwrap();
            (f.parse)(&mut fields, text, today()).unwrap();
            assert_eq!((f.get)(&fields).as_deref(), Some(stored), "{key}");
        }
        assert!(!fields.is_empty());
    }

    #[test]
    fn a_register_cell_takes_more_date_forms_than_a_flag() {
        let birth = resident_field("birth").unwrap();
        let mut fields = ResidentFields::default();
        assert!((birth.parse)(&mut fields, "1990/1/2", today()).is_err());
        assert_eq!(fields.birth, None);
        birth.read_cell(&mut fields, "1990/1/2", today()).unwrap();
        assert_eq!(fields.birth, NaiveDate::from_ymd_opt(1990, 1, 2));
        let phone = resident_field("phone").unwrap();
        phone
            .read_cell(&mut fields, "13800138000", today())
            .unwrap();
        assert_eq!((phone.get)(&fields).as_deref(), Some("13800138000"));
    }

    #[test]
    fn keys_are_distinct_and_flags_follow_them() {
        let mut keys: Vec<&str> = RESIDENT_FIELDS.iter().map(|f| f.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), RESIDENT_FIELDS.len());
        assert_eq!(resident_field("id_card").unwrap().flag(), "--id-card");
        assert_eq!(resident_field("phone").unwrap().header(), "联系电话");
    }

    #[test]
    fn the_card_decides_birth_and_gender() {
        let mut f = ResidentFields {
            id_card: Some(IdCardNumber::parse("11010519491231002X", today()).unwrap()),
            ..ResidentFields::default()
        };
        f.settle_card().unwrap();
        assert_eq!(f.gender, Some(Gender::Female));
        assert_eq!(f.birth, NaiveDate::from_ymd_opt(1949, 12, 31));
        f.gender = Some(Gender::Male);
        assert!(matches!(
            f.settle_card(),
            Err(ValidationError::GenderMismatch { .. })
        ));
    }

    #[test]
    fn birth_dates_in_register_forms() {
        for s in [
            "1990-01-02",
            "1990/1/2",
            "1990.1.2",
            "19900102",
            "１９９０-０１-０２",
        ] {
            assert_eq!(
                parse_birth(s, today()),
                Ok(NaiveDate::from_ymd_opt(1990, 1, 2).unwrap()),
                "{s}"
            );
        }
        assert!(matches!(
            parse_birth("2999-01-01", today()),
            Err(ValidationError::FutureDate { .. })
        ));
        assert!(matches!(
            parse_birth("1990-13-45", today()),
            Err(ValidationError::Date { .. })
        ));
    }
}
