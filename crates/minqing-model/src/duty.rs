//! Duty records: leave (请假) from a monthly visit round, and the make-up visit
//! (补访) owed for it.
//!
//! A leave is a record in the village's `leaves` map:
//! `<id> → { month: "YYYY-MM", reason, cadre, device_id, created_at }`.
//!
//! A leave is identified by **(cadre, month)**: the same cadre's leave for the
//! same month recorded twice (in two villages, or on two laptops offline)
//! counts once ([`settle_leaves`] keeps the earliest record). Each leave for
//! month M is owed one 补访 visit by the same cadre dated in a month after M,
//! in any village considered. Make-up visits settle leaves oldest first, in
//! visit date order; one visit settles at most one leave.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::validate::{Month, ValidationError, VisitKind, check_text, parse_date};
use crate::view::VisitView;

/// The reason for a leave, 1-200 characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct LeaveReason(String);

impl LeaveReason {
    /// Longest value accepted, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Trims and checks the reason.
    pub fn parse(input: &str) -> Result<LeaveReason, ValidationError> {
        check_text(
            "leave reason",
            "--reason 参加县里培训",
            input,
            LeaveReason::MAX_CHARS,
            false,
        )
        .map(LeaveReason)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Errors recording a leave.
#[derive(Debug, thiserror::Error)]
pub enum DutyError {
    /// The cadre already has a leave for that month in this village.
    #[error("{cadre} already has a leave for {month} in village {village}; nothing to do")]
    AlreadyOnLeave {
        /// The cadre.
        cadre: String,
        /// The month.
        month: Month,
        /// The village.
        village: String,
    },
    /// The document layer failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A leave record, as read (and printed by `--json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveView {
    /// Leave id.
    pub id: String,
    /// Village the record is kept in.
    pub village_id: String,
    /// The cadre on leave.
    pub cadre: String,
    /// The month of the missed round, `YYYY-MM`.
    pub month: String,
    /// Why.
    pub reason: String,
    /// Device that recorded it.
    pub device_id: String,
    /// When it was recorded (RFC 3339, UTC).
    pub created_at: String,
}

impl LeaveView {
    /// The month, if the stored value is one.
    pub fn month(&self) -> Option<Month> {
        Month::parse(&self.month).ok()
    }
}

/// A leave and the make-up visit that settled it, if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaveStatus {
    /// The leave.
    #[serde(flatten)]
    pub leave: LeaveView,
    /// Id of the 补访 visit that settled it.
    pub settled_by: Option<String>,
    /// Date of that visit, `YYYY-MM-DD`.
    pub settled_on: Option<String>,
}

/// The month a date falls in.
pub fn month_of(date: NaiveDate) -> Month {
    Month {
        year: date.year(),
        month: date.month(),
    }
}

/// Matches leaves with the make-up visits that settle them, across whatever
/// villages the slices come from. Leaves are de-duplicated by (cadre, month),
/// keeping the earliest record; records with a malformed month are dropped.
/// The result is sorted by cadre, then month.
pub fn settle_leaves(leaves: &[LeaveView], visits: &[VisitView]) -> Vec<LeaveStatus> {
    // (cadre, month) -> earliest record.
    let mut unique: BTreeMap<(String, Month), &LeaveView> = BTreeMap::new();
    for l in leaves {
        let Some(month) = l.month() else { continue };
        let slot = unique.entry((l.cadre.clone(), month)).or_insert(l);
        if (&l.created_at, &l.id) < (&slot.created_at, &slot.id) {
            *slot = l;
        }
    }
    let mut makeups: Vec<(NaiveDate, &VisitView)> = visits
        .iter()
        .filter(|v| v.kind == VisitKind::Makeup.as_str())
        .filter_map(|v| Some((parse_date(&v.date).ok()?, v)))
        .collect();
    makeups.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    let mut out: Vec<LeaveStatus> = unique
        .values()
        .map(|l| LeaveStatus {
            leave: (*l).clone(),
            settled_by: None,
            settled_on: None,
        })
        .collect();
    // `out` is sorted by (cadre, month): the first pending leave of a cadre
    // with an earlier month is the oldest one owed.
    for (date, visit) in makeups {
        let visit_month = month_of(date);
        if let Some(status) = out.iter_mut().find(|s| {
            s.settled_by.is_none()
                && s.leave.cadre == visit.cadre
                && s.leave.month().is_some_and(|m| m < visit_month)
        }) {
            status.settled_by = Some(visit.id.clone());
            status.settled_on = Some(visit.date.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    fn month(s: &str) -> Month {
        Month::parse(s).unwrap()
    }

    fn reason() -> LeaveReason {
        LeaveReason::parse("参加县里培训").unwrap()
    }

    #[test]
    fn leave_is_recorded_once_per_cadre_and_month() {
        let mut v = village("V1", "小河村");
        let li = author(DEV_A, "李书记", ms("2026-03-01"));
        let id = v
            .add_leave(&mut rng(1), &li, month("2026-03"), &reason())
            .unwrap();
        let leaves = v.leaves();
        assert_eq!(leaves.len(), 1);
        assert_eq!(leaves[0].id, id.as_str());
        assert_eq!(leaves[0].month, "2026-03");
        assert_eq!(leaves[0].cadre, "李书记");
        assert_eq!(leaves[0].reason, "参加县里培训");
        let heads = v.heads();
        let err = v
            .add_leave(&mut rng(2), &li, month("2026-03"), &reason())
            .unwrap_err();
        assert!(
            err.to_string().contains("already has a leave for 2026-03"),
            "{err}"
        );
        assert_eq!(v.heads(), heads);
        // Another cadre, or another month, is fine.
        let wang = author(DEV_A, "王芳", ms("2026-03-01"));
        v.add_leave(&mut rng(3), &wang, month("2026-03"), &reason())
            .unwrap();
        v.add_leave(&mut rng(4), &li, month("2026-04"), &reason())
            .unwrap();
        assert_eq!(v.leaves().len(), 3);
        assert!(LeaveReason::parse(" \u{3000}").is_err());
    }

    #[test]
    fn makeups_in_a_later_month_settle_leaves_oldest_first() {
        let mut r = rng(7);
        let mut v = village("V1", "小河村");
        let li = author(DEV_A, "李书记", ms("2026-01-01"));
        let wang = author(DEV_A, "王芳", ms("2026-01-01"));
        let h = household(&mut v, &mut r, &li, "小河村1组1号");
        v.add_leave(&mut r, &li, month("2026-01"), &reason())
            .unwrap();
        v.add_leave(&mut r, &li, month("2026-02"), &reason())
            .unwrap();
        // A 补访 in the leave's own month does not settle it.
        visit(
            &mut v,
            &mut r,
            &li,
            &h,
            None,
            VisitKind::Makeup,
            "2026-01-20",
        );
        // Another cadre's 补访 settles nothing of 李书记's.
        visit(
            &mut v,
            &mut r,
            &wang,
            &h,
            None,
            VisitKind::Makeup,
            "2026-03-02",
        );
        // A regular visit is not a make-up.
        visit(
            &mut v,
            &mut r,
            &li,
            &h,
            None,
            VisitKind::Regular,
            "2026-03-01",
        );
        let m1 = visit(
            &mut v,
            &mut r,
            &li,
            &h,
            None,
            VisitKind::Makeup,
            "2026-03-05",
        );
        let s = settle_leaves(&v.leaves(), &v.visits());
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].leave.month.as_str(), s[0].settled_by.as_deref()),
            ("2026-01", Some(m1.as_str()))
        );
        assert_eq!(s[0].settled_on.as_deref(), Some("2026-03-05"));
        assert_eq!(
            (s[1].leave.month.as_str(), s[1].settled_by.as_deref()),
            ("2026-02", None)
        );
        let m2 = visit(
            &mut v,
            &mut r,
            &li,
            &h,
            None,
            VisitKind::Makeup,
            "2026-03-06",
        );
        let s = settle_leaves(&v.leaves(), &v.visits());
        assert_eq!(s[1].settled_by.as_deref(), Some(m2.as_str()));
    }

    #[test]
    fn the_same_leave_taken_on_two_laptops_counts_once() {
        let mut a = village("V1", "小河村");
        let mut b = fork(&mut a, DEV_B);
        let li_a = author(DEV_A, "李书记", ms("2026-03-01"));
        let li_b = author(DEV_B, "李书记", ms("2026-03-02"));
        let ida = a
            .add_leave(&mut rng(1), &li_a, month("2026-03"), &reason())
            .unwrap();
        b.add_leave(&mut rng(2), &li_b, month("2026-03"), &reason())
            .unwrap();
        sync(&mut a, &mut b);
        assert_eq!(a.leaves(), b.leaves());
        assert_eq!(a.leaves().len(), 2, "both records are kept");
        let s = settle_leaves(&a.leaves(), &a.visits());
        assert_eq!(s.len(), 1, "but they are one leave");
        assert_eq!(
            s[0].leave.id,
            ida.as_str(),
            "the earliest record stands for it"
        );
    }
}
