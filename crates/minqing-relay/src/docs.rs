//! The relay's village documents: its automerge actor, and creating a
//! village's document when the village is added.

use anyhow::{Context, Result};
use minqing_sync::{DocId, Storage};

use crate::registry::{Config, VillageEntry};

/// The relay's automerge actor id.
pub fn actor(config: &Config) -> Vec<u8> {
    (0..config.actor.len() / 2)
        .filter_map(|i| u8::from_str_radix(config.actor.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Creates the document of `village` in `store` if it is not there yet.
pub fn ensure_village_doc(
    store: &dyn Storage,
    village: &VillageEntry,
    actor: &[u8],
) -> Result<bool> {
    let doc = DocId::new(village.id.clone())?;
    if store.load(&doc)?.is_some() {
        return Ok(false);
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut am = minqing_model::new_village(
        &doc,
        &village.name,
        village.township.as_deref(),
        actor,
        now_ms,
    )
    .with_context(|| format!("cannot create the document of village {}", village.id))?;
    store.append(&doc, &am.save())?;
    store.flush()?;
    Ok(true)
}
