//! The county console (docs/console.md): a second listener of `serve`,
//! HTTPS with a certificate from the relay's CA, server-rendered pages
//! (`minqing_web::console`) for departments, supervisors and operators.
//!
//! Every request is read whole (bounded) on the async side and answered by
//! [`Console::dispatch`] on the blocking pool: accounts and villages are
//! read there, never on the runtime that moves the laptops' bytes. The
//! fences — session cookie, account still enabled, CSRF token on every post
//! — are checked in `dispatch` before any page or write runs.

pub mod accounts;
mod data;
pub mod departments;
mod pages;
mod session;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::audit::Audit;
use crate::cache::DocCache;
use crate::export::Exporter;
use crate::registry::Home;

pub use data::Villages;

/// Largest request body read, bytes (forms are small).
const MAX_BODY: usize = 64 * 1024;

/// `config.json`'s `console`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleConfig {
    /// Address the console listens on (`127.0.0.1:8443`).
    pub listen: String,
    /// A certificate chain (PEM) the operator supplies instead of one from
    /// the relay's CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Seconds without a request after which a session ends.
    #[serde(default = "default_idle")]
    pub session_idle_secs: u64,
    /// MiB the console's copies of the villages may be counted for between
    /// requests (as the document cache counts them).
    #[serde(default = "default_cache_mib")]
    pub cache_mib: u64,
}

fn default_cache_mib() -> u64 {
    128
}

fn default_idle() -> u64 {
    30 * 60
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            listen: String::new(),
            cert: None,
            key: None,
            session_idle_secs: default_idle(),
            cache_mib: default_cache_mib(),
        }
    }
}

/// What the console shares with the relay it runs in.
pub struct ConsoleDeps {
    /// The relay home.
    pub home: Home,
    /// The console's configuration.
    pub config: ConsoleConfig,
    /// The relay's documents.
    pub host: Arc<DocCache>,
    /// Exports for reports.
    pub exporter: Arc<Exporter>,
    /// The audit writer.
    pub audit: Audit,
    /// The relay's automerge actor.
    pub actor: Vec<u8>,
}

/// A running console: stops when [`ConsoleHandle::stop`] is called.
pub struct ConsoleHandle {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ConsoleHandle {
    /// Stops accepting and waits (bounded) for requests in progress.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// The console's shared state.
pub struct Console {
    home: Home,
    audit: Audit,
    sessions: session::Sessions,
    throttle: session::Throttle,
    villages: Villages,
}

/// Starts the console on the caller's runtime.
pub async fn start(deps: ConsoleDeps, ca: &minqing_net::RelayCa) -> Result<ConsoleHandle> {
    let addr: SocketAddr = deps.config.listen.parse().with_context(|| {
        format!(
            "console address {:?} is not an address like 127.0.0.1:8443",
            deps.config.listen
        )
    })?;
    let (cert_pem, key_pem) = match (&deps.config.cert, &deps.config.key) {
        (Some(c), Some(k)) => (
            std::fs::read_to_string(c).with_context(|| format!("cannot read {}", c.display()))?,
            std::fs::read_to_string(k).with_context(|| format!("cannot read {}", k.display()))?,
        ),
        (None, None) => {
            let issued = ca
                .issue_server(&[addr.ip().to_string()])
                .context("cannot issue the console's certificate")?;
            // The chain: the console's certificate, then the CA's.
            (
                format!("{}{}", issued.cert_pem, ca.cert_pem()),
                issued.key_pem,
            )
        }
        _ => anyhow::bail!(
            "config.json: console.cert and console.key go together: set both, or neither (a certificate from the relay's CA)"
        ),
    };
    let tls = tls::server_config(&cert_pem, &key_pem)?;
    let listener = tls::TlsListener::bind(addr, tls).await?;
    let local = axum::serve::Listener::local_addr(&listener)?;
    let console = Arc::new(Console {
        home: deps.home,
        audit: deps.audit,
        sessions: session::Sessions::new(Duration::from_secs(deps.config.session_idle_secs)),
        throttle: session::Throttle::default(),
        villages: Villages::new(
            deps.host,
            deps.exporter,
            deps.actor,
            usize::try_from(deps.config.cache_mib.saturating_mul(1024 * 1024))
                .unwrap_or(usize::MAX),
        ),
    });
    let router = axum::Router::new().fallback(entry).with_state(console);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("the console stopped: {e}");
        }
    });
    // The line scripts and tests wait for.
    eprintln!("console listening on https://{local}");
    Ok(ConsoleHandle { stop, task })
}

/// A request as `dispatch` sees it.
pub struct Req {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// An answer before it becomes an HTTP response.
pub struct Resp {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    /// Further headers (a download's `Content-Disposition`).
    extra: Vec<(&'static str, String)>,
    location: Option<String>,
    cookies: Vec<String>,
    cache: bool,
}

impl Resp {
    fn html(status: StatusCode, body: String) -> Resp {
        Resp {
            status,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
            extra: Vec::new(),
            location: None,
            cookies: Vec::new(),
            cache: false,
        }
    }

    fn redirect(to: &str) -> Resp {
        Resp {
            location: Some(to.to_owned()),
            ..Resp::html(StatusCode::SEE_OTHER, String::new())
        }
    }

    fn cookie(mut self, c: String) -> Resp {
        self.cookies.push(c);
        self
    }
}

/// Every request: read (bounded), answered on the blocking pool.
async fn entry(State(console): State<Arc<Console>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b.to_vec(),
        Err(_) => {
            return finish(Resp::html(
                StatusCode::PAYLOAD_TOO_LARGE,
                "提交的内容太大。".into(),
            ));
        }
    };
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers,
        body,
    };
    match tokio::task::spawn_blocking(move || console.dispatch(req)).await {
        Ok(resp) => finish(resp),
        Err(e) => {
            tracing::error!("a console request failed: {e}");
            finish(Resp::html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "服务器内部错误，请稍后再试。".into(),
            ))
        }
    }
}

/// The HTTP response, with the security headers every answer carries.
fn finish(r: Resp) -> Response {
    let mut resp = (r.status, r.body).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(r.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(loc) = r.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LOCATION, loc);
    }
    for (name, value) in r.extra {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    for c in r.cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "same-origin");
    set(h, "strict-transport-security", "max-age=31536000");
    if !r.cache {
        set(h, "cache-control", "no-store");
    }
    resp
}
