//! The encrypted store: what a laptop writes is unreadable on disk without its
//! data key, reads back with it, and a value moved or damaged is refused.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc};
use minqing_store::{DataKey, SledStorage, StoreError};
use minqing_sync::{DocId, Storage, load_doc};

fn every_file(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                all.extend(std::fs::read(e.path()).unwrap());
            }
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn nothing_in_clear_and_everything_back_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    let v = DocId::new("V1").unwrap();
    let secret_note = "独居老人王秀英说屋顶漏雨";
    let id_card = "110101194003071234";
    {
        let store = SledStorage::open_sealed(dir.path(), &key).unwrap();
        let mut am = AutoCommit::new();
        am.put(ROOT, "note", secret_note).unwrap();
        store.append(&v, &am.save()).unwrap();
        let heads = am.get_heads();
        am.put(ROOT, "id_card", id_card).unwrap();
        am.commit();
        store.append(&v, &am.save_after(&heads)).unwrap();
        store
            .meta_put("device", b"-----BEGIN PRIVATE KEY-----")
            .unwrap();
        store
            .set_sync_state("relay", &v, id_card.as_bytes())
            .unwrap();
        store.flush().unwrap();
        store.compact(&v).unwrap();
        store.flush().unwrap();
    }
    let disk = every_file(dir.path());
    for needle in [secret_note, id_card, "BEGIN PRIVATE KEY", "王秀英"] {
        assert!(!contains(&disk, needle), "{needle} is on disk in clear");
    }
    // Another key reads nothing: every value fails authentication.
    {
        let other = SledStorage::open_sealed(dir.path(), &DataKey::generate()).unwrap();
        assert!(matches!(
            other.meta_get("device"),
            Err(StoreError::Unreadable { .. })
        ));
        assert!(other.load(&v).is_err());
        assert!(other.sync_state("relay", &v).is_err());
    }
    // The plain opener (the relay's) sees only ciphertext.
    {
        let plain = SledStorage::open(dir.path()).unwrap();
        let raw = plain.meta_get("device").unwrap().unwrap();
        assert!(!contains(&raw, "PRIVATE"));
    }
    let store = SledStorage::open_sealed(dir.path(), &key).unwrap();
    let am = load_doc(&store, &v).unwrap().unwrap();
    assert_eq!(
        am.get(ROOT, "note")
            .unwrap()
            .unwrap()
            .0
            .into_string()
            .unwrap(),
        secret_note
    );
    assert_eq!(
        store.meta_get("device").unwrap().unwrap(),
        b"-----BEGIN PRIVATE KEY-----"
    );
    assert_eq!(
        store.meta_scan("dev").unwrap(),
        vec![("device".to_owned(), b"-----BEGIN PRIVATE KEY-----".to_vec())]
    );
    assert_eq!(
        store.sync_state("relay", &v).unwrap().unwrap(),
        id_card.as_bytes()
    );
    assert!(store.is_sealed());
}

#[test]
fn large_values_in_files_are_sealed_too() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    let v = DocId::new("V1").unwrap();
    // Far above the inline limit: the record and the meta value go to files.
    let note = "留守儿童李小明的奶奶反映屋顶漏雨。".repeat(2_000);
    let big_meta = format!("-----BEGIN PRIVATE KEY-----{}", "A".repeat(20_000));
    {
        let store = SledStorage::open_sealed(dir.path(), &key).unwrap();
        let mut am = AutoCommit::new();
        am.put(ROOT, "note", note.as_str()).unwrap();
        store.append(&v, &am.save()).unwrap();
        store
            .meta_put("relay_identity", big_meta.as_bytes())
            .unwrap();
        store.set_sync_state("relay", &v, note.as_bytes()).unwrap();
        store.flush().unwrap();
    }
    let disk = every_file(dir.path());
    for needle in ["留守儿童李小明", "BEGIN PRIVATE KEY"] {
        assert!(!contains(&disk, needle), "{needle} is on disk in clear");
    }
    let store = SledStorage::open_sealed(dir.path(), &key).unwrap();
    let am = load_doc(&store, &v).unwrap().unwrap();
    assert_eq!(
        am.get(ROOT, "note")
            .unwrap()
            .unwrap()
            .0
            .into_string()
            .unwrap(),
        note
    );
    assert_eq!(
        store.meta_get("relay_identity").unwrap().unwrap(),
        big_meta.as_bytes()
    );
    assert_eq!(
        store.sync_state("relay", &v).unwrap().unwrap(),
        note.as_bytes()
    );
}
