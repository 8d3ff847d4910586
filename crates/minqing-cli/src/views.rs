//! A village's views kept in the store, so that a one-command process reads
//! a village without loading its document: the same [`VillageRecords`] the
//! local service keeps in memory, as a base stamped with the
//! [`DocVersion`] it shows and a chain of deltas, one per write, each from
//! one version to the next — trusted only when the chain ends at the
//! village's current version (docs/store.md, "Views kept on disk").
//!
//! | key | value |
//! |---|---|
//! | `vw/<village>` | `<version>\n` + [`VillageRecords::to_stored`] |
//! | `vw/<village>/v` | `<version>` of the base (what a write reads) |
//! | `vw/<village>/d/<n>` | `<from>\n<to>\n` + [`ViewsDelta::to_stored`] |

use minqing_model::{ViewsDelta, VillageRecords};
use minqing_sync::{DocId, DocVersion, Store};

/// After this many deltas a read folds the chain into a new base.
pub const FOLD_AFTER: usize = 32;

fn base_key(doc: &DocId) -> String {
    format!("vw/{doc}")
}

fn base_version_key(doc: &DocId) -> String {
    format!("vw/{doc}/v")
}

fn delta_prefix(doc: &DocId) -> String {
    format!("vw/{doc}/d/")
}

/// Splits `<line>\n<rest>`.
fn line(raw: &[u8]) -> Option<(&str, &[u8])> {
    let cut = raw.iter().position(|b| *b == b'\n')?;
    Some((std::str::from_utf8(&raw[..cut]).ok()?, &raw[cut + 1..]))
}

/// The views of `doc` at version `now`, with how many deltas were applied;
/// `None` when none are kept, the chain does not end at `now`, or a value
/// does not parse or apply (the caller makes them again).
pub fn read(store: &dyn Store, doc: &DocId, now: &DocVersion) -> Option<(VillageRecords, usize)> {
    let raw = store.meta_get(&base_key(doc)).ok()??;
    let (version, rest) = line(&raw)?;
    let mut end = version.to_owned();
    let deltas = store.meta_scan(&delta_prefix(doc)).ok()?;
    if deltas.is_empty() && end != now.as_str() {
        // Stale: no need to parse the base.
        return None;
    }
    let mut records = VillageRecords::from_stored(doc, rest)?;
    for (_, raw) in &deltas {
        let (from, rest) = line(raw)?;
        let (to, rest) = line(rest)?;
        // An empty delta: the version moved, the content did not (compaction).
        if from != end || !(rest.is_empty() || records.apply(&ViewsDelta::from_stored(rest)?)) {
            return None;
        }
        end = to.to_owned();
    }
    (end == now.as_str()).then_some((records, deltas.len()))
}

/// Keeps `records`, which show `doc` exactly as the store holds it at
/// `version`, as a new base (the old chain removed). Durable with the
/// store's next flush; losing it costs only a load of the village.
pub fn write(
    store: &dyn Store,
    doc: &DocId,
    version: &DocVersion,
    records: &VillageRecords,
) -> anyhow::Result<()> {
    remove(store, doc)?;
    let mut value = version.as_str().as_bytes().to_vec();
    value.push(b'\n');
    value.extend_from_slice(&records.to_stored()?);
    store.meta_put(&base_key(doc), &value)?;
    store.meta_put(&base_version_key(doc), version.as_str().as_bytes())?;
    Ok(())
}

/// Where the chain of `doc` ends (the version its views show) and the
/// number of the next delta, read without the base's views.
pub struct ChainEnd {
    end: String,
    next: u32,
}

/// The chain's end, `None` if no views are kept.
pub fn chain_end(store: &dyn Store, doc: &DocId) -> Option<ChainEnd> {
    let base = store.meta_get(&base_version_key(doc)).ok()??;
    let mut end = String::from_utf8(base).ok()?;
    let deltas = store.meta_scan(&delta_prefix(doc)).ok()?;
    let next = u32::try_from(deltas.len()).ok()?;
    if let Some((_, raw)) = deltas.last() {
        let (_, rest) = line(raw)?;
        end = line(rest)?.0.to_owned();
    }
    Some(ChainEnd { end, next })
}

/// What a write did to a village's views.
pub enum Change {
    /// Nothing shown changed (a compaction).
    Same,
    /// These records changed.
    Records(Box<ViewsDelta>),
    /// The update rule does not cover it: the views are made again.
    Uncovered,
}

/// After a write took `doc` from `before` to `after`: keeps what it changed
/// (`change`, asked only when needed) at the end of the chain, if the chain
/// ended at `before`; else the views are stale and left for the next read
/// to make again.
pub fn record_write(
    store: &dyn Store,
    doc: &DocId,
    chain: Option<ChainEnd>,
    before: &DocVersion,
    after: &DocVersion,
    change: impl FnOnce() -> Change,
) -> anyhow::Result<()> {
    let Some(chain) = chain.filter(|c| c.end == before.as_str()) else {
        return Ok(());
    };
    let mut value = format!("{}\n{}\n", before.as_str(), after.as_str()).into_bytes();
    match change() {
        Change::Same => {}
        Change::Records(delta) => value.extend_from_slice(&delta.to_stored()?),
        Change::Uncovered => return remove(store, doc),
    }
    store.meta_put(&format!("{}{:08x}", delta_prefix(doc), chain.next), &value)?;
    Ok(())
}

/// After a change that keeps the content (a compaction): views whose chain
/// ended at `before` end at `after`.
pub fn restamp(
    store: &dyn Store,
    doc: &DocId,
    before: &DocVersion,
    after: &DocVersion,
) -> anyhow::Result<()> {
    let chain = chain_end(store, doc);
    record_write(store, doc, chain, before, after, || Change::Same)
}

/// Forgets the views of `doc`: base and deltas.
pub fn remove(store: &dyn Store, doc: &DocId) -> anyhow::Result<()> {
    for (key, _) in store.meta_scan(&delta_prefix(doc))? {
        store.meta_remove(&key)?;
    }
    store.meta_remove(&base_version_key(doc))?;
    store.meta_remove(&base_key(doc))?;
    Ok(())
}

/// Removes the views of villages this laptop no longer holds.
pub fn remove_orphans(store: &dyn Store, held: &[DocId]) -> anyhow::Result<()> {
    for (key, _) in store.meta_scan("vw/")? {
        let village = key["vw/".len()..].split('/').next().unwrap_or_default();
        if !held.iter().any(|d| d.as_str() == village) {
            store.meta_remove(&key)?;
        }
    }
    Ok(())
}
