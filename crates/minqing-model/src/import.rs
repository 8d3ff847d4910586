//! The import planner for household registers (户籍登记表): rows of text in
//! (read from `.csv` / `.xlsx` by `minqing-sheet`), a plan and the rejected
//! rows out — header recognition, row checks with the model's own checked
//! types, grouping into households, matching against the village so that a
//! re-import changes nothing — and applying the plan.
//!
//! - Headers are recognised by name after removing spaces (full-width too) and
//!   `*` marks: 姓名; 性别; 身份证号 / 身份证号码 / 公民身份号码; 联系电话 /
//!   手机号 / 电话; 住址 / 家庭住址 / 现住址 / 地址; 户号; 与户主关系 / 关系;
//!   人员类别 / 标签 / 类别; 出生日期 / 出生年月日. The header is the first row
//!   (of the first 20) that has 姓名; other columns are ignored. Row numbers
//!   are the spreadsheet's (the header row of a plain file is row 1).
//! - Blank rows are skipped. A bad row is reported with its row number and the
//!   reason and imported no further; good rows are imported.
//! - Households are keyed by 户号 + 住址 (an address is required).
//! - Gender and birth date are taken from the 身份证号 when absent, and must
//!   agree with it when given.
//! - Matching: a row with a 身份证号 matches the village's resident with that
//!   number (or, failing that, one without a number with the same name in the
//!   same household); a row without one matches by name in the same
//!   household. A matched row is left unchanged. A 身份证号 appearing twice in
//!   the file is rejected the second time.

use chrono::NaiveDate;
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::error::ModelError;
use crate::id::Id;
use crate::resident::{RESIDENT_FIELDS, ResidentFields};
use crate::text::{fold_full_width, trim};
use crate::validate::{Address, HouseholdNumber, IdCardNumber, PersonName, Tag, ValidationError};
use crate::village::{Author, NewHousehold, NewResident, Village};

/// Rows searched for the header.
pub const HEADER_SEARCH_ROWS: usize = 20;

/// Errors planning an import (bad rows are not errors: see [`RejectedRow`]).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No row with a 姓名 header.
    #[error(
        "no header row with 姓名 in the first {HEADER_SEARCH_ROWS} rows: the register needs a 姓名 column (and 住址 or 家庭住址)"
    )]
    NoHeader,
    /// A header row without an address column.
    #[error(
        "the header row {row} has no 住址 / 家庭住址 column: residents are grouped into households by address"
    )]
    NoAddressColumn {
        /// The header's row number.
        row: usize,
    },
    /// The village document failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// One row of a sheet: its spreadsheet row number and its cells as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRow {
    /// Row number as the spreadsheet shows it (1-based).
    pub row: usize,
    /// Cells, as text.
    pub cells: Vec<String>,
}

/// The columns the importer knows: the name, the household's, the tags, and
/// each resident field ([`RESIDENT_FIELDS`], by index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Column {
    Name,
    Address,
    Number,
    Tags,
    Field(usize),
}

impl Column {
    fn header(self) -> &'static str {
        match self {
            Column::Name => "姓名",
            Column::Address => "住址",
            Column::Number => "户号",
            Column::Tags => "人员类别",
            Column::Field(i) => RESIDENT_FIELDS.get(i).map_or("", |f| f.header()),
        }
    }

    /// The column of the resident field `key`.
    fn of(key: &str) -> Option<Column> {
        RESIDENT_FIELDS
            .iter()
            .position(|f| f.key == key)
            .map(Column::Field)
    }
}

fn recognise(header: &str) -> Option<Column> {
    let h: String = fold_full_width(header)
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '*' | '\u{3000}'))
        .collect();
    Some(match h.as_str() {
        "姓名" | "居民姓名" | "名字" => Column::Name,
        "住址" | "家庭住址" | "现住址" | "地址" | "居住地址" => Column::Address,
        "户号" | "户编号" => Column::Number,
        "人员类别" | "标签" | "类别" | "人员类型" => Column::Tags,
        h => {
            return RESIDENT_FIELDS
                .iter()
                .position(|f| f.headers.contains(&h))
                .map(Column::Field);
        }
    })
}

/// A row that was not imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejectedRow {
    /// Spreadsheet row number.
    pub row: usize,
    /// Why, naming the column.
    pub reason: String,
}

/// A household referenced by good rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedHousehold {
    /// The household to add (or that matched).
    pub new: NewHousehold,
    /// The village's household it matched, if any.
    pub existing: Option<Id>,
    /// First row that named it.
    pub first_row: usize,
}

/// A resident to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedResident {
    /// Spreadsheet row number.
    pub row: usize,
    /// Index into [`ImportPlan::households`].
    pub household: usize,
    /// Name.
    pub name: PersonName,
    /// The other fields (gender and birth date from the card when absent).
    pub fields: ResidentFields,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// What an import would do; applied by [`ImportPlan::apply`] (not at all
/// on a dry run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportPlan {
    /// Rows with data (after the header, blank rows excluded).
    pub data_rows: usize,
    /// Blank rows skipped.
    pub blank_rows: usize,
    /// Distinct households (户号 + 住址) named by any data row, good or bad.
    pub households_in_file: usize,
    /// Households named by good rows, new and matched.
    pub households: Vec<PlannedHousehold>,
    /// Residents to add.
    pub residents_new: Vec<PlannedResident>,
    /// Rows matching a resident already in the village (left unchanged).
    pub unchanged: Vec<usize>,
    /// Rows not imported.
    pub rejected: Vec<RejectedRow>,
    /// 15-digit first-generation 身份证号 converted to 18 digits.
    pub converted: Vec<ConvertedCard>,
}

/// A 15-digit first-generation 身份证号 read from a row and kept as its
/// 18-digit form (GB 11643: `19` inserted in the year, check character added).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConvertedCard {
    /// Spreadsheet row number.
    pub row: usize,
    /// The 15 digits in the file.
    pub from: String,
    /// The 18-character number stored.
    pub to: String,
}

/// The serialisable summary of a plan (what `--json` prints).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Rows with data.
    pub data_rows: usize,
    /// Blank rows skipped.
    pub blank_rows: usize,
    /// Distinct households (户号 + 住址) named by any data row, good or bad.
    pub households_in_file: usize,
    /// Households named by good rows (a household whose rows were all
    /// rejected is not imported).
    pub households: usize,
    /// Of those, new.
    pub households_new: usize,
    /// Residents added (or to add, on a dry run).
    pub residents_new: usize,
    /// Rows matching residents already there.
    pub unchanged: usize,
    /// Rows imported or matched.
    pub imported: usize,
    /// Rejected rows with reasons.
    pub rejected: Vec<RejectedRow>,
    /// 15-digit 身份证号 converted to 18 digits (on imported rows).
    pub converted: Vec<ConvertedCard>,
}

impl ImportPlan {
    /// Households to add.
    pub fn households_new(&self) -> usize {
        self.households
            .iter()
            .filter(|h| h.existing.is_none())
            .count()
    }

    /// The summary.
    pub fn summary(&self) -> ImportSummary {
        ImportSummary {
            data_rows: self.data_rows,
            blank_rows: self.blank_rows,
            households_in_file: self.households_in_file,
            households: self.households.len(),
            households_new: self.households_new(),
            residents_new: self.residents_new.len(),
            unchanged: self.unchanged.len(),
            imported: self.residents_new.len() + self.unchanged.len(),
            rejected: self.rejected.clone(),
            converted: self.converted.clone(),
        }
    }

    /// Whether applying the plan would write nothing.
    pub fn is_noop(&self) -> bool {
        self.residents_new.is_empty() && self.households_new() == 0
    }
}

/// Splits a tag cell on 、，, ; ； / and spaces.
pub fn split_tags(cell: &str) -> Vec<&str> {
    cell.split(|c: char| {
        matches!(c, '、' | '，' | ',' | ';' | '；' | '/' | '／') || c.is_whitespace()
    })
    .map(trim)
    .filter(|s| !s.is_empty())
    .collect()
}

struct Columns(BTreeMap<Column, usize>);

impl Columns {
    fn get<'r>(&self, row: &'r RawRow, field: Column) -> Option<&'r str> {
        let i = *self.0.get(&field)?;
        let v = trim(row.cells.get(i)?);
        (!v.is_empty()).then_some(v)
    }
}

/// A checked row.
struct GoodRow {
    household_key: (String, String),
    household: NewHousehold,
    resident: PlannedResident,
}

fn check_row(cols: &Columns, row: &RawRow, today: NaiveDate) -> Result<GoodRow, String> {
    let col = |c: Column| cols.get(row, c);
    let tag = |c: Column| move |e: ValidationError| format!("{}: {e}", c.header());
    let name = PersonName::parse(col(Column::Name).unwrap_or("")).map_err(tag(Column::Name))?;
    let mut fields = ResidentFields::default();
    for (i, f) in RESIDENT_FIELDS.iter().enumerate() {
        if let Some(text) = col(Column::Field(i)) {
            f.read_cell(&mut fields, text, today)
                .map_err(tag(Column::Field(i)))?;
        }
    }
    if let Some(card) = &fields.id_card {
        if let Some(g) = fields.gender
            && g != card.gender()
        {
            return Err(format!(
                "性别 {g} disagrees with the 身份证号, whose 17th digit says {}: fix one of them",
                card.gender()
            ));
        }
        if let Some(b) = fields.birth
            && b != card.birth()
        {
            return Err(format!(
                "出生日期 {b} disagrees with the 身份证号, which says {}: fix one of them",
                card.birth()
            ));
        }
        fields.gender = Some(card.gender());
        fields.birth = Some(card.birth());
    }
    let tags = split_tags(col(Column::Tags).unwrap_or(""))
        .into_iter()
        .map(Tag::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(tag(Column::Tags))?;
    let address = Address::parse(col(Column::Address).unwrap_or("")).map_err(|e| match e {
        ValidationError::Empty { .. } => {
            "住址 is empty: every resident needs a household address (住址 / 家庭住址)".to_owned()
        }
        other => format!("{}: {other}", Column::Address.header()),
    })?;
    let number = col(Column::Number)
        .map(HouseholdNumber::parse)
        .transpose()
        .map_err(tag(Column::Number))?;
    let key = (
        number
            .as_ref()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default(),
        address.as_str().to_owned(),
    );
    Ok(GoodRow {
        household_key: key,
        household: NewHousehold { address, number },
        resident: PlannedResident {
            row: row.row,
            household: 0,
            name,
            fields,
            tags,
        },
    })
}

/// Plans an import of `rows` into `village`: checks every row, groups
/// households, matches what is already there. Writes nothing.
pub fn plan_import(
    village: &Village,
    rows: &[RawRow],
    today: NaiveDate,
) -> Result<ImportPlan, ImportError> {
    let (header_at, cols) = rows
        .iter()
        .take(HEADER_SEARCH_ROWS)
        .enumerate()
        .find_map(|(i, r)| {
            let mut map = BTreeMap::new();
            for (c, h) in r.cells.iter().enumerate() {
                if let Some(f) = recognise(h) {
                    map.entry(f).or_insert(c);
                }
            }
            map.contains_key(&Column::Name).then_some((i, Columns(map)))
        })
        .ok_or(ImportError::NoHeader)?;
    if !cols.0.contains_key(&Column::Address) {
        return Err(ImportError::NoAddressColumn {
            row: rows[header_at].row,
        });
    }
    // What the village already holds.
    let mut households_by_key: BTreeMap<(String, String), Id> = BTreeMap::new();
    for h in village.households() {
        if let Ok(id) = Id::parse(&h.id) {
            households_by_key
                .entry((h.number.unwrap_or_default(), h.address))
                .or_insert(id);
        }
    }
    let residents = village.residents();
    let mut by_card: BTreeMap<String, ()> = BTreeMap::new();
    // (household id, name) of residents without a card, and with one.
    let mut by_name_no_card: BTreeMap<(String, String), ()> = BTreeMap::new();
    let mut by_name: BTreeMap<(String, String), ()> = BTreeMap::new();
    for r in &residents {
        match &r.id_card {
            Some(c) => {
                by_card.insert(c.clone(), ());
            }
            None => {
                by_name_no_card.insert((r.household_id.clone(), r.name.clone()), ());
            }
        }
        by_name.insert((r.household_id.clone(), r.name.clone()), ());
    }

    let mut plan = ImportPlan {
        data_rows: 0,
        blank_rows: 0,
        households_in_file: 0,
        households: Vec::new(),
        residents_new: Vec::new(),
        unchanged: Vec::new(),
        rejected: Vec::new(),
        converted: Vec::new(),
    };
    let mut household_index: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut cards_in_file: BTreeMap<String, usize> = BTreeMap::new();
    let mut names_in_file: BTreeMap<(usize, String), usize> = BTreeMap::new();
    let mut keys_in_file: std::collections::BTreeSet<(String, String)> = Default::default();
    for row in &rows[header_at + 1..] {
        if row.cells.iter().all(|c| trim(c).is_empty()) {
            plan.blank_rows += 1;
            continue;
        }
        plan.data_rows += 1;
        if let Some(address) = cols.get(row, Column::Address) {
            let number = cols.get(row, Column::Number).unwrap_or("");
            keys_in_file.insert((number.to_owned(), address.to_owned()));
        }
        let mut good = match check_row(&cols, row, today) {
            Ok(g) => g,
            Err(reason) => {
                plan.rejected.push(RejectedRow {
                    row: row.row,
                    reason,
                });
                continue;
            }
        };
        if let Some(card) = &good.resident.fields.id_card
            && let Some(first) = cards_in_file.get(card.as_str())
        {
            plan.rejected.push(RejectedRow {
                row: row.row,
                reason: format!("身份证号 {card} already appears on row {first}"),
            });
            continue;
        }
        let existing_household = households_by_key.get(&good.household_key).cloned();
        let hi = *household_index
            .entry(good.household_key.clone())
            .or_insert_with(|| {
                plan.households.push(PlannedHousehold {
                    new: good.household.clone(),
                    existing: existing_household.clone(),
                    first_row: row.row,
                });
                plan.households.len() - 1
            });
        good.resident.household = hi;
        let name = good.resident.name.as_str().to_owned();
        let in_village = |map: &BTreeMap<(String, String), ()>| {
            existing_household
                .as_ref()
                .is_some_and(|h| map.contains_key(&(h.to_string(), name.clone())))
        };
        let matched = match &good.resident.fields.id_card {
            Some(card) => by_card.contains_key(card.as_str()) || in_village(&by_name_no_card),
            None => in_village(&by_name),
        };
        if let Some(card) = &good.resident.fields.id_card {
            cards_in_file.insert(card.as_str().to_owned(), row.row);
        } else if let Some(first) = names_in_file.get(&(hi, name.clone())) {
            plan.rejected.push(RejectedRow {
                row: row.row,
                reason: format!(
                    "姓名 {name} without a 身份证号 already appears in this household on row {first}"
                ),
            });
            continue;
        }
        names_in_file.entry((hi, name)).or_insert(row.row);
        if let (Some(from), Some(card)) = (
            Column::of("id_card")
                .and_then(|c| cols.get(row, c))
                .and_then(IdCardNumber::first_generation),
            &good.resident.fields.id_card,
        ) {
            plan.converted.push(ConvertedCard {
                row: row.row,
                from,
                to: card.as_str().to_owned(),
            });
        }
        if matched {
            plan.unchanged.push(row.row);
        } else {
            plan.residents_new.push(good.resident);
        }
    }
    plan.households_in_file = keys_in_file.len();
    Ok(plan)
}

/// What applying a plan added.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportOutcome {
    /// Households added.
    pub households_added: Vec<Id>,
    /// Residents added.
    pub residents_added: Vec<Id>,
}

impl ImportPlan {
    /// Applies this plan (made by [`plan_import`] for `village`): adds the new
    /// households, then the new residents (one change each).
    pub fn apply(
        &self,
        village: &mut Village,
        rng: &mut (impl Rng + ?Sized),
        author: &Author,
    ) -> Result<ImportOutcome, ModelError> {
        let mut out = ImportOutcome::default();
        let mut ids: Vec<Id> = Vec::with_capacity(self.households.len());
        for h in &self.households {
            let id = match &h.existing {
                Some(id) => id.clone(),
                None => {
                    let id = village.add_household(rng, author, &h.new)?;
                    out.households_added.push(id.clone());
                    id
                }
            };
            ids.push(id);
        }
        for r in &self.residents_new {
            let Some(household) = ids.get(r.household).cloned() else {
                continue;
            };
            let new = NewResident {
                household,
                name: r.name.clone(),
                fields: r.fields.clone(),
                tags: r.tags.clone(),
            };
            out.residents_added
                .push(village.add_resident(rng, author, &new)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use crate::validate::Gender;

    fn today() -> NaiveDate {
        date("2026-03-01")
    }

    /// Rows of comma-separated cells, numbered from 1 (the tests' registers
    /// have no quoted cells; reading real files is `minqing-sheet`'s).
    fn rows_of(text: &str) -> Vec<RawRow> {
        text.lines()
            .enumerate()
            .map(|(i, line)| RawRow {
                row: i + 1,
                cells: line.split(',').map(str::to_owned).collect(),
            })
            .collect()
    }

    #[test]
    fn dry_run_plans_write_nothing_and_headers_are_recognised() {
        let csv = "户籍登记表（小河村）\n\
                   序号,＊姓名,公民身份号码,手机号,家庭住址,户号,标签,出生日期,其他\n\
                   1,王五,11010519491231002X,138 0013 8000,小河村2组1号,0101,老党员；困难户 独居老人,,x\n\
                   2,王小五,,,小河村2组1号,0101,,2010/5/6,\n\
                   ,,,,,,,,\n\
                   3,赵六,,,,,,,\n";
        let rows = rows_of(csv);
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
            plan_import(&v, &rows_of("a,b\n1,2\n"), today()),
            Err(ImportError::NoHeader)
        ));
    }

    #[test]
    fn residents_without_cards_match_by_name_in_household() {
        let csv = "姓名,住址\n张三,小河村1号\n张三,小河村1号\n李四,小河村1号\n";
        let rows = rows_of(csv);
        let mut v = village("V1", "小河村");
        let plan = plan_import(&v, &rows, today()).unwrap();
        assert_eq!(plan.residents_new.len(), 2);
        assert_eq!(plan.rejected.len(), 1);
        assert!(
            plan.rejected[0]
                .reason
                .contains("already appears in this household on row 2")
        );
        plan.apply(&mut v, &mut rng(1), &author(DEV_A, "李书记", 1))
            .unwrap();
        let again = plan_import(&v, &rows, today()).unwrap();
        assert!(again.is_noop());
        assert_eq!(again.unchanged, [2, 4]);
        assert_eq!(
            split_tags(" 老党员、困难户，低保户,a;b／c / d "),
            ["老党员", "困难户", "低保户", "a", "b", "c", "d"]
        );
    }
}
