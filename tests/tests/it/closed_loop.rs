//! The closed loop end to end, with the real `minqing` binary: a demand through
//! 直办/转办 → 督办 → 反馈 → 回访 → 销号 and 重开, refused steps that write
//! nothing, two laptops acting on one demand offline, the sample register
//! imported from .csv and .xlsx, and a hand-computed month through `report`.

use std::path::{Path, PathBuf};

use minqing_e2e::Home;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn village(home: &Home, id: &str, name: &str) {
    home.minqing(&["village", "add", "--id", id, "--name", name])
        .ok();
}

fn household(home: &Home, village: &str, address: &str) -> String {
    home.minqing(&[
        "household",
        "add",
        "--village",
        village,
        "--address",
        address,
    ])
    .id()
}

fn resident(home: &Home, household: &str, name: &str, tags: &[&str]) -> String {
    let mut args = vec!["resident", "add", "--household", household, "--name", name];
    for t in tags {
        args.extend(["--tag", t]);
    }
    home.minqing(&args).id()
}

fn open_demand(home: &Home, resident: &str, category: &str, text: &str) -> String {
    home.minqing(&[
        "demand",
        "open",
        "--resident",
        resident,
        "--category",
        category,
        "--text",
        text,
    ])
    .id()
}

fn visit(home: &Home, household: &str, resident: Option<&str>, kind: &str, date: &str) -> String {
    let mut args = vec![
        "visit",
        "log",
        "--household",
        household,
        "--kind",
        kind,
        "--note",
        "走访记录",
        "--date",
        date,
    ];
    if let Some(r) = resident {
        args.extend(["--resident", r]);
    }
    home.minqing(&args).id()
}

fn heads(home: &Home) -> Value {
    home.minqing(&["debug", "heads", "--json"]).json()
}

fn show(home: &Home, demand: &str) -> Value {
    home.minqing(&["demand", "show", demand, "--json"]).json()
}

fn merge(into: &Home, from: &Home) {
    into.minqing(&["debug", "merge-from", p(from.path())]).ok();
}

/// One cadre, one village, one resident with a demand: (home, resident, demand).
fn one_demand() -> (Home, String, String) {
    let home = Home::new();
    home.init("张伟");
    village(&home, "V1", "小河村");
    let h = household(&home, "V1", "小河村三组12号");
    let r = resident(&home, &h, "李秀英", &["独居老人"]);
    let d = open_demand(&home, &r, "供水", "自来水水压不足，高峰时段断水");
    (home, r, d)
}

/// Runs a step expected to be refused: exit `code`, nothing written.
#[track_caller]
fn refused(home: &Home, args: &[&str], code: i32, says: &str) {
    let before = heads(home);
    let err = home.minqing(args).fails(code);
    assert!(err.contains(says), "`{}` said: {err}", args.join(" "));
    assert_eq!(heads(home), before, "`{}` wrote something", args.join(" "));
}

#[test]
fn a_demand_goes_round_the_whole_loop_and_invalid_steps_write_nothing() {
    let (home, _r, d) = one_demand();
    let short = &d[..6];
    assert_eq!(show(&home, &d)["status"], "受理");

    // 销号 before 回访 is refused with the command to run instead.
    refused(&home, &["demand", "close", short], 1, "demand handle");
    // Malformed arguments are usage errors.
    refused(
        &home,
        &[
            "demand",
            "transfer",
            short,
            "--to",
            "县水务局",
            "--due",
            "2026-13-01",
        ],
        2,
        "--due",
    );
    refused(
        &home,
        &["demand", "revisit", short, "--satisfaction", "还行"],
        2,
        "满意",
    );
    refused(
        &home,
        &["demand", "feedback", short, "--text", "  "],
        2,
        "--text",
    );
    refused(
        &home,
        &["demand", "list", "--status", "pending"],
        2,
        "--status",
    );

    let mut events = vec![
        show(&home, &d)["events"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    let mut step = |args: &[&str], status: &str| {
        let id = home.minqing(args).id();
        assert_eq!(id.len(), 16, "the event id is printed last: {id}");
        events.push(id);
        assert_eq!(show(&home, &d)["status"], status, "after {args:?}");
    };
    step(&["demand", "handle", short], "办理中");
    step(
        &[
            "demand",
            "transfer",
            short,
            "--to",
            "县水务局",
            "--due",
            "2026-01-10",
        ],
        "办理中",
    );
    step(
        &["demand", "supervise", short, "--note", "请三日内答复"],
        "办理中",
    );
    step(
        &["demand", "feedback", short, "--text", "已更换减压阀"],
        "已反馈",
    );
    step(
        &[
            "demand",
            "revisit",
            short,
            "--satisfaction",
            "satisfied",
            "--note",
            "水压正常",
        ],
        "已回访",
    );
    step(&["demand", "close", short], "已销号");

    let s = show(&home, &d);
    assert_eq!(s["department"], "县水务局");
    assert_eq!(s["due"], "2026-01-10");
    assert_eq!(s["satisfaction"], "满意");
    assert!(s["closed_at"].is_string());
    assert_eq!(s["flagged"], 0);
    let kinds: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["受理", "直办", "转办", "督办", "反馈", "回访", "销号"]
    );
    let ids: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, events);
    assert!(
        s["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["flag"].is_null())
    );

    // Anything after 销号 but 重开 is refused.
    refused(&home, &["demand", "handle", short], 1, "demand reopen");
    refused(
        &home,
        &["demand", "supervise", short, "--note", "再催"],
        1,
        "demand reopen",
    );
    refused(&home, &["demand", "close", short], 1, "already closed");

    home.minqing(&["demand", "reopen", short, "--reason", "又断水了"])
        .id();
    let s = show(&home, &d);
    assert_eq!(s["status"], "办理中");
    assert!(s["closed_at"].is_null());
    assert_eq!(s["events"].as_array().unwrap().len(), 8);

    // Overdue: due 2026-01-10, open again.
    let overdue = |today: &str| {
        home.minqing(&["demand", "list", "--overdue", "--today", today, "--json"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(overdue("2026-01-11"), vec![d.as_str()]);
    assert!(
        overdue("2026-01-10").is_empty(),
        "due today is not overdue yet"
    );
    let by_status = |s: &str| {
        home.minqing(&["demand", "list", "--status", s, "--json"])
            .json()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(by_status("in-progress"), 1);
    assert_eq!(by_status("办理中"), 1);
    assert_eq!(by_status("closed"), 0);

    // The readable timeline.
    let text = home
        .minqing(&["demand", "show", short, "--today", "2026-02-01"])
        .ok();
    for want in [
        "时间线 (8)",
        "直办",
        "转办",
        "县水务局",
        "回访",
        "满意度: 满意",
        "销号",
        "重开",
        "逾期",
    ] {
        assert!(text.contains(want), "demand show lacks {want}:\n{text}");
    }
}

#[test]
fn two_laptops_close_one_demand_offline_and_both_closes_are_kept_one_flagged() {
    let (a, _r, d) = one_demand();
    let b = Home::new();
    b.init("王芳");
    merge(&b, &a);
    for args in [
        vec!["demand", "handle", &d],
        vec!["demand", "feedback", &d, "--text", "已联系水厂"],
        vec!["demand", "revisit", &d, "--satisfaction", "basically"],
    ] {
        a.minqing(&args).id();
    }
    merge(&b, &a);
    assert_eq!(show(&b, &d)["status"], "已回访");

    // Offline: both close it; 王芳 also supervises it.
    let close_a = a.minqing(&["demand", "close", &d]).id();
    let close_b = b.minqing(&["demand", "close", &d]).id();
    merge(&a, &b);
    merge(&b, &a);
    assert_eq!(heads(&a), heads(&b));
    let (sa, sb) = (show(&a, &d), show(&b, &d));
    assert_eq!(sa, sb, "both laptops show the same demand");
    assert_eq!(sa["status"], "已销号");
    assert_eq!(sa["flagged"], 1);
    let events = sa["events"].as_array().unwrap();
    let closes: Vec<&Value> = events.iter().filter(|e| e["kind"] == "closed").collect();
    assert_eq!(closes.len(), 2, "both closes are kept");
    let ids: Vec<&str> = closes.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&close_a.as_str()) && ids.contains(&close_b.as_str()));
    let flagged: Vec<&&Value> = closes.iter().filter(|e| e["flag"].is_string()).collect();
    assert_eq!(flagged.len(), 1);
    let flag = flagged[0]["flag"].as_str().unwrap();
    assert!(flag.contains("concurrent close"), "{flag}");
    assert_eq!(
        closes[0]["flag"],
        Value::Null,
        "the first close in fold order applies"
    );

    let text = a.minqing(&["demand", "show", &d]).ok();
    assert!(text.contains("⚠ 已标记"), "{text}");

    // Reopen then a step that is valid again, on one laptop, after the merge.
    b.minqing(&["demand", "reopen", &d, "--reason", "回访时发现未修好"])
        .id();
    merge(&a, &b);
    assert_eq!(show(&a, &d)["status"], "办理中");
}

fn import_json(home: &Home, file: &Path, village: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "import",
        "residents",
        p(file),
        "--village",
        village,
        "--json",
    ];
    args.extend(extra);
    home.minqing(&args).json()
}

fn resident_count(home: &Home, village: &str) -> usize {
    home.minqing(&["resident", "list", "--village", village, "--json"])
        .json()
        .as_array()
        .unwrap()
        .len()
}

/// Checks an import summary against tests/data/register.expected.json.
#[track_caller]
fn check_register_summary(s: &Value) {
    let exp: Value =
        serde_json::from_slice(&std::fs::read(data("register.expected.json")).unwrap()).unwrap();
    assert_eq!(s["data_rows"], exp["data_rows"]);
    assert_eq!(s["blank_rows"], exp["blank_rows"]);
    assert_eq!(s["imported"], exp["imported"]);
    assert_eq!(s["households_in_file"], exp["households"]);
    // Two single-member households consist only of bad rows.
    assert_eq!(s["households"], 118);
    let rejected = s["rejected"].as_array().unwrap();
    assert_eq!(rejected.len() as u64, exp["rejected"].as_u64().unwrap());
    let rows: Vec<u64> = rejected
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = exp["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, want);
    assert!(
        rejected
            .iter()
            .all(|r| !r["reason"].as_str().unwrap().is_empty())
    );
}

#[test]
fn the_sample_register_imports_from_csv_and_xlsx_and_reimport_is_a_noop() {
    let home = Home::new();
    home.init("张伟");
    village(&home, "V1", "小河村");
    let csv = data("register.csv");

    // Dry run: the plan, and nothing written.
    let before = heads(&home);
    let dry = import_json(&home, &csv, "V1", &["--dry-run"]);
    check_register_summary(&dry);
    assert_eq!(dry["residents_new"], 274);
    assert_eq!(dry["written"], false);
    assert_eq!(heads(&home), before, "--dry-run wrote something");
    assert_eq!(resident_count(&home, "V1"), 0);

    let done = import_json(&home, &csv, "V1", &[]);
    check_register_summary(&done);
    assert_eq!(
        (
            &done["residents_new"],
            &done["households_new"],
            &done["unchanged"]
        ),
        (&Value::from(274), &Value::from(118), &Value::from(0))
    );
    assert_eq!(resident_count(&home, "V1"), 274);
    let households = home
        .minqing(&["household", "list", "--village", "V1", "--json"])
        .json();
    assert_eq!(households.as_array().unwrap().len(), 118);

    // Re-import: a no-op.
    let after = heads(&home);
    let again = import_json(&home, &csv, "V1", &[]);
    assert_eq!(
        (
            &again["residents_new"],
            &again["households_new"],
            &again["unchanged"]
        ),
        (&Value::from(0), &Value::from(0), &Value::from(274))
    );
    assert_eq!(again["written"], false);
    assert_eq!(heads(&home), after, "re-import wrote something");

    // The readable summary names each bad row.
    let text = home
        .minqing(&[
            "import",
            "residents",
            p(&csv),
            "--village",
            "V1",
            "--dry-run",
        ])
        .ok();
    for row in ["第9行", "第43行", "第235行", "dry run: nothing was written"] {
        assert!(text.contains(row), "{text}");
    }

    // The same register as .xlsx (every cell a string, as clerks type them).
    let dir = tempfile::tempdir().unwrap();
    let xlsx = dir.path().join("register.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(&csv)
        .unwrap();
    for (r, rec) in reader.records().enumerate() {
        for (c, cell) in rec.unwrap().iter().enumerate() {
            if !cell.is_empty() {
                sheet
                    .write_string(r as u32, c as u16, cell.trim_start_matches('\u{feff}'))
                    .unwrap();
            }
        }
    }
    book.save(&xlsx).unwrap();
    village(&home, "V2", "大河村");
    let from_xlsx = import_json(&home, &xlsx, "V2", &[]);
    check_register_summary(&from_xlsx);
    assert_eq!(from_xlsx["residents_new"], 274);
    assert_eq!(resident_count(&home, "V2"), 274);

    // Files that cannot be imported: exit 1, nothing written.
    let before = heads(&home);
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "序号,备注\n1,无\n").unwrap();
    let err = home
        .minqing(&["import", "residents", p(&bad), "--village", "V1"])
        .fails(1);
    assert!(err.contains("姓名"), "{err}");
    let all_bad = dir.path().join("all_bad.csv");
    std::fs::write(
        &all_bad,
        "姓名,身份证号,家庭住址\n王五,370811195803151228,小河村9组1号\n",
    )
    .unwrap();
    let err = home
        .minqing(&["import", "residents", p(&all_bad), "--village", "V1"])
        .fails(1);
    assert!(err.contains("every row"), "{err}");
    home.minqing(&[
        "import",
        "residents",
        p(&dir.path().join("missing.csv")),
        "--village",
        "V1",
    ])
    .fails(1);
    assert_eq!(heads(&home), before);
}

/// Reads a JSON number.
fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn cadre<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["cadres"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cadre"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

#[test]
fn reports_match_a_hand_computed_month() {
    // 张伟 works in 小河村 (V1, 4 households); 王芳 in 大河村 (V2, 2
    // households) and once in V1.
    let (a, b) = (Home::new(), Home::new());
    a.init("张伟");
    b.init("王芳");
    village(&a, "V1", "小河村");
    let h1 = household(&a, "V1", "小河村1组1号");
    let h2 = household(&a, "V1", "小河村1组2号");
    let h3 = household(&a, "V1", "小河村1组3号");
    let h4 = household(&a, "V1", "小河村1组4号");
    let r1 = resident(&a, &h1, "李秀英", &["独居老人"]);
    let r2 = resident(&a, &h2, "张浩然", &["低保户"]);
    let r3 = resident(&a, &h2, "高丽娟", &[]);
    resident(&a, &h3, "刘德明", &[]);
    village(&b, "V2", "大河村");
    let g1 = household(&b, "V2", "大河村2组1号");
    let g2 = household(&b, "V2", "大河村2组2号");
    let s1 = resident(&b, &g1, "赵大山", &["老党员"]);

    // 张伟, March 2025: 2 普遍走访 + 1 重点走访 + 1 补访 over h1, h2, h3;
    // key residents met: 李秀英 (household visit) and 张浩然.
    visit(&a, &h4, None, "普遍走访", "2025-02-10");
    visit(&a, &h1, None, "普遍走访", "2025-03-03");
    visit(&a, &h2, Some(&r2), "重点走访", "2025-03-05");
    visit(&a, &h2, Some(&r3), "regular", "2025-03-10");
    // Leave for February (settled by the 补访 of 20 March) and for March
    // (owed at the end of March). With one village held, no --village.
    a.minqing(&[
        "leave",
        "add",
        "--month",
        "2025-02",
        "--reason",
        "参加县里培训",
    ])
    .id();
    a.minqing(&["leave", "add", "--month", "2025-03", "--reason", "病假"])
        .id();
    a.minqing(&["leave", "add", "--month", "2025-03", "--reason", "again"])
        .fails(1);
    visit(&a, &h3, None, "makeup", "2025-03-20");

    // 王芳, March 2025: 重点走访 赵大山, 普遍走访 g2, 普遍走访 g1 again, and
    // 普遍走访 h4 in V1: 4 visits, 3 households, 1 key resident, 6 assigned.
    merge(&b, &a);
    visit(&b, &g1, Some(&s1), "key", "2025-03-04");
    visit(&b, &g2, None, "普遍走访", "2025-03-04");
    visit(&b, &g1, None, "普遍走访", "2025-03-28");
    visit(&b, &h4, None, "普遍走访", "2025-03-15");
    b.minqing(&["leave", "add", "--month", "2025-03", "--reason", "x"])
        .fails(2);
    merge(&a, &b);
    merge(&b, &a);

    let month = a
        .minqing(&["report", "monthly", "--month", "2025-03", "--json"])
        .json();
    assert_eq!(
        month,
        b.minqing(&["report", "monthly", "--month", "2025-03", "--json"])
            .json(),
        "both laptops compute the same report"
    );
    assert_eq!(month["month"], "2025-03");
    assert_eq!(month["cadres"].as_array().unwrap().len(), 2);
    let zw = cadre(&month, "张伟");
    assert_eq!(zw["visits"], 4);
    assert_eq!(zw["visits_by_kind"]["普遍走访"], 2);
    assert_eq!(zw["visits_by_kind"]["重点走访"], 1);
    assert_eq!(zw["visits_by_kind"]["补访"], 1);
    assert_eq!(zw["households_visited"], 3);
    assert_eq!(zw["households_assigned"], 4);
    assert_eq!(zw["key_residents_visited"], 2);
    assert_eq!(zw["leave"], 1);
    assert_eq!(zw["makeups_owed"], 1);
    assert_eq!(zw["makeups_done"], 1);
    assert_eq!(zw["demands_opened"], 0);
    assert_eq!(zw["demands_closed"], 0);
    let wf = cadre(&month, "王芳");
    assert_eq!(wf["visits"], 4);
    assert_eq!(wf["visits_by_kind"]["普遍走访"], 3);
    assert_eq!(wf["visits_by_kind"]["重点走访"], 1);
    assert_eq!(wf["visits_by_kind"]["补访"], 0);
    assert_eq!(wf["households_visited"], 3);
    assert_eq!(wf["households_assigned"], 6);
    assert_eq!(wf["key_residents_visited"], 1);
    assert_eq!(
        (&wf["leave"], &wf["makeups_owed"], &wf["makeups_done"]),
        (&Value::from(0), &Value::from(0), &Value::from(0))
    );
    // --village keeps one village's records only.
    let v2 = a
        .minqing(&[
            "report",
            "monthly",
            "--month",
            "2025-03",
            "--village",
            "V2",
            "--json",
        ])
        .json();
    assert_eq!(cadre(&v2, "王芳")["visits"], 3);

    // The same report as .xlsx and .csv.
    let dir = tempfile::tempdir().unwrap();
    let (xlsx, csv_path) = (dir.path().join("m.xlsx"), dir.path().join("m.csv"));
    let out = a
        .minqing(&[
            "report",
            "monthly",
            "--month",
            "2025-03",
            "--xlsx",
            p(&xlsx),
            "--csv",
            p(&csv_path),
        ])
        .ok();
    assert!(
        out.contains(p(&xlsx)) && out.contains(p(&csv_path)),
        "{out}"
    );
    check_xlsx(&xlsx);
    check_csv(&csv_path);

    // Demands, opened and closed now (this month, China time).
    let today = a.minqing(&["report", "ledger", "--json"]).json()["today"]
        .as_str()
        .unwrap()
        .to_owned();
    let this_month = &today[..7];
    let d1 = open_demand(&a, &r1, "供水", "水压不足");
    let d2 = open_demand(&a, &r2, "医疗", "慢病报销");
    for args in [
        vec!["demand", "handle", &d1],
        vec!["demand", "feedback", &d1, "--text", "已修"],
        vec!["demand", "revisit", &d1, "--satisfaction", "满意"],
        vec!["demand", "close", &d1],
        vec![
            "demand",
            "transfer",
            &d2,
            "--to",
            "镇卫生院",
            "--due",
            "2025-01-31",
        ],
    ] {
        a.minqing(&args).id();
    }
    merge(&b, &a);
    let d3 = open_demand(&b, &s1, "供水", "井水浑浊");
    for args in [
        vec![
            "demand",
            "transfer",
            &d3,
            "--to",
            "县水务局",
            "--due",
            "2025-12-31",
        ],
        vec!["demand", "feedback", &d3, "--text", "已检测"],
        vec!["demand", "revisit", &d3, "--satisfaction", "dissatisfied"],
    ] {
        b.minqing(&args).id();
    }
    merge(&a, &b);

    let now = a
        .minqing(&["report", "monthly", "--month", this_month, "--json"])
        .json();
    let (zw, wf) = (cadre(&now, "张伟"), cadre(&now, "王芳"));
    assert_eq!(
        (&zw["demands_opened"], &zw["demands_closed"]),
        (&Value::from(2), &Value::from(1))
    );
    assert_eq!(
        (&wf["demands_opened"], &wf["demands_closed"]),
        (&Value::from(1), &Value::from(0))
    );
    assert_eq!(zw["makeups_owed"], 1, "March's leave is still owed a 补访");
    assert_eq!(
        (&now["demands_opened"], &now["demands_closed"]),
        (&Value::from(3), &Value::from(1))
    );

    let ledger = a
        .minqing(&["report", "ledger", "--today", "2025-07-01", "--json"])
        .json();
    assert_eq!(ledger["collected"], 3);
    assert_eq!(ledger["closed"], 1);
    assert!((num(&ledger["resolution_rate"]) - 1.0 / 3.0).abs() < 1e-9);
    let open = &ledger["open_by_status"];
    assert_eq!(open["办理中"], 1);
    assert_eq!(open["已回访"], 1);
    assert_eq!(num(&open["受理"]) + num(&open["已反馈"]), 0.0);
    let overdue = ledger["overdue"].as_array().unwrap();
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0]["id"], d2.as_str());
    assert_eq!(overdue[0]["days_overdue"], 151);
    assert_eq!(overdue[0]["department"], "镇卫生院");
    assert_eq!(ledger["by_category"]["供水"]["collected"], 2);
    assert_eq!(ledger["by_category"]["供水"]["closed"], 1);
    assert_eq!(ledger["by_category"]["医疗"]["collected"], 1);
    assert_eq!(ledger["by_category"]["医疗"]["overdue"], 1);
    assert_eq!(ledger["by_department"]["直办"]["closed"], 1);
    assert_eq!(ledger["by_department"]["镇卫生院"]["collected"], 1);
    assert_eq!(ledger["by_department"]["县水务局"]["collected"], 1);
    assert_eq!(ledger["satisfaction"]["满意"], 1);
    assert_eq!(ledger["satisfaction"]["不满意"], 1);
    assert_eq!(ledger["satisfaction"]["基本满意"], 0);
    assert_eq!(ledger["satisfaction"]["未回访"], 1);
    // `demand list --overdue` agrees with the ledger.
    let listed = a
        .minqing(&[
            "demand",
            "list",
            "--overdue",
            "--today",
            "2025-07-01",
            "--json",
        ])
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // Bounds on the opening date.
    let later = a
        .minqing(&["report", "ledger", "--from", "2099-01-01", "--json"])
        .json();
    assert_eq!(later["collected"], 0);
    let range = a
        .minqing(&[
            "report", "ledger", "--from", &today, "--to", &today, "--json",
        ])
        .json();
    assert_eq!(range["collected"], 3);
    a.minqing(&["report", "ledger", "--from", "2025-02-30"])
        .fails(2);
    a.minqing(&["report", "monthly", "--month", "2025-3"])
        .fails(2);

    // The readable table names both cadres.
    let text = a.minqing(&["report", "monthly", "--month", "2025-03"]).ok();
    assert!(
        text.contains("张伟") && text.contains("王芳") && text.contains("月度走访"),
        "{text}"
    );
}

/// The monthly report for March 2025 read back from .xlsx with calamine.
fn check_xlsx(path: &Path) {
    use calamine::{Data, Reader, open_workbook_auto};
    let mut book = open_workbook_auto(path).unwrap();
    let names = book.sheet_names().to_vec();
    assert_eq!(names.len(), 1, "{names:?}");
    let range = book.worksheet_range(&names[0]).unwrap();
    let rows: Vec<Vec<Data>> = range.rows().map(|r| r.to_vec()).collect();
    let header: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let row = |cadre: &str| {
        rows.iter()
            .find(|r| r[0] == Data::String(cadre.to_owned()))
            .unwrap_or_else(|| panic!("no row {cadre}"))
    };
    let n = |r: &Vec<Data>, c: &str| match &r[col(c)] {
        Data::Float(f) => *f,
        Data::Int(i) => *i as f64,
        other => panic!("{c} is not a number: {other:?}"),
    };
    let zw = row("张伟");
    assert_eq!(n(zw, "走访"), 4.0);
    assert_eq!(n(zw, "补访"), 1.0);
    assert_eq!(n(zw, "应访户数"), 4.0);
    assert!((n(zw, "覆盖率") - 0.75).abs() < 1e-9);
    assert_eq!(n(zw, "待补访"), 1.0);
    let wf = row("王芳");
    assert_eq!(n(wf, "普遍走访"), 3.0);
    assert!((n(wf, "覆盖率") - 0.5).abs() < 1e-9);
    assert_eq!(n(row("合计"), "走访"), 8.0);
}

/// The same report read back from CSV (UTF-8 with BOM, a title row first).
fn check_csv(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.starts_with("\u{feff}".as_bytes()));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&bytes[3..]);
    let recs: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(recs[0], ["月度走访 2025-03"]);
    let header = &recs[1];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let wf = recs.iter().find(|r| r[0] == "王芳").unwrap();
    assert_eq!(wf[col("走访")], "4");
    assert_eq!(wf[col("应访户数")], "6");
    assert_eq!(wf[col("重点人员")], "1");
    assert_eq!(wf[col("覆盖率")], "50.0%");
}

fn add_with_card(home: &Home, household: &str, name: &str, card: &str, phone: &str) -> String {
    home.minqing(&[
        "resident",
        "add",
        "--household",
        household,
        "--name",
        name,
        "--id-card",
        card,
        "--phone",
        phone,
    ])
    .id()
}

fn resident_ids(home: &Home) -> Vec<String> {
    home.minqing(&["resident", "list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn duplicates_found_and_crossed_merges_on_two_laptops_converge() {
    let (a, b) = (Home::new(), Home::new());
    a.init("张伟");
    b.init("王芳");
    village(&a, "V1", "小河村");
    let h = household(&a, "V1", "小河村三组12号");
    merge(&b, &a);
    // The same person entered on both laptops offline, each with a visit or demand.
    let card = "370811195803151224";
    let ra = add_with_card(&a, &h, "李秀英", card, "13905371234");
    let rb = add_with_card(&b, &h, "李秀英", card, "13800138000");
    let visit_id = visit(&a, &h, Some(&ra), "重点走访", "2025-03-05");
    let demand = open_demand(&b, &rb, "医疗", "慢病报销");
    merge(&a, &b);
    merge(&b, &a);

    let dups = a.minqing(&["resident", "duplicates", "--json"]).json();
    let groups = dups.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{dups}");
    assert_eq!(groups[0]["id_card"], card);
    assert_eq!(groups[0]["village_id"], "V1");
    assert_eq!(groups[0]["residents"].as_array().unwrap().len(), 2);
    let text = a.minqing(&["resident", "duplicates"]).ok();
    assert!(text.contains(&ra) && text.contains(&rb), "{text}");

    // Merge refusals: a resident into itself (exit 1), a short prefix (exit 2).
    a.minqing(&["resident", "merge", &ra, &ra]).fails(1);
    a.minqing(&["resident", "merge", &ra[..3], &rb]).fails(2);

    // Crossed merges at once: 张伟 keeps ra, 王芳 keeps rb.
    assert_eq!(
        a.minqing(&["resident", "merge", &ra[..6], &rb[..6]]).id(),
        ra
    );
    assert_eq!(b.minqing(&["resident", "merge", &rb, &ra]).id(), rb);
    merge(&a, &b);
    merge(&b, &a);
    let survivor = ra.clone().min(rb.clone());
    assert_eq!(resident_ids(&a), vec![survivor.as_str()]);
    assert_eq!(resident_ids(&b), vec![survivor.as_str()]);
    for home in [&a, &b] {
        assert!(
            home.minqing(&["resident", "duplicates", "--json"])
                .json()
                .as_array()
                .unwrap()
                .is_empty()
        );
        let shown = home
            .minqing(&["resident", "show", &survivor, "--json"])
            .json();
        assert_eq!(shown["visits"][0]["id"], visit_id.as_str());
        assert_eq!(shown["demands"][0]["id"], demand.as_str());
    }
    assert_eq!(heads(&a), heads(&b));
}
