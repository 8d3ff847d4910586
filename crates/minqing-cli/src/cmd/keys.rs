//! Keys and copies of the laptop's data: `minqing passwd`, `minqing lock`,
//! `minqing backup`, `minqing restore` and `minqing recovery request|finish`
//! (docs/security.md).

use std::path::Path;

use anyhow::{Context, bail};
use minqing_store::escrow::EscrowPublic;
use minqing_store::keyring::{
    self, Keyring, RECOVERY_ANSWER_FORMAT, RecoveryAnswer, THROTTLE_FILE,
};
use minqing_store::sealed::{self, OpenWith, SealTo};
use minqing_store::secret::Passphrase;
use minqing_sync::DocId;

use crate::cli::{BackupArgs, PasswdArgs, RecoveryCmd, RestoreArgs};
use crate::error::usage;
use crate::home::{self, Home, Secrets, store_dir};
use crate::output;

/// `kind` of a backup's sealed file.
pub const BACKUP_KIND: &str = "backup";
/// First bytes of a backup's payload.
const BACKUP_MAGIC: &[u8] = b"MQBACKUP1";
/// Entry kinds in a backup payload.
const ENTRY_META: u8 = 1;
const ENTRY_DOC: u8 = 2;
const ENTRY_ESCROW: u8 = 3;
/// Longest key in a backup entry.
const MAX_ENTRY_KEY: usize = 4096;

/// `minqing passwd [--new-passphrase-file FILE]`.
pub fn passwd(dir: &Path, secrets: &Secrets, args: &PasswdArgs) -> anyhow::Result<()> {
    // Open the whole home: the current passphrase must be right (throttled;
    // a key in the key cache proves nothing), and the home must be one
    // minqing can use.
    home::check_unlockable_pub(dir)?;
    let current = secrets.passphrase(dir)?;
    let home = Home::open_with(dir, Some(&current))?;
    let new = match &args.new_passphrase_file {
        Some(f) => Passphrase::from_file(f)?,
        None => Passphrase::prompt_new("passphrase", "--new-passphrase-file FILE")?,
    };
    new.check_new().map_err(|e| usage(e.to_string()))?;
    let mut ring = home.keyring.clone();
    ring.set_passphrase(&home.key, &new, home::new_kdf())?;
    ring.save(&store_dir(dir))
        .context("cannot write the new keyring; the old passphrase still works")?;
    // The next command asks for the new passphrase.
    home::forget_cached_key(dir);
    output::line(&format!(
        "passphrase changed for {}; the old one no longer opens it",
        dir.display()
    ))
}

/// `minqing lock`: drops this home's data key from the key cache
/// (docs/security.md); nothing cached is not an error.
pub fn lock(dir: &Path) -> anyhow::Result<()> {
    home::refuse_relay_home(dir)?;
    if !keyring::has_keyring(&store_dir(dir)) {
        return output::line(&format!(
            "nothing to lock: {} has no keyring (not set up, or wiped)",
            dir.display()
        ));
    }
    home::forget_cached_key(dir);
    match crate::app::client::find(dir) {
        None => output::line("locked: the next command asks for the passphrase"),
        Some(app) => output::line(&format!(
            "locked: the key cache no longer holds this laptop's key, but minqing app (pid {}) keeps the home unlocked, and commands go through it, until it stops",
            app.pid
        )),
    }
}

fn put_entry(out: &mut Vec<u8>, kind: u8, key: &[u8], value: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u64).to_be_bytes());
    out.extend_from_slice(value);
}

/// One entry of a backup payload.
struct Entry<'a> {
    kind: u8,
    key: &'a str,
    value: &'a [u8],
}

fn parse_entries(payload: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut rest = payload.strip_prefix(BACKUP_MAGIC)?;
    let mut out = Vec::new();
    while let Some((&kind, r)) = rest.split_first() {
        let (klen, r) = r.split_at_checked(4)?;
        let klen = u32::from_be_bytes(klen.try_into().ok()?) as usize;
        if klen > MAX_ENTRY_KEY {
            return None;
        }
        let (key, r) = r.split_at_checked(klen)?;
        let (vlen, r) = r.split_at_checked(8)?;
        let vlen = usize::try_from(u64::from_be_bytes(vlen.try_into().ok()?)).ok()?;
        let (value, r) = r.split_at_checked(vlen)?;
        out.push(Entry {
            kind,
            key: std::str::from_utf8(key).ok()?,
            value,
        });
        rest = r;
    }
    Some(out)
}

/// `minqing backup --to FILE [--backup-passphrase-file FILE]`.
pub fn backup(dir: &Path, secrets: &Secrets, args: &BackupArgs) -> anyhow::Result<()> {
    if args.to.exists() {
        return Err(usage(format!(
            "{} already exists; choose another --to (a backup is never overwritten)",
            args.to.display()
        )));
    }
    let separate = args
        .backup_passphrase_file
        .as_deref()
        .map(Passphrase::from_file)
        .transpose()?;
    if let Some(p) = &separate {
        p.check_new().map_err(|e| usage(e.to_string()))?;
    }
    // The laptop's passphrase itself (it may seal the backup): asked even
    // when the key cache holds the key.
    home::check_unlockable_pub(dir)?;
    let passphrase = secrets.passphrase(dir)?;
    let home = Home::open_with(dir, Some(&passphrase))?;
    let mut payload = BACKUP_MAGIC.to_vec();
    let mut villages = 0;
    for (key, value) in home.store.meta_scan("")? {
        if key.starts_with("vw/") {
            // Views kept on disk: derived from the documents, made again
            // after a restore (whose documents are at new versions anyway).
            continue;
        }
        // The incarnation goes too: restore replaces it with a new one.
        put_entry(&mut payload, ENTRY_META, key.as_bytes(), &value);
    }
    for id in home.village_ids()? {
        // One whole document per village: the snapshot and chunks, as loaded.
        let doc = minqing_sync::load_doc(&*home.store, &id)
            .with_context(|| format!("cannot read village {id}"))?;
        if let Some(doc) = doc {
            put_entry(&mut payload, ENTRY_DOC, id.as_str().as_bytes(), &doc.save());
            villages += 1;
        }
    }
    let escrow = home.escrow();
    if let Some(e) = &escrow {
        put_entry(
            &mut payload,
            ENTRY_ESCROW,
            b"escrow",
            e.to_text().as_bytes(),
        );
    }
    let kdf = home::new_kdf();
    sealed::write(
        &args.to,
        BACKUP_KIND,
        &payload,
        &SealTo {
            passphrase: Some((separate.as_ref().unwrap_or(&passphrase), kdf)),
            data_key: None,
            escrow: escrow.as_ref(),
        },
    )
    .with_context(|| format!("cannot write the backup {}", args.to.display()))?;
    output::line(&format!(
        "backed up {villages} villages of {} to {} (encrypted{}{})",
        home.device.cadre,
        args.to.display(),
        if separate.is_some() {
            " with the backup passphrase"
        } else {
            " with this laptop's passphrase"
        },
        if escrow.is_some() {
            " and the relay's escrow key"
        } else {
            ""
        }
    ))
}

/// `minqing restore FILE --home DIR [--backup-passphrase-file FILE]`.
pub fn restore(dir: &Path, secrets: &Secrets, args: &RestoreArgs) -> anyhow::Result<()> {
    if let Some(why) = home::already_set_up(dir, secrets) {
        return Err(usage(format!("{why}; restore into a new --home")));
    }
    let backup_pass = match &args.backup_passphrase_file {
        Some(f) => Passphrase::from_file(f)?,
        None => secrets.passphrase(&args.file)?,
    };
    let payload = sealed::read(&args.file, BACKUP_KIND, OpenWith::Passphrase(&backup_pass))?;
    let entries = parse_entries(&payload).with_context(|| {
        format!(
            "{} opens but its contents are damaged; nothing was written",
            args.file.display()
        )
    })?;
    let device_raw = entries
        .iter()
        .find(|e| e.kind == ENTRY_META && e.key == home::DEVICE_KEY)
        .context("the backup holds no laptop identity; nothing was written")?;
    let device: home::Device = serde_json::from_slice(device_raw.value)
        .context("the backup's laptop identity is damaged; nothing was written")?;
    let escrow = entries
        .iter()
        .find(|e| e.kind == ENTRY_ESCROW)
        .and_then(|e| std::str::from_utf8(e.value).ok())
        .and_then(EscrowPublic::parse);
    // Check every document before anything is written.
    let mut docs = Vec::new();
    for e in entries.iter().filter(|e| e.kind == ENTRY_DOC) {
        let id = DocId::new(e.key).context("the backup names a village badly")?;
        minqing_model::Village::load(id.clone(), e.value).with_context(|| {
            format!("village {id} in the backup does not load; nothing was written")
        })?;
        docs.push((id, e.value));
    }
    // The new home's passphrase: the file if one is given, else the backup's.
    let new_pass = match (&secrets.passphrase_file, &args.backup_passphrase_file) {
        (Some(f), _) => Passphrase::from_file(f)?,
        (None, Some(_)) => secrets.new_passphrase(None)?,
        (None, None) => backup_pass,
    };
    let (store, _key) = home::create_store(dir, &new_pass, escrow.as_ref(), &device.device_id)?;
    for e in entries.iter().filter(|e| e.kind == ENTRY_META) {
        store.meta_put(e.key, e.value)?;
    }
    for (id, bytes) in &docs {
        store.append(id, bytes)?;
    }
    // A restored laptop never writes as the incarnation that made the backup.
    store
        .flush()
        .context("cannot flush the restored store to disk")?;
    home::start_new_incarnation(dir, &*store)?;
    store
        .flush()
        .context("cannot flush the restored store to disk")?;
    output::line(&format!(
        "restored {} villages for {} (device {}) into {} with a new actor incarnation; run `minqing sync` to bring what the relay has",
        docs.len(),
        device.cadre,
        device.device_id,
        dir.display()
    ))
}

/// `minqing recovery request|finish`.
pub fn recovery(dir: &Path, secrets: &Secrets, cmd: RecoveryCmd) -> anyhow::Result<()> {
    let sdir = store_dir(dir);
    if !keyring::has_keyring(&sdir) {
        bail!(
            "{} has no keyring to recover (not set up, or wiped)",
            dir.display()
        );
    }
    match cmd {
        RecoveryCmd::Request { to } => {
            if to.exists() {
                return Err(usage(format!(
                    "{} already exists; choose another --to",
                    to.display()
                )));
            }
            let mut ring = Keyring::load(&sdir)?;
            let req = ring.recovery_request().ok_or_else(|| {
                anyhow::anyhow!(
                    "this laptop was set up without a relay's escrow key, so the operator cannot recover it; only a backup or the relay's copy of the villages can help"
                )
            })?;
            // The one-time key first: an answer must find it.
            ring.save(&sdir)
                .context("cannot keep the one-time recovery key")?;
            minqing_store::files::replace_private(&to, &serde_json::to_vec_pretty(&req)?)
                .with_context(|| format!("cannot write {}", to.display()))?;
            output::line(&format!(
                "recovery request written to {}: give it to the relay operator, who runs `minqing-relay recover {} --out ANSWER`; then `minqing recovery finish ANSWER`",
                to.display(),
                to.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ))
        }
        RecoveryCmd::Finish {
            answer,
            new_passphrase_file,
        } => {
            let _ = secrets;
            let text = std::fs::read(&answer)
                .with_context(|| format!("cannot read {}", answer.display()))?;
            let ans: RecoveryAnswer = serde_json::from_slice(&text)
                .ok()
                .filter(|a: &RecoveryAnswer| a.format == RECOVERY_ANSWER_FORMAT)
                .ok_or_else(|| {
                    usage(format!(
                        "{} is not a recovery answer from `minqing-relay recover`",
                        answer.display()
                    ))
                })?;
            let mut ring = Keyring::load(&sdir)?;
            let key = ring.recover(&ans, &answer)?;
            let new = match &new_passphrase_file {
                Some(f) => Passphrase::from_file(f)?,
                None => Passphrase::prompt_new("passphrase", "--new-passphrase-file FILE")?,
            };
            new.check_new().map_err(|e| usage(e.to_string()))?;
            ring.set_passphrase(&key, &new, home::new_kdf())?;
            ring.end_recovery();
            ring.save(&sdir).context("cannot write the new keyring")?;
            let _ = std::fs::remove_file(sdir.join(THROTTLE_FILE));
            // As after `passwd`: the next command asks for the new passphrase.
            home::forget_cached_key(dir);
            output::line(&format!(
                "recovered: {} opens with the new passphrase; the answer cannot be used again",
                dir.display()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_entries_round_trip_and_truncation_is_refused() {
        let mut p = BACKUP_MAGIC.to_vec();
        put_entry(&mut p, ENTRY_META, b"device", b"{}");
        put_entry(&mut p, ENTRY_DOC, b"V1", b"bytes");
        let e = parse_entries(&p).unwrap();
        assert_eq!(
            (e[0].kind, e[0].key, e[0].value),
            (ENTRY_META, "device", &b"{}"[..])
        );
        assert_eq!(
            (e[1].kind, e[1].key, e[1].value),
            (ENTRY_DOC, "V1", &b"bytes"[..])
        );
        assert!(parse_entries(&p[..p.len() - 1]).is_none());
        assert!(parse_entries(b"other").is_none());
    }
}
