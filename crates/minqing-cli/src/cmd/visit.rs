//! `minqing visit log|list`.

use anyhow::{Context, bail};
use minqing_model::{
    ModelError, Month, NewVisit, Note, RecordKind, VisitKind, VisitView, parse_past_date, text,
};

use crate::cli::VisitCmd;
use crate::home::{Home, today};
use crate::output;

pub fn run(home: &Home, cmd: VisitCmd) -> anyhow::Result<()> {
    match cmd {
        VisitCmd::Log {
            household,
            resident,
            kind,
            note,
            date,
        } => {
            let kind = VisitKind::parse(&kind).context("--kind")?;
            let note = Note::parse(&note).context("--note")?;
            let date = match date {
                Some(d) => parse_past_date("visit date", &d, today()).context("--date")?,
                None => today(),
            };
            // Only the household's village is loaded (the village index).
            let mut finder = home.index()?;
            let (mut village, household) = finder
                .record(RecordKind::Household, &household)
                .context("--household")?;
            let resident = match resident {
                Some(r) => Some(resident_of(home, &finder, &village, &household, &r)?),
                None => None,
            };
            let v = &mut village;
            let new = NewVisit {
                household,
                resident,
                kind,
                note,
                date,
            };
            let id = v
                .log_visit(&mut *crate::home::rng(), &home.author(), &new)
                .map_err(|e| match e {
                    // The model names no flags; the CLI says which to check.
                    ModelError::ResidentNotInHousehold { .. } => {
                        anyhow::anyhow!("{e}: check --resident and --household")
                    }
                    other => other.into(),
                })?;
            home.save(v, "visit")?;
            output::line(&format!("logged {} {} in {}", new.kind, new.date, v.id()))?;
            output::line(id.as_str())?;
            home.compact_later(v.id());
            Ok(())
        }
        VisitCmd::List {
            village,
            cadre,
            month,
            json,
        } => {
            let month = month
                .map(|m| Month::parse(&m).context("--month"))
                .transpose()?;
            let cadre = cadre.map(|c| text::trim(&c).to_owned());
            let villages = match village {
                Some(id) => vec![home.require_reader(id.trim())?],
                None => home.readers()?,
            };
            let keep = |v: &VisitView| {
                cadre.as_deref().is_none_or(|c| v.cadre == c)
                    && month.is_none_or(|m| {
                        minqing_model::parse_date(&v.date).is_ok_and(|d| m.contains(d))
                    })
            };
            let mut all: Vec<VisitView> = villages
                .iter()
                .flat_map(|v| {
                    v.visits()
                        .iter()
                        .filter(|x| keep(x))
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect();
            // Newest last across all villages, as within one.
            all.sort_by(|a, b| {
                (&a.date, &a.created_at, &a.id).cmp(&(&b.date, &b.created_at, &b.id))
            });
            if json.json {
                return output::json(&all);
            }
            let rows: Vec<Vec<String>> = all
                .into_iter()
                .map(|v| vec![v.date, v.kind, v.cadre, v.id, output::clip(&v.note, 40)])
                .collect();
            output::table(
                &["日期", "类型", "干部", "走访 id", "记录"],
                &rows,
                "no visits match",
            )
        }
    }
}

/// The resident `typed` (id, unique prefix, or name within the household)
/// for a visit to `household` in `village`: by id through the index (a
/// resident of another village is refused, naming both), else by name in
/// this village — the answers and errors of a lookup over every village.
fn resident_of(
    home: &Home,
    finder: &crate::lookup::Finder<'_>,
    village: &minqing_model::Village,
    household: &minqing_model::Id,
    typed: &str,
) -> anyhow::Result<minqing_model::Id> {
    let lives_elsewhere = |rid: &minqing_model::Id, other: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "--resident {rid} lives in village {other}, not in {} where household {household} is",
            village.id()
        )
    };
    match finder.find(RecordKind::Resident, typed) {
        Ok((doc, rid)) if &doc != village.id() => Err(lives_elsewhere(&rid, &doc)),
        Ok((_, rid)) if village.contains(RecordKind::Resident, &rid) => Ok(rid),
        Err(id_error) => {
            // Not an id: a name, looked for in the household's village only.
            let (_, rid) = crate::lookup::by_name(
                std::slice::from_ref(village),
                typed,
                Some((0, household)),
                id_error,
            )
            .context("--resident")?;
            Ok(rid)
        }
        Ok(_) => {
            // The index was wrong: read every village, as before.
            let all = home.villages()?;
            let Some(vi) = all.iter().position(|v| v.id() == village.id()) else {
                bail!("village {} vanished while reading", village.id());
            };
            let (ri, rid) = crate::lookup::resident(&all, typed, Some((vi, household)))
                .context("--resident")?;
            if ri != vi {
                return Err(lives_elsewhere(&rid, all[ri].id()));
            }
            Ok(rid)
        }
    }
}
