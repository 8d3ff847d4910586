//! The local service's fences (docs/app.md, "Safety of the local service"):
//! Host and Origin checks, the per-launch secret (cookie or bearer), the CSRF
//! token of form posts, and the security headers every answer carries.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use super::App;

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new random secret: 32 bytes as 64 hex digits.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The name of the secret cookie: per port, so that the services of two homes
/// open in one browser do not overwrite each other's cookie.
pub fn cookie_name(port: u16) -> String {
    format!("minqing_{port}")
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether `host` is this service's own name: `127.0.0.1:PORT` or `localhost:PORT`.
fn host_ok(host: &str, port: u16) -> bool {
    host == format!("127.0.0.1:{port}") || host == format!("localhost:{port}")
}

/// Whether `origin` is this service's own origin.
fn origin_ok(origin: &str, port: u16) -> bool {
    origin == format!("http://127.0.0.1:{port}") || origin == format!("http://localhost:{port}")
}

/// A refusal: status and a short Chinese page saying what to do.
fn refuse(status: StatusCode, why: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>拒绝访问</title>\
         <h1>拒绝访问</h1><p>{why}</p>\
         <p>请打开 <code>minqing app</code> 启动时显示的链接。</p></html>"
    );
    (status, Html(body)).into_response()
}

/// Whether the request carries the secret: the cookie, or `Authorization: Bearer`.
fn has_secret(app: &App, headers: &HeaderMap) -> bool {
    let secret = app.secret();
    if let Some(v) = cookie(headers, &cookie_name(app.port()))
        && same_secret(v, secret)
    {
        return true;
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|v| same_secret(v.trim(), secret))
}

/// Middleware in front of every route: Host (421), Origin (403), then the
/// secret (403) except on `/login`; then the security headers on the answer.
pub async fn fence(State(app): State<App>, req: Request, next: Next) -> Response {
    let port = app.port();
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !host_ok(host, port) {
        return with_headers(refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "这个地址不是本机的 minqing 服务（Host 不符）。",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origin.to_str().is_ok_and(|o| origin_ok(o, port))
    {
        return with_headers(refuse(
            StatusCode::FORBIDDEN,
            "来自其他网站的请求被拒绝（Origin 不符）。",
        ));
    }
    if req.uri().path() != "/login" && !has_secret(&app, headers) {
        return with_headers(refuse(StatusCode::FORBIDDEN, "缺少本次启动的访问密钥。"));
    }
    let is_form_post = req.method() == Method::POST && !req.uri().path().starts_with("/api/");
    if !is_form_post {
        return with_headers(next.run(req).await);
    }
    // Every form post carries the CSRF token: in an `X-CSRF-Token` header, a
    // `csrf` query parameter (multipart uploads put it in the form's action)
    // or the urlencoded body's `csrf` field. Checked here, so that no page
    // can forget it.
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return with_headers(refuse(StatusCode::PAYLOAD_TOO_LARGE, "提交的内容太大。"));
        }
    };
    let token = csrf_header(&parts.headers)
        .or_else(|| field(parts.uri.query().unwrap_or(""), "csrf"))
        .or_else(|| {
            let urlencoded = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            urlencoded
                .then(|| std::str::from_utf8(&bytes).ok())
                .flatten()
                .and_then(|b| field(b, "csrf"))
        });
    if let Err(resp) = check_csrf(&app, token.as_deref().unwrap_or("")) {
        return with_headers(*resp);
    }
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    with_headers(next.run(req).await)
}

/// Largest request body taken (a register upload).
pub const MAX_BODY: usize = 32 << 20;

/// The `X-CSRF-Token` header (scripts on our pages).
fn csrf_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The value of `name` in an urlencoded `a=1&b=2` string.
fn field(encoded: &str, name: &str) -> Option<String> {
    url_form(encoded)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Decodes an `application/x-www-form-urlencoded` string (malformed escapes
/// are kept as they are; never panics).
fn url_form(encoded: &str) -> Vec<(String, String)> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'+' {
                out.push(b' ');
            } else if b == b'%'
                && let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                )
            {
                out.push(h << 4 | l);
                i += 2;
            } else {
                out.push(b);
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    encoded
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Adds the security headers (docs/app.md) to an answer.
pub fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
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
    // Not `no-referrer`: under it Chromium sends `Origin: null` with the
    // pages' own form posts, which the Origin check refuses.
    set(h, "referrer-policy", "same-origin");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    resp
}

/// `/login?k=SECRET`: sets the secret cookie and sends the browser to `/`.
#[derive(serde::Deserialize)]
pub struct LoginQuery {
    k: Option<String>,
}

/// The `/login` handler (the URL `minqing app` opens).
pub async fn login(State(app): State<App>, Query(q): Query<LoginQuery>) -> Response {
    match q.k {
        Some(k) if same_secret(&k, app.secret()) => {
            let cookie = format!(
                "{}={}; HttpOnly; SameSite=Strict; Path=/",
                cookie_name(app.port()),
                app.secret()
            );
            let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        _ => refuse(StatusCode::FORBIDDEN, "访问密钥不对。"),
    }
}

/// Checks the CSRF token a form posted (its hidden `csrf` field): `Err` is the
/// 403 answer to return.
pub fn check_csrf(app: &App, token: &str) -> Result<(), Box<Response>> {
    if same_secret(token, app.csrf()) {
        Ok(())
    } else {
        Err(Box::new(refuse(
            StatusCode::FORBIDDEN,
            "表单已过期或来自别处（CSRF 校验失败）：请刷新页面后重试。",
        )))
    }
}

/// The hidden form field every page form carries.
pub fn csrf_field(app: &App) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        app.csrf()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins() {
        assert!(host_ok("127.0.0.1:8080", 8080));
        assert!(host_ok("localhost:8080", 8080));
        assert!(!host_ok("evil.example:8080", 8080));
        assert!(!host_ok("127.0.0.1:8081", 8080));
        assert!(!host_ok("127.0.0.1", 8080));
        assert!(origin_ok("http://127.0.0.1:8080", 8080));
        assert!(!origin_ok("http://evil.example:8080", 8080));
        assert!(!origin_ok("null", 8080));
    }

    #[test]
    fn secrets_compare_whole() {
        let s = new_secret();
        assert_eq!(s.len(), 64);
        assert!(same_secret(&s, &s.clone()));
        assert!(!same_secret(&s, &s[..63]));
        assert!(!same_secret(&s, &new_secret()));
    }

    #[test]
    fn form_fields_decode_without_panicking() {
        assert_eq!(
            field("a=1&csrf=ab%20c+d", "csrf").as_deref(),
            Some("ab c d")
        );
        assert_eq!(field("csrf=%E6%9D%8E", "csrf").as_deref(), Some("李"));
        assert_eq!(field("x=%E6%9D%&csrf=%", "csrf").as_deref(), Some("%"));
        assert_eq!(field("x=李%李", "x").as_deref(), Some("李%李"));
        assert_eq!(field("", "csrf"), None);
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; minqing_9=abc; b=2"),
        );
        assert_eq!(cookie(&h, "minqing_9"), Some("abc"));
        assert_eq!(cookie(&h, "minqing_8"), None);
    }
}
