//! The county console (docs/console.md) against a real relay process and
//! real laptops, over HTTPS with a small client that trusts only the relay's
//! CA: a cadre transfers a demand offline and syncs; the department logs in,
//! finds it in its inbox, records 办理情况 and 办结; the cadre syncs, sees
//! them, answers the resident and closes the demand. On the way, what no
//! account may do is refused: another department's demand or a resident by
//! URL guessing, a township supervisor outside its township, a viewer acting,
//! a post without the CSRF token, a disabled account, an expired session;
//! ten wrong passwords make the next try wait; numbers stay masked unless a
//! department reveals them, and that view is audited. The supervisors' 督查通报
//! (page and .xlsx) carries `report monthly`'s and `report ledger`'s figures
//! for its scope and no personal number.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use minqing_e2e::{Home, Relay};
use serde_json::Value;

const PASSWORD: &str = "county-console-pw-1";
const ID_CARD: &str = "370811195803151224";
const PHONE: &str = "13812345678";

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    /// The body as sent (a download), when not chunked.
    bytes: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next())
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, v)| *k == name && !v.is_empty())
            .map(|(_, v)| v.to_owned())
    }

    /// The value of the hidden CSRF field of the page's first form.
    fn csrf(&self) -> String {
        let needle = "name=\"csrf\" value=\"";
        let at = self
            .body
            .find(needle)
            .unwrap_or_else(|| panic!("no CSRF field in:\n{}", self.body));
        self.body[at + needle.len()..].chars().take(64).collect()
    }
}

/// A browser as far as the console cares: HTTPS trusting only the relay's
/// CA, and a cookie jar of one session.
struct Browser {
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    session: Option<String>,
}

impl Browser {
    fn new(relay: &Relay, port: u16) -> Browser {
        let ca = std::fs::read(relay.home().join("ca").join("ca.pem")).expect("ca.pem");
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.expect("PEM")).expect("a CA certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Browser {
            port,
            tls: Arc::new(tls),
            session: None,
        }
    }

    fn send(&self, method: &str, path: &str, cookies: &[String], body: &str) -> Answer {
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("an IP name");
        let conn = rustls::ClientConnection::new(self.tls.clone(), name).expect("TLS client");
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).expect("the console accepts");
        tcp.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        if !cookies.is_empty() {
            req.push_str(&format!("Cookie: {}\r\n", cookies.join("; ")));
        }
        if method == "POST" {
            req.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).expect("request sent");
        let mut raw = Vec::new();
        match s.read_to_end(&mut raw) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => panic!("reading the answer to {method} {path}: {e}"),
        }
        let bytes = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|at| raw[at + 4..].to_vec())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Answer {
            status,
            headers,
            body,
            bytes,
        }
    }

    fn cookies(&self) -> Vec<String> {
        self.session
            .iter()
            .map(|s| format!("mq_console={s}"))
            .collect()
    }

    fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &self.cookies(), "")
    }

    fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send("POST", path, &self.cookies(), &body)
    }

    /// Logs in; returns the answer to the login post.
    fn try_login(&mut self, name: &str, password: &str) -> Answer {
        let form = self.send("GET", "/login", &[], "");
        assert_eq!(form.status, 200, "{}", form.body);
        let pre = form
            .cookie("mq_console_login")
            .expect("the login form's cookie");
        let body = format!(
            "csrf={}&name={}&password={}",
            form.csrf(),
            encode(name),
            encode(password)
        );
        let a = self.send(
            "POST",
            "/login",
            &[format!("mq_console_login={pre}")],
            &body,
        );
        if let Some(s) = a.cookie("mq_console") {
            self.session = Some(s);
        }
        a
    }

    fn login(&mut self, name: &str) {
        let a = self.try_login(name, PASSWORD);
        assert_eq!(a.status, 303, "login of {name}: {}", a.body);
        assert!(self.session.is_some());
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn user_add(relay: &Relay, args: &[&str]) {
    let mut cmd = relay.command(&[&["user", "add", "--password-stdin"], args].concat());
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("minqing-relay runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("password written");
    let out = child.wait_with_output().expect("minqing-relay ends");
    assert!(
        out.status.success(),
        "user add {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn id(home: &Home, args: &[&str]) -> String {
    home.minqing(args).id()
}

fn demand_json(home: &Home, demand: &str) -> Value {
    home.minqing(&["demand", "show", demand, "--json"]).json()
}

fn sync(home: &Home) {
    home.minqing(&["sync", "--timeout", "10"]).ok();
}

#[test]
fn console_closes_the_loop_and_refuses_what_an_account_may_not_do() {
    let mut relay = Relay::init("县中继");
    relay
        .run(&[
            "village",
            "add",
            "--id",
            "V1",
            "--name",
            "小河村",
            "--township",
            "城关镇",
        ])
        .ok();
    relay
        .run(&[
            "village",
            "add",
            "--id",
            "V2",
            "--name",
            "大河村",
            "--township",
            "河口镇",
        ])
        .ok();
    relay
        .run(&[
            "department",
            "add",
            "县水务局",
            "--alias",
            "水务局,县水利局",
        ])
        .ok();
    relay.run(&["department", "add", "县住建局"]).ok();
    // A name that is another department's alias is refused (exit 2).
    relay
        .run(&["department", "add", "县住建局", "--alias", "水务局"])
        .fails(2);
    user_add(
        &relay,
        &[
            "shuiwu",
            "--role",
            "department",
            "--department",
            "水务局",
            "--display",
            "张科长",
        ],
    );
    user_add(
        &relay,
        &[
            "zhujian",
            "--role",
            "department",
            "--department",
            "县住建局",
        ],
    );
    user_add(&relay, &["kanban", "--role", "viewer"]);
    user_add(
        &relay,
        &[
            "hekou",
            "--role",
            "supervisor",
            "--scope",
            "township:河口镇",
        ],
    );
    user_add(
        &relay,
        &[
            "ducha",
            "--role",
            "supervisor",
            "--scope",
            "county",
            "--display",
            "督查室",
        ],
    );
    user_add(&relay, &["kanban2", "--role", "viewer"]);
    let list = relay.run(&["user", "list", "--json"]);
    let listed = list.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(6), "{listed}");
    assert_eq!(listed[0]["name"], "ducha");
    let shuiwu = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "shuiwu")
        .unwrap();
    assert_eq!(
        shuiwu["department"], "县水务局",
        "the alias maps to the department"
    );
    assert!(!list.stdout.contains("argon2"), "no hash is listed");
    let accounts = std::fs::read_to_string(relay.home().join("registry/accounts.json")).unwrap();
    assert!(accounts.contains("argon2id$v=19$") && !accounts.contains(PASSWORD));

    let port = free_tcp_port();
    // cache_mib 0: the console keeps no copy between requests (every page
    // reads its villages afresh); the browser test runs with the default.
    let config_path = relay.home().join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["console"] = serde_json::json!({ "listen": format!("127.0.0.1:{port}"), "session_idle_secs": 3, "cache_mib": 0 });
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    relay.start();
    for _ in 0..100 {
        if relay.log().contains("console listening on https://") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        relay
            .log()
            .contains(&format!("console listening on https://127.0.0.1:{port}")),
        "{}",
        relay.log()
    );
    // The cadre: a resident, two demands transferred offline, then a sync.
    let (_, cadre) = relay.laptop("李书记", "V1");
    sync(&cadre);
    let h = id(
        &cadre,
        &[
            "household",
            "add",
            "--village",
            "V1",
            "--address",
            "小河村1组1号",
        ],
    );
    // A second household nobody visits: 李书记 is named in the bulletin.
    id(
        &cadre,
        &[
            "household",
            "add",
            "--village",
            "V1",
            "--address",
            "小河村1组2号",
        ],
    );
    let r = id(
        &cadre,
        &[
            "resident",
            "add",
            "--household",
            &h,
            "--name",
            "张三",
            "--id-card",
            ID_CARD,
            "--phone",
            PHONE,
        ],
    );
    cadre
        .minqing(&[
            "visit",
            "log",
            "--household",
            &h,
            "--resident",
            &r,
            "--kind",
            "普遍走访",
            "--note",
            "了解供水情况",
        ])
        .ok();
    let water = id(
        &cadre,
        &[
            "demand",
            "open",
            "--resident",
            &r,
            "--category",
            "供水",
            "--text",
            "自来水管破裂",
        ],
    );
    let road = id(
        &cadre,
        &[
            "demand",
            "open",
            "--resident",
            &r,
            "--category",
            "住房",
            "--text",
            "危房改造",
        ],
    );
    cadre
        .minqing(&[
            "demand",
            "transfer",
            &water,
            "--to",
            "水务局",
            "--due",
            "2030-01-31",
        ])
        .ok();
    cadre
        .minqing(&["demand", "transfer", &road, "--to", "县住建局"])
        .ok();

    sync(&cadre);

    // Not logged in: every page sends the browser to the login page.
    let mut dept = Browser::new(&relay, port);
    let a = dept.get("/inbox");
    assert_eq!((a.status, a.header("location")), (303, Some("/login")));
    // The department's inbox: its own demand, not the other department's.
    dept.login("shuiwu");
    let inbox = dept.get("/inbox");
    assert_eq!(inbox.status, 200, "{}", inbox.body);
    assert!(
        inbox.body.contains("自来水管破裂") && inbox.body.contains("张三"),
        "{}",
        inbox.body
    );
    assert!(
        !inbox.body.contains("危房改造"),
        "another department's demand is not listed"
    );
    let page = format!("/demand/V1/{water}");
    let shown = dept.get(&page);
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains("3708**********1224") && shown.body.contains("138****5678"));
    assert!(
        !shown.body.contains(ID_CARD) && !shown.body.contains(PHONE),
        "masked by default"
    );
    // URL guessing: the other department's demand, a demand id of another
    // village, an unknown village: the same 404.
    for guess in [
        format!("/demand/V1/{road}"),
        format!("/demand/V2/{water}"),
        format!("/demand/V9/{water}"),
    ] {
        let a = dept.get(&guess);
        assert_eq!(a.status, 404, "{guess}");
        assert!(
            !a.body.contains("张三") && !a.body.contains("3708"),
            "{guess}"
        );
    }
    // A post without the CSRF token, or with another one, writes nothing.
    let step = format!("/demand/V1/{water}/step");
    assert_eq!(
        dept.post(&step, &[("step", "progress"), ("note", "已派人")])
            .status,
        403
    );
    assert_eq!(
        dept.post(
            &step,
            &[
                ("csrf", &"0".repeat(64)),
                ("step", "progress"),
                ("note", "已派人")
            ]
        )
        .status,
        403
    );
    let csrf = shown.csrf();
    let a = dept.post(
        &step,
        &[
            ("csrf", &csrf),
            ("step", "progress"),
            ("note", "已派人勘察"),
        ],
    );
    assert_eq!(a.status, 303, "{}", a.body);
    let a = dept.post(
        &step,
        &[
            ("csrf", &csrf),
            ("step", "done"),
            ("answer", "管道已修复，已恢复供水"),
        ],
    );
    assert_eq!(a.status, 303, "{}", a.body);
    let after = dept.get(&format!("{page}?done=step"));
    assert!(
        after.body.contains("已办结") && after.body.contains("已保存"),
        "{}",
        after.body
    );
    // A second 办结 is refused with the reason, nothing written.
    let again = dept.post(
        &step,
        &[("csrf", &csrf), ("step", "done"), ("answer", "再次办结")],
    );
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("没有保存"));
    // Revealing the numbers: shown once, audited before.
    let revealed = dept.post(&format!("/demand/V1/{water}/reveal"), &[("csrf", &csrf)]);
    assert_eq!(revealed.status, 200);
    assert!(revealed.body.contains(ID_CARD) && revealed.body.contains(PHONE));
    let audit = relay.audit();
    let unmasked: Vec<&Value> = audit
        .iter()
        .filter(|e| e["kind"] == "console_view_unmasked")
        .collect();
    assert_eq!(unmasked.len(), 1, "{audit:?}");
    let detail = unmasked[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("account shuiwu")
            && detail.contains(&r)
            && detail.contains("id_card, phone"),
        "{detail}"
    );
    assert!(
        !detail.contains(ID_CARD) && !detail.contains(PHONE),
        "the audit line holds no number"
    );

    // Another department, a viewer, a township supervisor outside its township.
    let mut other = Browser::new(&relay, port);
    other.login("zhujian");
    assert_eq!(other.get(&page).status, 404);
    let mut viewer = Browser::new(&relay, port);
    viewer.login("kanban");
    assert_eq!(viewer.get("/inbox").status, 404);
    assert_eq!(viewer.get(&page).status, 404);
    let vcsrf = viewer.get("/dashboard").csrf();
    assert_eq!(
        viewer
            .post(
                &step,
                &[("csrf", &vcsrf), ("step", "progress"), ("note", "x")]
            )
            .status,
        404
    );
    let mut sup = Browser::new(&relay, port);
    sup.login("hekou");
    assert_eq!(sup.get(&page).status, 404, "V1 is not in 河口镇");

    // Disabled: out at the next request, and cannot log in again.
    relay.run(&["user", "disable", "zhujian"]).ok();
    let a = other.get("/");
    assert_eq!((a.status, a.header("location")), (303, Some("/login")));
    assert_eq!(
        Browser::new(&relay, port)
            .try_login("zhujian", PASSWORD)
            .status,
        403
    );
    // Ten wrong passwords: the next try waits, even with the right one.
    let mut guesser = Browser::new(&relay, port);
    for i in 0..10 {
        assert_eq!(
            guesser
                .try_login("kanban", &format!("wrong-{i}-password"))
                .status,
            401
        );
    }
    let a = guesser.try_login("kanban", PASSWORD);
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.body.contains("秒后再试"));
    // An idle session expires (session_idle_secs = 3).
    std::thread::sleep(Duration::from_secs(4));
    let a = sup.get("/");
    assert_eq!((a.status, a.header("location")), (303, Some("/login")));

    // The cadre's next sync brings the department's events; the loop closes.
    sync(&cadre);
    let d = demand_json(&cadre, &water);
    assert_eq!(d["status"], "已办结", "{d}");
    let events: Vec<(&str, &str)> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind_name"].as_str().unwrap(),
                e["cadre"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events[2..],
        [("办理情况", "张科长"), ("办结", "张科长")],
        "{d}"
    );
    cadre
        .minqing(&["demand", "feedback", &water, "--text", "已告知群众"])
        .ok();
    cadre
        .minqing(&["demand", "revisit", &water, "--satisfaction", "满意"])
        .ok();
    cadre.minqing(&["demand", "close", &water]).ok();
    sync(&cadre);
    assert_eq!(demand_json(&cadre, &water)["status"], "已销号");
    // The department's inbox no longer lists it; it has no dashboard.
    dept.login("shuiwu");
    assert!(!dept.get("/inbox").body.contains("自来水管破裂"));
    assert_eq!(dept.get("/dashboard").status, 404);

    // A county supervisor: numbers masked and not revealable; 督办 with a
    // new due date on the other demand reaches the cadre.
    let mut county = Browser::new(&relay, port);
    county.login("ducha");
    let road_page = format!("/demand/V1/{road}");
    let shown = county.get(&road_page);
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains("3708**********1224") && !shown.body.contains(ID_CARD));
    assert!(
        !shown.body.contains("显示完整号码"),
        "a supervisor cannot reveal"
    );
    let a = county.post(&format!("{road_page}/reveal"), &[("csrf", &shown.csrf())]);
    assert_eq!(a.status, 404);
    let a = county.post(
        &format!("{road_page}/step"),
        &[
            ("csrf", &shown.csrf()),
            ("step", "supervise"),
            ("note", "请本月内办结"),
            ("due", "2030-02-28"),
        ],
    );
    assert_eq!(a.status, 303, "{}", a.body);
    sync(&cadre);
    let d = demand_json(&cadre, &road);
    assert_eq!(d["due"], "2030-02-28", "{d}");
    assert!(
        d["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind_name"] == "督办" && e["cadre"] == "督查室"),
        "{d}"
    );

    // The dashboard's figures are `report ledger --json`'s (once serve's
    // exports hold the last sync), and its .xlsx downloads.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let report = loop {
        let r = relay.run(&["report", "ledger", "--json"]).json();
        if r["closed"] == 1 && r["collected"] == 2 {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the relay's ledger lags: {r}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    county.login("ducha"); // the wait above outlasts the 3 s idle expiry
    let board = county.get("/dashboard");
    assert_eq!(board.status, 200, "{}", board.body);
    let figure = |id: &str| -> String {
        let needle = format!("id=\"{id}\">");
        let at = board
            .body
            .find(&needle)
            .unwrap_or_else(|| panic!("no #{id}"));
        board.body[at + needle.len()..]
            .split('<')
            .next()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(figure("ledger-collected"), report["collected"].to_string());
    assert_eq!(figure("ledger-closed"), report["closed"].to_string());
    assert_eq!(
        figure("ledger-overdue"),
        report["overdue"].as_array().unwrap().len().to_string()
    );
    let xlsx = county.get("/dashboard/ledger.xlsx");
    assert_eq!(xlsx.status, 200);
    assert!(xlsx.body.starts_with("PK"), "an .xlsx (zip) file");
    // This month's duty, as `report monthly --json` for the month it names.
    let heading = board
        .body
        .split("本月走访（")
        .nth(1)
        .expect("the monthly section");
    let month: String = heading.chars().take(7).collect();
    let monthly = relay
        .run(&["report", "monthly", "--month", &month, "--json"])
        .json();
    let cadres = monthly["cadres"].as_array().expect("cadres");
    assert_eq!(cadres.len(), 1, "{monthly}");
    let row = board
        .body
        .split("<td>李书记</td>")
        .nth(1)
        .expect("李书记's row");
    let first = row
        .split("</td>")
        .next()
        .unwrap_or("")
        .rsplit('>')
        .next()
        .unwrap_or("");
    assert_eq!(first, cadres[0]["visits"].to_string(), "{monthly}");
    assert_eq!(cadres[0]["visits"], 1);
    let monthly_xlsx = county.get("/dashboard/monthly.xlsx");
    assert_eq!(monthly_xlsx.status, 200);
    assert!(monthly_xlsx.body.starts_with("PK"));
    // A viewer sees the dashboard; a township supervisor's counts only its township.
    let mut viewer = Browser::new(&relay, port);
    viewer.login("kanban2");
    assert_eq!(viewer.get("/dashboard").status, 200);
    let mut hk = Browser::new(&relay, port);
    hk.login("hekou");
    let hk_board = hk.get("/dashboard");
    assert!(
        hk_board.body.contains("id=\"ledger-collected\">0<"),
        "{}",
        hk_board.body
    );
    assert!(
        !hk.get("/inbox").body.contains("危房改造"),
        "V1 is not in 河口镇"
    );
    check_bulletin(&relay, port, &month, &monthly);
    relay.stop();
}

/// The text between `id="<id>">` (or any `needle`) and the next `<`.
fn after<'a>(body: &'a str, needle: &str) -> &'a str {
    let at = body
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle} in {body}"));
    body[at + needle.len()..].split('<').next().unwrap_or("")
}

/// The 督查通报 of `month` (the month the test's visits are in): the county
/// supervisor's page and .xlsx carry `report monthly`'s and `report
/// ledger`'s figures for the month and no personal number; a township
/// supervisor's covers its township only; a department has none.
fn check_bulletin(relay: &Relay, port: u16, month: &str, monthly: &Value) {
    let (y, m): (u32, u32) = (
        month[..4].parse().expect("year"),
        month[5..].parse().expect("month"),
    );
    let last = match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let ledger = relay
        .run(&[
            "report",
            "ledger",
            "--from",
            &format!("{month}-01"),
            "--to",
            &format!("{month}-{last}"),
            "--json",
        ])
        .json();
    let cadres = monthly["cadres"].as_array().expect("cadres");
    let sum = |k: &str| -> u64 { cadres.iter().map(|c| c[k].as_u64().expect(k)).sum() };
    let (due, visited) = (sum("households_assigned"), sum("households_visited"));
    let (key_due, key_visited) = (sum("key_residents_assigned"), sum("key_residents_visited"));
    assert_eq!((due, visited), (2, 1), "{monthly}");

    let mut county = Browser::new(relay, port);
    county.login("ducha");
    let board = county.get("/dashboard");
    assert!(
        board.body.contains("href=\"/bulletin\""),
        "linked from the dashboard"
    );
    let page = county.get(&format!("/bulletin?month={month}"));
    assert_eq!(page.status, 200, "{}", page.body);
    let b = &page.body;
    assert!(
        b.contains(&format!("<h1>全县民情走访督查通报（{y}年{m}月）</h1>")),
        "{b}"
    );
    let row = &b[b.find("id=\"coverage-total\"").expect("total row")..];
    assert_eq!(after(row, "data-k=\"due\">"), due.to_string());
    assert_eq!(after(row, "data-k=\"visited\">"), visited.to_string());
    assert_eq!(
        after(row, "data-k=\"key\">"),
        format!("{key_visited}/{key_due}")
    );
    assert!(b.contains("<td>城关镇</td>"), "by township");
    // 李书记 visited 1 of 2 households and took no leave: named.
    let named = &b[b.find("id=\"named\"").expect("the named list")..];
    assert!(
        named.contains("<td>李书记</td><td>小河村</td><td class=\"num\">1/2</td>"),
        "{named}"
    );
    assert!(b.contains("本月没有干部请假。"));
    for (id, key) in [
        ("demands-collected", "collected"),
        ("demands-closed", "closed"),
    ] {
        assert_eq!(after(b, &format!("id=\"{id}\">")), ledger[key].to_string());
    }
    assert_eq!(
        after(b, "id=\"demands-overdue\">"),
        ledger["overdue"]
            .as_array()
            .expect("overdue")
            .len()
            .to_string()
    );
    for (status, n) in ledger["open_by_status"].as_object().expect("by status") {
        assert_eq!(
            after(b, &format!("data-status=\"{status}\">")),
            n.to_string(),
            "{status}"
        );
    }
    // Both demands were opened, and the water one revisited, this month:
    // the month's revisits are the ledger's satisfaction counts.
    for s in ["满意", "基本满意", "不满意"] {
        assert_eq!(
            after(b, &format!("data-sat=\"{s}\">")),
            ledger["satisfaction"][s].to_string(),
            "{s}"
        );
    }
    assert_eq!(after(b, "id=\"revisited\">"), "1");
    assert_eq!(after(b, "id=\"satisfaction-rate\">"), "100%");
    // No personal number, masked or not, and no resident named.
    let no_personal_data = |text: &str, what: &str| {
        for needle in [ID_CARD, PHONE, "3708**********1224", "138****5678", "张三"] {
            assert!(!text.contains(needle), "{what} holds {needle}");
        }
    };
    no_personal_data(b, "the bulletin page");

    // The .xlsx: the same sections and figures.
    let x = county.get(&format!("/bulletin.xlsx?month={month}"));
    assert_eq!(x.status, 200);
    assert!(x.bytes.starts_with(b"PK"), "an .xlsx (zip) file");
    let path = relay.home().join("bulletin.xlsx");
    std::fs::write(&path, &x.bytes).expect("the download is saved");
    let sheets = read_xlsx(&path);
    std::fs::remove_file(&path).ok();
    let names: Vec<&str> = sheets.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "走访覆盖",
            "未按要求走访（点名）",
            "请假",
            "诉求办理",
            "回访满意度"
        ]
    );
    let cov = &sheets[0].1;
    let total = cov.last().expect("合计");
    assert_eq!(total[0], "合计");
    assert_eq!(
        total[1..3],
        [due.to_string(), visited.to_string()],
        "{cov:?}"
    );
    assert_eq!(total[4..6], [key_visited.to_string(), key_due.to_string()]);
    assert_eq!(sheets[1].1[1][..4], ["李书记", "小河村", "1", "2"]);
    assert_eq!(sheets[2].1.len(), 1, "no one on leave: the header only");
    let demands = &sheets[3].1;
    let value = |label: &str| -> String {
        demands
            .iter()
            .find(|r| r[0] == label)
            .unwrap_or_else(|| panic!("no {label} in {demands:?}"))[1]
            .clone()
    };
    assert_eq!(value("本月受理"), ledger["collected"].to_string());
    assert_eq!(value("已销号"), ledger["closed"].to_string());
    assert_eq!(
        value("逾期"),
        ledger["overdue"]
            .as_array()
            .expect("overdue")
            .len()
            .to_string()
    );
    let sat = &sheets[4].1;
    assert_eq!(
        sat[1][..2],
        [
            "满意".to_owned(),
            ledger["satisfaction"]["满意"].to_string()
        ]
    );
    no_personal_data(&format!("{sheets:?}"), "the bulletin .xlsx");

    // A township supervisor: its township's villages only.
    let mut hk = Browser::new(relay, port);
    hk.login("hekou");
    let p = hk.get(&format!("/bulletin?month={month}"));
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(
        p.body
            .contains(&format!("<h1>河口镇民情走访督查通报（{y}年{m}月）</h1>"))
    );
    assert!(p.body.contains("<td>大河村</td>"), "by village");
    for outside in ["小河村", "城关镇", "李书记"] {
        assert!(!p.body.contains(outside), "{outside} is not in 河口镇");
    }
    let row = &p.body[p.body.find("id=\"coverage-total\"").expect("total row")..];
    assert_eq!(after(row, "data-k=\"due\">"), "0");
    assert_eq!(after(&p.body, "id=\"demands-collected\">"), "0");
    // The default month is last month; a bad one is refused.
    assert_eq!(hk.get("/bulletin").status, 200);
    assert_eq!(hk.get("/bulletin?month=2026-13").status, 400);
    // A department has no bulletin.
    let mut dept = Browser::new(relay, port);
    dept.login("shuiwu");
    assert_eq!(dept.get(&format!("/bulletin?month={month}")).status, 404);
    assert_eq!(
        dept.get(&format!("/bulletin.xlsx?month={month}")).status,
        404
    );
}

/// Every sheet of an .xlsx: its name and its rows as text.
fn read_xlsx(path: &std::path::Path) -> Vec<(String, Vec<Vec<String>>)> {
    use calamine::{Reader, open_workbook_auto};
    let mut book = open_workbook_auto(path).expect("an .xlsx calamine reads");
    let names = book.sheet_names().to_vec();
    names
        .into_iter()
        .map(|n| {
            let range = book.worksheet_range(&n).expect("a sheet");
            let rows = range
                .rows()
                .map(|r| r.iter().map(|c| c.to_string()).collect())
                .collect();
            (n, rows)
        })
        .collect()
}

/// `user add` with `password` on standard input: the finished run.
fn user_add_run(relay: &Relay, args: &[&str], password: &str) -> minqing_e2e::Run {
    let mut cmd = relay.command(&[&["user", "add", "--password-stdin"], args].concat());
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("minqing-relay runs");
    // A refused command may exit before it reads the password: a broken
    // pipe here is expected, its exit code is what the test checks.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes());
    let out = child.wait_with_output().expect("minqing-relay ends");
    minqing_e2e::Run::new(format!("user add {}", args.join(" ")), out)
}

#[test]
fn bad_account_and_console_arguments_are_usage_errors_and_write_nothing() {
    let relay = Relay::init("县中继");
    relay
        .run(&[
            "village",
            "add",
            "--id",
            "V1",
            "--name",
            "小河村",
            "--township",
            "城关镇",
        ])
        .ok();
    relay.run(&["department", "add", "县水务局"]).ok();
    let accounts = relay.home().join("registry").join("accounts.json");
    let cases: [(&[&str], &str, &str); 8] = [
        (
            &["x1", "--role", "admin"],
            PASSWORD,
            "use operator, supervisor, department or viewer",
        ),
        (
            &["x1", "--role", "department"],
            PASSWORD,
            "needs --department",
        ),
        (
            &["x1", "--role", "department", "--department", "县交通局"],
            PASSWORD,
            "department add 县交通局",
        ),
        (&["x1", "--role", "supervisor"], PASSWORD, "needs --scope"),
        (
            &["x1", "--role", "supervisor", "--scope", "township:河口镇"],
            PASSWORD,
            "no village is in township \"河口镇\" (known: 城关镇)",
        ),
        (
            &["x1", "--role", "viewer", "--scope", "county"],
            PASSWORD,
            "only for supervisors",
        ),
        (&["X 1", "--role", "viewer"], PASSWORD, "login name"),
        (
            &["x1", "--role", "viewer"],
            "short",
            "at least 10 characters",
        ),
    ];
    for (args, password, expected) in cases {
        let err = user_add_run(&relay, args, password).fails(2);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!accounts.exists(), "{args:?} wrote the accounts file");
    }
    user_add_run(&relay, &["x1", "--role", "viewer"], PASSWORD).ok();
    let before = std::fs::read(&accounts).unwrap();
    let err = user_add_run(&relay, &["x1", "--role", "viewer"], PASSWORD).fails(2);
    assert!(err.contains("exists already"), "{err}");
    assert!(
        relay
            .run(&["user", "disable", "nobody"])
            .fails(2)
            .contains("user list")
    );
    assert_eq!(std::fs::read(&accounts).unwrap(), before, "nothing changed");
    let err = relay
        .run(&["serve", "--console", "not-an-address"])
        .fails(2);
    assert!(err.contains("127.0.0.1:8443"), "{err}");
}
