//! 设置 (docs/app.md, "Before enrolment"): the service on a home that is not
//! set up yet, and enrolling it from the page.
//!
//! On such a home `minqing app` asks for nothing at the terminal: it listens,
//! writes its discovery file and serves only 设置 (every other page redirects
//! there; a CLI command is answered with what to do). The cadre uploads the
//! operator's enrolment file and chooses the passphrase; the service runs
//! the same code as `minqing init --bundle` (`cmd::sync::init_bundle`, with
//! the upload and the typed passphrase instead of a path and the terminal),
//! then opens the home as it would at start and starts the background sync,
//! whose first pass brings the villages assigned.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minqing_store::secret::Passphrase;
use minqing_web::settings::{PassphraseAsk, RelayInfo, SettingsView};
use minqing_web::{Ctx, Notice, routes};

use super::{App, lock, sync_loop};
use crate::cmd::sync::{self as cmd_sync, BundleFrom, PassFrom};
use crate::home::{self, Home, Secrets};
use crate::output;

/// Largest enrolment form (the bundle is at most 1 MiB).
const MAX_ENROL_BODY: usize = 2 << 20;

/// What `minqing app` found at start.
pub enum Opened {
    /// A set-up home, unlocked and open.
    Home(Box<Home>),
    /// A home not set up yet (nothing there, or an enrolment whose first
    /// contact did not succeed): the service waits on 设置. The passphrase
    /// is the one the home's keyring already takes, when known.
    NotSetUp(Option<Passphrase>),
}

/// Opens the home for the service, or finds that it must wait for enrolment.
/// A relay's home, a wiped one or one with a store but no keyring is refused
/// as every command refuses it.
pub fn open_or_wait(dir: &Path, secrets: &Secrets) -> anyhow::Result<Opened> {
    home::refuse_relay_home(dir)?;
    let sdir = home::store_dir(dir);
    if !minqing_store::keyring::has_keyring(&sdir) {
        let has_files = std::fs::read_dir(&sdir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if has_files {
            // Wiped, or made before encryption at rest: said as `init` says it.
            home::check_unlockable_pub(dir)?;
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the home {}", dir.display()))?;
        return Ok(Opened::NotSetUp(None));
    }
    home::check_unlockable_pub(dir)?;
    // Unlocked as every command is: by the key cache, else the passphrase
    // (kept for an unfinished enrolment; after a cached key 设置 asks for it).
    let (passphrase, (keyring, key)) = match home::unlock_cached(dir) {
        Some(unlocked) => (None, unlocked),
        None => {
            let passphrase = secrets.passphrase(dir)?;
            let unlocked = home::unlock_with(dir, &passphrase)?;
            (Some(passphrase), unlocked)
        }
    };
    match Home::open_unlocked(dir, keyring, key) {
        Ok(h) => Ok(Opened::Home(Box::new(h))),
        Err(e) if e.is::<home::EnrolPending>() => Ok(Opened::NotSetUp(passphrase)),
        Err(e) => Err(e),
    }
}

/// Before enrolment every page but 设置 (and the login, the API, the
/// assets) answers with a redirect to 设置.
pub async fn gate(State(app): State<App>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let always = path == "/login"
        || path.starts_with("/api/")
        || path.starts_with("/assets/")
        || path == routes::SETTINGS
        || path == routes::SETTINGS_ENROL;
    if always || app.is_set_up() {
        return next.run(req).await;
    }
    Redirect::to(routes::SETTINGS).into_response()
}

/// `/settings`, `/settings/enrol`.
pub fn routes() -> Router<App> {
    Router::new().route(routes::SETTINGS, get(settings)).route(
        routes::SETTINGS_ENROL,
        post(enrol).layer(DefaultBodyLimit::max(MAX_ENROL_BODY)),
    )
}

/// The enrolment form, with `notice` on top.
fn enrol_form(app: &App, notice: Option<Notice>) -> String {
    let ask = if lock(&app.0.setup_passphrase).is_some() {
        PassphraseAsk::Known
    } else if minqing_store::keyring::has_keyring(&home::store_dir(app.dir())) {
        PassphraseAsk::Existing
    } else {
        PassphraseAsk::New
    };
    let ctx = Ctx {
        cadre: "（未登记）",
        csrf: app.csrf(),
        today: home::today(),
        notice,
    };
    minqing_web::settings::enrol_page(&ctx, ask)
}

/// `GET /settings`: the enrolment form before enrolment; afterwards this
/// laptop, its relay and what is done at the terminal.
async fn settings(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    if !app.is_set_up() {
        return Html(enrol_form(&app, None)).into_response();
    }
    let notice = minqing_web::forms::Form::parse(q.as_deref().unwrap_or(""))
        .value("done")
        .and_then(Notice::done);
    app.page(move |view| settings_html(view.home, view.app, notice))
        .await
}

/// 设置 of a set-up home (the store lock is held by the caller).
fn settings_html(home: &Home, app: &App, notice: Option<Notice>) -> anyhow::Result<String> {
    let relay = match home.store.meta_get(cmd_sync::BUNDLE_KEY)? {
        Some(_) => {
            let (b, _) = cmd_sync::stored_bundle(&*home.store)?;
            Some(RelayInfo {
                name: b.relay_name,
                addr: b.relay_addr,
                villages: b.villages,
            })
        }
        None => None,
    };
    let held = home
        .villages()?
        .iter()
        .map(|v| (v.id().to_string(), v.view().name))
        .collect();
    let s = SettingsView {
        device_id: home.device.device_id.clone(),
        team: home.device.team.clone(),
        relay,
        held,
        home: home.dir.display().to_string(),
    };
    let ctx = Ctx {
        cadre: &home.device.cadre,
        csrf: app.csrf(),
        today: home::today(),
        notice,
    };
    Ok(minqing_web::settings::settings_page(&ctx, &s))
}

/// What the cadre posted on the enrolment form.
#[derive(Default)]
struct Posted {
    bundle: Option<(String, Vec<u8>)>,
    passphrase: Option<Passphrase>,
    again: Option<Passphrase>,
}

async fn read_form(mut parts: Multipart) -> Result<Posted, String> {
    let mut posted = Posted::default();
    loop {
        let field = match parts.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(posted),
            Err(e) => return Err(format!("bad upload: {e}")),
        };
        match field.name() {
            Some("bundle") => {
                let name = field.file_name().unwrap_or("登记文件").to_owned();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| format!("bad upload: {e}"))?;
                posted.bundle = Some((name, bytes.to_vec()));
            }
            Some(which @ ("passphrase" | "passphrase2")) => {
                let is_first = which == "passphrase";
                let text = field.text().await.map_err(|e| format!("bad upload: {e}"))?;
                let p = (!text.is_empty()).then(|| Passphrase::new(text));
                if is_first {
                    posted.passphrase = p;
                } else {
                    posted.again = p;
                }
            }
            _ => {}
        }
    }
}

/// Clears the "enrolling" flag however the enrolment ends.
struct Enrolling(App);

impl Drop for Enrolling {
    fn drop(&mut self) {
        self.0.0.enrolling.store(false, Ordering::SeqCst);
    }
}

/// How an enrolment run on its own thread ended.
struct Ended {
    /// The home, open, or what went wrong (in the CLI's words).
    home: Result<Home, String>,
    /// The passphrase used (kept in memory for the next try when the home's
    /// keyring takes it).
    passphrase: Passphrase,
    /// Whether it was refused as the wrong passphrase.
    wrong_passphrase: bool,
}

/// `POST /settings/enrol`: enrols this laptop with the uploaded bundle (the
/// CSRF token was checked by the fence). Success: 303 to 同步, where the
/// first sync shows. Refusal: the form again (422) with the reason in
/// Chinese; nothing of the refused bundle is left behind (as with `init
/// --bundle`), the passphrase is never shown back.
async fn enrol(State(app): State<App>, parts: Multipart) -> Response {
    if app.sync().is_some() {
        // Enrolled already (twice-clicked, or another tab).
        return Redirect::to(routes::SETTINGS).into_response();
    }
    if app.is_set_up() {
        return join(app, parts).await;
    }
    let again = |app: &App, text: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(enrol_form(app, Some(Notice::error(text)))),
        )
            .into_response()
    };
    let posted = match read_form(parts).await {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let Some((name, bytes)) = posted.bundle.filter(|(_, b)| !b.is_empty()) else {
        return again(&app, "请选择县里发给你的登记文件。".into());
    };
    if app.0.enrolling.swap(true, Ordering::SeqCst) {
        return again(&app, "正在登记，请稍候再刷新本页。".into());
    }
    let enrolling = Enrolling(app.clone());
    let dir = app.dir().to_path_buf();
    let existed = minqing_store::keyring::has_keyring(&home::store_dir(&dir));
    let known = lock(&app.0.setup_passphrase).take();
    let passphrase = match (known, posted.passphrase) {
        (Some(k), _) => k,
        (None, Some(p)) => {
            if !existed && posted.again.as_ref().map(Passphrase::as_bytes) != Some(p.as_bytes()) {
                return again(
                    &app,
                    "两次输入的密码不一样，没有做任何更改：请重新输入。".into(),
                );
            }
            p
        }
        (None, None) => {
            return again(
                &app,
                if existed {
                    "请输入本机密码（上次登记时设置的）。".into()
                } else {
                    "请设置本机密码（至少 8 个字符），并再输一次。".into()
                },
            );
        }
    };
    let timeout = app.0.timeout.as_secs();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The first contact blocks (its own runtime, up to the timeout): it runs
    // on a thread of its own, and nothing holds the store lock meanwhile
    // (there is no open home yet).
    let spawned = std::thread::Builder::new()
        .name("minqing-enrol".into())
        .spawn(move || {
            let from = BundleFrom::Upload {
                name: &name,
                bytes: &bytes,
            };
            let (result, captured) = output::capture(|| {
                cmd_sync::init_bundle(&dir, &from, timeout, &PassFrom::Given(&passphrase))
            });
            let mut wrong_passphrase = false;
            let home = match result {
                Ok(code) if code == ExitCode::SUCCESS => {
                    Home::open_with(&dir, Some(&passphrase)).map_err(|e| format!("{e:#}"))
                }
                Ok(_) => Err(captured.stderr),
                Err(e) => {
                    wrong_passphrase = e.is::<home::Locked>();
                    Err(format!("{e:#}"))
                }
            };
            let _ = tx.send(Ended {
                home,
                passphrase,
                wrong_passphrase,
            });
        });
    if let Err(e) = spawned {
        return super::pages::error_page(
            &anyhow::Error::new(e).context("cannot start the enrolment"),
        );
    }
    let Ok(ended) = rx.await else {
        return super::pages::error_page(&anyhow::anyhow!("the enrolment stopped unexpectedly"));
    };
    let answer = match ended.home {
        Ok(home) => match install(&app, home) {
            Ok(()) => {
                tracing::info!("this laptop was enrolled from the 设置 page");
                Redirect::to(&format!("{}?done=enrolled", routes::SYNC)).into_response()
            }
            Err(e) => super::pages::error_page(&e),
        },
        Err(text) => {
            // Kept for the next try only if the home's keyring now takes it
            // (a first contact that did not reach the relay leaves the
            // enrolment pending, as `init --bundle` does).
            if !ended.wrong_passphrase
                && minqing_store::keyring::has_keyring(&home::store_dir(app.dir()))
            {
                *lock(&app.0.setup_passphrase) = Some(ended.passphrase);
            }
            // The words name no resident; the cadre's name is not logged.
            tracing::info!("an enrolment from the 设置 page did not finish");
            again(&app, minqing_web::zh::message(&text))
        }
    };
    drop(enrolling);
    answer
}

/// A home set up standalone joins the relay of the uploaded file, its
/// villages kept: the steps of `minqing enroll --bundle` on the home the
/// service holds (the store lock is taken for the checks and for recording
/// the enrolment, not while the relay is awaited). Then the background sync
/// starts; its first pass offers the villages to the relay.
async fn join(app: App, parts: Multipart) -> Response {
    async fn again(app: &App, text: String) -> Response {
        let a = app.clone();
        let html = app
            .with_home(move |home, _| settings_html(home, &a, Some(Notice::error(text))))
            .await;
        match html {
            Ok(Ok(html)) => (StatusCode::UNPROCESSABLE_ENTITY, Html(html)).into_response(),
            Ok(Err(e)) | Err(e) => super::pages::error_page(&e),
        }
    }
    let posted = match read_form(parts).await {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let Some((name, bytes)) = posted.bundle.filter(|(_, b)| !b.is_empty()) else {
        return again(&app, "请选择县里发给你的登记文件。".into()).await;
    };
    if app.0.enrolling.swap(true, Ordering::SeqCst) {
        return again(&app, "正在登记，请稍候再刷新本页。".into()).await;
    }
    let enrolling = Enrolling(app.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let worker = app.clone();
    let spawned = std::thread::Builder::new()
        .name("minqing-enrol".into())
        .spawn(move || {
            let _ = tx.send(output::capture(|| join_blocking(&worker, &name, &bytes)));
        });
    if let Err(e) = spawned {
        return super::pages::error_page(
            &anyhow::Error::new(e).context("cannot start the enrolment"),
        );
    }
    let Ok((result, captured)) = rx.await else {
        return super::pages::error_page(&anyhow::anyhow!("the enrolment stopped unexpectedly"));
    };
    let answer = match result {
        Ok(code) if code == ExitCode::SUCCESS => {
            tracing::info!("this laptop joined its relay from the 设置 page");
            Redirect::to(&format!("{}?done=enrolled", routes::SYNC)).into_response()
        }
        Ok(_) => again(&app, minqing_web::zh::message(&captured.stderr)).await,
        Err(e) => again(&app, minqing_web::zh::error(&*e)).await,
    };
    drop(enrolling);
    answer
}

/// The blocking part of [`join`], on its own thread.
fn join_blocking(app: &App, name: &str, bytes: &[u8]) -> anyhow::Result<ExitCode> {
    let not_set_up = || anyhow::Error::new(super::NotSetUp { port: app.port() });
    let (bundle, escrow) = cmd_sync::read_bundle_and_escrow(&BundleFrom::Upload { name, bytes })?;
    let key_pem = {
        let home = lock(&app.0.home);
        cmd_sync::enroll_begin(home.as_ref().ok_or_else(not_set_up)?, &bundle)?
    };
    let timeout = app.0.timeout.as_secs();
    let identity = match cmd_sync::first_contact(&bundle, &key_pem, timeout)? {
        Ok(i) => i,
        Err(e) => {
            if e.is_trust_failure() {
                let home = lock(&app.0.home);
                cmd_sync::forget_pending(&*home.as_ref().ok_or_else(not_set_up)?.store)?;
            }
            return cmd_sync::contact_failed(&bundle, e, true);
        }
    };
    let looped = {
        let mut guard = lock(&app.0.home);
        let home = guard.as_mut().ok_or_else(not_set_up)?;
        cmd_sync::enroll_finish(
            &home.dir,
            &*home.store,
            &home.key,
            &bundle,
            &identity,
            escrow.as_ref(),
        )?;
        // The keyring now holds the escrow slot too (the sync's `removed/`
        // copies are sealed to the relay's key).
        home.keyring = minqing_store::keyring::Keyring::load(&home::store_dir(&home.dir))?;
        sync_loop::prepare(home, app.0.timeout, app.0.interval)?
    };
    if let Some((handle, parts)) = looped
        && app.0.sync.set(Arc::new(handle)).is_ok()
    {
        sync_loop::spawn(app, parts)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes `home` the service's open home and starts its background sync, as
/// `minqing app` does at start for a set-up home.
fn install(app: &App, home: Home) -> anyhow::Result<()> {
    let looped = sync_loop::prepare(&home, app.0.timeout, app.0.interval)?;
    *lock(&app.0.home) = Some(home);
    app.0.set_up.store(true, Ordering::SeqCst);
    if let Some((handle, parts)) = looped
        && app.0.sync.set(Arc::new(handle)).is_ok()
    {
        sync_loop::spawn(app, parts)?;
    }
    Ok(())
}
