//! `minqing resident add|edit|list|show`.

use anyhow::Context;
use minqing_model::{
    IdCardNumber, NewResident, PersonName, RESIDENT_FIELDS, RecordKind, ResidentDetail,
    ResidentEdit, ResidentFields, ResidentView, Tag, resident_field, text,
};

use crate::cli::{ResidentAddArgs, ResidentCmd, ResidentEditArgs, ResidentFieldArgs};
use crate::error::usage;
use crate::home::{Home, today};
use crate::lookup::find;
use crate::output;

pub fn run(home: &Home, cmd: ResidentCmd) -> anyhow::Result<()> {
    match cmd {
        ResidentCmd::Add(args) => add(home, args),
        ResidentCmd::Edit(args) => edit(home, args),
        ResidentCmd::List {
            village,
            tag,
            search,
            json,
        } => list(home, village, tag, search, json.json),
        ResidentCmd::Show { id, json } => show(home, &id, json.json),
        ResidentCmd::Duplicates { village, json } => duplicates(home, village, json.json),
        ResidentCmd::Merge { keep, other } => merge(home, &keep, &other),
    }
}

/// `resident duplicates`: residents of one village sharing a 身份证号.
fn duplicates(home: &Home, village: Option<String>, json: bool) -> anyhow::Result<()> {
    let villages = match village {
        Some(id) => vec![home.require_village(id.trim())?],
        None => home.villages()?,
    };
    #[derive(serde::Serialize)]
    struct Group {
        village_id: String,
        #[serde(flatten)]
        group: minqing_model::DuplicateGroup,
    }
    let groups: Vec<Group> = villages
        .iter()
        .flat_map(|v| {
            v.duplicate_residents().into_iter().map(|group| Group {
                village_id: v.id().to_string(),
                group,
            })
        })
        .collect();
    if json {
        return output::json(&groups);
    }
    if groups.is_empty() {
        return output::line("no duplicate residents");
    }
    for g in &groups {
        output::line(&format!(
            "身份证号 {} (村 {}): {} residents",
            g.group.id_card,
            g.village_id,
            g.group.residents.len()
        ))?;
        for r in &g.group.residents {
            output::line(&format!(
                "  {}  {}  {}  {}  {}",
                r.id,
                r.name,
                output::opt(&r.phone),
                r.address,
                r.created_at
            ))?;
        }
    }
    output::line("merge one into another with `minqing resident merge KEEP OTHER`")
}

/// `resident merge KEEP OTHER`.
fn merge(home: &Home, keep: &str, other: &str) -> anyhow::Result<()> {
    let mut finder = home.index()?;
    let (mut village, keep) = finder.record(RecordKind::Resident, keep).context("KEEP")?;
    let other = match finder.find(RecordKind::Resident, other) {
        Ok((doc, id)) if &doc == village.id() && village.contains(RecordKind::Resident, &id) => id,
        Ok((doc, id)) if &doc != village.id() => anyhow::bail!(
            "residents {keep} (village {}) and {id} (village {doc}) live in different villages; only duplicates within one village can be merged",
            village.id()
        ),
        // Unknown, ambiguous, or the index was wrong: the answer of a full read.
        _ => {
            let all = home.villages()?;
            let (oi, id) = find(&all, RecordKind::Resident, other).context("OTHER")?;
            if all[oi].id() != village.id() {
                anyhow::bail!(
                    "residents {keep} (village {}) and {id} (village {}) live in different villages; only duplicates within one village can be merged",
                    village.id(),
                    all[oi].id()
                );
            }
            id
        }
    };
    let v = &mut village;
    v.merge_residents(&home.author(), &keep, &other)?;
    home.save(v, "merge")?;
    output::line(&format!(
        "merged resident {other} into {keep} in {}: its visits and demands now show under {keep}",
        v.id()
    ))?;
    output::line(keep.as_str())?;
    home.compact_later(v.id());
    Ok(())
}

/// Reads the field flags; a 15-digit first-generation 身份证号 is converted
/// to 18 digits, and the cadre is told on stderr.
fn fields(args: &ResidentFieldArgs, today: chrono::NaiveDate) -> anyhow::Result<ResidentFields> {
    let mut fields = ResidentFields::default();
    for (key, raw) in args.given() {
        let field = resident_field(key).with_context(|| format!("no resident field {key}"))?;
        (field.parse)(&mut fields, raw, today).with_context(|| field.flag())?;
        if let (Some(old), Some(card)) = (
            (key == "id_card")
                .then(|| IdCardNumber::first_generation(raw))
                .flatten(),
            &fields.id_card,
        ) {
            crate::output::err(&format!(
                "note: 15-digit 身份证号 {old} converted to its 18-digit form {card} (GB 11643: 19 added to the year, check digit computed)"
            ));
        }
    }
    Ok(fields)
}

/// Parses a tag flag's values: each may hold several tags separated by `,`,
/// `，` or `、` (`--tag 独居老人,老党员`). A tag one slip away from a known one
/// (`老党`, `独居老年`, `veteren`) is refused with the known one suggested:
/// key-group figures count known tags only, so a typo would drop a resident
/// from them silently.
pub(crate) fn tags(raw: &[String], flag: &str) -> anyhow::Result<Vec<Tag>> {
    let mut out: Vec<Tag> = Vec::new();
    for value in raw {
        let mut pieces: Vec<&str> = value
            .split([',', '，', '、'])
            .map(text::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if pieces.is_empty() {
            // Nothing but blanks and separators: refused as an empty tag.
            pieces.push("");
        }
        for piece in pieces {
            let tag = Tag::parse(piece).with_context(|| flag.to_owned())?;
            if !tag.is_known()
                && let Some(known) = near_known_tag(tag.as_str())
            {
                return Err(usage(format!(
                    "{flag} {piece}: not a known tag — did you mean {known}? Write `{flag} {known}` \
                     (known tags: {}); nothing was changed",
                    minqing_model::validate::KNOWN_TAGS
                        .iter()
                        .map(|(zh, _)| *zh)
                        .collect::<Vec<_>>()
                        .join("、")
                )));
            }
            if !out.contains(&tag) {
                out.push(tag);
            }
        }
    }
    Ok(out)
}

/// The known tag that `typed` (not itself known) is a near miss of: one
/// character added, dropped or changed, a part of it (`党员` for `老党员`), or
/// an English alias with up to two letters wrong.
pub(crate) fn near_known_tag(typed: &str) -> Option<&'static str> {
    let t: Vec<char> = typed.chars().collect();
    let lower = typed.to_lowercase();
    minqing_model::validate::KNOWN_TAGS
        .iter()
        .find_map(|(zh, en)| {
            let z: Vec<char> = zh.chars().collect();
            let part = t.len() >= 2
                && (zh.contains(typed) || (typed.contains(zh) && t.len() <= z.len() + 2));
            let near_zh = t.len() >= 2 && edit_distance(&t, &z) <= 1;
            let e: Vec<char> = en.chars().collect();
            let l: Vec<char> = lower.chars().collect();
            let near_en = l.len() >= 4 && edit_distance(&l, &e) <= 2;
            (part || near_zh || near_en).then_some(*zh)
        })
}

/// Levenshtein distance between two char sequences.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn add(home: &Home, a: ResidentAddArgs) -> anyhow::Result<()> {
    let today = today();
    // Check every value before touching the store.
    let name = PersonName::parse(&a.name).context("--name")?;
    let fields = fields(&a.fields, today)?;
    let tags = tags(&a.tags, "--tag")?;
    if let Some(card) = &fields.id_card {
        card.check_consistent(fields.birth, fields.gender)?;
    }
    let (mut village, household) = home
        .find_record(RecordKind::Household, &a.household)
        .context("--household")?;
    let v = &mut village;
    let new = NewResident {
        fields,
        tags,
        ..NewResident::new(household, name)
    };
    let id = v.add_resident(&mut *crate::home::rng(), &home.author(), &new)?;
    home.save(v, "resident")?;
    output::line(&format!("added resident {} in {}", new.name, v.id()))?;
    output::line(id.as_str())?;
    home.compact_later(v.id());
    Ok(())
}

fn edit(home: &Home, a: ResidentEditArgs) -> anyhow::Result<()> {
    let today = today();
    let edit = ResidentEdit {
        name: a
            .name
            .map(|n| PersonName::parse(&n).context("--name"))
            .transpose()?,
        fields: fields(&a.fields, today)?,
        add_tags: tags(&a.add_tags, "--add-tag")?,
        remove_tags: tags(&a.remove_tags, "--remove-tag")?,
    };
    if edit.is_empty() {
        let flags: Vec<String> = RESIDENT_FIELDS.iter().map(|f| f.flag()).collect();
        return Err(usage(format!(
            "nothing to change: give at least one of --name {} --add-tag --remove-tag",
            flags.join(" ")
        )));
    }
    let (mut village, id) = home.find_record(RecordKind::Resident, &a.id)?;
    let v = &mut village;
    v.edit_resident(&home.author(), &id, &edit)?;
    home.save(v, "resident change")?;
    output::line(&format!("updated resident {id}"))?;
    output::line(id.as_str())?;
    home.compact_later(v.id());
    Ok(())
}

fn list(
    home: &Home,
    village: Option<String>,
    tag: Option<String>,
    search: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let tag = match tag {
        Some(t) => {
            let mut parsed = tags(&[t], "--tag")?;
            if parsed.len() > 1 {
                return Err(usage(
                    "resident list --tag takes one tag; list each tag with its own command",
                ));
            }
            parsed.pop()
        }
        None => None,
    };
    let search = search.map(|s| text::trim(&s).to_lowercase());
    let villages = match village {
        Some(id) => vec![home.require_village(id.trim())?],
        None => home.villages()?,
    };
    let matches = |r: &ResidentView| {
        tag.as_ref()
            .is_none_or(|t| r.tags.iter().any(|x| x == t.as_str()))
            && search.as_deref().is_none_or(|s| {
                [
                    Some(&r.name),
                    r.id_card.as_ref(),
                    r.phone.as_ref(),
                    Some(&r.address),
                ]
                .into_iter()
                .flatten()
                .any(|f| f.to_lowercase().contains(s))
            })
    };
    let all: Vec<ResidentView> = villages
        .iter()
        .flat_map(|v| v.residents())
        .filter(matches)
        .collect();
    if json {
        return output::json(&all);
    }
    let rows: Vec<Vec<String>> = all
        .into_iter()
        .map(|r| {
            vec![
                r.id,
                r.name,
                output::opt(&r.gender),
                output::opt(&r.phone),
                r.tags.join(","),
                r.address,
            ]
        })
        .collect();
    output::table(
        &["居民 id", "姓名", "性别", "电话", "标签", "地址"],
        &rows,
        "no residents match",
    )
}

fn show(home: &Home, typed: &str, json: bool) -> anyhow::Result<()> {
    let (village, id) = home.read_record(RecordKind::Resident, typed)?;
    let detail: ResidentDetail = village
        .resident_detail(&id)
        .context("the resident vanished while reading")?;
    if json {
        return output::json(&detail);
    }
    let r = &detail.resident;
    let field = |k: &str, v: &str| output::line(&format!("{k}  {v}"));
    field("姓名", &r.name)?;
    field("id  ", &r.id)?;
    for f in RESIDENT_FIELDS {
        field(f.label, (f.shown)(r).as_deref().unwrap_or("-"))?;
    }
    field("标签", &r.tags.join(","))?;
    field(
        "住址",
        &format!("{} (户 {}, 村 {})", r.address, r.household_id, r.village_id),
    )?;
    output::line(&format!("走访 ({})", detail.visits.len()))?;
    for v in &detail.visits {
        output::line(&format!(
            "  {} {} {} {}  {}",
            v.date, v.kind, v.cadre, v.id, v.note
        ))?;
    }
    output::line(&format!("诉求 ({})", detail.demands.len()))?;
    for d in &detail.demands {
        output::line(&format!(
            "  {} {} {} {}  {}",
            &d.opened_at[..10.min(d.opened_at.len())],
            d.status,
            d.category,
            d.id,
            d.text
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{near_known_tag, tags};

    fn check(raw: &[&str], expected: Result<&[&str], &str>) {
        let raw: Vec<String> = raw.iter().map(|s| (*s).to_owned()).collect();
        match (tags(&raw, "--tag"), expected) {
            (Ok(got), Ok(want)) => {
                let got: Vec<&str> = got.iter().map(|t| t.as_str()).collect();
                assert_eq!(got, want, "{raw:?}");
            }
            (Err(e), Err(want)) => {
                let text = format!("{e:#}");
                assert!(text.contains(want), "{raw:?}: {text}");
                assert_eq!(crate::error::exit_code(&e), crate::error::EXIT_USAGE);
            }
            (got, want) => panic!("{raw:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn tags_split_on_commas_and_refuse_near_misses_of_known_ones() {
        check(&["独居老人,老党员"], Ok(&["独居老人", "老党员"]));
        check(&["独居老人，老党员"], Ok(&["独居老人", "老党员"]));
        check(
            &["独居老人、 老党员", "困难户"],
            Ok(&["独居老人", "老党员", "困难户"]),
        );
        check(&["老党员", "老党员,"], Ok(&["老党员"]));
        check(&["　"], Err("tag"));
        check(&[","], Err("tag"));
        check(&["veteran", "needy"], Ok(&["退役军人", "困难户"]));
        // Free tags stay free.
        check(&["种植大户", "网格员"], Ok(&["种植大户", "网格员"]));
        check(&["老党"], Err("did you mean 老党员?"));
        check(&["独居老年"], Err("did you mean 独居老人?"));
        check(&["独居老人,留守儿重"], Err("did you mean 留守儿童?"));
        check(&["veteren"], Err("did you mean 退役军人?"));
        assert_eq!(near_known_tag("党员"), Some("老党员"));
        assert_eq!(near_known_tag("果农"), None);
    }
}
