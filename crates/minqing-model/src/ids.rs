//! The one rule for village and device ids, shared by the relay and the laptop:
//! `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`, reserved device names (CON, NUL, AUX,
//! COM1, LPT1, ...) refused. Every place an id enters — the command line, an
//! enrolment bundle, the relay's registry, a sync frame, a stored key — goes
//! through [`parse_village_id`] or [`parse_device_id`].
//!
//! The rule itself lives in `minqing_sync::check_id` (the lowest crate, so that
//! frames and the store enforce it too); this module is where the binaries and
//! other teams take it from.

pub use minqing_sync::{DocId as VillageId, DocIdError as IdRuleError, RESERVED_NAMES, check_id};

use crate::id::{Id, IdError};

/// Why a string is not a device id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    /// Breaks the shared id rule (dots, slashes, reserved names, length).
    #[error("device id {input:?} is not valid: {source}")]
    Rule {
        /// What was given.
        input: String,
        /// Which part of the rule it breaks.
        #[source]
        source: IdRuleError,
    },
    /// Follows the rule but is not a device id the relay makes (16 characters
    /// of lower-case Crockford base32).
    #[error(transparent)]
    Malformed(#[from] IdError),
}

/// Checks a village id (surrounding whitespace trimmed) against the shared rule.
pub fn parse_village_id(input: &str) -> Result<VillageId, IdRuleError> {
    VillageId::new(input.trim())
}

/// Checks a device id: the shared rule, then the shape the relay gives device
/// ids (16 characters of `0-9a-z` without i, l, o, u; upper case folded).
pub fn parse_device_id(input: &str) -> Result<Id, DeviceIdError> {
    let s = input.trim();
    check_id(s).map_err(|source| DeviceIdError::Rule {
        input: input.to_owned(),
        source,
    })?;
    Ok(Id::parse(s)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn village_ids_follow_the_rule() {
        assert_eq!(parse_village_id(" V001 ").unwrap().as_str(), "V001");
        for bad in [".", "..", "...", ".hidden", "CON", "nul", "a b", "../x", ""] {
            assert!(parse_village_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn device_ids_follow_the_rule_and_the_id_shape() {
        assert_eq!(
            parse_device_id("0123456789ABCDEF").unwrap().as_str(),
            "0123456789abcdef"
        );
        assert!(matches!(
            parse_device_id("../../etc"),
            Err(DeviceIdError::Rule { .. })
        ));
        assert!(matches!(
            parse_device_id("V001"),
            Err(DeviceIdError::Malformed(_))
        ));
        assert!(parse_device_id("").is_err());
    }
}
