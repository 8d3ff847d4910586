//! The web pages' routes. Rendering lives in `minqing-web` (pure functions
//! from model views to HTML); this module only wires them to the service.
//!
//! Adding a page (docs/app.md, "Adding a page"): a handler that calls
//! [`App::page`] (or [`render`], when it may answer 404) with a closure
//! turning a [`View`] into HTML, and one `.route(...)` line in [`routes`]. A
//! form post calls [`App::write`] and saves with `Home::save` before it
//! answers; the CSRF token is checked before any handler runs
//! (`guard::fence`), so forms only embed it (`minqing_web::layout::csrf`).

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minqing_model::{Id, ReadVillage, RecordKind, Village};
use minqing_web::forms::{self, Form, village_of};
use minqing_web::{Ctx, Notice, SearchIndex, SyncSummary};

use super::App;
use crate::cmd::sync::{BUNDLE_KEY, LAST_SYNC_KEY};
use crate::home::Home;
use crate::output;

/// Read access to the service's open home while a page renders (the store
/// lock is held).
pub struct View<'a> {
    /// The open home: the device, the cadre, the store.
    pub home: &'a Home,
    /// The service (its CSRF token, port).
    pub app: &'a App,
}

impl View<'_> {
    /// Every village held (one that does not load is left out and named in
    /// the service's log).
    pub fn villages(&self) -> anyhow::Result<Vec<Village>> {
        self.home.villages()
    }

    /// One village, if held.
    pub fn village(&self, id: &str) -> anyhow::Result<Option<Village>> {
        let id = minqing_sync::DocId::new(id)?;
        self.home.village(&id)
    }

    /// The cadre's name.
    pub fn cadre(&self) -> &str {
        &self.home.device.cadre
    }

    /// Today in China Standard Time.
    pub fn today(&self) -> chrono::NaiveDate {
        crate::home::today()
    }

    /// The CSRF token every form carries.
    pub fn csrf(&self) -> &str {
        self.app.csrf()
    }

    /// What every page needs: the cadre, the CSRF token, today (China time),
    /// and the notice a redirect asked for (`?done=CODE`).
    pub fn ctx(&self, notice: Option<Notice>) -> Ctx<'_> {
        page_ctx(self.home, self.app, notice)
    }

    /// The sync state shown on 今日, from what the store records (enrolled
    /// or not, the last successful sync, villages with changes the relay has
    /// not acknowledged).
    pub fn sync_state(&self) -> anyhow::Result<SyncSummary> {
        let mut summary = sync_summary(self.home)?;
        // The background sync knows whether its last attempt reached the relay.
        if let Some(sync) = self.app.sync() {
            let state = sync.state();
            summary.online = state.online;
            summary.last_error = state.last_error;
            if let Some(ms) = state
                .last_sync
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_millis())
            {
                summary.last_sync_ms = Some(summary.last_sync_ms.map_or(ms, |m| m.max(ms)));
            }
        }
        Ok(summary)
    }
}

fn page_ctx<'a>(home: &'a Home, app: &'a App, notice: Option<Notice>) -> Ctx<'a> {
    Ctx {
        cadre: &home.device.cadre,
        csrf: app.csrf(),
        today: crate::home::today(),
        notice,
    }
}

/// The sync state as the store records it. `online` stays unknown here: only
/// a sync loop knows whether its last attempt reached the relay.
pub fn sync_summary(home: &Home) -> anyhow::Result<SyncSummary> {
    let Some(raw) = home.store.meta_get(BUNDLE_KEY)? else {
        return Ok(SyncSummary::default());
    };
    let last_sync_ms = home
        .store
        .meta_get(LAST_SYNC_KEY)?
        .and_then(|b| chrono::DateTime::parse_from_rfc3339(&String::from_utf8_lossy(&b)).ok())
        .map(|t| t.timestamp_millis());
    let relay_name = serde_json::from_slice::<serde_json::Value>(&raw)
        .ok()
        .and_then(|v| v.get("relay_name")?.as_str().map(str::to_owned));
    // Each village's heads from the service's cache (no copy, no load while
    // it is unchanged), against the sync state persisted for the relay.
    let mut pending_villages = 0;
    if let Some(name) = relay_name {
        for id in home.village_ids()? {
            let state = home
                .store
                .sync_state(&name, &id)
                .with_context(|| format!("cannot read the sync state of village {id}"))?;
            let pending = home.inspect(&id, |v| {
                minqing_sync::has_local_changes(v.document(), state.as_deref())
            });
            match pending {
                Ok(Some(true)) => pending_villages += 1,
                Ok(_) => {}
                Err(e) => crate::home::report_unloadable(&id, &e),
            }
        }
    }
    Ok(SyncSummary {
        enrolled: true,
        online: None,
        last_sync_ms,
        pending_villages,
        last_error: None,
    })
}

/// The page routes.
pub fn routes() -> Router<App> {
    use minqing_web::routes as r;
    Router::new()
        .route(r::TODAY, get(today))
        .route(r::VILLAGES, get(villages))
        .route("/village/{id}", get(village))
        .route("/household/{id}", get(household))
        .route(r::SEARCH, get(search))
        .route(r::RESIDENT_NEW, get(resident_new))
        .route(r::RESIDENTS, post(add_resident))
        .route("/resident/{id}", get(resident))
        .route(r::VISIT_NEW, get(visit_new))
        .route(r::VISITS, post(log_visit))
        .route(r::DEMANDS, get(demands).post(open_demand))
        .route(r::DEMAND_NEW, get(demand_new))
        .route("/demand/{id}", get(demand))
        .route("/demand/{id}/step", post(demand_step))
        .route(r::LEAVE, get(leave))
        .route(r::LEAVES, post(add_leave))
        .route(
            r::IMPORT,
            get(import_form)
                .post(import_upload)
                .layer(axum::extract::DefaultBodyLimit::max(super::guard::MAX_BODY)),
        )
        .route(r::IMPORT_CONFIRM, post(import_confirm))
        .route(r::REPORT, get(report))
        .route(r::REPORT_MONTHLY_XLSX, get(monthly_xlsx))
        .route(r::REPORT_LEDGER_XLSX, get(ledger_xlsx))
        .route(r::DIARY, get(diary))
        .route(r::SYNC, get(sync_page).post(sync_now))
        .route("/assets/{name}", get(asset))
}

/// The notice a redirect after a write asked for (`?done=visit`): a fixed
/// text per known code, so nothing from the URL is shown.
fn done(form: &Form) -> Option<Notice> {
    form.value("done").and_then(Notice::done)
}

fn query(q: Option<String>) -> Form {
    Form::parse(q.as_deref().unwrap_or(""))
}

fn refs(villages: &[Village]) -> Vec<&Village> {
    villages.iter().collect()
}

/// A page that may not exist: `render` gets the [`View`] under the store lock
/// and returns the HTML, or `None` for 404.
async fn render(
    app: App,
    render: impl FnOnce(&View<'_>) -> anyhow::Result<Option<String>> + Send + 'static,
) -> Response {
    let a = app.clone();
    let out = app
        .with_home(move |home, _| {
            let view = View { home, app: &a };
            output::capture(|| render(&view)).0
        })
        .await;
    match out {
        Ok(Ok(Some(html))) => Html(html).into_response(),
        Ok(Ok(None)) => not_found(),
        Ok(Err(e)) | Err(e) => error_page(&e),
    }
}

/// A read that answers something other than a page (a download), under the
/// store lock.
async fn read(
    app: App,
    f: impl FnOnce(&Home) -> anyhow::Result<Response> + Send + 'static,
) -> Response {
    match app
        .with_home(move |home, _| output::capture(|| f(home)).0)
        .await
    {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) | Err(e) => error_page(&e),
    }
}

/// 今日.
async fn today(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    app.page(move |view| {
        let villages = view.home.readers()?;
        let sync = view.sync_state()?;
        Ok(minqing_web::today::today_page(
            &view.ctx(done(&form)),
            &villages.iter().collect::<Vec<_>>(),
            &sync,
        ))
    })
    .await
}

/// 同步: the background sync per village (last sync, changes not yet at the
/// county, the last pass's outcome) and a button for a pass now.
async fn sync_page(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    let state = app.sync().map(|s| s.state());
    app.page(move |view| {
        let summary = view.sync_state()?;
        let v = super::sync_loop::view(view.home, state)?;
        let page = minqing_web::sync::SyncPage {
            summary,
            relay_name: v.state.as_ref().map(|s| s.relay_name.clone()),
            syncing: v.state.as_ref().is_some_and(|s| s.syncing),
            villages: v
                .villages
                .into_iter()
                .map(|r| minqing_web::sync::SyncVillage {
                    id: r.id,
                    name: r.name,
                    pending_changes: r.pending_changes,
                    last_sync: r.last_sync,
                    outcome: r.outcome,
                })
                .collect(),
        };
        Ok(minqing_web::sync::sync_page(&view.ctx(done(&form)), &page))
    })
    .await
}

/// `POST /sync`: a pass now (the CSRF token was checked by the fence); back
/// to the 同步 page saying how it went.
async fn sync_now(State(app): State<App>) -> Response {
    let ok = match app.sync() {
        Some(s) => s.sync_now().await.is_some_and(|r| r.code == 0),
        None => false,
    };
    see_other(
        minqing_web::routes::SYNC,
        if ok { "sync" } else { "sync-failed" },
    )
}

/// 村: every village held.
async fn villages(State(app): State<App>) -> Response {
    app.page(|view| {
        let villages = view.home.readers()?;
        Ok(minqing_web::browse::villages_page(
            &view.ctx(None),
            &villages.iter().collect::<Vec<_>>(),
        ))
    })
    .await
}

/// 户: one village's households.
async fn village(
    State(app): State<App>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let form = query(q);
    render(app, move |view| {
        let Ok(Some(v)) = minqing_sync::DocId::new(&id)
            .map_err(anyhow::Error::new)
            .and_then(|id| view.home.reader(&id))
        else {
            return Ok(None);
        };
        Ok(Some(minqing_web::browse::village_page(
            &view.ctx(done(&form)),
            &v,
        )))
    })
    .await
}

/// The village of record `id` of `kind` among `villages`, with the id parsed.
fn holding<'v, V: ReadVillage>(
    villages: &'v [V],
    kind: RecordKind,
    id: &str,
) -> Option<(&'v V, Id)> {
    let id = Id::parse(id).ok()?;
    let i = village_of(&villages.iter().collect::<Vec<_>>(), kind, &id)?;
    Some((&villages[i], id))
}

/// One household: its residents and visits.
async fn household(
    State(app): State<App>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let form = query(q);
    render(app, move |view| {
        let villages = view.home.readers()?;
        let Some((v, id)) = holding(&villages, RecordKind::Household, &id) else {
            return Ok(None);
        };
        Ok(minqing_web::browse::household_page(
            &view.ctx(done(&form)),
            v,
            &id,
        ))
    })
    .await
}

/// 人: search by name, pinyin initials, 身份证号 or phone prefix, address; tag.
async fn search(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    app.page(move |view| {
        let villages = view.home.readers()?;
        let index = view.app.search_index(&villages);
        Ok(minqing_web::browse::search_page(
            &view.ctx(None),
            &index,
            form.get("q").unwrap_or(""),
            form.value("tag"),
        ))
    })
    .await
}

/// A resident's page: the file, the household, visits, demands.
async fn resident(
    State(app): State<App>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let form = query(q);
    render(app, move |view| {
        let villages = view.home.readers()?;
        let Some((v, id)) = holding(&villages, RecordKind::Resident, &id) else {
            return Ok(None);
        };
        // After adding a resident: warn (naming who) when the 身份证号 is
        // already in the village.
        let notice = match form.value("done") {
            Some("resident") => minqing_web::resident::duplicate_notice(v, &id).or(done(&form)),
            _ => done(&form),
        };
        Ok(minqing_web::resident::resident_page(
            &view.ctx(notice),
            v,
            &id,
        ))
    })
    .await
}

/// The form adding a resident to a household.
async fn resident_new(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    render(app, move |view| {
        let villages = view.villages()?;
        let Some(hid) = form.value("household") else {
            return Ok(None);
        };
        let Some((v, _)) = holding(&villages, RecordKind::Household, hid) else {
            return Ok(None);
        };
        Ok(minqing_web::resident::resident_new_page(
            &view.ctx(None),
            v,
            &form,
        ))
    })
    .await
}

/// `POST /residents`: adds a resident, durable before the redirect to the
/// resident's page (which warns when the 身份证号 is already in the village).
async fn add_resident(State(app): State<App>, body: String) -> Response {
    let form = Form::parse(&body);
    let a = app.clone();
    app.write(move |home| {
        let mut villages = home.villages()?;
        let Some(vi) = form
            .value("household")
            .and_then(|h| holding(&villages, RecordKind::Household, h))
            .and_then(|(_, h)| village_of(&refs(&villages), RecordKind::Household, &h))
        else {
            return Ok(not_found());
        };
        let again = |v: &Village, why: String| match minqing_web::resident::resident_new_page(
            &page_ctx(home, &a, Some(Notice::error(why))),
            v,
            &form,
        ) {
            Some(html) => refused(html),
            None => not_found(),
        };
        let new = match forms::resident(&form, crate::home::today()) {
            Ok(n) => n,
            Err(e) => return Ok(again(&villages[vi], e.to_string())),
        };
        let added = villages[vi].add_resident(&mut *crate::home::rng(), &home.author(), &new);
        let id = match added {
            Ok(id) => id,
            Err(e) => {
                return Ok(again(
                    &villages[vi],
                    format!("没有保存：{}", minqing_web::zh::error(&e)),
                ));
            }
        };
        let v = &mut villages[vi];
        home.save(v, "resident").context("saving the resident")?;
        home.compact_later(v.id());
        Ok(see_other(
            &minqing_web::routes::resident(id.as_str()),
            "resident",
        ))
    })
    .await
}

/// 记民情日记: the form (search first, then the visit).
async fn visit_new(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    app.page(move |view| {
        let villages = view.villages()?;
        let refs = refs(&villages);
        let index = SearchIndex::new(&refs);
        Ok(minqing_web::visit::visit_page(
            &view.ctx(done(&form)),
            &refs,
            &index,
            &form,
        ))
    })
    .await
}

/// A form post refused before anything was written: the form again, with
/// what the cadre typed and the reason (422).
fn refused(html: String) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, Html(html)).into_response()
}

/// Where to go after a write: `path?done=CODE` (303, so a reload does not
/// post again).
fn see_other(path: &str, code: &str) -> Response {
    Redirect::to(&format!("{path}?done={code}")).into_response()
}

/// `POST /visits`: logs a visit, durable before the redirect to the
/// resident's (or household's) page.
async fn log_visit(State(app): State<App>, body: String) -> Response {
    let form = Form::parse(&body);
    let a = app.clone();
    app.write(move |home| {
        let mut villages = home.villages()?;
        let again = |villages: &[Village], why: String| {
            let refs = refs(villages);
            let index = SearchIndex::new(&refs);
            refused(minqing_web::visit::visit_page(
                &page_ctx(home, &a, Some(Notice::error(why))),
                &refs,
                &index,
                &form,
            ))
        };
        let new = match forms::visit(&form, crate::home::today()) {
            Ok(n) => n,
            Err(e) => return Ok(again(&villages, e.to_string())),
        };
        let Some(vi) = village_of(&refs(&villages), RecordKind::Household, &new.household) else {
            return Ok(again(&villages, "找不到这一户：请重新查找。".into()));
        };
        let logged = villages[vi].log_visit(&mut *crate::home::rng(), &home.author(), &new);
        if let Err(e) = logged {
            return Ok(again(
                &villages,
                format!("没有保存：{}", minqing_web::zh::error(&e)),
            ));
        }
        let v = &mut villages[vi];
        home.save(v, "visit").context("saving the visit")?;
        home.compact_later(v.id());
        let to = match &new.resident {
            Some(r) => minqing_web::routes::resident(r.as_str()),
            None => minqing_web::routes::household(new.household.as_str()),
        };
        Ok(see_other(&to, "visit"))
    })
    .await
}

/// 诉求: the list, overdue first.
async fn demands(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    app.page(move |view| {
        let villages = view.villages()?;
        Ok(minqing_web::demand::demands_page(
            &view.ctx(done(&form)),
            &refs(&villages),
            &minqing_web::demand::DemandFilter::from_form(&form),
        ))
    })
    .await
}

/// The form to open a demand for a resident.
async fn demand_new(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    render(app, move |view| {
        let villages = view.villages()?;
        Ok(minqing_web::demand::demand_new_page(
            &view.ctx(None),
            &refs(&villages),
            &form,
        ))
    })
    .await
}

/// `POST /demands`: opens a demand (受理), durable before the redirect to its
/// page.
async fn open_demand(State(app): State<App>, body: String) -> Response {
    let form = Form::parse(&body);
    let a = app.clone();
    app.write(move |home| {
        let mut villages = home.villages()?;
        let again = |villages: &[Village], why: String| -> anyhow::Result<Response> {
            let ctx = page_ctx(home, &a, Some(Notice::error(why)));
            match minqing_web::demand::demand_new_page(&ctx, &refs(villages), &form) {
                Some(html) => Ok(refused(html)),
                None => Ok(not_found()),
            }
        };
        let new = match forms::demand(&form) {
            Ok(n) => n,
            Err(e) => return again(&villages, e.to_string()),
        };
        let Some(vi) = village_of(&refs(&villages), RecordKind::Resident, &new.resident) else {
            return Ok(not_found());
        };
        let opened = villages[vi].open_demand(&mut *crate::home::rng(), &home.author(), &new);
        let id = match opened {
            Ok(id) => id,
            Err(e) => {
                return again(
                    &villages,
                    format!("没有保存：{}", minqing_web::zh::error(&e)),
                );
            }
        };
        let v = &mut villages[vi];
        home.save(v, "demand").context("saving the demand")?;
        home.compact_later(v.id());
        Ok(see_other(
            &minqing_web::routes::demand(id.as_str()),
            "demand",
        ))
    })
    .await
}

/// A demand's page: state, timeline, the valid next steps, conflicts.
async fn demand(State(app): State<App>, Path(id): Path<String>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    render(app, move |view| {
        let villages = view.villages()?;
        let Some((v, id)) = holding(&villages, RecordKind::Demand, &id) else {
            return Ok(None);
        };
        Ok(minqing_web::demand::demand_page(
            &view.ctx(done(&form)),
            v,
            &id,
        ))
    })
    .await
}

/// `POST /demand/<id>/step`: one step of the closed loop, checked by the model
/// against the demand's merged state, durable before the redirect.
async fn demand_step(State(app): State<App>, Path(id): Path<String>, body: String) -> Response {
    let form = Form::parse(&body);
    let a = app.clone();
    app.write(move |home| {
        let mut villages = home.villages()?;
        let Some((_, demand)) = holding(&villages, RecordKind::Demand, &id) else {
            return Ok(not_found());
        };
        let vi = village_of(&refs(&villages), RecordKind::Demand, &demand)
            .context("the demand's village")?;
        let again = |v: &Village, why: String| -> Response {
            let ctx = page_ctx(home, &a, Some(Notice::error(why)));
            match minqing_web::demand::demand_page(&ctx, v, &demand) {
                Some(html) => refused(html),
                None => not_found(),
            }
        };
        let step = match forms::step(&form) {
            Ok(s) => s,
            Err(e) => return Ok(again(&villages[vi], e.to_string())),
        };
        let recorded =
            villages[vi].record_step(&mut *crate::home::rng(), &home.author(), &demand, &step);
        if let Err(e) = recorded {
            return Ok(again(
                &villages[vi],
                format!("没有记录：{}", minqing_web::zh::error(&e)),
            ));
        }
        let v = &mut villages[vi];
        home.save(v, "demand step").context("saving the step")?;
        home.compact_later(v.id());
        Ok(see_other(
            &minqing_web::routes::demand(demand.as_str()),
            "step",
        ))
    })
    .await
}

/// 请假/补访: the form and every leave with its 补访 or that one is owed.
async fn leave(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    app.page(move |view| {
        let villages = view.villages()?;
        Ok(minqing_web::leave::leave_page(
            &view.ctx(done(&form)),
            &refs(&villages),
            &form,
        ))
    })
    .await
}

/// `POST /leaves`: records the cadre's leave for a month, durable before the
/// redirect.
async fn add_leave(State(app): State<App>, body: String) -> Response {
    let form = Form::parse(&body);
    let a = app.clone();
    app.write(move |home| {
        let mut villages = home.villages()?;
        let again = |villages: &[Village], why: String| {
            refused(minqing_web::leave::leave_page(
                &page_ctx(home, &a, Some(Notice::error(why))),
                &refs(villages),
                &form,
            ))
        };
        let (month, reason, village) = match forms::leave(&form) {
            Ok(l) => l,
            Err(e) => return Ok(again(&villages, e.to_string())),
        };
        let vi = match village {
            Some(id) => villages.iter().position(|v| v.id().as_str() == id),
            None if villages.len() == 1 => Some(0),
            None => None,
        };
        let Some(vi) = vi else {
            return Ok(again(&villages, "请选择请假所在的村。".into()));
        };
        let added =
            villages[vi].add_leave(&mut *crate::home::rng(), &home.author(), month, &reason);
        if let Err(e) = added {
            return Ok(again(
                &villages,
                format!("没有保存：{}", minqing_web::zh::error(&e)),
            ));
        }
        let v = &mut villages[vi];
        home.save(v, "leave").context("saving the leave")?;
        home.compact_later(v.id());
        Ok(see_other(minqing_web::routes::LEAVE, "leave"))
    })
    .await
}

/// An uploaded register waiting for the cadre's confirmation: its rows are
/// kept in memory only (a register holds personal data; nothing is written
/// to disk before the import), one upload at a time (a new one replaces it).
struct PendingImport {
    token: String,
    village: String,
    file_name: String,
    rows: Vec<minqing_model::RawRow>,
}

static PENDING_IMPORT: std::sync::Mutex<Option<PendingImport>> = std::sync::Mutex::new(None);

fn pending_import() -> std::sync::MutexGuard<'static, Option<PendingImport>> {
    PENDING_IMPORT.lock().unwrap_or_else(|p| p.into_inner())
}

/// 导入户籍: the upload form.
async fn import_form(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    app.page(move |view| {
        let villages = view.villages()?;
        Ok(minqing_web::import::import_page(
            &view.ctx(done(&form)),
            &refs(&villages),
            None,
        ))
    })
    .await
}

/// `POST /import`: reads the uploaded register (in memory), plans the import
/// against the village (a dry run: nothing written) and shows the preview.
async fn import_upload(State(app): State<App>, mut parts: axum::extract::Multipart) -> Response {
    let mut village = None;
    let mut file: Option<(String, Vec<u8>)> = None;
    loop {
        let field = match parts.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("上传的文件没有收全，请重新选择文件上传（{e}）"),
                )
                    .into_response();
            }
        };
        match field.name() {
            Some("village") => village = field.text().await.ok(),
            Some("file") => {
                let name = field.file_name().unwrap_or("upload").to_owned();
                match field.bytes().await {
                    Ok(b) => file = Some((name, b.to_vec())),
                    Err(e) => {
                        return (
                            StatusCode::BAD_REQUEST,
                            format!("上传的文件没有收全，请重新选择文件上传（{e}）"),
                        )
                            .into_response();
                    }
                }
            }
            _ => {}
        }
    }
    let a = app.clone();
    app.write(move |home| {
        let villages = home.villages()?;
        let page = |notice: Notice, preview: Option<&minqing_web::import::Preview<'_>>| {
            minqing_web::import::import_page(
                &page_ctx(home, &a, Some(notice)),
                &refs(&villages),
                preview,
            )
        };
        let Some(vi) = village
            .as_deref()
            .and_then(|id| villages.iter().position(|v| v.id().as_str() == id.trim()))
        else {
            return Ok(refused(page(Notice::error("请选择导入到哪个村。"), None)));
        };
        let Some((file_name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
            return Ok(refused(page(
                Notice::error("请选择要导入的户籍登记表文件。"),
                None,
            )));
        };
        let rows = match minqing_sheet::read_upload(&file_name, &bytes) {
            Ok(r) => r,
            Err(e) => {
                return Ok(refused(page(
                    Notice::error(format!("无法读取：{}", minqing_web::zh::error(&e))),
                    None,
                )));
            }
        };
        let plan = match minqing_model::plan_import(&villages[vi], &rows, crate::home::today()) {
            Ok(p) => p,
            Err(e) => {
                return Ok(refused(page(
                    Notice::error(format!("无法导入：{}", minqing_web::zh::error(&e))),
                    None,
                )));
            }
        };
        let summary = plan.summary();
        let token = super::guard::new_secret();
        let preview = minqing_web::import::Preview {
            file_name: &file_name,
            village: &villages[vi],
            summary: &summary,
            token: &token,
        };
        let html = page(
            Notice::warn("这是预览，还没有导入：核对后点“确认导入”。"),
            Some(&preview),
        );
        *pending_import() = Some(PendingImport {
            token,
            village: villages[vi].id().to_string(),
            file_name,
            rows,
        });
        Ok(Html(html).into_response())
    })
    .await
}

/// `POST /import/confirm`: imports the previewed upload (planned again
/// against the village as it is now), durable before the redirect to the
/// village's page.
async fn import_confirm(State(app): State<App>, body: String) -> Response {
    let form = Form::parse(&body);
    let a = app.clone();
    app.write(move |home| {
        let taken = {
            let mut pending = pending_import();
            match (pending.as_ref(), form.value("token")) {
                (Some(p), Some(t)) if super::guard::same_secret(&p.token, t) => pending.take(),
                _ => None,
            }
        };
        let mut villages = home.villages()?;
        let again = |villages: &[Village], why: &str| {
            refused(minqing_web::import::import_page(
                &page_ctx(home, &a, Some(Notice::error(why))),
                &refs(villages),
                None,
            ))
        };
        let Some(p) = taken else {
            let why = "这次预览已失效（已导入，或有更新的上传）：请重新上传。";
            return Ok(again(&villages, why));
        };
        let Some(vi) = villages.iter().position(|v| v.id().as_str() == p.village) else {
            return Ok(again(&villages, "找不到要导入的村。"));
        };
        let plan = match minqing_model::plan_import(&villages[vi], &p.rows, crate::home::today()) {
            Ok(plan) => plan,
            Err(e) => {
                let why = format!("无法导入 {}：{e}", p.file_name);
                return Ok(again(&villages, &why));
            }
        };
        if plan.is_noop() {
            return Ok(again(&villages, "没有新内容可导入。"));
        }
        let v = &mut villages[vi];
        plan.apply(v, &mut *crate::home::rng(), &home.author())
            .context("the import failed; nothing was saved")?;
        home.save(v, "import").context("saving the import")?;
        home.compact_later(v.id());
        Ok(see_other(
            &minqing_web::routes::village(v.id().as_str()),
            "import",
        ))
    })
    .await
}

/// 报表: the monthly report and the ledger with charts (`?month=YYYY-MM`).
async fn report(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    app.page(move |view| {
        let villages = view.villages()?;
        let month = minqing_web::report::month_or(form.value("month"), view.today());
        Ok(minqing_web::report::report_page(
            &view.ctx(None),
            &refs(&villages),
            month,
        ))
    })
    .await
}

/// The cadre's monthly diary, for printing.
async fn diary(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    app.page(move |view| {
        let villages = view.villages()?;
        let month = minqing_web::report::month_or(form.value("month"), view.today());
        Ok(minqing_web::report::diary_page(
            &view.ctx(None),
            &refs(&villages),
            month,
        ))
    })
    .await
}

/// An `.xlsx` download, made in memory (nothing written to disk).
fn xlsx(name: String, tables: &[minqing_model::Table]) -> anyhow::Result<Response> {
    let bytes = minqing_sheet::xlsx_bytes(tables, &name)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The monthly report as `.xlsx` (`minqing report monthly --xlsx`'s tables).
async fn monthly_xlsx(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let form = query(q);
    read(app, move |home| {
        let villages = home.villages()?;
        let month = minqing_web::report::month_or(form.value("month"), crate::home::today());
        let tables = minqing_web::report::monthly_tables(&refs(&villages), month);
        xlsx(format!("minqing-monthly-{month}.xlsx"), &tables)
    })
    .await
}

/// The demand ledger as `.xlsx` (`minqing report ledger --xlsx`'s tables).
async fn ledger_xlsx(State(app): State<App>) -> Response {
    read(app, move |home| {
        let villages = home.villages()?;
        let today = crate::home::today();
        let tables = minqing_web::report::ledger_tables(&refs(&villages), today);
        xlsx(format!("minqing-ledger-{today}.xlsx"), &tables)
    })
    .await
}

/// Embedded assets (CSS, JS, the icon) from minqing-web; cached for an hour
/// (they change only with the binary).
async fn asset(Path(name): Path<String>) -> Response {
    match minqing_web::assets::asset(&format!("/assets/{name}")) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// 404: no such record on this laptop.
fn not_found() -> Response {
    let body = "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>找不到</title>\
         <h1>找不到</h1><p>本机没有这条记录（可能还没同步到本机）。</p><p><a href=\"/\">返回今日</a></p></html>";
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Html(body),
    )
        .into_response()
}

/// A page naming an error (500).
pub fn error_page(e: &anyhow::Error) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>出错了</title>\
         <h1>出错了</h1><p>{}</p><p><a href=\"/\">返回今日</a></p></html>",
        esc(&minqing_web::zh::error(&**e))
    );
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Html(body),
    )
        .into_response()
}
