//! CLI comfort for cadres (issue 13 item 5): `minqing` alone prints help;
//! clap's refusals are led by a Chinese line; `--tag` takes several tags at
//! once and refuses near-misses of known ones; a resident can be named by
//! name within the household.

use minqing_e2e::{Home, command};

fn setup(home: &Home) -> String {
    home.init("张伟");
    home.minqing(&["village", "add", "--id", "V001", "--name", "小河村"])
        .ok();
    home.minqing(&[
        "household",
        "add",
        "--village",
        "V001",
        "--address",
        "小河村三组12号",
    ])
    .id()
}

fn residents(home: &Home) -> usize {
    home.minqing(&["resident", "list", "--json"])
        .json()
        .as_array()
        .expect("an array")
        .len()
}

#[test]
fn minqing_alone_prints_help_and_clap_refusals_start_in_chinese() {
    let out = command("minqing").output().expect("minqing runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Usage: minqing"), "{stdout}");
    assert!(stdout.contains("visit"), "{stdout}");

    let home = Home::new();
    let err = home
        .minqing(&["visit", "log", "--kind", "普遍走访"])
        .fails(2);
    assert!(err.starts_with("错误：缺少必填的参数"), "{err}");
    assert!(
        err.contains("--household"),
        "clap's text names the flag: {err}"
    );
    let err = home.minqing(&["vist", "list"]).fails(2);
    assert!(err.starts_with("错误：没有这个命令"), "{err}");
    let err = home.minqing(&["visit", "list", "--nope"]).fails(2);
    assert!(err.starts_with("错误：没有这个参数"), "{err}");
    // Help is still plain help on stdout.
    let out = home.minqing(&["visit", "--help"]).ok();
    assert!(out.contains("Usage: minqing visit"), "{out}");
}

#[test]
fn tags_split_and_near_misses_are_refused_with_the_fix() {
    let home = Home::new();
    let h = setup(&home);
    let r = home
        .minqing(&[
            "resident",
            "add",
            "--household",
            &h,
            "--name",
            "李秀英",
            "--tag",
            "独居老人，老党员",
        ])
        .id();
    let shown = home.minqing(&["resident", "show", &r, "--json"]).json();
    assert_eq!(shown["tags"], serde_json::json!(["独居老人", "老党员"]));
    let before = residents(&home);
    for (typed, known) in [("老党", "老党员"), ("独居老年", "独居老人")] {
        let err = home
            .minqing(&[
                "resident",
                "add",
                "--household",
                &h,
                "--name",
                "王芳",
                "--tag",
                &format!("困难户,{typed}"),
            ])
            .fails(2);
        assert!(err.contains(&format!("did you mean {known}?")), "{err}");
    }
    assert_eq!(residents(&home), before, "nothing was written");
    // A free tag that is no near miss is kept as it is.
    let r2 = home
        .minqing(&[
            "resident",
            "add",
            "--household",
            &h,
            "--name",
            "王芳",
            "--tag",
            "种植大户",
        ])
        .id();
    let shown = home.minqing(&["resident", "show", &r2, "--json"]).json();
    assert_eq!(shown["tags"], serde_json::json!(["种植大户"]));
}

#[test]
fn a_resident_is_named_by_name_within_the_household() {
    let home = Home::new();
    let h = setup(&home);
    let add = |name: &str| {
        home.minqing(&["resident", "add", "--household", &h, "--name", name])
            .id()
    };
    let li = add("李秀英");
    let visit = |who: &str| {
        home.minqing(&[
            "visit",
            "log",
            "--household",
            &h,
            "--resident",
            who,
            "--kind",
            "重点走访",
            "--note",
            "入户走访。",
        ])
    };
    visit("李秀英").ok();
    let list = home.minqing(&["visit", "list", "--json"]).json();
    assert_eq!(list[0]["resident_id"], li.as_str());
    // A name held by two residents of the household: refused with both ids.
    let w1 = add("王芳");
    let w2 = add("王芳");
    let err = visit("王芳").fails(1);
    assert!(err.contains(&w1) && err.contains(&w2), "{err}");
    // A name nobody in the household has.
    let err = visit("赵六").fails(1);
    assert!(err.contains("no resident named 赵六"), "{err}");
    // Ids and prefixes work as before.
    visit(&li[..6]).ok();
    let n = home
        .minqing(&["visit", "list", "--json"])
        .json()
        .as_array()
        .map(Vec::len);
    assert_eq!(n, Some(2), "only the two good visits were written");
    // demand open: a name that one resident on the laptop has.
    home.minqing(&[
        "demand",
        "open",
        "--resident",
        "李秀英",
        "--category",
        "供水",
        "--text",
        "自来水水压不足",
    ])
    .ok();
    home.minqing(&[
        "demand",
        "open",
        "--resident",
        "王芳",
        "--category",
        "供水",
        "--text",
        "自来水水压不足",
    ])
    .fails(1);
}
