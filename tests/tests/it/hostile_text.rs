//! Text arriving by sync is not checked by this laptop's command line: a peer
//! (an older version, a tampered laptop) may have written a note with terminal
//! escape sequences, a lone CR, or a name with bidi overrides and zero-width
//! characters. The test writes such text straight into a stopped home's store
//! — as a sync would — and checks that `minqing` shows it escaped, visibly,
//! while `--json` returns it exactly as stored.

use automerge::{AutoCommit, ObjId, ReadDoc, ScalarValue, Value, transaction::Transactable};
use minqing_e2e::Home;
use minqing_sync::{DocId, Storage};

const EVIL_NOTE: &str = "正常\u{1b}]0;pwned\u{7}\u{1b}[2J\r覆盖\u{9b}31m";
const EVIL_NAME: &str = "张\u{202e}三\u{200b}";

/// Replaces every string value equal to `from` in the document with `to`.
fn replace(doc: &mut AutoCommit, obj: &ObjId, from: &str, to: &str) -> usize {
    let mut n = 0;
    let keys: Vec<String> = doc.keys(obj).collect();
    for key in keys {
        match doc.get(obj, key.as_str()).unwrap() {
            Some((Value::Object(_), child)) => n += replace(doc, &child, from, to),
            Some((Value::Scalar(s), _)) => {
                if let ScalarValue::Str(v) = s.as_ref()
                    && v.as_str() == from
                {
                    doc.put(obj, key.as_str(), to).unwrap();
                    n += 1;
                }
            }
            None => {}
        }
    }
    n
}

#[test]
fn text_from_a_peer_is_escaped_on_the_terminal_and_exact_in_json() {
    let home = Home::new();
    home.init("李书记");
    home.minqing(&["village", "add", "--id", "V1", "--name", "小河村"])
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
        "resident",
        "add",
        "--household",
        &hh,
        "--name",
        "PLACEHOLDERNAME",
    ])
    .ok();
    home.minqing(&[
        "visit",
        "log",
        "--household",
        &hh,
        "--kind",
        "regular",
        "--note",
        "PLACEHOLDERNOTE",
    ])
    .ok();

    // A peer's change, written to the store while no minqing runs.
    {
        // Homes are encrypted at rest: unlock with the test passphrase.
        let dir = home.path().join("store");
        let ring = minqing_store::keyring::Keyring::load(&dir).unwrap();
        let pass = minqing_store::secret::Passphrase::new(minqing_e2e::TEST_PASSPHRASE);
        let key = ring.open(&pass, &dir).unwrap().unwrap();
        let store = minqing_store::SledStorage::open_sealed(&dir, &key).unwrap();
        let id = DocId::new("V1").unwrap();
        let bytes = store.load(&id).unwrap().unwrap();
        let mut doc = AutoCommit::load(&bytes).unwrap();
        let heads = doc.get_heads();
        doc.set_actor(automerge::ActorId::from(b"peer-laptop-0001".to_vec()));
        assert_eq!(
            replace(&mut doc, &automerge::ROOT, "PLACEHOLDERNOTE", EVIL_NOTE),
            1
        );
        assert_eq!(
            replace(&mut doc, &automerge::ROOT, "PLACEHOLDERNAME", EVIL_NAME),
            1
        );
        store.append(&id, &doc.save_after(&heads)).unwrap();
        store.flush().unwrap();
    }

    for args in [&["visit", "list"][..], &["resident", "list"][..]] {
        let out = home.minqing(args).ok();
        for bad in ['\u{1b}', '\u{7}', '\r', '\u{9b}', '\u{202e}', '\u{200b}'] {
            assert!(!out.contains(bad), "{args:?} printed {bad:?} raw:\n{out:?}");
        }
        assert!(
            out.contains("\\u{1b}") || out.contains("\\u{202e}"),
            "{args:?} shows the characters visibly:\n{out}"
        );
    }
    let visits = home.minqing(&["visit", "list", "--json"]);
    assert!(!visits.stdout.contains('\u{1b}') && !visits.stdout.contains('\u{9b}'));
    let v = visits.json();
    let notes: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["note"].as_str())
        .collect();
    assert_eq!(notes, [EVIL_NOTE], "stored text stays as written");
    let r = home.minqing(&["resident", "list", "--json"]).json();
    assert_eq!(r[0]["name"], EVIL_NAME, "{r}");
}

/// The relay's side: a cadre name that reached the relay's store (here
/// written into it while `serve` is stopped) is escaped in the operator's
/// report on the terminal and exact in `--json`.
#[test]
fn text_in_the_relays_store_is_escaped_in_its_reports() {
    let mut relay = minqing_e2e::Relay::init("县中继");
    relay.village_add("V1", "小河村");
    let (_, home) = relay.laptop("PLACEHOLDERCADRE", "V1");
    relay.start();
    home.minqing(&["sync", "--timeout", "10"]).ok();
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
    home.minqing(&["sync", "--timeout", "10"]).ok();
    assert!(relay.stop(), "{}", relay.log());
    {
        let store = minqing_store::SledStorage::open(&relay.home().join("store")).unwrap();
        let id = DocId::new("V1").unwrap();
        let bytes = store.load(&id).unwrap().unwrap();
        let mut doc = AutoCommit::load(&bytes).unwrap();
        let heads = doc.get_heads();
        doc.set_actor(automerge::ActorId::from(b"peer-laptop-0001".to_vec()));
        assert!(replace(&mut doc, &automerge::ROOT, "PLACEHOLDERCADRE", EVIL_NAME) >= 1);
        store.append(&id, &doc.save_after(&heads)).unwrap();
        store.flush().unwrap();
    }
    let month = {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", "+8 hours", "+%Y-%m"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let shown = relay.run(&["report", "monthly", "--month", &month]).ok();
    for bad in ['\u{202e}', '\u{200b}'] {
        assert!(!shown.contains(bad), "printed {bad:?} raw:\n{shown:?}");
    }
    assert!(shown.contains("\\u{202e}"), "{shown}");
    let json = relay
        .run(&["report", "monthly", "--month", &month, "--json"])
        .json();
    assert_eq!(json["cadres"][0]["cadre"], EVIL_NAME, "{json}");
}
