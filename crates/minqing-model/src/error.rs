//! `ModelError`: what can go wrong reading or writing a village document.

use minqing_sync::DocId;

use crate::id::{Id, IdError};
use crate::validate::ValidationError;

/// Errors from the village document layer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A value failed its check.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// An id or prefix did not name exactly one record.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The document lacks a part of the village layout.
    #[error("village {village}: the document has no `{missing}` map; it was not made by minqing")]
    NotAVillage {
        /// The village.
        village: DocId,
        /// The missing top-level key.
        missing: &'static str,
    },
    /// A referenced record is not in this village.
    #[error("no {kind} {id} in village {village}")]
    NotFound {
        /// Kind of record.
        kind: &'static str,
        /// Its id.
        id: Id,
        /// The village looked in.
        village: DocId,
    },
    /// A resident named with a visit does not live in the visit's household.
    #[error("resident {resident} does not belong to household {household}")]
    ResidentNotInHousehold {
        /// The resident.
        resident: Id,
        /// The household given.
        household: Id,
    },
    /// A new record's id is already taken (a random collision: try again).
    #[error("{kind} id {id} is already taken; run the command again")]
    DuplicateId {
        /// Kind of record.
        kind: &'static str,
        /// The id.
        id: Id,
    },
    /// automerge refused an operation or bytes.
    #[error("village document: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}
