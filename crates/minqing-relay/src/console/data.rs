//! The console's view of the villages: its own copy of each village it has
//! read (a `minqing_model::Village`), brought up to the relay's copy in the
//! document cache before every read, and the one write path (a county step:
//! checked on the merged state, applied to the relay's copy, appended,
//! flushed, exported).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result, anyhow};
use minqing_model::{CountyAuthor, CountyStep, Id, Village, WorkflowError};
use minqing_sync::{DocHost, DocId};

use crate::cache::DocCache;
use crate::export::Exporter;
use crate::lock::lock_or_reload;

/// The console's copies of the villages.
pub struct Villages {
    host: Arc<DocCache>,
    exporter: Arc<Exporter>,
    actor: Vec<u8>,
    copies: Mutex<BTreeMap<DocId, Village>>,
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
    pub fn new(host: Arc<DocCache>, exporter: Arc<Exporter>, actor: Vec<u8>) -> Villages {
        Villages {
            host,
            exporter,
            actor,
            copies: Mutex::new(BTreeMap::new()),
        }
    }

    fn copies(&self) -> MutexGuard<'_, BTreeMap<DocId, Village>> {
        // Poisoned: every copy is read afresh.
        lock_or_reload(&self.copies, "the console's villages", BTreeMap::new)
    }

    /// Brings `copy` (or a new one) up to the relay's `am`.
    fn catch_up(
        &self,
        doc: &DocId,
        copy: Option<Village>,
        am: &automerge::Automerge,
    ) -> Result<Village> {
        match copy {
            Some(mut v) => {
                let heads = v.heads();
                let bytes = am.save_after(&heads);
                v.apply_changes(&bytes)?;
                Ok(v)
            }
            None => {
                let mut v = Village::load(doc.clone(), &am.save())
                    .with_context(|| format!("village {doc} does not load"))?;
                v.set_actor(&self.actor);
                Ok(v)
            }
        }
    }

    /// Runs `f` on the current copy of `doc`.
    pub fn read<T>(&self, doc: &DocId, f: impl FnOnce(&Village) -> T) -> Result<T> {
        let mut copies = self.copies();
        let mut old = copies.remove(doc);
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
        let v = result.ok_or_else(|| anyhow!("village {doc} was not read"))?;
        let out = f(&v);
        copies.insert(doc.clone(), v);
        Ok(out)
    }

    /// Runs `f` on the current copies of `docs` (a village that does not
    /// load is left out, with a warning).
    pub fn read_all<T>(&self, docs: &[DocId], f: impl FnOnce(&[&Village]) -> T) -> T {
        let mut copies = self.copies();
        for doc in docs {
            let mut old = copies.remove(doc);
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
            if let Some(v) = fresh {
                copies.insert(doc.clone(), v);
            }
        }
        let held: Vec<&Village> = docs.iter().filter_map(|d| copies.get(d)).collect();
        f(&held)
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
        let mut old = copies.remove(doc);
        let mut copy = None;
        let mut outcome: Option<Result<Id, WriteError>> = None;
        let kept = self
            .host
            .try_with_doc(doc, &mut |am| {
                let mut v = match self.catch_up(doc, old.take(), am) {
                    Ok(v) => v,
                    Err(e) => {
                        outcome = Some(Err(WriteError::Storage(e)));
                        return false;
                    }
                };
                let before = v.heads();
                let mut rng = rand::rng();
                match v.record_county_step(&mut rng, author, demand, step) {
                    Ok(id) => {
                        let change = v.changes_since(&before);
                        match am.load_incremental(&change) {
                            Ok(_) => {
                                copy = Some(v);
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
                        copy = Some(v);
                        outcome = Some(Err(WriteError::Refused(e)));
                        false
                    }
                }
            })
            .map_err(|e| WriteError::Storage(e.into()))?;
        if let Some(v) = copy {
            copies.insert(doc.clone(), v);
        }
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
