//! `minqing demand open|list|show`.

use anyhow::Context;
use minqing_model::{Category, DemandText, DemandView, NewDemand, RecordKind};

use crate::cli::DemandCmd;
use crate::home::Home;
use crate::lookup::find;
use crate::output;

pub fn run(home: &Home, cmd: DemandCmd) -> anyhow::Result<()> {
    match cmd {
        DemandCmd::Open {
            resident,
            category,
            text,
        } => {
            let category = Category::parse(&category).context("--category")?;
            let text = DemandText::parse(&text).context("--text")?;
            let mut villages = home.villages()?;
            let (vi, resident) =
                find(&villages, RecordKind::Resident, &resident).context("--resident")?;
            let v = &mut villages[vi];
            let new = NewDemand {
                resident,
                category,
                text,
            };
            let id = v.open_demand(&mut *crate::home::rng(), &home.author(), &new)?;
            home.save(v)?;
            output::line(&format!(
                "opened demand ({}) 受理 in {}",
                new.category,
                v.id()
            ))?;
            output::line(id.as_str())?;
            home.compact_later(v.id());
            Ok(())
        }
        DemandCmd::List { village, json } => {
            let villages = match village {
                Some(id) => vec![home.require_village(id.trim())?],
                None => home.villages()?,
            };
            let all: Vec<DemandView> = villages.iter().flat_map(|v| v.demands()).collect();
            if json.json {
                return output::json(&all);
            }
            let rows: Vec<Vec<String>> = all
                .into_iter()
                .map(|d| {
                    vec![
                        d.opened_at.get(..10).unwrap_or_default().to_owned(),
                        d.status,
                        d.category,
                        d.id,
                        output::clip(&d.text, 40),
                    ]
                })
                .collect();
            output::table(
                &["受理日期", "状态", "类别", "诉求 id", "内容"],
                &rows,
                "no demands",
            )
        }
        DemandCmd::Show { id, json } => {
            let villages = home.villages()?;
            let (vi, id) = find(&villages, RecordKind::Demand, &id)?;
            let d = villages[vi]
                .demand(&id)
                .context("the demand vanished while reading")?;
            if json.json {
                return output::json(&d);
            }
            output::line(&format!("诉求  {}", d.id))?;
            output::line(&format!("状态  {}", d.status))?;
            output::line(&format!("类别  {}", d.category))?;
            output::line(&format!("内容  {}", d.text))?;
            output::line(&format!(
                "居民  {} (户 {}, 村 {})",
                d.resident_id, d.household_id, d.village_id
            ))?;
            output::line(&format!("受理  {} {}", d.opened_at, d.cadre))?;
            output::line(&format!("事件 ({})", d.events.len()))?;
            for e in &d.events {
                output::line(&format!("  {} {} {} {}", e.at, e.kind_name, e.cadre, e.id))?;
            }
            Ok(())
        }
    }
}
