//! Large values live in files under `large/`, never in sled: written before
//! their pointer, read through it, deleted only after the pointer is gone and
//! flushed, and orphans removed when the store opens (docs/store.md).

use std::path::Path;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc};
use minqing_store::{INLINE_MAX, SledStorage};
use minqing_sync::{DocId, Storage, load_doc};

fn files(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("large"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn big_doc(n: usize) -> AutoCommit {
    let mut am = AutoCommit::new();
    for i in 0..n {
        am.put(
            ROOT,
            format!("k{i}").as_str(),
            format!("{:x}{}", i * 7919, "走访".repeat(8)),
        )
        .unwrap();
    }
    am.commit();
    am
}

#[test]
fn large_values_go_to_files_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let v = DocId::new("V1").unwrap();
    let mut am = big_doc(2000);
    let saved = am.save();
    assert!(saved.len() > INLINE_MAX);
    {
        let store = SledStorage::open(&path).unwrap();
        store.append(&v, &saved).unwrap();
        store.append(&v, b"").unwrap(); // a small inline record next to it
        let big_meta = vec![7u8; INLINE_MAX + 1];
        store.meta_put("big", &big_meta).unwrap();
        store.meta_put("small", b"s").unwrap();
        store
            .set_sync_state("relay", &v, &[9u8; INLINE_MAX * 2])
            .unwrap();
        store.flush().unwrap();
        assert_eq!(files(&path).len(), 3, "{:?}", files(&path));
        assert_eq!(store.meta_get("big").unwrap(), Some(big_meta.clone()));
        let scan = store.meta_scan("").unwrap();
        assert_eq!(
            scan,
            vec![
                ("big".to_owned(), big_meta.clone()),
                ("small".to_owned(), b"s".to_vec())
            ]
        );
        // Replacing a large value by a small one deletes its file at the next flush.
        store.meta_put("big", b"now small").unwrap();
        assert_eq!(files(&path).len(), 3);
        store.flush().unwrap();
        assert_eq!(files(&path).len(), 2);
        assert_eq!(store.meta_get("big").unwrap(), Some(b"now small".to_vec()));
    }
    let store = SledStorage::open(&path).unwrap();
    let loaded = load_doc(&store, &v).unwrap().unwrap();
    assert!(loaded.get(ROOT, "k1999").unwrap().is_some());
    assert_eq!(
        store.sync_state("relay", &v).unwrap(),
        Some(vec![9u8; INLINE_MAX * 2])
    );
    assert!(
        std::fs::read_dir(path.join("blobs"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
    use std::os::unix::fs::PermissionsExt;
    for f in files(&path) {
        let mode = std::fs::metadata(path.join("large").join(&f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let mode = std::fs::metadata(path.join("large"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn compaction_and_removal_delete_files_only_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = SledStorage::open(&path).unwrap();
    let v = DocId::new("V1").unwrap();
    let mut am = big_doc(2000);
    store.append(&v, &am.save()).unwrap();
    let heads = am.get_heads();
    am.put(ROOT, "late", "x").unwrap();
    am.commit();
    store.append(&v, &am.save_after(&heads)).unwrap();
    store.flush().unwrap();
    let before = files(&path);
    assert_eq!(before.len(), 1, "the whole village is a file: {before:?}");
    assert!(before[0].starts_with("c-"));
    store.compact(&v).unwrap();
    let after = files(&path);
    assert_eq!(
        after.len(),
        1,
        "compaction flushed, then deleted the chunk's file: {after:?}"
    );
    assert!(after[0].starts_with("s-"));
    assert!(
        load_doc(&store, &v)
            .unwrap()
            .unwrap()
            .get(ROOT, "late")
            .unwrap()
            .is_some()
    );
    store.remove(&v).unwrap();
    assert_eq!(files(&path).len(), 1, "kept until the removal is flushed");
    store.flush().unwrap();
    assert!(files(&path).is_empty());
}

#[test]
fn orphans_are_removed_on_open_and_pointed_files_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let v = DocId::new("V1").unwrap();
    {
        let store = SledStorage::open(&path).unwrap();
        store.append(&v, &big_doc(2000).save()).unwrap();
        store.flush().unwrap();
    }
    let kept = files(&path);
    // A file written for a chunk whose pointer never reached sled, one for a
    // snapshot, and a name this build never writes.
    for orphan in ["c-56310000000000000000005-1", "s-5632-2", "m--3", "junk"] {
        std::fs::write(path.join("large").join(orphan), b"half written").unwrap();
    }
    let store = SledStorage::open(&path).unwrap();
    assert_eq!(files(&path), kept);
    assert!(load_doc(&store, &v).unwrap().is_some());
}

#[test]
fn a_missing_or_torn_file_is_named_corruption_of_that_village_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let (v1, v2) = (DocId::new("V1").unwrap(), DocId::new("V2").unwrap());
    {
        let store = SledStorage::open(&path).unwrap();
        store.append(&v1, &big_doc(2000).save()).unwrap();
        store.append(&v2, &big_doc(10).save()).unwrap();
        store.flush().unwrap();
    }
    let f = path.join("large").join(&files(&path)[0]);
    let len = std::fs::metadata(&f).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let store = SledStorage::open(&path).unwrap();
    let err = store.load(&v1).unwrap_err().to_string();
    assert!(err.contains("V1") && err.contains("expected"), "{err}");
    assert!(load_doc(&store, &v2).unwrap().is_some());
}

#[test]
fn an_interrupted_creation_leaves_no_half_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    // What a cut while sled created a store used to leave: a torn conf, no db.
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("conf"), b"segment_size: 52").unwrap();
    std::fs::create_dir_all(dir.path().join(".store.creating")).unwrap();
    let store = SledStorage::open(&path).unwrap();
    store.meta_put("k", b"v").unwrap();
    store.flush().unwrap();
    drop(store);
    assert!(!dir.path().join(".store.creating").exists());
    assert_eq!(
        SledStorage::open(&path).unwrap().meta_get("k").unwrap(),
        Some(b"v".to_vec())
    );
    // A directory that is not a store is never replaced.
    let other = dir.path().join("notes");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("diary.txt"), b"mine").unwrap();
    let err = SledStorage::open(&other).unwrap_err().to_string();
    assert!(err.contains("diary.txt"), "{err}");
    assert!(other.join("diary.txt").exists());
}
