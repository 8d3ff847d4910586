//! The enrolment bundle: what a laptop needs for its first contact with the
//! relay (the relay's CA, address and server name, the cadre, device id,
//! villages and a one-time enrolment secret — never a private key), as one JSON
//! file; and the laptop's own identity (key and certificate) made from it.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::NetError;

/// The `format` field of every bundle this version writes and reads.
pub const BUNDLE_FORMAT: &str = "minqing-bundle/2";
/// The format of bundles from relays before one-time enrolment (they carried a key).
const OLD_BUNDLE_FORMAT: &str = "minqing-bundle/1";
/// Largest bundle file read, in bytes (a bundle is a few KB).
pub const MAX_BUNDLE_LEN: u64 = 1024 * 1024;
/// Length of the enrolment secret in bytes (written as 64 hex digits).
pub const SECRET_LEN: usize = 32;
/// Longest name (relay, cadre, team) a bundle may carry, in characters.
const MAX_NAME_CHARS: usize = 64;
/// Longest relay name, in characters.
const MAX_RELAY_NAME_CHARS: usize = 200;
/// Most villages a bundle may assign.
const MAX_VILLAGES: usize = 10_000;

/// An enrolment bundle, written by `minqing-relay enroll` and read by
/// `minqing init --bundle` / `minqing enroll --bundle`.
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
    /// The villages assigned at enrolment.
    pub villages: Vec<String>,
    /// When the bundle was issued (RFC 3339).
    pub issued_at: String,
    /// The one-time enrolment secret, hex ([`SECRET_LEN`] bytes). Secret until
    /// used; empty in the copy a laptop keeps after enrolling.
    #[serde(default)]
    pub enrol_secret: String,
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

fn bundle_err(detail: impl Into<String>) -> NetError {
    NetError::Bundle {
        path: "<text>".into(),
        detail: detail.into(),
    }
}

/// A new enrolment secret, hex.
pub fn new_secret() -> String {
    let bytes: [u8; SECRET_LEN] = rand::random();
    hex(&bytes)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of an enrolment secret (as its hex text), hex: what the relay keeps.
pub fn secret_digest(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.trim().as_bytes()).as_ref())
}

/// Checks a device id: the id rule shared by relay and laptop
/// (`minqing_sync::check_id`, which `minqing_model::ids::parse_device_id`
/// applies too), then the shape the relay gives device ids (16 characters of
/// minqing's lowercase Crockford base32, `minqing_model::Id`; repeated here
/// because minqing-net does not depend on the model).
pub fn check_device_id(id: &str) -> Result<(), String> {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let bad = || {
        format!(
            "device id {:?} is not a minqing device id (16 letters and digits)",
            truncate(id)
        )
    };
    minqing_sync::check_id(id).map_err(|_| bad())?;
    if id.len() == 16 && id.bytes().all(|b| ALPHABET.contains(&b)) {
        Ok(())
    } else {
        Err(bad())
    }
}

fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out.escape_debug().to_string()
}

/// Refuses control, bidi-override and zero-width characters, and overlong text.
fn check_text(what: &str, s: &str, max_chars: usize) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    let n = s.chars().count();
    if n > max_chars {
        return Err(format!(
            "{what} is {n} characters long (at most {max_chars})"
        ));
    }
    if let Some(c) = s.chars().find(|c| {
        c.is_control()
            || matches!(*c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    }) {
        return Err(format!(
            "{what} {:?} contains the invisible or control character U+{:04X}",
            truncate(s),
            u32::from(c)
        ));
    }
    Ok(())
}

/// Checks a relay address: `host:port` with a port from 1 to 65535 and a host
/// of letters, digits, '.', '-' (or an IP address, IPv6 in brackets).
pub fn check_addr(addr: &str) -> Result<(), String> {
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || {
        format!(
            "relay address {:?} is not HOST:PORT (e.g. 10.0.0.5:4433)",
            truncate(addr)
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(bad()),
    }
    let ok_host = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok_host { Ok(()) } else { Err(bad()) }
}

/// Checks that `pem` is one CA certificate that is currently valid.
fn check_ca(pem: &str) -> Result<(), String> {
    let der = crate::ca::parse_cert_pem(pem).map_err(|e| format!("the relay's CA: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("the relay's CA certificate does not parse: {e}"))?;
    if !cert.is_ca() {
        return Err("the relay's CA certificate is not a CA certificate".into());
    }
    cert.verify_signature(None).map_err(|_| {
        "the relay's CA certificate is damaged (its signature does not match); ask the operator for a new bundle".to_owned()
    })?;
    if !cert.validity().is_valid() {
        return Err(format!(
            "the relay's CA certificate is not valid now (valid {} to {}); check this laptop's clock",
            cert.validity().not_before,
            cert.validity().not_after
        ));
    }
    Ok(())
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
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        Self::read_bytes(&path.display().to_string(), &bytes)
    }

    /// Checks a bundle received as bytes (the cadre's upload in `minqing
    /// app`): the same checks and errors as [`Bundle::read`], `name` standing
    /// for the file's path in them.
    pub fn read_bytes(name: &str, bytes: &[u8]) -> Result<Self, NetError> {
        let err = |detail: String| NetError::Bundle {
            path: name.to_owned(),
            detail,
        };
        if bytes.len() as u64 > MAX_BUNDLE_LEN {
            return Err(err(format!(
                "{} bytes is too large for a bundle (at most {MAX_BUNDLE_LEN})",
                bytes.len()
            )));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            err(format!(
                "cannot read it: stream did not contain valid UTF-8 ({e})"
            ))
        })?;
        Self::from_json(text).map_err(|e| match e {
            NetError::Bundle { detail, .. } => err(detail),
            other => other,
        })
    }

    /// Parses a bundle from JSON text and checks all of it ([`Bundle::check`]).
    pub fn from_json(text: &str) -> Result<Self, NetError> {
        let b = Self::parse_unchecked(text)?;
        b.check()?;
        Ok(b)
    }

    /// Parses a bundle from JSON text, checking only its format: for the copy a
    /// laptop keeps (whose secret was spent).
    pub fn parse_unchecked(text: &str) -> Result<Self, NetError> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| bundle_err(format!("not a minqing enrolment bundle ({e})")))?;
        match v.get("format").and_then(|f| f.as_str()) {
            Some(BUNDLE_FORMAT) => {}
            Some(OLD_BUNDLE_FORMAT) => {
                return Err(bundle_err(
                    "this bundle is from an older relay and carries a private key; ask the operator for a new bundle (`minqing-relay enroll`)",
                ));
            }
            Some(other) => {
                return Err(bundle_err(format!(
                    "format {:?} is not {BUNDLE_FORMAT:?}; ask the operator for a bundle from this relay version",
                    truncate(other)
                )));
            }
            None => return Err(bundle_err("not a minqing enrolment bundle (no format)")),
        }
        serde_json::from_value(v)
            .map_err(|e| bundle_err(format!("not a minqing enrolment bundle ({e})")))
    }

    /// Checks everything a laptop accepts from a bundle before it writes
    /// anything: device id, names, villages, relay address and server name, the
    /// CA certificate and the secret.
    pub fn check(&self) -> Result<(), NetError> {
        self.check_inner().map_err(bundle_err)
    }

    fn check_inner(&self) -> Result<(), String> {
        check_device_id(&self.device_id)?;
        check_text("the cadre's name", &self.cadre, MAX_NAME_CHARS)?;
        if let Some(t) = &self.team {
            check_text("the team", t, MAX_NAME_CHARS)?;
        }
        check_text("the relay's name", &self.relay_name, MAX_RELAY_NAME_CHARS)?;
        check_addr(&self.relay_addr)?;
        rustls_pki_types::ServerName::try_from(self.server_name.as_str()).map_err(|_| {
            format!(
                "server name {:?} is not a DNS name or IP address",
                truncate(&self.server_name)
            )
        })?;
        if self.villages.len() > MAX_VILLAGES {
            return Err(format!("more than {MAX_VILLAGES} villages"));
        }
        for v in &self.villages {
            minqing_sync::DocId::new(v.clone())
                .map_err(|e| format!("village {:?}: {e}", truncate(v)))?;
        }
        check_ca(&self.ca_cert_pem)?;
        if self.enrol_secret.len() != 2 * SECRET_LEN
            || !self.enrol_secret.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(
                "the enrolment secret is missing or damaged; ask the operator for a new bundle"
                    .into(),
            );
        }
        Ok(())
    }

    /// The copy a laptop keeps after enrolling: the same, without the secret.
    pub fn without_secret(&self) -> Bundle {
        Bundle {
            enrol_secret: String::new(),
            ..self.clone()
        }
    }

    /// Writes the bundle to `path` with mode 0600 (it holds a secret),
    /// durably: a temporary file, fsync, rename, fsync of the directory.
    pub fn write(&self, path: &Path) -> Result<(), NetError> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| NetError::Certificate(crate::CertFailure::Encode(e)))?;
        write_private_file(path, &json)
    }
}

/// A laptop's identity with its relay: its private key (made on the laptop,
/// never sent) and the certificate the relay signed for it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The device certificate, PEM.
    pub cert_pem: String,
    /// The device's private key (PKCS#8), PEM. Secret.
    pub key_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint().ok())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The SHA-256 fingerprint of the device certificate.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in [
            "127.0.0.1:4433",
            "relay.county.gov.cn:4433",
            "[::1]:1",
            "a-b:65535",
        ] {
            assert!(check_addr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "host",
            "host:0",
            "host:99999",
            ":4433",
            "a b:1",
            "../x:1",
            "h..x:1",
        ] {
            assert!(check_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn device_ids() {
        assert!(check_device_id("k4tac3jgjjeqcef1").is_ok());
        for bad in [
            "../../etc",
            "K4TAC3JGJJEQCEF1",
            "k4tac3jgjjeqcef",
            "k4tac3jgjjeqcefi",
        ] {
            assert!(check_device_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_refuse_control_and_bidi() {
        assert!(check_text("x", "张伟", 64).is_ok());
        assert!(check_text("x", "张\u{1b}]0;x\u{7}", 64).is_err());
        assert!(check_text("x", "张\u{202e}伟", 64).is_err());
        assert!(check_text("x", &"长".repeat(40_000), 64).is_err());
        assert!(check_text("x", " ", 64).is_err());
    }
}
