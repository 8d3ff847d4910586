//! `village add` and `village list`.

use anyhow::{Context, Result};
use minqing_store::SledStorage;
use minqing_sync::DocId;

use crate::cmd::esc;
use crate::docs::{actor, ensure_village_doc};
use crate::registry::{Home, VillageEntry, now_rfc3339, usage};

/// `village add`.
pub fn village_add(home: &Home, id: &str, name: &str, township: Option<&str>) -> Result<()> {
    let config = home.config()?;
    let doc = match DocId::new(id) {
        Ok(d) => d,
        Err(e) => usage!("{e}"),
    };
    if let Err(e) = minqing_model::PlaceName::parse(name) {
        usage!("--name: {e}");
    }
    let entry = {
        let _lock = home.lock()?;
        let mut villages = home.villages()?;
        if villages.contains_key(doc.as_str()) {
            usage!("village {doc} already exists (`minqing-relay village list` shows them)");
        }
        let entry = VillageEntry {
            id: doc.to_string(),
            name: name.trim().to_owned(),
            township: township.map(|t| t.trim().to_owned()),
            created_at: now_rfc3339(),
        };
        villages.insert(entry.id.clone(), entry.clone());
        home.save_villages(&villages)?;
        entry
    };
    home.audit("village_add", None, Some(doc.as_str()), name.to_owned())?;
    match SledStorage::open(&home.store()) {
        Ok(store) => {
            ensure_village_doc(&store, &entry, &actor(&config))?;
            println!("village {doc} ({name}) added");
        }
        Err(minqing_store::StoreError::Locked { .. }) => {
            println!(
                "village {doc} ({name}) added; the running relay creates its document on the next sync"
            );
        }
        Err(e) => return Err(e).context("cannot open the relay's store"),
    }
    Ok(())
}

/// `village list`.
pub fn village_list(home: &Home, json: bool) -> Result<()> {
    home.config()?;
    let villages: Vec<VillageEntry> = home.villages()?.into_values().collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&villages)?);
    } else if villages.is_empty() {
        println!("no villages yet: add one with `minqing-relay village add --id ID --name NAME`");
    } else {
        for v in villages {
            match &v.township {
                Some(t) => println!("{}\t{}\t{}", v.id, esc(&v.name), esc(t)),
                None => println!("{}\t{}", v.id, esc(&v.name)),
            }
        }
    }
    Ok(())
}
