//! The views `minqing app` keeps with each cached village (docs/store.md,
//! "Views kept with a cached village") never disagree with the document:
//! after a write through each path — a CLI command, a page's form post, an
//! import, a colleague's changes arriving by the background sync, a merge of
//! residents — every read through the service prints exactly what the same
//! command prints without the service, reading the store itself.

use std::time::Duration;

use minqing_e2e::{Home, Relay};

use super::app_service::{AppProc, Browser, eventually, visit_ids};

/// The reads compared: `--json` of the commands the service answers from
/// its views, over every village and over V1 alone, and every resident's file.
fn reads(home: &Home, month: &str) -> Vec<(String, String)> {
    let mut cmds: Vec<Vec<String>> = [
        &["visit", "list", "--json"][..],
        &[
            "visit",
            "list",
            "--village",
            "V1",
            "--month",
            month,
            "--json",
        ],
        &["demand", "list", "--json"],
        &["demand", "list", "--overdue", "--village", "V1", "--json"],
        &["report", "monthly", "--month", month, "--json"],
        &["report", "ledger", "--json"],
        &["resident", "list", "--json"],
    ]
    .iter()
    .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
    .collect();
    let residents = home.minqing(&["resident", "list", "--json"]).json();
    for r in residents
        .as_array()
        .expect("resident list --json is an array")
    {
        let id = r["id"].as_str().expect("a resident has an id").to_owned();
        cmds.push(vec!["resident".into(), "show".into(), id, "--json".into()]);
    }
    cmds.into_iter()
        .map(|c| {
            let args: Vec<&str> = c.iter().map(String::as_str).collect();
            (c.join(" "), home.minqing(&args).ok())
        })
        .collect()
}

/// Reads through the running service, then stops it and reads the store
/// directly: the same text, command by command.
fn same_without_service(home: &Home, app: AppProc, month: &str, after: &str) {
    let served = reads(home, month);
    let log = app.log();
    assert!(app.stop(), "minqing app stops cleanly:\n{log}");
    let direct = reads(home, month);
    assert_eq!(
        served.len(),
        direct.len(),
        "after {after}: the same residents"
    );
    for ((cmd, a), (_, b)) in served.iter().zip(&direct) {
        assert_eq!(
            a, b,
            "after {after}: `minqing {cmd}` through the service and without it"
        );
    }
}

/// [`same_without_service`], then the service started again with its views
/// made (a read), so that the next writes catch them up.
fn checked(home: &Home, app: AppProc, month: &str, after: &str) -> AppProc {
    same_without_service(home, app, month, after);
    let app = AppProc::start(home, &["--interval", "1", "--timeout", "2"]);
    reads(home, month);
    app
}

/// This month in China Standard Time, `YYYY-MM` (civil date from days since
/// the epoch, H. Hinnant's algorithm).
fn china_month() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
        + 8 * 3600;
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}")
}

#[test]
fn views_stay_true_through_every_write() {
    let mut relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    let (_, w) = relay.laptop("王芳", "V1");
    let (_, t) = relay.laptop("赵六", "V1");
    relay.start();
    w.minqing(&["sync", "--timeout", "5"]).ok();
    t.minqing(&["sync", "--timeout", "5"]).ok();
    let month = china_month();

    let mut app = AppProc::start(&w, &["--interval", "1", "--timeout", "2"]);
    // Views made first (a read), so that each write below catches them up.
    reads(&w, &month);
    let h = w
        .minqing(&[
            "household",
            "add",
            "--village",
            "V1",
            "--address",
            "小河村三组12号",
        ])
        .id();
    let li = w
        .minqing(&[
            "resident",
            "add",
            "--household",
            &h,
            "--name",
            "李秀英",
            "--tag",
            "独居老人",
        ])
        .id();
    let zhao = w
        .minqing(&["resident", "add", "--household", &h, "--name", "赵六"])
        .id();
    app = checked(&w, app, &month, "household add, resident add");

    w.minqing(&[
        "visit",
        "log",
        "--household",
        &h,
        "--resident",
        &li,
        "--kind",
        "重点走访",
        "--note",
        "入户走访，了解近况",
    ])
    .ok();
    let d = w
        .minqing(&[
            "demand",
            "open",
            "--resident",
            &li,
            "--category",
            "供水",
            "--text",
            "自来水水压不足",
        ])
        .id();
    w.minqing(&[
        "demand",
        "transfer",
        &d,
        "--to",
        "县水务局",
        "--due",
        "2020-01-10",
    ])
    .ok();
    w.minqing(&["resident", "edit", &li, "--add-tag", "老党员"])
        .ok();
    w.minqing(&[
        "leave",
        "add",
        "--month",
        &month,
        "--reason",
        "参加县里培训",
    ])
    .ok();
    app = checked(&w, app, &month, "visit log, demand steps, edit, leave");

    // A page's form post (记民情日记).
    let browser = Browser::login(&app);
    let csrf = browser.csrf(&format!("/visit/new?household={h}"));
    let (status, _) = browser.post_form(
        "/visits",
        &[
            ("csrf", &csrf),
            ("household", &h),
            ("resident", &zhao),
            ("kind", "普遍走访"),
            ("note", "网页记一条民情日记"),
        ],
    );
    assert_eq!(status, 303, "the visit form is saved");
    app = checked(&w, app, &month, "a visit posted from the page");

    // An import: new households and residents in one write.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let csv = dir.path().join("户籍登记表.csv");
    std::fs::write(
        &csv,
        "姓名,家庭住址,户号,人员类别\n王五,小河村一组3号,0103,困难户\n王小五,小河村一组3号,0103,留守儿童\n",
    )
    .expect("the register is written");
    w.minqing(&[
        "import",
        "residents",
        csv.to_str().expect("utf-8 path"),
        "--village",
        "V1",
    ])
    .ok();
    app = checked(&w, app, &month, "an import");

    // A colleague's changes, brought by the background sync.
    t.minqing(&["sync", "--timeout", "5"]).ok();
    let theirs = t
        .minqing(&[
            "visit",
            "log",
            "--household",
            &h,
            "--resident",
            &zhao,
            "--kind",
            "普遍走访",
            "--note",
            "赵六：同事的走访",
        ])
        .id();
    t.minqing(&["sync", "--timeout", "5"]).ok();
    assert!(
        eventually(Duration::from_secs(60), || visit_ids(&w, "V1")
            .contains(&theirs)),
        "the colleague's visit arrives by the background sync\n{}",
        app.log()
    );
    app = checked(&w, app, &month, "a colleague's visit synced in");

    // A merge of residents changes ids shown on other records.
    let dup = w
        .minqing(&["resident", "add", "--household", &h, "--name", "李秀英"])
        .id();
    w.minqing(&["resident", "merge", &li, &dup]).ok();
    same_without_service(&w, app, &month, "a merge of residents");
    assert!(relay.stop());
}
