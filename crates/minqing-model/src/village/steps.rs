//! Workflow steps written to a demand's event log: the fold of the stored
//! events (`ledger::fold`) decides whether a step may be written; this writes
//! it as one automerge change. A cadre's steps come from a laptop
//! (`record_step`); a department's or supervisor's from the county console
//! on the relay (`record_county_step`, docs/console.md).

use std::collections::BTreeMap;

use automerge::ChangeHash;
use automerge::ObjType;
use automerge::transaction::{CommitOptions, Transactable};
use rand::Rng;

use super::{Author, RecordKind, Village, get_map};
use crate::error::ModelError;
use crate::id::Id;
use crate::ledger::{CountyRole, CountyStep, EventKind, Fold, Transition, WorkflowError, fold};

/// The `device_id` of every event written from the county console.
pub const COUNTY_CONSOLE_DEVICE: &str = "county-console";

/// Who writes from the county console: an account of the relay's console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountyAuthor {
    /// The login name.
    pub account: String,
    /// The name shown (stored as the event's `cadre`).
    pub display: String,
    /// The account's role.
    pub role: CountyRole,
    /// The current time in unix milliseconds (from the caller's clock).
    pub now_ms: i64,
}

/// One event to write: who, when, what.
struct NewEvent<'a> {
    device_id: &'a str,
    cadre: &'a str,
    now_ms: i64,
    kind: EventKind,
    fields: BTreeMap<String, String>,
}

impl Village {
    /// The derived workflow state of a demand, or `None` if there is no such
    /// demand in this village.
    pub fn demand_fold(&self, demand: &Id) -> Option<Fold> {
        if !self.contains(RecordKind::Demand, demand) {
            return None;
        }
        Some(fold(&self.demand_events(demand)))
    }

    fn current_fold(&self, demand: &Id) -> Result<Fold, WorkflowError> {
        self.demand_fold(demand).ok_or_else(|| {
            ModelError::NotFound {
                kind: RecordKind::Demand.name(),
                id: demand.clone(),
                village: self.id().clone(),
            }
            .into()
        })
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
        let current = self.current_fold(demand)?;
        let kind = step.kind();
        current.can_apply(demand, &kind)?;
        let event = NewEvent {
            device_id: author.device_id.as_str(),
            cadre: author.cadre.as_str(),
            now_ms: author.now_ms,
            kind,
            fields: step.fields(),
        };
        self.write_event(rng, demand, &current, event)
    }

    /// Records a step from the county console (办理情况, 办结, 督办) on a demand
    /// of this village, authored by a console account: `cadre` is its display
    /// name, `device_id` is [`COUNTY_CONSOLE_DEVICE`], and the fields
    /// `account` and `role` say who. Checked like a cadre's step, and a
    /// department's step must answer the 转办 in force; a step of another
    /// role than the author's is refused. One automerge change (in whatever
    /// actor the document has: on the relay, the relay's); nothing written
    /// on refusal.
    pub fn record_county_step(
        &mut self,
        rng: &mut (impl Rng + ?Sized),
        author: &CountyAuthor,
        demand: &Id,
        step: &CountyStep,
    ) -> Result<Id, WorkflowError> {
        let current = self.current_fold(demand)?;
        if step.role() != author.role {
            return Err(WorkflowError::Role {
                kind: step.kind().name().to_owned(),
                role: author.role,
            });
        }
        current.can_apply_county(demand, step)?;
        let mut fields = step.fields();
        fields.insert("account".to_owned(), author.account.clone());
        fields.insert("role".to_owned(), author.role.as_key().to_owned());
        let event = NewEvent {
            device_id: COUNTY_CONSOLE_DEVICE,
            cadre: &author.display,
            now_ms: author.now_ms,
            kind: step.kind(),
            fields,
        };
        self.write_event(rng, demand, &current, event)
    }

    /// Writes one event as one automerge change, stamped after every event
    /// this replica knows of the demand.
    fn write_event(
        &mut self,
        rng: &mut (impl Rng + ?Sized),
        demand: &Id,
        current: &Fold,
        event: NewEvent<'_>,
    ) -> Result<Id, WorkflowError> {
        // Sort after every event this replica knows, whatever its clock says.
        let at = event.now_ms.max(current.last_at_ms.saturating_add(1));
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
            doc.put(&ev, "kind", event.kind.as_key())?;
            doc.put(&ev, "at", at)?;
            doc.put(&ev, "cadre", event.cadre)?;
            doc.put(&ev, "device_id", event.device_id)?;
            for (k, v) in &event.fields {
                doc.put(&ev, k.as_str(), v.as_str())?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                doc.commit_with(CommitOptions::default().with_time(event.now_ms.div_euclid(1000)));
                Ok(event_id)
            }
            Err(e) => {
                doc.rollback();
                Err(e.into())
            }
        }
    }

    /// The changes this replica holds after `heads` (a replica's heads), as
    /// bytes another replica applies with [`Village::apply_changes`].
    pub fn changes_since(&mut self, heads: &[ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    /// Applies changes from another replica of this village (bytes of
    /// `save`, `save_after` or [`Village::changes_since`]).
    pub fn apply_changes(&mut self, bytes: &[u8]) -> Result<(), ModelError> {
        if !bytes.is_empty() {
            self.doc.load_incremental(bytes)?;
        }
        Ok(())
    }
}
