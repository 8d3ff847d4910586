//! `minqing-bench gen-data`: writes a relay home holding the county and the
//! device homes the scenarios start from, deterministically from a seed.
//!
//! Layout of `--out DIR`:
//!
//! | path | what |
//! |---|---|
//! | `relay/` | relay home (`minqing-relay init`), every village in its store, every bench device in its registry |
//! | `device/` | the cadre's laptop (`minqing init --bundle`): the profile's 4 full villages, synced (shared heads persisted on both sides) |
//! | `device100/` | a laptop with 100 villages (the 4 full ones and 96 small ones), synced (county profile) |
//! | `fresh.bundle.json` | an enrolled laptop with nothing on it yet, assigned the 4 full villages (S1) |
//! | `naive.json` | one bundle per village of `device100` for the naive baseline (one document per session) |
//! | `r1.json` | bundles of the simulated devices of R1, each assigned one village, with their synced sync states |
//! | `manifest.json` | profile, seed, ids, saved sizes |

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;

use crate::homes::Laptop;
use anyhow::{Context, Result};
use minqing_model::Id;
use minqing_store::SledStorage;
use minqing_sync::{DocId, Storage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::county::{self, VillageSize};
use crate::homes::{self, Bins, RelayHome};

/// A data set's shape.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// Its name (`device`, `county`, `quick`).
    pub name: &'static str,
    /// Villages on the cadre's laptop (full size).
    pub full: usize,
    /// Size of those villages.
    pub full_size: VillageSize,
    /// Further villages on the relay only (small).
    pub light: usize,
    /// Size of those villages.
    pub light_size: VillageSize,
    /// Villages on the many-village laptop (0: none).
    pub many: usize,
    /// Simulated devices for R1.
    pub r1_devices: usize,
}

impl Profile {
    /// The profile called `name`.
    pub fn named(name: &str) -> Result<Profile> {
        Ok(match name {
            "device" => Profile {
                name: "device",
                full: 4,
                full_size: VillageSize::FULL,
                light: 0,
                light_size: VillageSize::LIGHT,
                many: 0,
                r1_devices: 0,
            },
            "county" => Profile {
                name: "county",
                full: 4,
                full_size: VillageSize::FULL,
                light: 496,
                light_size: VillageSize::LIGHT,
                many: 100,
                r1_devices: 1000,
            },
            "quick" => Profile {
                name: "quick",
                full: 4,
                full_size: VillageSize::TINY,
                light: 16,
                light_size: VillageSize::TINY,
                many: 20,
                r1_devices: 20,
            },
            other => anyhow::bail!("unknown profile {other:?}: use device, county or quick"),
        })
    }
}

/// Version of what `gen-data` writes (layout, bundles, what the stores
/// hold). Bump it whenever that changes: a cached data set of another version
/// is regenerated, never reused (a stale cache once broke the bench).
const DATA_FORMAT: u32 = 2;

/// The data format of this build: the generator's own version and the
/// formats it writes through other crates (bundles, the laptop's keyring), so
/// that a change there also invalidates a cached data set.
pub fn data_format() -> String {
    format!(
        "minqing-bench-data/{DATA_FORMAT} {} {}",
        minqing_net::BUNDLE_FORMAT,
        minqing_store::keyring::KEYRING_FORMAT
    )
}

/// What `gen-data` made, read back by the scenarios.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`data_format`] of the build that wrote it (empty: written before
    /// the data set had a version).
    #[serde(default)]
    pub format: String,
    /// Profile name.
    pub profile: String,
    /// Seed.
    pub seed: u64,
    /// The relay's name (peer name of device sync states).
    pub relay_name: String,
    /// The villages of `device/`.
    pub device_villages: Vec<String>,
    /// The villages of `device100/` (empty: none).
    pub many_villages: Vec<String>,
    /// Every village on the relay.
    pub all_villages: Vec<String>,
    /// `Automerge::save()` size of every village, bytes.
    pub saved_bytes: BTreeMap<String, u64>,
    /// Residents, visits and demands in the device villages.
    pub device_counts: [usize; 3],
    /// Seconds the generation took.
    pub seconds: f64,
}

/// One simulated R1 device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimDevice {
    /// Its bundle and identity.
    pub bundle: Laptop,
    /// Its village.
    pub village: String,
    /// Its persisted sync state for the village (shared heads = the relay's).
    pub state: Vec<u8>,
}

fn village_seed(seed: u64, index: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// A built village, saved.
struct Made {
    index: usize,
    id: DocId,
    name: String,
    township: String,
    bytes: Vec<u8>,
    heads: Vec<automerge::ChangeHash>,
    counts: [usize; 3],
}

/// The encoded sync state of a peer that holds exactly `heads`.
pub fn synced_state(heads: &[automerge::ChangeHash]) -> Vec<u8> {
    let mut s = automerge::sync::State::new();
    s.shared_heads = heads.to_vec();
    s.encode()
}

fn build(seed: u64, index: usize, size: VillageSize, actor: &[u8]) -> Result<Made> {
    let mut rng = StdRng::seed_from_u64(village_seed(seed, index));
    let (info, mut village) = county::build_village(&mut rng, index, size, actor)?;
    let counts = [
        village.residents().len(),
        village.visits().len(),
        village.demands().len(),
    ];
    let bytes = village.save();
    let heads = village.heads();
    Ok(Made {
        index,
        id: info.id,
        name: info.name,
        township: info.township,
        bytes,
        heads,
        counts,
    })
}

/// The villages of one profile, by role.
struct Villages {
    /// Every village on the relay.
    all: Vec<String>,
    /// The 4-village laptop's.
    device: Vec<String>,
    /// The many-village laptop's (empty: none).
    many: Vec<String>,
}

impl Villages {
    fn of(profile: Profile) -> Villages {
        let total = profile.full + profile.light;
        let all: Vec<String> = (0..total).map(|i| format!("V{i:04}")).collect();
        Villages {
            device: all[..profile.full].to_vec(),
            many: if profile.many > 0 {
                all[..profile.many.min(total)].to_vec()
            } else {
                Vec::new()
            },
            all,
        }
    }
}

/// Every device of the data set, enrolled at the relay.
struct Enrolled {
    device: Laptop,
    fresh: Laptop,
    many: Option<Laptop>,
    naive: Vec<Laptop>,
    r1: Vec<(Laptop, String)>,
}

/// Enrols every device (identities first, so that the sync states can be
/// written with the villages).
fn enrol_all(
    relay: &mut RelayHome,
    profile: Profile,
    v: &Villages,
    rng: &mut StdRng,
) -> Result<Enrolled> {
    let mk_id = |rng: &mut StdRng| Id::random(rng).as_str().to_owned();
    let device = relay.enrol(&mk_id(rng), "李明", &v.device)?;
    let fresh = relay.enrol(&mk_id(rng), "王芳", &v.device)?;
    let many = if profile.many > 0 {
        Some(relay.enrol(&mk_id(rng), "张伟", &v.many)?)
    } else {
        None
    };
    let mut naive = Vec::new();
    let naive_villages = if v.many.is_empty() {
        &v.device
    } else {
        &v.many
    };
    for village in naive_villages {
        naive.push(relay.enrol(&mk_id(rng), "赵强", std::slice::from_ref(village))?);
    }
    let mut r1 = Vec::new();
    for i in 0..profile.r1_devices {
        let village = v.all[i % v.all.len()].clone();
        let b = relay.enrol(&mk_id(rng), "陈静", std::slice::from_ref(&village))?;
        r1.push((b, village));
    }
    relay.write_devices()?;
    Ok(Enrolled {
        device,
        fresh,
        many,
        naive,
        r1,
    })
}

/// The stores the villages are written into.
struct Stores<'a> {
    relay_name: &'a str,
    relay: SledStorage,
    device: SledStorage,
    many: Option<SledStorage>,
}

/// What writing the villages gave.
#[derive(Default)]
struct Written {
    registry: Vec<(String, String, String)>,
    saved_bytes: BTreeMap<String, u64>,
    device_counts: [usize; 3],
    heads_of: BTreeMap<String, Vec<automerge::ChangeHash>>,
}

impl Written {
    /// Writes one built village into the stores that hold it, with the
    /// synced sync states of the laptops that hold it.
    fn add(&mut self, st: &Stores<'_>, e: &Enrolled, profile: Profile, m: Made) -> Result<()> {
        st.relay.append(&m.id, &m.bytes)?;
        let state = synced_state(&m.heads);
        if m.index < profile.full {
            st.device.append(&m.id, &m.bytes)?;
            st.device.set_sync_state(st.relay_name, &m.id, &state)?;
            st.relay
                .set_sync_state(&e.device.device_id, &m.id, &state)?;
            for (c, x) in self.device_counts.iter_mut().zip(m.counts) {
                *c += x;
            }
        }
        if let (Some(store), Some(b)) = (&st.many, &e.many)
            && m.index < profile.many
        {
            store.append(&m.id, &m.bytes)?;
            store.set_sync_state(st.relay_name, &m.id, &state)?;
            st.relay.set_sync_state(&b.device_id, &m.id, &state)?;
        }
        self.registry.push((m.id.to_string(), m.name, m.township));
        self.saved_bytes
            .insert(m.id.to_string(), m.bytes.len() as u64);
        self.heads_of.insert(m.id.to_string(), m.heads);
        Ok(())
    }
}

/// Villages, built on two threads, written by this one.
fn write_villages(
    st: &Stores<'_>,
    e: &Enrolled,
    profile: Profile,
    seed: u64,
    actor: &[u8],
) -> Result<Written> {
    let total = profile.full + profile.light;
    let threads = 2;
    let (tx, rx) = mpsc::sync_channel::<Result<Made>>(4);
    let mut w = Written::default();
    std::thread::scope(|scope| -> Result<()> {
        for t in 0..threads {
            let tx = tx.clone();
            scope.spawn(move || {
                for index in (t..total).step_by(threads) {
                    let size = if index < profile.full {
                        profile.full_size
                    } else {
                        profile.light_size
                    };
                    if tx.send(build(seed, index, size, actor)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        for (n, made) in rx.iter().enumerate() {
            w.add(st, e, profile, made?)?;
            if (n + 1) % 50 == 0 {
                tracing::info!("{} of {total} villages written", n + 1);
            }
        }
        Ok(())
    })?;
    w.registry.sort();
    Ok(w)
}

/// R1's devices with their synced sync states, recorded on the relay too.
fn r1_devices(st: &Stores<'_>, e: Enrolled, w: &Written) -> Result<Vec<SimDevice>> {
    let mut sims = Vec::with_capacity(e.r1.len());
    for (bundle, village) in e.r1 {
        let heads = w
            .heads_of
            .get(&village)
            .context("R1 village was generated")?;
        let state = synced_state(heads);
        st.relay
            .set_sync_state(&bundle.device_id, &DocId::new(village.clone())?, &state)?;
        sims.push(SimDevice {
            bundle,
            village,
            state,
        });
    }
    Ok(sims)
}

/// Generates the data set of `profile` into `out` (which must not exist).
pub fn generate(bins: &Bins, profile: Profile, seed: u64, out: &Path) -> Result<Manifest> {
    let started = std::time::Instant::now();
    if out.exists() {
        anyhow::bail!("{} exists already; choose a new --out", out.display());
    }
    std::fs::create_dir_all(out)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let relay_name = "县民情中继";
    let mut relay = RelayHome::init(bins, &out.join("relay"), relay_name, rng.random())?;
    let v = Villages::of(profile);
    let e = enrol_all(&mut relay, profile, &v, &mut rng)?;
    homes::device_home(bins, &out.join("device"), &e.device)?;
    if let Some(b) = &e.many {
        homes::device_home(bins, &out.join("device100"), b)?;
    }
    std::fs::write(
        out.join("fresh.bundle.json"),
        serde_json::to_vec_pretty(&e.fresh)?,
    )?;
    std::fs::write(out.join("naive.json"), serde_json::to_vec(&e.naive)?)?;
    let st = Stores {
        relay_name,
        relay: homes::open_store(&relay.dir.join("store"))?,
        device: homes::open_store(&out.join("device/store"))?,
        many: match e.many {
            Some(_) => Some(homes::open_store(&out.join("device100/store"))?),
            None => None,
        },
    };
    let w = write_villages(&st, &e, profile, seed, &relay.actor)?;
    relay.write_villages(&w.registry)?;
    let sims = r1_devices(&st, e, &w)?;
    std::fs::write(out.join("r1.json"), serde_json::to_vec(&sims)?)?;
    for s in [Some(&st.relay), Some(&st.device), st.many.as_ref()]
        .into_iter()
        .flatten()
    {
        s.flush()?;
    }
    let manifest = Manifest {
        format: data_format(),
        profile: profile.name.to_owned(),
        seed,
        relay_name: relay_name.to_owned(),
        device_villages: v.device,
        many_villages: v.many,
        all_villages: v.all,
        saved_bytes: w.saved_bytes,
        device_counts: w.device_counts,
        seconds: started.elapsed().as_secs_f64(),
    };
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(manifest)
}

/// Reads the manifest of a generated data set.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let raw = std::fs::read(dir.join("manifest.json"))
        .with_context(|| format!("{} holds no generated data set", dir.display()))?;
    Ok(serde_json::from_slice(&raw)?)
}

/// The data set of `profile` and `seed` in `dir`: the cached one if it was
/// written by a generator of this build's [`data_format`], else a new one
/// (the stale or partial one is removed first).
pub fn cached(bins: &Bins, profile: Profile, seed: u64, dir: &Path) -> Result<Manifest> {
    match read_manifest(dir) {
        Ok(m) if m.format == data_format() && m.profile == profile.name && m.seed == seed => {
            return Ok(m);
        }
        Ok(m) => eprintln!(
            "the cached data set in {} has format {:?}, this build writes {:?}: regenerating",
            dir.display(),
            m.format,
            data_format()
        ),
        Err(_) if dir.exists() => eprintln!(
            "the cached data set in {} has no readable manifest: regenerating",
            dir.display()
        ),
        Err(_) => {}
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the stale data set {}", dir.display()))?;
    }
    eprintln!(
        "generating the {} data set into {} …",
        profile.name,
        dir.display()
    );
    generate(bins, profile, seed, dir)
}
