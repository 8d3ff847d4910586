//! The discovery file `<home>/app.json` (docs/app.md, "Discovery file"): where
//! a running `minqing app` listens and the per-launch secret, readable only by
//! the cadre's account (0600).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name inside the home.
pub const FILE: &str = "app.json";
/// The file's format tag.
pub const FORMAT: &str = "minqing-app/1";

/// What a running service tells the other processes of its home.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Discovery {
    /// [`FORMAT`].
    pub format: String,
    /// The service's process id.
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The per-launch secret (64 hex digits).
    pub secret: String,
    /// The home it owns (canonical path).
    pub home: PathBuf,
    /// When it started (RFC 3339).
    pub started: String,
}

/// The discovery file's path in home `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Writes the discovery file durably, mode 0600 (temporary file, fsync, rename).
pub fn write(dir: &Path, d: &Discovery) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec_pretty(d)?;
    minqing_store::files::replace_private(&path(dir), &bytes).map_err(|e| {
        anyhow::anyhow!(
            "cannot write the service's discovery file {}: {e}",
            path(dir).display()
        )
    })
}

/// Reads the discovery file of home `dir`, if there is a readable one.
pub fn read(dir: &Path) -> Option<Discovery> {
    let bytes = std::fs::read(path(dir)).ok()?;
    let d: Discovery = serde_json::from_slice(&bytes).ok()?;
    (d.format == FORMAT).then_some(d)
}

/// Removes the discovery file (its secret overwritten first).
pub fn remove(dir: &Path) {
    if let Err(e) = minqing_store::files::shred(&path(dir)) {
        tracing::warn!("cannot remove {}: {e}", path(dir).display());
    }
}

/// Whether process `pid` exists (signal 0).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match rustix::process::Pid::from_raw(raw) {
        Some(p) => match rustix::process::test_kill_process(p) {
            Ok(()) => true,
            // It exists but is not ours to signal: alive, though not our service.
            Err(e) => e == rustix::io::Errno::PERM,
        },
        None => false,
    }
}

/// The canonical form of a home path (as the service records it).
pub fn canonical(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}
