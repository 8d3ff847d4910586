//! The laptops: `enroll`, `assign`, `revoke [--wipe]` and `devices`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use minqing_net::{BUNDLE_FORMAT, Bundle};
use minqing_store::SledStorage;
use minqing_sync::{DocId, Storage};
use serde::Serialize;

use crate::cmd::esc;
use crate::keys::load_ca;
use crate::registry::{Device, Home, now_rfc3339, usage};

/// Checks village ids against the relay's list; returns them sorted, deduplicated.
fn check_villages(home: &Home, villages: &[String]) -> Result<Vec<String>> {
    let known = home.villages()?;
    let mut out = Vec::new();
    for v in villages.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        if !known.contains_key(v) {
            usage!(
                "village {v} does not exist on this relay: add it with `minqing-relay village add --id {v} --name NAME`"
            );
        }
        out.push(v.to_owned());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Finds one device by id or unique prefix (at least 6 characters).
fn resolve_device(devices: &BTreeMap<String, Device>, prefix: &str) -> Result<String> {
    let p = prefix.trim().to_ascii_lowercase();
    if p.len() < 6 {
        usage!("device id {prefix:?} is too short: type at least 6 characters of the id");
    }
    let matches: Vec<&String> = devices.keys().filter(|id| id.starts_with(&p)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => usage!(
            "no enrolled laptop has an id starting with {p:?}: `minqing-relay devices` lists them"
        ),
        many => usage!(
            "device id prefix {p:?} matches {} laptops: type more characters",
            many.len()
        ),
    }
}

/// Arguments of `enroll`.
#[derive(Debug)]
pub struct EnrollArgs {
    /// Cadre name.
    pub cadre: String,
    /// Team.
    pub team: Option<String>,
    /// Villages to assign.
    pub villages: Vec<String>,
    /// Bundle path.
    pub out: PathBuf,
    /// Address override.
    pub addr: Option<String>,
    /// Certificate validity in days.
    pub valid_days: u32,
    /// Enrol a laptop set up standalone under the device id it already has.
    pub device_id: Option<String>,
}

/// `enroll`.
pub fn enroll(home: &Home, operator: &crate::keys::OperatorSecret, args: EnrollArgs) -> Result<()> {
    let config = home.config()?;
    let cadre = args.cadre.trim().to_owned();
    if cadre.is_empty() {
        usage!("--cadre cannot be empty");
    }
    if args.out.exists() {
        usage!(
            "{} already exists; choose another --out (a bundle is never overwritten)",
            args.out.display()
        );
    }
    let relay_addr = match args.addr {
        Some(a) => a,
        None => {
            let listen: SocketAddr = config.listen.parse().context("config.json: listen")?;
            if listen.ip().is_unspecified() {
                usage!(
                    "the relay listens on {listen}: pass --addr HOST:PORT, the address laptops use to reach it"
                );
            }
            listen.to_string()
        }
    };
    if args.valid_days == 0 {
        usage!("--valid-days must be at least 1");
    }
    if let Err(e) = minqing_net::check_addr(&relay_addr) {
        usage!("--addr: {e}");
    }
    if let Err(e) = minqing_model::PersonName::parse(&cadre) {
        usage!("--cadre: {e}");
    }
    if let Some(t) = &args.team
        && let Err(e) = minqing_model::TeamName::parse(t)
    {
        usage!("--team: {e}");
    }
    if let Some(id) = &args.device_id
        && crate::registry::reserved_device_id(id).is_some()
    {
        usage!(
            "--device-id: {}",
            crate::registry::reserved_message(id.trim())
        );
    }
    // The CA goes into the bundle: check that it loads.
    let ca = load_ca(home, &config, operator)?;
    let escrow = crate::keys::escrow_public(home)?;
    let _lock = home.lock()?;
    let villages = check_villages(home, &args.villages)?;
    let mut devices = home.devices()?;
    let device_id = match &args.device_id {
        Some(id) => {
            let id = id.trim().to_ascii_lowercase();
            if let Err(e) = minqing_model::ids::parse_device_id(&id) {
                usage!("--device-id: {e}; `minqing whoami` on the laptop shows its id");
            }
            if devices.contains_key(&id) {
                usage!(
                    "laptop {id} is already enrolled with this relay (`minqing-relay devices`); a device id is enrolled once"
                );
            }
            id
        }
        None => loop {
            let id = minqing_model::Id::random(&mut rand::rng())
                .as_str()
                .to_owned();
            if !devices.contains_key(&id) && crate::registry::reserved_device_id(&id).is_none() {
                break id;
            }
        },
    };
    let now = now_rfc3339();
    let expires_at = (chrono::Utc::now() + chrono::Duration::days(i64::from(args.valid_days)))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let secret = minqing_net::new_secret();
    let bundle = Bundle {
        format: BUNDLE_FORMAT.into(),
        device_id: device_id.clone(),
        cadre: cadre.clone(),
        team: args.team.clone(),
        relay_name: config.name.clone(),
        relay_addr,
        server_name: config.server_name.clone(),
        ca_cert_pem: ca.cert_pem().to_owned(),
        villages: villages.clone(),
        issued_at: now.clone(),
        enrol_secret: secret.clone(),
        escrow_public_key: escrow.map(|e| e.to_text()),
    };
    // Whatever the relay writes, a laptop must accept it.
    bundle
        .check()
        .context("the bundle this relay would write does not pass the laptop's checks")?;
    // The bundle first: a registry entry without a bundle would be a laptop nobody has.
    bundle
        .write(&args.out)
        .with_context(|| format!("cannot write the bundle {}", args.out.display()))?;
    devices.insert(
        device_id.clone(),
        Device {
            device_id: device_id.clone(),
            cadre: cadre.clone(),
            team: args.team,
            villages: villages.clone(),
            fingerprint: String::new(),
            secret_sha256: Some(minqing_net::secret_digest(&secret)),
            secret_used_at: None,
            cert_pem: None,
            valid_days: Some(args.valid_days),
            revoked: false,
            revoked_at: None,
            enrolled_at: now,
            expires_at,
            wipe_requested_at: None,
            wiped_at: None,
        },
    );
    home.save_devices(&devices)?;
    await_serve(home);
    home.audit(
        "enroll",
        Some(&device_id),
        None,
        format!(
            "cadre {cadre}, villages [{}]; pending its first contact",
            villages.join(","),
        ),
    )?;
    println!(
        "enrolled a laptop for {cadre} (villages: {}); bundle written to {} — give it to the cadre: it works once, on one laptop, at its first contact with this relay (`minqing init --bundle`)",
        if villages.is_empty() {
            "none".into()
        } else {
            villages.join(", ")
        },
        args.out.display()
    );
    println!("{device_id}");
    Ok(())
}

/// `assign`.
pub fn assign(home: &Home, device: &str, villages: &[String]) -> Result<()> {
    home.config()?;
    let _lock = home.lock()?;
    let mut devices = home.devices()?;
    let id = resolve_device(&devices, device)?;
    let villages = check_villages(home, villages)?;
    let Some(d) = devices.get_mut(&id) else {
        bail!("device {id} vanished from the registry");
    };
    let before = d.villages.join(",");
    d.villages = villages.clone();
    let cadre = d.cadre.clone();
    home.save_devices(&devices)?;
    await_serve(home);
    home.audit(
        "assign",
        Some(&id),
        None,
        format!("villages [{before}] -> [{}]", villages.join(",")),
    )?;
    println!(
        "laptop {id} ({cadre}) now syncs: {}; it learns this on its next sync",
        if villages.is_empty() {
            "no villages".into()
        } else {
            villages.join(", ")
        }
    );
    Ok(())
}

/// `revoke [--wipe]`.
pub fn revoke(home: &Home, device: &str, wipe: bool) -> Result<()> {
    home.config()?;
    let _lock = home.lock()?;
    let mut devices = home.devices()?;
    let id = resolve_device(&devices, device)?;
    let Some(d) = devices.get_mut(&id) else {
        bail!("device {id} vanished from the registry");
    };
    let wipe_new = wipe && d.wipe_requested_at.is_none();
    if d.revoked && !wipe_new {
        println!("laptop {id} ({}) was already revoked", d.cadre);
        return Ok(());
    }
    let villages = d.villages.clone();
    let was_revoked = d.revoked;
    d.revoked = true;
    if !was_revoked {
        d.revoked_at = Some(now_rfc3339());
    }
    if wipe_new {
        d.wipe_requested_at = Some(now_rfc3339());
    }
    let cadre = d.cadre.clone();
    home.save_devices(&devices)?;
    await_serve(home);
    home.audit(
        "revoke",
        Some(&id),
        None,
        if wipe_new {
            format!("cadre {cadre}; wipe at next connection")
        } else {
            format!("cadre {cadre}")
        },
    )?;
    if wipe_new {
        let last = home.last_sync()?.get(&id).cloned();
        println!(
            "laptop {id} ({cadre}) revoked and marked for wiping: if it connects again it is told to destroy its keys, then refused"
        );
        eprintln!(
            "warning: work made on laptop {id} after its last completed sync ({}) never reached the relay and is lost with the wipe",
            last.as_deref().unwrap_or("never synced")
        );
        match unacknowledged(home, &id, &villages) {
            Ok(v) if v.is_empty() => {}
            Ok(v) => eprintln!(
                "warning: at its last sync laptop {id} held changes the relay never received, in: {}; they are lost with the wipe",
                v.join(", ")
            ),
            Err(why) => {
                eprintln!("note: cannot tell whether laptop {id} held unsent changes: {why}")
            }
        }
    } else {
        println!("laptop {id} ({cadre}) revoked: its next connection is refused");
    }
    Ok(())
}

/// The villages in which `device`, at its last session, announced heads the
/// relay does not have (changes it never received), from the relay's persisted
/// sync states. `Err` says why this cannot be told (e.g. `serve` holds the store).
fn unacknowledged(home: &Home, device: &str, villages: &[String]) -> Result<Vec<String>, String> {
    let store = match SledStorage::open(&home.store()) {
        Ok(s) => s,
        Err(minqing_store::StoreError::Locked { .. }) => {
            return Err("`serve` holds the relay's store; stop it to see".into());
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut out = Vec::new();
    for v in villages {
        let Ok(doc) = DocId::new(v.clone()) else {
            continue;
        };
        let Some(state) = store.sync_state(device, &doc).map_err(|e| e.to_string())? else {
            continue;
        };
        let Ok(state) = automerge::sync::State::decode(&state) else {
            continue;
        };
        let Some(theirs) = state.their_heads else {
            continue;
        };
        let Some(am) = minqing_sync::load_doc(&store, &doc).map_err(|e| e.to_string())? else {
            continue;
        };
        if theirs
            .iter()
            .any(|h| automerge::ReadDoc::get_change_by_hash(&am, h).is_none())
        {
            out.push(v.clone());
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct DeviceRow {
    device_id: String,
    cadre: String,
    team: Option<String>,
    villages: Vec<String>,
    revoked: bool,
    pending: bool,
    enrolled_at: String,
    expires_at: String,
    last_sync: Option<String>,
}

/// `devices`.
pub fn devices(home: &Home, json: bool) -> Result<()> {
    home.config()?;
    let last = home.last_sync()?;
    let rows: Vec<DeviceRow> = home
        .devices()?
        .into_values()
        .map(|d| DeviceRow {
            pending: d.is_pending(),
            last_sync: last.get(&d.device_id).cloned(),
            device_id: d.device_id,
            cadre: d.cadre,
            team: d.team,
            villages: d.villages,
            revoked: d.revoked,
            enrolled_at: d.enrolled_at,
            expires_at: d.expires_at,
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!(
            "no laptops enrolled yet: `minqing-relay enroll --cadre NAME --villages V1 --out FILE`"
        );
    }
    for r in rows {
        println!(
            "{}\t{}\t{}\t{}\t{}\tlast sync: {}",
            r.device_id,
            esc(&r.cadre),
            esc(r.team.as_deref().unwrap_or("-")),
            if r.villages.is_empty() {
                "-".into()
            } else {
                r.villages.join(",")
            },
            if r.revoked {
                "revoked"
            } else if r.pending {
                "pending"
            } else {
                "active"
            },
            r.last_sync.as_deref().unwrap_or("never"),
        );
    }
    Ok(())
}

/// After a change to `devices.json`: if `serve` runs on this home, waits
/// until its handshake gate uses the new registry, so the change applies to
/// the next connection (docs/relay.md, "Limits": within one second at most).
fn await_serve(home: &Home) {
    let wait = 3 * crate::registry::APPLY_BOUND;
    if !home.wait_applied(wait) {
        eprintln!(
            "warning: the running `minqing-relay serve` has not picked up this change within {} s; it applies once serve re-reads its registry",
            wait.as_secs()
        );
    }
}
