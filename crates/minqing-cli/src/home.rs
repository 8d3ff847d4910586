//! The cadre's home directory: where it is, the store inside it, this device's
//! identity, and loading and durably saving village documents.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use minqing_model::{
    Author, Id, PersonName, ReadVillage, RecordKind, ViewsDelta, Village, VillageRecords,
};
use minqing_store::escrow::EscrowPublic;
use minqing_store::keycache;
use minqing_store::keyring::{self, KdfParams, KeyError, Keyring};
use minqing_store::secret::Passphrase;
use minqing_store::{DataKey, SledStorage};
use minqing_sync::{DocId, DocVersion, Incarnation, Store};
use serde::{Deserialize, Serialize};

/// Meta key under which the device identity is kept.
pub const DEVICE_KEY: &str = "device";
/// Meta key of an enrolment whose first contact has not succeeded yet: the
/// bundle and the key made for it (docs/sync.md, "Enrolment").
pub const ENROL_PENDING_KEY: &str = "enrol_pending";
/// File left in the store directory by a remote wipe (the keyring is gone).
pub const WIPED_FILE: &str = "WIPED";

/// Where the passphrase comes from: `--passphrase-file` /
/// `MINQING_PASSPHRASE_FILE`, or else the terminal.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// The passphrase file, if given.
    pub passphrase_file: Option<PathBuf>,
}

/// The hint printed when there is no terminal to ask on.
const PASSPHRASE_HINT: &str = "--passphrase-file FILE or MINQING_PASSPHRASE_FILE";

impl Secrets {
    /// The cadre's passphrase for an existing home.
    pub fn passphrase(&self, dir: &Path) -> anyhow::Result<Passphrase> {
        match &self.passphrase_file {
            Some(f) => Ok(Passphrase::from_file(f)?),
            None => Ok(Passphrase::prompt(
                &format!("passphrase for {}: ", dir.display()),
                "the passphrase",
                PASSPHRASE_HINT,
            )?),
        }
    }

    /// A new passphrase (from the file, or asked twice), checked for length.
    pub fn new_passphrase(&self, file: Option<&Path>) -> anyhow::Result<Passphrase> {
        let p = match file.or(self.passphrase_file.as_deref()) {
            Some(f) => Passphrase::from_file(f)?,
            None => Passphrase::prompt_new("passphrase", PASSPHRASE_HINT)?,
        };
        p.check_new()
            .map_err(|e| crate::error::usage(e.to_string()))?;
        Ok(p)
    }
}

/// Exit code for a wrong passphrase.
pub const EXIT_LOCKED: u8 = 4;

/// The argon2id parameters for a new keyring (warns on the test-only ones).
pub fn new_kdf() -> KdfParams {
    let (kdf, weak) = KdfParams::for_new_keyring();
    if weak {
        crate::output::err(&format!(
            "warning: test-only weak key derivation ({}=1): never use this for real data",
            keyring::WEAK_KDF_ENV
        ));
    }
    kdf
}

/// Makes a home private: any file or directory readable by others is tightened,
/// with a one-line notice.
pub fn make_private(dir: &Path) {
    match minqing_store::files::tighten(dir) {
        Ok(0) => {}
        Ok(n) => crate::output::err(&format!(
            "notice: made {n} files and folders in {} private (0600/0700)",
            dir.display()
        )),
        Err(e) => crate::output::err(&format!(
            "warning: cannot make {} private: {e}",
            dir.display()
        )),
    }
}

/// Unlocks the store of home `dir`: the keyring, the data key — from the key
/// cache if it holds a key the keyring accepts (nothing asked, no argon2id,
/// no throttle), else with the passphrase (then cached).
///
/// Commands that must prove the passphrase (`passwd`, `backup`) do not come
/// here: they ask for it and call [`unlock_with`].
pub fn unlock(dir: &Path, secrets: &Secrets) -> anyhow::Result<(Keyring, DataKey)> {
    check_unlockable(dir)?;
    if let Some(unlocked) = unlock_cached(dir) {
        return Ok(unlocked);
    }
    unlock_with(dir, &secrets.passphrase(dir)?)
}

/// The keyring and data key of home `dir` from the key cache
/// (docs/security.md, "the key cache"), if a key is cached for its store and
/// its keyring accepts it; a cached key the keyring refuses is dropped.
pub fn unlock_cached(dir: &Path) -> Option<(Keyring, DataKey)> {
    let ring = Keyring::load(&store_dir(dir)).ok()?;
    let key = keycache::get(&ring)?;
    Some((ring, key))
}

/// Drops the cached data key of home `dir` (`minqing lock`, `passwd`, a
/// wipe); whether one was cached. A home without a keyring has none.
pub fn forget_cached_key(dir: &Path) -> bool {
    Keyring::load(&store_dir(dir)).is_ok_and(|ring| keycache::drop_key(&ring.store_id))
}

/// Refuses (with what to do) a home that has no keys to unlock.
pub fn check_unlockable_pub(dir: &Path) -> anyhow::Result<()> {
    check_unlockable(dir)
}

fn check_unlockable(dir: &Path) -> anyhow::Result<()> {
    let sdir = store_dir(dir);
    if let Ok(text) = std::fs::read_to_string(sdir.join(WIPED_FILE)) {
        bail!(
            "this laptop was wiped on the relay operator's order ({}); its data can no longer be read. \
             Set it up again with `minqing init --bundle FILE` in a new --home",
            text.trim()
        );
    }
    if !keyring::has_keyring(&sdir) {
        bail!(
            "{} has no keyring: it was made by a minqing without encryption at rest, or its keys were destroyed. \
             Set up a new home (`minqing init`) and restore a backup or sync from the relay",
            dir.display()
        );
    }
    Ok(())
}

/// Unlocks the store of home `dir` with `passphrase` (throttled); the data
/// key is then cached for the next commands of this login.
pub fn unlock_with(dir: &Path, passphrase: &Passphrase) -> anyhow::Result<(Keyring, DataKey)> {
    check_unlockable(dir)?;
    let sdir = store_dir(dir);
    let r = keyring::unlock(&sdir, passphrase, &mut |wait| {
        crate::output::err(&format!(
            "waiting {} s after wrong passphrases before trying again…",
            wait.as_millis().div_ceil(1000)
        ))
    });
    match r {
        Ok((ring, key)) => {
            keycache::put(&ring.store_id, &key);
            Ok((ring, key))
        }
        Err(e @ KeyError::WrongPassphrase { .. }) => Err(anyhow::Error::new(Locked(e))),
        Err(e) => Err(anyhow::Error::new(e).context("cannot unlock this laptop's data")),
    }
}

/// A home whose enrolment was begun (keyring and pending first contact) but
/// not finished: the relay was not reached. `minqing app` opens on its 设置
/// page then, where the same bundle can be uploaded again.
#[derive(Debug, thiserror::Error)]
#[error(
    "this laptop's enrolment is not finished (the relay was not reached): run `minqing init --bundle FILE` again with the same file when the relay is reachable"
)]
pub struct EnrolPending;

/// A wrong passphrase (exit code [`EXIT_LOCKED`]).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Locked(pub KeyError);

/// This laptop's identity, kept as JSON in the store's meta key `device`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Device {
    /// Random device id; also the automerge actor of every change it makes.
    pub device_id: String,
    /// The cadre's name.
    pub cadre: String,
    /// The service team, if any.
    pub team: Option<String>,
    /// When the laptop was set up (RFC 3339).
    pub created: String,
}

/// The directory `--home` names, or `MINQING_HOME`, or the platform default.
pub fn home_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p);
    }
    directories::ProjectDirs::from("", "", "minqing")
        .map(|d| d.data_dir().to_path_buf())
        .context("cannot find a data directory for this user: give --home DIR")
}

/// The store directory inside a home.
pub fn store_dir(home: &Path) -> PathBuf {
    home.join("store")
}

/// The error for a home that `minqing init` never set up.
fn not_set_up(dir: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "this laptop is not set up: run `minqing init --cadre 姓名` (or --home DIR) — no minqing data in {}",
        dir.display()
    )
}

/// Why a home is open for reading only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOnly {
    /// The directory cannot be written (a write-protected stick, a read-only
    /// mount, no permission).
    Protected,
    /// The disk holding it is full.
    DiskFull,
}

/// An opened, set-up home.
pub struct Home {
    /// The home directory.
    pub dir: PathBuf,
    /// The store (opened in [`open_store`], the one place that names sled).
    pub store: Arc<dyn Store>,
    /// This device.
    pub device: Device,
    /// The device id, parsed.
    pub device_id: Id,
    /// The cadre's name, parsed.
    pub cadre: PersonName,
    /// Set when the home could not be opened for writing: the store is then a
    /// private copy, reads work and every write is refused before it starts.
    pub read_only: Option<ReadOnly>,
    /// The private copy's directory (removed when the home is dropped).
    _copy: Option<tempfile::TempDir>,
    /// This store's incarnation: the suffix of this laptop's automerge actor.
    pub incarnation: Incarnation,
    /// The unlocked data key.
    pub key: DataKey,
    /// The keyring it came from.
    pub keyring: Keyring,
    /// How many village changes [`Home::save`] made durable since the home
    /// was opened: the service's sync loop compares it to know whether there
    /// is local work to send (docs/app.md, "Background sync").
    pub saves: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Villages kept in memory between commands (`minqing app` only; the
    /// CLI runs one command and keeps none): [`Home::enable_cache`].
    cache: Option<crate::cache::VillageCache>,
    /// With the cache on (the service): villages whose compaction waits for
    /// a quiet moment ([`Home::compact_pending`]), each with how many
    /// writes asked for it since.
    deferred: std::sync::Mutex<std::collections::BTreeMap<DocId, u32>>,
}

/// How many writes a deferred compaction may wait for before a write runs
/// it anyway: twice the store's `COMPACT_CHUNKS`, so a village's chunk count
/// stays within about twice what the store lets it reach even when the
/// service is never quiet.
const MAX_DEFERRED: u32 = 2 * minqing_store::COMPACT_CHUNKS as u32;

/// Files and directories that make a directory a relay's home.
const RELAY_MARKERS: [&str; 3] = ["config.json", "ca", "registry"];

/// Refuses a relay's home (made by `minqing-relay init`): the cadre's binary
/// never opens, sets up or changes it, so a mistyped `--home` cannot turn a
/// county relay's store into a laptop.
pub fn refuse_relay_home(dir: &Path) -> anyhow::Result<()> {
    let marks = RELAY_MARKERS
        .iter()
        .filter(|m| dir.join(m).exists())
        .count();
    if dir.join("config.json").is_file() && marks >= 2 {
        bail!(
            "{} is a relay's home (it holds config.json, ca/ and registry/), not a laptop's: minqing will not use or change it — run `minqing-relay --home {}` there, or give minqing its own --home",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Why a store could not be opened for writing, if that is all that is wrong.
fn read_only_reason(err: &minqing_store::StoreError) -> Option<ReadOnly> {
    let io = err.io_error()?;
    match io.raw_os_error() {
        Some(28) => Some(ReadOnly::DiskFull),           // ENOSPC
        Some(30 | 13 | 1) => Some(ReadOnly::Protected), // EROFS, EACCES, EPERM
        _ if io.kind() == std::io::ErrorKind::StorageFull => Some(ReadOnly::DiskFull),
        _ if io.kind() == std::io::ErrorKind::ReadOnlyFilesystem => Some(ReadOnly::Protected),
        _ if io.kind() == std::io::ErrorKind::PermissionDenied => Some(ReadOnly::Protected),
        _ => None,
    }
}

/// Where a read-only home's store is copied: memory-backed `/dev/shm` when
/// there is one (the home's own disk may be the full one), else the temp dir.
fn copy_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Opens a private copy of a store that cannot be opened in place, for reads.
fn open_copy(dir: &Path, key: &DataKey) -> anyhow::Result<(Arc<dyn Store>, tempfile::TempDir)> {
    let copy = tempfile::Builder::new()
        .prefix("minqing-readonly-")
        .tempdir_in(copy_base())
        .context("cannot make a private copy of the store to read it")?;
    let target = copy.path().join("store");
    copy_dir(&store_dir(dir), &target).with_context(|| {
        format!(
            "cannot copy the store of {} to {} to read it",
            dir.display(),
            copy.path().display()
        )
    })?;
    let store =
        SledStorage::open_sealed(&target, key).context("cannot open the copy of the store")?;
    Ok((Arc::new(store), copy))
}

impl Home {
    /// Opens a home that `minqing init` has set up, unlocked by the key cache
    /// or the passphrase ([`unlock`]); refuses (writing nothing) if it was
    /// never set up.
    pub fn open(dir: &Path, secrets: &Secrets) -> anyhow::Result<Home> {
        Home::prepare(dir)?;
        let (keyring, key) = unlock(dir, secrets)?;
        Home::open_prepared(dir, keyring, key)
    }

    /// [`Home::open`] with the passphrase at hand (`None`: the home has no
    /// store); the key cache is not looked at.
    pub fn open_with(dir: &Path, passphrase: Option<&Passphrase>) -> anyhow::Result<Home> {
        Home::prepare(dir)?;
        let Some(passphrase) = passphrase else {
            return Err(not_set_up(dir));
        };
        let (keyring, key) = unlock_with(dir, passphrase)?;
        Home::open_prepared(dir, keyring, key)
    }

    /// [`Home::open`] with the store already unlocked (`minqing app`, with a
    /// key from the cache).
    pub fn open_unlocked(dir: &Path, keyring: Keyring, key: DataKey) -> anyhow::Result<Home> {
        Home::prepare(dir)?;
        Home::open_prepared(dir, keyring, key)
    }

    /// Refuses a relay's home and one with no store; makes the home private.
    fn prepare(dir: &Path) -> anyhow::Result<()> {
        refuse_relay_home(dir)?;
        if !store_dir(dir).is_dir() {
            return Err(not_set_up(dir));
        }
        make_private(dir);
        Ok(())
    }

    /// Opens the store of a prepared home with its unlocked key.
    fn open_prepared(dir: &Path, keyring: Keyring, key: DataKey) -> anyhow::Result<Home> {
        let (store, read_only, copy) = match SledStorage::open_sealed(&store_dir(dir), &key) {
            Ok(store) => (Arc::new(store) as Arc<dyn Store>, None, None),
            Err(e) => match read_only_reason(&e) {
                Some(why) => {
                    let (store, copy) = open_copy(dir, &key)?;
                    // Said once, with the reason; the OS error is not repeated.
                    match why {
                        ReadOnly::Protected => crate::output::err(&format!(
                            "note: {} cannot be written ({}): showing what it holds; commands that change anything are refused",
                            dir.display(),
                            os_reason(&e)
                        )),
                        ReadOnly::DiskFull => crate::output::err(&format!(
                            "note: the disk holding {} is full: showing what it holds; nothing can be saved until space is freed",
                            dir.display()
                        )),
                    }
                    (store, Some(why), Some(copy))
                }
                None => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "cannot open the minqing store in {}",
                        dir.display()
                    )));
                }
            },
        };
        let Some(raw) = store
            .meta_get(DEVICE_KEY)
            .context("cannot read this laptop's identity")?
        else {
            if store.meta_get(ENROL_PENDING_KEY)?.is_some() {
                return Err(anyhow::Error::new(EnrolPending));
            }
            return Err(not_set_up(dir));
        };
        let device: Device = serde_json::from_slice(&raw).context(
            "this laptop's identity record is damaged; set up a new home with `minqing init`",
        )?;
        let device_id =
            Id::parse(&device.device_id).context("this laptop's device id is damaged")?;
        let cadre =
            PersonName::parse(&device.cadre).context("this laptop's cadre name is damaged")?;
        let incarnation = current_incarnation(dir, &*store)?;
        Ok(Home {
            dir: dir.to_path_buf(),
            store,
            device,
            device_id,
            cadre,
            read_only,
            _copy: copy,
            incarnation,
            key,
            keyring,
            saves: Default::default(),
            cache: None,
            deferred: Default::default(),
        })
    }

    /// The escrow public key this laptop's data key is wrapped to, if any.
    pub fn escrow(&self) -> Option<EscrowPublic> {
        self.keyring.escrow_public()
    }

    /// Refuses, before anything is written, a change to a home open for
    /// reading only; `what` names what would not be saved ("visit", ...).
    pub fn require_writable(&self, what: &str) -> anyhow::Result<()> {
        match self.read_only {
            None => Ok(()),
            Some(ReadOnly::DiskFull) => Err(disk_full(what)),
            Some(ReadOnly::Protected) => bail!(
                "{} cannot be written (read-only): this {what} was not saved — copy the home to a writable disk, or use the laptop's own home",
                self.dir.display()
            ),
        }
    }

    /// The automerge actor of every change this laptop makes: the device id
    /// followed by the store's incarnation (docs/data-model.md, "Actors").
    pub fn actor(&self) -> Vec<u8> {
        minqing_sync::device_actor(self.device_id.as_str(), self.incarnation)
            .to_bytes()
            .to_vec()
    }

    /// Who writes now: this device and cadre, at the current time.
    pub fn author(&self) -> Author {
        Author {
            device_id: self.device_id.clone(),
            cadre: self.cadre.clone(),
            now_ms: now_ms(),
        }
    }

    /// Every village id held, sorted.
    pub fn village_ids(&self) -> anyhow::Result<Vec<DocId>> {
        self.store
            .docs()
            .context("cannot list the villages in the store")
    }

    /// Keeps loaded villages in memory between commands, up to
    /// `budget_bytes` of stored size (the local service does).
    pub fn enable_cache(&mut self, budget_bytes: u64) {
        self.cache = Some(crate::cache::VillageCache::new(budget_bytes));
    }

    /// The store's version of a village (docs/store.md, "Document version").
    fn doc_version(&self, id: &DocId) -> anyhow::Result<Option<minqing_sync::DocVersion>> {
        self.store
            .doc_version(id)
            .with_context(|| format!("cannot read village {id}"))
    }

    /// Loads one village, ready for writes by this device; `None` if not held.
    /// With the cache on, a village unchanged since it was last loaded or
    /// saved is copied from memory.
    pub fn village(&self, id: &DocId) -> anyhow::Result<Option<Village>> {
        let now = match &self.cache {
            Some(cache) => {
                let now = self.doc_version(id)?;
                if let Some(v) = now.as_ref().and_then(|now| cache.get(id, now)) {
                    return Ok(Some(v));
                }
                now
            }
            None => None,
        };
        let Some(bytes) = self
            .store
            .load(id)
            .with_context(|| format!("cannot read village {id}"))?
        else {
            return Ok(None);
        };
        let mut village = Village::load(id.clone(), &bytes)
            .with_context(|| format!("village {id} does not load"))?;
        village.set_actor(&self.actor());
        match (&self.cache, now) {
            (Some(cache), Some(now)) => cache.put(&village, now, bytes.len() as u64, None),
            // One command: the views kept in the store (if they show this
            // version) catch up with this village's writes in `save`.
            (None, _) => {
                village.mark_views();
            }
            (Some(_), None) => {}
        }
        Ok(Some(village))
    }

    /// One village to read, `None` if not held: with the cache on (the
    /// service), its kept views — no automerge read while it is unchanged;
    /// without, the village loaded from the store. Both answer through the
    /// same model functions ([`ReadVillage`]).
    pub fn reader(&self, id: &DocId) -> anyhow::Result<Option<Reader>> {
        let Some(cache) = &self.cache else {
            return self.stored_reader(id);
        };
        if let Some(now) = self.doc_version(id)?
            && let Some(r) = cache.records(id, &now)
        {
            return Ok(Some(Box::new(r)));
        }
        let Some(mut village) = self.village(id)? else {
            return Ok(None);
        };
        // Kept by `village` at the store's version unless the store moved on
        // meanwhile; then these views are this command's alone.
        if let Some(now) = self.doc_version(id)?
            && let Some(r) = cache.records(id, &now)
        {
            return Ok(Some(Box::new(r)));
        }
        Ok(Some(Box::new(Arc::new(VillageRecords::of(&mut village)))))
    }

    /// [`Home::reader`] in a one-command process: the views kept in the
    /// store when they show the village's current version — no document
    /// loaded —, else views made from the loaded document and kept for the
    /// next command (docs/store.md, "Views kept on disk").
    fn stored_reader(&self, id: &DocId) -> anyhow::Result<Option<Reader>> {
        let now = self.doc_version(id)?;
        let (records, keep) = match now
            .as_ref()
            .and_then(|now| crate::views::read(&*self.store, id, now))
        {
            // A long chain is folded into a new base while it is at hand.
            Some((records, deltas)) => (records, deltas > crate::views::FOLD_AFTER),
            None => {
                let Some(mut village) = self.village(id)? else {
                    return Ok(None);
                };
                (VillageRecords::of(&mut village), true)
            }
        };
        if keep {
            self.keep_views(id, now.as_ref(), &records);
        }
        Ok(Some(Box::new(records)))
    }

    /// Keeps `records` in the store as the views of village `id` at
    /// version `now`, if the store is still there (a one-command process
    /// holds it alone; the check is for the record).
    fn keep_views(&self, id: &DocId, now: Option<&DocVersion>, records: &VillageRecords) {
        if let Some(now) = now
            && self.read_only.is_none()
            && matches!(self.doc_version(id), Ok(Some(v)) if &v == now)
            && let Err(e) = crate::views::write(&*self.store, id, now, records)
        {
            tracing::warn!("cannot keep the views of village {id}: {e:#}");
        }
    }

    /// One village to read ([`Home::reader`]) or the error naming what to do.
    pub fn require_reader(&self, id: &str) -> anyhow::Result<Reader> {
        let doc_id = DocId::new(id)?;
        self.reader(&doc_id)?.ok_or_else(|| {
            anyhow::anyhow!(
                "no village {id} on this laptop: `minqing village list` shows the villages held"
            )
        })
    }

    /// Every village held, to read ([`Home::reader`]); one that does not
    /// load is named and skipped, as [`Home::villages`] does.
    pub fn readers(&self) -> anyhow::Result<Vec<Reader>> {
        let mut out = Vec::new();
        for id in self.village_ids()? {
            match self.reader(&id) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => {}
                Err(e) => report_unloadable(&id, &e),
            }
        }
        Ok(out)
    }

    /// The one record of `kind` named by `typed`, with its village to read:
    /// found through the index, then [`Home::reader`] (the service reads its
    /// kept views); as [`Home::find_record`] when the index is wrong.
    pub fn read_record(&self, kind: RecordKind, typed: &str) -> anyhow::Result<(Reader, Id)> {
        let mut finder = self.index()?;
        if let Ok((doc, id)) = finder.find(kind, typed) {
            let reader = match finder.loaded(&doc) {
                // Loaded to rebuild its index (a one-command process after a
                // sync): its views are made from it, not from a second load.
                Some(mut village) if self.cache.is_none() => {
                    let records = VillageRecords::of(&mut village);
                    self.keep_views(&doc, self.doc_version(&doc)?.as_ref(), &records);
                    Some(Box::new(records) as Reader)
                }
                _ => self.reader(&doc)?,
            };
            if let Some(r) = reader
                && r.contains(kind, &id)
            {
                return Ok((r, id));
            }
        }
        let (village, id) = self.find_record(kind, typed)?;
        Ok((Box::new(village), id))
    }

    /// Runs `f` on one village, `None` if not held. With the cache on, the
    /// cached village is lent (loaded and kept first if it is not cached):
    /// nothing is copied, so a page can read every village's heads cheaply.
    pub fn inspect<T>(
        &self,
        id: &DocId,
        f: impl FnOnce(&mut Village) -> T,
    ) -> anyhow::Result<Option<T>> {
        let mut f = Some(f);
        if let Some(cache) = &self.cache
            && let Some(now) = self.doc_version(id)?
            && let Some(out) = cache.with(id, &now, |v| f.take().map(|f| f(v))).flatten()
        {
            return Ok(Some(out));
        }
        // Not lent by the cache, so `f` was not run: `village` loads the
        // village (and keeps a copy when the cache is on).
        let Some(f) = f else {
            anyhow::bail!("internal error: a read of village {id} ran twice");
        };
        Ok(self.village(id)?.map(|mut v| f(&mut v)))
    }

    /// Which village holds each record, for one command: the index of every
    /// village held, rebuilt from the document where it is stale (a village
    /// that does not load is named and left out, as [`Home::villages`] does).
    pub fn index(&self) -> anyhow::Result<crate::lookup::Finder<'_>> {
        use crate::index;
        let held = self.village_ids()?;
        let mut finder = crate::lookup::Finder::new(self);
        let mut rebuilt = false;
        for doc in held.iter() {
            let now = self.doc_version(doc)?;
            if let Some(now) = &now {
                if let Some(ids) = self.cache.as_ref().and_then(|c| c.ids(doc, now)) {
                    finder.add(doc.clone(), ids, None);
                    continue;
                }
                if let Some(ids) = index::read(&*self.store, doc, now) {
                    finder.add(doc.clone(), ids, None);
                    continue;
                }
            }
            let village = match self.village(doc) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(e) => {
                    report_unloadable(doc, &e);
                    continue;
                }
            };
            let ids = index::VillageIds::of(&village);
            if let Some(now) = &now
                && self.read_only.is_none()
                && self.doc_version(doc)?.as_ref() == Some(now)
            {
                match index::write_base(&*self.store, doc, now, &ids) {
                    Ok(()) => rebuilt = true,
                    Err(e) => tracing::warn!("cannot keep the index of village {doc}: {e:#}"),
                }
            }
            finder.add(doc.clone(), ids, Some(village));
        }
        if rebuilt {
            let kept = index::remove_orphans(&*self.store, &held)
                .and_then(|()| crate::views::remove_orphans(&*self.store, &held))
                .and_then(|()| self.store.flush().map_err(anyhow::Error::new));
            if let Err(e) = kept {
                tracing::warn!("cannot keep the village index: {e:#}");
            }
        }
        Ok(finder)
    }

    /// Loads one village or explains that it is not on this laptop.
    pub fn require_village(&self, id: &str) -> anyhow::Result<Village> {
        let doc_id = DocId::new(id)?;
        self.village(&doc_id)?.ok_or_else(|| {
            anyhow::anyhow!(
                "no village {id} on this laptop: `minqing village list` shows the villages held"
            )
        })
    }

    /// Loads every village held. A village that does not load is named on
    /// stderr with what to do and skipped, so the others stay usable; the
    /// command then exits 1 ([`some_village_unloadable`]).
    pub fn villages(&self) -> anyhow::Result<Vec<Village>> {
        let mut out = Vec::new();
        for id in self.village_ids()? {
            match self.village(&id) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => {}
                Err(e) => report_unloadable(&id, &e),
            }
        }
        Ok(out)
    }

    /// Makes the village's new changes durable: append, then flush. Only after
    /// this returns may the command report success. `what` names the record
    /// in errors ("visit", "resident", ...): on a full disk the cadre reads
    /// "disk full: this visit was not saved — free space and run the command
    /// again".
    pub fn save(&self, village: &mut Village, what: &str) -> anyhow::Result<()> {
        self.require_writable(what)?;
        let bytes = village.take_unsaved();
        let created = village.take_created();
        if bytes.is_empty() {
            return Ok(());
        }
        // The index's chain before the append; its delta goes in the same flush.
        let chain = crate::index::chain_end(&*self.store, village.id());
        let before = self.doc_version(village.id())?;
        let (cached_bytes, records) = match (&self.cache, &before) {
            (Some(c), Some(b)) => (c.bytes(village.id(), b), c.take_records(village.id(), b)),
            _ => (None, None),
        };
        // One command: where the chain of views kept in the store ends.
        let views = match &self.cache {
            None => crate::views::chain_end(&*self.store, village.id()),
            Some(_) => None,
        };
        if let Err(e) = self.store.append(village.id(), &bytes) {
            if is_disk_full(&e) {
                return Err(disk_full(what));
            }
            return Err(
                anyhow::Error::new(e).context(format!("cannot write village {}", village.id()))
            );
        }
        let after = self.doc_version(village.id())?;
        if let Err(e) = crate::index::record_write(
            &*self.store,
            village.id(),
            chain,
            before.as_ref(),
            after.as_ref(),
            created,
        ) {
            // The chain then stops short of the document: rebuilt on next use.
            tracing::warn!("cannot update the index of village {}: {e:#}", village.id());
        }
        if let (None, Some(before), Some(after)) = (&self.cache, &before, &after) {
            // Views kept in the store: what the write changed, in the same flush.
            let id = village.id().clone();
            let kept = crate::views::record_write(&*self.store, &id, views, before, after, || {
                match ViewsDelta::since_mark(village) {
                    Some(d) => crate::views::Change::Records(Box::new(d)),
                    None => crate::views::Change::Uncovered,
                }
            });
            if let Err(e) = kept {
                tracing::warn!("cannot keep the views of village {}: {e:#}", village.id());
            }
        }
        if let Err(e) = self.store.flush() {
            if is_disk_full(&e) {
                return Err(disk_full(what));
            }
            return Err(anyhow::Error::new(e)
                .context("cannot flush the store to disk; the last change may be lost"));
        }
        self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let (Some(cache), Some(after), Some(size)) = (&self.cache, after, cached_bytes) {
            // What the store holds now is this village, as saved; its views
            // catch up by reading only what this save touched, or are made
            // again on the next read.
            let records = records.and_then(|r| {
                let mut r = Arc::try_unwrap(r).unwrap_or_else(|shared| (*shared).clone());
                r.catch_up(village).then(|| Arc::new(r))
            });
            cache.put(village, after, size + bytes.len() as u64, records);
        }
        Ok(())
    }

    /// Compacts a village's stored log if it has grown, and folds a long
    /// index chain; called after the command's output was printed. The
    /// content does not change, so the index and the cache move on to the
    /// new version. Failures are only logged.
    pub fn compact_later(&self, id: &DocId) {
        if self.read_only.is_some() {
            return;
        }
        if self.cache.is_some() {
            // The service: a compaction rewrites the village (a few hundred
            // ms for a large one) while the next command waits on the store
            // lock, so it waits for a quiet moment instead — unless writes
            // kept coming for a whole compaction's worth of chunks.
            let mut deferred = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
            let waited = deferred.entry(id.clone()).or_insert(0);
            *waited += 1;
            if *waited < MAX_DEFERRED {
                return;
            }
            deferred.remove(id);
        }
        self.compact_now(id);
    }

    /// Runs the compactions deferred until now ([`Home::compact_later`] in
    /// the service); returns how many villages were looked at.
    pub fn compact_pending(&self) -> usize {
        let pending = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        for id in pending.keys() {
            self.compact_now(id);
        }
        pending.len()
    }

    /// Whether compactions wait for [`Home::compact_pending`].
    pub fn has_pending_compaction(&self) -> bool {
        !self
            .deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// [`Home::compact_later`]'s work, now.
    fn compact_now(&self, id: &DocId) {
        let before = self.store.doc_version(id).ok().flatten();
        match self.store.compact_if_needed(id) {
            Ok(true) => {
                let after = self.store.doc_version(id).ok().flatten();
                if let (Some(before), Some(after)) = (&before, &after) {
                    if let Some(cache) = &self.cache {
                        cache.restamp(id, before, after);
                    }
                    if let Err(e) = crate::views::restamp(&*self.store, id, before, after) {
                        tracing::warn!("cannot keep the views of village {id}: {e:#}");
                    }
                    let kept = crate::index::restamp(&*self.store, id, before, after)
                        .and_then(|()| self.store.flush().map_err(anyhow::Error::new));
                    if let Err(e) = kept {
                        tracing::warn!("cannot update the index of village {id}: {e:#}");
                    }
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!("compaction of village {id} failed (data is safe): {e}");
            }
        }
        if let Some(now) = self.store.doc_version(id).ok().flatten() {
            let folded = crate::index::fold_if_long(&*self.store, id, &now).and_then(|done| {
                if done {
                    self.store.flush()?;
                }
                Ok(())
            });
            if let Err(e) = folded {
                tracing::warn!("cannot fold the index of village {id}: {e:#}");
            }
        }
    }

    /// Finds the one record of `kind` named by `typed` (id or unique prefix)
    /// through the index and loads only its village ([`crate::lookup::Finder::record`]).
    pub fn find_record(&self, kind: RecordKind, typed: &str) -> anyhow::Result<(Village, Id)> {
        self.index()?.record(kind, typed)
    }
}

/// A village to read: its kept views in the service, the loaded document
/// in a one-command process ([`Home::reader`]).
pub type Reader = Box<dyn ReadVillage + Send + Sync>;

/// The OS's words for why a store could not be opened ("Read-only file system").
fn os_reason(e: &minqing_store::StoreError) -> String {
    match e.io_error() {
        Some(io) => {
            let s = io.to_string();
            // "Read-only file system (os error 30)" -> "Read-only file system"
            s.split(" (os error").next().unwrap_or(&s).to_owned()
        }
        None => e.to_string(),
    }
}

/// Whether an error (or any error behind it) is the disk being full.
pub fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        let store = err.downcast_ref::<minqing_store::StoreError>().or_else(|| {
            err.downcast_ref::<minqing_sync::StorageError>()
                .and_then(minqing_sync::StorageError::backend)
                .and_then(|b| b.downcast_ref::<minqing_store::StoreError>())
        });
        if let Some(store) = store
            && read_only_reason(store) == Some(ReadOnly::DiskFull)
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && (io.raw_os_error() == Some(28) || io.kind() == std::io::ErrorKind::StorageFull)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The error a write gets on a full disk.
pub fn disk_full(what: &str) -> anyhow::Error {
    anyhow::anyhow!("disk full: this {what} was not saved — free space and run the command again")
}

/// Meta key recording where the store's incarnation was started (the store
/// directory's device and inode): a store found elsewhere was copied or
/// restored, and starts a new incarnation.
const INCARNATION_PLACE_KEY: &str = "incarnation_place";

fn store_place(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(store_dir(dir))
        .map(|m| format!("{}:{}", m.dev(), m.ino()))
        .unwrap_or_default()
}

/// Starts a new incarnation of the store of home `dir`: from now on this
/// laptop writes with a new automerge actor (device id ++ 4 new random bytes),
/// so that a store restored from a backup, or copied, never reuses a sequence
/// number the relay already holds. The one function to call after a restore.
pub fn start_new_incarnation(dir: &Path, store: &dyn Store) -> anyhow::Result<Incarnation> {
    store.meta_put(INCARNATION_PLACE_KEY, store_place(dir).as_bytes())?;
    store
        .start_new_incarnation(rand::random())
        .context("cannot record this laptop's new incarnation")
}

/// The store's incarnation; a new one if it has none yet (a store from before
/// incarnations) or if the store is not where its incarnation was started
/// (copied or restored from a backup).
fn current_incarnation(dir: &Path, store: &dyn Store) -> anyhow::Result<Incarnation> {
    let here = store_place(dir);
    let recorded = store.meta_get(INCARNATION_PLACE_KEY)?;
    match store.incarnation()? {
        Some(inc) if recorded.as_deref() == Some(here.as_bytes()) => Ok(inc),
        Some(_) => {
            tracing::info!("this store was copied or restored: starting a new incarnation");
            start_new_incarnation(dir, store)
        }
        None => start_new_incarnation(dir, store),
    }
}

static UNLOADABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Names a village that does not load, with what to do, and remembers that
/// the command must not exit 0.
pub fn report_unloadable(id: &DocId, e: &anyhow::Error) {
    // In the service the flag belongs to the one command being run.
    if !crate::output::with_capture(|c| c.unloadable = true) {
        UNLOADABLE.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    crate::output::err(&format!(
        "error: village {id} on this laptop does not load and was left out ({e:#}). \
         The other villages are fine. If this laptop syncs with a relay, `minqing sync` sets the damaged copy \
         aside in the home's quarantine/ folder and fetches the relay's copy (give that folder to the county IT staff); \
         if the relay runs a newer minqing, update this one first."
    ));
}

/// Whether a village that does not load was met during this command.
pub fn some_village_unloadable() -> bool {
    UNLOADABLE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Opens (creating if needed) the encrypted store of a home with its data key.
/// With the read-only copy in `open_copy`, the only places that name the
/// backend (sled); everything else holds a `dyn Storage`.
pub fn open_store(dir: &Path, key: &DataKey) -> anyhow::Result<Arc<dyn Store>> {
    refuse_relay_home(dir)?;
    let store = SledStorage::open_sealed(&store_dir(dir), key)
        .with_context(|| format!("cannot open the minqing store in {}", dir.display()))?;
    Ok(Arc::new(store))
}

/// Why `dir` cannot be set up (it is already), or `None`. Nothing is written
/// but the wrong-passphrase throttle: with a passphrase file at hand the home
/// is unlocked to name its cadre.
pub fn already_set_up(dir: &Path, secrets: &Secrets) -> Option<String> {
    let sdir = store_dir(dir);
    if keyring::has_keyring(&sdir) {
        let mut who = Keyring::load(&sdir)
            .ok()
            .and_then(|k| k.device_id)
            .map(|d| format!(" (device {d})"))
            .unwrap_or_default();
        if secrets.passphrase_file.is_some()
            && let Ok(home) = Home::open(dir, secrets)
        {
            who = format!(
                " for {} (device {})",
                home.device.cadre, home.device.device_id
            );
        }
        return Some(format!(
            "{} is already set up{who}; nothing was changed (use another --home for a second identity)",
            dir.display()
        ));
    }
    let has_files = std::fs::read_dir(&sdir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    has_files.then(|| {
        format!(
            "{} holds a minqing store without a keyring (an older unencrypted home, or a wiped one); nothing was changed — use another --home",
            dir.display()
        )
    })
}

/// Creates the keyring and the encrypted store of a new home; the store is
/// returned open. `escrow`: the relay's escrow public key, if any.
pub fn create_store(
    dir: &Path,
    passphrase: &Passphrase,
    escrow: Option<&EscrowPublic>,
    device_id: &str,
) -> anyhow::Result<(Arc<dyn Store>, DataKey)> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the home directory {}", dir.display()))?;
    let (ring, key) = Keyring::create(passphrase, new_kdf(), escrow, Some(device_id.to_owned()))?;
    // The keyring first: nothing is ever written under a key that is not kept.
    ring.save(&store_dir(dir))
        .context("cannot write this laptop's keyring")?;
    // As after an unlock: the next commands of this login need no passphrase.
    keycache::put(&ring.store_id, &key);
    let store = open_store(dir, &key)?;
    Ok((store, key))
}

/// Creates a new device identity in `dir`. Refuses if the home is set up already.
pub fn init(
    dir: &Path,
    cadre: PersonName,
    team: Option<String>,
    secrets: &Secrets,
) -> anyhow::Result<Device> {
    refuse_relay_home(dir)?;
    if let Some(why) = already_set_up(dir, secrets) {
        bail!(why);
    }
    let passphrase = secrets.new_passphrase(None)?;
    let device = Device {
        device_id: Id::random(&mut rand::rng()).to_string(),
        cadre: cadre.to_string(),
        team,
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let (store, _key) = create_store(dir, &passphrase, None, &device.device_id)?;
    store.meta_put(DEVICE_KEY, &serde_json::to_vec(&device)?)?;
    start_new_incarnation(dir, &*store)?;
    store.flush().context("cannot flush the store to disk")?;
    Ok(device)
}

/// Environment variable that seeds the id generator, for tests only: with it,
/// a command makes the same record ids every time it runs.
pub const TEST_RNG_SEED_ENV: &str = "MINQING_TEST_RNG_SEED";

thread_local! {
    /// The CLI's [`TEST_RNG_SEED_ENV`] for a command the local service runs
    /// for it (the service's own environment is not the CLI's).
    static RNG_SEED: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Sets (or clears) this thread's id seed for the command about to run.
pub fn set_thread_rng_seed(seed: Option<u64>) {
    RNG_SEED.with(|s| s.set(seed));
}

/// The random source for new record ids: the thread RNG, or a seeded one when
/// [`TEST_RNG_SEED_ENV`] holds a number (end-to-end tests use it to make two
/// ids share a prefix).
pub fn rng() -> Box<dyn rand::RngCore> {
    let seed = RNG_SEED.with(|s| s.get()).or_else(|| {
        std::env::var(TEST_RNG_SEED_ENV)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
    });
    match seed {
        Some(seed) => Box::new(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(
            seed,
        )),
        None => Box::new(rand::rng()),
    }
}

/// The current time in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Today's date in China Standard Time: the calendar of visit dates, reports and
/// overdue demands alike, whatever time zone the laptop is set to.
pub fn today() -> chrono::NaiveDate {
    minqing_model::local_date(now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;
    use minqing_model::{Address, NewHousehold, new_village};

    /// A home made by `init` in a temporary directory; the key `init` cached
    /// in this login's keyring goes with it.
    struct TestHome {
        tmp: tempfile::TempDir,
        secrets: Secrets,
    }

    impl TestHome {
        fn new() -> anyhow::Result<TestHome> {
            let tmp = tempfile::tempdir()?;
            let pw = tmp.path().join("pw");
            std::fs::write(&pw, "a passphrase for this test\n")?;
            let secrets = Secrets {
                passphrase_file: Some(pw),
            };
            init(
                &tmp.path().join("home"),
                PersonName::parse("张三")?,
                None,
                &secrets,
            )?;
            Ok(TestHome { tmp, secrets })
        }

        fn open(&self) -> anyhow::Result<Home> {
            Home::open(&self.tmp.path().join("home"), &self.secrets)
        }
    }

    impl Drop for TestHome {
        fn drop(&mut self) {
            forget_cached_key(&self.tmp.path().join("home"));
        }
    }

    /// Everything a read shows of a village, as text (views' JSON and the
    /// demands' events), to compare two ways of reading it.
    fn shown(r: &dyn ReadVillage) -> String {
        let mut out = serde_json::json!({
            "view": r.view(),
            "households": &*r.households(),
            "residents": &*r.residents(),
            "visits": &*r.visits(),
            "demands": &*r.demands(),
            "leaves": &*r.leaves(),
        })
        .to_string();
        for d in r.demands().iter() {
            if let Ok(id) = Id::parse(&d.id) {
                out += &format!("{:?}", r.demand_events(&id));
            }
        }
        out
    }

    /// A one-command process (no cache) reads a village from the views kept
    /// in the store while they show its version; its writes catch them up
    /// in the same flush, a compaction moves them to the new version, and
    /// anything else that changes the village (a sync) makes them stale —
    /// the next read makes them again. Every read equals the document.
    #[test]
    fn a_command_reads_the_views_kept_in_the_store_while_they_are_true() -> anyhow::Result<()> {
        use minqing_model::{Category, DemandText, NewDemand, NewResident, NewVisit, VisitKind};
        let test = TestHome::new()?;
        let home = test.open()?;
        let id = DocId::new("v1")?;
        let doc = new_village(&id, "一村", None, &home.actor(), now_ms())?;
        let mut village = Village::from_new_doc(id.clone(), doc)?;
        home.save(&mut village, "village")?;
        let version = |home: &Home| home.store.doc_version(&id).map(|v| v.expect("a version"));
        let kept = |home: &Home| -> anyhow::Result<bool> {
            Ok(crate::views::read(&*home.store, &id, &version(home)?).is_some())
        };
        // What a read shows, checked against the document loaded afresh.
        let check = |home: &Home| -> anyhow::Result<()> {
            let read = home.reader(&id)?.expect("village held");
            let bytes = home.store.load(&id)?.expect("village stored");
            let fresh = Village::load(id.clone(), &bytes)?;
            assert_eq!(shown(&*read), shown(&fresh));
            Ok(())
        };

        assert!(!kept(&home)?, "no views before the first read");
        check(&home)?;
        assert!(kept(&home)?, "the first read keeps its views");

        // Writes, each as a command does it: the views follow.
        let mut v = home.require_village("v1")?;
        let h = v.add_household(
            &mut *rng(),
            &home.author(),
            &NewHousehold {
                address: Address::parse("一村1组1号")?,
                number: None,
            },
        )?;
        home.save(&mut v, "household")?;
        assert!(kept(&home)?, "caught up after a household");
        check(&home)?;
        let mut v = home.require_village("v1")?;
        let p = v.add_resident(
            &mut *rng(),
            &home.author(),
            &NewResident::new(h.clone(), PersonName::parse("李秀英")?),
        )?;
        home.save(&mut v, "resident")?;
        let mut v = home.require_village("v1")?;
        v.log_visit(
            &mut *rng(),
            &home.author(),
            &NewVisit {
                household: h.clone(),
                resident: Some(p.clone()),
                kind: VisitKind::Regular,
                note: minqing_model::Note::parse("入户走访")?,
                date: today(),
            },
        )?;
        v.open_demand(
            &mut *rng(),
            &home.author(),
            &NewDemand {
                resident: p.clone(),
                category: Category::parse("基础设施")?,
                text: DemandText::parse("村口路灯不亮")?,
            },
        )?;
        home.save(&mut v, "visit")?;
        assert!(kept(&home)?, "caught up after a visit and a demand");
        check(&home)?;

        // A colleague's change appended by a sync: stale, made again on read.
        let mut theirs = home.require_village("v1")?;
        theirs.set_actor(b"bbbbbbbbbbbbbbbb-1");
        theirs.log_visit(
            &mut *rng(),
            &home.author(),
            &NewVisit {
                household: h,
                resident: None,
                kind: VisitKind::Regular,
                note: minqing_model::Note::parse("同事走访")?,
                date: today(),
            },
        )?;
        home.store.append(&id, &theirs.take_unsaved())?;
        assert!(!kept(&home)?, "a sync's append leaves the views behind");
        // A command naming a record: the index is stale too, so the village
        // it loads to rebuild the index makes the views (one load, not two).
        let (read, found) = home.read_record(RecordKind::Resident, p.as_str())?;
        assert_eq!(found, p);
        let fresh = Village::load(id.clone(), &home.store.load(&id)?.expect("stored"))?;
        assert_eq!(shown(&*read), shown(&fresh));
        assert!(
            kept(&home)?,
            "the views made from the index's load are kept"
        );
        check(&home)?;
        assert!(kept(&home)?);
        assert_eq!(home.reader(&id)?.expect("held").visits().len(), 2);

        // A compaction moves them to the new version unchanged: writes until
        // the store compacts (a compaction's worth of chunks).
        let mut compacted = false;
        for n in 0..minqing_store::COMPACT_CHUNKS + 2 {
            let mut v = home.require_village("v1")?;
            v.add_household(
                &mut *rng(),
                &home.author(),
                &NewHousehold {
                    address: Address::parse(&format!("一村2组{n}号"))?,
                    number: None,
                },
            )?;
            home.save(&mut v, "household")?;
            let before = version(&home)?;
            home.compact_later(&id);
            if version(&home)? != before {
                compacted = true;
                break;
            }
        }
        assert!(compacted, "the store never compacted");
        assert!(kept(&home)?, "a compaction keeps the views");
        let deltas = |home: &Home| -> anyhow::Result<usize> {
            Ok(crate::views::read(&*home.store, &id, &version(home)?).map_or(usize::MAX, |r| r.1))
        };
        assert!(
            deltas(&home)? > crate::views::FOLD_AFTER,
            "each write kept a delta"
        );
        check(&home)?;
        assert_eq!(deltas(&home)?, 0, "a read folds a long chain");
        check(&home)?;
        Ok(())
    }

    /// In the service (cache on) a write never pays for a compaction: it
    /// waits for `compact_pending` (run when the service is quiet), and a
    /// write runs it only after `MAX_DEFERRED` writes.
    #[test]
    fn the_service_compacts_when_quiet_not_on_a_write() -> anyhow::Result<()> {
        let test = TestHome::new()?;
        let mut home = test.open()?;
        home.enable_cache(64 << 20);

        let id = DocId::new("v1")?;
        let doc = new_village(&id, "一村", None, &home.actor(), now_ms())?;
        let mut village = Village::from_new_doc(id.clone(), doc)?;
        home.save(&mut village, "village")?;
        // More writes than the store lets a village's chunks reach: without
        // the deferral, one of these compact_later calls compacts.
        // One write as a command makes it; whether its compact_later compacted.
        let write = |home: &Home, address: String| -> anyhow::Result<bool> {
            let mut v = home.require_village("v1")?;
            let new = NewHousehold {
                address: Address::parse(&address)?,
                number: None,
            };
            v.add_household(&mut *rng(), &home.author(), &new)?;
            home.save(&mut v, "household")?;
            let before = home.store.doc_version(&id)?;
            home.compact_later(&id);
            Ok(home.store.doc_version(&id)? != before)
        };
        let writes = minqing_store::COMPACT_CHUNKS + 6;
        for n in 0..writes {
            assert!(!write(&home, format!("一组{n}号"))?, "write {n} compacted");
        }
        assert!(home.has_pending_compaction());
        let before = home.store.doc_version(&id)?;
        assert_eq!(home.compact_pending(), 1);
        assert_ne!(
            home.store.doc_version(&id)?,
            before,
            "the quiet moment did not compact"
        );
        assert!(!home.has_pending_compaction());

        // Writes that never leave a quiet moment: the last of MAX_DEFERRED runs it.
        for n in 0..MAX_DEFERRED {
            let moved = write(&home, format!("二组{n}号"))?;
            assert_eq!(moved, n + 1 == MAX_DEFERRED, "write {n}");
        }
        assert!(!home.has_pending_compaction());
        Ok(())
    }
}
