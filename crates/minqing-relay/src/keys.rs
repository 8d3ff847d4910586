//! The relay's secrets at rest (docs/security.md): the CA key and the escrow
//! private key are sealed with the operator passphrase; `recover` answers a
//! laptop's recovery request and `unseal` opens a laptop's `removed/` copy or
//! backup with the escrow key (cmd/keys.rs).

use std::path::PathBuf;

use anyhow::{Context, Result};
use minqing_net::RelayCa;
use minqing_store::escrow::{EscrowPublic, EscrowSecret};
use minqing_store::keyring::KdfParams;
use minqing_store::sealed::{self, OpenWith, SealTo};
use minqing_store::secret::Passphrase;

use crate::registry::{Config, Home, usage};

/// `kind` of the sealed CA key file.
const CA_KEY_KIND: &str = "relay-ca-key";
/// `kind` of the sealed escrow key file.
const ESCROW_KEY_KIND: &str = "relay-escrow-key";
/// The hint printed when there is no terminal to ask on.
const HINT: &str = "--passphrase-file FILE or MINQING_RELAY_PASSPHRASE_FILE";

/// Where the operator passphrase comes from.
#[derive(Clone, Debug, Default)]
pub struct OperatorSecret {
    /// `--passphrase-file` / `MINQING_RELAY_PASSPHRASE_FILE`.
    pub file: Option<PathBuf>,
}

impl OperatorSecret {
    /// The operator passphrase of an existing relay home.
    pub fn passphrase(&self) -> Result<Passphrase> {
        Ok(match &self.file {
            Some(f) => Passphrase::from_file(f)?,
            None => Passphrase::prompt("operator passphrase: ", "the operator passphrase", HINT)?,
        })
    }

    /// A new operator passphrase (file, or asked twice), checked for length.
    pub fn new_passphrase(&self) -> Result<Passphrase> {
        let p = match &self.file {
            Some(f) => Passphrase::from_file(f)?,
            None => Passphrase::prompt_new("operator passphrase", HINT)?,
        };
        if let Err(e) = p.check_new() {
            usage!("{e}");
        }
        Ok(p)
    }
}

/// The escrow public key file.
pub fn escrow_pub_path(home: &Home) -> PathBuf {
    home.root().join("ca").join("escrow.pub")
}

fn escrow_key_path(home: &Home) -> PathBuf {
    home.root().join("ca").join("escrow.key")
}

/// The argon2id parameters for a new sealed key file (warns on the test-only ones).
fn kdf() -> KdfParams {
    let (kdf, weak) = KdfParams::for_new_keyring();
    if weak {
        eprintln!(
            "warning: test-only weak key derivation ({}=1): never use this for a real relay",
            minqing_store::keyring::WEAK_KDF_ENV
        );
    }
    kdf
}

/// Seals the CA key with the operator passphrase, makes the escrow key pair
/// (private half sealed the same way) and writes the escrow public key.
pub fn write_new_keys(home: &Home, ca_key_pem: &str, passphrase: &Passphrase) -> Result<()> {
    let kdf = kdf();
    let to = SealTo {
        passphrase: Some((passphrase, kdf)),
        ..SealTo::default()
    };
    sealed::write(&home.ca_key(), CA_KEY_KIND, ca_key_pem.as_bytes(), &to)?;
    let escrow = EscrowSecret::generate();
    sealed::write(
        &escrow_key_path(home),
        ESCROW_KEY_KIND,
        escrow.to_bytes().as_ref(),
        &to,
    )?;
    minqing_store::files::replace_private(
        &escrow_pub_path(home),
        format!("{}\n", escrow.public().to_text()).as_bytes(),
    )
    .with_context(|| format!("cannot write {}", escrow_pub_path(home).display()))?;
    Ok(())
}

/// The CA key's PEM: unsealed with the operator passphrase, or read as it is
/// from a relay home made before keys were sealed (with a warning).
pub fn ca_key_pem(home: &Home, secret: &OperatorSecret) -> Result<String> {
    let path = home.ca_key();
    let bytes = std::fs::read(&path)
        .with_context(|| format!("cannot read the CA key {}", path.display()))?;
    if !sealed::is_sealed(&bytes) {
        eprintln!(
            "warning: the CA key {} is not encrypted (a relay home made by an older version); keep the home on an encrypted disk",
            path.display()
        );
        return String::from_utf8(bytes).context("the CA key is not PEM text");
    }
    let p = secret.passphrase()?;
    let pem = sealed::open(&bytes, &path, CA_KEY_KIND, OpenWith::Passphrase(&p))?;
    String::from_utf8(pem.to_vec()).context("the CA key is not PEM text")
}

/// The escrow public key, if this relay has one.
pub fn escrow_public(home: &Home) -> Result<Option<EscrowPublic>> {
    let path = escrow_pub_path(home);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(EscrowPublic::parse(&t).with_context(|| {
            format!("{} is not an escrow public key", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub(crate) fn escrow_secret(home: &Home, secret: &OperatorSecret) -> Result<EscrowSecret> {
    let path = escrow_key_path(home);
    if !path.exists() {
        usage!(
            "this relay has no escrow key ({} is missing): it was made before escrow existed, so its laptops' keys cannot be recovered",
            path.display()
        );
    }
    let p = secret.passphrase()?;
    let bytes = sealed::read(&path, ESCROW_KEY_KIND, OpenWith::Passphrase(&p))?;
    EscrowSecret::from_bytes(&bytes).context("the escrow key file is damaged")
}

/// Loads the relay's CA (the key is unsealed with the operator passphrase).
pub fn load_ca(home: &Home, config: &Config, secret: &OperatorSecret) -> Result<RelayCa> {
    let cert = std::fs::read_to_string(home.ca_cert()).with_context(|| {
        format!(
            "cannot read the CA certificate {}",
            home.ca_cert().display()
        )
    })?;
    let key = ca_key_pem(home, secret)?;
    Ok(RelayCa::load(&config.name, &cert, &key)?)
}
