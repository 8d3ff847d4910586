//! The value codec of an encrypted store: every sled value is sealed with
//! XChaCha20-Poly1305 under the store's data key, bound to its tree and key.
//!
//! Stored form: `0xE1 ‖ nonce (24 bytes) ‖ ciphertext ‖ tag (16 bytes)`; the
//! associated data is `tree name ‖ 0x00 ‖ sled key`, so a value moved to another
//! key or tree fails authentication. See docs/security.md.

use std::sync::Arc;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// Length of a data key, in bytes.
pub const KEY_LEN: usize = 32;
/// First byte of every sealed value.
const SEALED_TAG: u8 = 0xE1;
/// XChaCha20 nonce length.
pub(crate) const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a sealed value adds to its plaintext.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// A store's data key: 32 random bytes, zeroed when dropped.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> DataKey {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(k.as_mut());
        DataKey(k)
    }

    /// A key from its bytes (as unwrapped from a keyring slot).
    pub fn from_bytes(bytes: &[u8]) -> Option<DataKey> {
        let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(arr)))
    }

    /// A key from a derived key's bytes.
    pub(crate) fn from_array(bytes: &Zeroizing<[u8; KEY_LEN]>) -> DataKey {
        DataKey(bytes.clone())
    }

    /// The raw key bytes (for wrapping only).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }
}

/// Random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    OsRng.fill_bytes(&mut b);
    b
}

/// Encrypts `plain` under `cipher` with a fresh random nonce:
/// `nonce ‖ ciphertext ‖ tag`.
pub(crate) fn xseal(cipher: &XChaCha20Poly1305, plain: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
    xseal_into(cipher, plain, aad, &mut out);
    out
}

/// Appends `nonce ‖ ciphertext ‖ tag` of `plain` to `out`, encrypting in
/// place in `out` (no intermediate buffer: a store write seals straight into
/// the record it stores).
pub(crate) fn xseal_into(cipher: &XChaCha20Poly1305, plain: &[u8], aad: &[u8], out: &mut Vec<u8>) {
    let nonce: [u8; NONCE_LEN] = random();
    out.reserve(NONCE_LEN + plain.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plain);
    // Encryption with a valid key and nonce only fails for plaintexts beyond
    // 2^38 bytes; sled values are far smaller, so an error here is unreachable
    // and an empty ciphertext without a tag (which then fails to open) is a
    // safe fallback.
    match cipher.encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut out[start..]) {
        Ok(tag) => out.extend_from_slice(&tag),
        Err(_) => out.truncate(start),
    }
}

/// Opens `nonce ‖ ciphertext ‖ tag`; `None` if it does not authenticate.
pub(crate) fn xopen(cipher: &XChaCha20Poly1305, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

/// How the store turns values into sled bytes and back.
#[derive(Clone)]
pub(crate) enum Codec {
    /// Values stored as they are (the relay's store).
    Plain,
    /// Values sealed under a data key (a laptop's store).
    Sealed(Arc<XChaCha20Poly1305>),
}

/// Why a stored value cannot be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Not a sealed value at all (e.g. a plaintext value in an encrypted store).
    NotSealed,
    /// The value fails authentication: damaged, moved, or another key's.
    Forged,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::NotSealed => f.write_str("is not encrypted (a foreign or damaged value)"),
            OpenError::Forged => f.write_str("fails authentication (damaged, or not this store's)"),
        }
    }
}

fn aad(tree: &str, key: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(tree.len() + 1 + key.len());
    a.extend_from_slice(tree.as_bytes());
    a.push(0);
    a.extend_from_slice(key);
    a
}

impl Codec {
    /// Bytes this codec adds to a value.
    pub(crate) fn overhead(&self) -> usize {
        match self {
            Codec::Plain => 0,
            Codec::Sealed(_) => SEAL_OVERHEAD,
        }
    }

    /// The bytes to store for `value` under `key` of `tree`.
    pub(crate) fn seal(&self, tree: &str, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(value.len() + self.overhead());
        self.seal_into(tree, key, value, &mut out);
        out
    }

    /// Appends the bytes to store for `value` under `key` of `tree` to `out`.
    pub(crate) fn seal_into(&self, tree: &str, key: &[u8], value: &[u8], out: &mut Vec<u8>) {
        match self {
            Codec::Plain => out.extend_from_slice(value),
            Codec::Sealed(c) => {
                out.push(SEALED_TAG);
                xseal_into(c, value, &aad(tree, key), out);
            }
        }
    }

    /// The checksummed record (`record::encode`) of the bytes to store for
    /// `value`, built in one buffer: what a document write stores.
    pub(crate) fn seal_record(&self, tree: &str, key: &[u8], value: &[u8]) -> Vec<u8> {
        crate::record::encode_with(value.len() + self.overhead(), |out| {
            self.seal_into(tree, key, value, out)
        })
    }

    /// The value stored as `stored` under `key` of `tree`.
    pub(crate) fn open(&self, tree: &str, key: &[u8], stored: &[u8]) -> Result<Vec<u8>, OpenError> {
        match self {
            Codec::Plain => Ok(stored.to_vec()),
            Codec::Sealed(c) => {
                let Some((&SEALED_TAG, rest)) = stored.split_first() else {
                    return Err(OpenError::NotSealed);
                };
                xopen(c, rest, &aad(tree, key)).ok_or(OpenError::Forged)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_are_bound_to_tree_and_key() {
        let k = DataKey::generate();
        let c = Codec::Sealed(Arc::new(k.cipher()));
        let s = c.seal("chunks", b"V1\0a", "身份证号".as_bytes());
        assert!(!s.windows(4).any(|w| w == &"身份证号".as_bytes()[..4]));
        assert_eq!(
            c.open("chunks", b"V1\0a", &s).unwrap(),
            "身份证号".as_bytes()
        );
        assert_eq!(c.open("chunks", b"V2\0a", &s), Err(OpenError::Forged));
        assert_eq!(c.open("meta", b"V1\0a", &s), Err(OpenError::Forged));
        let other = Codec::Sealed(Arc::new(DataKey::generate().cipher()));
        assert_eq!(other.open("chunks", b"V1\0a", &s), Err(OpenError::Forged));
        assert_eq!(c.open("chunks", b"k", b"plain"), Err(OpenError::NotSealed));
        assert_eq!(s.len(), 12 + SEAL_OVERHEAD);
    }

    #[test]
    fn a_sealed_record_is_the_record_of_the_sealed_value() {
        let k = DataKey::generate();
        for codec in [Codec::Plain, Codec::Sealed(Arc::new(k.cipher()))] {
            for value in [&b""[..], "身份证号".as_bytes(), &[7u8; 5000][..]] {
                let rec = codec.seal_record("chunks", b"V1\0a", value);
                let payload = crate::record::decode(&rec).unwrap();
                assert_eq!(payload.len(), value.len() + codec.overhead());
                assert_eq!(codec.open("chunks", b"V1\0a", payload).unwrap(), value);
                assert_eq!(
                    codec.open("chunks", b"V2\0a", payload).is_ok(),
                    matches!(codec, Codec::Plain)
                );
            }
        }
    }
}
