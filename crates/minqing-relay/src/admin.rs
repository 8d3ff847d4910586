//! The operator's commands: init, village add/list, enroll, assign, revoke,
//! devices and audit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use minqing_net::{BUNDLE_FORMAT, Bundle, DEFAULT_SERVER_NAME, RelayCa};
use minqing_store::SledStorage;
use minqing_sync::{DocId, Storage};
use serde::Serialize;

use crate::registry::{
    CONFIG_FORMAT, Config, Device, Home, VillageEntry, now_rfc3339, usage, write_json,
};

/// Creates the relay home: CA, server certificate, config.
pub fn init(home: &Home, name: &str, listen: &str) -> Result<()> {
    home.refuse_laptop_home()?;
    if home.config_path().exists() {
        usage!(
            "{} is already a relay home (relay {:?}); refusing to overwrite its CA — choose another --home",
            home.root().display(),
            home.config().map(|c| c.name).unwrap_or_default()
        );
    }
    let name = name.trim();
    if name.is_empty() {
        usage!("--name cannot be empty");
    }
    let addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => usage!("--listen {listen:?} is not an address like 127.0.0.1:4433"),
    };
    home.create_dirs()?;
    let ca = RelayCa::create(name)?;
    let mut hosts = Vec::new();
    if !addr.ip().is_unspecified() {
        hosts.push(addr.ip().to_string());
    }
    let server = ca.issue_server(&hosts)?;
    minqing_net::write_private_file(&home.ca_key(), ca.key_pem().as_bytes())?;
    minqing_net::write_private_file(&home.ca_cert(), ca.cert_pem().as_bytes())?;
    minqing_net::write_private_file(&home.server_key(), server.key_pem.as_bytes())?;
    minqing_net::write_private_file(&home.server_cert(), server.cert_pem.as_bytes())?;
    let actor: [u8; 16] = rand::random();
    let config = Config {
        format: CONFIG_FORMAT.into(),
        name: name.to_owned(),
        listen: addr.to_string(),
        server_name: DEFAULT_SERVER_NAME.into(),
        actor: actor.iter().map(|b| format!("{b:02x}")).collect(),
        created_at: now_rfc3339(),
        limits: crate::registry::Limits::default(),
    };
    // config.json last: its presence marks a complete home.
    write_json(&home.config_path(), &config)?;
    println!(
        "relay {name:?} initialised in {}; it will listen on {addr}",
        home.root().display()
    );
    if !addr.ip().is_loopback() {
        println!(
            "note: {addr} is not a loopback address: laptops on the network can reach this relay"
        );
    }
    Ok(())
}

/// Loads the relay's CA.
pub fn load_ca(home: &Home, config: &Config) -> Result<RelayCa> {
    let cert = std::fs::read_to_string(home.ca_cert()).with_context(|| {
        format!(
            "cannot read the CA certificate {}",
            home.ca_cert().display()
        )
    })?;
    let key = std::fs::read_to_string(home.ca_key())
        .with_context(|| format!("cannot read the CA key {}", home.ca_key().display()))?;
    Ok(RelayCa::load(&config.name, &cert, &key)?)
}

/// The relay's automerge actor id.
pub fn actor(config: &Config) -> Vec<u8> {
    (0..config.actor.len() / 2)
        .filter_map(|i| u8::from_str_radix(config.actor.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Creates the document of `village` in `store` if it is not there yet.
pub fn ensure_village_doc(
    store: &SledStorage,
    village: &VillageEntry,
    actor: &[u8],
) -> Result<bool> {
    let doc = DocId::new(village.id.clone())?;
    if store.load(&doc)?.is_some() {
        return Ok(false);
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut am = minqing_model::new_village(
        &doc,
        &village.name,
        village.township.as_deref(),
        actor,
        now_ms,
    )
    .with_context(|| format!("cannot create the document of village {}", village.id))?;
    store.append(&doc, &am.save())?;
    store.flush()?;
    Ok(true)
}

/// `village add`.
pub fn village_add(home: &Home, id: &str, name: &str, township: Option<&str>) -> Result<()> {
    let config = home.config()?;
    let doc = match DocId::new(id) {
        Ok(d) => d,
        Err(e) => usage!("{e}"),
    };
    if let Err(e) = minqing_model::PlaceName::parse(name) {
        usage!("--name: {e}");
    }
    let entry = {
        let _lock = home.lock()?;
        let mut villages = home.villages()?;
        if villages.contains_key(doc.as_str()) {
            usage!("village {doc} already exists (`minqing-relay village list` shows them)");
        }
        let entry = VillageEntry {
            id: doc.to_string(),
            name: name.trim().to_owned(),
            township: township.map(|t| t.trim().to_owned()),
            created_at: now_rfc3339(),
        };
        villages.insert(entry.id.clone(), entry.clone());
        home.save_villages(&villages)?;
        entry
    };
    home.audit("village_add", None, Some(doc.as_str()), name.to_owned())?;
    match SledStorage::open(&home.store()) {
        Ok(store) => {
            ensure_village_doc(&store, &entry, &actor(&config))?;
            println!("village {doc} ({name}) added");
        }
        Err(minqing_store::StoreError::Locked { .. }) => {
            println!(
                "village {doc} ({name}) added; the running relay creates its document on the next sync"
            );
        }
        Err(e) => return Err(e).context("cannot open the relay's store"),
    }
    Ok(())
}

/// `village list`.
pub fn village_list(home: &Home, json: bool) -> Result<()> {
    home.config()?;
    let villages: Vec<VillageEntry> = home.villages()?.into_values().collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&villages)?);
    } else if villages.is_empty() {
        println!("no villages yet: add one with `minqing-relay village add --id ID --name NAME`");
    } else {
        for v in villages {
            match &v.township {
                Some(t) => println!("{}\t{}\t{}", v.id, esc(&v.name), esc(t)),
                None => println!("{}\t{}", v.id, esc(&v.name)),
            }
        }
    }
    Ok(())
}

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
pub fn enroll(home: &Home, args: EnrollArgs) -> Result<()> {
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
    // The CA goes into the bundle: check that it loads.
    let ca = load_ca(home, &config)?;
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
            if !devices.contains_key(&id) {
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
        },
    );
    home.save_devices(&devices)?;
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

/// `revoke`.
pub fn revoke(home: &Home, device: &str) -> Result<()> {
    home.config()?;
    let _lock = home.lock()?;
    let mut devices = home.devices()?;
    let id = resolve_device(&devices, device)?;
    let Some(d) = devices.get_mut(&id) else {
        bail!("device {id} vanished from the registry");
    };
    if d.revoked {
        println!("laptop {id} ({}) was already revoked", d.cadre);
        return Ok(());
    }
    d.revoked = true;
    d.revoked_at = Some(now_rfc3339());
    let cadre = d.cadre.clone();
    home.save_devices(&devices)?;
    home.audit("revoke", Some(&id), None, format!("cadre {cadre}"))?;
    println!("laptop {id} ({cadre}) revoked: its next connection is refused");
    Ok(())
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

/// Text as printed to the operator's terminal: control, bidi and zero-width
/// characters shown as visible escapes.
fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    minqing_model::text::escape_for_terminal(s)
}

/// `audit`.
pub fn audit(home: &Home, json: bool) -> Result<()> {
    home.config()?;
    let entries = home.audit_entries()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    for e in entries {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            e.at,
            e.kind,
            e.device_id.as_deref().unwrap_or("-"),
            esc(e.village.as_deref().unwrap_or("-")),
            esc(&e.detail)
        );
    }
    Ok(())
}
