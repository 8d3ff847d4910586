//! The console's accounts (`registry/accounts.json`, docs/console.md):
//! login names with a role, a scope or department, an argon2id password hash
//! and a disabled flag. Written like every registry file: under the registry
//! lock, atomically and durably (`registry::write_json`, mode 0600).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use anyhow::Result;
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::registry::{Home, read_json, write_json};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted, in bytes (argon2 takes any length; a bound
/// keeps a login request's cost fixed).
pub const MAX_PASSWORD_BYTES: usize = 256;
/// argon2id memory, KiB (19 MiB: OWASP's minimum for argon2id).
const KDF_MEMORY_KIB: u32 = 19 * 1024;
/// argon2id passes.
const KDF_PASSES: u32 = 2;
/// Length of the random salt, bytes.
const SALT_LEN: usize = 16;
/// Length of the derived hash, bytes.
const HASH_LEN: usize = 32;

/// What an account may do in the console (docs/console.md, "Authorisation rules").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// County IT: accounts, departments, devices, audit.
    Operator,
    /// 督导: dashboards and 督办 within its scope.
    Supervisor,
    /// 职能部门: its own inbox.
    Department,
    /// Dashboards only.
    Viewer,
}

impl Role {
    /// Parses `operator`, `supervisor`, `department` or `viewer` (or the
    /// Chinese names 运维, 督导, 部门, 查看).
    pub fn parse(input: &str) -> Option<Role> {
        match input.trim().to_lowercase().as_str() {
            "operator" | "运维" => Some(Role::Operator),
            "supervisor" | "督导" => Some(Role::Supervisor),
            "department" | "部门" | "职能部门" => Some(Role::Department),
            "viewer" | "查看" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// The stored key.
    pub fn as_key(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Department => "department",
            Role::Viewer => "viewer",
        }
    }

    /// The Chinese name shown.
    pub fn name_zh(self) -> &'static str {
        match self {
            Role::Operator => "运维",
            Role::Supervisor => "督导",
            Role::Department => "职能部门",
            Role::Viewer => "查看",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_key())
    }
}

/// A supervisor's scope: the whole county or one township's villages.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Every village.
    County,
    /// The villages of one township (乡镇), by the name `village add --township` gave.
    Township(String),
}

impl Scope {
    /// Parses `county` or `township:NAME`.
    pub fn parse(input: &str) -> Option<Scope> {
        let t = input.trim();
        if t == "county" || t == "县" {
            return Some(Scope::County);
        }
        let name = t.strip_prefix("township:")?.trim();
        (!name.is_empty()).then(|| Scope::Township(name.to_owned()))
    }

    /// Whether a village of `township` is in this scope.
    pub fn covers(&self, township: Option<&str>) -> bool {
        match self {
            Scope::County => true,
            Scope::Township(t) => township == Some(t.as_str()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::County => f.write_str("county"),
            Scope::Township(t) => write!(f, "township:{t}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Scope::parse(&raw).ok_or_else(|| serde::de::Error::custom(format!("scope {raw:?}")))
    }
}

/// One console account as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// Name shown on pages and in the demand events it writes.
    pub display: String,
    /// Role.
    pub role: Role,
    /// Supervisor only: county or one township.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Department only: the canonical department name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// The password's argon2id hash ([`hash_password`]).
    pub hash: String,
    /// Refused at login and at the next request of any of its sessions.
    #[serde(default)]
    pub disabled: bool,
    /// When it was added (RFC 3339).
    pub created_at: String,
    /// When its password was last set (RFC 3339).
    pub password_changed_at: String,
}

/// What `user list --json` prints of an account (never the hash).
#[derive(Clone, Debug, Serialize)]
pub struct AccountView {
    /// Login name.
    pub name: String,
    /// Shown name.
    pub display: String,
    /// Role key.
    pub role: Role,
    /// Supervisor scope (`county`, `township:NAME`).
    pub scope: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Disabled.
    pub disabled: bool,
    /// Added at.
    pub created_at: String,
    /// Password set at.
    pub password_changed_at: String,
}

impl Account {
    /// The listing view (no hash).
    pub fn view(&self) -> AccountView {
        AccountView {
            name: self.name.clone(),
            display: self.display.clone(),
            role: self.role,
            scope: self.scope.as_ref().map(ToString::to_string),
            department: self.department.clone(),
            disabled: self.disabled,
            created_at: self.created_at.clone(),
            password_changed_at: self.password_changed_at.clone(),
        }
    }
}

/// The accounts file.
pub fn accounts_path(home: &Home) -> PathBuf {
    home.root().join("registry").join("accounts.json")
}

/// Every account by login name.
pub fn load(home: &Home) -> Result<BTreeMap<String, Account>> {
    Ok(read_json(&accounts_path(home))?.unwrap_or_default())
}

/// Replaces the accounts file (hold [`Home::lock`]): atomic and durable.
pub fn save(home: &Home, accounts: &BTreeMap<String, Account>) -> Result<()> {
    write_json(&accounts_path(home), accounts)
}

/// Checks a login name: 2-32 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_login_name(name: &str) -> Result<(), String> {
    let ok_len = (2..=32).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let ok_first = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok_len && ok_chars && ok_first {
        Ok(())
    } else {
        Err(format!(
            "login name {name:?} must be 2-32 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit (e.g. shuiwu-zhang)"
        ))
    }
}

/// Checks a shown name: 1-40 characters, no control characters.
pub fn check_display(display: &str) -> Result<String, String> {
    let t = display.trim();
    let n = t.chars().count();
    if n == 0 || n > 40 || t.chars().any(|c| c.is_control()) {
        return Err(format!(
            "--display {display:?} must be 1-40 characters without control characters (e.g. 张科长)"
        ));
    }
    Ok(t.to_owned())
}

/// Checks a new password's length.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "a console password needs at least {MIN_PASSWORD_CHARS} characters; nothing was changed"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "a console password has at most {MAX_PASSWORD_BYTES} bytes; nothing was changed"
        ));
    }
    Ok(())
}

fn argon2() -> Result<Argon2<'static>, String> {
    let params = Params::new(KDF_MEMORY_KIB, KDF_PASSES, 1, Some(HASH_LEN))
        .map_err(|e| format!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Hashes a password with argon2id and a random salt:
/// `argon2id$v=19$m=19456,t=2,p=1$SALT$HASH` (hex).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt: [u8; SALT_LEN] = rand::random();
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    argon2()?
        .hash_password_into(password.as_bytes(), &salt, &mut *out)
        .map_err(|e| format!("argon2: {e}"))?;
    Ok(format!(
        "argon2id$v=19$m={KDF_MEMORY_KIB},t={KDF_PASSES},p=1${}${}",
        hex(&salt),
        hex(&*out)
    ))
}

/// Whether `password` matches `stored` (a [`hash_password`] string), in
/// time independent of where the hashes differ. A malformed hash matches
/// nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let parts: Vec<&str> = stored.split('$').collect();
    let [alg, ver, params, salt, hash] = parts.as_slice() else {
        return false;
    };
    if *alg != "argon2id" || *ver != "v=19" {
        return false;
    }
    let mut m = None;
    let mut t = None;
    for kv in params.split(',') {
        match kv.split_once('=') {
            Some(("m", v)) => m = v.parse::<u32>().ok(),
            Some(("t", v)) => t = v.parse::<u32>().ok(),
            _ => {}
        }
    }
    let (Some(m), Some(t), Some(salt), Some(want)) = (m, t, unhex(salt), unhex(hash)) else {
        return false;
    };
    let Ok(params) = Params::new(m, t, 1, Some(want.len())) else {
        return false;
    };
    let mut got = Zeroizing::new(vec![0u8; want.len()]);
    if Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), &salt, &mut got)
        .is_err()
    {
        return false;
    }
    got.iter().zip(&want).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Masks a 身份证号: its first 4 and last 4 characters, the rest `*`
/// (`3708**********1224`); shorter values are masked whole.
pub fn mask_id_card(id: &str) -> String {
    mask(id, 4, 4)
}

/// Masks a phone number: its first 3 and last 4 characters (`138****5678`).
pub fn mask_phone(phone: &str) -> String {
    mask(phone, 3, 4)
}

fn mask(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..head].iter().collect();
    out.push_str(&"*".repeat(chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_verifies_only_the_password() {
        let h = hash_password("正确的密码abc123").unwrap();
        assert!(h.starts_with("argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("正确的密码abc123", &h));
        assert!(!verify_password("正确的密码abc124", &h));
        assert!(!verify_password("", &h));
        // Two hashes of one password differ (random salt).
        assert_ne!(h, hash_password("正确的密码abc123").unwrap());
        assert!(!verify_password("x", "argon2id$v=19$m=8,t=1,p=1$zz$00"));
        assert!(!verify_password("x", "plain"));
    }

    #[test]
    fn masking_keeps_only_the_ends() {
        assert_eq!(mask_id_card("370802199001011224"), "3708**********1224");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("1234"), "****");
    }

    #[test]
    fn names_roles_and_scopes_parse() {
        assert!(check_login_name("shuiwu-zhang").is_ok());
        assert!(check_login_name("Zhang").is_err());
        assert!(check_login_name("-x").is_err());
        assert_eq!(Role::parse("督导"), Some(Role::Supervisor));
        assert_eq!(Role::parse("admin"), None);
        assert_eq!(
            Scope::parse("township:城关镇"),
            Some(Scope::Township("城关镇".into()))
        );
        assert_eq!(Scope::parse("township:"), None);
        assert!(Scope::parse("county").unwrap().covers(None));
        assert!(!Scope::Township("城关镇".into()).covers(Some("河口镇")));
        assert!(check_new_password("short").is_err());
    }
}
