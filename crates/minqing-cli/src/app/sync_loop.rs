//! The service's background sync (docs/app.md, "Background sync"): what
//! `minqing sync --watch` does, inside `minqing app`.
//!
//! One thread with its own single-threaded async runtime runs the loop, so
//! that waiting for the store lock (a long report holds it) stalls only the
//! sync, never the web server. One quinn client endpoint (one UDP socket) is
//! made at the first pass and reused by every later one. The session's
//! storage is the service's open store behind the store lock, taken per
//! storage call ([`ServiceStore`]): commands and page writes go on while the
//! relay is awaited, and what they write meanwhile goes with the next pass.
//!
//! A pass runs at start, after every local write (the service wakes the loop
//! after each command and page post; the loop compares [`Home::saves`] with
//! the count at its last good pass), at least every `--interval` seconds, on
//! request ("sync now", `minqing sync` through the service), and while the
//! relay is unreachable with the short, frequent attempts of
//! [`cmd_sync::Outage`] (docs/sync.md, "Outages"; waits capped at the
//! interval). The state of the passes is kept for the 同步 page and `minqing
//! status` ([`SyncState`]).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minqing_net::{Bundle, ConnectOptions, Identity, NetError};
use minqing_sync::{DocId, DocOutcome, SessionOutcome, Storage, StorageError};
use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::{App, lock};
use crate::cmd::sync::{self as cmd_sync, Keys, Wiped};
use crate::home::Home;
use crate::output;

/// Longest wait between attempts while the relay is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Most "sync now" requests waiting for the next pass.
const MAX_WAITING: usize = 64;

/// What the loop knows of the last passes, for pages and `minqing status`.
#[derive(Debug, Clone, Serialize)]
pub struct SyncState {
    /// The relay's name.
    pub relay_name: String,
    /// The relay's address.
    pub relay_addr: String,
    /// Whether the relay answered the last attempt (`None` before the first).
    pub online: Option<bool>,
    /// Whether a pass is running now.
    pub syncing: bool,
    /// Passes attempted since the service started.
    pub attempts: u64,
    /// When the last attempt started (RFC 3339, UTC).
    pub last_attempt: Option<String>,
    /// When the last pass that reached the relay ended (this launch or an
    /// earlier one: read from the store at start).
    pub last_sync: Option<String>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// The relay refused this laptop (revoked, or not its relay): the loop
    /// stops trying on its own; "sync now" tries again.
    pub refused: bool,
    /// Per village: when it was last in sync and how the last pass ended for it.
    pub villages: BTreeMap<String, VillageSync>,
    /// Passes that reached the relay since the service started.
    pub passes: u64,
    /// Of those, the passes on a resumed TLS session whose first flight the
    /// relay took as 0-RTT data (every pass after the first, unless the relay
    /// restarted or forgot the ticket: docs/sync.md, "Resumption and 0-RTT").
    pub zero_rtt_passes: u64,
}

/// One village in [`SyncState`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct VillageSync {
    /// When a pass last ended with the village in sync (this launch or an
    /// earlier one: kept in the store's meta, `relay_village_sync`).
    pub last_sync: Option<String>,
    /// How the last pass ended for it: `in_sync`, `added`, `removed`, `refused`.
    pub outcome: String,
    /// The relay's words when it refused the village.
    pub detail: Option<String>,
}

/// A pass as `minqing sync` prints it.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    /// What `sync` prints on stdout.
    pub stdout: String,
    /// What it prints on stderr.
    pub stderr: String,
    /// Its exit code.
    pub code: u8,
}

/// The service's handle on its sync loop.
pub struct SyncHandle {
    requests: mpsc::Sender<oneshot::Sender<PassReport>>,
    wake: Notify,
    stop: watch::Sender<bool>,
    state: Mutex<SyncState>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What the loop thread takes with it.
pub struct LoopParts {
    requests: mpsc::Receiver<oneshot::Sender<PassReport>>,
    stop: watch::Receiver<bool>,
    bundle: Bundle,
    identity: Identity,
    keys: Keys,
    timeout: Duration,
    interval: Duration,
}

/// The loop for an enrolled home (`None` for a standalone one: no relay, no
/// loop), not started yet.
pub fn prepare(
    home: &Home,
    timeout: Duration,
    interval: Duration,
) -> anyhow::Result<Option<(SyncHandle, LoopParts)>> {
    if home.store.meta_get(cmd_sync::BUNDLE_KEY)?.is_none() || home.read_only.is_some() {
        return Ok(None);
    }
    let (bundle, identity) = cmd_sync::stored_bundle(&*home.store)?;
    let last_sync = home
        .store
        .meta_get(cmd_sync::LAST_SYNC_KEY)?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    // Each village's last sync, as earlier launches recorded it.
    let villages = cmd_sync::village_syncs(&*home.store)?
        .into_iter()
        .map(|(id, t)| {
            (
                id,
                VillageSync {
                    last_sync: Some(t),
                    ..VillageSync::default()
                },
            )
        })
        .collect();
    let (req_tx, req_rx) = mpsc::channel(MAX_WAITING);
    let (stop_tx, stop_rx) = watch::channel(false);
    let handle = SyncHandle {
        requests: req_tx,
        wake: Notify::new(),
        stop: stop_tx,
        state: Mutex::new(SyncState {
            relay_name: bundle.relay_name.clone(),
            relay_addr: bundle.relay_addr.clone(),
            online: None,
            syncing: false,
            attempts: 0,
            last_attempt: None,
            last_sync,
            last_error: None,
            refused: false,
            villages,
            passes: 0,
            zero_rtt_passes: 0,
        }),
        thread: Mutex::new(None),
    };
    let parts = LoopParts {
        requests: req_rx,
        stop: stop_rx,
        bundle,
        identity,
        keys: Keys {
            data: home.key.clone(),
            escrow: home.escrow(),
        },
        timeout: timeout.max(Duration::from_secs(1)),
        interval: interval.max(Duration::from_secs(1)),
    };
    Ok(Some((handle, parts)))
}

impl SyncHandle {
    /// Tells the loop that something was written (it looks whether a village
    /// changed and, if so, syncs).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The state of the passes.
    pub fn state(&self) -> SyncState {
        lock(&self.state).clone()
    }

    /// Asks for a pass now and waits for it (`None`: the loop has stopped).
    pub async fn sync_now(&self) -> Option<PassReport> {
        let (tx, rx) = oneshot::channel();
        self.requests.try_send(tx).ok()?;
        rx.await.ok()
    }

    /// Stops the loop (a pass in progress is dropped between frames: what it
    /// stored was flushed before it was acknowledged) and waits for its thread.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

/// Starts the loop's thread.
pub fn spawn(app: &App, parts: LoopParts) -> anyhow::Result<()> {
    let Some(handle) = app.0.sync.get() else {
        return Ok(());
    };
    let app2 = app.clone();
    let thread = std::thread::Builder::new()
        .name("minqing-sync".into())
        .spawn(move || run(app2, parts))?;
    *lock(&handle.thread) = Some(thread);
    Ok(())
}

/// The service's store as a sync session sees it: every call takes the store
/// lock, so it interleaves with commands and page writes one call at a time.
struct ServiceStore(App);

impl ServiceStore {
    fn with<T>(&self, f: impl FnOnce(&Home) -> Result<T, StorageError>) -> Result<T, StorageError> {
        let home = lock(&self.0.0.home);
        match home.as_ref() {
            Some(home) => f(home),
            None => Err(StorageError::Backend(
                "this laptop is not set up (a minqing bug: no sync before enrolment)".into(),
            )),
        }
    }
}

impl Storage for ServiceStore {
    fn docs(&self) -> Result<Vec<DocId>, StorageError> {
        self.with(|h| h.store.docs())
    }
    fn load(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.with(|h| h.store.load(doc))
    }
    fn append(&self, doc: &DocId, bytes: &[u8]) -> Result<(), StorageError> {
        self.with(|h| h.store.append(doc, bytes))
    }
    fn remove(&self, doc: &DocId) -> Result<(), StorageError> {
        self.with(|h| h.store.remove(doc))
    }
    fn sync_state(&self, peer: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StorageError> {
        self.with(|h| h.store.sync_state(peer, doc))
    }
    fn set_sync_state(&self, peer: &str, doc: &DocId, state: &[u8]) -> Result<(), StorageError> {
        self.with(|h| h.store.set_sync_state(peer, doc, state))
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.with(|h| h.store.flush())
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How one attempt ended.
enum Ended {
    /// The relay was reached and the session ran to its end (`true`: its
    /// first flight went as 0-RTT data).
    Synced(SessionOutcome, Vec<cmd_sync::Notice>, bool),
    /// The relay or the network failed; retried with backoff.
    Net(NetError),
    /// The relay refused this laptop or is not its relay.
    Refused(NetError),
    /// The relay ordered a wipe and it was done.
    Wiped(anyhow::Error),
    /// Something local failed (the store); retried with backoff.
    Local(anyhow::Error),
}

/// One pass on the reused endpoint.
async fn pass(
    app: &App,
    endpoint: &mut Option<minqing_net::ClientEndpoint>,
    parts: &LoopParts,
    outage: bool,
) -> Ended {
    if endpoint.is_none() {
        match minqing_net::client_endpoint(&parts.bundle, &parts.identity).await {
            Ok(e) => *endpoint = Some(e),
            Err(e) => return Ended::Net(e),
        }
    }
    let Some(ep) = endpoint.as_ref() else {
        return Ended::Local(anyhow::anyhow!("no endpoint"));
    };
    let opts = ConnectOptions {
        timeout: parts.timeout,
    };
    // While the relay is unreachable: a short attempt (docs/sync.md, "Outages").
    let conn = if outage {
        minqing_net::connect_within(ep, &parts.bundle, opts, cmd_sync::OUTAGE_ATTEMPT).await
    } else {
        minqing_net::connect_on(ep, &parts.bundle, opts).await
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) if e.is_trust_failure() => return Ended::Refused(e),
        Err(e) => return Ended::Net(e),
    };
    let store = ServiceStore(app.clone());
    let dir = app.dir().to_path_buf();
    let result = cmd_sync::session(&conn, &store, &parts.bundle, &dir, &parts.keys).await;
    if let Err(NetError::WipeOrdered(order)) = &result {
        if let Err(e) = cmd_sync::wipe(&dir) {
            conn.close().await;
            return Ended::Local(e);
        }
        // Confirm to the relay only once the keys are gone.
        conn.close_wiped().await;
        return Ended::Wiped(anyhow::Error::new(Wiped(order.clone())));
    }
    let zero_rtt = conn.used_0rtt();
    conn.close().await;
    match result {
        Ok((out, notices)) => {
            if let Err(e) = store.with(|h| {
                cmd_sync::report(&*h.store, &out).map_err(|e| StorageError::Backend(e.into()))
            }) {
                return Ended::Local(e.into());
            }
            Ended::Synced(out, notices, zero_rtt)
        }
        Err(e) if e.is_trust_failure() => Ended::Refused(e),
        Err(e) => Ended::Net(e),
    }
}

/// The loop (module docs); returns when told to stop.
fn run(app: App, mut parts: LoopParts) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::err(&format!(
                "minqing app: cannot start the background sync ({e}); `minqing sync` still works"
            ));
            return;
        }
    };
    rt.block_on(run_async(app, &mut parts));
}

async fn run_async(app: App, parts: &mut LoopParts) {
    let Some(handle) = app.0.sync.get().cloned() else {
        return;
    };
    let Some(saves) = lock(&app.0.home).as_ref().map(|h| h.saves.clone()) else {
        return;
    };
    let mut endpoint: Option<minqing_net::ClientEndpoint> = None;
    let max_backoff = parts.interval.min(MAX_BACKOFF);
    let mut backoff = Duration::from_secs(1);
    let mut outage = cmd_sync::Outage::default();
    // The save count at the start of the last pass that reached the relay.
    let mut synced_saves: Option<u64> = None;
    let mut failing = false;
    let mut next_due = tokio::time::Instant::now();
    let mut waiting: Vec<oneshot::Sender<PassReport>> = Vec::new();
    let mut stop = parts.stop.clone();
    loop {
        let mut timer = false;
        tokio::select! {
            _ = stop.changed() => break,
            req = parts.requests.recv() => match req {
                Some(tx) => waiting.push(tx),
                None => break,
            },
            _ = handle.wake.notified() => {}
            _ = tokio::time::sleep_until(next_due) => timer = true,
        }
        if *stop.borrow() {
            break;
        }
        let count = saves.load(Ordering::SeqCst);
        let refused = lock(&handle.state).refused;
        let due = !waiting.is_empty()
            || (timer && !refused)
            || (!failing && !refused && synced_saves != Some(count));
        if !due {
            continue;
        }
        {
            let mut s = lock(&handle.state);
            s.syncing = true;
            s.attempts += 1;
            s.last_attempt = Some(now());
        }
        let started = std::time::Instant::now();
        let ended = tokio::select! {
            _ = stop.changed() => break,
            e = pass(&app, &mut endpoint, parts, outage.active()) => e,
        };
        let net_failed = matches!(ended, Ended::Net(_));
        let (report, wiped) = record(&handle, &parts.bundle, ended);
        match &report.1 {
            Next::Interval => {
                synced_saves = Some(count);
                failing = false;
                backoff = Duration::from_secs(1);
                outage.reached();
                next_due = tokio::time::Instant::now() + parts.interval;
            }
            // The relay or the network: short attempts, often at first.
            Next::Backoff if net_failed => {
                failing = true;
                let wait = outage.failed(started, std::time::Instant::now());
                next_due = tokio::time::Instant::now() + wait.min(parts.interval);
            }
            Next::Backoff => {
                failing = true;
                next_due = tokio::time::Instant::now() + backoff;
                backoff = (backoff * 2).min(max_backoff);
            }
            Next::Asked => {
                failing = true;
                next_due = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
            }
        }
        for tx in waiting.drain(..) {
            let _ = tx.send(report.0.clone());
        }
        if wiped {
            // The keys are gone: nothing of this home can be read any more.
            app.stop_service();
            break;
        }
    }
    for tx in waiting.drain(..) {
        let _ = tx.send(PassReport {
            stdout: String::new(),
            stderr: "error: minqing app is stopping; the sync did not run\n".into(),
            code: 1,
        });
    }
    if let Some(ep) = endpoint {
        ep.close(0u32.into(), b"done");
    }
    lock(&handle.state).syncing = false;
}

/// When the next pass is due.
enum Next {
    /// After the interval (the pass reached the relay).
    Interval,
    /// After the backoff (the relay or the network failed).
    Backoff,
    /// Only when asked ("sync now"): the relay refused this laptop.
    Asked,
}

/// Writes a pass's end into the state; the report `minqing sync` prints,
/// when the next pass is due, and whether the home was wiped.
fn record(handle: &SyncHandle, bundle: &Bundle, ended: Ended) -> ((PassReport, Next), bool) {
    let mut wiped = false;
    let ((code, next), captured) = output::capture(|| match ended {
        Ended::Synced(out, notices, zero_rtt) => {
            let all_ok = cmd_sync::print_outcome(&out, &notices).unwrap_or(false);
            let t = now();
            let mut s = lock(&handle.state);
            s.passes += 1;
            s.zero_rtt_passes += u64::from(zero_rtt);
            s.online = Some(true);
            s.last_sync = Some(t.clone());
            s.last_error = None;
            s.refused = false;
            // A village not in sync this time keeps when it last was.
            let mut before = std::mem::take(&mut s.villages);
            for (doc, o) in &out.docs {
                let earlier = before.remove(doc.as_str()).and_then(|v| v.last_sync);
                let (outcome, detail, in_sync) = match o {
                    DocOutcome::InSync { .. } => ("in_sync", None, true),
                    DocOutcome::Added { .. } => ("added", None, true),
                    DocOutcome::Removed => ("removed", None, false),
                    DocOutcome::Refused { reason } => ("refused", Some(reason.clone()), false),
                };
                s.villages.insert(
                    doc.to_string(),
                    VillageSync {
                        last_sync: if in_sync { Some(t.clone()) } else { earlier },
                        outcome: outcome.into(),
                        detail,
                    },
                );
            }
            ((if all_ok { 0 } else { 1 }), Next::Interval)
        }
        Ended::Refused(e) => {
            let code = cmd_sync::refused(bundle, &e);
            let mut s = lock(&handle.state);
            s.online = Some(true);
            s.refused = true;
            s.last_error = Some(e.to_string());
            (code_of(code), Next::Asked)
        }
        Ended::Wiped(e) => {
            wiped = true;
            output::err(&format!("error: {e:#}"));
            let mut s = lock(&handle.state);
            s.refused = true;
            s.last_error = Some(format!("{e:#}"));
            (cmd_sync::EXIT_REFUSED, Next::Asked)
        }
        Ended::Net(e) => {
            let text = match &e {
                NetError::Unreachable { .. } => {
                    format!("error: sync with relay {} failed: {e}", bundle.relay_name)
                }
                _ => format!(
                    "error: sync with relay {} failed: {e}; nothing local was lost: what did not reach the relay goes with the next sync",
                    bundle.relay_name
                ),
            };
            output::err(&text);
            let mut s = lock(&handle.state);
            s.online = Some(false);
            s.last_error = Some(e.to_string());
            (1, Next::Backoff)
        }
        Ended::Local(e) => {
            output::err(&format!("error: {e:#}"));
            lock(&handle.state).last_error = Some(format!("{e:#}"));
            (crate::error::exit_code(&e), Next::Backoff)
        }
    });
    {
        let mut s = lock(&handle.state);
        s.syncing = false;
    }
    if !captured.stderr.is_empty() {
        // The service's own log: what a failed pass said (no personal data:
        // village ids, the relay's name and the network's words).
        tracing::info!("background sync: {}", captured.stderr.trim_end());
    }
    (
        (
            PassReport {
                stdout: captured.stdout,
                stderr: captured.stderr,
                code,
            },
            next,
        ),
        wiped,
    )
}

/// The numeric value of an exit code.
fn code_of(c: ExitCode) -> u8 {
    (0..=255u8).find(|n| ExitCode::from(*n) == c).unwrap_or(1)
}

/// One village as the 同步 page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VillageRow {
    /// The village id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Changes on this laptop the relay is not known to have.
    pub pending_changes: usize,
    /// When it was last in sync (kept across launches).
    pub last_sync: Option<String>,
    /// How the last pass ended for it.
    pub outcome: Option<String>,
}

/// The sync state with each held village's changes not yet at the county
/// (read under the store lock).
#[derive(Debug, Clone, Serialize)]
pub struct SyncView {
    /// Whether this home is enrolled with a relay (a standalone home has no sync).
    pub enrolled: bool,
    /// The loop's state (`None` on a standalone home).
    pub state: Option<SyncState>,
    /// Every held village.
    pub villages: Vec<VillageRow>,
}

/// The villages' rows: `home` is held under the store lock by the caller.
pub fn view(home: &Home, state: Option<SyncState>) -> anyhow::Result<SyncView> {
    // Counted on the service's cached villages (lent, not copied or loaded).
    let mut pending: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(s) = &state {
        for id in home.village_ids()? {
            let st = home.store.sync_state(&s.relay_name, &id)?;
            let count = home.inspect(&id, |v| {
                minqing_sync::local_change_count(v.document(), st.as_deref())
            });
            match count {
                Ok(Some(n)) => {
                    pending.insert(id.to_string(), n);
                }
                Ok(None) => {}
                Err(e) => crate::home::report_unloadable(&id, &e),
            }
        }
    }
    let mut villages = Vec::new();
    for v in home.readers()? {
        let id = v.id().to_string();
        let per = state
            .as_ref()
            .and_then(|s| s.villages.get(&id))
            .cloned()
            .unwrap_or_default();
        villages.push(VillageRow {
            pending_changes: pending.get(&id).copied().unwrap_or(0),
            name: v.view().name,
            id,
            last_sync: per.last_sync,
            outcome: (!per.outcome.is_empty()).then_some(per.outcome),
        });
    }
    Ok(SyncView {
        enrolled: state.is_some(),
        state,
        villages,
    })
}

/// Keeps the handle shared: `App` holds it in an `Arc`.
pub type Shared = Arc<SyncHandle>;
