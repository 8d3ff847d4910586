//! Two laptops edit the same village offline and merge (in-process automerge
//! merge through the store, `minqing debug merge-from`, no network): same heads,
//! same `--json` output, one phone number, every visit and demand kept.

use minqing_e2e::Home;
use serde_json::Value;

fn views(home: &Home) -> Vec<Value> {
    [
        vec!["debug", "heads", "--json"],
        vec!["village", "list", "--json"],
        vec!["household", "list", "--json"],
        vec!["resident", "list", "--json"],
        vec!["visit", "list", "--json"],
        vec!["demand", "list", "--json"],
    ]
    .iter()
    .map(|a| home.minqing(a).json())
    .collect()
}

fn merge(into: &Home, from: &Home) {
    into.minqing(&["debug", "merge-from", from.path().to_str().unwrap()])
        .ok();
}

#[test]
fn concurrent_offline_edits_converge() {
    let (a, b) = (Home::new(), Home::new());
    a.init("张伟");
    b.init("王芳");
    // Both create village V1 offline, independently.
    a.minqing(&[
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
    b.minqing(&[
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
    let h = a
        .minqing(&[
            "household",
            "add",
            "--village",
            "V1",
            "--address",
            "小河村三组12号",
        ])
        .id();
    let r = a
        .minqing(&[
            "resident",
            "add",
            "--household",
            &h,
            "--name",
            "李秀英",
            "--phone",
            "13800138000",
            "--tag",
            "困难户",
        ])
        .id();
    merge(&b, &a);
    assert_eq!(
        b.minqing(&["resident", "show", &r, "--json"]).json()["name"],
        "李秀英"
    );

    // Offline, the same resident is edited on both laptops, and both log visits.
    a.minqing(&[
        "resident",
        "edit",
        &r,
        "--phone",
        "13911112222",
        "--add-tag",
        "独居老人",
    ])
    .ok();
    b.minqing(&[
        "resident",
        "edit",
        &r,
        "--phone",
        "0537-1234567",
        "--relation",
        "户主",
        "--remove-tag",
        "困难户",
    ])
    .ok();
    let mut visits = vec![];
    for i in 0..3 {
        let note = format!("张伟第{i}次走访");
        visits.push(
            a.minqing(&[
                "visit",
                "log",
                "--household",
                &h,
                "--resident",
                &r,
                "--kind",
                "regular",
                "--note",
                &note,
            ])
            .id(),
        );
        let note = format!("王芳第{i}次走访");
        visits.push(
            b.minqing(&[
                "visit",
                "log",
                "--household",
                &h,
                "--kind",
                "key",
                "--note",
                &note,
            ])
            .id(),
        );
    }
    let da = a
        .minqing(&[
            "demand",
            "open",
            "--resident",
            &r,
            "--category",
            "医疗",
            "--text",
            "希望送药上门",
        ])
        .id();
    let db = b
        .minqing(&[
            "demand",
            "open",
            "--resident",
            &r,
            "--category",
            "供水",
            "--text",
            "水压不足",
        ])
        .id();

    merge(&a, &b);
    merge(&b, &a);
    let (va, vb) = (views(&a), views(&b));
    assert_eq!(va, vb, "the two laptops differ after merging");
    // Concurrent changes leave two heads (no merge commit), the same on both.
    assert_eq!(va[0]["V1"].as_array().unwrap().len(), 2);

    let res = a.minqing(&["resident", "show", &r, "--json"]).json();
    let phone = res["phone"].as_str().unwrap();
    assert!(phone == "13911112222" || phone == "0537-1234567", "{phone}");
    assert_eq!(res["relation"], "户主");
    assert_eq!(res["tags"], serde_json::json!(["独居老人"]));
    let mut held: Vec<String> = va[4]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    held.sort();
    visits.sort();
    assert_eq!(held, visits, "every visit from both laptops is kept");
    let demands: Vec<&str> = va[5]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(demands.contains(&da.as_str()) && demands.contains(&db.as_str()));
    assert_eq!(va[1][0]["name"], "小河村");

    // Merging again changes nothing.
    merge(&a, &b);
    assert_eq!(views(&a), va);
}
