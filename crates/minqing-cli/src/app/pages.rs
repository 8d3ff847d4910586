//! The web pages' routes. Rendering lives in `minqing-web` (pure functions
//! from model views to HTML); this module only wires them to the service.
//!
//! Adding a page (docs/app.md, "Adding a page"): a handler that calls
//! [`App::page`] with a closure turning a [`View`] into HTML, and one
//! `.route(...)` line in [`routes`]. A form post calls [`App::write`] and
//! saves with `Home::save` before it answers; the CSRF token is checked
//! before any handler runs (`guard::fence`), so forms only embed
//! [`View::csrf_field`].

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use minqing_model::Village;

use super::App;
use crate::home::Home;

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

    /// The hidden `csrf` field to put in every form.
    pub fn csrf_field(&self) -> String {
        super::guard::csrf_field(self.app)
    }
}

/// The page routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(today))
        .route("/assets/{name}", get(asset))
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

/// 今日 (placeholder until minqing-web's page lands): the cadre and villages.
async fn today(State(app): State<App>) -> Response {
    app.page(|view| {
        let villages = view.villages()?;
        let rows: String = villages
            .iter()
            .map(|v| {
                let v = v.view();
                format!(
                    "<li>{} <small>{}</small> · {} 户 · {} 人 · {} 次走访</li>",
                    esc(&v.name),
                    esc(&v.id),
                    v.households,
                    v.residents,
                    v.visits
                )
            })
            .collect();
        Ok(format!(
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
             <title>今日 · 民情</title></head><body><h1>今日</h1>\
             <p>{} · {}</p><h2>村/社区</h2><ul>{rows}</ul></body></html>",
            esc(view.cadre()),
            view.today()
        ))
    })
    .await
}

/// Embedded assets (CSS, JS, icons): none yet; minqing-web will supply them.
async fn asset(Path(name): Path<String>) -> Response {
    let _ = name;
    (StatusCode::NOT_FOUND, "no such asset").into_response()
}

/// A page naming an error (500).
pub fn error_page(e: &anyhow::Error) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>出错了</title>\
         <h1>出错了</h1><p>{}</p><p><a href=\"/\">返回今日</a></p></html>",
        esc(&format!("{e:#}"))
    );
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Html(body),
    )
        .into_response()
}
