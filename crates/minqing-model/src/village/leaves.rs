//! Duty records in the village's `leaves` map: reading them and recording a
//! leave (the rules, e.g. one leave per cadre and month, are in `duty`).

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ObjType, ROOT, ReadDoc};
use rand::Rng;

use super::{Author, Village, get_i64, get_map, get_str};
use crate::duty::{DutyError, LeaveReason, LeaveView};
use crate::error::ModelError;
use crate::id::Id;
use crate::validate::Month;
use crate::view::rfc3339_ms;

impl Village {
    fn leaves_root(&self) -> Result<automerge::ObjId, ModelError> {
        get_map(&self.doc, &ROOT, "leaves").ok_or_else(|| ModelError::NotAVillage {
            village: self.id().clone(),
            missing: "leaves",
        })
    }

    /// Every leave record in this village, by month, cadre, then id.
    pub fn leaves(&self) -> Vec<LeaveView> {
        let Ok(root) = self.leaves_root() else {
            return Vec::new();
        };
        let doc = &self.doc;
        let mut all: Vec<LeaveView> = doc
            .keys(&root)
            .filter_map(|key| {
                let obj = get_map(doc, &root, &key)?;
                let s = |k| get_str(doc, &obj, k).unwrap_or_default();
                let created = get_i64(doc, &obj, "created_at").unwrap_or(0);
                Some(LeaveView {
                    id: key.clone(),
                    village_id: self.id().to_string(),
                    cadre: s("cadre"),
                    month: s("month"),
                    reason: s("reason"),
                    device_id: s("device_id"),
                    created_at: rfc3339_ms(created),
                })
            })
            .collect();
        all.sort_by(|a, b| (&a.month, &a.cadre, &a.id).cmp(&(&b.month, &b.cadre, &b.id)));
        all
    }

    /// Records a leave of the author for `month`; refused if the author already
    /// has one for that month in this village. One automerge change.
    pub fn add_leave(
        &mut self,
        rng: &mut (impl Rng + ?Sized),
        author: &Author,
        month: Month,
        reason: &LeaveReason,
    ) -> Result<Id, DutyError> {
        let month_str = month.to_string();
        if self
            .leaves()
            .iter()
            .any(|l| l.cadre == author.cadre.as_str() && l.month == month_str)
        {
            return Err(DutyError::AlreadyOnLeave {
                cadre: author.cadre.to_string(),
                month,
                village: self.id().to_string(),
            });
        }
        let root = self.leaves_root()?;
        let id = Id::random(rng);
        let doc = &mut self.doc;
        let result = (|| -> Result<(), ModelError> {
            if doc.get(&root, id.as_str())?.is_some() {
                return Err(ModelError::DuplicateId {
                    kind: "leave",
                    id: id.clone(),
                });
            }
            let obj = doc.put_object(&root, id.as_str(), ObjType::Map)?;
            doc.put(&obj, "month", month_str.as_str())?;
            doc.put(&obj, "reason", reason.as_str())?;
            doc.put(&obj, "cadre", author.cadre.as_str())?;
            doc.put(&obj, "device_id", author.device_id.as_str())?;
            doc.put(&obj, "created_at", author.now_ms)?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                doc.commit_with(CommitOptions::default().with_time(author.now_ms.div_euclid(1000)));
                Ok(id)
            }
            Err(e) => {
                doc.rollback();
                Err(e.into())
            }
        }
    }
}
