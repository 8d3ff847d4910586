//! Passphrases: read from a file's first line (scripts, tests) or asked on the
//! terminal without echo; kept in memory that is zeroed when dropped.

use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Shortest passphrase accepted when one is set.
pub const MIN_PASSPHRASE_CHARS: usize = 8;
/// Longest passphrase file read, in bytes.
const MAX_PASSPHRASE_FILE: u64 = 64 * 1024;

/// A passphrase, zeroed when dropped.
pub struct Passphrase(Zeroizing<String>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Why no passphrase could be had.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    /// The passphrase file cannot be read.
    #[error("cannot read the passphrase file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The passphrase file is empty or too large.
    #[error("the passphrase file {} {detail}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// There is no terminal to ask on.
    #[error("{what} is needed and there is no terminal to ask on: give {hint}")]
    NoTerminal {
        /// Which passphrase.
        what: String,
        /// The flag and variable that give it instead.
        hint: String,
        /// The terminal error.
        #[source]
        source: std::io::Error,
    },
    /// The two entries of a new passphrase differ.
    #[error("the two entries of the new passphrase differ; nothing was changed")]
    Mismatch,
    /// A new passphrase is too short.
    #[error("a passphrase needs at least {MIN_PASSPHRASE_CHARS} characters; nothing was changed")]
    TooShort,
}

impl Passphrase {
    /// A passphrase from text (tests, and the sources below).
    pub fn new(text: impl Into<String>) -> Passphrase {
        Passphrase(Zeroizing::new(text.into()))
    }

    /// The passphrase's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The first line of `path` (without its line ending).
    pub fn from_file(path: &Path) -> Result<Passphrase, PassphraseError> {
        let file = std::fs::File::open(path).map_err(|source| PassphraseError::File {
            path: path.to_owned(),
            source,
        })?;
        let mut buf = Zeroizing::new(String::new());
        file.take(MAX_PASSPHRASE_FILE + 1)
            .read_to_string(&mut buf)
            .map_err(|source| PassphraseError::File {
                path: path.to_owned(),
                source,
            })?;
        if buf.len() as u64 > MAX_PASSPHRASE_FILE {
            return Err(PassphraseError::BadFile {
                path: path.to_owned(),
                detail: format!("is larger than {MAX_PASSPHRASE_FILE} bytes"),
            });
        }
        let line = buf.lines().next().unwrap_or("");
        if line.is_empty() {
            return Err(PassphraseError::BadFile {
                path: path.to_owned(),
                detail: "has an empty first line".into(),
            });
        }
        Ok(Passphrase::new(line))
    }

    /// Asks on the terminal without echo; `hint` names the flag and variable
    /// that give it otherwise (used in the error when there is no terminal).
    pub fn prompt(prompt: &str, what: &str, hint: &str) -> Result<Passphrase, PassphraseError> {
        rpassword::prompt_password(prompt)
            .map(Passphrase::new)
            .map_err(|source| PassphraseError::NoTerminal {
                what: what.to_owned(),
                hint: hint.to_owned(),
                source,
            })
    }

    /// Asks for a new passphrase twice on the terminal; checks its length.
    pub fn prompt_new(what: &str, hint: &str) -> Result<Passphrase, PassphraseError> {
        let a = Passphrase::prompt(&format!("new {what}: "), what, hint)?;
        a.check_new()?;
        let b = Passphrase::prompt(&format!("new {what} again: "), what, hint)?;
        if a.as_bytes() != b.as_bytes() {
            return Err(PassphraseError::Mismatch);
        }
        Ok(a)
    }

    /// Whether this passphrase is long enough to be set.
    pub fn check_new(&self) -> Result<(), PassphraseError> {
        if self.0.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(PassphraseError::TooShort);
        }
        Ok(())
    }
}
