//! `minqing debug ...`: developer tools, hidden from `--help`. `merge-from`
//! merges another home's villages through the store, as a sync would.

use std::collections::BTreeMap;

use anyhow::Context;
use minqing_model::Village;

use crate::cli::DebugCmd;
use crate::home::{Home, Secrets, open_store, store_dir};
use crate::output;

pub fn run(home: &Home, secrets: &Secrets, cmd: DebugCmd) -> anyhow::Result<()> {
    match cmd {
        DebugCmd::MergeFrom { other } => {
            anyhow::ensure!(
                store_dir(&other).is_dir(),
                "{} has no minqing store",
                other.display()
            );
            let (_, their_key) = crate::home::unlock(&other, secrets)?;
            let theirs = open_store(&other, &their_key)?;
            for id in theirs.docs()? {
                let bytes = theirs
                    .load(&id)?
                    .with_context(|| format!("village {id} vanished from {}", other.display()))?;
                let mut their_village = Village::load(id.clone(), &bytes).with_context(|| {
                    format!("village {id} in {} does not load", other.display())
                })?;
                match home.village(&id)? {
                    Some(mut ours) => {
                        ours.merge(&mut their_village)?;
                        home.save(&mut ours, "change")?;
                    }
                    None => {
                        home.store.append(&id, &bytes)?;
                        home.store.flush()?;
                    }
                }
                output::line(&format!("merged village {id}"))?;
            }
            Ok(())
        }
        DebugCmd::Heads(j) => {
            let mut heads = BTreeMap::new();
            for mut v in home.villages()? {
                let mut h: Vec<String> = v.heads().iter().map(|h| h.to_string()).collect();
                h.sort();
                heads.insert(v.id().to_string(), h);
            }
            if j.json {
                return output::json(&heads);
            }
            for (id, h) in heads {
                output::line(&format!("{id}  {}", h.join(" ")))?;
            }
            Ok(())
        }
    }
}
