//! `DocId`: the name of one synced document (a village id).

use std::fmt;

/// Longest document id accepted, in bytes.
pub const MAX_DOC_ID_LEN: usize = 64;

/// The id of one synced document. For minqing this is a village id such as `V001`
/// or `xiaohe-cun`: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocId(String);

/// Why a string is not a valid [`DocId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocIdError {
    /// The id is empty.
    #[error("a village id cannot be empty")]
    Empty,
    /// The id is longer than [`MAX_DOC_ID_LEN`].
    #[error("village id is {0} bytes long; at most {MAX_DOC_ID_LEN} are allowed")]
    TooLong(usize),
    /// The id contains a character outside `[A-Za-z0-9._-]`.
    #[error("village id {id:?} contains {ch:?}; use only letters A-Z, digits, '-', '_' or '.'")]
    BadChar {
        /// The offending id.
        id: String,
        /// The first character not allowed.
        ch: char,
    },
}

impl DocId {
    /// Checks and wraps a document id.
    pub fn new(id: impl Into<String>) -> Result<Self, DocIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(DocIdError::Empty);
        }
        if id.len() > MAX_DOC_ID_LEN {
            return Err(DocIdError::TooLong(id.len()));
        }
        if let Some(ch) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(DocIdError::BadChar { id, ch });
        }
        Ok(DocId(id))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for DocId {
    type Err = DocIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DocId::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids_and_rejects_others() {
        assert!(DocId::new("V001").is_ok());
        assert!(DocId::new("xiaohe-cun.2026").is_ok());
        assert_eq!(DocId::new(""), Err(DocIdError::Empty));
        assert!(matches!(
            DocId::new("小河村"),
            Err(DocIdError::BadChar { ch: '小', .. })
        ));
        assert!(matches!(
            DocId::new("a/b"),
            Err(DocIdError::BadChar { ch: '/', .. })
        ));
        assert_eq!(DocId::new("x".repeat(65)), Err(DocIdError::TooLong(65)));
    }
}
