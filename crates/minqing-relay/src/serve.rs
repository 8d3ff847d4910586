//! `serve`: the QUIC endpoint that syncs villages with enrolled laptops, one
//! `RelaySession` per connection over the shared, cached relay documents.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use minqing_net::{
    CLOSE_DONE, CLOSE_ERROR, CLOSE_REFUSED, CLOSE_SHUTDOWN, DeviceGate, EnrolRefusal, EnrolRequest,
    EnrolResponse, NetError, RelayCa, ServerTls, SessionLimits, quinn,
};
use minqing_store::SledStorage;

use crate::guard::GuardedStore;
use minqing_sync::{ContentPolicy, DocId, RelayEvent, RelaySession, SessionConfig, Storage, Store};
use tracing::Instrument;

use crate::audit::{Audit, kind};
use crate::cache::DocCache;
use crate::docs::{actor, ensure_village_doc};
use crate::export::Exporter;
use crate::lock::lock_or_reload;
use crate::registry::{Config, Device, DeviceRegistry, Home, Limits, now_rfc3339};

/// One part in this of the buffer budget is never handed out: it covers
/// what buffered bytes cost beyond themselves — QUIC's packet headers and
/// AEAD tags around the stream data quinn keeps (≈ 6 % of it at the
/// 1,200-byte datagrams the relay uses) and the allocator's slack — so that
/// the relay's RSS growth under load stays within the configured budget
/// (docs/relay.md, "Limits"; measured by L1 in docs/benchmarks.md).
pub const BUDGET_HEADROOM: usize = 16;

/// One part in this of the buffer budget (after its headroom) is set apart
/// for QUIC receive windows; the rest is for partial frames and waiting
/// changes. Apart, so that sessions filling their share with partial frames
/// (an attack by enrolled laptops) never leave a new connection without the
/// window it needs: it would be refused at once (docs/relay.md, "Limits").
pub const WINDOW_SHARE: usize = 2;

/// One part in this of the windows' share may go to enlarged windows (2 MiB
/// for an admitted laptop); the rest is kept for the 64 KiB windows every
/// connection needs when it is accepted. Without it, the first laptops of a
/// crowd took the whole share in enlargements and the rest were refused at
/// once (R1: 486 of 1,000 laptops refused, docs/benchmarks.md).
pub const ENLARGE_SHARE: usize = 4;

/// How long shutdown waits for running sessions.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// Application close code: the relay is at a limit (busy, too many sessions of this laptop).
pub const CLOSE_BUSY: u32 = 0x13;

/// The handshake gate over the device registry.
struct RegistryGate {
    audit: Audit,
    devices: Arc<DeviceRegistry>,
}

impl DeviceGate for RegistryGate {
    /// Reads the in-memory snapshot only: no file access during the handshake.
    fn admit(&self, fingerprint: &str) -> Result<(), String> {
        let snapshot = self.devices.snapshot();
        match snapshot.by_fingerprint(fingerprint) {
            Some(d) if !d.revoked => Ok(()),
            // Let it through only to be told to wipe itself (serve_connection).
            Some(d) if d.wipe_pending() => Ok(()),
            Some(d) => Err(format!("laptop {} ({}) is revoked", d.device_id, d.cadre)),
            None => Err("certificate is not enrolled with this relay".into()),
        }
    }

    fn refused(&self, fingerprint: &str, reason: &str) {
        let device = self
            .devices
            .snapshot()
            .by_fingerprint(fingerprint)
            .map(|d| d.device_id.clone());
        tracing::warn!(fingerprint, reason, "handshake refused");
        // Aggregated per certificate: a flood of refused handshakes is a line
        // or two per interval, and nothing here blocks the handshake.
        self.audit.aggregated(
            kind::REFUSED_HANDSHAKE,
            fingerprint,
            device.as_deref(),
            None,
            format!("{reason}; certificate {fingerprint}"),
        );
    }
}

/// Counts something in progress while alive (handshakes, sessions).
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(counter: &Arc<AtomicUsize>) -> Slot {
        counter.fetch_add(1, Ordering::SeqCst);
        Slot(counter.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One of a device's concurrent sessions, given back when dropped.
struct DeviceSlot<'a> {
    map: &'a Mutex<BTreeMap<String, usize>>,
    device: String,
}

impl Drop for DeviceSlot<'_> {
    fn drop(&mut self) {
        // Reset when poisoned: counts start again from the sessions that begin.
        let mut m = lock_or_reload(self.map, "the per-laptop session counts", BTreeMap::new);
        if let Some(n) = m.get_mut(&self.device) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.device);
            }
        }
    }
}

/// Everything the sessions share.
struct Relay {
    home: Home,
    config: Config,
    limits: Limits,
    audit: Audit,
    ca: RelayCa,
    /// Bytes of partial frames and waiting changes over all sessions
    /// (docs/relay.md, "Limits").
    budget: Arc<tokio::sync::Semaphore>,
    /// Bytes of QUIC receive windows over all connections: the other share
    /// of the buffer budget ([`WINDOW_SHARE`]).
    windows: Arc<tokio::sync::Semaphore>,
    /// Bytes by which admitted laptops' windows were enlarged: a part of the
    /// windows' share ([`ENLARGE_SHARE`]).
    enlarged: Arc<tokio::sync::Semaphore>,
    /// QUIC/TLS handshakes (and enrolment exchanges) in progress.
    handshakes: Arc<AtomicUsize>,
    /// Authenticated sessions running.
    active: Arc<AtomicUsize>,
    per_device: Mutex<BTreeMap<String, usize>>,
    devices: Arc<DeviceRegistry>,
    store: Arc<dyn Store>,
    /// What sessions write through: space checked, flushes with a deadline.
    guarded: Arc<GuardedStore>,
    host: Arc<DocCache>,
    exporter: Arc<Exporter>,
    created: Mutex<BTreeSet<String>>,
    last_sync: Mutex<BTreeMap<String, String>>,
}

impl Relay {
    /// Creates the documents of villages added since the last check.
    fn ensure_villages(&self) -> Result<()> {
        let villages = self.home.villages()?;
        // Reset when poisoned: every village's document is checked again.
        let mut created = lock_or_reload(&self.created, "the created villages", BTreeSet::new);
        for (id, v) in villages {
            if created.contains(&id) {
                continue;
            }
            if ensure_village_doc(&*self.store, &v, &actor(&self.config))? {
                tracing::info!(village = %id, "created the village document");
                if let Ok(doc) = DocId::new(id.clone()) {
                    self.exporter.mark(doc);
                }
            }
            created.insert(id);
        }
        Ok(())
    }

    fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            silence: Duration::from_secs(self.limits.silence_secs.max(1)),
            budget: Some(self.budget.clone()),
        }
    }

    /// Takes one of `device`'s session slots, or `None` at its cap.
    fn device_slot(&self, device: &str) -> Option<DeviceSlot<'_>> {
        let mut m = lock_or_reload(
            &self.per_device,
            "the per-laptop session counts",
            BTreeMap::new,
        );
        let n = m.entry(device.to_owned()).or_default();
        if *n >= self.limits.max_sessions_per_device.max(1) {
            return None;
        }
        *n += 1;
        Some(DeviceSlot {
            map: &self.per_device,
            device: device.to_owned(),
        })
    }

    fn record_sync(&self, device: &str) {
        // Reloaded from last_sync.json when poisoned.
        let mut last = lock_or_reload(&self.last_sync, "the last-sync table", || {
            self.home.last_sync().unwrap_or_default()
        });
        last.insert(device.to_owned(), now_rfc3339());
        if let Err(e) = self.home.save_last_sync(&last) {
            tracing::error!("cannot record the last sync time: {e:#}");
        }
    }
}

/// How long shutdown waits for the final flush and for stuck blocking tasks.
pub const SHUTDOWN_FLUSH_WAIT: Duration = Duration::from_secs(5);

/// Serves laptops until SIGINT or SIGTERM, on the caller's runtime: the relay
/// home `home` with its configuration and unsealed CA.
pub async fn serve_async(home: Home, config: Config, ca: minqing_net::RelayCa) -> Result<()> {
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
    // The one place `serve` names the backend: everything after holds a `dyn Store`.
    let store: Arc<dyn Store> = match SledStorage::open(&home.store()) {
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
    let devices = Arc::new(DeviceRegistry::load(home.clone())?);
    let _refresher = devices
        .spawn_refresher()
        .context("cannot start the registry thread")?;
    let cache_bytes = usize::try_from(config.limits.doc_cache_mib.saturating_mul(1024 * 1024))
        .unwrap_or(usize::MAX);
    let host = Arc::new(DocCache::new(
        guarded.clone() as Arc<dyn Storage>,
        cache_bytes,
    ));
    let exporter = Arc::new(Exporter::open(&home, host.clone())?);
    let limits = config.limits.clone();
    let audit = Audit::start(
        home.clone(),
        Duration::from_secs(limits.audit_interval_secs.max(1)),
    )
    .context("cannot start the audit writer")?;
    let budget_bytes = usize::try_from(limits.buffer_budget_mib.saturating_mul(1024 * 1024))
        .unwrap_or(usize::MAX)
        .clamp(1024 * 1024, tokio::sync::Semaphore::MAX_PERMITS);
    // What is handed out: the budget less its headroom (BUDGET_HEADROOM),
    // in two shares: receive windows and the sessions' buffers.
    let budget_bytes = budget_bytes - budget_bytes / BUDGET_HEADROOM;
    let window_bytes = budget_bytes / WINDOW_SHARE;
    let budget_bytes = budget_bytes - window_bytes;
    let enlarge_bytes = window_bytes / ENLARGE_SHARE;
    let window_bytes = window_bytes - enlarge_bytes;
    let relay = Arc::new(Relay {
        ca,
        audit: audit.clone(),
        budget: Arc::new(tokio::sync::Semaphore::new(budget_bytes)),
        windows: Arc::new(tokio::sync::Semaphore::new(window_bytes)),
        enlarged: Arc::new(tokio::sync::Semaphore::new(enlarge_bytes)),
        handshakes: Arc::new(AtomicUsize::new(0)),
        active: Arc::new(AtomicUsize::new(0)),
        per_device: Mutex::new(BTreeMap::new()),
        limits: limits.clone(),
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
        audit: audit.clone(),
        devices,
    });
    let endpoint = minqing_net::server_endpoint(addr, &tls, gate)?;
    // The county console, a second listener (docs/console.md).
    let console = match &config.console {
        Some(c) => Some(
            crate::console::start(
                crate::console::ConsoleDeps {
                    home: home.clone(),
                    config: c.clone(),
                    host: relay.host.clone(),
                    exporter: exporter.clone(),
                    audit: audit.clone(),
                    actor: actor(&config),
                },
                &relay.ca,
            )
            .await
            .context("cannot start the console")?,
        ),
        None => None,
    };
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
    // Signal handlers are installed before the line that says the relay is
    // up, so a SIGTERM sent as soon as it is read shuts down cleanly.
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
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
    let shutdown = shutdown_signal(term, interrupt);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                while sessions.try_join_next().is_some() {}
                // Handshakes are budgeted apart from sessions: whoever does not
                // hold a laptop's certificate cannot take a laptop's slot.
                let pending = relay.handshakes.load(Ordering::SeqCst);
                if pending >= limits.max_handshakes {
                    incoming.refuse();
                    continue;
                }
                if pending >= limits.retry_above
                    && !incoming.remote_address_validated()
                    && incoming.may_retry()
                {
                    // Under load, a new peer first proves its address (QUIC
                    // Retry): stateless here, one round trip for a laptop.
                    if let Err(e) = incoming.retry() {
                        tracing::debug!("retry failed: {e}");
                    }
                    continue;
                }
                // The receive window QUIC grants in the handshake is counted
                // against the buffer budget from here until the connection ends.
                let Ok(window) = relay
                    .windows
                    .clone()
                    .try_acquire_many_owned(minqing_net::RELAY_INITIAL_WINDOW)
                else {
                    tracing::debug!("buffer budget exhausted: connection refused");
                    incoming.refuse();
                    continue;
                };
                let slot = Slot::take(&relay.handshakes);
                let relay = relay.clone();
                let span = tracing::info_span!("conn", remote = %incoming.remote_address());
                sessions.spawn(async move { serve_connection(relay, incoming, slot, window).await }.instrument(span));
            }
        }
    }
    while sessions.try_join_next().is_some() {}
    if let Some(c) = console {
        c.stop().await;
    }
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
    audit.flush();
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
    let exporting = std::time::Instant::now();
    match tokio::task::spawn_blocking(move || ex.finish()).await {
        Ok(Ok(n)) => {
            tracing::info!(written = n, "final exports written");
            // Read by the benchmarks (R1): how long the stop's exports take.
            eprintln!(
                "final exports: {n} village(s) written in {:.1} s",
                exporting.elapsed().as_secs_f64()
            );
        }
        Ok(Err(e)) => {
            eprintln!("warning: the final exports for reports were not all written: {e:#}")
        }
        Err(e) => eprintln!("warning: the final exports for reports were not all written: {e}"),
    }
    let c = relay.host.stats();
    // Read by the benchmarks (R1): the cache's use of its budget.
    eprintln!(
        "document cache: peak {:.1} MiB of its {:.1} MiB budget (villages counted at {} KiB + {}× their saved size; calls in progress, at most {} at once, at {} KiB + {}×: {:.1} MiB at most), {} villages loaded now, {} loads, {} evictions",
        c.peak_bytes as f64 / (1024.0 * 1024.0),
        c.budget as f64 / (1024.0 * 1024.0),
        crate::cache::VILLAGE_BASE / 1024,
        crate::cache::MEMORY_PER_SAVED_BYTE,
        crate::cache::DOC_WORKERS,
        crate::cache::CALL_BASE / 1024,
        crate::cache::CALL_PER_SAVED_BYTE,
        c.peak_calls as f64 / (1024.0 * 1024.0),
        c.resident,
        c.loads,
        c.evictions
    );
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

/// Resolves on SIGTERM or SIGINT (Ctrl-C), with handlers installed by the caller.
async fn shutdown_signal(
    term: std::io::Result<tokio::signal::unix::Signal>,
    interrupt: std::io::Result<tokio::signal::unix::Signal>,
) {
    match (term, interrupt) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        (Ok(mut one), Err(e)) | (Err(e), Ok(mut one)) => {
            tracing::error!("cannot listen for one of SIGTERM/SIGINT: {e}");
            one.recv().await;
        }
        (Err(e), Err(_)) => {
            tracing::error!("cannot listen for SIGTERM or SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    }
}

/// Serves one connection. `_window` is the budget taken for the receive window
/// granted in the handshake; it is given back when the connection ends.
async fn serve_connection(
    relay: Arc<Relay>,
    incoming: quinn::Incoming,
    handshake: Slot,
    _window: tokio::sync::OwnedSemaphorePermit,
) {
    let limits = &relay.limits;
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("cannot accept: {e}");
            return;
        }
    };
    let wait = Duration::from_secs(limits.handshake_timeout_secs.max(1));
    // 0.5-RTT: a laptop resuming with a ticket is known from its ClientHello
    // (rustls takes its certificate from the ticket, which a single-use cache
    // entry held), so its session may start now, reading the first flight it
    // sent as 0-RTT data — after the registry check below, as for a full
    // handshake. Anyone else (a full handshake, an enrolment) is served only
    // once the handshake has finished. docs/sync.md, "Resumption and 0-RTT".
    let Ok((conn, established)) = connecting.into_0rtt() else {
        tracing::debug!("no 0.5-RTT connection (quinn always gives one to a server)");
        return;
    };
    let resumed = minqing_net::negotiated_alpn(&conn).as_deref() == Some(minqing_net::ALPN)
        && minqing_net::peer_fingerprint(&conn).is_some();
    if resumed {
        // The handshake must still finish (the laptop's Finished proves it is
        // live, not a replayed ClientHello): otherwise the connection ends.
        let watched = conn.clone();
        tokio::spawn(async move {
            // Resolves when the handshake finishes or the connection ends
            // (its value is whether 0-RTT was accepted: not what is asked).
            if tokio::time::timeout(wait, established).await.is_err() {
                tracing::debug!("resumed handshake not finished within {} s", wait.as_secs());
                watched.close(CLOSE_ERROR.into(), b"handshake not finished");
            }
        });
    } else {
        // Resolves when the handshake finishes or the connection ends (its
        // value says whether 0-RTT data was accepted, false for a full
        // handshake: not what is asked here).
        match tokio::time::timeout(wait, established).await {
            Ok(_) if conn.close_reason().is_none() => {}
            Ok(_) => {
                tracing::debug!("handshake failed: {:?}", conn.close_reason());
                return;
            }
            Err(_) => {
                // Dropping the handshake closes it.
                tracing::debug!("handshake not finished within {} s", wait.as_secs());
                return;
            }
        }
    }
    if minqing_net::negotiated_alpn(&conn).as_deref() == Some(minqing_net::ENROL_ALPN) {
        // An enrolment holds its handshake slot, never a session slot.
        serve_enrolment(&relay, &conn).await;
        drop(handshake);
        return;
    }
    drop(handshake);
    // The snapshot in memory: no file access on the runtime.
    let lookup = minqing_net::peer_fingerprint(&conn)
        .and_then(|fp| relay.devices.snapshot().by_fingerprint(&fp).cloned());
    let device = match lookup {
        Some(d) if d.wipe_pending() => {
            let span = tracing::info_span!("wipe", id = %d.device_id, cadre = %d.cadre);
            wipe_device(&relay, &conn, &d).instrument(span).await;
            return;
        }
        // A resumed laptop's certificate was checked when its ticket was
        // issued; its expiry is checked again here (the verifier does not run).
        Some(d) if !(d.revoked || resumed && expired(&d.expires_at)) => d,
        other => {
            if resumed {
                // The handshake's verifier did not run (the certificate came
                // from the ticket), so the refusal is audited here; nothing
                // the laptop sent as 0-RTT data has been read.
                let fp = minqing_net::peer_fingerprint(&conn).unwrap_or_default();
                let why = match &other {
                    Some(d) if d.revoked => {
                        format!("laptop {} ({}) is revoked", d.device_id, d.cadre)
                    }
                    Some(d) => format!(
                        "the certificate of laptop {} expired at {}",
                        d.device_id, d.expires_at
                    ),
                    None => "certificate is not enrolled with this relay".into(),
                };
                tracing::warn!(fingerprint = %fp, reason = %why, "resumed session refused");
                relay.audit.aggregated(
                    kind::REFUSED_HANDSHAKE,
                    &fp,
                    other.as_ref().map(|d| d.device_id.as_str()),
                    None,
                    format!("{why}; resumed session, its 0-RTT data not read; certificate {fp}"),
                );
            }
            conn.close(
                CLOSE_REFUSED.into(),
                minqing_net::REFUSED_MESSAGE.as_bytes(),
            );
            return;
        }
    };
    if relay.active.load(Ordering::SeqCst) >= limits.max_sessions {
        conn.close(
            CLOSE_BUSY.into(),
            b"the relay is busy (every session slot is taken); try again in a minute",
        );
        return;
    }
    let _session_slot = Slot::take(&relay.active);
    let Some(_device_slot) = relay.device_slot(&device.device_id) else {
        relay.audit.aggregated(
            kind::LIMIT,
            &device.device_id,
            Some(&device.device_id),
            None,
            format!(
                "more than {} sessions of this laptop at once; refused",
                limits.max_sessions_per_device
            ),
        );
        conn.close(
            CLOSE_BUSY.into(),
            b"this laptop already has too many sessions with the relay; wait for them to end",
        );
        return;
    };
    // An admitted laptop gets the full receive window if the budget has room
    // for it now; otherwise it syncs within the initial window (slower for a
    // large upload, never refused for it).
    // Held (like `window`) until the connection ends.
    let _enlarged = relay
        .enlarged
        .clone()
        .try_acquire_many_owned(
            minqing_net::RELAY_RECEIVE_WINDOW - minqing_net::RELAY_INITIAL_WINDOW,
        )
        .ok()
        .inspect(|_| conn.set_receive_window(minqing_net::RELAY_RECEIVE_WINDOW.into()));
    let span = tracing::info_span!("device", id = %device.device_id, cadre = %device.cadre);
    let deadline = Duration::from_secs(limits.session_deadline_secs.max(1));
    async {
        let result =
            match tokio::time::timeout(deadline, serve_device(&relay, &conn, &device, resumed))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(anyhow::Error::new(NetError::Limit(
                    minqing_net::SessionLimit::Deadline {
                        secs: deadline.as_secs(),
                    },
                ))),
            };
        match result {
            Ok(()) => conn.close(CLOSE_DONE.into(), b"done"),
            Err(e) => {
                tracing::warn!("session ended: {e:#}");
                audit_failure(&relay, &device.device_id, &e);
                conn.close(CLOSE_ERROR.into(), format!("{e:#}").as_bytes());
            }
        }
    }
    .instrument(span)
    .await;
}

/// Whether a certificate expiry (RFC 3339, as the registry keeps it) has
/// passed; an expiry that does not parse counts as passed.
fn expired(expires_at: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(expires_at).map_or(true, |t| t <= chrono::Utc::now())
}

/// How long the wipe exchange may take at each step.
const WIPE_WAIT: Duration = Duration::from_secs(10);

/// Tells a revoked laptop marked for wiping to destroy its keys, waits for its
/// confirmation (a close with `CLOSE_WIPED`), audits the outcome and refuses it.
async fn wipe_device(relay: &Arc<Relay>, conn: &quinn::Connection, device: &Device) {
    let id = device.device_id.clone();
    let sent = async {
        let (mut send, _recv) = tokio::time::timeout(WIPE_WAIT, conn.accept_bi())
            .await
            .ok()?
            .ok()?;
        let frame = minqing_sync::wipe_frame(&format!(
            "laptop {id} was revoked by the relay operator and must be wiped; its keys are destroyed now"
        ));
        send.write_all(&frame).await.ok()?;
        let _ = send.finish();
        Some(())
    }
    .await;
    let audit = |kind: &'static str, detail: String| {
        relay.audit.event(kind, Some(&id), None, detail);
        std::future::ready(())
    };
    if sent.is_none() {
        tracing::info!("the laptop left before it could be told to wipe itself");
        let _ = audit(
            kind::WIPE_UNCONFIRMED,
            "the order could not be delivered; asked again at the next connection".into(),
        )
        .await;
        conn.close(
            CLOSE_REFUSED.into(),
            minqing_net::REFUSED_MESSAGE.as_bytes(),
        );
        return;
    }
    let _ = audit(kind::WIPE_SENT, format!("cadre {}", device.cadre)).await;
    let confirmed = match tokio::time::timeout(WIPE_WAIT, conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(c)) => {
            c.error_code == minqing_net::CLOSE_WIPED.into()
        }
        _ => false,
    };
    if confirmed {
        tracing::warn!("laptop confirmed that its keys are destroyed");
        let home = relay.home.clone();
        let id2 = id.clone();
        let devices = relay.devices.clone();
        let recorded = tokio::task::spawn_blocking(move || {
            home.mark_wiped(&id2)?;
            devices.refresh()?;
            anyhow::Ok(())
        })
        .await;
        if let Ok(Err(e)) = recorded {
            tracing::error!("cannot record the wipe in the registry: {e:#}");
        }
        let _ = audit(kind::WIPE_CONFIRMED, "the laptop destroyed its keys".into()).await;
    } else {
        let _ = audit(
            kind::WIPE_UNCONFIRMED,
            "no confirmation within 10 s; asked again at the next connection".into(),
        )
        .await;
    }
    conn.close(
        CLOSE_REFUSED.into(),
        minqing_net::REFUSED_MESSAGE.as_bytes(),
    );
}

/// Audits a session that ended with a protocol violation or at a limit.
fn audit_failure(relay: &Relay, device: &str, e: &anyhow::Error) {
    let Some(net) = e.downcast_ref::<NetError>() else {
        return;
    };
    match net {
        NetError::Protocol(s) => {
            use minqing_sync::SessionError as S;
            // Storage failures, the device's own Error frame, a version
            // mismatch: not the device's doing. Anything else is.
            if matches!(
                s,
                S::Storage(_) | S::Remote { .. } | S::Closed | S::Version { .. }
            ) {
                return;
            }
            let village = match s {
                S::BadMessage { doc, .. } => Some(doc.as_str()),
                _ => None,
            };
            relay.audit.aggregated(
                kind::PROTOCOL_VIOLATION,
                device,
                Some(device),
                village,
                s.to_string(),
            );
        }
        NetError::Limit(what) => {
            relay
                .audit
                .aggregated(kind::LIMIT, device, Some(device), None, what.to_string());
        }
        _ => {}
    }
}

/// A first contact: read the request, decide (off the runtime), answer.
async fn serve_enrolment(relay: &Arc<Relay>, conn: &quinn::Connection) {
    let r = relay.clone();
    let wait = Duration::from_secs(relay.limits.stream_wait_secs.max(1));
    match minqing_net::serve_enrolment(conn, wait, move |req| decide_enrolment(&r, req)).await {
        Ok(resp) if resp.ok => tracing::info!("enrolled a laptop"),
        Ok(resp) => tracing::info!(code = ?resp.code, "refused an enrolment"),
        Err(e) => tracing::debug!("enrolment connection ended: {e}"),
    }
    conn.close(CLOSE_DONE.into(), b"done");
}

/// Decides an enrolment request; the secret is marked used in `devices.json`
/// (fsynced, renamed into place) before a certificate is returned.
fn decide_enrolment(relay: &Relay, req: Result<EnrolRequest, String>) -> EnrolResponse {
    let refuse = |code: EnrolRefusal, device: Option<&str>, detail: String, message: String| {
        relay.audit.aggregated(
            kind::REFUSED_ENROLMENT,
            device.unwrap_or("-"),
            device,
            None,
            detail,
        );
        EnrolResponse::refused(code, message)
    };
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                EnrolRefusal::BadRequest,
                None,
                format!("malformed enrolment request: {e}"),
                format!("the relay could not read the enrolment request: {e}"),
            );
        }
    };
    if let Some(reserved) = crate::registry::reserved_device_id(&req.device_id) {
        return refuse(
            EnrolRefusal::BadRequest,
            None,
            format!("enrolment request under the reserved device id {reserved}"),
            crate::registry::reserved_message(reserved),
        );
    }
    if minqing_net::check_device_id(&req.device_id).is_err() {
        return refuse(
            EnrolRefusal::BadRequest,
            None,
            "enrolment request with a malformed device id".into(),
            "the enrolment request names no valid device".into(),
        );
    }
    let id = req.device_id.as_str();
    let unknown = || {
        format!(
            "the relay does not know this enrolment file (device {id}); ask the operator for a new one"
        )
    };
    let _lock = match relay.home.lock() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("enrolment: {e:#}");
            return EnrolResponse::refused(
                EnrolRefusal::Failed,
                "the relay cannot record enrolments right now; try again later",
            );
        }
    };
    let mut devices = match relay.home.devices() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("enrolment: {e:#}");
            return EnrolResponse::refused(
                EnrolRefusal::Failed,
                "the relay cannot read its registry right now; try again later",
            );
        }
    };
    let Some(d) = devices.get_mut(id) else {
        return refuse(
            EnrolRefusal::Unknown,
            Some(id),
            "enrolment for a device that is not in the registry".into(),
            unknown(),
        );
    };
    if d.revoked {
        return refuse(
            EnrolRefusal::Revoked,
            Some(id),
            "enrolment of a revoked laptop".into(),
            minqing_net::REFUSED_MESSAGE.into(),
        );
    }
    let digest = minqing_net::secret_digest(&req.secret);
    if d.secret_sha256.as_deref() != Some(digest.as_str()) {
        return refuse(
            EnrolRefusal::Unknown,
            Some(id),
            "enrolment with a wrong secret".into(),
            unknown(),
        );
    }
    if d.secret_used_at.is_some() {
        if let Some(cert) = &d.cert_pem
            && minqing_net::request_matches_cert(&req.csr_pem, cert)
        {
            // The same laptop asking again: its first answer was lost.
            relay.audit.event(
                kind::ENROLL_COMPLETE,
                Some(id),
                None,
                format!(
                    "the same key asked again; certificate {} sent again",
                    d.fingerprint
                ),
            );
            return EnrolResponse::enrolled(cert.clone());
        }
        return refuse(
            EnrolRefusal::Used,
            Some(id),
            format!(
                "a second laptop presented an enrolment file already used (by the laptop with certificate {}); refused",
                d.fingerprint
            ),
            minqing_net::USED_MESSAGE.into(),
        );
    }
    let days = d.valid_days.unwrap_or(730);
    let validity = minqing_net::Validity::from_now(Duration::from_secs(u64::from(days) * 86_400));
    let issued = match relay.ca.sign_request(&req.csr_pem, id, validity) {
        Ok(c) => c,
        Err(e) => {
            return refuse(
                EnrolRefusal::BadRequest,
                Some(id),
                format!("enrolment with a bad certificate request: {e}"),
                format!("the relay could not sign the certificate request: {e}"),
            );
        }
    };
    d.fingerprint = issued.fingerprint.clone();
    d.secret_used_at = Some(now_rfc3339());
    d.cert_pem = Some(issued.cert_pem.clone());
    d.expires_at = chrono::DateTime::<chrono::Utc>::from(validity.not_after)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Durable before the answer: a lost answer is repaired by asking again
    // with the same key, never by spending the secret twice.
    if let Err(e) = relay.home.save_devices(&devices) {
        tracing::error!("enrolment: cannot save the registry: {e:#}");
        return EnrolResponse::refused(
            EnrolRefusal::Failed,
            "the relay cannot record enrolments right now; try again later",
        );
    }
    // The gate knows the new certificate before the laptop's first sync.
    if let Err(e) = relay.devices.refresh() {
        tracing::error!("enrolment: cannot re-read the registry: {e}");
    }
    relay.audit.event(
        kind::ENROLL_COMPLETE,
        Some(id),
        None,
        format!("first contact: certificate {}", issued.fingerprint),
    );
    EnrolResponse::enrolled(issued.cert_pem)
}

/// `resumed`: the laptop resumed its TLS session and its first flight came
/// as 0-RTT data (said in the sync's audit line).
async fn serve_device(
    relay: &Arc<Relay>,
    conn: &quinn::Connection,
    device: &Device,
    resumed: bool,
) -> Result<()> {
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
    let stream_wait = Duration::from_secs(relay.limits.stream_wait_secs.max(1));
    let (mut send, mut recv) = match tokio::time::timeout(stream_wait, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!("connection ended before a session: {e}");
            return Ok(());
        }
        Err(_) => anyhow::bail!("no sync stream within {} s", stream_wait.as_secs()),
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
            // Bounded: the audit line names at most a few villages anyway.
            if refusals.len() < 10_000 {
                refusals.push((doc, change_bytes));
            }
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
    let limits = relay.session_limits();
    let result = minqing_net::run_relay_session(
        &mut send,
        &mut recv,
        session,
        relay.host.clone(),
        relay.guarded.clone(),
        &limits,
        &mut on_event,
    )
    .await;
    // The last-sync table is an fsynced file: off the runtime.
    let r = relay.clone();
    let device = device.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for (doc, code, reason) in rejections {
            // A village that does not load is the relay's problem, not the
            // device's: audited under its own kind.
            let kind = if code == "quarantined" {
                kind::QUARANTINED_VILLAGE
            } else {
                kind::REFUSED_CHANGE
            };
            r.audit.aggregated(
                kind,
                &device.device_id,
                Some(&device.device_id),
                Some(doc.as_str()),
                format!("{code}: {reason}"),
            );
        }
        for (doc, change_bytes) in refusals {
            if is_stale(&r, &device.device_id, &doc, change_bytes) {
                tracing::info!(village = %doc, "stale village: no longer assigned, nothing new in it");
                continue;
            }
            r.audit.aggregated(
                kind::REFUSED_VILLAGE,
                &device.device_id,
                Some(&device.device_id),
                Some(doc.as_str()),
                format!("not assigned to this laptop; {change_bytes} bytes of changes not applied"),
            );
        }
        if finished {
            r.record_sync(&device.device_id);
            r.audit.event(
                kind::SYNC,
                Some(&device.device_id),
                None,
                format!(
                    "villages [{}]{}",
                    device.villages.join(","),
                    if resumed { "; resumed, first flight as 0-RTT data" } else { "" }
                ),
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
    change_bytes == 0
        && matches!(
            minqing_sync::DocHost::sync_state(&*relay.host, device, doc),
            Ok(Some(_))
        )
}
