//! The village index (docs/store.md, "Village index and document versions"):
//! a command that names one record finds its village through the index and
//! loads only that one — and never answers differently from a read of every
//! village: not after changes the index never saw (a sync appending straight
//! to the store, a merge), not when its values are damaged, not when it lies.

use minqing_e2e::{Home, open_home_store};
use minqing_sync::{DocId, Storage};

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

/// A home with villages V1 and V2, a household in each and a resident in V1's.
fn setup() -> (Home, String, String, String) {
    let home = Home::new();
    home.init("张伟");
    village(&home, "V1", "小河村");
    village(&home, "V2", "白云村");
    let h1 = household(&home, "V1", "一组 1 号");
    let h2 = household(&home, "V2", "二组 2 号");
    let r1 = home
        .minqing(&["resident", "add", "--household", &h1, "--name", "李秀英"])
        .id();
    (home, h1, h2, r1)
}

fn set_meta(home: &Home, key: &str, value: &[u8]) {
    let store = open_home_store(home.path());
    store.meta_put(key, value).expect("meta put");
    store.flush().expect("flush");
}

#[test]
fn records_written_where_the_index_did_not_see_them_are_found() {
    let (a, _h1, _h2, r1) = setup();
    let shown = a.minqing(&["resident", "show", &r1, "--json"]).json();
    assert_eq!(shown["name"], "李秀英");

    // As a sync does: another laptop's household arrives in V2 by an append
    // straight to the store, past the index.
    let b = Home::copy_of(&a);
    let hb = household(&b, "V2", "三组 3 号");
    let v2 = DocId::new("V2").unwrap();
    let theirs = {
        let store = open_home_store(b.path());
        store.load(&v2).expect("load").expect("V2 held")
    };
    {
        let store = open_home_store(a.path());
        store.append(&v2, &theirs).expect("append");
        store.flush().expect("flush");
    }
    let added = a.minqing(&["resident", "add", "--household", &hb[..8], "--name", "王芳"]);
    assert!(added.ok().contains("in V2"), "{}", added.stdout);

    // A merge from another home (`debug merge-from`) brings records no
    // command of this home listed.
    let c = Home::copy_of(&a);
    let hc = household(&c, "V1", "四组 4 号");
    a.minqing(&["debug", "merge-from", c.path().to_str().unwrap()])
        .ok();
    let logged = a.minqing(&[
        "visit",
        "log",
        "--household",
        &hc,
        "--kind",
        "普遍走访",
        "--note",
        "合并后走访",
    ]);
    assert!(logged.ok().contains("in V1"), "{}", logged.stdout);
    // And the resident still answers as before.
    assert_eq!(
        a.minqing(&["resident", "show", &r1, "--json"]).json(),
        shown
    );
}

#[test]
fn a_damaged_or_lying_index_is_not_believed() {
    let (a, h1, h2, r1) = setup();
    let before = a.minqing(&["resident", "show", &r1, "--json"]).json();
    // Damaged: not JSON (sealed like every value, so it authenticates).
    set_meta(&a, "ix/V1", b"{ not an index");
    set_meta(&a, "ix/V2/d/00000000", b"\x00\x01");
    assert_eq!(
        a.minqing(&["resident", "show", &r1, "--json"]).json(),
        before
    );

    // Lying, at the documents' true versions: V1 claims V2's household and
    // not its own resident; V2 claims nothing.
    {
        let store = open_home_store(a.path());
        for (v, households) in [("V1", vec![h2.clone()]), ("V2", vec![])] {
            let doc = DocId::new(v).unwrap();
            let version = store.doc_version(&doc).expect("version");
            for (key, _) in store.meta_scan(&format!("ix/{v}/d/")).expect("scan") {
                store.meta_remove(&key).expect("remove");
            }
            let base = serde_json::json!({
                "format": 1,
                "version": version.as_str(),
                "households": households,
            });
            store
                .meta_put(&format!("ix/{v}"), base.to_string().as_bytes())
                .expect("put");
        }
        store.flush().expect("flush");
    }
    assert_eq!(
        a.minqing(&["resident", "show", &r1, "--json"]).json(),
        before
    );
    let added = a.minqing(&["resident", "add", "--household", &h2, "--name", "王芳"]);
    assert!(added.ok().contains("in V2"), "{}", added.stdout);
    let added = a.minqing(&["resident", "add", "--household", &h1, "--name", "赵敏"]);
    assert!(added.ok().contains("in V1"), "{}", added.stdout);

    // Errors are those of a full read: an unknown prefix names the kind.
    let err = a.minqing(&["resident", "show", "zzzzzzzz"]).fails(1);
    assert!(
        err.contains("resident") && err.contains("zzzzzzzz"),
        "{err}"
    );
}
