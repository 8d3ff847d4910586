//! Duplicate residents and their merge, in the document: following
//! `merged_into`, listing residents that share a 身份证号, and folding one
//! resident into another (the rules are in `dedupe`'s module docs).

use std::collections::BTreeMap;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ObjId, ObjType, ReadDoc};

use super::{Author, RecordKind, Village, get_map, get_str};
use crate::dedupe::{DedupeError, DuplicateGroup, MAX_MERGE_CHAIN};
use crate::error::ModelError;
use crate::id::Id;
use crate::resident::{RESIDENT_FIELDS, ResidentView};

impl Village {
    fn resident_obj(&self, id: &str) -> Option<ObjId> {
        get_map(&self.doc, &self.roots.residents, id)
    }

    /// The resident an id stands for after merges: follows `merged_into`
    /// (ignoring links to unknown residents); in a cycle, the smallest id of
    /// the cycle. An unknown id resolves to itself.
    pub fn canonical_resident(&self, id: &str) -> String {
        canonical(
            id,
            |cur| {
                self.resident_obj(cur)
                    .and_then(|o| get_str(&self.doc, &o, "merged_into"))
            },
            |n| self.resident_obj(n).is_some(),
        )
    }

    /// Whether a resident has been merged into another (and so is hidden).
    pub fn is_merged_away(&self, id: &str) -> bool {
        self.canonical_resident(id) != id
    }

    /// Live residents sharing a 身份证号, by number.
    pub fn duplicate_residents(&self) -> Vec<DuplicateGroup> {
        let mut by_card: BTreeMap<String, Vec<ResidentView>> = BTreeMap::new();
        for r in self.residents() {
            if let Some(card) = r.id_card.clone() {
                by_card.entry(card).or_default().push(r);
            }
        }
        by_card
            .into_iter()
            .filter(|(_, rs)| rs.len() > 1)
            .map(|(id_card, residents)| DuplicateGroup { id_card, residents })
            .collect()
    }

    /// Folds resident `other` into `keep`: marks `other` merged, fills `keep`'s
    /// empty fields from it and adds its tags. One change; nothing written on
    /// error.
    pub fn merge_residents(
        &mut self,
        author: &Author,
        keep: &Id,
        other: &Id,
    ) -> Result<(), DedupeError> {
        if keep == other {
            return Err(DedupeError::Same(keep.clone()));
        }
        for id in [keep, other] {
            if !self.contains(RecordKind::Resident, id) {
                return Err(ModelError::NotFound {
                    kind: RecordKind::Resident.name(),
                    id: id.clone(),
                    village: self.id().clone(),
                }
                .into());
            }
            let into = self.canonical_resident(id.as_str());
            if into != id.as_str() {
                return Err(DedupeError::AlreadyMerged {
                    id: id.clone(),
                    into,
                });
            }
        }
        let (Some(keep_obj), Some(other_obj)) = (
            self.resident_obj(keep.as_str()),
            self.resident_obj(other.as_str()),
        ) else {
            // Both were found by `contains` just above.
            return Err(ModelError::NotFound {
                kind: RecordKind::Resident.name(),
                id: other.clone(),
                village: self.id().clone(),
            }
            .into());
        };
        let doc = &mut self.doc;
        let result = (|| -> Result<(), ModelError> {
            for field in RESIDENT_FIELDS.iter().map(|f| f.key) {
                if get_str(doc, &keep_obj, field).is_none()
                    && let Some(v) = get_str(doc, &other_obj, field)
                {
                    doc.put(&keep_obj, field, v)?;
                }
            }
            if let Some(other_tags) = get_map(doc, &other_obj, "tags") {
                let tags: Vec<String> = doc.keys(&other_tags).collect();
                if !tags.is_empty() {
                    let keep_tags = match get_map(doc, &keep_obj, "tags") {
                        Some(t) => t,
                        None => doc.put_object(&keep_obj, "tags", ObjType::Map)?,
                    };
                    for t in tags {
                        if doc.get(&keep_tags, t.as_str())?.is_none() {
                            doc.put(&keep_tags, t.as_str(), true)?;
                        }
                    }
                }
            }
            doc.put(&other_obj, "merged_into", keep.as_str())?;
            doc.put(&other_obj, "merged_at", author.now_ms)?;
            doc.put(&other_obj, "merged_by", author.cadre.as_str())?;
            doc.put(&keep_obj, "updated_at", author.now_ms)?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                doc.commit_with(CommitOptions::default().with_time(author.now_ms.div_euclid(1000)));
                Ok(())
            }
            Err(e) => {
                doc.rollback();
                Err(e.into())
            }
        }
    }
}

/// The resident an id stands for after merges ([`Village::canonical_resident`]),
/// given how to read a resident's `merged_into` and whether a resident exists.
fn canonical(
    id: &str,
    merged_into: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&str) -> bool,
) -> String {
    let mut chain: Vec<String> = vec![id.to_owned()];
    loop {
        let Some(cur) = chain.last() else {
            return id.to_owned();
        };
        let next = merged_into(cur).filter(|n| exists(n));
        let Some(next) = next else {
            return cur.clone();
        };
        if let Some(pos) = chain.iter().position(|c| *c == next) {
            return chain[pos..].iter().min().cloned().unwrap_or(next);
        }
        if chain.len() >= MAX_MERGE_CHAIN {
            return chain.iter().min().cloned().unwrap_or(next);
        }
        chain.push(next);
    }
}

impl super::Merges {
    /// [`Village::canonical_resident`] from what was read once.
    pub(crate) fn canonical(&self, id: &str) -> String {
        canonical(
            id,
            |cur| self.links.get(cur).cloned(),
            |n| self.residents.contains(n),
        )
    }
}
