//! Everything one `minqing` process writes — Chinese text included — is read
//! back exactly by the next, through every `--json` shape.

use minqing_e2e::Home;
use serde_json::{Value, json};

/// A note with full-width punctuation, a newline, an emoji and quotes.
const NOTE: &str = "老人腿脚不便，反映自来水压力小。\n已联系村委“张主任”查看管道；下周回访 🙂";

#[test]
fn a_day_of_work_reads_back_exactly() {
    let home = Home::new();
    let device = home.init("张伟");
    assert_eq!(device.len(), 16);
    let who = home.minqing(&["whoami", "--json"]).json();
    assert_eq!(who["device_id"], device.as_str());
    assert_eq!(who["cadre"], "张伟");
    assert_eq!(who["team"], Value::Null);

    home.minqing(&[
        "village",
        "add",
        "--id",
        "V001",
        "--name",
        "小河村",
        "--township",
        "城关镇",
    ])
    .ok();
    home.minqing(&["village", "add", "--id", "V002", "--name", "　大柳树社区 "])
        .ok();

    let h1 = home
        .minqing(&[
            "household",
            "add",
            "--village",
            "V001",
            "--address",
            "小河村三组12号",
            "--number",
            "0312",
        ])
        .id();
    let h2 = home
        .minqing(&[
            "household",
            "add",
            "--village",
            "V002",
            "--address",
            "幸福路7号2单元",
        ])
        .id();
    let li = home
        .minqing(&[
            "resident",
            "add",
            "--household",
            &h1[..6],
            "--name",
            "李秀英",
            "--gender",
            "女",
            "--id-card",
            "370811195803151224",
            "--phone",
            "13905371234",
            "--relation",
            "户主",
            "--tag",
            "独居老人",
            "--tag",
            "veteran-party-member",
            "--tag",
            "种粮大户",
        ])
        .id();
    let zhao = home
        .minqing(&[
            "resident",
            "add",
            "--household",
            &h2,
            "--name",
            "赵小军",
            "--birth",
            "2014-03-02",
            "--relation",
            "子",
            "--tag",
            "留守儿童",
        ])
        .id();
    home.minqing(&[
        "resident",
        "edit",
        &li[..7],
        "--phone",
        "0537-1234567",
        "--add-tag",
        "needy",
        "--remove-tag",
        "种粮大户",
    ])
    .ok();

    let v1 = home
        .minqing(&[
            "visit",
            "log",
            "--household",
            &h1,
            "--resident",
            &li,
            "--kind",
            "重点走访",
            "--note",
            NOTE,
            "--date",
            "2026-03-02",
        ])
        .id();
    let v2 = home
        .minqing(&[
            "visit",
            "log",
            "--household",
            &h2,
            "--kind",
            "regular",
            "--note",
            "户内无人，留下联系卡",
            "--date",
            "2026-02-27",
        ])
        .id();
    let d = home
        .minqing(&[
            "demand",
            "open",
            "--resident",
            &li[..8],
            "--category",
            "供水",
            "--text",
            "自来水水压不足，高峰时段断水",
        ])
        .id();

    // A new process reads everything back.
    let villages = home.minqing(&["village", "list", "--json"]).json();
    assert_eq!(
        villages,
        json!([
            {"id": "V001", "name": "小河村", "township": "城关镇", "households": 1, "residents": 1, "visits": 1, "demands": 1},
            {"id": "V002", "name": "大柳树社区", "township": null, "households": 1, "residents": 1, "visits": 1, "demands": 0},
        ])
    );

    let show = home
        .minqing(&["resident", "show", &li[..6], "--json"])
        .json();
    let expect_resident = json!({
        "id": li, "name": "李秀英", "gender": "女", "birth": "1958-03-15",
        "id_card": "370811195803151224", "phone": "0537-1234567", "relation": "户主",
        "tags": ["困难户", "独居老人", "老党员"], "household_id": h1, "village_id": "V001",
        "address": "小河村三组12号", "cadre": "张伟",
    });
    for (k, v) in expect_resident.as_object().unwrap() {
        assert_eq!(&show[k], v, "resident field {k}");
    }
    assert_eq!(show["visits"].as_array().unwrap().len(), 1);
    let visit = &show["visits"][0];
    for (k, v) in json!({
        "id": v1, "date": "2026-03-02", "kind": "重点走访", "note": NOTE, "cadre": "张伟",
        "household_id": h1, "resident_id": li, "village_id": "V001", "device_id": device,
    })
    .as_object()
    .unwrap()
    {
        assert_eq!(&visit[k], v, "visit field {k}");
    }
    let demand = &show["demands"][0];
    assert_eq!(demand["id"], d.as_str());
    assert_eq!(demand["text"], "自来水水压不足，高峰时段断水");

    let shown = home.minqing(&["demand", "show", &d, "--json"]).json();
    assert_eq!(&shown, demand);
    for (k, v) in json!({
        "resident_id": li, "household_id": h1, "village_id": "V001", "category": "供水",
        "status": "受理", "cadre": "张伟", "device_id": device,
    })
    .as_object()
    .unwrap()
    {
        assert_eq!(&shown[k], v, "demand field {k}");
    }
    let events = shown["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "opened");
    assert_eq!(events[0]["kind_name"], "受理");
    assert_eq!(events[0]["at"], shown["opened_at"]);
    assert_eq!(events[0]["cadre"], "张伟");
    assert_eq!(
        home.minqing(&["demand", "list", "--json"]).json(),
        json!([shown])
    );

    // The other resident, and the JSON text itself is UTF-8, not \u escapes.
    let zhao_json = home.minqing(&["resident", "show", &zhao, "--json"]);
    assert!(zhao_json.stdout.contains("赵小军"));
    let z = zhao_json.json();
    assert_eq!(z["gender"], Value::Null);
    assert_eq!(z["birth"], "2014-03-02");
    assert_eq!(z["id_card"], Value::Null);
    assert_eq!(z["tags"], json!(["留守儿童"]));
    assert_eq!(
        z["visits"],
        json!([]),
        "a household visit without --resident is not the resident's"
    );

    // Lists and their filters.
    let ids = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(home.minqing(&["resident", "list", "--json"]).json()),
        vec![li.clone(), zhao.clone()]
    );
    assert_eq!(
        ids(home
            .minqing(&["resident", "list", "--village", "V002", "--json"])
            .json()),
        vec![zhao.clone()]
    );
    assert_eq!(
        ids(home
            .minqing(&["resident", "list", "--tag", "elderly-alone", "--json"])
            .json()),
        vec![li.clone()]
    );
    assert_eq!(
        ids(home
            .minqing(&["resident", "list", "--search", "幸福路", "--json"])
            .json()),
        vec![zhao.clone()]
    );
    assert_eq!(
        ids(home
            .minqing(&["resident", "list", "--search", "1234567", "--json"])
            .json()),
        vec![li.clone()]
    );
    assert_eq!(
        ids(home
            .minqing(&["resident", "list", "--search", "王", "--json"])
            .json()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(home.minqing(&["visit", "list", "--json"]).json()),
        vec![v2.clone(), v1.clone()]
    );
    assert_eq!(
        ids(home
            .minqing(&["visit", "list", "--month", "2026-03", "--json"])
            .json()),
        vec![v1.clone()]
    );
    assert_eq!(
        ids(home
            .minqing(&["visit", "list", "--village", "V002", "--json"])
            .json()),
        vec![v2.clone()]
    );
    assert_eq!(
        ids(home
            .minqing(&["visit", "list", "--cadre", "王芳", "--json"])
            .json()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(home
            .minqing(&["visit", "list", "--cadre", "张伟", "--json"])
            .json())
        .len(),
        2
    );

    // The human tables carry the Chinese text too.
    let table = home.minqing(&["resident", "list"]).ok();
    assert!(
        table.contains("李秀英") && table.contains("小河村三组12号"),
        "{table}"
    );
    let visits = home.minqing(&["visit", "list"]).ok();
    assert!(
        visits.contains("重点走访") && !visits.contains("补访"),
        "{visits}"
    );
}

#[test]
fn visit_log_without_date_uses_today_and_makeup_kind_is_stored_in_chinese() {
    let home = Home::new();
    home.init("王芳");
    home.minqing(&["village", "add", "--id", "V9", "--name", "东村"])
        .ok();
    let h = home
        .minqing(&[
            "household",
            "add",
            "--village",
            "V9",
            "--address",
            "东村1号",
        ])
        .id();
    let v = home
        .minqing(&[
            "visit",
            "log",
            "--household",
            &h,
            "--kind",
            "makeup",
            "--note",
            "补访：上月请假",
        ])
        .id();
    let list = home.minqing(&["visit", "list", "--json"]).json();
    assert_eq!(list[0]["id"], v.as_str());
    assert_eq!(list[0]["kind"], "补访");
    assert_eq!(list[0]["resident_id"], Value::Null);
    let date = list[0]["date"].as_str().unwrap();
    assert_eq!(date.len(), 10, "{date}");
    assert!(
        list[0]["created_at"]
            .as_str()
            .unwrap()
            .starts_with(&date[..4])
    );
}
