//! Power cuts with the real binaries: a laptop home or a relay home lives on
//! the power-cut file system (`minqing_testkit::powercut`, FUSE: only what was
//! fsynced survives a cut, unsynced writes are lost or torn, unsynced
//! directory changes may vanish), the power is cut at a seeded random
//! operation or fsync of the workload, and afterwards the surviving home must
//! open and hold everything a command acknowledged.
//!
//! Workloads (each starts from a home set up beforehand and made durable):
//! - `laptop`: `minqing import` of a ~2,000-resident register (one large
//!   append, then a compaction that writes a large snapshot), then
//!   `visit log` ×8. Acknowledged: each id printed, the import's exit 0.
//! - `initial`: a laptop enrolled with a relay (on an ordinary disk) that
//!   holds a large village runs its first `minqing sync`, then logs visits
//!   and syncs again. Acknowledged: exit 0 of a sync (the village as the
//!   relay had it), visit ids.
//! - `relay`: `minqing-relay serve` with its home on the power-cut mount
//!   receives three large villages whole from a laptop (on an ordinary disk),
//!   then visits. Acknowledged: the laptop's `sync` exit 0 (the relay flushes
//!   before it acknowledges). Checked by starting the relay again on the
//!   surviving image and syncing a fresh laptop from it.
//!
//! `MINQING_POWERCUT_E2E_CUTS` (default 2 per workload: the CI smoke run)
//! sets the number of cuts, `MINQING_POWERCUT_SEED` the first seed, and
//! `MINQING_POWERCUT_AT=op:N|sync:N` with `MINQING_POWERCUT_E2E_CUTS=1`
//! replays one cut (a failure prints the line). docs/testing.md has the full
//! matrix.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use minqing_e2e::{Relay, command, copy_dir, free_udp_port, json, last_line};
use minqing_testkit::powercut::{CutPlan, CutPoint, FsStats, PowerCutFs, workload_stats};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// GB 11643 check character for the first 17 digits.
fn check_char(d17: &str) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = d17
        .chars()
        .zip(W)
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize]
}

/// A household register of `n` residents with valid 身份证号 (written once).
fn register(dir: &Path, name: &str, n: usize, salt: usize) -> PathBuf {
    const SURNAMES: [&str; 12] = [
        "李", "王", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙",
    ];
    const GIVEN: [&str; 16] = [
        "春生", "秀英", "浩然", "丽娟", "建国", "桂兰", "志强", "玉梅", "海涛", "淑芬", "明", "红",
        "伟", "芳", "军", "霞",
    ];
    let mut csv = String::from(
        "序号,户号,姓名,性别,身份证号,出生日期,与户主关系,联系电话,家庭住址,人员类别,备注\n",
    );
    for i in 0..n {
        let k = i + salt * 7919;
        let (y, m, d) = (1940 + k % 60, 1 + k % 12, 1 + k % 28);
        let seq = 100 + (k * 37) % 900;
        let d17 = format!("370811{y:04}{m:02}{d:02}{seq:03}");
        let id = format!("{d17}{}", check_char(&d17));
        let gender = if seq % 2 == 1 { "男" } else { "女" };
        let hh = i / 4;
        let name = format!(
            "{}{}{}",
            SURNAMES[k % 12],
            GIVEN[(k / 12) % 16],
            GIVEN[(k / 192) % 16]
        );
        let relation = if i % 4 == 0 { "户主" } else { "子女" };
        csv.push_str(&format!(
            "{},{:04},{name},{gender},{id},,{relation},13{:09},小河村{}组{}号,,走访记录第{i}条\n",
            i + 1,
            hh + 1,
            (k * 7) % 1_000_000_000,
            1 + hh / 50,
            1 + hh % 50
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, csv).unwrap();
    path
}

/// Runs `minqing --home HOME ARGS`.
fn minqing(home: &Path, args: &[&str]) -> Output {
    command("minqing")
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("minqing starts")
}

#[track_caller]
fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `cmd`, waits for it while the power is on; once the power is cut
/// the command gets `grace` to finish on its own (what it acknowledges then
/// was durable before the cut), then is killed. `None` if it was killed.
fn run_watched(mut cmd: Command, fs: &PowerCutFs, grace: Duration) -> Option<Output> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    wait_watched(child, fs, grace)
}

fn wait_watched(mut child: Child, fs: &PowerCutFs, grace: Duration) -> Option<Output> {
    use std::io::Read;
    // Drain both pipes meanwhile, so that a large output never blocks the child.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let mut cut_at: Option<Instant> = None;
    let hard_deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if fs.is_cut() && cut_at.is_none() {
            cut_at = Some(Instant::now());
        }
        if cut_at.is_some_and(|t| t.elapsed() > grace) || Instant::now() > hard_deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}

/// What a workload acknowledged.
#[derive(Debug, Default)]
struct Acks {
    /// Visit ids printed by `visit log` (village V1 unless noted).
    visits: Vec<String>,
    /// Residents a command acknowledged as stored (import, or a sync that
    /// brought them), per village.
    residents: Vec<(String, usize)>,
}

/// Templates built once per test process.
struct World {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    /// `laptop`: a standalone home with village V1 (empty) and its register.
    standalone: PathBuf,
    big_register: PathBuf,
    /// `initial`: a stopped relay home holding V1 (2,000 residents, 3 visits)
    /// and a laptop enrolled for V1 that never synced.
    relay_full: PathBuf,
    fresh_laptop: PathBuf,
    relay_visits: BTreeSet<String>,
    /// `relay`: a stopped relay home with V1–V3 (empty), a laptop holding
    /// 3 × 1,500 residents never synced, and a verifier laptop.
    relay_empty: PathBuf,
    pusher: PathBuf,
    verifier: PathBuf,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(build_world)
}

fn build_world() -> World {
    let tmp = tempfile::Builder::new()
        .prefix("minqing-powercut-world-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_owned();
    let big_register = register(&dir, "register.csv", 2000, 0);
    let init_bundle = |home: &Path, bundle: &Path| {
        ok(
            &minqing(home, &["init", "--bundle", bundle.to_str().unwrap()]),
            "init --bundle",
        );
    };
    let sync = |home: &Path| ok(&minqing(home, &["sync", "--timeout", "30"]), "sync");
    let import = |home: &Path, register: &Path, village: &str| {
        ok(
            &minqing(
                home,
                &[
                    "import",
                    "residents",
                    register.to_str().unwrap(),
                    "--village",
                    village,
                ],
            ),
            "import",
        );
    };

    let standalone = dir.join("standalone");
    ok(&minqing(&standalone, &["init", "--cadre", "张三"]), "init");
    ok(
        &minqing(
            &standalone,
            &["village", "add", "--id", "V1", "--name", "小河村"],
        ),
        "village add",
    );

    // `initial`: a relay holding a large V1. Enrolment happens at first
    // contact (`init --bundle`), so the relay runs meanwhile.
    let mut relay = Relay::init_at("县中继", &format!("127.0.0.1:{}", free_udp_port()));
    relay.village_add("V1", "小河村");
    let (_, seed_bundle) = relay.enroll("李四", "V1");
    let (_, fresh_bundle) = relay.enroll("王五", "V1");
    relay.start();
    let seeder = dir.join("seeder");
    init_bundle(&seeder, &seed_bundle);
    sync(&seeder);
    import(&seeder, &big_register, "V1");
    let households = json(&ok(
        &minqing(&seeder, &["household", "list", "--village", "V1", "--json"]),
        "household list",
    ));
    let hh = households[0]["id"].as_str().unwrap().to_owned();
    let mut relay_visits = BTreeSet::new();
    for i in 0..3 {
        let note = format!("上门走访 {i}");
        let out = ok(
            &minqing(
                &seeder,
                &[
                    "visit",
                    "log",
                    "--household",
                    &hh,
                    "--kind",
                    "普遍走访",
                    "--note",
                    &note,
                ],
            ),
            "visit log",
        );
        relay_visits.insert(last_line(&out));
    }
    sync(&seeder);
    let fresh_laptop = dir.join("fresh-laptop");
    init_bundle(&fresh_laptop, &fresh_bundle);
    assert!(relay.stop(), "the relay stops cleanly");
    let relay_full = dir.join("relay-full");
    copy_dir(&relay.home(), &relay_full);

    // `relay`: an empty relay and a laptop with three large villages.
    let mut relay2 = Relay::init_at("县中继二", &format!("127.0.0.1:{}", free_udp_port()));
    for v in ["V1", "V2", "V3"] {
        relay2.village_add(v, v);
    }
    let (_, push_bundle) = relay2.enroll("赵六", "V1,V2,V3");
    let (_, verify_bundle) = relay2.enroll("孙七", "V1,V2,V3");
    relay2.start();
    let pusher = dir.join("pusher");
    init_bundle(&pusher, &push_bundle);
    sync(&pusher);
    let verifier = dir.join("verifier");
    init_bundle(&verifier, &verify_bundle);
    assert!(relay2.stop(), "the relay stops cleanly");
    for (i, v) in ["V1", "V2", "V3"].into_iter().enumerate() {
        let reg = register(&dir, &format!("register-{v}.csv"), 1500, i + 1);
        import(&pusher, &reg, v);
    }
    let relay_empty = dir.join("relay-empty");
    copy_dir(&relay2.home(), &relay_empty);
    World {
        _dir: tmp,
        dir,
        standalone,
        big_register,
        relay_full,
        fresh_laptop,
        relay_visits,
        relay_empty,
        pusher,
        verifier,
    }
}

/// Residents of `village` in a home.
fn resident_count(home: &Path, village: &str) -> Result<usize, String> {
    let out = minqing(home, &["resident", "list", "--village", village, "--json"]);
    if !out.status.success() {
        return Err(format!(
            "`resident list` fails: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(json(&String::from_utf8_lossy(&out.stdout))
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0))
}

fn visit_ids(home: &Path, village: &str) -> Result<BTreeSet<String>, String> {
    let out = minqing(home, &["visit", "list", "--village", village, "--json"]);
    if !out.status.success() {
        return Err(format!(
            "`visit list` fails: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(json(&String::from_utf8_lossy(&out.stdout))
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Checks a laptop home (the image, or a verifier): it opens, and holds
/// every acknowledged visit and resident.
fn check_laptop(home: &Path, acks: &Acks) -> Result<(), String> {
    let who = minqing(home, &["whoami"]);
    if !who.status.success() {
        return Err(format!(
            "the home does not open: {}",
            String::from_utf8_lossy(&who.stderr).trim()
        ));
    }
    for (village, n) in &acks.residents {
        let have = resident_count(home, village)?;
        if have < *n {
            return Err(format!("{village}: {have} residents, {n} acknowledged"));
        }
    }
    if !acks.visits.is_empty() {
        let have = visit_ids(home, "V1")?;
        for id in &acks.visits {
            if !have.contains(id) {
                return Err(format!("acknowledged visit {id} is lost"));
            }
        }
    }
    Ok(())
}

/// No sled blob files anywhere under `dir` (large values live in `large/`).
fn check_no_blobs(dir: &Path) -> Result<(), String> {
    if std::env::var_os("MINQING_POWERCUT_ALLOW_BLOBS").is_some() {
        return Ok(());
    }
    for (path, _) in minqing_e2e::files_under(dir) {
        if path.parent().and_then(|p| p.file_name()) == Some("blobs".as_ref()) {
            return Err(format!("sled wrote a blob file: {}", path.display()));
        }
    }
    Ok(())
}

/// A relay `serve` process on `home`.
fn start_relay(home: &Path) -> Result<Child, String> {
    let mut child = command("minqing-relay")
        .arg("--home")
        .arg(home)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("minqing-relay: {e}"))?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut log = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("listening on") {
                let _ = tx.send(Ok(()));
            }
            log.push_str(&line);
            log.push('\n');
        }
        let _ = tx.send(Err(log));
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => Ok(child),
        Ok(Err(log)) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("the relay does not start:\n{log}"))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err("the relay did not listen within 30 s".into())
        }
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// One run: mount, copy `setup` into it and make it durable, arm the cut,
/// run `work`, then return the acknowledgements, counters and image.
fn one_run(
    seed: u64,
    cut: Option<CutPoint>,
    setup: &[(&Path, &str)],
    work: impl FnOnce(&Path, &PowerCutFs, &mut Acks),
) -> (Acks, FsStats, tempfile::TempDir, bool, String) {
    let mnt = tempfile::Builder::new()
        .prefix("minqing-powercut-mnt-")
        .tempdir()
        .unwrap();
    let fs = PowerCutFs::mount(mnt.path(), CutPlan::never(seed))
        .expect("mount the power-cut file system (needs /dev/fuse and root)");
    for (from, name) in setup {
        copy_dir(from, &mnt.path().join(name));
    }
    fs.settle();
    let base = fs.stats();
    if let Some(cut) = cut {
        cut.arm(&fs, base);
    }
    let mut acks = Acks::default();
    work(mnt.path(), &fs, &mut acks);
    let was_cut = fs.is_cut();
    let (image, stats) = fs.finish().expect("unmount");
    let out = tempfile::Builder::new()
        .prefix("minqing-powercut-image-")
        .tempdir()
        .unwrap();
    image.write_to(out.path()).unwrap();
    let note = format!(
        "{} files survived, {} torn, {} lost unsynced data",
        image.files(),
        image.torn_files,
        image.lost_files
    );
    (acks, workload_stats(stats, base), out, was_cut, note)
}

const GRACE: Duration = Duration::from_secs(3);

fn work_laptop(mnt: &Path, fs: &PowerCutFs, acks: &mut Acks) {
    let w = world();
    let home = mnt.join("home");
    let mut cmd = command("minqing");
    cmd.arg("--home").arg(&home).args([
        "import",
        "residents",
        w.big_register.to_str().unwrap(),
        "--village",
        "V1",
    ]);
    match run_watched(cmd, fs, GRACE) {
        Some(out) if out.status.success() => acks.residents.push(("V1".into(), 2000)),
        _ => return,
    }
    let mut cmd = command("minqing");
    cmd.arg("--home")
        .arg(&home)
        .args(["household", "list", "--village", "V1", "--json"]);
    let Some(out) = run_watched(cmd, fs, GRACE).filter(|o| o.status.success()) else {
        return;
    };
    let hh = json(&String::from_utf8_lossy(&out.stdout))[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for i in 0..8 {
        let mut cmd = command("minqing");
        let note = format!("停电前的走访 {i}");
        cmd.arg("--home").arg(&home).args([
            "visit",
            "log",
            "--household",
            &hh,
            "--kind",
            "重点走访",
            "--note",
            &note,
        ]);
        match run_watched(cmd, fs, GRACE) {
            Some(out) if out.status.success() => acks
                .visits
                .push(last_line(&String::from_utf8_lossy(&out.stdout))),
            _ => return,
        }
    }
}

fn work_initial(mnt: &Path, fs: &PowerCutFs, acks: &mut Acks) {
    let w = world();
    let relay_home = tempfile::tempdir().unwrap();
    copy_dir(&w.relay_full, relay_home.path());
    let Ok(mut relay) = start_relay(relay_home.path()) else {
        panic!("the template relay does not start");
    };
    let home = mnt.join("home");
    let sync = |acks: &mut Acks| {
        let mut cmd = command("minqing");
        cmd.arg("--home")
            .arg(&home)
            .args(["sync", "--timeout", "20"]);
        match run_watched(cmd, fs, GRACE) {
            Some(out) if out.status.success() => {
                acks.residents.push(("V1".into(), 2000));
                acks.visits.extend(w.relay_visits.iter().cloned());
                true
            }
            _ => false,
        }
    };
    if sync(acks) {
        let mut cmd = command("minqing");
        cmd.arg("--home")
            .arg(&home)
            .args(["household", "list", "--village", "V1", "--json"]);
        if let Some(out) = run_watched(cmd, fs, GRACE).filter(|o| o.status.success()) {
            let hh = json(&String::from_utf8_lossy(&out.stdout))[0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for i in 0..3 {
                let mut cmd = command("minqing");
                let note = format!("同步后的走访 {i}");
                cmd.arg("--home").arg(&home).args([
                    "visit",
                    "log",
                    "--household",
                    &hh,
                    "--kind",
                    "普遍走访",
                    "--note",
                    &note,
                ]);
                match run_watched(cmd, fs, GRACE) {
                    Some(out) if out.status.success() => acks
                        .visits
                        .push(last_line(&String::from_utf8_lossy(&out.stdout))),
                    _ => break,
                }
            }
            sync(acks);
        }
    }
    kill(&mut relay);
}

fn work_relay(mnt: &Path, fs: &PowerCutFs, acks: &mut Acks) {
    let w = world();
    let relay_home = mnt.join("relay");
    let mut relay = match start_relay(&relay_home) {
        Ok(r) => r,
        Err(_) if fs.is_cut() => return,
        Err(e) => panic!("{e}"),
    };
    let laptop = tempfile::tempdir().unwrap();
    copy_dir(&w.pusher, laptop.path());
    let sync = |acks: &mut Acks| {
        let mut cmd = command("minqing");
        cmd.arg("--home")
            .arg(laptop.path())
            .args(["sync", "--timeout", "20"]);
        match run_watched(cmd, fs, GRACE) {
            Some(out) if out.status.success() => {
                for v in ["V1", "V2", "V3"] {
                    if !acks.residents.iter().any(|(x, _)| x == v) {
                        acks.residents.push((v.into(), 1500));
                    }
                }
                true
            }
            _ => false,
        }
    };
    if sync(acks) {
        let out = minqing(
            laptop.path(),
            &["household", "list", "--village", "V1", "--json"],
        );
        let hh = json(&ok(&out, "household list"))[0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for round in 0..2 {
            let mut new = Vec::new();
            for i in 0..2 {
                let note = format!("中继停电 {round}-{i}");
                let out = minqing(
                    laptop.path(),
                    &[
                        "visit",
                        "log",
                        "--household",
                        &hh,
                        "--kind",
                        "普遍走访",
                        "--note",
                        &note,
                    ],
                );
                new.push(last_line(&ok(&out, "visit log")));
            }
            if !sync(acks) {
                break;
            }
            acks.visits.extend(new);
        }
    }
    // The power is cut now if it was not before: the relay dies with it.
    fs.cut_now();
    kill(&mut relay);
}

/// Checks a relay image: it starts, and a fresh laptop syncing from it gets
/// every acknowledged village and visit.
fn check_relay(image: &Path, acks: &Acks) -> Result<(), String> {
    let w = world();
    let relay_home = image.join("relay");
    let mut relay = start_relay(&relay_home)?;
    let verifier = tempfile::tempdir().unwrap();
    copy_dir(&w.verifier, verifier.path());
    let out = minqing(verifier.path(), &["sync", "--timeout", "30"]);
    kill(&mut relay);
    if !out.status.success() {
        return Err(format!(
            "a fresh laptop cannot sync from the relay: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    check_laptop(verifier.path(), acks)
}

fn matrix(name: &str) {
    let w = world();
    let cuts = env_u64("MINQING_POWERCUT_E2E_CUTS").unwrap_or(2);
    let base = env_u64("MINQING_POWERCUT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000)
            .unwrap_or(1)
    });
    let pinned = std::env::var("MINQING_POWERCUT_AT")
        .ok()
        .map(|s| CutPoint::parse(&s).expect("MINQING_POWERCUT_AT is op:N or sync:N"));
    let setup: Vec<(&Path, &str)> = match name {
        "laptop" => vec![(w.standalone.as_path(), "home")],
        "initial" => vec![(w.fresh_laptop.as_path(), "home")],
        "relay" => vec![(w.relay_empty.as_path(), "relay")],
        other => panic!("unknown workload {other}"),
    };
    let run = |seed: u64, cut: Option<CutPoint>| {
        one_run(seed, cut, &setup, |mnt, fs, acks| match name {
            "laptop" => work_laptop(mnt, fs, acks),
            "initial" => work_initial(mnt, fs, acks),
            _ => work_relay(mnt, fs, acks),
        })
    };
    let check = |image: &Path, acks: &Acks| -> Result<(), String> {
        match name {
            "relay" => check_relay(image, acks)?,
            _ => check_laptop(&image.join("home"), acks)?,
        }
        check_no_blobs(image)
    };
    let total = match pinned {
        Some(_) => FsStats::default(),
        None => {
            let (acks, total, image, _, _) = run(base, None);
            check(image.path(), &acks).unwrap_or_else(|e| panic!("{name} without a cut: {e}"));
            total
        }
    };
    eprintln!(
        "{name}: {} operations, {} syncs uncut; {cuts} cuts from seed {base} (world in {})",
        total.ops,
        total.syncs(),
        w.dir.display()
    );
    let mut failures = Vec::new();
    for i in 0..cuts {
        let seed = base + i;
        let at = pinned.unwrap_or_else(|| CutPoint::choose(seed, total));
        let (acks, _, image, was_cut, note) = run(seed, Some(at));
        let res = check(image.path(), &acks);
        eprintln!(
            "{name} seed {seed} cut before {at}{}: {} visits and {} villages acknowledged, {note}: {}",
            if was_cut {
                ""
            } else {
                " (workload ended first)"
            },
            acks.visits.len(),
            acks.residents.len(),
            match &res {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("FAILED: {e}"),
            }
        );
        if let Err(e) = res {
            if std::env::var_os("MINQING_POWERCUT_KEEP").is_some() {
                eprintln!("image kept in {}", image.keep().display());
            }
            failures.push(format!(
                "{name} seed {seed} ({at}): {e} — replay: MINQING_POWERCUT_SEED={seed} MINQING_POWERCUT_AT={at} MINQING_POWERCUT_E2E_CUTS=1"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cuts} cuts failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn power_cuts_on_a_laptop_logging_visits_importing_and_compacting() {
    matrix("laptop");
}

#[test]
fn power_cuts_during_a_laptops_initial_sync() {
    matrix("initial");
}

#[test]
fn power_cuts_on_a_relay_receiving_villages() {
    matrix("relay");
}
