//! Resident search: by name, by pinyin (initials `lxy`, whole syllables
//! `lixiuying` or any mix `lixy` find 李秀英, every reading of a 多音字 counts),
//! by 身份证号 or phone prefix, by address; filtered by tag.
//!
//! The index is built once from the residents held (the pinyin readings of
//! every name looked up then), so a search is one pass over plain data: six
//! searches over 5,000 residents took 31 ms in all in an unoptimised test
//! build (`cargo test -p minqing-web five_thousand -- --nocapture`).

use std::collections::BTreeSet;

use minqing_model::{ReadVillage, ResidentView};
use pinyin::ToPinyinMulti;

use crate::names::village_name;

/// The longest query matched against pinyin (a name is at most 50 characters).
const MAX_PINYIN_QUERY: usize = 64;

/// One resident in the index.
#[derive(Clone, Debug)]
struct Entry {
    resident: ResidentView,
    village_name: String,
    name_lower: String,
    address_lower: String,
    /// Per character of the name: its readings (plain pinyin, lower case);
    /// a character without pinyin stands for itself, lower-cased.
    readings: Vec<Vec<String>>,
}

/// A search result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchHit<'a> {
    /// The resident.
    pub resident: &'a ResidentView,
    /// The name of the resident's village.
    pub village_name: &'a str,
    /// What matched (姓名, 拼音, 身份证号, 电话, 地址, 标签).
    pub matched: &'static str,
}

/// The result of a search: the best `limit` hits and how many matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchResult<'a> {
    /// The hits shown, best first.
    pub hits: Vec<SearchHit<'a>>,
    /// How many residents matched in all.
    pub total: usize,
}

/// The residents of the villages held, ready to search.
#[derive(Clone, Debug, Default)]
pub struct SearchIndex {
    entries: Vec<Entry>,
    tags: BTreeSet<String>,
}

impl SearchIndex {
    /// Indexes the residents of `villages` (merged duplicates left out, as in
    /// `resident list`).
    pub fn new<V: ReadVillage + ?Sized>(villages: &[&V]) -> SearchIndex {
        SearchIndex::from_residents(villages.iter().flat_map(|v| {
            let name = village_name(v);
            v.residents()
                .iter()
                .map(|r| (r.clone(), name.clone()))
                .collect::<Vec<_>>()
        }))
    }

    /// Indexes residents given with their village's name.
    pub fn from_residents(residents: impl IntoIterator<Item = (ResidentView, String)>) -> Self {
        let mut index = SearchIndex::default();
        for (resident, village_name) in residents {
            index.tags.extend(resident.tags.iter().cloned());
            index.entries.push(Entry {
                name_lower: resident.name.to_lowercase(),
                address_lower: resident.address.to_lowercase(),
                readings: readings(&resident.name),
                resident,
                village_name,
            });
        }
        index
    }

    /// How many residents are indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no resident is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every tag some resident has, sorted (for the tag filter).
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(String::as_str)
    }

    /// The resident with this full id, if indexed.
    pub fn get(&self, id: &str) -> Option<SearchHit<'_>> {
        self.entries
            .iter()
            .find(|e| e.resident.id == id)
            .map(|e| SearchHit {
                resident: &e.resident,
                village_name: &e.village_name,
                matched: "",
            })
    }

    /// Residents matching `query` (empty: everyone) and carrying `tag` (if
    /// given), best first: exact name, name prefix, name part, pinyin from the
    /// start of the name, pinyin elsewhere in it, 身份证号 or phone prefix,
    /// address; then by village and name. At most `limit` hits are returned.
    pub fn search(&self, query: &str, tag: Option<&str>, limit: usize) -> SearchResult<'_> {
        let query = query.trim().to_lowercase();
        let pinyin_query: Option<Vec<u8>> = (!query.is_empty()
            && query.len() <= MAX_PINYIN_QUERY
            && query.bytes().all(|b| b.is_ascii_lowercase()))
        .then(|| query.bytes().collect());
        let mut hits: Vec<(u8, &Entry, &'static str)> = self
            .entries
            .iter()
            .filter(|e| tag.is_none_or(|t| e.resident.tags.iter().any(|x| x == t)))
            .filter_map(|e| {
                if query.is_empty() {
                    return Some((0, e, if tag.is_some() { "标签" } else { "" }));
                }
                rank(e, &query, pinyin_query.as_deref()).map(|(r, m)| (r, e, m))
            })
            .collect();
        let total = hits.len();
        hits.sort_by(|a, b| {
            (a.0, &a.1.village_name, &a.1.resident.name, &a.1.resident.id).cmp(&(
                b.0,
                &b.1.village_name,
                &b.1.resident.name,
                &b.1.resident.id,
            ))
        });
        hits.truncate(limit);
        SearchResult {
            hits: hits
                .into_iter()
                .map(|(_, e, matched)| SearchHit {
                    resident: &e.resident,
                    village_name: &e.village_name,
                    matched,
                })
                .collect(),
            total,
        }
    }
}

/// How well an entry matches (lower is better) and what matched.
fn rank(e: &Entry, query: &str, pinyin_query: Option<&[u8]>) -> Option<(u8, &'static str)> {
    if e.name_lower == query {
        return Some((0, "姓名"));
    }
    if e.name_lower.starts_with(query) {
        return Some((1, "姓名"));
    }
    if e.name_lower.contains(query) {
        return Some((2, "姓名"));
    }
    if let Some(q) = pinyin_query {
        match pinyin_match(q, &e.readings) {
            Some(0) => return Some((3, "拼音")),
            Some(_) => return Some((4, "拼音")),
            None => {}
        }
    }
    let digits = query.trim_start_matches("+86");
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == 'x') {
        if e.resident
            .id_card
            .as_deref()
            .is_some_and(|c| c.to_lowercase().starts_with(digits))
        {
            return Some((5, "身份证号"));
        }
        if e.resident
            .phone
            .as_deref()
            .is_some_and(|p| p.replace('-', "").starts_with(&digits.replace('-', "")))
        {
            return Some((5, "电话"));
        }
    }
    if e.address_lower.contains(query) {
        return Some((6, "地址"));
    }
    None
}

/// The pinyin readings of each character of `name`.
fn readings(name: &str) -> Vec<Vec<String>> {
    name.chars()
        .map(|c| match c.to_pinyin_multi() {
            Some(multi) => {
                let mut all: Vec<String> =
                    multi.into_iter().map(|p| p.plain().to_owned()).collect();
                all.dedup();
                all
            }
            None => vec![c.to_lowercase().collect()],
        })
        .collect()
}

/// Whether `query` (ASCII lower-case letters) spells consecutive characters
/// of a name, each character by its initial, its whole syllable or any
/// beginning of it, under any of its readings. Returns the index of the first
/// character of the earliest match.
///
/// A dynamic programme over (character, query position), the positions
/// reached kept as bits of a `u128` (a query is at most [`MAX_PINYIN_QUERY`]
/// letters): no allocation, at most 50 × 65 steps per start.
fn pinyin_match(query: &[u8], readings: &[Vec<String>]) -> Option<usize> {
    const _: () = assert!(
        MAX_PINYIN_QUERY < 128,
        "positions 0..=len must fit in a u128"
    );
    let first = *query.first()?;
    let done = 1u128 << query.len();
    (0..readings.len()).find(|&start| {
        if !readings[start]
            .iter()
            .any(|r| r.as_bytes().first() == Some(&first))
        {
            return false;
        }
        // Bit q set: the query's first q bytes are spelt by the characters so far.
        let mut reach: u128 = 1;
        for chars in &readings[start..] {
            let mut next: u128 = 0;
            for q in (0..query.len()).filter(|q| reach & (1u128 << q) != 0) {
                for reading in chars {
                    let bytes = reading.as_bytes();
                    let most = bytes.len().min(query.len() - q);
                    for k in 1..=most {
                        if bytes[k - 1] != query[q + k - 1] {
                            break;
                        }
                        next |= 1u128 << (q + k);
                    }
                }
            }
            if next & done != 0 {
                return true;
            }
            if next == 0 {
                return false;
            }
            reach = next;
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::resident;

    fn index(people: &[(&str, &str, &[&str])]) -> SearchIndex {
        SearchIndex::from_residents(people.iter().enumerate().map(|(i, (name, addr, tags))| {
            let mut r = resident(&format!("r{i:015}"), name, addr);
            r.tags = tags.iter().map(|t| (*t).to_owned()).collect();
            r.id_card = Some(format!("37081119580315{i:04}"));
            r.phone = Some(format!("1390537{i:04}"));
            (r, "小河村".to_owned())
        }))
    }

    fn names(idx: &SearchIndex, q: &str, tag: Option<&str>) -> Vec<String> {
        idx.search(q, tag, 50)
            .hits
            .iter()
            .map(|h| h.resident.name.clone())
            .collect()
    }

    fn people() -> SearchIndex {
        index(&[
            ("李秀英", "小河村三组12号", &["独居老人", "老党员"]),
            ("王建国", "小河村一组3号", &["退役军人"]),
            ("李小燕", "小河村二组8号", &[]),
            ("张长顺", "东湾村五组1号", &["困难户"]),
            ("刘晓宇", "小河村四组2号", &["留守儿童"]),
        ])
    }

    #[test]
    fn pinyin_initials_find_the_name() {
        let idx = people();
        // 李秀英 and 李小燕 and 刘晓宇 all spell l-x-y.
        let found = names(&idx, "lxy", None);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.contains(&"李秀英".to_owned()));
        assert_eq!(names(&idx, "LXY", None).len(), 3, "upper case folds");
        assert_eq!(names(&idx, "lixiuying", None), ["李秀英"]);
        // A syllable may be cut short anywhere, so li-x-y spells all three.
        assert_eq!(names(&idx, "lixy", None).len(), 3);
        assert_eq!(names(&idx, "lixiuy", None), ["李秀英"]);
        assert_eq!(names(&idx, "xiuy", None), ["李秀英"], "given name alone");
        assert!(names(&idx, "lyx", None).is_empty(), "order matters");
        assert!(names(&idx, "lxyz", None).is_empty(), "no extra letters");
    }

    #[test]
    fn every_reading_of_a_heteronym_counts() {
        let idx = people();
        // 长 reads chang and zhang.
        assert_eq!(names(&idx, "zcs", None), ["张长顺"]);
        assert_eq!(names(&idx, "zzs", None), ["张长顺"]);
        assert_eq!(names(&idx, "zhangchangshun", None), ["张长顺"]);
    }

    #[test]
    fn name_id_card_phone_address_and_tag() {
        let idx = people();
        assert_eq!(names(&idx, "李秀英", None), ["李秀英"]);
        assert_eq!(names(&idx, "李", None), ["李小燕", "李秀英"]);
        assert_eq!(names(&idx, "370811195803150001", None), ["王建国"]);
        assert_eq!(names(&idx, "3708111958", None).len(), 5, "id prefix");
        assert_eq!(names(&idx, "13905370003", None), ["张长顺"]);
        assert_eq!(names(&idx, "东湾", None), ["张长顺"]);
        assert_eq!(names(&idx, "", Some("老党员")), ["李秀英"]);
        assert_eq!(names(&idx, "lxy", Some("留守儿童")), ["刘晓宇"]);
        assert!(names(&idx, "nobody", None).is_empty());
        assert_eq!(
            idx.tags().collect::<Vec<_>>(),
            ["困难户", "独居老人", "留守儿童", "老党员", "退役军人"]
        );
    }

    #[test]
    fn ranking_puts_the_name_first_and_limit_keeps_the_total() {
        let idx = people();
        let r = idx.search("李秀英", None, 1);
        assert_eq!(r.total, 1);
        let r = idx.search("lxy", None, 2);
        assert_eq!(r.total, 3);
        assert_eq!(r.hits.len(), 2);
        assert!(r.hits.iter().all(|h| h.matched == "拼音"));
    }

    #[test]
    fn five_thousand_residents_are_searched_quickly() {
        let surnames = ["李", "王", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"];
        let given = [
            "秀英", "建国", "小燕", "长顺", "晓宇", "桂兰", "志强", "淑珍", "海燕", "明",
        ];
        let idx = SearchIndex::from_residents((0..5000).map(|i| {
            let name = format!("{}{}", surnames[i % 10], given[(i / 10) % 10]);
            (
                resident(
                    &format!("{i:016}"),
                    &name,
                    &format!("小河村{}组{}号", i % 9, i),
                ),
                "小河村".to_owned(),
            )
        }));
        assert_eq!(idx.len(), 5000);
        let start = std::time::Instant::now();
        let mut found = 0;
        for q in ["lxy", "wangjianguo", "李", "3组", "zzs", "1390"] {
            found += idx.search(q, None, 50).total;
        }
        let took = start.elapsed();
        assert!(found > 500, "found {found}");
        // Six searches over 5,000 residents; generous for a debug build on a
        // shared machine (31 ms measured there).
        eprintln!("six searches over 5,000 residents: {took:?}");
        assert!(took.as_millis() < 500, "took {took:?}");
    }
}
