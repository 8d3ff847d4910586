//! Issue 9, end to end with real processes: an enrolled laptop that sends
//! content it should not — a change written as another laptop (finding 1), a
//! compression bomb (finding 2), a change that breaks the village's layout
//! (finding 3), a garbage chunk inside a well-formed message (finding 6) — is
//! refused and audited, nothing of it is stored, and the honest laptops keep
//! syncing. Plus quarantine of a village that does not load on a laptop.
//! The hostile laptop is `mq-hostile` (tests/src/bin), which sends one forged
//! sync message with an enrolled laptop's certificate over real QUIC.

use minqing_e2e::{Home, Relay, Run, command};

fn sync(home: &Home) -> Run {
    home.minqing(&["sync", "--timeout", "10"])
}

fn hostile(home: &Home, village: &str, attack: &[&str]) -> Run {
    let mut cmd = command("mq-hostile");
    cmd.arg(home.path()).arg(village).args(attack);
    let cmdline = format!("mq-hostile {village} {}", attack.join(" "));
    Run::new(cmdline, cmd.output().expect("mq-hostile runs"))
}

/// A relay with V1 and two laptops holding it, both synced once.
fn county() -> (Relay, (String, Home), (String, Home)) {
    let mut relay = Relay::init("county");
    relay.village_add("V1", "红星村");
    relay.start();
    let a = relay.laptop("王芳", "V1");
    let b = relay.laptop("李明", "V1");
    sync(&a.1).ok();
    sync(&b.1).ok();
    (relay, a, b)
}

fn audited(relay: &Relay, kind: &str, device: &str, village: &str) -> Option<String> {
    relay
        .audit()
        .into_iter()
        .find(|e| e["kind"] == kind && e["device_id"] == device && e["village"] == village)
        .map(|e| e["detail"].as_str().unwrap_or_default().to_owned())
}

fn households(home: &Home) -> String {
    home.minqing(&["household", "list", "--village", "V1", "--json"])
        .ok()
}

#[test]
fn a_change_written_as_another_laptop_is_refused_audited_and_the_victim_keeps_syncing() {
    let (relay, (a_id, a), (b_id, b)) = county();
    let attack = hostile(&b, "V1", &["forged-actor", &a_id]);
    assert!(attack.status.success(), "{attack:?}");
    // The victim keeps writing and syncing.
    a.minqing(&[
        "household",
        "add",
        "--village",
        "V1",
        "--address",
        "一组 1 号",
    ])
    .ok();
    let run = sync(&a);
    assert!(
        run.status.success(),
        "after b's forgery a cannot sync: {}{}\nthe relay answered the forgery: {}",
        run.stdout,
        run.stderr,
        attack.stdout
    );
    sync(&b).ok();
    for home in [&a, &b] {
        let list = households(home);
        assert!(list.contains("一组 1 号"), "{list}");
        assert!(
            !list.contains("伪造的户"),
            "the forged household reached a laptop: {list}"
        );
    }
    assert!(
        attack.stdout.contains("refused ForgedActor"),
        "{}",
        attack.stdout
    );
    let detail = audited(&relay, "refused_change", &b_id, "V1").expect("the forgery is audited");
    assert!(detail.contains("forged_actor"), "{detail}");
}

#[test]
fn a_compression_bomb_is_refused_and_the_village_keeps_syncing() {
    let (relay, (_, a), (b_id, b)) = county();
    // ~70 KB on the wire that inflates to 70 MiB, beyond the 64 MiB frame.
    let attack = hostile(&b, "V1", &["bomb", "70"]);
    assert!(attack.status.success(), "{attack:?}");
    a.minqing(&[
        "household",
        "add",
        "--village",
        "V1",
        "--address",
        "二组 2 号",
    ])
    .ok();
    let run = sync(&a);
    assert!(
        run.status.success(),
        "after the bomb a cannot sync V1: {}{}\nthe relay answered the bomb: {}",
        run.stdout,
        run.stderr,
        attack.stdout
    );
    assert!(
        attack.stdout.contains("refused TooLarge"),
        "{}",
        attack.stdout
    );
    assert!(audited(&relay, "refused_change", &b_id, "V1").is_some());
}

#[test]
fn a_change_that_breaks_the_layout_is_refused_and_the_village_stays_readable() {
    let (mut relay, (_, a), (b_id, b)) = county();
    let attack = hostile(&b, "V1", &["schema"]);
    assert!(attack.status.success(), "{attack:?}");
    a.minqing(&[
        "household",
        "add",
        "--village",
        "V1",
        "--address",
        "三组 3 号",
    ])
    .ok();
    sync(&a).ok();
    let list = a.minqing(&["village", "list"]).ok();
    assert!(
        list.contains("V1"),
        "V1 became unreadable on the other laptop: {list}\nthe relay answered: {}",
        attack.stdout
    );
    // County reports still run, with the relay stopped (from the store) too.
    relay.stop();
    relay.run(&["report", "monthly", "--month", "2026-03"]).ok();
    assert!(
        attack.stdout.contains("refused Schema"),
        "{}",
        attack.stdout
    );
    let detail = audited(&relay, "refused_change", &b_id, "V1").expect("audited");
    assert!(detail.contains("residents"), "{detail}");
}

#[test]
fn a_garbage_chunk_makes_the_message_refused_not_half_applied() {
    let (relay, (_, a), (b_id, b)) = county();
    let attack = hostile(&b, "V1", &["garbage"]);
    assert!(attack.status.success(), "{attack:?}");
    assert!(
        attack.stdout.contains("refused BadChange"),
        "a message with a garbage chunk was not refused: {}",
        attack.stdout
    );
    assert!(audited(&relay, "refused_change", &b_id, "V1").is_some());
    sync(&a).ok();
}

#[test]
fn a_village_that_does_not_load_on_a_laptop_is_named_and_fetched_again() {
    let (_relay, (_, a), _) = county();
    a.minqing(&[
        "household",
        "add",
        "--village",
        "V1",
        "--address",
        "四组 4 号",
    ])
    .ok();
    sync(&a).ok();
    hostile(&a, "V1", &["damage"]).ok();
    let list = a.minqing(&["village", "list"]);
    let err = list.fails(1);
    assert!(
        err.contains("village V1") && err.contains("minqing sync"),
        "{err}"
    );
    let run = sync(&a);
    let err = run.fails(1);
    assert!(err.contains("quarantine"), "{err}");
    // The relay's copy is back, with the household.
    let list = households(&a);
    assert!(list.contains("四组 4 号"), "{list}");
    a.minqing(&["village", "list"]).ok();
}

#[test]
fn a_copied_laptop_writes_as_a_new_incarnation_and_both_copies_keep_syncing() {
    // A home copied to a second laptop (or restored from a backup) holds the
    // same device id and store: with one actor both would write the same
    // sequence numbers, and one of them could never sync again ("duplicate seq").
    let (_relay, (_, a), (_, b)) = county();
    a.minqing(&[
        "household",
        "add",
        "--village",
        "V1",
        "--address",
        "原来的户",
    ])
    .ok();
    sync(&a).ok();
    let copy = Home::copy_of(&a);
    a.minqing(&[
        "household",
        "add",
        "--village",
        "V1",
        "--address",
        "甲写的户",
    ])
    .ok();
    copy.minqing(&[
        "household",
        "add",
        "--village",
        "V1",
        "--address",
        "副本写的户",
    ])
    .ok();
    for home in [&a, &copy, &a, &copy, &b] {
        let run = sync(home);
        assert!(
            run.status.success(),
            "a laptop and its copy cannot both sync: {}{}",
            run.stdout,
            run.stderr
        );
    }
    for home in [&a, &copy, &b] {
        let list = households(home);
        assert!(
            list.contains("甲写的户") && list.contains("副本写的户"),
            "{list}"
        );
    }
}

#[test]
fn a_county_report_names_a_village_that_does_not_load_and_reports_the_others() {
    let (relay, (_, a), _) = county();
    let mut relay = relay;
    relay.village_add("V2", "白云村");
    a.minqing(&[
        "household",
        "add",
        "--village",
        "V1",
        "--address",
        "五组 5 号",
    ])
    .ok();
    sync(&a).ok();
    // V2's export (what reports read while serve runs) is damaged.
    let export = relay.home().join("export").join("V2.automerge");
    std::fs::write(&export, b"\x85\x6f\x4a\x83 damaged").expect("write");
    let run = relay.run(&["report", "monthly", "--month", "2026-03"]);
    let out = run.ok();
    assert!(
        run.stderr.contains("V2") && run.stderr.contains("left out"),
        "{}",
        run.stderr
    );
    assert!(!out.is_empty());
    relay.stop();
}

#[test]
fn minqing_sync_says_why_the_relay_refused_a_village_and_exits_1() {
    let (relay, (a_id, _a), (b_id, b)) = county();
    hostile(&b, "V1", &["inject-forged", &a_id]).ok();
    let run = sync(&b);
    let out = run.fails(1);
    let text = format!("{}{out}", run.stdout);
    assert!(
        text.contains("V1")
            && text.contains("refused by the relay")
            && text.contains("not this laptop's"),
        "{text}"
    );
    assert!(audited(&relay, "refused_change", &b_id, "V1").is_some());
}
