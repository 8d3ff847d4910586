//! `recover` and `unseal`: the operator's uses of the escrow key.

use std::path::Path;

use anyhow::{Context, Result};
use minqing_store::keyring::{RECOVERY_REQUEST_FORMAT, RecoveryRequest};
use minqing_store::sealed::{self, OpenWith};

use crate::keys::{OperatorSecret, escrow_secret};
use crate::registry::{Home, usage};

/// Largest recovery request read.
const MAX_REQUEST_LEN: u64 = 64 * 1024;

/// `recover REQUEST --out ANSWER`: the operator's half of a passphrase recovery.
pub fn recover(home: &Home, secret: &OperatorSecret, request: &Path, out: &Path) -> Result<()> {
    home.config()?;
    if out.exists() {
        usage!("{} already exists; choose another --out", out.display());
    }
    let len = std::fs::metadata(request)
        .with_context(|| format!("cannot read {}", request.display()))?
        .len();
    if len > MAX_REQUEST_LEN {
        usage!("{} is too large for a recovery request", request.display());
    }
    let text =
        std::fs::read(request).with_context(|| format!("cannot read {}", request.display()))?;
    let req: RecoveryRequest = match serde_json::from_slice(&text) {
        Ok(r) => r,
        Err(e) => usage!(
            "{} is not a recovery request from `minqing recovery request` ({e})",
            request.display()
        ),
    };
    if req.format != RECOVERY_REQUEST_FORMAT {
        usage!(
            "{} has format {:?}, not {RECOVERY_REQUEST_FORMAT:?}",
            request.display(),
            req.format
        );
    }
    let escrow = escrow_secret(home, secret)?;
    let Some(answer) = req.answer(&escrow) else {
        anyhow::bail!(
            "{} was not made for this relay's escrow key (or is damaged); nothing was written",
            request.display()
        );
    };
    minqing_store::files::replace_private(out, &serde_json::to_vec_pretty(&answer)?)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let device = req.device_id.clone().unwrap_or_else(|| "-".into());
    home.audit(
        "escrow_recover",
        req.device_id.as_deref(),
        None,
        format!(
            "store {}; answer written to {}",
            req.store_id,
            out.display()
        ),
    )?;
    println!(
        "answer for laptop {device} written to {} (mode 0600): give it to the cadre, who runs `minqing recovery finish {}`; it works once, on that laptop only",
        out.display(),
        out.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    Ok(())
}

/// `unseal FILE --kind removed|backup --out FILE`: opens a laptop's sealed
/// `removed/` copy or backup with the escrow key.
pub fn unseal(home: &Home, secret: &OperatorSecret, file: &Path, out: &Path) -> Result<()> {
    home.config()?;
    if out.exists() {
        usage!("{} already exists; choose another --out", out.display());
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let escrow = escrow_secret(home, secret)?;
    let mut last = None;
    for kind in ["removed-village", "quarantined-village", "backup"] {
        match sealed::open(&bytes, file, kind, OpenWith::Escrow(&escrow)) {
            Ok(plain) => {
                minqing_store::files::replace_private(out, &plain)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                home.audit(
                    "escrow_unseal",
                    None,
                    None,
                    format!("{kind} file {} opened to {}", file.display(), out.display()),
                )?;
                println!(
                    "{} ({kind}) opened with the escrow key into {}",
                    file.display(),
                    out.display()
                );
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e.into()),
        None => anyhow::bail!("{} cannot be opened", file.display()),
    }
}
