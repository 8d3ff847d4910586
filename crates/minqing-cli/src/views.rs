//! A village's views kept in the store (`vw/<village>`), so that a
//! one-command process reads a village without loading its document: the
//! same [`VillageRecords`] the local service keeps in memory, stamped with
//! the [`DocVersion`] they show and trusted only at that version
//! (docs/store.md, "Views kept on disk").

use minqing_model::VillageRecords;
use minqing_sync::{DocId, DocVersion, Store};

/// Where a village's views are kept in the store's meta.
fn key(doc: &DocId) -> String {
    format!("vw/{doc}")
}

/// The views of `doc` kept at version `now`; `None` when none are kept, they
/// show another version, or they do not parse (the caller makes them again).
pub fn read(store: &dyn Store, doc: &DocId, now: &DocVersion) -> Option<VillageRecords> {
    let raw = store.meta_get(&key(doc)).ok()??;
    let cut = raw.iter().position(|b| *b == b'\n')?;
    if &raw[..cut] != now.as_str().as_bytes() {
        return None;
    }
    VillageRecords::from_stored(doc, &raw[cut + 1..])
}

/// Keeps `records`, which show `doc` exactly as the store holds it at
/// `version` (durable with the store's next flush; losing them costs only a
/// load of the village).
pub fn write(
    store: &dyn Store,
    doc: &DocId,
    version: &DocVersion,
    records: &VillageRecords,
) -> anyhow::Result<()> {
    let mut value = version.as_str().as_bytes().to_vec();
    value.push(b'\n');
    value.extend_from_slice(&records.to_stored()?);
    store.meta_put(&key(doc), &value)?;
    Ok(())
}

/// Forgets the views of `doc` (they no longer show what the store holds and
/// cannot be brought up to it).
pub fn remove(store: &dyn Store, doc: &DocId) -> anyhow::Result<()> {
    store.meta_remove(&key(doc))?;
    Ok(())
}

/// Removes the views of villages this laptop no longer holds.
pub fn remove_orphans(store: &dyn Store, held: &[DocId]) -> anyhow::Result<()> {
    for (key, _) in store.meta_scan("vw/")? {
        if !held.iter().any(|d| d.as_str() == &key["vw/".len()..]) {
            store.meta_remove(&key)?;
        }
    }
    Ok(())
}
