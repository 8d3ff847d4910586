//! The device side of relay sync: `minqing init --bundle`, `minqing sync
//! [--watch]` and `minqing status`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use std::process::ExitCode;

use minqing_model::{PersonName, TeamName};
use minqing_net::{Bundle, ConnectOptions, Identity, NetError};
use minqing_store::DataKey;
use minqing_store::escrow::EscrowPublic;
use minqing_sync::{
    DeviceEvent, DocId, DocOutcome, SessionConfig, SessionOutcome, Storage, StorageError, Store,
};
use serde::Serialize;

use crate::cli::SyncArgs;
use crate::error::usage;
use crate::home::{self, Home};
use crate::idle_store::IdleStore;
use crate::output;

/// Meta key holding the enrolment bundle (JSON, without its spent secret).
pub const BUNDLE_KEY: &str = "relay_bundle";
/// Meta key holding the laptop's key and certificate (JSON `{cert_pem, key_pem}`).
pub const IDENTITY_KEY: &str = "relay_identity";
/// Meta key holding the time of the last successful sync (RFC 3339).
pub const LAST_SYNC_KEY: &str = "relay_last_sync";

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A first contact not finished yet: kept in meta so that running the command
/// again reuses the same key (the relay may have signed it already).
#[derive(Serialize, serde::Deserialize)]
struct Pending {
    bundle: Bundle,
    key_pem: String,
}

/// The relay's escrow public key from a bundle (`None` if it has none).
fn escrow_of(bundle: &Bundle) -> Result<Option<EscrowPublic>, String> {
    match bundle.escrow_public_key.as_deref() {
        None => Ok(None),
        Some(text) => EscrowPublic::parse(text)
            .map(Some)
            .ok_or_else(|| format!("escrow_public_key {text:?} is not a minqing escrow key")),
    }
}

/// Where an enrolment bundle comes from: a file named on the command line, or
/// the file a cadre uploaded on the app's 设置 page. Both get the same checks
/// and the same errors.
pub(crate) enum BundleFrom<'a> {
    /// `--bundle FILE`.
    File(&'a Path),
    /// An upload: the file's name as the browser gave it, and its bytes.
    Upload {
        /// The uploaded file's name (stands for the path in errors).
        name: &'a str,
        /// Its content.
        bytes: &'a [u8],
    },
}

impl BundleFrom<'_> {
    fn shown(&self) -> String {
        match self {
            BundleFrom::File(p) => p.display().to_string(),
            BundleFrom::Upload { name, .. } => (*name).to_owned(),
        }
    }
}

/// Where the passphrase of a home being set up comes from: the terminal or
/// `--passphrase-file` (the CLI), or the form of the app's 设置 page.
pub(crate) enum PassFrom<'a> {
    /// Asked as every command asks ([`home::Secrets`]).
    Secrets(&'a home::Secrets),
    /// Typed on the 设置 page (never written anywhere).
    Given(&'a minqing_store::secret::Passphrase),
}

/// Reads and checks everything of a bundle before anything is written.
fn read_bundle(from: &BundleFrom<'_>) -> anyhow::Result<Bundle> {
    let bundle = match from {
        BundleFrom::File(path) => Bundle::read(path),
        BundleFrom::Upload { name, bytes } => Bundle::read_bytes(name, bytes),
    }
    .map_err(|e| usage(e.to_string()))?;
    let shown = from.shown();
    PersonName::parse(&bundle.cadre)
        .map_err(|e| usage(format!("enrolment bundle {shown}: the cadre: {e}")))?;
    if let Some(t) = &bundle.team {
        TeamName::parse(t)
            .map_err(|e| usage(format!("enrolment bundle {shown}: the team: {e}")))?;
    }
    minqing_model::ids::parse_device_id(&bundle.device_id)
        .map_err(|e| usage(format!("enrolment bundle {shown}: the device id: {e}")))?;
    Ok(bundle)
}

/// [`read_bundle`], and the relay's escrow key the bundle carries.
pub(crate) fn read_bundle_and_escrow(
    from: &BundleFrom<'_>,
) -> anyhow::Result<(Bundle, Option<EscrowPublic>)> {
    let bundle = read_bundle(from)?;
    let escrow = escrow_of(&bundle).map_err(|e| usage(format!("{}: {e}", from.shown())))?;
    Ok((bundle, escrow))
}

/// The key to enrol with: the pending one if this same bundle was tried
/// before, else a new one (written as pending before the first contact).
fn pending_key(store: &dyn Store, bundle: &Bundle) -> anyhow::Result<String> {
    if let Some(raw) = store.meta_get(home::ENROL_PENDING_KEY)?
        && let Ok(p) = serde_json::from_slice::<Pending>(&raw)
        && p.bundle.device_id == bundle.device_id
        && p.bundle.enrol_secret == bundle.enrol_secret
    {
        return Ok(p.key_pem);
    }
    let key_pem = minqing_net::new_device_key()?;
    let pending = Pending {
        bundle: bundle.clone(),
        key_pem: key_pem.clone(),
    };
    store.meta_put(home::ENROL_PENDING_KEY, &serde_json::to_vec(&pending)?)?;
    store.flush().context("cannot flush the store to disk")?;
    Ok(key_pem)
}

/// The first contact, with the store closed meanwhile (so the cadre's own
/// commands keep working on a standalone home).
pub(crate) fn first_contact(
    bundle: &Bundle,
    key_pem: &str,
    timeout: u64,
) -> anyhow::Result<Result<Identity, NetError>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let opts = ConnectOptions {
        timeout: Duration::from_secs(timeout.max(1)),
    };
    Ok(rt.block_on(minqing_net::enrol(bundle, key_pem, opts)))
}

/// Writes the enrolment's result into meta, in one flush.
fn finish_enrolment(
    store: &dyn Store,
    bundle: &Bundle,
    identity: &Identity,
    device: Option<&home::Device>,
) -> anyhow::Result<()> {
    store.meta_put(BUNDLE_KEY, &serde_json::to_vec(&bundle.without_secret())?)?;
    store.meta_put(IDENTITY_KEY, &serde_json::to_vec(identity)?)?;
    if let Some(d) = device {
        store.meta_put(home::DEVICE_KEY, &serde_json::to_vec(d)?)?;
    }
    store.meta_remove(home::ENROL_PENDING_KEY)?;
    store.flush().context("cannot flush the store to disk")?;
    Ok(())
}

/// What a failed first contact prints; its exit code.
pub(crate) fn contact_failed(
    bundle: &Bundle,
    e: NetError,
    pending_kept: bool,
) -> anyhow::Result<ExitCode> {
    if e.is_trust_failure() {
        crate::output::err(&format!("error: {e}"));
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    let again = if pending_kept {
        "; nothing is half set up: run the same command again when the relay is reachable"
    } else {
        ""
    };
    Err(anyhow::anyhow!(
        "enrolment with relay {} failed: {e}{again}",
        bundle.relay_name
    ))
}

/// `minqing init --bundle FILE`: sets a new home up with the identity it gets
/// at its first contact with the relay.
///
/// The app's 设置 page runs this same function with the uploaded file and the
/// passphrase typed there ([`BundleFrom::Upload`], [`PassFrom::Given`]).
pub(crate) fn init_bundle(
    dir: &Path,
    from: &BundleFrom<'_>,
    timeout: u64,
    pass: &PassFrom<'_>,
) -> anyhow::Result<ExitCode> {
    let (bundle, escrow) = read_bundle_and_escrow(from)?;
    home::refuse_relay_home(dir)?;
    // A home with a keyring: a first contact tried before (pending), or a
    // home set up already. Without one: a new encrypted store (the data key
    // wrapped by the new passphrase and the relay's escrow key).
    let existed = minqing_store::keyring::has_keyring(&home::store_dir(dir));
    let mut dir_existed = true;
    let key = if existed {
        let (_, key) = match pass {
            PassFrom::Secrets(secrets) => home::unlock(dir, secrets)?,
            PassFrom::Given(p) => home::unlock_with(dir, p)?,
        };
        let store = home::open_store(dir, &key)?;
        if let Some(raw) = store.meta_get(home::DEVICE_KEY)? {
            let who = serde_json::from_slice::<home::Device>(&raw)
                .map(|d| format!("{} (device {})", d.cadre, d.device_id))
                .unwrap_or_else(|_| "another cadre".to_owned());
            anyhow::bail!(
                "{} is already set up for {who}; nothing was changed (to join a relay with this home, run `minqing enroll --bundle FILE`; for a second identity use another --home)",
                dir.display()
            );
        }
        key
    } else {
        let none = home::Secrets::default();
        let secrets = match pass {
            PassFrom::Secrets(s) => s,
            PassFrom::Given(_) => &none,
        };
        if let Some(why) = home::already_set_up(dir, secrets) {
            anyhow::bail!(why);
        }
        let asked;
        let passphrase = match pass {
            PassFrom::Secrets(s) => {
                asked = s.new_passphrase(None)?;
                &asked
            }
            PassFrom::Given(p) => {
                p.check_new().map_err(|e| usage(e.to_string()))?;
                *p
            }
        };
        dir_existed = dir.exists();
        home::create_store(dir, passphrase, escrow.as_ref(), &bundle.device_id)?.1
    };
    let key_pem = {
        let store = home::open_store(dir, &key)?;
        pending_key(&*store, &bundle)?
    };
    let identity = match first_contact(&bundle, &key_pem, timeout)? {
        Ok(i) => i,
        Err(e) => {
            if e.is_trust_failure() {
                // Refused for good: leave nothing of this bundle behind.
                if existed {
                    let store = home::open_store(dir, &key)?;
                    store.meta_remove(home::ENROL_PENDING_KEY)?;
                    store.flush()?;
                } else {
                    home::forget_cached_key(dir);
                    let _ = std::fs::remove_dir_all(home::store_dir(dir));
                    if !dir_existed {
                        let _ = std::fs::remove_dir(dir);
                    }
                }
            }
            return contact_failed(&bundle, e, true);
        }
    };
    let device = home::Device {
        device_id: bundle.device_id.clone(),
        cadre: bundle.cadre.clone(),
        team: bundle.team.clone(),
        created: now(),
    };
    let store = home::open_store(dir, &key)?;
    finish_enrolment(&*store, &bundle, &identity, Some(&device))?;
    home::start_new_incarnation(dir, &*store)?;
    if escrow.is_none() {
        crate::output::err(
            "note: this bundle carries no escrow key: if the passphrase is forgotten, only a backup or the relay's copy can bring the data back",
        );
    }
    output::line(&format!(
        "set up {} for {} with relay {} at {}; assigned villages ({}) arrive with `minqing sync`",
        bundle.device_id,
        bundle.cadre,
        bundle.relay_name,
        bundle.relay_addr,
        bundle.villages.join(", ")
    ))?;
    output::line(&bundle.device_id)?;
    Ok(ExitCode::SUCCESS)
}

/// `minqing enroll --bundle FILE`: a home set up standalone joins a relay; its
/// villages stay and are offered to the relay at the next sync.
///
/// The app's 设置 page joins a relay with the same steps on the home it holds
/// open: [`enroll_begin`], [`first_contact`], [`enroll_finish`] (or
/// [`forget_pending`] and [`contact_failed`]).
pub fn enroll(
    dir: &Path,
    bundle_path: &Path,
    timeout: u64,
    secrets: &home::Secrets,
) -> anyhow::Result<ExitCode> {
    let (bundle, escrow) = read_bundle_and_escrow(&BundleFrom::File(bundle_path))?;
    // Unlocked once; the store is reopened with the key after the first
    // contact (closed meanwhile, so the cadre's own commands keep working).
    let (key, key_pem) = {
        let home = Home::open(dir, secrets)?;
        (home.key.clone(), enroll_begin(&home, &bundle)?)
    };
    let identity = match first_contact(&bundle, &key_pem, timeout)? {
        Ok(i) => i,
        Err(e) => {
            if e.is_trust_failure() {
                forget_pending(&*home::open_store(dir, &key)?)?;
            }
            return contact_failed(&bundle, e, true);
        }
    };
    let store = home::open_store(dir, &key)?;
    let held = enroll_finish(dir, &*store, &key, &bundle, &identity, escrow.as_ref())?;
    output::line(&format!(
        "{} joined relay {} at {}; {} village(s) on this laptop are offered to the relay at the next `minqing sync` (assigned: {})",
        bundle.device_id,
        bundle.relay_name,
        bundle.relay_addr,
        held,
        if bundle.villages.is_empty() {
            "none".to_owned()
        } else {
            bundle.villages.join(", ")
        }
    ))?;
    output::line(&bundle.device_id)?;
    Ok(ExitCode::SUCCESS)
}

/// Checks that the standalone `home` may join a relay with `bundle` (not
/// enrolled yet, the bundle made for this device); the key to enrol with,
/// kept as pending. Nothing else is written.
pub(crate) fn enroll_begin(home: &Home, bundle: &Bundle) -> anyhow::Result<String> {
    if home.store.meta_get(BUNDLE_KEY)?.is_some() {
        let b = stored_bundle(&*home.store)?;
        anyhow::bail!(
            "this laptop is already enrolled with relay {} at {}; nothing was changed",
            b.0.relay_name,
            b.0.relay_addr
        );
    }
    if home.device.device_id != bundle.device_id {
        anyhow::bail!(
            "this enrolment file is for device {}, but this laptop is device {}: ask the operator for a file made with `minqing-relay enroll --device-id {} …`, so that the work already on this laptop is accepted as its own; nothing was changed",
            bundle.device_id,
            home.device.device_id,
            home.device.device_id
        );
    }
    if home.device.cadre != bundle.cadre {
        crate::output::err(&format!(
            "notice: the relay enrolled this laptop for {}; it keeps writing as {} (its own cadre)",
            bundle.cadre, home.device.cadre
        ));
    }
    pending_key(&*home.store, bundle)
}

/// A first contact refused for good: nothing of the bundle is kept.
pub(crate) fn forget_pending(store: &dyn Store) -> anyhow::Result<()> {
    store.meta_remove(home::ENROL_PENDING_KEY)?;
    store.flush()?;
    Ok(())
}

/// After a standalone home's first contact: the enrolment recorded (one
/// flush), and the data key wrapped to the relay's escrow key too. The
/// number of villages held, which the next sync offers to the relay.
pub(crate) fn enroll_finish(
    dir: &Path,
    store: &dyn Store,
    key: &DataKey,
    bundle: &Bundle,
    identity: &Identity,
    escrow: Option<&EscrowPublic>,
) -> anyhow::Result<usize> {
    finish_enrolment(store, bundle, identity, None)?;
    if let Some(e) = escrow {
        let sdir = home::store_dir(dir);
        let mut ring = minqing_store::keyring::Keyring::load(&sdir)?;
        if ring.escrow_public().is_none() {
            ring.set_escrow(key, e)?;
            ring.save(&sdir)
                .context("cannot add the relay's escrow key to this laptop's keyring")?;
        }
    }
    Ok(store.docs()?.len())
}

/// The relay link a laptop keeps: its bundle (without secret) and identity.
/// Homes enrolled with a bundle of format 1 (which carried the key) are read too.
pub(crate) fn stored_bundle(store: &dyn Store) -> anyhow::Result<(Bundle, Identity)> {
    let raw = store.meta_get(BUNDLE_KEY)?.ok_or_else(|| {
        usage("this laptop is not enrolled with a relay: join one with `minqing enroll --bundle FILE` from the operator")
    })?;
    let text = std::str::from_utf8(&raw).unwrap_or_default();
    let damaged = || {
        anyhow::anyhow!(
            "this laptop's relay enrolment record is damaged; ask the operator for a new enrolment file"
        )
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| damaged())?;
    if v.get("format").and_then(|f| f.as_str()) == Some("minqing-bundle/1") {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let identity = Identity {
            cert_pem: s("cert_pem").ok_or_else(damaged)?,
            key_pem: s("key_pem").ok_or_else(damaged)?,
        };
        let mut v2 = v.clone();
        v2["format"] = serde_json::Value::String(minqing_net::BUNDLE_FORMAT.into());
        let bundle = Bundle::parse_unchecked(&v2.to_string())?;
        return Ok((bundle, identity));
    }
    let bundle = Bundle::parse_unchecked(text)?;
    let raw = store.meta_get(IDENTITY_KEY)?.ok_or_else(damaged)?;
    let identity: Identity = serde_json::from_slice(&raw).map_err(|_| damaged())?;
    Ok((bundle, identity))
}

fn bundle(store: &dyn Store) -> anyhow::Result<Bundle> {
    Ok(stored_bundle(store)?.0)
}

/// Exit code when trust failed: the relay refused this laptop (revoked, not
/// enrolled) or is not the relay of its bundle. Retrying will not help.
pub const EXIT_REFUSED: u8 = 3;

/// One sync pass: connect, then open the store of home `dir`, run the session
/// and close the store again. The store is not held while the relay is being
/// reached (up to the timeout), so the cadre's own commands keep working then.
/// The outer error is local (the store); the inner one the relay's or the network's.
async fn pass(
    dir: &Path,
    bundle: &Bundle,
    keys: &Keys,
    connect: impl std::future::Future<Output = Result<minqing_net::DeviceConnection, NetError>>,
) -> anyhow::Result<Result<(SessionOutcome, Vec<Notice>), NetError>> {
    let conn = match connect.await {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    // Opened now, and closed by itself whenever the session waits on the
    // relay for a while (crate::idle_store), so `visit log` works meanwhile.
    let store = match IdleStore::open(dir, &keys.data) {
        Ok(s) => s,
        Err(e) => {
            conn.close().await;
            return Err(e);
        }
    };
    let result = session(&conn, &store, bundle, dir, keys).await;
    if let Err(NetError::WipeOrdered(order)) = &result {
        drop(store);
        wipe(dir)?;
        // Confirm to the relay only once the keys are gone.
        conn.close_wiped().await;
        return Err(anyhow::Error::new(Wiped(order.clone())));
    }
    conn.close().await;
    let out = match result {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    store.with(|s| report(s, &out.0).map_err(|e| StorageError::Backend(e.into())))?;
    Ok(Ok(out))
}

/// Runs the session on an open connection; the notices to print. `store` is
/// the home's store as the caller holds it: an [`IdleStore`] in a `minqing
/// sync`, the service's store behind its lock in `minqing app`.
pub(crate) async fn session(
    conn: &minqing_net::DeviceConnection,
    store: &dyn Storage,
    bundle: &Bundle,
    dir: &Path,
    keys: &Keys,
) -> Result<(SessionOutcome, Vec<Notice>), NetError> {
    let (docs, set_aside) = load_or_set_aside(store, dir, keys, &bundle.relay_name)?;
    let unsynced = docs
        .iter()
        .filter(|(_, doc, state)| minqing_sync::has_local_changes(doc, state.as_deref()))
        .map(|(id, _, _)| id.clone())
        .collect();
    let keeping = KeepUnsynced {
        inner: store,
        unsynced,
        dir: dir.join(REMOVED_DIR),
        kept: Mutex::new(BTreeMap::new()),
        keys,
    };
    let mut session =
        minqing_sync::DeviceSession::new(SessionConfig::default(), &bundle.device_id, docs)
            .map_err(NetError::Session)?;
    let mut removed = Vec::new();
    let out = minqing_net::run_device_session(
        conn,
        &mut session,
        &keeping,
        &bundle.relay_name,
        &mut |ev| {
            if let DeviceEvent::DocRemoved { doc } = ev {
                removed.push(doc.clone());
            }
        },
    )
    .await?;
    let kept = keeping.kept.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut notices: Vec<Notice> = set_aside
        .iter()
        .map(|(doc, path, why)| Notice::SetAside {
            text: format!(
                "error: village {doc} on this laptop did not load ({why}); its damaged copy was set aside in {} \
                 and the relay's copy was fetched. Work written since the last sync may be only in that file: give it to the county IT staff",
                path.display()
            ),
        })
        .collect();
    notices.extend(removed
        .iter()
        .map(|doc| Notice::Removed { text: match kept.get(doc) {
            Some(path) => format!(
                "notice: village {doc} is no longer assigned to this laptop; its local copy was removed. \
                 It held work the relay never received: that copy is kept in {} — give the file to the relay operator",
                path.display()
            ),
            None => format!(
                "notice: village {doc} is no longer assigned to this laptop; its local copy was removed"
            ),
        }}));
    Ok((out, notices))
}

/// What a pass tells the cadre besides each village's outcome.
pub(crate) enum Notice {
    /// A village that did not load was set aside (an error: the exit code becomes 1).
    SetAside {
        /// The words, on stderr.
        text: String,
    },
    /// A village no longer assigned was removed (on stdout).
    Removed {
        /// The words.
        text: String,
    },
}

/// Folder of the home where villages that do not load are set aside by `sync`.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A village set aside: its id, where its copy went and why it did not load.
type SetAside = (DocId, PathBuf, String);

/// Loads every village of the store once, with its sync state for `peer`
/// (what [`minqing_sync::device_docs`] gives), and moves every village that
/// does not load out of the store, into
/// `quarantine/<village>-<unix ms>.automerge` in the home (synced to disk
/// first), so that the session fetches the relay's copy instead of failing.
/// One load per village: they are the largest part of a sync's local work.
fn load_or_set_aside(
    store: &dyn minqing_sync::Storage,
    dir: &Path,
    keys: &Keys,
    peer: &str,
) -> Result<(Vec<minqing_sync::HeldDoc>, Vec<SetAside>), NetError> {
    let mut docs = Vec::new();
    let mut out = Vec::new();
    for id in store.docs()? {
        let why = match minqing_sync::load_doc(store, &id) {
            Ok(Some(doc)) => {
                let state = store.sync_state(peer, &id)?;
                docs.push((id, doc, state));
                continue;
            }
            Ok(None) => continue,
            Err(StorageError::Corrupt { detail, .. }) => detail,
            Err(e) => return Err(e.into()),
        };
        let Some(bytes) = store.load(&id)? else {
            continue;
        };
        let folder = dir.join(QUARANTINE_DIR);
        let path = folder.join(format!("{id}-{}.automerge.sealed", home::now_ms()));
        let keep = || -> std::io::Result<()> {
            std::fs::create_dir_all(&folder)?;
            // Sealed like removed/ copies: this laptop's key and the relay's
            // escrow key open it (`minqing-relay unseal`).
            let sealed = keys.seal(QUARANTINE_KIND, &bytes)?;
            let mut file = std::fs::File::create(&path)?;
            file.write_all(&sealed)?;
            file.sync_all()?;
            std::fs::File::open(&folder)?.sync_all()
        };
        keep().map_err(|e| {
            NetError::io(
                format!(
                    "this laptop's store: village {id} does not load and cannot be set aside in {} (nothing was changed)",
                    folder.display()
                ),
                e,
            )
        })?;
        store.remove(&id)?;
        store.flush()?;
        tracing::warn!(village = %id, path = %path.display(), "set aside a village that does not load");
        out.push((id, path, why));
    }
    Ok((docs, out))
}

/// Folder of the home where villages taken off this laptop with unsynced work are kept.
pub const REMOVED_DIR: &str = "removed";
/// `kind` of the sealed files in [`REMOVED_DIR`].
pub const REMOVED_KIND: &str = "removed-village";
/// `kind` of the sealed files in [`QUARANTINE_DIR`].
pub const QUARANTINE_KIND: &str = "quarantined-village";

/// The keys a sync pass needs: the data key (store, `removed/` copies) and the
/// relay's escrow key (so that the operator can open a `removed/` copy).
pub struct Keys {
    /// The laptop's data key.
    pub data: DataKey,
    /// The relay's escrow public key, if the laptop has one.
    pub escrow: Option<EscrowPublic>,
}

impl Keys {
    /// `bytes` as a sealed file of `kind` that this laptop's key and the
    /// relay's escrow key open.
    fn seal(&self, kind: &str, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        minqing_store::sealed::seal(
            kind,
            bytes,
            &minqing_store::sealed::SealTo {
                passphrase: None,
                data_key: Some(&self.data),
                escrow: self.escrow.as_ref(),
            },
        )
        .map_err(std::io::Error::other)
    }
}

/// The relay ordered a wipe and it was done (exit code [`EXIT_REFUSED`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "this laptop was wiped on the relay operator's order: its data can no longer be read (the relay said: {0})"
)]
pub struct Wiped(pub String);

/// Destroys this laptop's keys (crypto-shredding): the data key is dropped
/// from the key cache, the keyring is overwritten
/// in place and removed, a `WIPED` marker says what happened, and the
/// `removed/` and `quarantine/` copies are overwritten and removed too.
pub fn wipe(dir: &Path) -> anyhow::Result<()> {
    let sdir = home::store_dir(dir);
    // The key cache first: its name needs the keyring's store id.
    home::forget_cached_key(dir);
    minqing_store::keyring::shred(&sdir).context("cannot destroy this laptop's keys")?;
    let marker = sdir.join(home::WIPED_FILE);
    minqing_store::files::replace_private(&marker, now().as_bytes())
        .with_context(|| format!("cannot write {}", marker.display()))?;
    for folder in [REMOVED_DIR, QUARANTINE_DIR] {
        if let Ok(entries) = std::fs::read_dir(dir.join(folder)) {
            for e in entries.flatten() {
                let p = e.path();
                minqing_store::files::shred(&p)
                    .with_context(|| format!("cannot destroy {}", p.display()))?;
            }
        }
    }
    Ok(())
}

/// The store as a session sees it, except that removing a village which holds
/// changes the relay never received first writes that village's bytes, sealed
/// (the laptop's data key and the relay's escrow key open it), to
/// `removed/<village>-<unix ms>.automerge.sealed` in the home (synced to disk):
/// the relay refuses changes to a village no longer assigned, and a cadre's
/// offline work must not vanish with the local copy.
struct KeepUnsynced<'a> {
    inner: &'a dyn Storage,
    unsynced: BTreeSet<DocId>,
    dir: PathBuf,
    kept: Mutex<BTreeMap<DocId, PathBuf>>,
    keys: &'a Keys,
}

impl KeepUnsynced<'_> {
    fn keep(&self, doc: &DocId, bytes: &[u8]) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self
            .dir
            .join(format!("{doc}-{}.automerge.sealed", home::now_ms()));
        let sealed = self.keys.seal(REMOVED_KIND, bytes)?;
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&sealed)?;
        file.sync_all()?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(path)
    }
}

impl Storage for KeepUnsynced<'_> {
    fn docs(&self) -> Result<Vec<DocId>, StorageError> {
        self.inner.docs()
    }
    fn load(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.load(doc)
    }
    fn append(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StorageError> {
        self.inner.append(doc, bytes)
    }
    fn remove(&self, doc: &DocId) -> Result<(), StorageError> {
        if self.unsynced.contains(doc)
            && let Some(bytes) = self.inner.load(doc)?
        {
            let path = self.keep(doc, &bytes).map_err(|e| {
                StorageError::Backend(
                    format!(
                        "cannot keep village {doc}'s unsynced work in {}: {e}; \
                             the village was not removed — free disk space and sync again",
                        self.dir.display()
                    )
                    .into(),
                )
            })?;
            self.kept
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(doc.clone(), path);
        }
        self.inner.remove(doc)
    }
    fn sync_state(&self, peer: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.sync_state(peer, doc)
    }
    fn set_sync_state(&self, peer: &str, doc: &DocId, state: &[u8]) -> Result<(), StorageError> {
        self.inner.set_sync_state(peer, doc, state)
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
}

/// Meta key holding, per village, when a pass last ended with it in sync
/// (JSON `{village: RFC 3339}`): the 同步 page's "上次同步" survives a restart.
pub const VILLAGE_SYNC_KEY: &str = "relay_village_sync";

/// When each village was last in sync, as recorded by [`report`] (an
/// unreadable record counts as none: it is rewritten at the next pass).
pub(crate) fn village_syncs(store: &dyn Store) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(store
        .meta_get(VILLAGE_SYNC_KEY)?
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or_default())
}

/// Records the time of a successful sync, and for each village the pass
/// brought in sync (added or in sync) that time, in one flush. Villages no
/// longer held are dropped from the record.
pub(crate) fn report(store: &dyn Store, out: &SessionOutcome) -> anyhow::Result<()> {
    let t = now();
    let mut villages = village_syncs(store)?;
    for (doc, o) in &out.docs {
        match o {
            DocOutcome::InSync { .. } | DocOutcome::Added { .. } => {
                villages.insert(doc.to_string(), t.clone());
            }
            DocOutcome::Removed => {
                villages.remove(doc.as_str());
            }
            DocOutcome::Refused { .. } => {}
        }
    }
    store.meta_put(VILLAGE_SYNC_KEY, &serde_json::to_vec(&villages)?)?;
    store.meta_put(LAST_SYNC_KEY, t.as_bytes())?;
    store.flush()?;
    Ok(())
}

/// Prints what a pass did; whether every village is in sync.
pub(crate) fn print_outcome(out: &SessionOutcome, notices: &[Notice]) -> anyhow::Result<bool> {
    let mut all_ok = true;
    for n in notices {
        match n {
            Notice::SetAside { text } => {
                all_ok = false;
                crate::output::err(text);
            }
            Notice::Removed { text } => output::line(text)?,
        }
    }
    for (doc, o) in &out.docs {
        let what = match o {
            DocOutcome::InSync { .. } => "in sync".to_owned(),
            DocOutcome::Added { .. } => "added (newly assigned)".to_owned(),
            DocOutcome::Removed => "removed (no longer assigned)".to_owned(),
            DocOutcome::Refused { reason } => {
                all_ok = false;
                format!("refused by the relay: {reason}")
            }
        };
        output::line(&format!("{doc}\t{what}"))?;
    }
    Ok(all_ok)
}

/// Prints a trust failure the way `main` prints errors; the exit code for it.
pub(crate) fn refused(bundle: &Bundle, e: &NetError) -> std::process::ExitCode {
    crate::output::err(&format!(
        "error: sync with relay {} failed: {e}",
        bundle.relay_name
    ));
    std::process::ExitCode::from(EXIT_REFUSED)
}

/// `minqing sync [--timeout SECS] [--watch [--interval SECS]]`.
///
/// Exit codes: 0 every assigned village in sync; 1 unreachable, connection
/// broken, or a village refused; [`EXIT_REFUSED`] the relay refused this laptop
/// or is not its relay; 2 usage (not enrolled with a relay).
pub fn sync(home: Home, args: &SyncArgs) -> anyhow::Result<std::process::ExitCode> {
    home.require_writable("sync")?;
    let (bundle, identity) = stored_bundle(&*home.store)?;
    let keys = Keys {
        data: home.key.clone(),
        escrow: home.escrow(),
    };
    let timeout = Duration::from_secs(args.timeout.max(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let dir = home.dir.clone();
    // The store is opened only for a pass (or, watching, a quick look), so that
    // the cadre's own commands can write meanwhile.
    drop(home);
    if !args.watch {
        let context = || format!("sync with relay {} failed", bundle.relay_name);
        let connect = minqing_net::connect(&bundle, &identity, ConnectOptions { timeout });
        let result = match rt.block_on(pass(&dir, &bundle, &keys, connect)) {
            Err(e) if e.is::<Wiped>() => {
                crate::output::err(&format!("error: {e:#}"));
                return Ok(std::process::ExitCode::from(EXIT_REFUSED));
            }
            other => other?,
        };
        return match result {
            Ok((out, notices)) => Ok(if print_outcome(&out, &notices)? {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            }),
            Err(e) if e.is_trust_failure() => Ok(refused(&bundle, &e)),
            Err(e @ NetError::Unreachable { .. }) => Err(anyhow::Error::from(e).context(context())),
            Err(e) => Err(anyhow::anyhow!(
                "{}: {e}; nothing local was lost: what did not reach the relay goes with the next sync",
                context()
            )),
        };
    }
    watch(
        &rt,
        &dir,
        &bundle,
        &identity,
        timeout,
        Duration::from_secs(args.interval.max(1)),
        &keys,
    )
}

/// How often watch mode looks for local writes.
const WATCH_POLL: Duration = Duration::from_secs(1);
/// Longest wait between attempts while the relay is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// While the relay is unreachable, how long an attempt waits for the
/// handshake, and how often attempts start during [`OUTAGE_QUICK`].
pub(crate) const OUTAGE_ATTEMPT: Duration = Duration::from_secs(1);
/// How long after the relay became unreachable attempts stay that frequent.
const OUTAGE_QUICK: Duration = Duration::from_secs(120);
/// The first wait between attempts after [`OUTAGE_QUICK`] (then doubled).
const OUTAGE_SLOW: Duration = Duration::from_secs(5);

/// Attempts while the relay cannot be reached (docs/sync.md, "Outages"):
/// short ones ([`OUTAGE_ATTEMPT`]), one a second for the first two minutes
/// — so that the link's return is noticed within about a second — then
/// waiting 5 s, 10 s … up to a minute between them.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    since: Option<std::time::Instant>,
    wait: Duration,
}

impl Outage {
    /// Whether the last attempt failed on the network.
    pub(crate) fn active(&self) -> bool {
        self.since.is_some()
    }

    /// An attempt that began at `started` failed on the network (`now`):
    /// how long to wait before the next one.
    pub(crate) fn failed(
        &mut self,
        started: std::time::Instant,
        now: std::time::Instant,
    ) -> Duration {
        let since = *self.since.get_or_insert(started);
        if now.saturating_duration_since(since) < OUTAGE_QUICK {
            return (started + OUTAGE_ATTEMPT).saturating_duration_since(now);
        }
        self.wait = (self.wait * 2).clamp(OUTAGE_SLOW, MAX_BACKOFF);
        self.wait
    }

    /// The relay was reached: how long it had been unreachable, if it had.
    pub(crate) fn reached(&mut self) -> Option<Duration> {
        self.wait = Duration::ZERO;
        self.since.take().map(|s| s.elapsed())
    }
}

/// Watch mode: sync now; then after local writes and at least every
/// `interval`, on one QUIC endpoint whose TLS session resumes (each pass
/// after the first sends its first flight as 0-RTT data); while the relay
/// is unreachable, short attempts as [`Outage`] says, so that a write made
/// offline reaches the relay soon after the link is back.
fn watch(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    bundle: &Bundle,
    identity: &Identity,
    timeout: Duration,
    interval: Duration,
    keys: &Keys,
) -> anyhow::Result<std::process::ExitCode> {
    let endpoint = rt
        .block_on(minqing_net::client_endpoint(bundle, identity))
        .context("cannot open a UDP socket for the sync")?;
    let opts = ConnectOptions { timeout };
    let mut outage = Outage::default();
    // The store's files and the villages' heads right after the last good pass.
    let mut synced: Option<(FileStamps, Heads)> = None;
    let mut last_pass = std::time::Instant::now();
    loop {
        let due = match &synced {
            None => true,
            Some(_) if last_pass.elapsed() >= interval => true,
            Some((stamps, heads)) => {
                if &file_stamps(&home::store_dir(dir)) == stamps {
                    false
                } else {
                    // Something wrote to the store: a local write, or only
                    // sled's housekeeping. The heads tell.
                    tracing::debug!("the store changed; comparing heads");
                    match local_heads(dir, &keys.data) {
                        Ok(h) if &h == heads => {
                            // Measured after the look: opening the store
                            // touches its files too.
                            synced = Some((file_stamps(&home::store_dir(dir)), h));
                            false
                        }
                        Ok(_) => true,
                        Err(e) => {
                            tracing::debug!("cannot look at the store now: {e:#}");
                            false
                        }
                    }
                }
            }
        };
        if !due {
            std::thread::sleep(WATCH_POLL);
            continue;
        }
        let started = std::time::Instant::now();
        last_pass = started;
        let connect = async {
            if outage.active() {
                minqing_net::connect_within(&endpoint, bundle, opts, OUTAGE_ATTEMPT).await
            } else {
                minqing_net::connect_on(&endpoint, bundle, opts).await
            }
        };
        match rt.block_on(pass(dir, bundle, keys, connect)) {
            Ok(Ok((out, notices))) => {
                if let Some(gone) = outage.reached() {
                    crate::output::err(&format!(
                        "relay {} is reachable again (it was not for {} s)",
                        bundle.relay_name,
                        gone.as_secs()
                    ));
                }
                print_outcome(&out, &notices)?;
                synced = match local_heads(dir, &keys.data) {
                    Ok(h) => Some((file_stamps(&home::store_dir(dir)), h)),
                    Err(_) => None,
                };
                if synced.is_none() {
                    std::thread::sleep(WATCH_POLL);
                }
            }
            Ok(Err(e)) if e.is_trust_failure() => return Ok(refused(bundle, &e)),
            Ok(Err(e)) => {
                let first = !outage.active();
                let wait = outage.failed(started, std::time::Instant::now());
                if first {
                    crate::output::err(&format!("{e}; trying again every second, then less often"));
                } else {
                    tracing::debug!("still unreachable: {e}");
                }
                std::thread::sleep(wait);
                // Retry even without new local writes: there may be some unsent.
                synced = None;
            }
            Err(e) if e.is::<Wiped>() => {
                crate::output::err(&format!("error: {e:#}"));
                return Ok(std::process::ExitCode::from(EXIT_REFUSED));
            }
            // The store could not be opened (a long command holds it): later.
            Err(e) => {
                crate::output::err(&format!(
                    "error: {e:#}; retrying in {} s",
                    WATCH_POLL.as_secs()
                ));
                std::thread::sleep(WATCH_POLL);
            }
        }
    }
}

/// Size and modification time of every file of the store directory: cheap to
/// read without opening the store (which would lock out the cadre's commands).
type FileStamps = Vec<(std::path::PathBuf, u64, std::time::SystemTime)>;

fn file_stamps(dir: &Path) -> FileStamps {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                out.push((e.path(), meta.len(), modified));
            }
        }
    }
    out.sort();
    out
}

/// Each held village's heads (the store is opened and closed again).
type Heads = Vec<(String, Vec<String>)>;

fn local_heads(dir: &Path, key: &DataKey) -> anyhow::Result<Heads> {
    let store = home::open_store(dir, key)?;
    let mut out = Vec::new();
    for id in store.docs()? {
        if let Some(doc) = minqing_sync::load_doc(&*store, &id)? {
            let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
            heads.sort();
            out.push((id.to_string(), heads));
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct StatusVillage {
    id: String,
    local_changes: bool,
    /// How many changes the relay is not known to have.
    pending_changes: usize,
}

#[derive(Serialize)]
struct Status {
    relay: String,
    relay_name: String,
    last_sync: Option<String>,
    villages: Vec<StatusVillage>,
    /// The background sync of `minqing app`, when the command ran through it.
    #[serde(skip_serializing_if = "Option::is_none")]
    background: Option<crate::app::sync_loop::SyncState>,
}

/// `minqing status [--json]`.
pub fn status(home: &Home, json: bool) -> anyhow::Result<()> {
    status_with(home, json, None)
}

/// `minqing status`, with the state of `minqing app`'s background sync when
/// it runs through the service.
pub fn status_with(
    home: &Home,
    json: bool,
    background: Option<crate::app::sync_loop::SyncState>,
) -> anyhow::Result<()> {
    let bundle = bundle(&*home.store)?;
    let last_sync = home
        .store
        .meta_get(LAST_SYNC_KEY)?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut villages = Vec::new();
    for (id, doc, state) in minqing_sync::device_docs(&*home.store, &bundle.relay_name)? {
        villages.push(StatusVillage {
            id: id.to_string(),
            local_changes: minqing_sync::has_local_changes(&doc, state.as_deref()),
            pending_changes: minqing_sync::local_change_count(&doc, state.as_deref()),
        });
    }
    // The loop's record is the newer one while the service runs.
    let last_sync = background
        .as_ref()
        .and_then(|b| b.last_sync.clone())
        .or(last_sync);
    let s = Status {
        relay: bundle.relay_addr.clone(),
        relay_name: bundle.relay_name.clone(),
        last_sync,
        villages,
        background,
    };
    if json {
        return output::json(&s);
    }
    output::line(&format!("relay      {} ({})", s.relay_name, s.relay))?;
    output::line(&format!(
        "last sync  {}",
        s.last_sync.as_deref().unwrap_or("never")
    ))?;
    if let Some(b) = &s.background {
        let link = match b.online {
            None => "not tried yet".to_owned(),
            Some(true) if b.refused => "refused this laptop".to_owned(),
            Some(true) => "online".to_owned(),
            Some(false) => format!(
                "offline ({})",
                b.last_error.as_deref().unwrap_or("unreachable")
            ),
        };
        output::line(&format!("background minqing app syncs; relay {link}"))?;
    }
    for v in &s.villages {
        output::line(&format!(
            "{}\t{}",
            v.id,
            if v.local_changes {
                format!("local changes not yet at the relay ({})", v.pending_changes)
            } else {
                "synced".to_owned()
            }
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While the relay is unreachable: an attempt a second for two minutes
    /// (a fast failure waits out the rest of its second, never a busy loop),
    /// then 5 s, 10 s … up to a minute; reaching the relay starts over.
    #[test]
    fn outage_attempts_are_frequent_first_then_back_off() {
        let t0 = std::time::Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut o = Outage::default();
        assert!(!o.active());
        // A handshake that timed out after its second: the next one at once.
        assert_eq!(o.failed(at(0.0), at(1.0)), Duration::ZERO);
        assert!(o.active());
        // A failure in 10 ms (no route): the rest of the second.
        assert_eq!(o.failed(at(1.0), at(1.01)), Duration::from_millis(990));
        assert_eq!(o.failed(at(119.0), at(119.5)), Duration::from_millis(500));
        let slow: Vec<u64> = (0..6)
            .map(|n| {
                let start = 121.0 + f64::from(n);
                o.failed(at(start), at(start + 0.5)).as_secs()
            })
            .collect();
        assert_eq!(slow, vec![5, 10, 20, 40, 60, 60]);
        assert!(o.reached().is_some());
        assert!(!o.active());
        assert_eq!(o.reached(), None);
        assert_eq!(
            o.failed(at(200.0), at(201.0)),
            Duration::ZERO,
            "a new outage starts quick"
        );
    }
}
