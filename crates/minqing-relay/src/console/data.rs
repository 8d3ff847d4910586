//! The console's view of the villages: its own copy of each village it has
//! read (a `minqing_model::Village`), brought up to the relay's copy in the
//! document cache before every read, and the one write path (a county step:
//! checked on the merged state, applied to the relay's copy, appended,
//! flushed, exported).
//!
//! Between requests the copies are kept within a budget (`console.cache_mib`,
//! each counted like the document cache counts a village: its saved size ×
//! `cache::MEMORY_PER_SAVED_BYTE`), least recently used first out. During a
//! request that reads many villages at once (the dashboard over the county)
//! they are all held until it ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result, anyhow};
use minqing_model::{CountyAuthor, CountyStep, Id, Village, WorkflowError};
use minqing_sync::{DocHost, DocId};

use crate::cache::DocCache;
use crate::export::Exporter;
use crate::lock::lock_or_reload;

/// One copy, with what it is counted for and when it was last used.
struct Held {
    village: Village,
    /// Saved bytes it was loaded from and has applied since.
    saved: usize,
    used: u64,
}

/// The copies and the clock that orders their use.
#[derive(Default)]
struct Copies {
    map: BTreeMap<DocId, Held>,
    clock: u64,
}

/// The console's copies of the villages.
pub struct Villages {
    host: Arc<DocCache>,
    exporter: Arc<Exporter>,
    actor: Vec<u8>,
    /// Bytes the copies may be counted for between requests.
    budget: usize,
    copies: Mutex<Copies>,
}

/// Why a county step was not saved.
#[derive(Debug)]
pub enum WriteError {
    /// The ledger refused it (nothing written): the message says why.
    Refused(WorkflowError),
    /// Storage failed: nothing is reported as saved.
    Storage(anyhow::Error),
}

impl Villages {
    /// Copies over the relay's cache; the console writes as `actor` (the relay's).
    pub fn new(
        host: Arc<DocCache>,
        exporter: Arc<Exporter>,
        actor: Vec<u8>,
        budget: usize,
    ) -> Villages {
        Villages {
            host,
            exporter,
            actor,
            budget,
            copies: Mutex::new(Copies::default()),
        }
    }

    fn copies(&self) -> MutexGuard<'_, Copies> {
        // Poisoned: every copy is read afresh.
        lock_or_reload(&self.copies, "the console's villages", Copies::default)
    }

    /// Brings `copy` (or a new one) up to the relay's `am`.
    fn catch_up(&self, doc: &DocId, copy: Option<Held>, am: &automerge::Automerge) -> Result<Held> {
        match copy {
            Some(mut held) => {
                let heads = held.village.heads();
                let bytes = am.save_after(&heads);
                held.village.apply_changes(&bytes)?;
                held.saved = held.saved.saturating_add(bytes.len());
                Ok(held)
            }
            None => {
                let bytes = am.save();
                let mut v = Village::load(doc.clone(), &bytes)
                    .with_context(|| format!("village {doc} does not load"))?;
                v.set_actor(&self.actor);
                Ok(Held {
                    village: v,
                    saved: bytes.len(),
                    used: 0,
                })
            }
        }
    }

    /// Puts a copy back, marked used now.
    fn put(copies: &mut Copies, doc: &DocId, mut held: Held) {
        copies.clock += 1;
        held.used = copies.clock;
        copies.map.insert(doc.clone(), held);
    }

    /// Evicts the least recently used copies until the rest fit the budget.
    fn shrink(&self, copies: &mut Copies) {
        let cost = |h: &Held| h.saved.saturating_mul(crate::cache::MEMORY_PER_SAVED_BYTE);
        let mut total: usize = copies.map.values().map(cost).sum();
        while total > self.budget {
            let Some(oldest) = copies
                .map
                .iter()
                .min_by_key(|(_, h)| h.used)
                .map(|(d, _)| d.clone())
            else {
                break;
            };
            if let Some(h) = copies.map.remove(&oldest) {
                total = total.saturating_sub(cost(&h));
            }
        }
    }

    /// Runs `f` on the current copy of `doc`.
    pub fn read<T>(&self, doc: &DocId, f: impl FnOnce(&Village) -> T) -> Result<T> {
        let mut copies = self.copies();
        let mut old = copies.map.remove(doc);
        let mut result = None;
        let mut failed = None;
        self.host
            .with_doc(doc, &mut |am| match self.catch_up(doc, old.take(), am) {
                Ok(v) => result = Some(v),
                Err(e) => failed = Some(e),
            })?;
        if let Some(e) = failed {
            return Err(e);
        }
        let held = result.ok_or_else(|| anyhow!("village {doc} was not read"))?;
        let out = f(&held.village);
        Self::put(&mut copies, doc, held);
        self.shrink(&mut copies);
        Ok(out)
    }

    /// Runs `f` on the current copies of `docs` (a village that does not
    /// load is left out, with a warning).
    pub fn read_all<T>(&self, docs: &[DocId], f: impl FnOnce(&[&Village]) -> T) -> T {
        let mut copies = self.copies();
        for doc in docs {
            let mut old = copies.map.remove(doc);
            let mut fresh = None;
            let read =
                self.host
                    .with_doc(doc, &mut |am| match self.catch_up(doc, old.take(), am) {
                        Ok(v) => fresh = Some(v),
                        Err(e) => tracing::warn!(village = %doc, "left out of the console: {e:#}"),
                    });
            if let Err(e) = read {
                tracing::warn!(village = %doc, "left out of the console: {e}");
            }
            if let Some(held) = fresh {
                Self::put(&mut copies, doc, held);
            }
        }
        let held: Vec<&Village> = docs
            .iter()
            .filter_map(|d| copies.map.get(d))
            .map(|h| &h.village)
            .collect();
        let out = f(&held);
        self.shrink(&mut copies);
        out
    }

    /// Writes a county step on `demand` of `doc`: checked against the merged
    /// state under the village's lock, applied to the relay's copy (which
    /// appends it to storage), flushed, then marked for export. Returns the
    /// event id once it is durable.
    pub fn write(
        &self,
        doc: &DocId,
        author: &CountyAuthor,
        demand: &Id,
        step: &CountyStep,
    ) -> Result<Id, WriteError> {
        let mut copies = self.copies();
        let mut old = copies.map.remove(doc);
        let mut copy = None;
        let mut outcome: Option<Result<Id, WriteError>> = None;
        let kept = self
            .host
            .try_with_doc(doc, &mut |am| {
                let mut held = match self.catch_up(doc, old.take(), am) {
                    Ok(h) => h,
                    Err(e) => {
                        outcome = Some(Err(WriteError::Storage(e)));
                        return false;
                    }
                };
                let before = held.village.heads();
                let mut rng = rand::rng();
                match held
                    .village
                    .record_county_step(&mut rng, author, demand, step)
                {
                    Ok(id) => {
                        let change = held.village.changes_since(&before);
                        match am.load_incremental(&change) {
                            Ok(_) => {
                                held.saved = held.saved.saturating_add(change.len());
                                copy = Some(held);
                                outcome = Some(Ok(id));
                                true
                            }
                            Err(e) => {
                                // The copy holds a change the relay refused: dropped.
                                outcome = Some(Err(WriteError::Storage(e.into())));
                                false
                            }
                        }
                    }
                    Err(e) => {
                        copy = Some(held);
                        outcome = Some(Err(WriteError::Refused(e)));
                        false
                    }
                }
            })
            .map_err(|e| WriteError::Storage(e.into()))?;
        if let Some(held) = copy {
            Self::put(&mut copies, doc, held);
        }
        self.shrink(&mut copies);
        drop(copies);
        let id =
            outcome.unwrap_or_else(|| Err(WriteError::Storage(anyhow!("nothing was written"))))?;
        if !kept {
            return Err(WriteError::Storage(anyhow!(
                "the relay did not keep the step"
            )));
        }
        // Durable before the page says so.
        self.host.storage().flush().map_err(|e| {
            WriteError::Storage(anyhow::Error::new(e).context("the step was not flushed to disk"))
        })?;
        self.exporter.mark(doc.clone());
        Ok(id)
    }
}
