//! The relay's home directory and registry: configuration, CA files, enrolled
//! devices, villages, last sync times and the audit log.
//!
//! The registry lives in small JSON files under `$HOME/registry/`, not in sled,
//! because sled allows one process per directory and the operator must be able to
//! `revoke` or `assign` while `serve` runs. Writers take an exclusive lock on
//! `registry/.lock`, write a temporary file, fsync it and rename it into place.
//! `serve` keeps the devices in memory ([`DeviceRegistry`]): a background
//! thread re-reads `devices.json` when its inode, size or mtime change (every
//! [`REFRESH_INTERVAL`]) and swaps in a new snapshot; the TLS handshake only
//! reads the snapshot. Admin commands that change devices while `serve` runs
//! wait until it acknowledges the new file (`devices.applied`), so a
//! revocation applies to the next connection.
//! `last_sync.json` is written only by `serve`. The audit log `audit.jsonl` is
//! append-only: one JSON object per line, each written with one `write` on an
//! `O_APPEND` descriptor and fsynced.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// `format` of `config.json`.
pub const CONFIG_FORMAT: &str = "minqing-relay/1";
/// Default address `serve` listens on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4433";
/// Largest registry file read, in bytes.
const MAX_REGISTRY_FILE: u64 = 64 * 1024 * 1024;

/// An error in what the operator typed (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns early with a [`UsageError`].
macro_rules! usage {
    ($($arg:tt)*) => { return Err(anyhow::Error::new($crate::registry::UsageError(format!($($arg)*)))) };
}
pub(crate) use usage;

/// `config.json`: the relay's identity and listen address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Always [`CONFIG_FORMAT`].
    pub format: String,
    /// The relay's name (shown to devices).
    pub name: String,
    /// Address `serve` binds.
    pub listen: String,
    /// The name devices verify the server certificate against.
    pub server_name: String,
    /// The relay's automerge actor id, hex.
    pub actor: String,
    /// When `init` ran.
    pub created_at: String,
    /// Limits against lock-out (docs/relay.md, "Limits"); defaults when absent.
    #[serde(default)]
    pub limits: Limits,
    /// The county console (docs/console.md); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<crate::console::ConsoleConfig>,
}

/// `config.json`'s `limits`: what no peer may exceed (docs/relay.md, "Limits").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Limits {
    /// Authenticated sessions at once.
    pub max_sessions: usize,
    /// Sessions of one laptop at once.
    pub max_sessions_per_device: usize,
    /// Handshakes in progress at once; beyond, new connections are refused.
    pub max_handshakes: usize,
    /// Handshakes in progress above which new connections must pass a QUIC Retry.
    pub retry_above: usize,
    /// Seconds a handshake may take.
    pub handshake_timeout_secs: u64,
    /// Seconds a connection may take to open its sync stream.
    pub stream_wait_secs: u64,
    /// Seconds of silence that end a session.
    pub silence_secs: u64,
    /// Seconds any session may last.
    pub session_deadline_secs: u64,
    /// MiB of partial frames buffered over all sessions.
    pub buffer_budget_mib: u64,
    /// Seconds per audit aggregation interval.
    pub audit_interval_secs: u64,
    /// MiB of memory for villages kept loaded (each counted as
    /// `cache::village_cost` of its saved size); least recently used ones not
    /// in use are evicted beyond it (docs/relay.md, "Limits").
    pub doc_cache_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 4096,
            max_sessions_per_device: 4,
            max_handshakes: 1024,
            retry_above: 64,
            handshake_timeout_secs: 10,
            stream_wait_secs: 10,
            silence_secs: 30,
            session_deadline_secs: 600,
            buffer_budget_mib: 256,
            audit_interval_secs: 60,
            doc_cache_mib: 256,
        }
    }
}

/// Device ids no laptop may have: `minqing-skeleton` is the automerge actor
/// of every village's deterministic skeleton (`minqing_model::village::SKELETON_ACTOR`),
/// which the relay accepts from anyone. A laptop's actors start with its
/// device id, so a laptop under that id could write as the skeleton.
pub fn reserved_device_id(id: &str) -> Option<&'static str> {
    let skeleton = std::str::from_utf8(minqing_model::village::SKELETON_ACTOR).ok()?;
    id.trim().eq_ignore_ascii_case(skeleton).then_some(skeleton)
}

/// The operator's message for a reserved device id.
pub fn reserved_message(id: &str) -> String {
    format!(
        "device id {id:?} is reserved: it is the author of every village's skeleton, not a laptop; enrol the laptop under another id (`minqing init` on the laptop makes one)"
    )
}

/// One enrolled device.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    /// The device id (16 characters of Crockford base32).
    pub device_id: String,
    /// The cadre it was enrolled for.
    pub cadre: String,
    /// The service team, if any.
    pub team: Option<String>,
    /// Assigned villages, sorted.
    pub villages: Vec<String>,
    /// SHA-256 of its certificate, hex; empty while its enrolment is pending.
    pub fingerprint: String,
    /// SHA-256 of its one-time enrolment secret, hex (devices enrolled with
    /// a bundle that carried a key have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// When the secret was used (the laptop got its certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_used_at: Option<String>,
    /// The certificate signed at enrolment, PEM: sent again if the same key
    /// asks again (the first answer was lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pem: Option<String>,
    /// Days its certificate is valid, counted from enrolment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_days: Option<u32>,
    /// Whether it was revoked.
    pub revoked: bool,
    /// When it was revoked.
    #[serde(default)]
    pub revoked_at: Option<String>,
    /// When it was enrolled.
    pub enrolled_at: String,
    /// When its certificate expires.
    pub expires_at: String,
    /// When `revoke --wipe` asked for it to be wiped at its next connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wipe_requested_at: Option<String>,
    /// When it confirmed that its keys were destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wiped_at: Option<String>,
}

impl Device {
    /// Whether this revoked laptop is to be told to wipe itself when it connects.
    pub fn wipe_pending(&self) -> bool {
        self.revoked && self.wipe_requested_at.is_some() && self.wiped_at.is_none()
    }
}

/// One village known to the relay.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VillageEntry {
    /// Village id (the document id).
    pub id: String,
    /// Name.
    pub name: String,
    /// Township, if given.
    #[serde(default)]
    pub township: Option<String>,
    /// When it was added.
    pub created_at: String,
}

/// One audit line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    /// When, RFC 3339.
    pub at: String,
    /// enroll, assign, revoke, refused_handshake, refused_village, sync, village_add.
    pub kind: String,
    /// The device concerned, if known.
    pub device_id: Option<String>,
    /// The village concerned, if any.
    pub village: Option<String>,
    /// Details for the operator.
    pub detail: String,
    /// On an aggregated line: how many events it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// On an aggregated line: when the first of them happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_at: Option<String>,
}

impl Device {
    /// Whether the laptop has not made its first contact yet.
    pub fn is_pending(&self) -> bool {
        self.fingerprint.is_empty()
    }
}

/// The current time as RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The files of a relay home.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A relay home at `root` (not checked).
    pub fn new(root: PathBuf) -> Self {
        Home { root }
    }
    /// The home directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }
    /// The CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca").join("ca.pem")
    }
    /// The CA key (mode 0600).
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca").join("ca.key")
    }
    /// The server certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("ca").join("server.pem")
    }
    /// The server key (mode 0600).
    pub fn server_key(&self) -> PathBuf {
        self.root.join("ca").join("server.key")
    }
    /// The sled store of documents.
    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }
    /// `serve`'s exports of every village, read by `report` while serve runs.
    pub fn export_dir(&self) -> PathBuf {
        self.root.join("export")
    }
    fn registry(&self) -> PathBuf {
        self.root.join("registry")
    }
    fn devices_path(&self) -> PathBuf {
        self.registry().join("devices.json")
    }
    fn villages_path(&self) -> PathBuf {
        self.registry().join("villages.json")
    }
    fn last_sync_path(&self) -> PathBuf {
        self.registry().join("last_sync.json")
    }
    /// The append-only audit log.
    pub fn audit_path(&self) -> PathBuf {
        self.registry().join("audit.jsonl")
    }

    /// Creates the directories of a new home.
    pub fn create_dirs(&self) -> Result<()> {
        for d in [self.root.join("ca"), self.registry()] {
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
        }
        Ok(())
    }

    /// Records that `device` confirmed a remote wipe (it is no longer asked).
    pub fn mark_wiped(&self, device: &str) -> Result<()> {
        let _lock = self.lock()?;
        let mut devices = self.devices()?;
        if let Some(d) = devices.get_mut(device) {
            d.wiped_at = Some(now_rfc3339());
            self.save_devices(&devices)?;
        }
        Ok(())
    }

    /// Reads `config.json`, with a hint when the home was never initialised.
    pub fn config(&self) -> Result<Config> {
        let path = self.config_path();
        self.refuse_laptop_home()?;
        if !path.exists() {
            usage!(
                "{} is not a relay home: run `minqing-relay init --home {} --name NAME` first, or pass the right --home",
                self.root.display(),
                self.root.display()
            );
        }
        let c: Config = read_json(&path)?
            .with_context(|| format!("{} disappeared while reading it", path.display()))?;
        if c.format != CONFIG_FORMAT {
            bail!(
                "{} has format {:?}, this minqing-relay reads {CONFIG_FORMAT:?}",
                path.display(),
                c.format
            );
        }
        Ok(c)
    }

    /// Refuses a laptop's home (made by `minqing init`): a store without the
    /// relay's `config.json`. The relay never sets up, reads or changes it.
    pub fn refuse_laptop_home(&self) -> Result<()> {
        if self.store().is_dir() && !self.config_path().exists() {
            bail!(
                "{} holds a minqing store but no relay config.json: it is a laptop's home (minqing init), not a relay's — minqing-relay will not use or change it; give minqing-relay its own --home",
                self.root.display()
            );
        }
        Ok(())
    }

    /// Takes the registry's write lock until the guard is dropped.
    pub fn lock(&self) -> Result<std::fs::File> {
        let path = self.registry().join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        f.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(f)
    }

    /// Enrolled devices by id.
    pub fn devices(&self) -> Result<BTreeMap<String, Device>> {
        Ok(read_json(&self.devices_path())?.unwrap_or_default())
    }
    /// Replaces the device registry (hold [`Home::lock`]).
    pub fn save_devices(&self, d: &BTreeMap<String, Device>) -> Result<()> {
        write_json(&self.devices_path(), d)
    }
    /// Known villages by id.
    pub fn villages(&self) -> Result<BTreeMap<String, VillageEntry>> {
        Ok(read_json(&self.villages_path())?.unwrap_or_default())
    }
    /// Replaces the village list (hold [`Home::lock`]).
    pub fn save_villages(&self, v: &BTreeMap<String, VillageEntry>) -> Result<()> {
        write_json(&self.villages_path(), v)
    }
    /// Last successful sync per device.
    pub fn last_sync(&self) -> Result<BTreeMap<String, String>> {
        Ok(read_json(&self.last_sync_path())?.unwrap_or_default())
    }
    /// Replaces the last-sync table (only `serve` writes it).
    pub fn save_last_sync(&self, m: &BTreeMap<String, String>) -> Result<()> {
        write_json(&self.last_sync_path(), m)
    }

    /// Appends one line to the audit log, durably.
    pub fn audit(
        &self,
        kind: &str,
        device_id: Option<&str>,
        village: Option<&str>,
        detail: impl Into<String>,
    ) -> Result<()> {
        let entry = AuditEntry {
            at: now_rfc3339(),
            kind: kind.to_owned(),
            device_id: device_id.map(str::to_owned),
            village: village.map(str::to_owned),
            detail: detail.into(),
            count: None,
            first_at: None,
        };
        self.append_audit(&[entry])
    }

    /// Appends audit lines with one write and one fsync.
    pub fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut line = Vec::new();
        for entry in entries {
            line.extend(serde_json::to_vec(entry).context("encoding an audit line")?);
            line.push(b'\n');
        }
        let path = self.audit_path();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open the audit log {}", path.display()))?;
        // One write per line: O_APPEND keeps concurrent writers' lines whole.
        f.write_all(&line)
            .and_then(|_| f.sync_data())
            .with_context(|| format!("cannot write the audit log {}", path.display()))?;
        Ok(())
    }

    /// Every audit line, oldest first. Unreadable lines are skipped with a warning.
    pub fn audit_entries(&self) -> Result<Vec<AuditEntry>> {
        let path = self.audit_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(e) => out.push(e),
                Err(e) => tracing::warn!("audit log line {} is unreadable: {e}", n + 1),
            }
        }
        Ok(out)
    }
}

/// Reads a JSON file, `None` if it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if meta.len() > MAX_REGISTRY_FILE {
        bail!("{} is too large ({} bytes)", path.display(), meta.len());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is damaged (not the expected JSON)", path.display()))?;
    Ok(Some(v))
}

/// Writes a JSON file atomically and durably (mode 0600).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).context("encoding JSON")?;
    minqing_net::write_private_file(path, &bytes)?;
    Ok(())
}

/// Inode, size and modification time (s, ns) of a file: changes on every rename-into-place.
type FileStamp = (u64, u64, i64, i64);

fn stamp(path: &Path) -> Option<FileStamp> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

fn stamp_text(s: Option<FileStamp>) -> String {
    match s {
        Some((ino, len, secs, nanos)) => format!("{ino}:{len}:{secs}:{nanos}"),
        None => "absent".into(),
    }
}

/// How often `serve` looks at `devices.json` for a change (one `stat` on a
/// blocking thread). A revocation or assignment made while `serve` runs
/// applies to connections that start [`APPLY_BOUND`] after it at the latest.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(250);
/// The bound stated in docs/relay.md: an admin change reaches the handshake
/// gate within this time (the poll interval, plus a re-read of the file).
pub const APPLY_BOUND: Duration = Duration::from_secs(1);

/// An immutable view of the enrolled devices, swapped whole by
/// [`DeviceRegistry`]: what the handshake gate reads, without I/O.
#[derive(Debug, Default)]
pub struct DeviceSnapshot {
    by_id: BTreeMap<String, Device>,
    /// Certificate fingerprint → device id.
    by_fingerprint: BTreeMap<String, String>,
}

impl DeviceSnapshot {
    fn new(by_id: BTreeMap<String, Device>) -> Self {
        let by_fingerprint = by_id
            .values()
            .filter(|d| !d.fingerprint.is_empty())
            .map(|d| (d.fingerprint.clone(), d.device_id.clone()))
            .collect();
        DeviceSnapshot {
            by_id,
            by_fingerprint,
        }
    }

    /// The device whose certificate has this fingerprint.
    pub fn by_fingerprint(&self, fingerprint: &str) -> Option<&Device> {
        self.by_id.get(self.by_fingerprint.get(fingerprint)?)
    }
}

/// The device registry as `serve` sees it: a snapshot in memory, re-read by
/// a background thread when `devices.json` changes ([`REFRESH_INTERVAL`]) and
/// right after `serve` itself changes the file (enrolment, wipe). The
/// handshake only reads the snapshot: no file access on the async runtime.
#[derive(Debug)]
pub struct DeviceRegistry {
    home: Home,
    snapshot: tokio::sync::watch::Sender<Arc<DeviceSnapshot>>,
    /// Stamp of the file the snapshot was read from; only the refreshing
    /// caller (one at a time) touches it.
    loaded: std::sync::Mutex<Option<FileStamp>>,
}

impl DeviceRegistry {
    /// Reads `home`'s registry once.
    pub fn load(home: Home) -> Result<DeviceRegistry, RegistryError> {
        let path = home.devices_path();
        let st = stamp(&path);
        let devices = read_devices(&path)?;
        let reg = DeviceRegistry {
            home,
            snapshot: tokio::sync::watch::Sender::new(Arc::new(DeviceSnapshot::new(devices))),
            loaded: std::sync::Mutex::new(st),
        };
        reg.acknowledge(st);
        Ok(reg)
    }

    /// The current snapshot (no I/O, never blocks on a reader or the file).
    pub fn snapshot(&self) -> Arc<DeviceSnapshot> {
        self.snapshot.borrow().clone()
    }

    /// Re-reads `devices.json` if it changed since the snapshot was taken
    /// (blocking: call it off the async runtime). Returns whether it did.
    ///
    /// If a previous refresh panicked while holding the stamp's lock, the
    /// stamp is not trusted: the file is read again, whatever its stamp.
    pub fn refresh(&self) -> Result<bool, RegistryError> {
        let path = self.home.devices_path();
        let mut loaded = match self.loaded.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                self.loaded.clear_poison();
                let mut g = poisoned.into_inner();
                // Evict what we knew: the next comparison fails, the file is re-read.
                *g = None;
                g
            }
        };
        let now = stamp(&path);
        if now.is_some() && *loaded == now {
            return Ok(false);
        }
        let devices = read_devices(&path)?;
        self.snapshot
            .send_replace(Arc::new(DeviceSnapshot::new(devices)));
        *loaded = now;
        drop(loaded);
        self.acknowledge(now);
        Ok(true)
    }

    /// Tells admin commands which `devices.json` the gate now uses
    /// (`registry/devices.applied`, a hint, not fsynced).
    fn acknowledge(&self, st: Option<FileStamp>) {
        let path = self.home.applied_path();
        if let Err(e) = std::fs::write(&path, stamp_text(st)) {
            tracing::debug!("cannot write {}: {e}", path.display());
        }
    }

    /// Starts the thread that refreshes the snapshot every
    /// [`REFRESH_INTERVAL`]; it returns when the handle is dropped.
    pub fn spawn_refresher(self: &Arc<Self>) -> std::io::Result<Refresher> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let reg = Arc::clone(self);
        std::thread::Builder::new()
            .name("minqing-registry".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(REFRESH_INTERVAL)
                {
                    if let Err(e) = reg.refresh() {
                        // The last good snapshot stays in force.
                        tracing::error!("cannot re-read the device registry: {e}");
                    }
                }
            })?;
        Ok(Refresher { _stop: stop })
    }
}

/// Stops the registry's refresher thread when dropped.
#[derive(Debug)]
pub struct Refresher {
    _stop: std::sync::mpsc::Sender<()>,
}

fn read_devices(path: &Path) -> Result<BTreeMap<String, Device>, RegistryError> {
    read_json(path)
        .map(Option::unwrap_or_default)
        .map_err(|source| RegistryError::Read {
            path: path.to_owned(),
            source: source.into(),
        })
}

/// Failures of the registry as `serve` uses it.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A registry file cannot be read or parsed.
    #[error("cannot read the device registry {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Home {
    fn applied_path(&self) -> PathBuf {
        self.registry().join("devices.applied")
    }

    /// After an admin change to `devices.json`: if `serve` runs on this home,
    /// waits (at most `wait`) until its handshake gate uses the new file.
    /// Returns `false` if it did not within `wait` (it will within
    /// [`APPLY_BOUND`] of its next refresh).
    pub fn wait_applied(&self, wait: Duration) -> bool {
        if !crate::cmd::report::store_in_use(&self.store()) {
            return true;
        }
        let want = stamp_text(stamp(&self.devices_path()));
        let start = std::time::Instant::now();
        loop {
            if std::fs::read_to_string(self.applied_path()).is_ok_and(|s| s == want) {
                return true;
            }
            if start.elapsed() >= wait {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skeleton_actor_is_a_reserved_device_id() {
        assert_eq!(
            reserved_device_id(" Minqing-Skeleton "),
            Some("minqing-skeleton")
        );
        assert_eq!(reserved_device_id("0123456789abcdef"), None);
        assert!(reserved_message("minqing-skeleton").contains("reserved"));
    }
}
