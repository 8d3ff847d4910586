//! Real minqing homes for the benchmarks: a relay home made by `minqing-relay
//! init`, villages and sync states written straight into their sled stores,
//! and devices enrolled in bulk with the relay's CA — the operator's side of
//! enrolment and the laptop's first contact done at once, offline: the CA
//! signs each laptop's certificate and the registry files are written in the
//! format `crates/minqing-relay/src/registry.rs` defines, and a device home's
//! meta gets what `minqing init --bundle` keeps after its first contact
//! (`crates/minqing-cli/src/cmd/sync.rs`). Bulk enrolment of 1,000 devices
//! through 1,000 first contacts would only measure the CA's signing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use minqing_net::{BUNDLE_FORMAT, Bundle, Identity, RelayCa, Validity};
use minqing_store::SledStorage;
use serde::{Deserialize, Serialize};

/// The built binaries the benchmark drives.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `minqing`.
    pub minqing: PathBuf,
    /// `minqing-relay`.
    pub relay: PathBuf,
}

impl Bins {
    /// Finds the binaries next to this one (the same `target/<profile>/`).
    pub fn locate() -> Result<Bins> {
        let exe = std::env::current_exe().context("cannot find the minqing-bench executable")?;
        let dir = exe
            .parent()
            .context("minqing-bench has no parent directory")?
            .to_path_buf();
        let bins = Bins {
            minqing: dir.join("minqing"),
            relay: dir.join("minqing-relay"),
        };
        for b in [&bins.minqing, &bins.relay] {
            if !b.exists() {
                bail!(
                    "{} is missing: build it first (`cargo build --release -p minqing -p minqing-relay`, or use `cargo xtask bench`)",
                    b.display()
                );
            }
        }
        Ok(bins)
    }
}

/// Runs a command, returning its stdout; fails with its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The passphrase of every device home and relay the benchmark makes (real
/// argon2id parameters: the cost of unlocking is part of what is measured).
pub const BENCH_PASSPHRASE: &str = "minqing bench passphrase";

/// A file holding [`BENCH_PASSPHRASE`], made once per process.
pub fn passphrase_file() -> Result<&'static Path> {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(p) = FILE.get() {
        return Ok(p);
    }
    let p = std::env::temp_dir().join(format!("minqing-bench-passphrase-{}", std::process::id()));
    std::fs::write(&p, format!("{BENCH_PASSPHRASE}\n"))
        .with_context(|| format!("cannot write {}", p.display()))?;
    Ok(FILE.get_or_init(|| p))
}

/// A command for `bin` that reads the benchmark's passphrase file.
pub fn command(bin: &Path) -> Result<Command> {
    let mut c = Command::new(bin);
    c.env("MINQING_PASSPHRASE_FILE", passphrase_file()?)
        .env("MINQING_RELAY_PASSPHRASE_FILE", passphrase_file()?)
        .env_remove("MINQING_TEST_WEAK_KDF")
        // Every process unlocks with argon2id, as the rows say; C1 also
        // times the key cache, on purpose (docs/security.md).
        .env("MINQING_KEY_CACHE", "off");
    Ok(c)
}

/// The data key of the encrypted device store `dir`, unlocked once per process
/// (argon2id is measured on its own, not in every open).
pub fn device_key(dir: &Path) -> Result<minqing_store::DataKey> {
    static KEYS: std::sync::Mutex<BTreeMap<PathBuf, minqing_store::DataKey>> =
        std::sync::Mutex::new(BTreeMap::new());
    let ring = minqing_store::keyring::Keyring::load(dir)?;
    let mut keys = KEYS.lock().unwrap_or_else(|p| p.into_inner());
    // Copies of one home share its key: look it up by store id.
    let id = PathBuf::from(&ring.store_id);
    if let Some(k) = keys.get(&id) {
        return Ok(k.clone());
    }
    let pass = minqing_store::secret::Passphrase::new(BENCH_PASSPHRASE);
    let key = ring
        .open(&pass, dir)?
        .context("the benchmark passphrase does not open this store")?;
    keys.insert(id, key.clone());
    Ok(key)
}

/// Opens a sled store, retrying briefly (sled may still hold the lock of a
/// store just closed in this process). A device store with a keyring is
/// opened encrypted (see [`device_key`]); the relay's store is plain.
pub fn open_store(dir: &Path) -> Result<SledStorage> {
    let key = if minqing_store::keyring::has_keyring(dir) {
        Some(device_key(dir)?)
    } else {
        None
    };
    let mut last = None;
    for _ in 0..50 {
        let opened = match &key {
            Some(k) => SledStorage::open_sealed(dir, k),
            None => SledStorage::open(dir),
        };
        match opened {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(anyhow::anyhow!(
        "cannot open the store {}: {last:?}",
        dir.display()
    ))
}

/// A laptop enrolled in bulk: its bundle (without secret) and the identity
/// the CA issued it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Laptop {
    /// The bundle.
    #[serde(flatten)]
    pub bundle: Bundle,
    /// Its certificate, PEM.
    pub cert_pem: String,
    /// Its key, PEM.
    pub key_pem: String,
}

impl std::ops::Deref for Laptop {
    type Target = Bundle;
    fn deref(&self) -> &Bundle {
        &self.bundle
    }
}

impl Laptop {
    /// Reads a laptop written with [`Laptop::write`].
    pub fn read(path: &Path) -> Result<Laptop> {
        serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not a benchmark laptop", path.display()))
    }

    /// Writes it as JSON.
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    /// Its key and certificate.
    pub fn identity(&self) -> Identity {
        Identity {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

/// One enrolled device, as `registry/devices.json` holds it (mirror of the
/// relay's `registry::Device`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RegistryDevice {
    device_id: String,
    cadre: String,
    team: Option<String>,
    villages: Vec<String>,
    fingerprint: String,
    revoked: bool,
    #[serde(default)]
    revoked_at: Option<String>,
    enrolled_at: String,
    expires_at: String,
}

/// One village, as `registry/villages.json` holds it (mirror of the relay's
/// `registry::VillageEntry`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RegistryVillage {
    id: String,
    name: String,
    #[serde(default)]
    township: Option<String>,
    created_at: String,
}

/// A relay home under construction.
#[derive(Debug)]
pub struct RelayHome {
    /// Its directory.
    pub dir: PathBuf,
    /// The relay's name.
    pub name: String,
    /// The relay's automerge actor.
    pub actor: Vec<u8>,
    ca: RelayCa,
    devices: BTreeMap<String, RegistryDevice>,
}

const CREATED_AT: &str = "2024-01-01T00:00:00Z";

impl RelayHome {
    /// `minqing-relay init`, then replaces the random actor with `actor` so that
    /// the generated documents are the same for every run with the same seed.
    pub fn init(bins: &Bins, dir: &Path, name: &str, actor: [u8; 16]) -> Result<RelayHome> {
        run(command(&bins.relay)?.arg("--home").arg(dir).args([
            "init",
            "--name",
            name,
            "--listen",
            "127.0.0.1:4433",
        ]))?;
        let config_path = dir.join("config.json");
        let mut config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&config_path).context("reading the relay's config.json")?,
        )?;
        let hex: String = actor.iter().map(|b| format!("{b:02x}")).collect();
        config["actor"] = serde_json::Value::String(hex);
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let ca = RelayCa::load(
            name,
            &std::fs::read_to_string(dir.join("ca/ca.pem"))?,
            &String::from_utf8(
                minqing_store::sealed::read(
                    &dir.join("ca/ca.key"),
                    "relay-ca-key",
                    minqing_store::sealed::OpenWith::Passphrase(
                        &minqing_store::secret::Passphrase::new(BENCH_PASSPHRASE),
                    ),
                )?
                .to_vec(),
            )?,
        )?;
        Ok(RelayHome {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
            actor: actor.to_vec(),
            ca,
            devices: BTreeMap::new(),
        })
    }

    /// Records the villages in `registry/villages.json`.
    pub fn write_villages(&self, villages: &[(String, String, String)]) -> Result<()> {
        let map: BTreeMap<String, RegistryVillage> = villages
            .iter()
            .map(|(id, name, township)| {
                (
                    id.clone(),
                    RegistryVillage {
                        id: id.clone(),
                        name: name.clone(),
                        township: Some(township.clone()),
                        created_at: CREATED_AT.into(),
                    },
                )
            })
            .collect();
        std::fs::write(
            self.dir.join("registry/villages.json"),
            serde_json::to_vec_pretty(&map)?,
        )?;
        Ok(())
    }

    /// Issues a certificate for `device_id` and records it (as enrolled:
    /// its first contact done); returns the laptop.
    pub fn enrol(&mut self, device_id: &str, cadre: &str, villages: &[String]) -> Result<Laptop> {
        let validity = Validity::from_now(Duration::from_secs(730 * 86_400));
        let cert = self.ca.issue_device(device_id, validity)?;
        let mut villages = villages.to_vec();
        villages.sort();
        self.devices.insert(
            device_id.to_owned(),
            RegistryDevice {
                device_id: device_id.to_owned(),
                cadre: cadre.to_owned(),
                team: None,
                villages: villages.clone(),
                fingerprint: cert.fingerprint.clone(),
                revoked: false,
                revoked_at: None,
                enrolled_at: CREATED_AT.into(),
                expires_at: "2099-01-01T00:00:00Z".into(),
            },
        );
        Ok(Laptop {
            bundle: Bundle {
                format: BUNDLE_FORMAT.into(),
                device_id: device_id.to_owned(),
                cadre: cadre.to_owned(),
                team: None,
                relay_name: self.name.clone(),
                relay_addr: "127.0.0.1:4433".into(),
                server_name: minqing_net::DEFAULT_SERVER_NAME.into(),
                ca_cert_pem: self.ca.cert_pem().to_owned(),
                villages,
                issued_at: CREATED_AT.into(),
                enrol_secret: String::new(),
                escrow_public_key: None,
            },
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        })
    }

    /// Writes `registry/devices.json` with every device enrolled so far.
    pub fn write_devices(&self) -> Result<()> {
        std::fs::write(
            self.dir.join("registry/devices.json"),
            serde_json::to_vec_pretty(&self.devices)?,
        )?;
        Ok(())
    }
}

/// Sets up a device home as `minqing init --bundle` leaves it after its first
/// contact: the store's meta holds the bundle, the identity and the device.
pub fn device_home(_bins: &Bins, dir: &Path, laptop: &Laptop) -> Result<()> {
    laptop.write(&dir.with_extension("bundle.json"))?;
    std::fs::create_dir_all(dir)?;
    // Encrypted as every laptop home is: a keyring with the benchmark's
    // passphrase and the real argon2id parameters (docs/security.md).
    let sdir = dir.join("store");
    let (ring, _key) = minqing_store::keyring::Keyring::create(
        &minqing_store::secret::Passphrase::new(BENCH_PASSPHRASE),
        minqing_store::keyring::KdfParams::DEFAULT,
        None,
        Some(laptop.device_id.clone()),
    )?;
    ring.save(&sdir)?;
    let store = open_store(&sdir)?;
    let device = serde_json::json!({
        "device_id": laptop.device_id,
        "cadre": laptop.cadre,
        "team": laptop.team,
        "created": CREATED_AT,
    });
    store.meta_put("relay_bundle", &serde_json::to_vec(&laptop.bundle)?)?;
    store.meta_put("relay_identity", &serde_json::to_vec(&laptop.identity())?)?;
    store.meta_put("device", &serde_json::to_vec(&device)?)?;
    minqing_sync::Storage::flush(&store)?;
    Ok(())
}

/// Copies a directory tree (stores are copied before every run so that each
/// run starts from the same state).
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
