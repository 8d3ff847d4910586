//! `minqing app`: the local service that owns a home's store, carries out the
//! CLI's commands, syncs in the background and serves the cadre's web pages
//! on 127.0.0.1 (docs/app.md).
//!
//! - [`guard`]: Host/Origin checks, the per-launch secret, CSRF, headers.
//! - [`discovery`]: the `app.json` file that tells the CLI where the service is.
//! - [`client`]: the CLI's side of the local API.
//! - [`api`]: the service's side of it (`/api/v1/*`).
//! - [`pages`]: the web pages' routes (rendering lives in minqing-web).
//! - [`sync_loop`]: the background sync with the relay.
//! - [`settings`]: 设置 — enrolling this laptop from the app (the service
//!   starts on a home not set up yet and opens it once enrolled).

pub mod api;
pub mod client;
pub mod discovery;
pub mod guard;
pub mod pages;
pub mod settings;
pub mod sync_loop;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::response::{IntoResponse, Response};

use crate::cli::AppArgs;
use crate::home::{Home, Secrets};
use crate::output;

/// The service's shared state: cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    /// The home (canonical path).
    dir: PathBuf,
    /// The open home behind the store lock: every command, page write and
    /// sync storage call takes it, one at a time. `None` while the laptop is
    /// not set up yet: the service then shows only 设置, where it is enrolled
    /// (docs/app.md, "Before enrolment").
    home: Mutex<Option<Home>>,
    /// Before enrolment: the passphrase the home's keyring already takes,
    /// when known (an enrolment begun earlier whose first contact failed).
    /// Only in memory; zeroised when dropped.
    setup_passphrase: Mutex<Option<minqing_store::secret::Passphrase>>,
    /// Whether `home` is open (read without taking the store lock, which a
    /// long command may hold).
    set_up: std::sync::atomic::AtomicBool,
    /// Set while an enrolment from 设置 is running (one at a time).
    enrolling: std::sync::atomic::AtomicBool,
    /// `--timeout` and `--interval` of the background sync.
    timeout: Duration,
    interval: Duration,
    /// Where passphrases come from (commands that ask for one).
    secrets: Secrets,
    /// The per-launch secret (cookie, bearer).
    secret: String,
    /// The per-launch CSRF token of form posts.
    csrf: String,
    /// The port on 127.0.0.1.
    port: u16,
    /// When a request last came (the idle lock, docs/app.md).
    last_used: Mutex<Instant>,
    /// The background sync (unset on a standalone home, or before
    /// enrolment: set once, when the home is enrolled).
    sync: OnceLock<sync_loop::Shared>,
    /// Told when the service must stop on its own (the relay ordered a wipe).
    shutdown: tokio::sync::Notify,
    /// The 人 page's search index and the villages' residents generations it
    /// was built from (docs/store.md, "Views kept with a cached village").
    search: Mutex<Option<(SearchKey, Arc<minqing_web::SearchIndex>)>>,
}

/// Which villages, at which residents generation, a search index shows.
type SearchKey = Vec<(String, u64)>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A command that panicked left the store as sled left it: every write is
    // appended and flushed or not at all, so the next command may go on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl App {
    /// The per-launch secret.
    pub fn secret(&self) -> &str {
        &self.0.secret
    }

    /// The CSRF token every form carries.
    pub fn csrf(&self) -> &str {
        &self.0.csrf
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// The home directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// Notes that a request came (for the idle lock).
    pub fn touch(&self) {
        *lock(&self.0.last_used) = Instant::now();
    }

    /// Tells the background sync that a command or page post ran (it syncs
    /// if a village changed).
    pub fn wake_sync(&self) {
        if let Some(s) = self.0.sync.get() {
            s.wake();
        }
    }

    /// The background sync, if this home is enrolled with a relay.
    pub fn sync(&self) -> Option<&sync_loop::SyncHandle> {
        self.0.sync.get().map(|s| &**s)
    }

    /// Whether the home is open (set up); before that only 设置 is served.
    pub fn is_set_up(&self) -> bool {
        self.0.set_up.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The sync state with every village's changes not yet at the county.
    pub async fn sync_view(&self) -> anyhow::Result<sync_loop::SyncView> {
        let state = self.sync().map(|s| s.state());
        self.with_home(move |home, _| sync_loop::view(home, state))
            .await?
    }

    /// Stops the service as Ctrl-C does (the relay ordered a wipe).
    fn stop_service(&self) {
        self.0.shutdown.notify_one();
    }

    /// Runs `f` on the open home under the store lock, on tokio's blocking
    /// pool (so the async runtime only moves bytes).
    pub async fn with_home<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Home, &Secrets) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        self.touch();
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            let home = lock(&app.0.home);
            match home.as_ref() {
                Some(home) => Ok(f(home, &app.0.secrets)),
                None => Err(anyhow::Error::new(NotSetUp { port: app.0.port })),
            }
        })
        .await
        .context("a command of the service failed unexpectedly")?
    }

    /// The search index of `villages`: kept while every village's residents
    /// generation is the one it was built from, else built again.
    pub fn search_index(&self, villages: &[crate::home::Reader]) -> Arc<minqing_web::SearchIndex> {
        let key: Option<SearchKey> = villages
            .iter()
            .map(|v| v.generation().map(|g| (v.id().to_string(), g)))
            .collect();
        let mut kept = lock(&self.0.search);
        if let (Some(key), Some((k, index))) = (&key, kept.as_ref())
            && key == k
        {
            return index.clone();
        }
        let refs: Vec<&crate::home::Reader> = villages.iter().collect();
        let index = Arc::new(minqing_web::SearchIndex::new(&refs));
        *kept = key.map(|k| (k, index.clone()));
        index
    }

    /// A page: `render` gets read access to the villages under the store lock
    /// and returns the HTML; an error becomes a 500 page naming it.
    pub async fn page(
        &self,
        render: impl FnOnce(&pages::View<'_>) -> anyhow::Result<String> + Send + 'static,
    ) -> Response {
        let app = self.clone();
        let out = self
            .with_home(move |home, _| {
                let view = pages::View { home, app: &app };
                output::capture(|| render(&view)).0
            })
            .await;
        match out {
            Ok(Ok(html)) => axum::response::Html(html).into_response(),
            Ok(Err(e)) | Err(e) => pages::error_page(&e),
        }
    }

    /// A write from a page: `f` runs under the store lock and must make its
    /// change durable (`Home::save`) before it returns its answer (usually a
    /// redirect). An error becomes a page naming it.
    pub async fn write(
        &self,
        f: impl FnOnce(&Home) -> anyhow::Result<Response> + Send + 'static,
    ) -> Response {
        let out = self
            .with_home(move |home, _| output::capture(|| f(home)).0)
            .await;
        self.wake_sync();
        match out {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) | Err(e) => pages::error_page(&e),
        }
    }
}

/// A command or page for a home not set up yet: the service waits on 设置.
#[derive(Debug, thiserror::Error)]
#[error(
    "this laptop is not set up yet: minqing app is waiting for its enrolment file on the 设置 page at http://127.0.0.1:{port}/settings — upload it there, or stop the app and run `minqing init --bundle FILE`"
)]
pub struct NotSetUp {
    /// The service's port.
    pub port: u16,
}

/// The router: pages, the local API and assets, behind the fences.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/login", axum::routing::get(guard::login))
        .merge(api::routes())
        .merge(pages::routes())
        .merge(settings::routes())
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            settings::gate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::fence,
        ))
        .with_state(app)
}

/// `minqing app`: unlocks the home, opens the store, listens on 127.0.0.1,
/// writes the discovery file, opens the browser, and serves until Ctrl-C or
/// SIGTERM; then flushes everything and removes the discovery file.
pub fn serve(dir: &Path, secrets: &Secrets, args: &AppArgs) -> anyhow::Result<ExitCode> {
    if let Some(d) = client::find(dir) {
        anyhow::bail!(
            "minqing app is already running for {} (pid {}) at http://127.0.0.1:{}/ — use that one, or stop it first",
            dir.display(),
            d.pid,
            d.port
        );
    }
    let timeout = Duration::from_secs(args.timeout);
    let interval = Duration::from_secs(args.interval);
    let (home, setup_passphrase) = match settings::open_or_wait(dir, secrets)? {
        settings::Opened::Home(home) => {
            let mut home = *home;
            home.enable_cache(args.memory_budget.saturating_mul(1024 * 1024));
            (Some(home), None)
        }
        settings::Opened::NotSetUp(known) => (None, known),
    };
    let looped = match &home {
        Some(home) => sync_loop::prepare(home, timeout, interval)?,
        None => None,
    };
    let sync = OnceLock::new();
    let parts = match looped {
        Some((handle, parts)) => {
            let _ = sync.set(Arc::new(handle));
            Some(parts)
        }
        None => None,
    };
    let set_up = home.is_some();
    let canonical = discovery::canonical(dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind((
            std::net::Ipv4Addr::LOCALHOST,
            args.port.unwrap_or(0),
        )))
        .with_context(|| match args.port {
            Some(p) => format!("cannot listen on 127.0.0.1:{p}: choose another --port"),
            None => "cannot listen on 127.0.0.1".to_owned(),
        })?;
    let port = listener.local_addr()?.port();
    let app = App(Arc::new(Inner {
        dir: canonical.clone(),
        home: Mutex::new(home),
        setup_passphrase: Mutex::new(setup_passphrase),
        set_up: std::sync::atomic::AtomicBool::new(set_up),
        enrolling: std::sync::atomic::AtomicBool::new(false),
        timeout,
        interval,
        secrets: secrets.clone(),
        secret: guard::new_secret(),
        csrf: guard::new_secret(),
        port,
        last_used: Mutex::new(Instant::now()),
        sync,
        shutdown: tokio::sync::Notify::new(),
        search: Mutex::new(None),
    }));
    // Listened for from now on: a signal right after the address is printed
    // stops the service cleanly (it would otherwise end the process outright).
    let signals = {
        let _in_runtime = rt.enter();
        StopSignals::listen()
    };
    discovery::write(
        dir,
        &discovery::Discovery {
            format: discovery::FORMAT.into(),
            pid: std::process::id(),
            port,
            secret: app.secret().to_owned(),
            home: canonical,
            started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
    )?;
    let url = format!("http://127.0.0.1:{port}/login?k={}", app.secret());
    output::line(&format!("minqing app: {url}"))?;
    output::line("Ctrl-C stops it; while it runs, `minqing` commands for this home go through it")?;
    if !set_up {
        output::line(
            "this laptop is not set up yet: open the address above and upload the enrolment file from the county on 设置",
        )?;
    }
    if let Some(parts) = parts {
        sync_loop::spawn(&app, parts)?;
    }
    rt.spawn(compact_when_quiet(app.clone()));
    if !args.no_browser {
        open_browser(&url);
    }
    let stopping = app.clone();
    let served = rt.block_on(async {
        axum::serve(listener, router(app.clone()))
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = shutdown_signal(signals) => {}
                    _ = stopping.0.shutdown.notified() => {
                        output::err("minqing app: stopping: this laptop was wiped on the relay operator's order");
                    }
                }
            })
            .await
    });
    // The sync loop stops (a pass in progress is dropped between frames).
    if let Some(s) = app.sync() {
        s.stop();
    }
    // Every command that was running has finished (graceful shutdown); take
    // the store lock one last time and flush.
    let flushed = match lock(&app.0.home).as_ref() {
        Some(home) => home.store.flush(),
        None => Ok(()),
    };
    discovery::remove(dir);
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    served.context("the web server failed")?;
    flushed.context("cannot flush the store at shutdown")?;
    output::line("minqing app stopped; everything is saved")?;
    Ok(ExitCode::SUCCESS)
}

/// How long no command or page may come before deferred compactions run.
const QUIET: Duration = Duration::from_secs(2);

/// Runs the compactions that writes deferred (`Home::compact_later`) once
/// the service has been quiet for [`QUIET`], so that rewriting a village
/// never delays the cadre's next command (docs/store.md, "Compaction").
async fn compact_when_quiet(app: App) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if lock(&app.0.last_used).elapsed() < QUIET {
            continue;
        }
        let a = app.clone();
        let ran = tokio::task::spawn_blocking(move || {
            if let Some(home) = lock(&a.0.home).as_ref()
                && home.has_pending_compaction()
            {
                home.compact_pending();
            }
        })
        .await;
        if let Err(e) = ran {
            tracing::warn!("a deferred compaction failed unexpectedly: {e}");
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM. A second signal ends the process at once.
/// SIGINT (Ctrl-C) and SIGTERM, registered once (in the runtime) so that
/// none is missed between the start and the wait for them.
struct StopSignals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn listen() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for {name}: {e}");
                None
            }
        };
        StopSignals {
            int: listen(SignalKind::interrupt(), "SIGINT"),
            term: listen(SignalKind::terminate(), "SIGTERM"),
        }
    }
}

async fn shutdown_signal(signals: StopSignals) {
    async fn recv(s: Option<tokio::signal::unix::Signal>) {
        match s {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    tokio::select! {
        _ = recv(signals.int) => {}
        _ = recv(signals.term) => {}
    }
    output::err("minqing app: stopping (saving everything)…");
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        output::err("minqing app: stopped at once by a second signal");
        std::process::exit(130);
    });
}

/// Opens `url` in the cadre's browser: `$BROWSER` if set, else `xdg-open` if
/// present. Failure is not an error: the address was printed.
fn open_browser(url: &str) {
    let program = std::env::var_os("BROWSER")
        .filter(|b| !b.is_empty())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("xdg-open"))
                    .find(|p| p.is_file())
                    .map(|p| p.into_os_string())
            })
        });
    let Some(program) = program else {
        return;
    };
    let spawned = std::process::Command::new(&program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        output::err(&format!(
            "note: cannot open the browser ({}): {e}; open the address above",
            std::path::Path::new(&program).display()
        ));
    }
}
