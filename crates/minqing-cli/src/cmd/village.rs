//! `minqing village add|list`.

use anyhow::{Context, bail};
use minqing_model::{Village, new_village};
use minqing_sync::DocId;

use crate::cli::VillageCmd;
use crate::home::{Home, now_ms};
use crate::output;

pub fn run(home: &Home, cmd: VillageCmd) -> anyhow::Result<()> {
    match cmd {
        VillageCmd::Add { id, name, township } => {
            let doc_id = DocId::new(id.trim()).context("--id")?;
            let doc = new_village(&doc_id, &name, township.as_deref(), &home.actor(), now_ms())?;
            if home.village(&doc_id)?.is_some() {
                bail!("village {doc_id} already exists on this laptop; nothing was changed");
            }
            let mut village = Village::from_new_doc(doc_id.clone(), doc)?;
            home.save(&mut village, "village")?;
            let v = village.view();
            output::line(&format!(
                "added village {} {}{}",
                v.id,
                v.name,
                v.township.map(|t| format!(" ({t})")).unwrap_or_default()
            ))?;
            output::line(doc_id.as_str())
        }
        VillageCmd::List(j) => {
            let views: Vec<_> = home.villages()?.iter().map(Village::view).collect();
            if j.json {
                return output::json(&views);
            }
            let rows: Vec<Vec<String>> = views
                .into_iter()
                .map(|v| {
                    vec![
                        v.id,
                        v.name,
                        output::opt(&v.township),
                        v.households.to_string(),
                        v.residents.to_string(),
                        v.visits.to_string(),
                        v.demands.to_string(),
                    ]
                })
                .collect();
            output::table(
                &["村", "名称", "乡镇", "户", "居民", "走访", "诉求"],
                &rows,
                "no villages yet: `minqing village add --id V001 --name 小河村`",
            )
        }
    }
}
