//! Public-key wrapping of small secrets (a data key, a file key) to an X25519
//! key: the relay's escrow key, or a laptop's one-time recovery key.
//!
//! The construction is age's X25519 recipient stanza (age-encryption.org/v1):
//! an ephemeral X25519 key pair, the shared secret with the recipient,
//! HKDF-SHA256 with salt = ephemeral public ‖ recipient public and a label,
//! and ChaCha20-Poly1305 with that single-use key and a zero nonce. Built only
//! from RustCrypto (`hkdf`, `sha2`, `chacha20poly1305`) and `x25519-dalek`.

use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::hex;

/// Text prefix of an escrow public key (`minqing-escrow1:` + 64 hex digits).
pub const PUBLIC_PREFIX: &str = "minqing-escrow1:";

/// An X25519 public key that secrets can be wrapped to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EscrowPublic(pub(crate) [u8; 32]);

impl EscrowPublic {
    /// The key as text: `minqing-escrow1:<64 hex digits>`.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", hex::encode(&self.0))
    }

    /// Parses [`EscrowPublic::to_text`]'s form.
    pub fn parse(text: &str) -> Option<EscrowPublic> {
        let h = text.trim().strip_prefix(PUBLIC_PREFIX)?;
        let bytes: [u8; 32] = hex::decode(h)?.try_into().ok()?;
        Some(EscrowPublic(bytes))
    }
}

/// An X25519 secret key (the relay's escrow key, a one-time recovery key).
pub struct EscrowSecret(StaticSecret);

impl EscrowSecret {
    /// A new random key.
    pub fn generate() -> EscrowSecret {
        EscrowSecret(StaticSecret::random_from_rng(OsRng))
    }

    /// Its public half.
    pub fn public(&self) -> EscrowPublic {
        EscrowPublic(PublicKey::from(&self.0).to_bytes())
    }

    /// The secret's bytes (to be sealed before they are stored).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// A secret from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<EscrowSecret> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(EscrowSecret(StaticSecret::from(arr)))
    }

    /// Unwraps a stanza made for this key with the same `label`.
    pub fn unwrap(&self, stanza: &Stanza, label: &str) -> Option<Zeroizing<Vec<u8>>> {
        let eph: [u8; 32] = hex::decode(&stanza.ephemeral)?.try_into().ok()?;
        let eph = PublicKey::from(eph);
        let shared = self.0.diffie_hellman(&eph);
        if !shared.was_contributory() {
            return None;
        }
        let key = derive(shared.as_bytes(), eph.as_bytes(), &self.public().0, label)?;
        let ct = hex::decode(&stanza.wrapped)?;
        ChaCha20Poly1305::new(key.as_ref().into())
            .decrypt(&Nonce::default(), Payload { msg: &ct, aad: b"" })
            .ok()
            .map(Zeroizing::new)
    }
}

/// A secret wrapped to an X25519 public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stanza {
    /// The recipient's public key, as text (to tell which key it needs).
    pub recipient: String,
    /// The ephemeral public key, hex.
    pub ephemeral: String,
    /// The wrapped secret (ciphertext and tag), hex.
    pub wrapped: String,
}

fn derive(
    shared: &[u8],
    eph: &[u8; 32],
    recipient: &[u8; 32],
    label: &str,
) -> Option<Zeroizing<[u8; 32]>> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(eph);
    salt[32..].copy_from_slice(recipient);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(label.as_bytes(), key.as_mut()).ok()?;
    Some(key)
}

/// Wraps `secret` to `to` under `label` (which the unwrapping side must repeat).
pub fn wrap(to: &EscrowPublic, secret: &[u8], label: &str) -> Option<Stanza> {
    let eph = EphemeralSecret::random_from_rng(OsRng);
    let eph_pub = PublicKey::from(&eph);
    let shared = eph.diffie_hellman(&PublicKey::from(to.0));
    if !shared.was_contributory() {
        return None;
    }
    let key = derive(shared.as_bytes(), eph_pub.as_bytes(), &to.0, label)?;
    let ct = ChaCha20Poly1305::new(key.as_ref().into())
        .encrypt(
            &Nonce::default(),
            Payload {
                msg: secret,
                aad: b"",
            },
        )
        .ok()?;
    Some(Stanza {
        recipient: to.to_text(),
        ephemeral: hex::encode(eph_pub.as_bytes()),
        wrapped: hex::encode(&ct),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_to_one_key_and_label_only() {
        let relay = EscrowSecret::generate();
        let s = wrap(&relay.public(), b"data key", "minqing/test").unwrap();
        assert_eq!(&*relay.unwrap(&s, "minqing/test").unwrap(), b"data key");
        assert!(relay.unwrap(&s, "minqing/other").is_none());
        assert!(
            EscrowSecret::generate()
                .unwrap(&s, "minqing/test")
                .is_none()
        );
        let back = EscrowSecret::from_bytes(relay.to_bytes().as_ref()).unwrap();
        assert_eq!(back.public(), relay.public());
        assert_eq!(
            EscrowPublic::parse(&relay.public().to_text()),
            Some(relay.public())
        );
        // A low-order (all-zero) ephemeral key is refused, not used.
        let mut bad = s.clone();
        bad.ephemeral = "00".repeat(32);
        assert!(relay.unwrap(&bad, "minqing/test").is_none());
    }
}
