//! The device side of relay sync: `minqing init --bundle`, `minqing sync
//! [--watch]` and `minqing status`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use minqing_net::{Bundle, ConnectOptions, NetError};
use minqing_sync::{DeviceEvent, DocOutcome, SessionConfig, SessionOutcome, Storage};
use serde::Serialize;

use crate::error::usage;
use crate::home::{self, Home};
use crate::output;

/// Meta key holding the enrolment bundle (JSON; it includes the laptop's key).
pub const BUNDLE_KEY: &str = "relay_bundle";
/// Meta key holding the time of the last successful sync (RFC 3339).
pub const LAST_SYNC_KEY: &str = "relay_last_sync";

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `minqing init --bundle FILE`: sets the laptop up with the identity the relay issued.
pub fn init_bundle(dir: &Path, bundle_path: &Path) -> anyhow::Result<()> {
    let bundle = Bundle::read(bundle_path).map_err(|e| usage(e.to_string()))?;
    if home::store_dir(dir).is_dir() {
        let store = home::open_store(dir)?;
        if store.meta_get(home::DEVICE_KEY)?.is_some() {
            return Err(usage(format!(
                "{} is already set up; nothing was changed (use another --home)",
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the home directory {}", dir.display()))?;
    let store = home::open_store(dir)?;
    let device = home::Device {
        device_id: bundle.device_id.clone(),
        cadre: bundle.cadre.clone(),
        team: bundle.team.clone(),
        created: now(),
    };
    store.meta_put(BUNDLE_KEY, &serde_json::to_vec(&bundle)?)?;
    store.meta_put(home::DEVICE_KEY, &serde_json::to_vec(&device)?)?;
    store.flush().context("cannot flush the store to disk")?;
    output::line(&format!(
        "set up {} for {} with relay {} at {}; assigned villages ({}) arrive with `minqing sync`",
        bundle.device_id,
        bundle.cadre,
        bundle.relay_name,
        bundle.relay_addr,
        bundle.villages.join(", ")
    ))?;
    output::line(&bundle.device_id)
}

fn bundle(home: &Home) -> anyhow::Result<Bundle> {
    let raw = home.store.meta_get(BUNDLE_KEY)?.ok_or_else(|| {
        usage("this laptop is not enrolled with a relay: set it up with `minqing init --bundle FILE` from the operator")
    })?;
    Bundle::from_json(std::str::from_utf8(&raw).unwrap_or_default()).map_err(anyhow::Error::from)
}

/// One sync pass; prints per-village outcomes.
async fn pass(home: &Home, bundle: &Bundle, timeout: Duration) -> Result<SessionOutcome, NetError> {
    let conn = minqing_net::connect(bundle, ConnectOptions { timeout }).await?;
    let docs = minqing_net::device_docs(&home.store, &bundle.relay_name)?;
    let mut session =
        minqing_sync::DeviceSession::new(SessionConfig::default(), &bundle.device_id, docs)
            .map_err(|e| NetError::Session(e.to_string()))?;
    let mut notices = Vec::new();
    let out = minqing_net::run_device_session(
        &conn,
        &mut session,
        &home.store,
        &bundle.relay_name,
        &mut |ev| {
            if let DeviceEvent::DocRemoved { doc } = ev {
                notices.push(format!(
                    "notice: village {doc} is no longer assigned to this laptop; its local copy was removed"
                ));
            }
        },
    )
    .await;
    conn.close().await;
    for n in notices {
        let _ = output::line(&n);
    }
    out
}

fn report(home: &Home, out: &SessionOutcome) -> anyhow::Result<bool> {
    home.store.meta_put(LAST_SYNC_KEY, now().as_bytes())?;
    home.store.flush()?;
    let mut all_ok = true;
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

/// `minqing sync [--timeout SECS] [--watch]`.
pub fn sync(home: &Home, timeout_secs: u64, watch: bool) -> anyhow::Result<std::process::ExitCode> {
    let bundle = bundle(home)?;
    let timeout = Duration::from_secs(timeout_secs.max(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if !watch {
        let out = rt
            .block_on(pass(home, &bundle, timeout))
            .with_context(|| format!("sync with relay {} failed", bundle.relay_name))?;
        let ok = report(home, &out)?;
        return Ok(if ok {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::from(1)
        });
    }
    // Watch: sync now, then whenever local data changes or the relay comes back,
    // with exponential backoff (1 s to 60 s) while it is unreachable.
    let mut backoff = Duration::from_secs(1);
    let mut last_heads = None;
    loop {
        let heads = local_fingerprint(home);
        let due = last_heads.as_ref() != Some(&heads) || backoff > Duration::from_secs(1);
        if due || last_heads.is_none() {
            match rt.block_on(pass(home, &bundle, timeout)) {
                Ok(out) => {
                    report(home, &out)?;
                    backoff = Duration::from_secs(1);
                    last_heads = Some(local_fingerprint(home));
                }
                Err(e) if e.is_refused() => {
                    return Err(anyhow::Error::from(e).context("the relay refused this laptop"));
                }
                Err(e) => {
                    eprintln!("{e}; retrying in {} s", backoff.as_secs());
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    continue;
                }
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The heads of every held village, to notice local writes in watch mode.
fn local_fingerprint(home: &Home) -> Vec<(String, Vec<String>)> {
    let Ok(ids) = home.store.docs() else {
        return Vec::new();
    };
    ids.into_iter()
        .filter_map(|id| {
            let doc = minqing_sync::load_doc(&home.store, &id).ok()??;
            Some((
                id.to_string(),
                doc.get_heads().iter().map(|h| h.to_string()).collect(),
            ))
        })
        .collect()
}

#[derive(Serialize)]
struct StatusVillage {
    id: String,
    local_changes: bool,
}

#[derive(Serialize)]
struct Status {
    relay: String,
    relay_name: String,
    last_sync: Option<String>,
    villages: Vec<StatusVillage>,
}

/// `minqing status [--json]`.
pub fn status(home: &Home, json: bool) -> anyhow::Result<()> {
    let bundle = bundle(home)?;
    let last_sync = home
        .store
        .meta_get(LAST_SYNC_KEY)?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut villages = Vec::new();
    for (id, doc, state) in minqing_net::device_docs(&home.store, &bundle.relay_name)? {
        villages.push(StatusVillage {
            id: id.to_string(),
            local_changes: minqing_net::has_local_changes(&doc, state.as_deref()),
        });
    }
    let s = Status {
        relay: bundle.relay_addr.clone(),
        relay_name: bundle.relay_name.clone(),
        last_sync,
        villages,
    };
    if json {
        return output::json(&s);
    }
    output::line(&format!("relay      {} ({})", s.relay_name, s.relay))?;
    output::line(&format!(
        "last sync  {}",
        s.last_sync.as_deref().unwrap_or("never")
    ))?;
    for v in &s.villages {
        output::line(&format!(
            "{}\t{}",
            v.id,
            if v.local_changes {
                "local changes not yet at the relay"
            } else {
                "synced"
            }
        ))?;
    }
    Ok(())
}
