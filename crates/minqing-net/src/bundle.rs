//! The enrolment bundle: everything a laptop needs to reach its relay (key,
//! certificate, the relay's CA and address, the assignment), as one JSON file.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::NetError;

/// The `format` field of every bundle this version writes and reads.
pub const BUNDLE_FORMAT: &str = "minqing-bundle/1";
/// Largest bundle file read, in bytes (a bundle is a few KB).
pub const MAX_BUNDLE_LEN: u64 = 1024 * 1024;

/// An enrolment bundle, written by `minqing-relay enroll` and read by `minqing init --bundle`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// The device id the relay gave this laptop.
    pub device_id: String,
    /// The cadre the laptop was enrolled for.
    pub cadre: String,
    /// The service team, if any.
    #[serde(default)]
    pub team: Option<String>,
    /// The relay's name.
    pub relay_name: String,
    /// The relay's address, `host:port`.
    pub relay_addr: String,
    /// The name the relay's server certificate is checked against.
    pub server_name: String,
    /// The relay's CA certificate, PEM.
    pub ca_cert_pem: String,
    /// This device's certificate, PEM.
    pub cert_pem: String,
    /// This device's private key, PEM. Secret.
    pub key_pem: String,
    /// The villages assigned at enrolment.
    pub villages: Vec<String>,
    /// When the bundle was issued (RFC 3339).
    pub issued_at: String,
    /// The relay's escrow public key (`minqing-escrow1:…`): the laptop wraps
    /// its data key to it as well, for recovery by the operator
    /// (docs/security.md). Absent from bundles of relays without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escrow_public_key: Option<String>,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("device_id", &self.device_id)
            .field("cadre", &self.cadre)
            .field("relay_name", &self.relay_name)
            .field("relay_addr", &self.relay_addr)
            .field("villages", &self.villages)
            .finish_non_exhaustive()
    }
}

impl Bundle {
    /// Reads and checks a bundle file.
    pub fn read(path: &Path) -> Result<Self, NetError> {
        let err = |detail: String| NetError::Bundle {
            path: path.display().to_string(),
            detail,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        if meta.len() > MAX_BUNDLE_LEN {
            return Err(err(format!(
                "{} bytes is too large for a bundle (at most {MAX_BUNDLE_LEN})",
                meta.len()
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        Self::from_json(&text).map_err(|e| match e {
            NetError::Bundle { detail, .. } => err(detail),
            other => other,
        })
    }

    /// Parses and checks a bundle from JSON text.
    pub fn from_json(text: &str) -> Result<Self, NetError> {
        let err = |detail: String| NetError::Bundle {
            path: "<text>".into(),
            detail,
        };
        let b: Bundle = serde_json::from_str(text)
            .map_err(|e| err(format!("not a minqing enrolment bundle ({e})")))?;
        if b.format != BUNDLE_FORMAT {
            return Err(err(format!(
                "format {:?} is not {BUNDLE_FORMAT:?}; ask the operator for a bundle from this relay version",
                b.format
            )));
        }
        crate::ca::parse_cert_pem(&b.ca_cert_pem)?;
        crate::ca::parse_cert_pem(&b.cert_pem)?;
        Ok(b)
    }

    /// Writes the bundle to `path` with mode 0600 (it holds a private key),
    /// durably: a temporary file, fsync, rename, fsync of the directory.
    pub fn write(&self, path: &Path) -> Result<(), NetError> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| NetError::Certificate(format!("encoding the bundle: {e}")))?;
        write_private_file(path, &json)
    }

    /// The SHA-256 fingerprint of this device's certificate.
    pub fn fingerprint(&self) -> Result<String, NetError> {
        crate::ca::fingerprint_pem(&self.cert_pem)
    }
}

/// Writes `bytes` to `path` atomically and durably with mode 0600.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), NetError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let ctx = |what: &str| format!("{what} {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| NetError::io(ctx("creating"), e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| NetError::io(ctx("writing"), e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| NetError::io(ctx("renaming into"), e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Best effort: some file systems refuse fsync on directories.
        let _ = d.sync_all();
    }
    Ok(())
}
