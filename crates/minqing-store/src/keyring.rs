//! The keyring of an encrypted store (`<store>/keyring`): the data key wrapped
//! by the passphrase (argon2id) and, if the laptop has one, by the relay's
//! escrow public key; a key check; a pending one-time recovery key; and the
//! throttle that makes repeated wrong passphrases wait longer and longer.
//!
//! It is a plain JSON file, not a sled value, so that it can be overwritten in
//! place (crypto-shredding); sled is log-structured. See docs/security.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypt::{DataKey, KEY_LEN, random, xopen, xseal};
use crate::escrow::{self, EscrowPublic, EscrowSecret, Stanza};
use crate::files;
use crate::hex;
use crate::secret::Passphrase;

/// File name of the keyring inside the store directory.
pub const KEYRING_FILE: &str = "keyring";
/// File name of the wrong-passphrase throttle inside the store directory.
pub const THROTTLE_FILE: &str = "keyring.throttle";
/// `format` of a keyring.
pub const KEYRING_FORMAT: &str = "minqing-keyring/1";
/// Environment variable that makes *new* keyrings use [`KdfParams::TEST_ONLY_WEAK`].
/// For tests only; never set by default.
pub const WEAK_KDF_ENV: &str = "MINQING_TEST_WEAK_KDF";
/// Longest wait between wrong passphrases.
pub const MAX_THROTTLE: Duration = Duration::from_secs(300);
/// Largest keyring file read.
const MAX_KEYRING_LEN: u64 = 64 * 1024;
/// HKDF label of the escrow slot.
const ESCROW_LABEL: &str = "minqing-keyring/1 escrow";
/// HKDF label of a recovery answer.
pub(crate) const RECOVERY_LABEL: &str = "minqing-keyring/1 recovery";

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// What every real keyring gets: 64 MiB, 3 passes, 1 lane (docs/security.md).
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };
    /// Cheap parameters for tests only, chosen by [`WEAK_KDF_ENV`].
    pub const TEST_ONLY_WEAK: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    /// The parameters for a new keyring: [`KdfParams::DEFAULT`] unless
    /// [`WEAK_KDF_ENV`] is `1`. The flag says whether the weak ones were chosen
    /// (the binaries print a warning then).
    pub fn for_new_keyring() -> (KdfParams, bool) {
        if std::env::var(WEAK_KDF_ENV).as_deref() == Ok("1") {
            (KdfParams::TEST_ONLY_WEAK, true)
        } else {
            (KdfParams::DEFAULT, false)
        }
    }

    /// Derives a 32-byte key from `passphrase` and `salt`.
    pub fn derive(
        &self,
        passphrase: &Passphrase,
        salt: &[u8],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
        let params = Params::new(self.m_kib, self.t, self.p, Some(KEY_LEN))
            .map_err(|e| KeyError::Kdf(e.to_string()))?;
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
            .map_err(|e| KeyError::Kdf(e.to_string()))?;
        Ok(out)
    }
}

/// Errors of keyrings and sealed files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The passphrase does not unwrap the key.
    #[error(
        "wrong passphrase for {} (failed attempts in a row: {failures}); the next attempt waits {} s. Nothing was changed",
        path.display(), next_wait.as_secs()
    )]
    WrongPassphrase {
        /// The keyring or sealed file.
        path: PathBuf,
        /// Failed attempts in a row so far.
        failures: u32,
        /// How long the next attempt waits.
        next_wait: Duration,
    },
    /// There is no keyring: the store is not encrypted (or not there).
    #[error("no keyring in {}: this is not an encrypted minqing store", path.display())]
    NoKeyring {
        /// The store directory.
        path: PathBuf,
    },
    /// A key file or sealed file is damaged or not what this build writes.
    #[error("{} is damaged or not a minqing key file: {detail}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// No slot of a sealed file or keyring opens with what was given.
    #[error("{}: {detail}", path.display())]
    CannotOpen {
        /// The file.
        path: PathBuf,
        /// Which key was tried and what to do.
        detail: String,
    },
    /// argon2 refused its parameters.
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// The file system failed.
    #[error("cannot use {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The passphrase slot: the data key wrapped by an argon2id-derived key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PassSlot {
    pub(crate) kdf: KdfParams,
    pub(crate) salt: String,
    pub(crate) wrapped: String,
}

impl PassSlot {
    pub(crate) fn new(
        secret: &[u8],
        passphrase: &Passphrase,
        kdf: KdfParams,
        aad: &[u8],
    ) -> Result<PassSlot, KeyError> {
        let salt: [u8; 16] = random();
        let kek = kdf.derive(passphrase, &salt)?;
        let wrapped = xseal(&DataKey::from_array(&kek).cipher(), secret, aad);
        Ok(PassSlot {
            kdf,
            salt: hex::encode(&salt),
            wrapped: hex::encode(&wrapped),
        })
    }

    /// The wrapped secret, or `None` if the passphrase is wrong.
    pub(crate) fn open(
        &self,
        passphrase: &Passphrase,
        aad: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        let salt = hex::decode(&self.salt).ok_or("the salt is not hex")?;
        let wrapped = hex::decode(&self.wrapped).ok_or("the wrapped key is not hex")?;
        let kek = self
            .kdf
            .derive(passphrase, &salt)
            .map_err(|e| e.to_string())?;
        Ok(xopen(&DataKey::from_array(&kek).cipher(), &wrapped, aad).map(Zeroizing::new))
    }
}

/// A pending recovery: the one-time key an escrow answer is wrapped to.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RecoverySlot {
    /// The one-time X25519 secret, hex. Kept only until the answer is used.
    secret: String,
}

/// A store's keyring (see the module doc).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Keyring {
    format: String,
    /// Random id of this store (associated data of every slot).
    pub store_id: String,
    /// The laptop's device id, for the operator's eyes in a recovery request.
    #[serde(default)]
    pub device_id: Option<String>,
    passphrase: PassSlot,
    #[serde(default)]
    escrow: Option<Stanza>,
    check: String,
    #[serde(default)]
    recovery: Option<RecoverySlot>,
}

/// What a laptop hands the operator to recover its data key (`minqing
/// recovery request`): not secret without the escrow private key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveryRequest {
    /// Always `minqing-recovery-request/1`.
    pub format: String,
    /// The laptop's device id, if known.
    pub device_id: Option<String>,
    /// The store id.
    pub store_id: String,
    /// The data key wrapped to the relay's escrow key.
    pub escrow: Stanza,
    /// The key check (lets the relay verify what it unwrapped).
    pub check: String,
    /// The laptop's one-time public key, to wrap the answer to.
    pub answer_to: String,
}

/// `format` of a recovery request.
pub const RECOVERY_REQUEST_FORMAT: &str = "minqing-recovery-request/1";
/// `format` of a recovery answer.
pub const RECOVERY_ANSWER_FORMAT: &str = "minqing-recovery-answer/1";

/// The operator's answer to a [`RecoveryRequest`]: the data key wrapped to the
/// laptop's one-time key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveryAnswer {
    /// Always `minqing-recovery-answer/1`.
    pub format: String,
    /// The store id it is for.
    pub store_id: String,
    /// The data key, wrapped to the request's one-time key.
    pub key: Stanza,
}

fn pass_aad(store_id: &str) -> Vec<u8> {
    format!("{KEYRING_FORMAT} passphrase {store_id}").into_bytes()
}

fn check_aad(store_id: &str) -> Vec<u8> {
    format!("{KEYRING_FORMAT} check {store_id}").into_bytes()
}

/// Whether `dk` is the key `check` was made with (for `store_id`).
fn check_matches(check: &str, store_id: &str, dk: &DataKey) -> bool {
    hex::decode(check)
        .and_then(|c| xopen(&dk.cipher(), &c, &check_aad(store_id)))
        .is_some()
}

impl RecoveryRequest {
    /// The relay's side: unwraps the data key with the escrow secret, checks
    /// it, and wraps it to the laptop's one-time key.
    pub fn answer(&self, escrow_secret: &EscrowSecret) -> Option<RecoveryAnswer> {
        let dk = escrow_secret.unwrap(&self.escrow, ESCROW_LABEL)?;
        let dk = DataKey::from_bytes(&dk)?;
        if !check_matches(&self.check, &self.store_id, &dk) {
            return None;
        }
        let to = EscrowPublic::parse(&self.answer_to)?;
        let key = escrow::wrap(&to, dk.as_bytes(), RECOVERY_LABEL)?;
        Some(RecoveryAnswer {
            format: RECOVERY_ANSWER_FORMAT.into(),
            store_id: self.store_id.clone(),
            key,
        })
    }
}

impl Keyring {
    /// A new keyring for a new data key, wrapped by `passphrase` and, if
    /// given, by `escrow`.
    pub fn create(
        passphrase: &Passphrase,
        kdf: KdfParams,
        escrow: Option<&EscrowPublic>,
        device_id: Option<String>,
    ) -> Result<(Keyring, DataKey), KeyError> {
        let dk = DataKey::generate();
        let store_id = hex::encode(&random::<16>());
        let ring = Keyring::for_key(&dk, store_id, passphrase, kdf, escrow, device_id)?;
        Ok((ring, dk))
    }

    fn for_key(
        dk: &DataKey,
        store_id: String,
        passphrase: &Passphrase,
        kdf: KdfParams,
        escrow: Option<&EscrowPublic>,
        device_id: Option<String>,
    ) -> Result<Keyring, KeyError> {
        let passphrase = PassSlot::new(dk.as_bytes(), passphrase, kdf, &pass_aad(&store_id))?;
        let escrow = match escrow {
            Some(e) => Some(escrow::wrap(e, dk.as_bytes(), ESCROW_LABEL).ok_or_else(|| {
                KeyError::Kdf("the escrow public key is invalid (low order)".into())
            })?),
            None => None,
        };
        let check = hex::encode(&xseal(&dk.cipher(), b"", &check_aad(&store_id)));
        Ok(Keyring {
            format: KEYRING_FORMAT.into(),
            store_id,
            device_id,
            passphrase,
            escrow,
            check,
            recovery: None,
        })
    }

    /// The escrow public key the data key is wrapped to, if any.
    pub fn escrow_public(&self) -> Option<EscrowPublic> {
        self.escrow
            .as_ref()
            .and_then(|s| EscrowPublic::parse(&s.recipient))
    }

    /// The argon2id parameters of the passphrase slot.
    pub fn kdf(&self) -> KdfParams {
        self.passphrase.kdf
    }

    /// Whether `dk` is this keyring's data key.
    pub fn verify(&self, dk: &DataKey) -> bool {
        check_matches(&self.check, &self.store_id, dk)
    }

    /// The data key, if `passphrase` is right (no throttling: see [`unlock`]).
    pub fn open(&self, passphrase: &Passphrase, path: &Path) -> Result<Option<DataKey>, KeyError> {
        let damaged = |detail: String| KeyError::Damaged {
            path: path.to_owned(),
            detail,
        };
        let Some(raw) = self
            .passphrase
            .open(passphrase, &pass_aad(&self.store_id))
            .map_err(damaged)?
        else {
            return Ok(None);
        };
        let dk = DataKey::from_bytes(&raw)
            .ok_or_else(|| damaged("the wrapped key has the wrong length".into()))?;
        if !self.verify(&dk) {
            return Err(damaged("the key check does not match the key".into()));
        }
        Ok(Some(dk))
    }

    /// Rewraps `dk` (which must be this keyring's key) with a new passphrase.
    pub fn set_passphrase(
        &mut self,
        dk: &DataKey,
        passphrase: &Passphrase,
        kdf: KdfParams,
    ) -> Result<(), KeyError> {
        self.passphrase = PassSlot::new(dk.as_bytes(), passphrase, kdf, &pass_aad(&self.store_id))?;
        Ok(())
    }

    /// Wraps `dk` (which must be this keyring's key) to `escrow` as well — for
    /// a standalone laptop that joins a relay later. Save the keyring after.
    pub fn set_escrow(&mut self, dk: &DataKey, escrow: &EscrowPublic) -> Result<(), KeyError> {
        if !self.verify(dk) {
            return Err(KeyError::Kdf("the key is not this keyring's key".into()));
        }
        self.escrow = Some(
            escrow::wrap(escrow, dk.as_bytes(), ESCROW_LABEL).ok_or_else(|| {
                KeyError::Kdf("the escrow public key is invalid (low order)".into())
            })?,
        );
        Ok(())
    }

    /// Starts a recovery: makes a one-time key (kept in this keyring; save it)
    /// and the request for the operator. `None` if there is no escrow slot.
    pub fn recovery_request(&mut self) -> Option<RecoveryRequest> {
        let escrow = self.escrow.clone()?;
        let one_time = EscrowSecret::generate();
        let req = RecoveryRequest {
            format: RECOVERY_REQUEST_FORMAT.into(),
            device_id: self.device_id.clone(),
            store_id: self.store_id.clone(),
            escrow,
            check: self.check.clone(),
            answer_to: one_time.public().to_text(),
        };
        self.recovery = Some(RecoverySlot {
            secret: hex::encode(one_time.to_bytes().as_ref()),
        });
        Some(req)
    }

    /// Finishes a recovery: the data key from the operator's answer, checked.
    /// The caller sets a new passphrase, then [`Keyring::end_recovery`] and saves.
    pub fn recover(&self, answer: &RecoveryAnswer, path: &Path) -> Result<DataKey, KeyError> {
        let cannot = |detail: &str| KeyError::CannotOpen {
            path: path.to_owned(),
            detail: detail.to_owned(),
        };
        if answer.store_id != self.store_id {
            return Err(cannot("this answer is for another laptop's store"));
        }
        let slot = self.recovery.as_ref().ok_or_else(|| {
            cannot("no recovery is pending on this laptop (it was used already, or never requested): run `minqing recovery request` again")
        })?;
        let secret = hex::decode(&slot.secret)
            .and_then(|b| EscrowSecret::from_bytes(&b))
            .ok_or_else(|| cannot("the pending recovery key is damaged"))?;
        let dk = secret
            .unwrap(&answer.key, RECOVERY_LABEL)
            .and_then(|b| DataKey::from_bytes(&b))
            .ok_or_else(|| cannot("this answer was made for another recovery request"))?;
        if !self.verify(&dk) {
            return Err(cannot("the key in this answer is not this store's key"));
        }
        Ok(dk)
    }

    /// Forgets the one-time recovery key (the answer cannot be used again).
    pub fn end_recovery(&mut self) {
        self.recovery = None;
    }

    /// The keyring of store directory `dir`.
    pub fn load(dir: &Path) -> Result<Keyring, KeyError> {
        let path = dir.join(KEYRING_FILE);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::NoKeyring {
                    path: dir.to_owned(),
                });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        if meta.len() > MAX_KEYRING_LEN {
            return Err(KeyError::Damaged {
                path,
                detail: format!("{} bytes is too large", meta.len()),
            });
        }
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let ring: Keyring = serde_json::from_slice(&bytes).map_err(|e| KeyError::Damaged {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if ring.format != KEYRING_FORMAT {
            return Err(KeyError::Damaged {
                path,
                detail: format!("format {:?} is not {KEYRING_FORMAT:?}", ring.format),
            });
        }
        Ok(ring)
    }

    /// Writes this keyring into store directory `dir` (durably; the previous
    /// keyring's bytes are overwritten in place).
    pub fn save(&self, dir: &Path) -> Result<(), KeyError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(KEYRING_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|e| KeyError::Damaged {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        files::replace_private(&path, &json).map_err(io_err(&path))
    }
}

/// Whether store directory `dir` has a keyring.
pub fn has_keyring(dir: &Path) -> bool {
    dir.join(KEYRING_FILE).exists()
}

/// Destroys the keys of store directory `dir`: the keyring and the throttle
/// are overwritten in place with random bytes, fsynced and removed. What is
/// left of the store is ciphertext under a key that no longer exists.
pub fn shred(dir: &Path) -> Result<(), KeyError> {
    for name in [KEYRING_FILE, THROTTLE_FILE] {
        let p = dir.join(name);
        files::shred(&p).map_err(io_err(&p))?;
    }
    Ok(())
}

#[derive(Default, Serialize, Deserialize)]
struct Throttle {
    failures: u32,
    /// Unix milliseconds before which no attempt is made.
    not_before_ms: i64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The wait after `failures` wrong passphrases in a row: 1 s, 2 s, 4 s, …,
/// at most [`MAX_THROTTLE`].
pub fn throttle_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let secs = 1u64 << failures.saturating_sub(1).min(16);
    Duration::from_secs(secs).min(MAX_THROTTLE)
}

/// Unlocks store directory `dir` with `passphrase`: waits out the throttle of
/// earlier failures (calling `on_wait` with the wait first, e.g. to tell the
/// cadre), then tries the passphrase. A wrong one is counted (the only thing
/// written) and reported as [`KeyError::WrongPassphrase`]; a right one resets
/// the count. Nothing in the store itself is touched.
pub fn unlock(
    dir: &Path,
    passphrase: &Passphrase,
    on_wait: &mut dyn FnMut(Duration),
) -> Result<(Keyring, DataKey), KeyError> {
    let ring = Keyring::load(dir)?;
    let tpath = dir.join(THROTTLE_FILE);
    let throttle: Throttle = std::fs::read(&tpath)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let wait = throttle.not_before_ms - now_ms();
    if wait > 0 {
        let wait = Duration::from_millis(wait as u64).min(MAX_THROTTLE);
        on_wait(wait);
        std::thread::sleep(wait);
    }
    match ring.open(passphrase, &dir.join(KEYRING_FILE))? {
        Some(dk) => {
            if throttle.failures > 0 {
                let _ = std::fs::remove_file(&tpath);
            }
            Ok((ring, dk))
        }
        None => {
            let failures = throttle.failures.saturating_add(1);
            let next_wait = throttle_delay(failures);
            let t = Throttle {
                failures,
                not_before_ms: now_ms() + next_wait.as_millis() as i64,
            };
            let json = serde_json::to_vec(&t).unwrap_or_default();
            files::replace_private(&tpath, &json).map_err(io_err(&tpath))?;
            Err(KeyError::WrongPassphrase {
                path: dir.to_owned(),
                failures,
                next_wait,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_escrow_and_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let relay = EscrowSecret::generate();
        let good = Passphrase::new("correct horse");
        let (mut ring, dk) = Keyring::create(
            &good,
            KdfParams::TEST_ONLY_WEAK,
            Some(&relay.public()),
            Some("D1".into()),
        )
        .unwrap();
        ring.save(dir.path()).unwrap();
        let mut waited = Vec::new();
        let bad = Passphrase::new("wrong one");
        for n in 1..=2u32 {
            match unlock(dir.path(), &bad, &mut |w| waited.push(w)) {
                Err(KeyError::WrongPassphrase { failures, .. }) => assert_eq!(failures, n),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            waited.len(),
            1,
            "the second attempt waited for the first failure"
        );
        let (_, got) = unlock(dir.path(), &good, &mut |w| waited.push(w)).unwrap();
        assert_eq!(got.as_bytes(), dk.as_bytes());
        assert!(!dir.path().join(THROTTLE_FILE).exists());

        let req = ring.recovery_request().unwrap();
        ring.save(dir.path()).unwrap();
        let answer = req.answer(&relay).unwrap();
        assert!(req.answer(&EscrowSecret::generate()).is_none());
        let ring = Keyring::load(dir.path()).unwrap();
        let back = ring.recover(&answer, dir.path()).unwrap();
        assert_eq!(back.as_bytes(), dk.as_bytes());
        let mut ring2 = ring.clone();
        ring2.end_recovery();
        assert!(ring2.recover(&answer, dir.path()).is_err(), "one time only");

        shred(dir.path()).unwrap();
        assert!(matches!(
            Keyring::load(dir.path()),
            Err(KeyError::NoKeyring { .. })
        ));
    }

    #[test]
    fn delays_double_and_cap() {
        assert_eq!(throttle_delay(1), Duration::from_secs(1));
        assert_eq!(throttle_delay(3), Duration::from_secs(4));
        assert_eq!(throttle_delay(40), MAX_THROTTLE);
    }
}
