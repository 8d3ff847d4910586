//! `minqing visit log|list`.

use anyhow::{Context, bail};
use minqing_model::{
    ModelError, Month, NewVisit, Note, RecordKind, VisitKind, VisitView, parse_past_date, text,
};

use crate::cli::VisitCmd;
use crate::home::{Home, today};
use crate::lookup::find;
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
            let mut villages = home.villages()?;
            let (vi, household) =
                find(&villages, RecordKind::Household, &household).context("--household")?;
            let resident = match resident {
                Some(r) => {
                    let (ri, rid) = crate::lookup::resident(&villages, &r, Some((vi, &household)))
                        .context("--resident")?;
                    if ri != vi {
                        bail!(
                            "--resident {rid} lives in village {}, not in {} where household {household} is",
                            villages[ri].id(),
                            villages[vi].id()
                        );
                    }
                    Some(rid)
                }
                None => None,
            };
            let v = &mut villages[vi];
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
                Some(id) => vec![home.require_village(id.trim())?],
                None => home.villages()?,
            };
            let keep = |v: &VisitView| {
                cadre.as_deref().is_none_or(|c| v.cadre == c)
                    && month.is_none_or(|m| {
                        minqing_model::parse_date(&v.date).is_ok_and(|d| m.contains(d))
                    })
            };
            let mut all: Vec<VisitView> = villages
                .iter()
                .flat_map(|v| v.visits())
                .filter(keep)
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
