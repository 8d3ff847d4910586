//! `serve`: the QUIC endpoint that syncs villages with enrolled laptops, one
//! `RelaySession` per connection over the shared, cached relay documents.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use minqing_net::{
    CLOSE_DONE, CLOSE_ERROR, CLOSE_REFUSED, CLOSE_SHUTDOWN, DeviceGate, ServerTls, quinn,
};
use minqing_store::SledStorage;

use crate::guard::GuardedStore;
use minqing_sync::{
    ContentPolicy, DocHost, DocId, RelayEvent, RelaySession, SessionConfig, Storage, StorageDocHost,
};
use tracing::Instrument;

use crate::admin::{actor, ensure_village_doc};
use crate::export::Exporter;
use crate::registry::{Config, Device, DeviceCache, Home, now_rfc3339};

/// How long shutdown waits for running sessions.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// How long a connection may take to open its sync stream.
const STREAM_WAIT: Duration = Duration::from_secs(10);
/// Most sessions served at once; more connections are refused until one ends.
const MAX_SESSIONS: usize = 4096;

/// The handshake gate over the device registry.
struct RegistryGate {
    home: Home,
    devices: Arc<DeviceCache>,
}

impl DeviceGate for RegistryGate {
    fn admit(&self, fingerprint: &str) -> Result<(), String> {
        match self.devices.by_fingerprint(fingerprint) {
            Ok(Some(d)) if !d.revoked => Ok(()),
            Ok(Some(d)) => Err(format!("laptop {} ({}) is revoked", d.device_id, d.cadre)),
            Ok(None) => Err("certificate is not enrolled with this relay".into()),
            Err(e) => Err(format!("the device registry cannot be read: {e:#}")),
        }
    }

    fn refused(&self, fingerprint: &str, reason: &str) {
        let device = self
            .devices
            .by_fingerprint(fingerprint)
            .ok()
            .flatten()
            .map(|d| d.device_id);
        tracing::warn!(fingerprint, reason, "handshake refused");
        let home = self.home.clone();
        let detail = format!("{reason}; certificate {fingerprint}");
        let write = move || {
            if let Err(e) = home.audit("refused_handshake", device.as_deref(), None, detail) {
                tracing::error!("cannot write the audit log: {e:#}");
            }
        };
        // Called from the TLS handshake on the runtime: the fsynced audit write
        // goes to the blocking pool.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(write)),
            Err(_) => write(),
        }
    }
}

/// Everything the sessions share.
struct Relay {
    home: Home,
    config: Config,
    devices: Arc<DeviceCache>,
    store: Arc<SledStorage>,
    /// What sessions write through: space checked, flushes with a deadline.
    guarded: Arc<GuardedStore>,
    host: Arc<StorageDocHost>,
    exporter: Arc<Exporter>,
    created: Mutex<BTreeSet<String>>,
    last_sync: Mutex<BTreeMap<String, String>>,
}

impl Relay {
    /// Creates the documents of villages added since the last check.
    fn ensure_villages(&self) -> Result<()> {
        let villages = self.home.villages()?;
        let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        for (id, v) in villages {
            if created.contains(&id) {
                continue;
            }
            if ensure_village_doc(&self.store, &v, &actor(&self.config))? {
                tracing::info!(village = %id, "created the village document");
                if let Ok(doc) = DocId::new(id.clone()) {
                    self.exporter.mark(doc);
                }
            }
            created.insert(id);
        }
        Ok(())
    }

    fn audit(&self, kind: &str, device: &str, village: Option<&str>, detail: String) {
        if let Err(e) = self.home.audit(kind, Some(device), village, detail) {
            tracing::error!("cannot write the audit log: {e:#}");
        }
    }

    fn record_sync(&self, device: &str) {
        let mut last = self.last_sync.lock().unwrap_or_else(|p| p.into_inner());
        last.insert(device.to_owned(), now_rfc3339());
        if let Err(e) = self.home.save_last_sync(&last) {
            tracing::error!("cannot record the last sync time: {e:#}");
        }
    }
}

/// Runs the relay until SIGINT or SIGTERM.
pub fn serve(home: &Home) -> Result<()> {
    let config = home.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve_async(home.clone(), config));
    // A blocking task caught in a hung disk write must not keep the process
    // alive: everything acknowledged was flushed before it was acknowledged.
    runtime.shutdown_timeout(SHUTDOWN_FLUSH_WAIT);
    result
}

/// How long shutdown waits for the final flush and for stuck blocking tasks.
const SHUTDOWN_FLUSH_WAIT: Duration = Duration::from_secs(5);

async fn serve_async(home: Home, config: Config) -> Result<()> {
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
    };
    let tls = ServerTls {
        ca_cert_pem: read(home.ca_cert())?,
        cert_pem: read(home.server_cert())?,
        key_pem: read(home.server_key())?,
    };
    let addr: SocketAddr = config
        .listen
        .parse()
        .with_context(|| format!("config.json: listen {:?} is not an address", config.listen))?;
    let store = match SledStorage::open(&home.store()) {
        Ok(s) => Arc::new(s),
        Err(e @ minqing_store::StoreError::Locked { .. }) => {
            return Err(anyhow::Error::new(e)).context(
                "cannot open the relay's store: is another `minqing-relay serve` (or `report`) running on this home?",
            );
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)).with_context(|| {
                format!(
                    "cannot open the relay's store {}: restore it from a backup (docs/relay.md, Backups)",
                    home.store().display()
                )
            });
        }
    };
    let guarded = Arc::new(
        GuardedStore::new(store.clone(), home.store())
            .context("cannot start the relay's flusher thread")?,
    );
    let devices = Arc::new(DeviceCache::new(home.clone()));
    let host = Arc::new(StorageDocHost::new(guarded.clone() as Arc<dyn Storage>));
    let exporter = Arc::new(Exporter::open(&home, host.clone())?);
    let relay = Arc::new(Relay {
        home: home.clone(),
        devices: devices.clone(),
        host,
        exporter: exporter.clone(),
        store: store.clone(),
        guarded: guarded.clone(),
        created: Mutex::new(BTreeSet::new()),
        last_sync: Mutex::new(home.last_sync()?),
        config: config.clone(),
    });
    relay.ensure_villages()?;
    // Exports exist before laptops can connect: reports read them while serve runs.
    let ex = exporter.clone();
    // Syncing matters more than reports: a failed export is a warning.
    match tokio::task::spawn_blocking(move || ex.export_all()).await {
        Ok(Ok(summary)) if summary.failed == 0 => tracing::info!(
            written = summary.written,
            unchanged = summary.unchanged,
            "exported the villages for reports"
        ),
        Ok(Ok(summary)) => eprintln!(
            "warning: {} village(s) could not be exported for reports (see the log above); reports read their older exports until they change",
            summary.failed
        ),
        Ok(Err(e)) => eprintln!("warning: cannot export the villages for reports: {e:#}"),
        Err(e) => eprintln!("warning: cannot export the villages for reports: {e}"),
    }
    let gate = Arc::new(RegistryGate {
        home: home.clone(),
        devices,
    });
    let endpoint = minqing_net::server_endpoint(addr, &tls, gate)?;
    let compactor = guarded
        .spawn_compactor(Duration::from_secs(60))
        .context("cannot start the compaction thread")?;
    let export_worker = {
        let ex = exporter.clone();
        tokio::task::spawn_blocking(move || ex.run())
    };
    // Whatever happens from here, the worker is told to return: the runtime
    // waits for its blocking tasks when it shuts down.
    let _stop_exports = StopOnDrop(exporter.clone());
    // The line scripts and tests wait for: the bound address.
    eprintln!(
        "relay {:?} listening on {}",
        config.name,
        endpoint
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    tracing::info!(addr = %addr, "listening");

    let mut sessions = tokio::task::JoinSet::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                while sessions.try_join_next().is_some() {}
                if sessions.len() >= MAX_SESSIONS {
                    incoming.refuse();
                    continue;
                }
                let relay = relay.clone();
                let span = tracing::info_span!("conn", remote = %incoming.remote_address());
                sessions.spawn(async move { serve_connection(relay, incoming).await }.instrument(span));
            }
        }
    }
    while sessions.try_join_next().is_some() {}
    tracing::info!(open = sessions.len(), "shutting down: no new connections");
    eprintln!(
        "relay shutting down: waiting for {} session(s)",
        sessions.len()
    );
    let _ = tokio::time::timeout(SHUTDOWN_WAIT, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    sessions.abort_all();
    endpoint.close(CLOSE_SHUTDOWN.into(), b"relay shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    compactor.stop();
    // Bounded: a store stuck after a disk error does not hold the relay up.
    let flushed = tokio::task::spawn_blocking({
        let g = guarded.clone();
        move || g.flush_within(SHUTDOWN_FLUSH_WAIT)
    })
    .await;
    match flushed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            exporter.stop();
            anyhow::bail!(
                "relay stopped without a final flush: {e}; everything acknowledged to laptops was flushed before it was acknowledged"
            );
        }
        Err(e) => anyhow::bail!("relay stopped without a final flush: {e}"),
    }
    exporter.stop();
    let _ = export_worker.await;
    let ex = exporter.clone();
    match tokio::task::spawn_blocking(move || ex.finish()).await {
        Ok(Ok(n)) => tracing::info!(written = n, "final exports written"),
        Ok(Err(e)) => {
            eprintln!("warning: the final exports for reports were not all written: {e:#}")
        }
        Err(e) => eprintln!("warning: the final exports for reports were not all written: {e}"),
    }
    eprintln!("relay stopped; everything is flushed");
    Ok(())
}

/// Stops the export worker when dropped.
struct StopOnDrop(Arc<Exporter>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn serve_connection(relay: Arc<Relay>, incoming: quinn::Incoming) {
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("handshake failed: {e}");
            return;
        }
    };
    let lookup = {
        let fp = minqing_net::peer_fingerprint(&conn);
        let devices = relay.devices.clone();
        // The registry may be re-read from disk: off the runtime.
        tokio::task::spawn_blocking(move || fp.map(|fp| devices.by_fingerprint(&fp))).await
    };
    let device = match lookup {
        Ok(Some(Ok(Some(d)))) if !d.revoked => d,
        _ => {
            conn.close(
                CLOSE_REFUSED.into(),
                minqing_net::REFUSED_MESSAGE.as_bytes(),
            );
            return;
        }
    };
    let span = tracing::info_span!("device", id = %device.device_id, cadre = %device.cadre);
    async move {
        match serve_device(&relay, &conn, &device).await {
            Ok(()) => conn.close(CLOSE_DONE.into(), b"done"),
            Err(e) => {
                tracing::warn!("session ended: {e:#}");
                conn.close(CLOSE_ERROR.into(), format!("{e:#}").as_bytes());
            }
        }
    }
    .instrument(span)
    .await;
}

async fn serve_device(relay: &Arc<Relay>, conn: &quinn::Connection, device: &Device) -> Result<()> {
    let r = relay.clone();
    let ensured = tokio::task::spawn_blocking(move || r.ensure_villages()).await;
    match ensured {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("cannot create new village documents: {e:#}"),
        Err(e) => tracing::error!("cannot create new village documents: {e}"),
    }
    let assignment: BTreeSet<DocId> = device
        .villages
        .iter()
        .filter_map(|v| DocId::new(v.clone()).ok())
        .collect();
    let (mut send, mut recv) = match tokio::time::timeout(STREAM_WAIT, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!("connection ended before a session: {e}");
            return Ok(());
        }
        Err(_) => anyhow::bail!("no sync stream within {} s", STREAM_WAIT.as_secs()),
    };
    let session = RelaySession::new(
        SessionConfig::default(),
        &relay.config.name,
        &device.device_id,
        assignment,
    )
    .with_policy(content_policy());
    let mut finished = false;
    // Refusals, audited after the session (off the runtime).
    let mut refusals: Vec<(DocId, usize)> = Vec::new();
    let mut rejections: Vec<(DocId, &'static str, String)> = Vec::new();
    let mut on_event = |ev: RelayEvent| match ev {
        RelayEvent::Refused { doc, change_bytes } => {
            tracing::info!(village = %doc, change_bytes, "refused a frame for an unassigned village");
            refusals.push((doc, change_bytes));
        }
        RelayEvent::Rejected { doc, code, reason } => {
            tracing::warn!(village = %doc, code = code.name(), %reason, "refused a device's changes");
            rejections.push((doc, code.name(), reason));
        }
        RelayEvent::Applied { doc, changes } => {
            tracing::info!(village = %doc, changes, "applied changes");
            // Exported by the worker, at most once per MIN_INTERVAL: marked
            // now, so a session cut short by shutdown is exported too.
            relay.exporter.mark(doc);
        }
        RelayEvent::Finished(outcome) => {
            finished = true;
            tracing::info!(
                docs = outcome.synced.len(),
                refused = outcome.refused.len(),
                "session finished"
            );
        }
    };
    let result = minqing_net::run_relay_session(
        &mut send,
        &mut recv,
        session,
        relay.host.clone(),
        relay.guarded.clone(),
        &mut on_event,
    )
    .await;
    // The audit log and last-sync table are fsynced files: off the runtime too.
    let r = relay.clone();
    let device = device.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for (doc, code, reason) in rejections {
            // A village that does not load is the relay's problem, not the
            // device's: audited under its own kind.
            let kind = if code == "quarantined" {
                "quarantined_village"
            } else {
                "refused_change"
            };
            r.audit(kind, &device.device_id, Some(doc.as_str()), format!("{code}: {reason}"));
        }
        for (doc, change_bytes) in refusals {
            if is_stale(&r, &device.device_id, &doc, change_bytes) {
                tracing::info!(village = %doc, "stale village: no longer assigned, nothing new in it");
                continue;
            }
            r.audit(
                "refused_village",
                &device.device_id,
                Some(doc.as_str()),
                format!("not assigned to this laptop; {change_bytes} bytes of changes not applied"),
            );
        }
        if finished {
            r.record_sync(&device.device_id);
            r.audit(
                "sync",
                &device.device_id,
                None,
                format!("villages [{}]", device.villages.join(",")),
            );
        }
    })
    .await;
    result?;
    Ok(())
}

/// What the relay accepts in a device's changes: the skeleton change from
/// anyone, and only documents that keep the model's schema
/// (`minqing_model::check_schema`); actors and sizes as `minqing-sync` checks them.
pub fn content_policy() -> ContentPolicy {
    ContentPolicy {
        trusted: minqing_model::skeleton_hash().into_iter().collect(),
        schema: Some(Arc::new(|doc, before| {
            minqing_model::check_schema(doc, before).map_err(|e| e.to_string())
        })),
        limits: Default::default(),
    }
}

/// Whether a refusal is only a village taken away from this laptop, mentioned
/// once more in its first flight with no change in it: the relay synced that
/// village with this device before (it holds their sync state), and the device
/// removes its copy during this very session. Such a refusal is logged, not
/// audited; a refusal carrying changes, or for a village this device never
/// synced, is audited as `refused_village`.
fn is_stale(relay: &Relay, device: &str, doc: &DocId, change_bytes: usize) -> bool {
    change_bytes == 0 && matches!(relay.host.sync_state(device, doc), Ok(Some(_)))
}
