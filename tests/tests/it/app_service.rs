//! `minqing app` as a running process (docs/app.md): its background sync
//! keeps working with the relay stopped and delivers what was written
//! meanwhile once the relay is back, without a click; and the CLI, the sync
//! and a browser session all write at once through the service, none fails
//! and nothing is lost; the service unlocks through the key cache as every
//! command does.

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minqing_e2e::{
    ForgetCachedKey, Home, KEY_CACHE_ON, Relay, key_cache_available, passphrase_file_with,
    send_signal, store_id,
};
use minqing_store::keycache;

/// A running `minqing app` for a home, killed when dropped.
pub struct AppProc {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The per-launch secret (from the login URL it printed).
    pub secret: String,
    log: Arc<Mutex<String>>,
}

impl AppProc {
    /// Starts `minqing app --no-browser ARGS` on `home` and waits (up to
    /// 60 s) for the address it prints.
    pub fn start(home: &Home, args: &[&str]) -> AppProc {
        AppProc::start_env(home, &[], args)
    }

    /// [`AppProc::start`] with extra environment variables.
    pub fn start_env(home: &Home, env: &[(&str, &str)], args: &[&str]) -> AppProc {
        let mut all = vec!["app", "--no-browser"];
        all.extend_from_slice(args);
        let mut child = home
            .minqing_command(&all)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("minqing app starts");
        let log: Arc<Mutex<String>> = Default::default();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        for (stream, tx) in [
            (Box::new(stdout) as Box<dyn Read + Send>, Some(tx)),
            (Box::new(stderr), None),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let (Some(tx), Some(url)) = (&tx, line.strip_prefix("minqing app: ")) {
                        let _ = tx.send(url.to_owned());
                    }
                    let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "minqing app did not print its address:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        // http://127.0.0.1:PORT/login?k=SECRET
        let rest = url
            .strip_prefix("http://127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected address {url}"));
        let (port, secret) = rest
            .split_once("/login?k=")
            .unwrap_or_else(|| panic!("unexpected address {url}"));
        AppProc {
            child,
            port: port.parse().expect("a port"),
            secret: secret.to_owned(),
            log,
        }
    }

    /// What it printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// SIGTERM; waits up to 30 s. Whether it exited 0.
    pub fn stop(mut self) -> bool {
        send_signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// One HTTP/1.1 exchange with the service: status, head, body.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        http(self.port, method, path, headers, body)
    }

    /// `GET /api/v1/sync` with the secret, parsed.
    pub fn sync_view(&self) -> serde_json::Value {
        let auth = format!("Bearer {}", self.secret);
        let (status, _, body) = self.http("GET", "/api/v1/sync", &[("Authorization", &auth)], b"");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("the sync view is JSON")
    }
}

impl Drop for AppProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (Connection: close).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the service listens");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("the service answers");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16)
            .expect("a chunk size");
        b = &b[eol + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
    out
}

/// Polls `check` every 250 ms for up to `limit`; whether it became true.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Visit ids of `village` that `home` holds (through its service if one runs).
pub fn visit_ids(home: &Home, village: &str) -> BTreeSet<String> {
    home.minqing(&["visit", "list", "--village", village, "--json"])
        .json()
        .as_array()
        .expect("visit list --json is an array")
        .iter()
        .map(|v| v["id"].as_str().expect("a visit has an id").to_owned())
        .collect()
}

fn visit(home: &Home, household: &str, note: &str) -> String {
    home.minqing(&[
        "visit",
        "log",
        "--household",
        household,
        "--kind",
        "普遍走访",
        "--note",
        note,
    ])
    .id()
}

/// `status --json` of a home whose service runs: the background sync's state.
fn background(home: &Home) -> serde_json::Value {
    let s = home.minqing(&["status", "--json"]).json();
    assert!(
        s["background"].is_object(),
        "status through the service shows the background sync: {s}"
    );
    s
}

fn pending(status: &serde_json::Value, village: &str) -> u64 {
    status["villages"]
        .as_array()
        .expect("villages")
        .iter()
        .find(|v| v["id"] == village)
        .and_then(|v| v["pending_changes"].as_u64())
        .unwrap_or_else(|| panic!("village {village} in {status}"))
}

/// A serving relay with village V1 and two laptops on it (王芳's id and home,
/// then 赵六's home), each synced once.
fn two_laptops() -> (Relay, String, Home, Home) {
    let mut relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    let (wid, w) = relay.laptop("王芳", "V1");
    let (_, t) = relay.laptop("赵六", "V1");
    relay.start();
    w.minqing(&["sync", "--timeout", "5"]).ok();
    t.minqing(&["sync", "--timeout", "5"]).ok();
    (relay, wid, w, t)
}

/// Adds the household the tests log visits for in V1; its id.
fn household(home: &Home) -> String {
    home.minqing(&[
        "household",
        "add",
        "--village",
        "V1",
        "--address",
        "小河村三组12号",
    ])
    .id()
}

#[test]
fn app_syncs_in_the_background_offline_and_when_the_relay_returns() {
    let (mut relay, _, w, t) = two_laptops();

    let app = AppProc::start(&w, &["--interval", "2", "--timeout", "2"]);
    // Commands now go through the service; a write is synced without a click.
    let h = household(&w);
    let online = visit(&w, &h, "王芳：入户走访。");
    assert!(
        eventually(Duration::from_secs(60), || {
            t.minqing(&["sync", "--timeout", "5"]).ok();
            visit_ids(&t, "V1").contains(&online)
        }),
        "a visit logged through the service reaches the relay by itself\n{}",
        app.log()
    );
    assert!(
        eventually(Duration::from_secs(30), || {
            let s = background(&w);
            s["background"]["online"] == true && pending(&s, "V1") == 0
        }),
        "the sync state says online, nothing pending: {}",
        background(&w)
    );

    // Relay stopped: the app keeps working, and says it is offline with work pending.
    assert!(relay.stop());
    let mut offline = BTreeSet::new();
    for i in 0..3 {
        offline.insert(visit(&w, &h, &format!("王芳：中继停机时的第{i}条记录。")));
    }
    assert!(visit_ids(&w, "V1").is_superset(&offline));
    assert!(
        eventually(Duration::from_secs(60), || {
            background(&w)["background"]["online"] == false
        }),
        "the sync state turns offline: {}",
        background(&w)
    );
    let s = background(&w);
    assert!(
        pending(&s, "V1") >= 3,
        "three visits are not yet at the county: {s}"
    );
    // The app held a ticket: its pass went as 0-RTT to a relay that never
    // answered, which reads as unreachable, not as a relay gone silent.
    assert!(
        s["background"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("is unreachable")),
        "{s}"
    );
    let view = app.sync_view();
    assert_eq!(view["enrolled"], true);
    assert_eq!(view["villages"][0]["id"], "V1");
    assert_eq!(view["villages"][0]["name"], "小河村");
    assert!(view["villages"][0]["pending_changes"].as_u64() >= Some(3));
    // The 同步 page says the same, in Chinese, per village.
    let browser = Browser::login(&app);
    let (status, page) = browser.get("/sync");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("离线"), "{page}");
    assert!(page.contains("小河村"), "{page}");
    let pending_shown = format!("{} 条", view["villages"][0]["pending_changes"]);
    assert!(page.contains(&pending_shown), "{pending_shown}: {page}");

    // Relay back: the work reaches it (and the other laptop) without a click.
    relay.start();
    assert!(
        eventually(Duration::from_secs(120), || {
            t.minqing(&["sync", "--timeout", "5"]).ok();
            visit_ids(&t, "V1").is_superset(&offline)
        }),
        "the visits logged offline arrive at the relay once it is back\n{}",
        app.log()
    );
    assert!(
        eventually(Duration::from_secs(30), || {
            let s = background(&w);
            s["background"]["online"] == true && pending(&s, "V1") == 0
        }),
        "the sync state says online again, nothing pending: {}",
        background(&w)
    );
    // The 同步 page's button: a pass now, then back to the page.
    let csrf = browser.csrf("/sync");
    let (status, to) = browser.post_form("/sync", &[("csrf", &csrf)]);
    assert_eq!((status, to.as_str()), (303, "/sync?done=sync"));
    let (_, page) = browser.get("/sync");
    assert!(page.contains("已连接县里"), "{page}");
    assert!(page.contains("无（已同步到县里）"), "{page}");
    // `minqing sync` through the service: a pass now, printed as sync prints it.
    let out = w.minqing(&["sync"]).ok();
    assert!(out.contains("V1\tin sync"), "{out}");
    let out = w.minqing(&["sync", "--watch"]).ok();
    assert!(out.contains("already syncs"), "{out}");

    assert!(app.stop(), "minqing app stops cleanly on SIGTERM");
    assert!(!w.path().join("app.json").exists());
    // Without the service, the CLI works on the store itself: all is there.
    let all = visit_ids(&w, "V1");
    assert!(all.contains(&online) && all.is_superset(&offline));
    assert!(relay.stop());
}

/// A browser session with the service: the cookie from the login link.
pub struct Browser {
    port: u16,
    cookie: String,
}

impl Browser {
    /// Opens the login link as the browser does; keeps the cookie it sets.
    pub fn login(app: &AppProc) -> Browser {
        let (status, head, _) = app.http("GET", &format!("/login?k={}", app.secret), &[], b"");
        assert_eq!(status, 303, "{head}");
        let cookie = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("set-cookie")
                    .then(|| v.trim().split(';').next().unwrap_or("").to_owned())
            })
            .unwrap_or_else(|| panic!("the login sets a cookie: {head}"));
        Browser {
            port: app.port,
            cookie,
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A page, as the browser asks for it.
    pub fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = http(self.port, "GET", path, &[("Cookie", &self.cookie)], b"");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The CSRF token of the page's forms (the hidden `csrf` field, or in
    /// the action of a multipart form).
    pub fn csrf(&self, page: &str) -> String {
        let (status, html) = self.get(page);
        assert_eq!(status, 200, "{html}");
        let (at, mark) = ["name=\"csrf\" value=\"", "?csrf="]
            .iter()
            .find_map(|m| html.find(m).map(|at| (at, *m)))
            .unwrap_or_else(|| panic!("{page} has a form with the CSRF token: {html}"));
        let rest = &html[at + mark.len()..];
        rest[..rest.find('"').expect("a closed attribute")].to_owned()
    }

    /// Posts a form as the browser does (urlencoded, same origin, the cookie);
    /// the status and the `Location` of the answer.
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let origin = self.origin();
        let (status, head, body) = http(
            self.port,
            "POST",
            path,
            &[
                ("Cookie", &self.cookie),
                ("Origin", &origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        );
        let location = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("location")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        (status, location)
    }
}

impl Browser {
    /// Posts a `multipart/form-data` form as the browser does (same origin,
    /// the cookie): `(name, file name for a file, content)`. The status and
    /// the `Location` of the answer, or its body.
    fn post_multipart(&self, path: &str, fields: &[(&str, Option<&str>, &[u8])]) -> (u16, String) {
        const BOUNDARY: &str = "----minqing-e2e-4f1c9a";
        let mut body = Vec::new();
        for (name, file, content) in fields {
            body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            match file {
                Some(f) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let origin = self.origin();
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        let (status, head, body) = http(
            self.port,
            "POST",
            path,
            &[
                ("Cookie", &self.cookie),
                ("Origin", &origin),
                ("Content-Type", &content_type),
            ],
            &body,
        );
        let location = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("location")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        (status, location)
    }

    /// Posts the 设置 page's enrolment form.
    fn enrol(&self, bundle: &[u8], passphrase: &str, again: &str) -> (u16, String) {
        let csrf = self.csrf("/settings");
        self.post_multipart(
            &format!("/settings/enrol?csrf={csrf}"),
            &[
                ("bundle", Some("王芳的登记文件.json"), bundle),
                ("passphrase", None, passphrase.as_bytes()),
                ("passphrase2", None, again.as_bytes()),
            ],
        )
    }
}

/// Every file under `dir` holds none of `needle`'s bytes.
fn nowhere_in(dir: &std::path::Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    entries.flatten().all(|e| {
        let p = e.path();
        if p.is_dir() {
            nowhere_in(&p, needle)
        } else {
            std::fs::read(&p).map_or(true, |b| !b.windows(needle.len()).any(|w| w == needle))
        }
    })
}

/// The last sync of `village` in the service's sync view, if any.
fn village_last_sync(app: &AppProc, village: &str) -> Option<String> {
    app.sync_view()["villages"]
        .as_array()?
        .iter()
        .find(|v| v["id"] == village)?["last_sync"]
        .as_str()
        .map(str::to_owned)
}

/// A SIGTERM as soon as the address is printed stops the service cleanly
/// (exit 0, everything saved): the signals are listened for before the
/// address goes out (before, such a signal ended the process at once).
#[test]
fn a_stop_right_after_start_is_clean() {
    let home = Home::new();
    home.init("张三");
    for _ in 0..3 {
        let app = AppProc::start(&home, &["--interval", "60"]);
        let log = app.log();
        assert!(app.stop(), "minqing app did not exit 0:\n{log}");
    }
}

#[test]
fn an_empty_laptop_enrols_on_settings_and_a_used_file_is_refused() {
    let mut relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    let (device, bundle) = relay.enroll("王芳", "V1");
    let bundle = std::fs::read(bundle).expect("the bundle was written");
    relay.start();

    // An empty home: the app starts and shows only 设置.
    let home = Home::new();
    let app = AppProc::start(&home, &["--interval", "60", "--timeout", "3"]);
    let browser = Browser::login(&app);
    let (status, _) = browser.get("/");
    assert_eq!(status, 303, "before enrolment every page leads to 设置");
    let (status, page) = browser.get("/settings");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("登记本机") && page.contains("再输一次密码"),
        "{page}"
    );
    let err = home.minqing(&["village", "list"]).fails(1);
    assert!(
        err.contains("not set up yet") && err.contains("/settings"),
        "{err}"
    );

    // Two different passphrases: refused in Chinese, nothing written.
    let pass = minqing_e2e::TEST_PASSPHRASE;
    let (status, page) = browser.enrol(&bundle, pass, "另一个 passphrase");
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("两次输入的密码不一样"), "{page}");
    assert!(
        !home.path().join("store").exists(),
        "a refused enrolment wrote"
    );

    // Enrolled: to 同步, and the background sync's first pass brings V1.
    let (status, to) = browser.enrol(&bundle, pass, pass);
    assert_eq!(
        (status, to.as_str()),
        (303, "/sync?done=enrolled"),
        "{}",
        app.log()
    );
    assert!(
        eventually(Duration::from_secs(60), || village_last_sync(&app, "V1")
            .is_some()),
        "the first sync after enrolment: {}\n{}",
        app.sync_view(),
        app.log()
    );
    let who = home.minqing(&["whoami", "--json"]).json();
    assert_eq!(who["device_id"], device.as_str());
    assert_eq!(who["cadre"], "王芳");
    let villages = home.minqing(&["village", "list", "--json"]).json();
    assert_eq!(villages[0]["name"], "小河村", "{villages}");
    let (_, page) = browser.get("/settings");
    assert!(page.contains("县中继") && page.contains(&device), "{page}");
    assert!(
        page.contains("minqing passwd") && page.contains("minqing backup"),
        "{page}"
    );
    let before = village_last_sync(&app, "V1");
    // The passphrase is in nothing the app printed, nor in any file of the home.
    assert!(!app.log().contains(pass), "{}", app.log());
    assert!(app.stop(), "minqing app stops cleanly on SIGTERM");
    assert!(nowhere_in(home.path(), pass.as_bytes()));

    // The same file on another empty laptop: refused as `init --bundle`
    // refuses it, in Chinese; nothing written there.
    let other = Home::new();
    let app2 = AppProc::start(&other, &["--timeout", "3"]);
    let b2 = Browser::login(&app2);
    let (status, page) = b2.enrol(&bundle, pass, pass);
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("这个登记文件已经在另一台电脑上用过了"),
        "{page}"
    );
    assert!(!page.contains("already used"), "{page}");
    assert!(
        !other.path().join("store").exists(),
        "a refused bundle left a store"
    );
    assert!(app2.stop());

    // 同步's last sync per village survives a restart (the relay is down now:
    // this launch cannot sync, yet it knows when V1 was last in sync).
    assert!(relay.stop());
    let app = AppProc::start(&home, &["--interval", "60", "--timeout", "2"]);
    assert_eq!(village_last_sync(&app, "V1"), before, "{}", app.sync_view());
    let (_, page) = Browser::login(&app).get("/sync");
    assert!(page.contains("小河村"), "{page}");
    assert!(app.stop());
}

#[test]
fn a_standalone_laptop_joins_its_relay_on_settings_its_villages_kept() {
    let solo = Home::new();
    let solo_id = solo.init("张伟");
    solo.minqing(&["village", "add", "--id", "V1", "--name", "小河村"])
        .ok();
    let h = solo
        .minqing(&[
            "household",
            "add",
            "--village",
            "V1",
            "--address",
            "小河村三组5号",
        ])
        .id();
    visit(&solo, &h, "单机时记录的走访。");
    let mut relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    relay.start();
    let p = |b: &std::path::Path| b.to_str().expect("temporary paths are UTF-8").to_owned();
    let (_, wrong) = relay.enroll("王芳", "V1");
    let bundle = relay.dir_path().join("solo.bundle");
    relay
        .run(&[
            "enroll",
            "--cadre",
            "张伟",
            "--villages",
            "V1",
            "--device-id",
            &solo_id,
            "--out",
            &p(&bundle),
        ])
        .ok();

    let app = AppProc::start(&solo, &["--interval", "60", "--timeout", "3"]);
    let browser = Browser::login(&app);
    let (status, page) = browser.get("/settings");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("未加入（单机使用）") && page.contains("登记本机"),
        "{page}"
    );
    assert!(
        !page.contains("type=\"password\""),
        "the home is open: no passphrase asked"
    );
    // A file made for another device: refused (the CLI's check), in Chinese.
    let wrong = std::fs::read(wrong).unwrap();
    let csrf = browser.csrf("/settings");
    let (status, page) = browser.post_multipart(
        &format!("/settings/enrol?csrf={csrf}"),
        &[("bundle", Some("wrong.json"), &wrong)],
    );
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("这个登记文件是给另一台电脑做的"), "{page}");
    assert!(
        page.contains(&solo_id),
        "the refusal names this laptop's device: {page}"
    );
    assert!(app.sync_view()["enrolled"] == false);
    // Its own file: joined, and the first pass takes its village's work to the relay.
    let bytes = std::fs::read(&bundle).unwrap();
    let (status, to) = browser.post_multipart(
        &format!("/settings/enrol?csrf={csrf}"),
        &[("bundle", Some("solo.bundle"), &bytes)],
    );
    assert_eq!(
        (status, to.as_str()),
        (303, "/sync?done=enrolled"),
        "{}",
        app.log()
    );
    let (_, teammate) = relay.laptop("王芳", "V1");
    assert!(
        eventually(Duration::from_secs(60), || {
            teammate.minqing(&["sync", "--timeout", "5"]).ok();
            visit_notes(&teammate, "V1").contains("单机时记录的走访。")
        }),
        "the standalone laptop's work reached the relay after joining on 设置\n{}",
        app.log()
    );
    let (_, page) = browser.get("/settings");
    assert!(
        page.contains("县中继") && !page.contains("未加入"),
        "{page}"
    );
    assert!(app.stop());
    assert!(relay.stop());
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every visit note of `village` that `home` holds.
fn visit_notes(home: &Home, village: &str) -> BTreeSet<String> {
    home.minqing(&["visit", "list", "--village", village, "--json"])
        .json()
        .as_array()
        .expect("visit list --json is an array")
        .iter()
        .map(|v| v["note"].as_str().expect("a visit has a note").to_owned())
        .collect()
}

#[test]
fn cli_and_app_at_once_none_fails_none_is_lost() {
    let mut relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    let (_, w) = relay.laptop("王芳", "V1");
    let (_, t) = relay.laptop("赵六", "V1");
    relay.start();
    w.minqing(&["sync", "--timeout", "5"]).ok();
    let h = household(&w);
    let r = w
        .minqing(&[
            "resident",
            "add",
            "--household",
            &h,
            "--name",
            "李秀英",
            "--tag",
            "独居老人,老党员",
        ])
        .id();

    let app = AppProc::start(&w, &["--interval", "1", "--timeout", "5"]);
    let browser = Browser::login(&app);
    let written: Mutex<Vec<String>> = Default::default();
    let failures: Mutex<Vec<String>> = Default::default();
    let commands = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        // Two terminals, 100 commands each: half writes, half reads.
        for term in 0..2 {
            let (w, h, r) = (&w, &h, &r);
            let (written, failures, commands) = (&written, &failures, &commands);
            s.spawn(move || {
                for i in 0..100 {
                    let note = format!("终端{term}第{i}条：入户走访。");
                    let run = match i % 4 {
                        0 => w.minqing(&[
                            "visit",
                            "log",
                            "--household",
                            h,
                            "--kind",
                            "普遍走访",
                            "--note",
                            &note,
                        ]),
                        2 => w.minqing(&[
                            "visit",
                            "log",
                            "--household",
                            h,
                            "--resident",
                            "李秀英",
                            "--kind",
                            "重点走访",
                            "--note",
                            &note,
                        ]),
                        1 => w.minqing(&["visit", "list", "--village", "V1", "--json"]),
                        _ => match i % 3 {
                            0 => w.minqing(&["resident", "show", r, "--json"]),
                            1 => w.minqing(&["status", "--json"]),
                            _ => w.minqing(&["report", "monthly", "--month", "2025-01", "--json"]),
                        },
                    };
                    commands.fetch_add(1, Ordering::SeqCst);
                    if run.status.success() {
                        if i % 2 == 0 {
                            written.lock().unwrap().push(note);
                        }
                    } else {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{}: {}\n{}", run.cmdline, run.status, run.stderr));
                    }
                }
            });
        }
        // A browser session writes too, through the same service.
        {
            let (browser, h, written, failures) = (&browser, &h, &written, &failures);
            s.spawn(move || {
                for i in 0..40 {
                    let (status, page) = browser.get("/");
                    if status != 200 {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("GET / {status}: {page}"));
                    }
                    // 记民情日记 for the household: the form, then its post.
                    let csrf = browser.csrf(&format!("/visit/new?household={h}"));
                    let note = format!("浏览器第{i}条：电话回访。");
                    let (status, to) = browser.post_form(
                        "/visits",
                        &[
                            ("csrf", &csrf),
                            ("household", h),
                            ("kind", "普遍走访"),
                            ("note", &note),
                        ],
                    );
                    if status == 303 {
                        written.lock().unwrap().push(note);
                    } else {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("browser post {status}: {to}"));
                    }
                }
            });
        }
        // Meanwhile another laptop syncs with the relay, pulling what arrives.
        {
            let t = &t;
            let commands = &commands;
            s.spawn(move || {
                while commands.load(Ordering::SeqCst) < 200 {
                    t.minqing(&["sync", "--timeout", "5"]);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(commands.into_inner(), 200);
    let written: BTreeSet<String> = written.into_inner().unwrap().into_iter().collect();
    assert_eq!(written.len(), 100 + 40, "every write was counted once");

    // On the laptop (through the service): every one is there.
    let here = visit_notes(&w, "V1");
    let missing: Vec<_> = written.difference(&here).collect();
    assert!(missing.is_empty(), "lost on the laptop: {missing:?}");
    // At the relay (seen by the other laptop): every one arrives, with no click.
    assert!(
        eventually(Duration::from_secs(120), || {
            t.minqing(&["sync", "--timeout", "5"]).ok();
            visit_notes(&t, "V1").is_superset(&written)
        }),
        "not at the relay: {:?}\n{}",
        written
            .difference(&visit_notes(&t, "V1"))
            .collect::<Vec<_>>(),
        app.log()
    );
    assert!(app.stop(), "minqing app stops cleanly");
    // And on disk, read without the service.
    assert!(visit_notes(&w, "V1").is_superset(&written));
    assert!(relay.stop());
}

/// Sync lines of the relay's audit for `device`: (detail, whether the
/// session was resumed with its first flight as 0-RTT data).
fn sync_lines(relay: &Relay, device: &str) -> Vec<(String, bool)> {
    relay
        .audit()
        .into_iter()
        .filter(|l| l["kind"] == "sync" && l["device_id"] == device)
        .map(|l| {
            let detail = l["detail"].as_str().unwrap_or("").to_owned();
            let early = detail.contains("0-RTT");
            (detail, early)
        })
        .collect()
}

#[test]
fn app_resumes_its_tls_session_and_sends_its_first_flight_as_0rtt() {
    let (mut relay, wid, w, t) = two_laptops();
    // A one-shot `minqing sync` asks for no ticket and resumes nothing.
    let one_shot = sync_lines(&relay, &wid);
    assert_eq!(one_shot.len(), 1, "{one_shot:?}");
    assert!(!one_shot[0].1, "{one_shot:?}");

    // Passes only after writes (and at start): the long interval keeps the
    // timer out of the way.
    let app = AppProc::start(&w, &["--interval", "600", "--timeout", "5"]);
    let passes = || background(&w)["background"]["passes"].as_u64().unwrap_or(0);
    assert!(
        eventually(Duration::from_secs(30), || passes() >= 1),
        "{}",
        app.log()
    );
    let h = household(&w);
    let mut notes = BTreeSet::new();
    for i in 0..3 {
        let before = passes();
        notes.insert(visit(&w, &h, &format!("王芳：第{i}次入户走访。")));
        assert!(
            eventually(Duration::from_secs(30), || passes() > before),
            "a write makes a pass: {}\n{}",
            background(&w),
            app.log()
        );
    }
    assert!(
        eventually(Duration::from_secs(30), || pending(&background(&w), "V1")
            == 0),
        "the app synced its writes: {}",
        background(&w)
    );
    // Every pass after the app's first resumes with the ticket the one
    // before it received, its first flight (Hello and the changes) as 0-RTT
    // data the relay took.
    let s = background(&w)["background"].clone();
    let (made, early) = (s["passes"].as_u64(), s["zero_rtt_passes"].as_u64());
    assert!(
        early >= Some(3) && early.zip(made).is_some_and(|(e, p)| e + 1 == p),
        "every pass but the first went as 0-RTT: {s}"
    );
    assert!(
        eventually(Duration::from_secs(30), || {
            t.minqing(&["sync", "--timeout", "5"]).ok();
            visit_ids(&t, "V1").is_superset(&notes)
        }),
        "what went as 0-RTT data is at the relay"
    );
    // The relay says the same: its sync lines for this laptop are resumed ones.
    let lines = sync_lines(&relay, &wid);
    let resumed = lines.iter().filter(|(_, e)| *e).count() as u64;
    assert!(resumed >= 3, "{lines:?}");

    // The relay restarts with an empty ticket cache: the laptop's next 0-RTT
    // flight is rejected, goes again on the established connection, and the
    // pass succeeds at its first attempt.
    assert!(relay.stop());
    relay.start();
    let before = background(&w)["background"].clone();
    let count = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let again = visit(&w, &h, "王芳：中继重启之后的走访。");
    assert!(
        eventually(Duration::from_secs(30), || passes()
            > count(&before, "passes")),
        "{}\n{}",
        background(&w),
        app.log()
    );
    let after = background(&w)["background"].clone();
    assert_eq!(
        count(&after, "attempts"),
        count(&before, "attempts") + 1,
        "one attempt, no failure: {before} → {after}"
    );
    assert_eq!(
        count(&after, "zero_rtt_passes"),
        count(&before, "zero_rtt_passes"),
        "the rejected early data is not counted: {after}"
    );
    assert!(
        eventually(Duration::from_secs(30), || {
            t.minqing(&["sync", "--timeout", "5"]).ok();
            visit_ids(&t, "V1").contains(&again)
        }),
        "the flight sent again reached the relay"
    );

    // Revoked while the app holds a ticket: the resumed connection is refused
    // before anything it sent early is read; the relay audits the refusal.
    relay.run(&["revoke", &wid]).ok();
    // `serve` applies a registry change within 1 s (registry::APPLY_BOUND).
    std::thread::sleep(Duration::from_secs(2));
    let late = visit(&w, &h, "王芳：吊销以后写的记录，不得到达县里。");
    assert!(
        eventually(Duration::from_secs(60), || {
            background(&w)["background"]["refused"] == true
        }),
        "the app is refused: {}\n{}",
        background(&w),
        app.log()
    );
    t.minqing(&["sync", "--timeout", "5"]).ok();
    assert!(
        !visit_ids(&t, "V1").contains(&late),
        "nothing a revoked laptop sent as 0-RTT data reached the relay"
    );
    assert!(app.stop());
    // Refusals are aggregated per interval; the stop writes what is pending.
    assert!(relay.stop());
    assert!(
        relay.audit().iter().any(|l| l["device_id"] == wid.as_str()
            && l["detail"]
                .as_str()
                .is_some_and(|d| d.contains("is revoked") && d.contains("0-RTT data not read"))),
        "the refused resumption is audited: {:?}",
        relay.audit()
    );
}

/// `minqing app` unlocks as every command does (docs/security.md, the key
/// cache): unlocked with the passphrase, it caches the key for the login's
/// next commands; started after a command cached the key, it asks for no
/// passphrase. `minqing lock` while it runs says that the app keeps the home
/// unlocked.
#[test]
fn the_app_unlocks_through_the_key_cache_and_fills_it() {
    if !key_cache_available() {
        return;
    }
    let home = Home::new();
    home.init("张伟");
    let id = store_id(home.path());
    let _forget = ForgetCachedKey(id.clone());
    assert!(!keycache::is_cached(&id));
    let app = AppProc::start_env(&home, &[KEY_CACHE_ON], &[]);
    assert!(keycache::is_cached(&id), "the app did not cache the key");
    let out = home.minqing_env(&[KEY_CACHE_ON], &["lock"]).ok();
    assert!(
        out.contains("minqing app (pid") && out.contains("keeps the home unlocked"),
        "{out}"
    );
    assert!(!keycache::is_cached(&id));
    // As it says: commands still go through the app, with no passphrase.
    home.minqing_without_passphrase(&[KEY_CACHE_ON], &["whoami"])
        .ok();
    assert!(app.stop());

    // A wrong passphrase file would stop the app at start (exit 4): with
    // the key cached by a command it is never read.
    home.minqing_env(&[KEY_CACHE_ON], &["whoami"]).ok();
    let (_g, wrong) = passphrase_file_with("not the passphrase");
    let app = AppProc::start_env(
        &home,
        &[
            KEY_CACHE_ON,
            ("MINQING_PASSPHRASE_FILE", wrong.to_str().unwrap()),
        ],
        &[],
    );
    home.minqing_without_passphrase(&[KEY_CACHE_ON], &["whoami"])
        .ok();
    assert!(app.stop());
    assert!(!home.path().join("store/keyring.throttle").exists());
}
