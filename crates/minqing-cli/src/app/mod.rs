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

pub mod api;
pub mod client;
pub mod discovery;
pub mod guard;
pub mod pages;
pub mod sync_loop;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

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
    /// sync storage call takes it, one at a time.
    home: Mutex<Home>,
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
    /// The background sync (`None` on a standalone home: no relay).
    sync: Option<sync_loop::Shared>,
    /// Told when the service must stop on its own (the relay ordered a wipe).
    shutdown: tokio::sync::Notify,
}

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
        if let Some(s) = &self.0.sync {
            s.wake();
        }
    }

    /// The background sync, if this home is enrolled with a relay.
    pub fn sync(&self) -> Option<&sync_loop::SyncHandle> {
        self.0.sync.as_deref()
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
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            let home = lock(&app.0.home);
            f(&home, &app.0.secrets)
        })
        .await
        .context("a command of the service failed unexpectedly")
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

/// The router: pages, the local API and assets, behind the fences.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/login", axum::routing::get(guard::login))
        .merge(api::routes())
        .merge(pages::routes())
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
    let mut home = Home::open(dir, secrets)?;
    home.enable_cache(args.memory_budget.saturating_mul(1024 * 1024));
    let looped = sync_loop::prepare(
        &home,
        std::time::Duration::from_secs(args.timeout),
        std::time::Duration::from_secs(args.interval),
    )?;
    let (sync, parts) = match looped {
        Some((handle, parts)) => (Some(Arc::new(handle)), Some(parts)),
        None => (None, None),
    };
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
        secrets: secrets.clone(),
        secret: guard::new_secret(),
        csrf: guard::new_secret(),
        port,
        last_used: Mutex::new(Instant::now()),
        sync,
        shutdown: tokio::sync::Notify::new(),
    }));
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
    if let Some(parts) = parts {
        sync_loop::spawn(&app, parts)?;
    }
    if !args.no_browser {
        open_browser(&url);
    }
    let stopping = app.clone();
    let served = rt.block_on(async {
        axum::serve(listener, router(app.clone()))
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = shutdown_signal() => {}
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
    let flushed = {
        let home = lock(&app.0.home);
        home.store.flush()
    };
    discovery::remove(dir);
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    served.context("the web server failed")?;
    flushed.context("cannot flush the store at shutdown")?;
    output::line("minqing app stopped; everything is saved")?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM. A second signal ends the process at once.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
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
