//! The county's reports on the relay: `minqing-relay report monthly|ledger`
//! over every village gives the figures a laptop holding the same villages
//! gives, and refuses clearly while `serve` holds the store.

use minqing_e2e::{Home, Relay};
use serde_json::Value;

fn device(relay: &Relay, cadre: &str, villages: &str) -> Home {
    let (id, bundle) = relay.enroll(cadre, villages);
    let home = Home::new();
    assert_eq!(home.init_bundle(&bundle), id);
    home
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

    // While serve runs, the store is held: a clear refusal, nothing else.
    let err = relay
        .run(&["report", "monthly", "--month", "2025-03"])
        .fails(1);
    assert!(err.contains("stop serve"), "{err}");
    assert!(relay.stop(), "serve exits cleanly on SIGTERM");

    let monthly = relay
        .run(&["report", "monthly", "--month", "2025-03", "--json"])
        .json();
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
