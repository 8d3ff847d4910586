//! One-time enrolment from the laptop's side (issue 10, finding 7's bundle
//! parts): `init --bundle` checks everything before it writes anything, a
//! failed first contact leaves the home re-runnable, and a home set up on its
//! own joins a relay with `minqing enroll --bundle`, keeping its villages.
//!
//! Each test fails on 5a5e579 (see the commit that added this file).

use std::path::{Path, PathBuf};

use minqing_e2e::{Home, Relay};

/// A copy of `bundle` with `field` replaced by `value`, written next to it.
fn tampered(bundle: &Path, name: &str, field: &str, value: serde_json::Value) -> PathBuf {
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle).expect("the bundle is readable"))
            .expect("the bundle is JSON");
    v[field] = value;
    let path = bundle.with_file_name(format!("{name}.bundle"));
    std::fs::write(&path, serde_json::to_vec_pretty(&v).expect("JSON")).expect("written");
    path
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A bad identity in a bundle is refused with one line, exit 2, and nothing
/// written — the home can be set up afterwards with a good bundle.
#[test]
fn init_bundle_checks_everything_before_writing() {
    let mut relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    relay.start();
    let (id, good) = relay.enroll("王芳", "V1");
    let ca: String = {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&good).expect("readable")).expect("JSON");
        v["ca_cert_pem"].as_str().expect("a CA").to_owned()
    };
    // One byte of the CA's base64 flipped.
    let mut flipped = ca.clone().into_bytes();
    let at = flipped.len() / 2;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    let cases = [
        ("device", "device_id", serde_json::json!("../../etc")),
        ("esc", "cadre", serde_json::json!("王\u{1b}]0;x\u{7}芳")),
        ("long", "cadre", serde_json::json!("王".repeat(40_000))),
        ("bidi", "cadre", serde_json::json!("王\u{202e}芳")),
        ("addr", "relay_addr", serde_json::json!("not an address")),
        ("village", "villages", serde_json::json!([".."])),
        (
            "ca",
            "ca_cert_pem",
            serde_json::json!(String::from_utf8(flipped).expect("ASCII")),
        ),
    ];
    for (name, field, value) in cases {
        let bad = tampered(&good, name, field, value);
        let home = Home::new();
        let err = home.minqing(&["init", "--bundle", p(&bad)]).fails(2);
        assert!(
            err.starts_with("error: ") && err.trim().lines().count() == 1,
            "{name}: {err}"
        );
        assert!(
            home.files().is_empty(),
            "{name}: a refused bundle wrote {:?}",
            home.files().iter().map(|f| &f.0).collect::<Vec<_>>()
        );
    }
    // The good bundle still works, once.
    let home = Home::new();
    assert_eq!(home.init_bundle(&good), id);
    home.minqing(&["whoami"]).ok();
}

/// A first contact that cannot reach the relay leaves the home pending, not
/// stuck: the same command works once the relay is up.
#[test]
fn a_failed_first_contact_can_be_run_again() {
    let mut relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    let (id, bundle) = relay.enroll("王芳", "V1");
    let home = Home::new();
    // (The default --timeout, 10 s: the command line of 5a5e579.)
    let err = home.minqing(&["init", "--bundle", p(&bundle)]).fails(1);
    assert!(
        err.contains("unreachable") && err.contains("run the same command again"),
        "{err}"
    );
    // Not set up, and says what to do.
    let err = home.minqing(&["whoami"]).fails(1);
    assert!(err.contains("not finished"), "{err}");
    relay.start();
    let again = home.minqing(&["init", "--bundle", p(&bundle), "--timeout", "5"]);
    assert_eq!(again.id(), id);
    let out = home.minqing(&["sync", "--timeout", "5"]).ok();
    assert!(out.contains("V1\tadded"), "{out}");
}

/// A laptop set up standalone (the README tour) joins a relay: its villages
/// stay and are offered; the assigned one merges with the relay's copy and
/// reaches another laptop, the unassigned one is set aside in removed/.
#[test]
fn a_standalone_home_joins_a_relay_and_keeps_its_villages() {
    let solo = Home::new();
    let solo_id = solo.init("张伟");
    solo.minqing(&["village", "add", "--id", "V1", "--name", "小河村"])
        .ok();
    solo.minqing(&["village", "add", "--id", "V9", "--name", "本地村"])
        .ok();
    let h = solo
        .minqing(&[
            "household",
            "add",
            "--village",
            "V1",
            "--address",
            "小河村三组5号",
        ])
        .id();
    solo.minqing(&[
        "visit",
        "log",
        "--household",
        &h,
        "--kind",
        "普遍走访",
        "--note",
        "离线时记录的走访。",
    ])
    .ok();

    let mut relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    relay.start();
    let bundle = relay.dir_path().join("solo.bundle");
    let out = relay
        .run(&[
            "enroll",
            "--cadre",
            "张伟",
            "--villages",
            "V1",
            "--device-id",
            &solo_id,
            "--out",
            p(&bundle),
        ])
        .id();
    assert_eq!(out, solo_id);
    // A bundle for another device is refused, nothing changed.
    let (_, other_bundle) = relay.enroll("王芳", "V1");
    let err = solo
        .minqing(&["enroll", "--bundle", p(&other_bundle)])
        .fails(1);
    assert!(err.contains(&solo_id), "{err}");

    let joined = solo.minqing(&["enroll", "--bundle", p(&bundle)]);
    assert_eq!(joined.id(), solo_id);
    let out = solo.minqing(&["sync", "--timeout", "5"]).ok();
    assert!(out.contains("V1\tin sync"), "{out}");
    // V9 is not assigned: set aside as any village the relay does not give
    // this laptop, its work kept in removed/ for the operator.
    assert!(out.contains("V9") && out.contains("removed/V9-"), "{out}");
    let kept: Vec<_> = std::fs::read_dir(solo.path().join("removed"))
        .expect("removed/ exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("V9-"))
        .collect();
    assert_eq!(kept.len(), 1, "V9's work is kept aside");
    let (_, teammate) = relay.laptop("王芳", "V1");
    teammate.minqing(&["sync", "--timeout", "5"]).ok();
    let visits = teammate.minqing(&["visit", "list", "--json"]).ok();
    assert!(
        visits.contains("离线时记录的走访。"),
        "the standalone laptop's offline work reached the relay: {visits}"
    );
}

/// `minqing-skeleton`, the actor of every village's skeleton (which the relay
/// accepts from anyone), is no laptop's id: enrolling under it is refused
/// with a message saying so (exit 2), and nothing is written.
#[test]
fn the_skeleton_actor_cannot_be_enrolled_as_a_laptop() {
    let relay = Relay::init("县中继");
    relay.village_add("V1", "小河村");
    let out = relay.home().join("skeleton.bundle");
    for id in ["minqing-skeleton", "MINQING-SKELETON"] {
        let err = relay
            .run(&[
                "enroll",
                "--cadre",
                "王芳",
                "--villages",
                "V1",
                "--device-id",
                id,
                "--out",
                p(&out),
            ])
            .fails(2);
        assert!(
            err.contains("reserved") && err.contains("skeleton"),
            "{err}"
        );
        assert!(!out.exists(), "no bundle is written");
    }
    let devices = relay.run(&["devices", "--json"]).json();
    assert_eq!(devices.as_array().map(Vec::len), Some(0), "{devices}");
}
