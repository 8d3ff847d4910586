//! Sealed files: one payload under a random file key, with slots that each wrap
//! that key — by a passphrase (argon2id), by a laptop's data key, or to an escrow
//! public key. Used for backups, `removed/` copies, recovery answers and the
//! relay's CA and escrow keys.
//!
//! Layout: `MQSEALED1\n`, one JSON header line, then `nonce ‖ ciphertext ‖ tag`
//! (XChaCha20-Poly1305 under the file key, with the header line as associated
//! data, so no slot or kind can be swapped).

use std::path::Path;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypt::{DataKey, xopen, xseal};
use crate::escrow::{self, EscrowPublic, EscrowSecret, Stanza};
use crate::hex;
use crate::keyring::{KdfParams, KeyError, PassSlot, io_err};
use crate::secret::Passphrase;

/// The first line of every sealed file.
pub const MAGIC: &[u8] = b"MQSEALED1\n";
/// Largest sealed file read.
pub const MAX_SEALED_LEN: u64 = 4 * 1024 * 1024 * 1024;
const ESCROW_LABEL: &str = "minqing-sealed/1 escrow";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct DataKeySlot {
    wrapped: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Slots {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    passphrase: Option<PassSlot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_key: Option<DataKeySlot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    escrow: Option<Stanza>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    kind: String,
    slots: Slots,
}

/// Which keys a new sealed file's key is wrapped by (at least one).
#[derive(Default)]
pub struct SealTo<'a> {
    /// A passphrase, with the argon2id parameters to use.
    pub passphrase: Option<(&'a Passphrase, KdfParams)>,
    /// A laptop's data key.
    pub data_key: Option<&'a DataKey>,
    /// An escrow public key.
    pub escrow: Option<&'a EscrowPublic>,
}

/// The key a sealed file is opened with.
pub enum OpenWith<'a> {
    /// Its passphrase.
    Passphrase(&'a Passphrase),
    /// The laptop's data key.
    DataKey(&'a DataKey),
    /// The escrow secret key.
    Escrow(&'a EscrowSecret),
}

fn slot_aad(kind: &str, slot: &str) -> Vec<u8> {
    format!("minqing-sealed/1 {slot} {kind}").into_bytes()
}

/// Seals `payload` as a file of `kind` (e.g. "backup") to the keys of `to`.
pub fn seal(kind: &str, payload: &[u8], to: &SealTo<'_>) -> Result<Vec<u8>, KeyError> {
    let fk = DataKey::generate();
    let mut slots = Slots::default();
    if let Some((p, kdf)) = to.passphrase {
        slots.passphrase = Some(PassSlot::new(
            fk.as_bytes(),
            p,
            kdf,
            &slot_aad(kind, "passphrase"),
        )?);
    }
    if let Some(dk) = to.data_key {
        slots.data_key = Some(DataKeySlot {
            wrapped: hex::encode(&xseal(
                &dk.cipher(),
                fk.as_bytes(),
                &slot_aad(kind, "data_key"),
            )),
        });
    }
    if let Some(e) = to.escrow {
        slots.escrow =
            Some(escrow::wrap(e, fk.as_bytes(), ESCROW_LABEL).ok_or_else(|| {
                KeyError::Kdf("the escrow public key is invalid (low order)".into())
            })?);
    }
    let header = Header {
        format: "minqing-sealed/1".into(),
        kind: kind.to_owned(),
        slots,
    };
    let mut line = serde_json::to_vec(&header).map_err(|e| KeyError::Kdf(e.to_string()))?;
    line.push(b'\n');
    let mut out = Vec::with_capacity(MAGIC.len() + line.len() + payload.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&line);
    out.extend_from_slice(&xseal(&fk.cipher(), payload, &line));
    Ok(out)
}

/// Whether `bytes` start like a sealed file.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Opens a sealed file's bytes (`path` names it in errors) of `kind`.
pub fn open(
    bytes: &[u8],
    path: &Path,
    kind: &str,
    with: OpenWith<'_>,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let damaged = |detail: &str| KeyError::Damaged {
        path: path.to_owned(),
        detail: detail.to_owned(),
    };
    let cannot = |detail: &str| KeyError::CannotOpen {
        path: path.to_owned(),
        detail: detail.to_owned(),
    };
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| damaged("it does not start with MQSEALED1"))?;
    let nl = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| damaged("its header is cut off"))?;
    let (line, body) = rest.split_at(nl + 1);
    let header: Header =
        serde_json::from_slice(line).map_err(|e| damaged(&format!("bad header: {e}")))?;
    if header.kind != kind {
        return Err(cannot(&format!(
            "this is a sealed {} file, not a {kind}",
            header.kind
        )));
    }
    let fk = match with {
        OpenWith::Passphrase(p) => {
            let slot = header
                .slots
                .passphrase
                .as_ref()
                .ok_or_else(|| cannot("it has no passphrase slot"))?;
            slot.open(p, &slot_aad(kind, "passphrase"))
                .map_err(|e| damaged(&e))?
                .ok_or_else(|| cannot("wrong passphrase for this file; nothing was changed"))?
        }
        OpenWith::DataKey(dk) => {
            let slot = header
                .slots
                .data_key
                .as_ref()
                .ok_or_else(|| cannot("it has no slot for this laptop's key"))?;
            let w = hex::decode(&slot.wrapped).ok_or_else(|| damaged("bad data-key slot"))?;
            Zeroizing::new(
                xopen(&dk.cipher(), &w, &slot_aad(kind, "data_key"))
                    .ok_or_else(|| cannot("it was sealed by another laptop"))?,
            )
        }
        OpenWith::Escrow(s) => {
            let slot = header.slots.escrow.as_ref().ok_or_else(|| {
                cannot("it has no escrow slot (made on a laptop without a relay)")
            })?;
            s.unwrap(slot, ESCROW_LABEL)
                .ok_or_else(|| cannot("it was not sealed to this relay's escrow key"))?
        }
    };
    let fk =
        DataKey::from_bytes(&fk).ok_or_else(|| damaged("a wrapped key has the wrong length"))?;
    xopen(&fk.cipher(), body, line)
        .map(Zeroizing::new)
        .ok_or_else(|| damaged("its contents fail authentication (damaged or tampered with)"))
}

/// Reads and opens the sealed file at `path`.
pub fn read(path: &Path, kind: &str, with: OpenWith<'_>) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if meta.len() > MAX_SEALED_LEN {
        return Err(KeyError::Damaged {
            path: path.to_owned(),
            detail: format!("{} bytes is too large", meta.len()),
        });
    }
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    open(&bytes, path, kind, with)
}

/// Seals `payload` and writes it to `path` (mode 0600, durably).
pub fn write(path: &Path, kind: &str, payload: &[u8], to: &SealTo<'_>) -> Result<(), KeyError> {
    let bytes = seal(kind, payload, to)?;
    crate::files::replace_private(path, &bytes).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_opens_and_nothing_else_does() {
        let p = Passphrase::new("backup passphrase");
        let dk = DataKey::generate();
        let relay = EscrowSecret::generate();
        let to = SealTo {
            passphrase: Some((&p, KdfParams::TEST_ONLY_WEAK)),
            data_key: Some(&dk),
            escrow: Some(&relay.public()),
        };
        let bytes = seal("backup", "小河村 13800138000".as_bytes(), &to).unwrap();
        assert!(!bytes.windows(9).any(|w| w == "小河村".as_bytes()));
        let path = Path::new("x");
        for with in [
            OpenWith::Passphrase(&p),
            OpenWith::DataKey(&dk),
            OpenWith::Escrow(&relay),
        ] {
            assert_eq!(
                &*open(&bytes, path, "backup", with).unwrap(),
                "小河村 13800138000".as_bytes()
            );
        }
        let wrong = Passphrase::new("not the passphrase");
        assert!(open(&bytes, path, "backup", OpenWith::Passphrase(&wrong)).is_err());
        assert!(open(&bytes, path, "removed", OpenWith::DataKey(&dk)).is_err());
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(open(&bad, path, "backup", OpenWith::DataKey(&dk)).is_err());
    }
}
