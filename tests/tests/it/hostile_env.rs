//! Hostile environments end to end (issue 10): full disks, read-only homes,
//! a relay's home given to the cadre's binary (and back), poisoned text in CSV
//! and on the terminal, dangerous ids and 身份证号 area codes. Real processes;
//! disk-full and read-only homes live on small tmpfs / read-only bind mounts,
//! and those tests say so and pass without checking when `mount` is refused
//! (not root).

use std::path::{Path, PathBuf};
use std::process::Command;

use minqing_e2e::{Home, Relay, Run, command};

fn run(mut cmd: Command, what: &str) -> Run {
    let out = cmd.output().expect("the binary can be started");
    Run::new(what.to_owned(), out)
}

/// `minqing --home DIR ARGS`.
fn minqing_at(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = command("minqing");
    cmd.arg("--home").arg(dir).args(args);
    run(
        cmd,
        &format!("minqing --home {} {}", dir.display(), args.join(" ")),
    )
}

/// A mount point that is unmounted (lazily) when dropped.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    /// A tmpfs of `size` (e.g. "8m"), or `None` when mounting is not allowed.
    fn tmpfs(size: &str) -> Option<Mount> {
        let dir = tempfile::Builder::new()
            .prefix("minqing-tmpfs-")
            .tempdir()
            .ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        ok.then_some(Mount { dir })
    }

    /// A read-only bind mount of `source`, or `None` when not allowed.
    fn read_only_view(source: &Path) -> Option<Mount> {
        let dir = tempfile::Builder::new()
            .prefix("minqing-ro-")
            .tempdir()
            .ok()?;
        let sh = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        let target = dir.path().to_str()?.to_owned();
        if !sh(&["--bind", source.to_str()?, &target]) {
            return None;
        }
        let m = Mount { dir };
        sh(&["-o", "remount,bind,ro", &target]).then_some(m)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
    }
}

fn skip(why: &str) {
    eprintln!("SKIPPED: {why} (mount refused: run the tests as root to check this)");
}

/// Fills the file system holding `dir` with a file `fill`, returned for removal.
fn fill_disk(dir: &Path) -> PathBuf {
    let fill = dir.join("fill");
    let chunk = vec![0u8; 64 * 1024];
    let mut f = std::fs::File::create(&fill).expect("the fill file can be created");
    use std::io::Write;
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    fill
}

fn setup_laptop(home: &Path) -> String {
    minqing_at(home, &["init", "--cadre", "张三"]).ok();
    minqing_at(home, &["village", "add", "--id", "V1", "--name", "小河村"]).ok();
    let hh = minqing_at(
        home,
        &[
            "household",
            "add",
            "--village",
            "V1",
            "--address",
            "小河村1号",
        ],
    )
    .id();
    minqing_at(
        home,
        &[
            "visit",
            "log",
            "--household",
            &hh,
            "--kind",
            "regular",
            "--note",
            "第一次走访",
        ],
    )
    .ok();
    hh
}

/// Finding 3: a full disk keeps reads working, and a write says what was not
/// saved; once space returns, writes work again.
#[test]
fn laptop_disk_full_keeps_reads_and_names_what_was_not_saved() {
    let Some(mount) = Mount::tmpfs("8m") else {
        return skip("laptop disk full");
    };
    let home = mount.path().join("home");
    let hh = setup_laptop(&home);
    let fill = fill_disk(mount.path());

    let list = minqing_at(&home, &["visit", "list"]);
    assert!(list.ok().contains("第一次走访"), "{}", list.stdout);
    assert_eq!(
        list.stderr.matches("disk holding").count(),
        1,
        "{}",
        list.stderr
    );
    minqing_at(&home, &["whoami"]).ok();

    let err = minqing_at(
        &home,
        &[
            "visit",
            "log",
            "--household",
            &hh,
            "--kind",
            "regular",
            "--note",
            "第二次",
        ],
    )
    .fails(1);
    assert!(
        err.contains("disk full: this visit was not saved — free space and run the command again"),
        "{err}"
    );
    let err = minqing_at(
        &home,
        &["resident", "add", "--household", &hh, "--name", "李四"],
    )
    .fails(1);
    assert!(
        err.contains("disk full: this resident was not saved"),
        "{err}"
    );

    std::fs::remove_file(fill).unwrap();
    minqing_at(
        &home,
        &[
            "visit",
            "log",
            "--household",
            &hh,
            "--kind",
            "regular",
            "--note",
            "第二次",
        ],
    )
    .ok();
    let list = minqing_at(&home, &["visit", "list"]).ok();
    assert!(
        list.contains("第一次走访") && list.contains("第二次"),
        "{list}"
    );
}

/// Finding 7 (home part): a home on a write-protected medium answers read
/// commands, says so once, and refuses writes without touching it.
#[test]
fn read_only_home_answers_reads_and_refuses_writes() {
    let src = Home::new();
    let home = src.path().join("home");
    let hh = setup_laptop(&home);
    let Some(ro) = Mount::read_only_view(src.path()) else {
        return skip("read-only home");
    };
    let home_ro = ro.path().join("home");
    let before = minqing_e2e::files_under(&home);

    let who = minqing_at(&home_ro, &["whoami"]);
    assert!(who.ok().contains("张三"), "{}", who.stdout);
    assert_eq!(
        who.stderr.matches("note:").count(),
        1,
        "said once: {}",
        who.stderr
    );
    assert_eq!(
        who.stderr.matches("Read-only file system").count(),
        1,
        "the OS error once: {}",
        who.stderr
    );
    assert!(
        minqing_at(&home_ro, &["visit", "list"])
            .ok()
            .contains("第一次走访")
    );
    let err = minqing_at(
        &home_ro,
        &[
            "visit",
            "log",
            "--household",
            &hh,
            "--kind",
            "regular",
            "--note",
            "x",
        ],
    )
    .fails(1);
    assert!(err.contains("this visit was not saved"), "{err}");
    drop(ro);
    assert_eq!(minqing_e2e::files_under(&home), before, "nothing changed");
}

/// Finding 7 (home part): the cadre's binary refuses a relay's home and the
/// relay refuses a laptop's; nothing is written to either.
#[test]
fn relay_and_laptop_homes_refuse_each_others_commands() {
    let mut relay = Relay::init("县中继");
    relay.start();
    assert!(relay.stop(), "serve stops cleanly:\n{}", relay.log());
    let before = minqing_e2e::files_under(&relay.home());
    let err = minqing_at(&relay.home(), &["init", "--cadre", "张三"]).fails(1);
    assert!(err.contains("relay's home"), "{err}");
    let err = minqing_at(&relay.home(), &["whoami"]).fails(1);
    assert!(err.contains("relay's home"), "{err}");
    assert_eq!(minqing_e2e::files_under(&relay.home()), before);
    relay.run(&["village", "list"]).ok();

    let laptop = Home::new();
    laptop.init("李四");
    let before = laptop.files();
    let mut cmd = command("minqing-relay");
    cmd.arg("--home").arg(laptop.path()).args([
        "init",
        "--name",
        "x",
        "--listen",
        "127.0.0.1:4999",
    ]);
    let err = run(cmd, "minqing-relay init on a laptop home").fails(1);
    assert!(err.contains("laptop's home"), "{err}");
    assert_eq!(laptop.files(), before);
}

/// Finding 7: `init --bundle` on a home already set up exits 1, as docs/cli.md says.
#[test]
fn init_bundle_on_a_set_up_home_exits_1() {
    let relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    let (_, bundle) = relay.enroll("王五", "V1");
    let home = Home::new();
    home.init("王五");
    let err = home
        .minqing(&["init", "--bundle", bundle.to_str().unwrap()])
        .fails(1);
    assert!(err.contains("already set up"), "{err}");
}

/// Finding 8: `.`, `..`, `...`, `.hidden`, `CON` are not village ids, on
/// either side.
#[test]
fn dot_and_reserved_village_ids_are_refused_on_both_sides() {
    let relay = Relay::init("县中继");
    let home = Home::new();
    home.init("张三");
    for id in [".", "..", "...", ".hidden", "CON", "nul", "a.b"] {
        let err = relay
            .run(&["village", "add", "--id", id, "--name", "村"])
            .fails(2);
        assert!(err.contains("village id"), "{id}: {err}");
        let err = home
            .minqing(&["village", "add", "--id", id, "--name", "村"])
            .fails(2);
        assert!(err.contains("village id"), "{id}: {err}");
    }
    assert!(!relay.home().join("export").join("..automerge").exists());
    relay
        .run(&["village", "add", "--id", "V-1_a", "--name", "村"])
        .ok();
}

/// Finding 10: area codes are checked; 15-digit numbers become 18 digits with
/// a notice, at the command line and on import.
#[test]
fn id_card_area_codes_and_first_generation_numbers() {
    let home = Home::new();
    let hh = setup_laptop(home.path());
    // 370899 is no administrative division; the check digit is right (6).
    let err = home
        .minqing(&[
            "resident",
            "add",
            "--household",
            &hh,
            "--name",
            "甲",
            "--id-card",
            "370899198002152346",
        ])
        .fails(2);
    assert!(err.contains("area code 370899"), "{err}");
    let run = home.minqing(&[
        "resident",
        "add",
        "--household",
        &hh,
        "--name",
        "乙",
        "--id-card",
        "110105491231002",
    ]);
    let id = run.id();
    assert!(
        run.stderr
            .contains("15-digit 身份证号 110105491231002 converted"),
        "{}",
        run.stderr
    );
    let shown = home.minqing(&["resident", "show", &id, "--json"]).json();
    assert_eq!(shown["id_card"], "11010519491231002X", "{shown}");

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("register.csv");
    std::fs::write(
        &csv,
        "姓名,身份证号,住址\n丙,370881800215234,小河村2号\n丁,370899198002152346,小河村2号\n",
    )
    .unwrap();
    let run = home.minqing(&[
        "import",
        "residents",
        csv.to_str().unwrap(),
        "--village",
        "V1",
        "--json",
    ]);
    let out = run.json();
    assert_eq!(out["converted"][0]["from"], "370881800215234", "{out}");
    assert_eq!(out["converted"][0]["to"], "370881198002152342", "{out}");
    assert!(run.stderr.contains("converted"), "{}", run.stderr);
    assert!(
        out["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("area code 370899"),
        "{out}"
    );
}

/// Finding 6: names and notes refuse bidi overrides and zero-width
/// characters at entry, at the command line and on import.
#[test]
fn invisible_characters_are_refused_at_entry() {
    let home = Home::new();
    let hh = setup_laptop(home.path());
    let err = home
        .minqing(&[
            "resident",
            "add",
            "--household",
            &hh,
            "--name",
            "张\u{202e}三",
        ])
        .fails(2);
    assert!(err.contains("U+202E"), "{err}");
    let err = home
        .minqing(&[
            "visit",
            "log",
            "--household",
            &hh,
            "--kind",
            "regular",
            "--note",
            "甲\u{200b}乙",
        ])
        .fails(2);
    assert!(err.contains("U+200B"), "{err}");
    let err = home
        .minqing(&[
            "visit",
            "log",
            "--household",
            &hh,
            "--kind",
            "regular",
            "--note",
            "覆盖\r前文",
        ])
        .fails(2);
    assert!(err.contains("control character"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("register.csv");
    std::fs::write(&csv, "姓名,住址\n李\u{202e}四,小河村2号\n王五,小河村2号\n").unwrap();
    let out = home
        .minqing(&[
            "import",
            "residents",
            csv.to_str().unwrap(),
            "--village",
            "V1",
            "--json",
        ])
        .json();
    assert_eq!(out["rejected"][0]["row"], 2, "{out}");
    assert!(
        out["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("U+202E"),
        "{out}"
    );
    assert_eq!(out["residents_new"], 1, "{out}");
}

/// Finding 4: a 1,000,000-character address is "too long", not "empty".
#[test]
fn an_enormous_address_is_too_long_not_empty() {
    let home = Home::new();
    setup_laptop(home.path());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("register.csv");
    std::fs::write(&csv, format!("姓名,住址\n甲,{}\n", "路".repeat(1_000_000))).unwrap();
    let run = home.minqing(&[
        "import",
        "residents",
        csv.to_str().unwrap(),
        "--village",
        "V1",
        "--dry-run",
        "--json",
    ]);
    run.fails(1);
    let out = minqing_e2e::json(&run.stdout);
    let reason = out["rejected"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("at most 200"), "{reason}");
    assert!(!reason.contains("empty"), "{reason}");
}

/// Finding 5 (laptop): CSV cells that a spreadsheet would run as formulas
/// are written with a leading `'`.
#[test]
fn laptop_csv_report_neutralises_formulas() {
    let home = Home::new();
    minqing_at(home.path(), &["init", "--cadre", "=1+2"]).ok();
    minqing_at(
        home.path(),
        &["village", "add", "--id", "V1", "--name", "小河村"],
    )
    .ok();
    let hh = home
        .minqing(&[
            "household",
            "add",
            "--village",
            "V1",
            "--address",
            "小河村1号",
        ])
        .id();
    home.minqing(&[
        "visit",
        "log",
        "--household",
        &hh,
        "--kind",
        "regular",
        "--note",
        "走访",
    ])
    .ok();
    let month = chrono_month();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("m.csv");
    home.minqing(&[
        "report",
        "monthly",
        "--month",
        &month,
        "--csv",
        csv.to_str().unwrap(),
    ])
    .ok();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.contains("'=1+2"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("=1+2")), "{text}");
}

/// Finding 5 (relay): a cadre name arriving by sync is neutralised in the
/// relay's CSV report too.
#[test]
fn relay_csv_report_neutralises_formulas() {
    let mut relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    let (_, bundle) = relay.enroll("@SUM(A1)", "V1");
    relay.start();
    let home = Home::new();
    home.init_bundle(&bundle);
    home.minqing(&["sync", "--timeout", "10"]).ok();
    let hh = home
        .minqing(&[
            "household",
            "add",
            "--village",
            "V1",
            "--address",
            "=HYPERLINK(\"http://x\")",
        ])
        .id();
    home.minqing(&[
        "visit",
        "log",
        "--household",
        &hh,
        "--kind",
        "regular",
        "--note",
        "走访",
    ])
    .ok();
    home.minqing(&["sync", "--timeout", "10"]).ok();
    assert!(relay.stop(), "{}", relay.log());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("county.csv");
    relay
        .run(&[
            "report",
            "monthly",
            "--month",
            &chrono_month(),
            "--csv",
            csv.to_str().unwrap(),
        ])
        .ok();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.contains("'@SUM(A1)"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("@SUM")), "{text}");
}

/// The current month in China Standard Time, YYYY-MM.
fn chrono_month() -> String {
    let out = Command::new("date")
        .args(["-u", "-d", "+8 hours", "+%Y-%m"])
        .output()
        .expect("date runs");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
