//! The cadre's home directory: where it is, the store inside it, this device's
//! identity, and loading and durably saving village documents.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use minqing_model::{Author, Id, PersonName, Village};
use minqing_store::SledStorage;
use minqing_sync::{DocId, Storage};
use serde::{Deserialize, Serialize};

/// Meta key under which the device identity is kept.
pub const DEVICE_KEY: &str = "device";
/// Meta key of an enrolment whose first contact has not succeeded yet: the
/// bundle and the key made for it (docs/sync.md, "Enrolment").
pub const ENROL_PENDING_KEY: &str = "enrol_pending";

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

/// An opened, set-up home.
pub struct Home {
    /// The home directory.
    pub dir: PathBuf,
    /// The store.
    pub store: SledStorage,
    /// This device.
    pub device: Device,
    /// The device id, parsed.
    pub device_id: Id,
    /// The cadre's name, parsed.
    pub cadre: PersonName,
}

impl Home {
    /// Opens a home that `minqing init` has set up; refuses (writing nothing)
    /// if it was never set up.
    pub fn open(dir: &Path) -> anyhow::Result<Home> {
        let not_set_up = || {
            anyhow::anyhow!(
                "this laptop is not set up: run `minqing init --cadre 姓名` (or --home DIR) — no minqing data in {}",
                dir.display()
            )
        };
        if !store_dir(dir).is_dir() {
            return Err(not_set_up());
        }
        let store = open_store(dir)?;
        let Some(raw) = store
            .meta_get(DEVICE_KEY)
            .context("cannot read this laptop's identity")?
        else {
            if store.meta_get(ENROL_PENDING_KEY)?.is_some() {
                bail!(
                    "this laptop's enrolment is not finished (the relay was not reached): run `minqing init --bundle FILE` again with the same file when the relay is reachable"
                );
            }
            return Err(not_set_up());
        };
        let device: Device = serde_json::from_slice(&raw).context(
            "this laptop's identity record is damaged; set up a new home with `minqing init`",
        )?;
        let device_id =
            Id::parse(&device.device_id).context("this laptop's device id is damaged")?;
        let cadre =
            PersonName::parse(&device.cadre).context("this laptop's cadre name is damaged")?;
        Ok(Home {
            dir: dir.to_path_buf(),
            store,
            device,
            device_id,
            cadre,
        })
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

    /// Loads one village, ready for writes by this device; `None` if not held.
    pub fn village(&self, id: &DocId) -> anyhow::Result<Option<Village>> {
        let Some(bytes) = self
            .store
            .load(id)
            .with_context(|| format!("cannot read village {id}"))?
        else {
            return Ok(None);
        };
        let mut village = Village::load(id.clone(), &bytes)
            .with_context(|| format!("village {id} does not load"))?;
        village.set_actor(self.device_id.as_bytes());
        Ok(Some(village))
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

    /// Loads every village held (a village that fails to load is reported on
    /// stderr and skipped, so the others stay usable).
    pub fn villages(&self) -> anyhow::Result<Vec<Village>> {
        let mut out = Vec::new();
        for id in self.village_ids()? {
            match self.village(&id) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => {}
                Err(e) => tracing::error!("skipping village {id}: {e:#}"),
            }
        }
        Ok(out)
    }

    /// Makes the village's new changes durable: append, then flush. Only after
    /// this returns may the command report success.
    pub fn save(&self, village: &mut Village) -> anyhow::Result<()> {
        let bytes = village.take_unsaved();
        if bytes.is_empty() {
            return Ok(());
        }
        self.store
            .append(village.id(), &bytes)
            .with_context(|| format!("cannot write village {}", village.id()))?;
        self.store
            .flush()
            .context("cannot flush the store to disk; the last change may be lost")?;
        Ok(())
    }

    /// Compacts a village's stored log if it has grown; called after the
    /// command's output was printed. Failures are only logged.
    pub fn compact_later(&self, id: &DocId) {
        if let Err(e) = self.store.compact_if_needed(id) {
            tracing::warn!("compaction of village {id} failed (data is safe): {e}");
        }
    }
}

/// Opens (creating if needed) the store of a home.
pub fn open_store(dir: &Path) -> anyhow::Result<SledStorage> {
    SledStorage::open(&store_dir(dir))
        .with_context(|| format!("cannot open the minqing store in {}", dir.display()))
}

/// Creates a new device identity in `dir`. Refuses if the home is set up already.
pub fn init(dir: &Path, cadre: PersonName, team: Option<String>) -> anyhow::Result<Device> {
    if store_dir(dir).is_dir() {
        let store = open_store(dir)?;
        if let Some(raw) = store.meta_get(DEVICE_KEY)? {
            let who = serde_json::from_slice::<Device>(&raw)
                .map(|d| format!("{} (device {})", d.cadre, d.device_id))
                .unwrap_or_else(|_| "another cadre".to_owned());
            bail!(
                "{} is already set up for {who}; nothing was changed (use another --home for a second identity)",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the home directory {}", dir.display()))?;
    let store = open_store(dir)?;
    let device = Device {
        device_id: Id::random(&mut rand::rng()).to_string(),
        cadre: cadre.to_string(),
        team,
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    store.meta_put(DEVICE_KEY, &serde_json::to_vec(&device)?)?;
    store.flush().context("cannot flush the store to disk")?;
    Ok(device)
}

/// Environment variable that seeds the id generator, for tests only: with it,
/// a command makes the same record ids every time it runs.
pub const TEST_RNG_SEED_ENV: &str = "MINQING_TEST_RNG_SEED";

/// The random source for new record ids: the thread RNG, or a seeded one when
/// [`TEST_RNG_SEED_ENV`] holds a number (end-to-end tests use it to make two
/// ids share a prefix).
pub fn rng() -> Box<dyn rand::RngCore> {
    match std::env::var(TEST_RNG_SEED_ENV)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
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
