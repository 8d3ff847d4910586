//! Record ids: 16 characters of lowercase Crockford base32 (80 random bits), and
//! resolution of the short prefixes cadres type.

use std::fmt;

use rand::Rng;
use serde::Serialize;

/// The Crockford base32 alphabet, lowercase (no i, l, o, u).
pub const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Length of every record id, in characters.
pub const ID_LEN: usize = 16;
/// Shortest prefix accepted in place of a full id.
pub const MIN_PREFIX_LEN: usize = 6;
/// How many candidates an ambiguity error lists.
pub const MAX_CANDIDATES_SHOWN: usize = 5;

/// The id of a record (household, resident, visit, demand, demand event) or a
/// device: random from its first character, so that a short prefix names one
/// record. Time is kept in fields, never in ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Id(String);

/// Why a string is not an [`Id`] or does not name exactly one record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not 16 characters of the id alphabet.
    #[error("{0:?} is not a record id: ids are 16 characters of 0-9 and a-z (without i, l, o, u)")]
    Malformed(String),
    /// A prefix shorter than [`MIN_PREFIX_LEN`].
    #[error("id prefix {0:?} is too short: type at least {MIN_PREFIX_LEN} characters of the id")]
    PrefixTooShort(String),
    /// No record of this kind has an id starting with the prefix.
    #[error(
        "no {kind} has an id starting with {prefix:?}: check the id (`minqing {kind} list` shows them)"
    )]
    NotFound {
        /// Kind of record looked for (resident, household, ...).
        kind: &'static str,
        /// What was typed.
        prefix: String,
    },
    /// Several records match the prefix.
    #[error("id prefix {prefix:?} matches {count} {kind}s ({shown}): type more characters")]
    Ambiguous {
        /// Kind of record looked for.
        kind: &'static str,
        /// What was typed.
        prefix: String,
        /// How many records matched.
        count: usize,
        /// The first few candidates, comma separated.
        shown: String,
    },
}

impl Id {
    /// A fresh random id (80 bits).
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Id {
        let s = (0..ID_LEN)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        Id(s)
    }

    /// Checks a full 16-character id (upper case is accepted and folded).
    pub fn parse(s: &str) -> Result<Id, IdError> {
        let lower = s.trim().to_ascii_lowercase();
        if lower.len() != ID_LEN || !lower.bytes().all(|b| ALPHABET.contains(&b)) {
            return Err(IdError::Malformed(s.to_owned()));
        }
        Ok(Id(lower))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's bytes, used as the automerge actor of a device.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Id {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::parse(s)
    }
}

/// A prefix a cadre typed to name a record: at least [`MIN_PREFIX_LEN`]
/// characters of the id alphabet, at most [`ID_LEN`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdPrefix(String);

impl IdPrefix {
    /// Checks a typed prefix (trimmed, folded to lower case).
    pub fn parse(s: &str) -> Result<IdPrefix, IdError> {
        let lower = crate::text::trim(s).to_ascii_lowercase();
        if lower.len() > ID_LEN || !lower.bytes().all(|b| ALPHABET.contains(&b)) {
            return Err(IdError::Malformed(s.to_owned()));
        }
        if lower.len() < MIN_PREFIX_LEN {
            return Err(IdError::PrefixTooShort(s.to_owned()));
        }
        Ok(IdPrefix(lower))
    }

    /// The prefix as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Picks the one candidate that starts with this prefix. `kind` names the
    /// record kind in errors ("resident", "household", ...).
    pub fn resolve<T, I>(&self, kind: &'static str, candidates: I) -> Result<T, IdError>
    where
        I: IntoIterator<Item = (Id, T)>,
    {
        let mut found: Vec<(Id, T)> = candidates
            .into_iter()
            .filter(|(id, _)| id.as_str().starts_with(&self.0))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found.dedup_by(|a, b| a.0 == b.0);
        if found.len() == 1 {
            return Ok(found.remove(0).1);
        }
        match found.len() {
            0 => Err(IdError::NotFound {
                kind,
                prefix: self.0.clone(),
            }),
            count => Err(IdError::Ambiguous {
                kind,
                prefix: self.0.clone(),
                count,
                shown: found
                    .iter()
                    .take(MAX_CANDIDATES_SHOWN)
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn random_ids_are_16_chars_of_the_alphabet_and_parse_back() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let id = Id::random(&mut rng);
            assert_eq!(id.as_str().len(), ID_LEN);
            assert_eq!(Id::parse(id.as_str()), Ok(id.clone()));
        }
        assert_ne!(Id::random(&mut rng), Id::random(&mut rng));
        assert!(Id::parse("0123456789abcdeu").is_err());
        assert!(Id::parse("0123456789abcde").is_err());
        assert_eq!(
            Id::parse("0123456789ABCDEF").map(|i| i.to_string()),
            Ok("0123456789abcdef".to_owned())
        );
    }

    #[test]
    fn prefixes_resolve_to_one_or_explain() {
        let ids = ["abcdef0000000000", "abcdef1111111111", "zzzzzz0000000000"]
            .map(|s| Id::parse(s).unwrap());
        let cands = || ids.iter().cloned().map(|i| (i.clone(), i));
        let check = |p: &str| -> Result<String, String> {
            IdPrefix::parse(p)
                .and_then(|p| p.resolve("resident", cands()))
                .map(|i| i.to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(check("abcdef0"), Ok("abcdef0000000000".into()));
        assert_eq!(check("ZZZZZZ"), Ok("zzzzzz0000000000".into()));
        assert!(check("abcdef").unwrap_err().contains("matches 2 residents"));
        assert!(check("abcdef").unwrap_err().contains("abcdef1111111111"));
        assert!(check("abc").unwrap_err().contains("too short"));
        assert!(check("yyyyyy").unwrap_err().contains("no resident"));
        assert!(
            check("小河村小河村")
                .unwrap_err()
                .contains("not a record id")
        );
    }
}
