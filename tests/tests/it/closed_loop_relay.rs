//! The county's reports on the relay: `minqing-relay report monthly|ledger`
//! over every village gives the figures a laptop holding the same villages
//! gives, from the store when serve is stopped and from serve's exports while
//! it runs (following new syncs within a few seconds); a serve that writes no
//! exports gets a clear refusal.

use std::time::{Duration, Instant};

use minqing_e2e::{Home, Relay, Run};
use serde_json::Value;

/// What the report says on stderr when it reads serve's exports.
const FROM_EXPORTS: &str = "serve is running: report built from its exports as of ";
/// How long a report may lag a sync: serve exports a changed village at most
/// once per 5 s, so 15 s leaves room for a slow machine.
const LAG_BOUND: Duration = Duration::from_secs(15);

/// Runs a report while serve runs until `done` holds of its JSON (polling, at
/// most [`LAG_BOUND`]); every run must say it read the exports.
#[track_caller]
fn live_report(relay: &Relay, args: &[&str], done: impl Fn(&Value, &Run) -> bool) -> (Value, Run) {
    let deadline = Instant::now() + LAG_BOUND;
    loop {
        let run = relay.run(args);
        let v = run.json();
        assert!(run.stderr.contains(FROM_EXPORTS), "{}", run.stderr);
        if done(&v, &run) {
            return (v, run);
        }
        assert!(
            Instant::now() < deadline,
            "the report from serve's exports did not show the synced data within {LAG_BOUND:?}:\n{v}\nstderr: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn device(relay: &Relay, cadre: &str, villages: &str) -> Home {
    relay.laptop(cadre, villages).1
}

fn sync(home: &Home) {
    home.minqing(&["sync", "--timeout", "5"]).ok();
}

fn add(home: &Home, args: &[&str]) -> String {
    home.minqing(args).id()
}

#[test]
fn relay_reports_cover_every_village_and_match_the_laptops() {
    let mut relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    relay.village_add("V2", "大河村");
    let a = device(&relay, "张伟", "V1");
    let b = device(&relay, "王芳", "V2");
    relay.start();
    sync(&a);
    sync(&b);
    let h1 = add(
        &a,
        &[
            "household",
            "add",
            "--village",
            "V1",
            "--address",
            "小河村1组1号",
        ],
    );
    let r1 = add(
        &a,
        &[
            "resident",
            "add",
            "--household",
            &h1,
            "--name",
            "李秀英",
            "--tag",
            "独居老人",
        ],
    );
    add(
        &a,
        &[
            "visit",
            "log",
            "--household",
            &h1,
            "--kind",
            "key",
            "--note",
            "看望",
            "--date",
            "2025-03-05",
        ],
    );
    let d1 = add(
        &a,
        &[
            "demand",
            "open",
            "--resident",
            &r1,
            "--category",
            "供水",
            "--text",
            "水压不足",
        ],
    );
    add(
        &a,
        &[
            "demand",
            "transfer",
            &d1,
            "--to",
            "县水务局",
            "--due",
            "2025-04-30",
        ],
    );
    let g1 = add(
        &b,
        &[
            "household",
            "add",
            "--village",
            "V2",
            "--address",
            "大河村2组1号",
        ],
    );
    let g2 = add(
        &b,
        &[
            "household",
            "add",
            "--village",
            "V2",
            "--address",
            "大河村2组2号",
        ],
    );
    add(
        &b,
        &[
            "visit",
            "log",
            "--household",
            &g1,
            "--kind",
            "普遍走访",
            "--note",
            "走访",
            "--date",
            "2025-03-06",
        ],
    );
    add(
        &b,
        &["leave", "add", "--month", "2025-02", "--reason", "培训"],
    );
    add(
        &b,
        &[
            "visit",
            "log",
            "--household",
            &g2,
            "--kind",
            "补访",
            "--note",
            "补访",
            "--date",
            "2025-03-07",
        ],
    );
    sync(&a);
    sync(&b);

    // While serve runs, the report reads serve's exports: once they caught up
    // with the syncs, the same figures as from the store after shutdown.
    let month = ["report", "monthly", "--month", "2025-03", "--json"];
    let laptops = [a.minqing(&month).json(), b.minqing(&month).json()];
    let (live, _) = live_report(&relay, &month, |v, _| {
        let lines: Vec<&Value> = laptops.iter().map(|l| &l["cadres"][0]).collect();
        v["cadres"].as_array().is_some_and(|c| c.iter().eq(lines))
    });
    assert!(relay.stop(), "serve exits cleanly on SIGTERM");

    let run = relay.run(&month);
    assert!(!run.stderr.contains("serve is running"), "{}", run.stderr);
    let monthly = run.json();
    assert_eq!(live, monthly, "exports and store give the same report");
    let cadres: Vec<&str> = monthly["cadres"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cadre"].as_str().unwrap())
        .collect();
    assert_eq!(cadres, ["张伟", "王芳"], "names sort by code point");
    // Each laptop holds one village; the relay's line for each cadre is the
    // laptop's own.
    for (home, name) in [(&a, "张伟"), (&b, "王芳")] {
        let local = home
            .minqing(&["report", "monthly", "--month", "2025-03", "--json"])
            .json();
        let line = |r: &Value| {
            r["cadres"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["cadre"] == name)
                .cloned()
                .unwrap()
        };
        assert_eq!(line(&monthly), line(&local), "{name}");
    }
    let wf = &monthly["cadres"][1];
    assert_eq!(
        (&wf["visits"], &wf["makeups_done"], &wf["makeups_owed"]),
        (&Value::from(2), &Value::from(1), &Value::from(0))
    );
    assert_eq!(wf["households_assigned"], 2);

    let ledger = relay
        .run(&["report", "ledger", "--today", "2025-05-01", "--json"])
        .json();
    assert_eq!(ledger["collected"], 1);
    assert_eq!(ledger["overdue"][0]["id"], d1.as_str());
    assert_eq!(ledger["by_department"]["县水务局"]["collected"], 1);
    assert_eq!(
        ledger,
        a.minqing(&["report", "ledger", "--today", "2025-05-01", "--json"])
            .json()
    );

    // Files, one village, and usage errors.
    let dir = tempfile::tempdir().unwrap();
    let xlsx = dir.path().join("county.xlsx");
    let out = relay
        .run(&["report", "ledger", "--xlsx", xlsx.to_str().unwrap()])
        .ok();
    assert!(out.contains("county.xlsx"), "{out}");
    assert!(xlsx.is_file());
    let v2 = relay
        .run(&[
            "report",
            "monthly",
            "--month",
            "2025-03",
            "--village",
            "V2",
            "--json",
        ])
        .json();
    assert_eq!(v2["cadres"].as_array().unwrap().len(), 1);
    relay
        .run(&["report", "monthly", "--month", "March"])
        .fails(2);
    relay
        .run(&["report", "monthly", "--month", "2025-03", "--village", "V9"])
        .fails(1);
}

#[test]
fn relay_reports_follow_syncs_while_serve_runs() {
    let mut relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    let a = device(&relay, "张伟", "V1");
    relay.start();
    sync(&a);
    let h = add(
        &a,
        &[
            "household",
            "add",
            "--village",
            "V1",
            "--address",
            "小河村1组1号",
        ],
    );
    let visit = |date: &str| {
        add(
            &a,
            &[
                "visit",
                "log",
                "--household",
                &h,
                "--kind",
                "普遍走访",
                "--note",
                "走访",
                "--date",
                date,
            ],
        )
    };
    visit("2025-03-05");
    sync(&a);
    let month = ["report", "monthly", "--month", "2025-03", "--json"];
    let laptop = || a.minqing(&month).json();

    // The laptop holds the relay's only village: the whole report is its own.
    let expected = laptop();
    assert_eq!(expected["cadres"][0]["visits"], 1, "{expected}");
    let (live, _) = live_report(&relay, &month, |v, _| *v == expected);
    assert_eq!(live, expected);

    // New data after another sync shows up within the bound.
    visit("2025-03-06");
    let r = add(
        &a,
        &["resident", "add", "--household", &h, "--name", "李秀英"],
    );
    add(
        &a,
        &[
            "demand",
            "open",
            "--resident",
            &r,
            "--category",
            "道路",
            "--text",
            "路灯坏了",
        ],
    );
    sync(&a);
    let expected = laptop();
    assert_eq!(expected["cadres"][0]["visits"], 2, "{expected}");
    let (live, _) = live_report(&relay, &month, |v, _| *v == expected);
    assert_eq!(live, expected);
    let ledger = ["report", "ledger", "--today", "2025-05-01", "--json"];
    let (live_ledger, _) = live_report(&relay, &ledger, |v, _| v["collected"] == 1);
    assert_eq!(live_ledger, a.minqing(&ledger).json());
    assert_eq!(
        live_ledger["by_category"]["道路"]["collected"], 1,
        "{live_ledger}"
    );

    // A village added while serve runs has no document (and no export) until
    // serve creates it at the next session: reported as empty, with a note.
    relay.village_add("V2", "大河村");
    let run = relay.run(&month);
    assert!(
        run.stderr.contains("village V2 has no export yet"),
        "{}",
        run.stderr
    );
    assert_eq!(run.json(), expected, "an empty village adds nothing");
    sync(&a);
    live_report(&relay, &month, |_, run| !run.stderr.contains("V2"));

    // A serve that writes no exports (an older one) keeps the clear refusal.
    let manifest = relay.home().join("export").join("manifest.json");
    let kept = std::fs::read(&manifest).unwrap();
    std::fs::remove_file(&manifest).unwrap();
    let err = relay.run(&month).fails(1);
    assert!(err.contains("stop serve"), "{err}");
    std::fs::write(&manifest, kept).unwrap();

    // After shutdown the report comes from the store: the same figures.
    assert!(relay.stop(), "serve exits cleanly on SIGTERM");
    let run = relay.run(&month);
    assert!(!run.stderr.contains("serve is running"), "{}", run.stderr);
    assert_eq!(run.json(), live);
    assert_eq!(relay.run(&ledger).json(), live_ledger);
}
