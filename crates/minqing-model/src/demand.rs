//! The demand ledger's event log and the pure fold that derives a demand's status.
//!
//! A demand (诉求) is an append-only log of events kept in an automerge map keyed
//! by event id, so that events appended offline on several laptops are all kept
//! after a merge. Its status is never stored: [`demand_status`] derives it from
//! the merged events, deterministically; the fold and its rules live in
//! [`crate::workflow`].

use std::collections::BTreeMap;
use std::fmt;

use crate::id::Id;

/// What happened to a demand. Unknown kinds (written by a newer minqing) are
/// kept and shown, and ignored by the fold.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// 受理: the demand was taken down from the resident.
    Opened,
    /// 直办: handled directly by the cadre.
    Handled,
    /// 转办: transferred to a department.
    Transferred,
    /// 督办: supervised.
    Supervised,
    /// 反馈: the answer was given to the resident.
    Feedback,
    /// 回访: the return visit, with satisfaction.
    Revisited,
    /// 销号: closed.
    Closed,
    /// 重开: reopened.
    Reopened,
    /// A kind this version does not know, kept verbatim.
    Other(String),
}

impl EventKind {
    /// The key stored in the document (`opened`, ...).
    pub fn as_key(&self) -> &str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Handled => "handled",
            EventKind::Transferred => "transferred",
            EventKind::Supervised => "supervised",
            EventKind::Feedback => "feedback",
            EventKind::Revisited => "revisited",
            EventKind::Closed => "closed",
            EventKind::Reopened => "reopened",
            EventKind::Other(s) => s,
        }
    }

    /// Reads a stored key.
    pub fn from_key(key: &str) -> EventKind {
        match key {
            "opened" => EventKind::Opened,
            "handled" => EventKind::Handled,
            "transferred" => EventKind::Transferred,
            "supervised" => EventKind::Supervised,
            "feedback" => EventKind::Feedback,
            "revisited" => EventKind::Revisited,
            "closed" => EventKind::Closed,
            "reopened" => EventKind::Reopened,
            other => EventKind::Other(other.to_owned()),
        }
    }

    /// The Chinese name shown to cadres.
    pub fn name(&self) -> &str {
        match self {
            EventKind::Opened => "受理",
            EventKind::Handled => "直办",
            EventKind::Transferred => "转办",
            EventKind::Supervised => "督办",
            EventKind::Feedback => "反馈",
            EventKind::Revisited => "回访",
            EventKind::Closed => "销号",
            EventKind::Reopened => "重开",
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
    /// 办理中: handled directly or transferred, no answer yet.
    InProgress,
    /// 已反馈: the answer was given to the resident.
    Answered,
    /// 已回访: the return visit was made.
    Revisited,
    /// 已销号: closed.
    Closed,
}

impl DemandStatus {
    /// The Chinese name shown and printed in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            DemandStatus::Accepted => "受理",
            DemandStatus::InProgress => "办理中",
            DemandStatus::Answered => "已反馈",
            DemandStatus::Revisited => "已回访",
            DemandStatus::Closed => "已销号",
        }
    }
}

impl fmt::Display for DemandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Orders events the way the fold reads them: the `opened` event first (a
/// laptop whose clock is behind must not put a step before the 受理), then by
/// time, then id (ids break ties between laptops deterministically).
pub fn sort_events(events: &mut [DemandEvent]) {
    events.sort_by(|a, b| {
        (a.kind != EventKind::Opened, a.at_ms, &a.id).cmp(&(
            b.kind != EventKind::Opened,
            b.at_ms,
            &b.id,
        ))
    });
}

/// Derives a demand's status from its merged event log: a pure function of the
/// set of events, whatever order they arrive in.
pub fn demand_status(events: &[DemandEvent]) -> DemandStatus {
    crate::workflow::fold(events).status
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
        assert_eq!(
            demand_status(std::slice::from_ref(&a)),
            DemandStatus::Accepted
        );
        assert_eq!(
            demand_status(&[b.clone(), a.clone()]),
            DemandStatus::Accepted
        );
        assert_eq!(DemandStatus::Accepted.name(), "受理");
        assert_eq!(EventKind::from_key("opened").name(), "受理");
        assert_eq!(b.kind.as_key(), "escalated-by-future-version");
    }
}
