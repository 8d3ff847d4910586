//! Workflow steps written to a demand's event log: the fold of the stored
//! events (`ledger::fold`) decides whether a step may be written; this writes
//! it as one automerge change.

use automerge::ObjType;
use automerge::transaction::{CommitOptions, Transactable};
use rand::Rng;

use super::{Author, RecordKind, Village, get_map};
use crate::error::ModelError;
use crate::id::Id;
use crate::ledger::{Fold, Transition, WorkflowError, fold};

impl Village {
    /// The derived workflow state of a demand, or `None` if there is no such
    /// demand in this village.
    pub fn demand_fold(&self, demand: &Id) -> Option<Fold> {
        if !self.contains(RecordKind::Demand, demand) {
            return None;
        }
        Some(fold(&self.demand_events(demand)))
    }

    /// Records a workflow step on a demand of this village, after checking it
    /// is valid in the demand's current (merged) state. One automerge change;
    /// on refusal or error nothing is written. Returns the new event's id.
    pub fn record_step(
        &mut self,
        rng: &mut (impl Rng + ?Sized),
        author: &Author,
        demand: &Id,
        step: &Transition,
    ) -> Result<Id, WorkflowError> {
        let current = self
            .demand_fold(demand)
            .ok_or_else(|| ModelError::NotFound {
                kind: RecordKind::Demand.name(),
                id: demand.clone(),
                village: self.id().clone(),
            })?;
        let kind = step.kind();
        current.can_apply(demand, &kind)?;
        // Sort after every event this laptop knows, whatever its clock says.
        let at = author.now_ms.max(current.last_at_ms.saturating_add(1));
        let event_id = Id::random(rng);
        let village = self.id().clone();
        let roots_demands = self.roots.demands.clone();
        let doc = &mut self.doc;
        let result = (|| -> Result<(), ModelError> {
            let record = get_map(doc, &roots_demands, demand.as_str()).ok_or_else(|| {
                ModelError::NotFound {
                    kind: RecordKind::Demand.name(),
                    id: demand.clone(),
                    village: village.clone(),
                }
            })?;
            let events = match get_map(doc, &record, "events") {
                Some(e) => e,
                None => doc.put_object(&record, "events", ObjType::Map)?,
            };
            if get_map(doc, &events, event_id.as_str()).is_some() {
                return Err(ModelError::DuplicateId {
                    kind: "demand event",
                    id: event_id.clone(),
                });
            }
            let ev = doc.put_object(&events, event_id.as_str(), ObjType::Map)?;
            doc.put(&ev, "kind", kind.as_key())?;
            doc.put(&ev, "at", at)?;
            doc.put(&ev, "cadre", author.cadre.as_str())?;
            doc.put(&ev, "device_id", author.device_id.as_str())?;
            for (k, v) in step.fields() {
                doc.put(&ev, k.as_str(), v)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                doc.commit_with(CommitOptions::default().with_time(author.now_ms.div_euclid(1000)));
                Ok(event_id)
            }
            Err(e) => {
                doc.rollback();
                Err(e.into())
            }
        }
    }
}
