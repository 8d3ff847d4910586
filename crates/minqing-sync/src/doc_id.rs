//! `DocId`: the name of one synced document (a village id), and the one id rule
//! shared by village and device ids (`minqing_model::ids` is its public face).

use std::fmt;

/// Longest document id accepted, in bytes.
pub const MAX_DOC_ID_LEN: usize = 64;

/// Names that Windows reserves for devices in every directory (with or without
/// an extension, in any case). An id becomes a file name on the relay
/// (`export/<id>.automerge`) and on laptops (`removed/<id>-…`), so these are
/// refused everywhere.
pub const RESERVED_NAMES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM0", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7",
    "COM8", "COM9", "LPT0", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// The id of one synced document. For minqing this is a village id such as `V001`
/// or `xiaohe-cun`: see [`check_id`] for the rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocId(String);

/// Why a string is not a valid id (village or device).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocIdError {
    /// The id is empty.
    #[error("a village id cannot be empty")]
    Empty,
    /// The id is longer than [`MAX_DOC_ID_LEN`].
    #[error("village id is {0} bytes long; at most {MAX_DOC_ID_LEN} are allowed")]
    TooLong(usize),
    /// The id contains a character outside `[A-Za-z0-9_-]`.
    #[error(
        "village id {id:?} contains {ch:?}; use only letters A-Z, digits, '-' or '_' (e.g. V001, xiaohe-cun)"
    )]
    BadChar {
        /// The offending id.
        id: String,
        /// The first character not allowed.
        ch: char,
    },
    /// The id starts with `-` or `_` (or `.`): it must start with a letter or digit.
    #[error("village id {id:?} must start with a letter or a digit (e.g. V001)")]
    BadStart {
        /// The offending id.
        id: String,
    },
    /// The id is a device name Windows reserves (CON, NUL, COM1, ...).
    #[error("village id {id:?} is a reserved device name on Windows; choose another id")]
    Reserved {
        /// The offending id.
        id: String,
    },
}

/// The one rule for village and device ids: 1 to 64 bytes of
/// `[A-Za-z0-9_-]`, starting with a letter or digit
/// (`[A-Za-z0-9][A-Za-z0-9_-]{0,63}`), and not a reserved device name
/// ([`RESERVED_NAMES`], case-insensitive). So `.`, `..`, `.hidden`, `a/b`,
/// `CON` and `nul` are all refused: an id is always a safe, visible file name.
pub fn check_id(id: &str) -> Result<(), DocIdError> {
    let Some(first) = id.chars().next() else {
        return Err(DocIdError::Empty);
    };
    if id.len() > MAX_DOC_ID_LEN {
        return Err(DocIdError::TooLong(id.len()));
    }
    if let Some(ch) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
    {
        return Err(DocIdError::BadChar {
            id: id.to_owned(),
            ch,
        });
    }
    if !first.is_ascii_alphanumeric() {
        return Err(DocIdError::BadStart { id: id.to_owned() });
    }
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(id)) {
        return Err(DocIdError::Reserved { id: id.to_owned() });
    }
    Ok(())
}

impl DocId {
    /// Checks (with [`check_id`]) and wraps a document id.
    pub fn new(id: impl Into<String>) -> Result<Self, DocIdError> {
        let id = id.into();
        check_id(&id)?;
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
        assert!(DocId::new("xiaohe-cun_2026").is_ok());
        assert!(DocId::new("0").is_ok());
        assert!(DocId::new("x".repeat(64)).is_ok());
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

    #[test]
    fn dots_hidden_names_and_reserved_device_names_are_refused() {
        for bad in [".", "..", "...", ".hidden", "a.b", "../../etc", "V1."] {
            assert!(DocId::new(bad).is_err(), "{bad:?} accepted");
        }
        for bad in ["-V1", "_V1"] {
            assert!(
                matches!(DocId::new(bad), Err(DocIdError::BadStart { .. })),
                "{bad}"
            );
        }
        for bad in [
            "CON", "con", "Nul", "AUX", "PRN", "COM1", "com9", "LPT1", "lpt0",
        ] {
            assert!(
                matches!(DocId::new(bad), Err(DocIdError::Reserved { .. })),
                "{bad}"
            );
        }
        for good in ["CONS", "NUL1", "COM10", "LPT", "console"] {
            assert!(DocId::new(good).is_ok(), "{good} refused");
        }
    }
}
