//! A lost laptop reveals nothing (issue 12), with the real binaries: nothing of
//! a resident is in clear anywhere in a laptop home, its `removed/` copies, its
//! backups or the relay's CA directory after a realistic session; every file is
//! private; a wrong passphrase is refused, writes nothing and waits longer each
//! time; `passwd`, escrow recovery through the operator, remote wipe, and
//! backup → restore → write → sync without a reused automerge sequence number;
//! the key cache: one unlock serves a login's next commands until `minqing
//! lock`, `passwd` or a wipe, and commands that must prove the passphrase
//! still ask for it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use minqing_e2e::{
    ForgetCachedKey, Home, KEY_CACHE_ON, Relay, contains_bytes, files_under, key_cache_available,
    passphrase_file_with, store_id,
};
use minqing_store::keycache;

const ID_CARD: &str = "370811195803151224";
const PHONE: &str = "13905371234";
const NAME: &str = "李秀英";
const NOTE: &str = "老人独居，反映屋顶漏雨，孙子留守在家";

/// A device enrolled with `relay` for `villages`, set up from its bundle;
/// also returns the bundle's path.
fn device(relay: &Relay, cadre: &str, villages: &str) -> (String, Home, PathBuf) {
    let (id, bundle) = relay.enroll(cadre, villages);
    let home = Home::new();
    // The first contact needs the relay up (started for it if it is not).
    assert_eq!(relay.while_serving(|| home.init_bundle(&bundle)), id);
    (id, home, bundle)
}

#[track_caller]
fn sync(home: &Home) -> String {
    home.minqing(&["sync", "--timeout", "5"]).ok()
}

/// A household with one resident (id card, phone) and a key visit with a note.
fn realistic_day(home: &Home, village: &str) -> (String, String) {
    let h = home
        .minqing(&[
            "household",
            "add",
            "--village",
            village,
            "--address",
            "小河村三组12号",
        ])
        .id();
    let r = home
        .minqing(&[
            "resident",
            "add",
            "--household",
            &h,
            "--name",
            NAME,
            "--id-card",
            ID_CARD,
            "--phone",
            PHONE,
            "--tag",
            "独居老人",
        ])
        .id();
    home.minqing(&[
        "visit",
        "log",
        "--household",
        &h,
        "--resident",
        &r,
        "--kind",
        "重点走访",
        "--note",
        NOTE,
    ])
    .id();
    (h, r)
}

/// The lines of a PEM block's base64 body (the part that is the key itself).
fn pem_body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 32)
        .map(str::to_owned)
        .collect()
}

/// Every needle found in clear in any file under `dir`, with the file.
fn found_in_clear(dir: &Path, needles: &[String]) -> Vec<(PathBuf, String)> {
    let mut hits = Vec::new();
    for (path, bytes) in files_under(dir) {
        for n in needles {
            if contains_bytes(&bytes, n.as_bytes()) {
                hits.push((path.clone(), n.clone()));
            }
        }
    }
    hits
}

/// Every file and directory under `dir` (and `dir`) that group or others can use.
fn not_private(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).expect("listed paths exist");
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push((p.clone(), mode));
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&p)
                .expect("a directory can be listed")
                .flatten()
            {
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn after_a_realistic_session_nothing_is_in_clear_and_every_file_is_private() {
    let mut relay = Relay::init("城关镇民情中心");
    relay.village_add("V1", "小河村");
    relay.village_add("V2", "大桥村");
    relay.start();
    let (id, home, bundle) = device(&relay, "张伟", "V1,V2");
    sync(&home);
    realistic_day(&home, "V1");
    sync(&home);
    // Unsynced work in V2, then V2 is taken away: the work is kept in removed/.
    realistic_day(&home, "V2");
    relay.run(&["assign", &id, "--villages", "V1"]).ok();
    let out = sync(&home);
    assert!(out.contains("removed/"), "{out}");
    // A backup, inside the home and next to it.
    let backup = home.path().join("备份.sealed");
    home.minqing(&["backup", "--to", backup.to_str().unwrap()])
        .ok();
    // The session really happened: the data reads back through minqing.
    let list = home.minqing(&["resident", "list", "--json"]).ok();
    assert!(list.contains(NAME) && list.contains(PHONE), "{list}");
    let visits = home.minqing(&["visit", "list", "--json"]).ok();
    assert!(visits.contains(NOTE), "{visits}");
    relay.stop();

    // The laptop's private key (made on the laptop at first contact), read
    // through the store with the passphrase, to look for it in clear.
    let _ = bundle;
    let key_pem = {
        // Opened in this process as every minqing process opens it: with the
        // private umask (sled may write a snapshot file when it opens a log
        // that grew since the last one — here, views the reads kept).
        minqing_store::files::private_umask();
        let dir = home.path().join("store");
        let ring = minqing_store::keyring::Keyring::load(&dir).unwrap();
        let pass = minqing_store::secret::Passphrase::new(minqing_e2e::TEST_PASSPHRASE);
        let key = ring.open(&pass, &dir).unwrap().unwrap();
        let store = minqing_store::SledStorage::open_sealed(&dir, &key).unwrap();
        let raw = store
            .meta_get("relay_identity")
            .unwrap()
            .expect("an identity");
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        v["key_pem"].as_str().unwrap_or_default().to_owned()
    };
    assert!(
        key_pem.contains("PRIVATE KEY"),
        "the identity holds the key"
    );
    let mut needles: Vec<String> = vec![ID_CARD.into(), PHONE.into(), NAME.into(), NOTE.into()];
    needles.extend(pem_body_lines(&key_pem));
    assert!(needles.len() > 4, "the laptop has a key to look for");
    let removed: Vec<_> = files_under(&home.path().join("removed"));
    assert_eq!(removed.len(), 1, "one removed/ copy: {removed:?}");
    assert!(backup.is_file());
    let hits = found_in_clear(home.path(), &needles);
    assert!(hits.is_empty(), "in clear in the laptop home: {hits:?}");
    // The relay's CA directory: no laptop key, and the CA key is sealed.
    let ca = relay.home().join("ca");
    let hits = found_in_clear(&ca, &needles);
    assert!(
        hits.is_empty(),
        "in clear in the relay's CA directory: {hits:?}"
    );
    let ca_key = std::fs::read(ca.join("ca.key")).unwrap();
    assert!(
        !contains_bytes(&ca_key, b"PRIVATE KEY"),
        "the CA key is sealed"
    );
    let escrow_key = std::fs::read(ca.join("escrow.key")).unwrap();
    assert!(escrow_key.starts_with(b"MQSEALED1\n"));

    // Permissions: every file 0600-or-less and directory 0700-or-less, both sides.
    assert_eq!(not_private(home.path()), vec![], "laptop home");
    assert_eq!(not_private(&relay.home()), vec![], "relay home");

    // An existing home made readable by others is tightened on open, with a notice.
    let db = home.path().join("store").join("db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = home.minqing(&["village", "list"]);
    run.ok();
    assert!(run.stderr.contains("private (0600/0700)"), "{}", run.stderr);
    assert_eq!(not_private(home.path()), vec![]);
    std::fs::set_permissions(
        relay.home().join("registry"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let run = relay.run(&["devices"]);
    run.ok();
    assert!(run.stderr.contains("private (0600/0700)"), "{}", run.stderr);
    assert_eq!(not_private(&relay.home()), vec![]);

    // The operator can open the removed/ copy with the escrow key.
    let out = relay.home().join("..").join("V2.automerge");
    relay
        .run(&[
            "unseal",
            removed[0].0.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
    let doc = std::fs::read(&out).unwrap();
    assert!(
        contains_bytes(&doc, PHONE.as_bytes()),
        "the unsealed copy holds the unsynced work"
    );
}

/// Digest of every file of the store but the throttle (which a wrong
/// passphrase is allowed to write).
fn store_files(home: &Home) -> Vec<(PathBuf, Vec<u8>)> {
    files_under(&home.path().join("store"))
        .into_iter()
        .filter(|(p, _)| !p.ends_with("keyring.throttle"))
        .collect()
}

#[test]
fn wrong_passphrase_is_refused_writes_nothing_and_waits_longer_each_time() {
    let home = Home::new();
    home.init("张伟");
    home.minqing(&["village", "add", "--id", "V1", "--name", "小河村"])
        .ok();
    let (_g, wrong) = passphrase_file_with("not the passphrase");
    let wrong = wrong.to_str().unwrap().to_owned();
    let before = store_files(&home);
    let mut took = Vec::new();
    for n in 1..=3 {
        let t = Instant::now();
        let err = home
            .minqing_env(
                &[("MINQING_PASSPHRASE_FILE", &wrong)],
                &["village", "add", "--id", "V2", "--name", "大桥村"],
            )
            .fails(4);
        took.push(t.elapsed());
        assert!(err.contains("wrong passphrase"), "{err}");
        assert!(
            err.contains(&format!("failed attempts in a row: {n}")),
            "{err}"
        );
        assert!(err.contains("Nothing was changed"), "{err}");
    }
    assert_eq!(
        store_files(&home),
        before,
        "a wrong passphrase wrote to the store"
    );
    // The first try is immediate; the second waits 1 s after the first
    // failure, the third 2 s after the second (less the few ms between them).
    assert!(took[0] < Duration::from_millis(900), "{took:?}");
    assert!(took[1] >= Duration::from_millis(900), "{took:?}");
    assert!(took[2] >= Duration::from_millis(1900), "{took:?}");
    assert!(took[2] > took[1], "{took:?}");
    // The right passphrase still waits out the last delay (4 s after the third
    // failure, less the time since), then works and resets it.
    let t = Instant::now();
    home.minqing(&["village", "list"]).ok();
    assert!(
        t.elapsed() >= Duration::from_millis(3000),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    home.minqing(&["village", "list"]).ok();
    assert!(t.elapsed() < Duration::from_secs(3), "the count was reset");
    assert!(
        !home.minqing(&["village", "list"]).ok().contains("V2"),
        "nothing of the refused command was written"
    );
}

#[test]
fn passwd_changes_the_passphrase_and_the_old_one_stops_working() {
    let home = Home::new();
    home.init("张伟");
    let (_g, new) = passphrase_file_with("新的口令 2026 new");
    let new = new.to_str().unwrap().to_owned();
    let (_g2, short) = passphrase_file_with("short");
    home.minqing(&["passwd", "--new-passphrase-file", short.to_str().unwrap()])
        .fails(2);
    home.minqing(&["passwd", "--new-passphrase-file", &new])
        .ok();
    home.minqing(&["whoami"]).fails(4);
    home.minqing_env(&[("MINQING_PASSPHRASE_FILE", &new)], &["whoami"])
        .ok();
    assert!(!contains_bytes(
        &std::fs::read(home.path().join("store/keyring")).unwrap(),
        "新的口令".as_bytes()
    ));
}

#[test]
fn a_forgotten_passphrase_is_recovered_through_the_operator_once() {
    let relay = Relay::init("城关镇民情中心");
    relay.village_add("V1", "小河村");
    let (id, home, _) = device(&relay, "张伟", "V1");
    let work = tempfile::tempdir().unwrap();
    // The cadre forgot the passphrase: every command fails…
    let (_g, forgotten) = passphrase_file_with("I do not remember");
    let forgotten = forgotten.to_str().unwrap().to_owned();
    home.minqing_env(&[("MINQING_PASSPHRASE_FILE", &forgotten)], &["whoami"])
        .fails(4);
    // …but a request can be made without it.
    let req = work.path().join(format!("{id}-request.json"));
    let req_s = req.to_str().unwrap().to_owned();
    home.minqing_env(
        &[("MINQING_PASSPHRASE_FILE", &forgotten)],
        &["recovery", "request", "--to", &req_s],
    )
    .ok();
    let answer = work.path().join(format!("{id}-answer.json"));
    let answer_s = answer.to_str().unwrap().to_owned();
    relay.run(&["recover", &req_s, "--out", &answer_s]).ok();
    assert!(
        relay
            .audit()
            .iter()
            .any(|e| e["kind"] == "escrow_recover" && e["device_id"] == id.as_str()),
        "the recovery is audited"
    );
    let (_g2, fresh) = passphrase_file_with("刚设的新口令 fresh");
    let fresh = fresh.to_str().unwrap().to_owned();
    home.minqing(&[
        "recovery",
        "finish",
        &answer_s,
        "--new-passphrase-file",
        &fresh,
    ])
    .ok();
    let who = home
        .minqing_env(
            &[("MINQING_PASSPHRASE_FILE", &fresh)],
            &["whoami", "--json"],
        )
        .json();
    assert_eq!(who["device_id"], id.as_str());
    // One time only.
    let err = home
        .minqing(&[
            "recovery",
            "finish",
            &answer_s,
            "--new-passphrase-file",
            &fresh,
        ])
        .fails(1);
    assert!(err.contains("no recovery is pending"), "{err}");
    // Another relay's escrow key cannot answer.
    let other = Relay::init("别的中继");
    let req2 = work.path().join("req2.json");
    home.minqing(&["recovery", "request", "--to", req2.to_str().unwrap()])
        .ok();
    let out2 = work.path().join("answer2.json");
    other
        .run(&[
            "recover",
            req2.to_str().unwrap(),
            "--out",
            out2.to_str().unwrap(),
        ])
        .fails(1);
    assert!(!out2.exists());
}

#[test]
fn remote_wipe_destroys_the_keys_when_the_laptop_connects_and_is_audited() {
    let mut relay = Relay::init("城关镇民情中心");
    relay.village_add("V1", "小河村");
    relay.start();
    let (id, home, _) = device(&relay, "张伟", "V1");
    sync(&home);
    realistic_day(&home, "V1");
    sync(&home);
    let run = relay.run(&["revoke", "--wipe", &id]);
    run.ok();
    assert!(run.stderr.contains("last completed sync"), "{}", run.stderr);
    // The key cache (where the kernel has one): the key a command cached
    // before the wipe goes with the keyring.
    let cached = key_cache_available().then(|| {
        home.minqing_env(&[KEY_CACHE_ON], &["whoami"]).ok();
        let store = store_id(home.path());
        assert!(keycache::is_cached(&store));
        ForgetCachedKey(store)
    });
    let err = home
        .minqing_env(&[KEY_CACHE_ON], &["sync", "--timeout", "5"])
        .fails(3);
    assert!(err.contains("wiped"), "{err}");
    if let Some(ForgetCachedKey(store)) = &cached {
        assert!(!keycache::is_cached(store), "the wipe left the key cached");
    }
    // The data is unreadable now: no keyring, nothing in clear.
    assert!(!home.path().join("store/keyring").exists());
    let err = home.minqing(&["resident", "list"]).fails(1);
    assert!(err.contains("wiped"), "{err}");
    let hits = found_in_clear(
        home.path(),
        &[ID_CARD.into(), PHONE.into(), NAME.into(), NOTE.into()],
    );
    assert!(hits.is_empty(), "{hits:?}");
    let audit = relay.audit();
    let kinds: Vec<&str> = audit
        .iter()
        .filter(|e| e["device_id"] == id.as_str())
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"wipe_sent"), "{kinds:?}");
    assert!(kinds.contains(&"wipe_confirmed"), "{kinds:?}");
    let devices = relay.run(&["devices", "--json"]).json();
    assert_eq!(devices[0]["revoked"], true);
    relay.stop();
}

#[test]
fn a_restored_backup_writes_and_syncs_without_reusing_a_sequence_number() {
    let mut relay = Relay::init("城关镇民情中心");
    relay.village_add("V1", "小河村");
    relay.start();
    let (_id, laptop, _) = device(&relay, "张伟", "V1");
    sync(&laptop);
    let (h, _) = realistic_day(&laptop, "V1");
    sync(&laptop);
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("backup.sealed");
    laptop
        .minqing(&["backup", "--to", backup.to_str().unwrap()])
        .ok();
    // After the backup the laptop writes more and syncs: the relay has
    // changes of this actor that the backup lacks.
    let late = |home: &Home, note: &str| {
        home.minqing(&[
            "visit",
            "log",
            "--household",
            &h,
            "--kind",
            "普遍走访",
            "--note",
            note,
        ])
        .id()
    };
    let mut expected = Vec::new();
    for i in 0..3 {
        expected.push(late(&laptop, &format!("备份之后第{i}次走访")));
    }
    sync(&laptop);
    // The laptop is lost; a new machine restores the backup.
    let restored = Home::new();
    let out = restored
        .minqing(&["restore", backup.to_str().unwrap()])
        .ok();
    assert!(out.contains("new actor incarnation"), "{out}");
    expected.push(late(&restored, "恢复之后的走访"));
    let run = restored.minqing(&["sync", "--timeout", "5"]);
    let out = run.ok();
    assert!(
        !out.contains("duplicate seq") && !run.stderr.contains("duplicate seq"),
        "{out}"
    );
    let visits = restored.minqing(&["visit", "list", "--json"]).ok();
    for v in &expected {
        assert!(visits.contains(v.as_str()), "visit {v} lost: {visits}");
    }
    assert!(visits.contains(NOTE), "{visits}");
    // A second sync is clean, and another laptop of the village sees it all.
    sync(&restored);
    let (_, other, _) = device(&relay, "王芳", "V1");
    sync(&other);
    let theirs = other.minqing(&["visit", "list", "--json"]).ok();
    for v in &expected {
        assert!(
            theirs.contains(v.as_str()),
            "visit {v} did not reach the relay"
        );
    }
    relay.stop();
    // A wrong backup passphrase writes nothing.
    let (_g, wrong) = passphrase_file_with("not the backup passphrase");
    let again = Home::new();
    again
        .minqing(&[
            "restore",
            backup.to_str().unwrap(),
            "--backup-passphrase-file",
            wrong.to_str().unwrap(),
        ])
        .fails(1);
    assert!(files_under(again.path()).is_empty());
}

// The key cache (docs/security.md, "Unlocked once per login session"). The
// harness turns it off for every command; these tests turn it on
// (`KEY_CACHE_ON`). Each home has its own store id, so tests running at once
// never share a cached key; `ForgetCachedKey` drops it when a test ends.

/// What a command that needs the passphrase says when it has neither a
/// passphrase file nor a terminal (exit 1).
const NO_PASSPHRASE: &str = "the passphrase is needed and there is no terminal to ask on";

#[test]
fn one_unlock_serves_the_next_commands_of_the_login_until_minqing_lock() {
    if !key_cache_available() {
        return;
    }
    let home = Home::new();
    home.init("张伟");
    let id = store_id(home.path());
    let _forget = ForgetCachedKey(id.clone());
    // With the cache off (the harness's default) nothing was kept.
    assert!(!keycache::is_cached(&id));
    let err = home
        .minqing_without_passphrase(&[KEY_CACHE_ON], &["whoami"])
        .fails(1);
    assert!(err.contains(NO_PASSPHRASE), "{err}");

    // One command unlocks with the passphrase…
    home.minqing_env(
        &[KEY_CACHE_ON],
        &["village", "add", "--id", "V1", "--name", "小河村"],
    )
    .ok();
    assert!(keycache::is_cached(&id));
    // …and the next ones need none: no file, no terminal.
    let list = home
        .minqing_without_passphrase(&[KEY_CACHE_ON], &["village", "list"])
        .ok();
    assert!(list.contains("小河村"), "{list}");
    home.minqing_without_passphrase(
        &[KEY_CACHE_ON],
        &[
            "household",
            "add",
            "--village",
            "V1",
            "--address",
            "一组1号",
        ],
    )
    .ok();
    // A passphrase file is not even read then: a wrong one counts no failure.
    let (_g, wrong) = passphrase_file_with("not the passphrase");
    let wrong = wrong.to_str().unwrap().to_owned();
    home.minqing_env(
        &[KEY_CACHE_ON, ("MINQING_PASSPHRASE_FILE", &wrong)],
        &["whoami"],
    )
    .ok();
    assert!(!home.path().join("store/keyring.throttle").exists());
    // A process with the cache off does not use the cached key.
    let err = home.minqing_without_passphrase(&[], &["whoami"]).fails(1);
    assert!(err.contains(NO_PASSPHRASE), "{err}");
    assert!(keycache::is_cached(&id));

    // `minqing lock`, even from a process with the cache off, drops it.
    let out = home.minqing(&["lock"]).ok();
    assert!(
        out.contains("locked: the next command asks for the passphrase"),
        "{out}"
    );
    assert!(!keycache::is_cached(&id));
    let err = home
        .minqing_without_passphrase(&[KEY_CACHE_ON], &["village", "list"])
        .fails(1);
    assert!(err.contains(NO_PASSPHRASE), "{err}");
    // Nothing cached, or no home at all: nothing to do, and no error.
    home.minqing_env(&[KEY_CACHE_ON], &["lock"]).ok();
    let out = Home::new().minqing(&["lock"]).ok();
    assert!(out.contains("nothing to lock"), "{out}");
}

#[test]
fn init_and_restore_cache_the_new_key_but_passwd_and_backup_ask_for_the_passphrase() {
    if !key_cache_available() {
        return;
    }
    let home = Home::new();
    home.minqing_env(&[KEY_CACHE_ON], &["init", "--cadre", "张伟"])
        .ok();
    let id = store_id(home.path());
    let _forget = ForgetCachedKey(id.clone());
    assert!(keycache::is_cached(&id), "init cached the new key");
    home.minqing_without_passphrase(
        &[KEY_CACHE_ON],
        &["village", "add", "--id", "V1", "--name", "小河村"],
    )
    .ok();

    // A backup is sealed with the laptop's passphrase: asked for even so.
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("backup.sealed");
    let backup = backup.to_str().unwrap();
    let err = home
        .minqing_without_passphrase(&[KEY_CACHE_ON], &["backup", "--to", backup])
        .fails(1);
    assert!(err.contains(NO_PASSPHRASE), "{err}");
    home.minqing_env(&[KEY_CACHE_ON], &["backup", "--to", backup])
        .ok();
    // A restored home's new key is cached like a new home's.
    let restored = Home::new();
    restored
        .minqing_env(&[KEY_CACHE_ON], &["restore", backup])
        .ok();
    let restored_id = store_id(restored.path());
    let _forget_restored = ForgetCachedKey(restored_id.clone());
    assert_ne!(restored_id, id);
    assert!(
        keycache::is_cached(&restored_id),
        "restore cached the new key"
    );
    let list = restored
        .minqing_without_passphrase(&[KEY_CACHE_ON], &["village", "list"])
        .ok();
    assert!(list.contains("小河村"), "{list}");

    // `passwd` proves the current passphrase (a cached key proves nothing)…
    let (_g, new) = passphrase_file_with("新的口令 2026 new");
    let new = new.to_str().unwrap().to_owned();
    let err = home
        .minqing_without_passphrase(&[KEY_CACHE_ON], &["passwd", "--new-passphrase-file", &new])
        .fails(1);
    assert!(err.contains(NO_PASSPHRASE), "{err}");
    assert!(keycache::is_cached(&id));
    // …and drops the key: the next command asks for the new passphrase.
    home.minqing_env(&[KEY_CACHE_ON], &["passwd", "--new-passphrase-file", &new])
        .ok();
    assert!(!keycache::is_cached(&id), "passwd left the key cached");
    let err = home
        .minqing_without_passphrase(&[KEY_CACHE_ON], &["whoami"])
        .fails(1);
    assert!(err.contains(NO_PASSPHRASE), "{err}");
    home.minqing_env(
        &[KEY_CACHE_ON, ("MINQING_PASSPHRASE_FILE", &new)],
        &["whoami"],
    )
    .ok();
    assert!(keycache::is_cached(&id));
}

#[test]
fn init_from_a_bundle_caches_the_key() {
    if !key_cache_available() {
        return;
    }
    let relay = Relay::init("城关镇民情中心");
    relay.village_add("V1", "小河村");
    let (_, bundle) = relay.enroll("张伟", "V1");
    let home = Home::new();
    relay.while_serving(|| {
        home.minqing_env(
            &[KEY_CACHE_ON],
            &["init", "--bundle", bundle.to_str().unwrap()],
        )
        .ok()
    });
    let id = store_id(home.path());
    let _forget = ForgetCachedKey(id.clone());
    assert!(keycache::is_cached(&id));
    home.minqing_without_passphrase(&[KEY_CACHE_ON], &["whoami"])
        .ok();
}
