//! Bad input gets a one-line error saying what to fix, exit 2 (usage) or 1
//! (failure), and writes nothing.

use minqing_e2e::{Home, Run};

/// A home with one village, household and resident; returns (household, resident).
fn setup(home: &Home) -> (String, String) {
    home.init("张伟");
    home.minqing(&["village", "add", "--id", "V001", "--name", "小河村"])
        .ok();
    let h = home
        .minqing(&[
            "household",
            "add",
            "--village",
            "V001",
            "--address",
            "小河村三组12号",
        ])
        .id();
    let r = home
        .minqing(&["resident", "add", "--household", &h, "--name", "李秀英"])
        .id();
    (h, r)
}

/// Everything a home holds, as the CLI shows it, plus the documents' heads.
fn snapshot(home: &Home) -> String {
    [
        vec!["debug", "heads", "--json"],
        vec!["village", "list", "--json"],
        vec!["resident", "list", "--json"],
        vec!["visit", "list", "--json"],
        vec!["demand", "list", "--json"],
    ]
    .iter()
    .map(|args| home.minqing(args).ok())
    .collect()
}

/// Runs `args`, expects exit `code` with a one-line error containing `needle`,
/// and checks nothing was written.
#[track_caller]
fn check(home: &Home, args: &[&str], code: i32, needle: &str) {
    let before = snapshot(home);
    let run: Run = home.minqing(args);
    let err = run.fails(code);
    assert_eq!(err.lines().count(), 1, "one line expected:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains(needle),
        "`{}`: {err:?} lacks {needle:?}",
        run.cmdline
    );
    assert_eq!(run.stdout, "", "nothing printed on stdout");
    assert_eq!(
        snapshot(home),
        before,
        "`{}` changed the store",
        run.cmdline
    );
}

#[test]
fn bad_values_are_usage_errors() {
    let home = Home::new();
    let (h, r) = setup(&home);
    let add = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["resident", "add", "--household", &h, "--name", "赵六"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>, code: i32, needle: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        check(&home, &a, code, needle);
    };
    run(
        add(&["--id-card", "370811195803151228"]),
        2,
        "身份证号 check digit is wrong: expected 4, got 8",
    );
    run(
        add(&["--id-card", "37081119580315122"]),
        2,
        "has 17 characters",
    );
    run(
        add(&["--id-card", "370811195802301224"]),
        2,
        "not a real date",
    );
    run(
        add(&["--id-card", "370811195803151224", "--gender", "男"]),
        2,
        "--gender 男 disagrees",
    );
    run(
        add(&["--id-card", "370811195803151224", "--birth", "1958-03-16"]),
        2,
        "--birth 1958-03-16 disagrees",
    );
    run(add(&["--phone", "1234"]), 2, "is not a phone number");
    run(add(&["--gender", "未知"]), 2, "use 男 or 女");
    run(add(&["--birth", "1958/03/15"]), 2, "write it as YYYY-MM-DD");
    run(add(&["--tag", "　"]), 2, "the tag is empty");
    check(
        &home,
        &["resident", "add", "--household", &h, "--name", "　"],
        2,
        "the name is empty",
    );

    let visit = |note: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "visit",
            "log",
            "--household",
            &h,
            "--kind",
            "key",
            "--note",
            note,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    run(visit("", &[]), 2, "the visit note is empty");
    run(visit("　 ", &[]), 2, "the visit note is empty");
    run(
        visit("走访", &["--date", "2026-02-30"]),
        2,
        "is not a date: write it as YYYY-MM-DD",
    );
    run(visit("走访", &["--date", "昨天"]), 2, "is not a date");
    run(
        visit("走访", &["--date", "2999-01-01"]),
        2,
        "is in the future",
    );
    check(
        &home,
        &[
            "visit",
            "log",
            "--household",
            &h,
            "--kind",
            "走访",
            "--note",
            "x",
        ],
        2,
        "use 普遍走访 (regular)",
    );
    check(
        &home,
        &["visit", "list", "--month", "2026-3"],
        2,
        "write it as YYYY-MM",
    );
    check(
        &home,
        &["village", "add", "--id", "小河村", "--name", "小河村"],
        2,
        "use only letters",
    );
    check(&home, &["resident", "edit", &r], 2, "nothing to change");
    check(
        &home,
        &["resident", "show", "abc"],
        2,
        "too short: type at least 6 characters",
    );
    check(
        &home,
        &[
            "demand",
            "open",
            "--resident",
            &r,
            "--category",
            "医疗",
            "--text",
            "",
        ],
        2,
        "the demand text is empty",
    );
}

#[test]
fn unknown_and_ambiguous_ids_are_failures() {
    let home = Home::new();
    let (h, r) = setup(&home);
    check(
        &home,
        &["resident", "show", "zzzzzzzz"],
        1,
        "no resident has an id starting with \"zzzzzzzz\"",
    );
    check(
        &home,
        &[
            "visit",
            "log",
            "--household",
            "zzzzzz",
            "--kind",
            "key",
            "--note",
            "x",
        ],
        1,
        "no household has an id starting with",
    );
    check(
        &home,
        &["demand", "show", &r],
        1,
        "no demand has an id starting with",
    );
    check(
        &home,
        &[
            "visit",
            "log",
            "--household",
            &h,
            "--resident",
            "zzzzzz",
            "--kind",
            "key",
            "--note",
            "x",
        ],
        1,
        "--resident",
    );
    check(
        &home,
        &["household", "add", "--village", "V404", "--address", "x"],
        1,
        "no village V404 on this laptop",
    );
    check(
        &home,
        &["village", "add", "--id", "V001", "--name", "另一个村"],
        1,
        "village V001 already exists",
    );

    // Two households whose ids share the prefix "vjgw42" (seeded ids, see
    // MINQING_TEST_RNG_SEED): the prefix is ambiguous, a longer one is not.
    let a = home
        .minqing_env(
            &[("MINQING_TEST_RNG_SEED", "25956")],
            &[
                "household",
                "add",
                "--village",
                "V001",
                "--address",
                "一组1号",
            ],
        )
        .id();
    let b = home
        .minqing_env(
            &[("MINQING_TEST_RNG_SEED", "50239")],
            &[
                "household",
                "add",
                "--village",
                "V001",
                "--address",
                "一组2号",
            ],
        )
        .id();
    assert_eq!(&a[..6], "vjgw42");
    assert_eq!(&b[..6], "vjgw42");
    check(
        &home,
        &[
            "visit",
            "log",
            "--household",
            "vjgw42",
            "--kind",
            "key",
            "--note",
            "x",
        ],
        1,
        &format!("matches 2 households ({b}, {a}): type more characters"),
    );
    home.minqing(&[
        "visit",
        "log",
        "--household",
        &a[..7],
        "--kind",
        "key",
        "--note",
        "x",
    ])
    .id();
}

#[test]
fn an_uninitialised_home_is_refused_and_left_untouched() {
    let home = Home::new();
    let missing = home.path().join("not-yet");
    let m = missing.to_str().unwrap();
    for args in [
        vec!["whoami"],
        vec!["village", "list"],
        vec!["village", "add", "--id", "V1", "--name", "小河村"],
        vec!["resident", "list", "--json"],
        vec![
            "visit",
            "log",
            "--household",
            "abcdef",
            "--kind",
            "key",
            "--note",
            "x",
        ],
    ] {
        // Through MINQING_HOME, the documented alternative to --home.
        let out = minqing_e2e::command("minqing")
            .env("MINQING_HOME", m)
            .args(&args)
            .output()
            .unwrap();
        let run = Run::new(format!("minqing {}", args.join(" ")), out);
        let err = run.fails(1);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("this laptop is not set up: run `minqing init --cadre 姓名`"),
            "{err}"
        );
        assert!(!missing.exists(), "`{}` created the home", run.cmdline);
    }
    // init twice: the second refuses and changes nothing.
    let dev = home.init("张伟");
    let err = home.minqing(&["init", "--cadre", "王芳"]).fails(1);
    assert!(err.contains("already set up for 张伟"), "{err}");
    assert_eq!(
        home.minqing(&["whoami", "--json"]).json()["device_id"],
        dev.as_str()
    );
    // clap's own usage errors exit 2.
    home.minqing(&["visit", "log", "--kind", "key"]).fails(2);
    home.minqing(&["no-such-command"]).fails(2);
}
