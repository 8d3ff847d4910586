//! The demand ledger's event log and the pure fold that derives a demand's status.
//!
//! A demand (诉求) is an append-only log of events kept in an automerge map keyed
//! by event id, so that events appended offline on several laptops are all kept
//! after a merge. Its status is never stored: [`demand_status`] derives it from
//! the merged events, deterministically. This issue knows only `opened` (受理);
//! the workflow (直办, 转办, 督办, 反馈, 回访, 销号) adds kinds and fold rules.

use std::collections::BTreeMap;
use std::fmt;

use crate::id::Id;

/// What happened to a demand. Unknown kinds (written by a newer minqing) are
/// kept and shown, and ignored by the fold.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// 受理: the demand was taken down from the resident.
    Opened,
    /// A kind this version does not know, kept verbatim.
    Other(String),
}

impl EventKind {
    /// The key stored in the document (`opened`, ...).
    pub fn as_key(&self) -> &str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Other(s) => s,
        }
    }

    /// Reads a stored key.
    pub fn from_key(key: &str) -> EventKind {
        match key {
            "opened" => EventKind::Opened,
            other => EventKind::Other(other.to_owned()),
        }
    }

    /// The Chinese name shown to cadres.
    pub fn name(&self) -> &str {
        match self {
            EventKind::Opened => "受理",
            EventKind::Other(s) => s,
        }
    }
}

/// One entry of a demand's event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemandEvent {
    /// The event's id (its key in the `events` map).
    pub id: Id,
    /// What happened.
    pub kind: EventKind,
    /// When, in unix milliseconds (the writing laptop's clock).
    pub at_ms: i64,
    /// The cadre who recorded it.
    pub cadre: String,
    /// The device that recorded it.
    pub device_id: String,
    /// Further payload fields of the event (note, department, satisfaction...).
    pub fields: BTreeMap<String, String>,
}

/// A demand's status, derived from its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum DemandStatus {
    /// 受理: taken down, not yet handled.
    Accepted,
}

impl DemandStatus {
    /// The Chinese name shown and printed in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            DemandStatus::Accepted => "受理",
        }
    }
}

impl fmt::Display for DemandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Orders events the way the fold reads them: by time, then id (ids break
/// ties between laptops deterministically).
pub fn sort_events(events: &mut [DemandEvent]) {
    events.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
}

/// Derives a demand's status from its merged event log: a pure function of the
/// set of events, whatever order they arrive in.
pub fn demand_status(events: &[DemandEvent]) -> DemandStatus {
    let mut sorted = events.to_vec();
    sort_events(&mut sorted);
    let mut status = DemandStatus::Accepted;
    for event in &sorted {
        status = match (&event.kind, status) {
            (EventKind::Opened, _) => DemandStatus::Accepted,
            (EventKind::Other(_), s) => s,
        };
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, kind: &str, at_ms: i64) -> DemandEvent {
        DemandEvent {
            id: Id::parse(id).unwrap(),
            kind: EventKind::from_key(kind),
            at_ms,
            cadre: "李书记".into(),
            device_id: "d".into(),
            fields: BTreeMap::new(),
        }
    }

    #[test]
    fn opened_demand_is_accepted_and_unknown_kinds_are_ignored() {
        let a = ev("aaaaaaaaaaaaaaaa", "opened", 1);
        let b = ev("bbbbbbbbbbbbbbbb", "escalated-by-future-version", 2);
        assert_eq!(demand_status(std::slice::from_ref(&a)), DemandStatus::Accepted);
        assert_eq!(
            demand_status(&[b.clone(), a.clone()]),
            DemandStatus::Accepted
        );
        assert_eq!(DemandStatus::Accepted.name(), "受理");
        assert_eq!(EventKind::from_key("opened").name(), "受理");
        assert_eq!(b.kind.as_key(), "escalated-by-future-version");
    }
}
