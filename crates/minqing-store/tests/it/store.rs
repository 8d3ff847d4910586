//! Feature tests of `SledStorage`: round trips through a reopened store, sync
//! states, metadata, compaction and per-village corruption.

use std::path::Path;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ROOT, ReadDoc};
use minqing_store::{COMPACT_CHUNKS, SledStorage, StoreError};
use minqing_sync::{DocId, Storage, StorageError, load_doc};

fn doc(id: &str) -> DocId {
    DocId::new(id).expect("test ids are valid")
}

/// A village document writer that appends each commit to the store.
struct Writer {
    am: AutoCommit,
    heads: Vec<ChangeHash>,
}

impl Writer {
    fn new() -> Self {
        Writer {
            am: AutoCommit::new(),
            heads: Vec::new(),
        }
    }

    fn from_store(store: &SledStorage, id: &DocId) -> Self {
        let am = load_doc(store, id).unwrap().expect("document is stored");
        let mut am = AutoCommit::load(&am.save()).unwrap();
        let heads = am.get_heads();
        Writer { am, heads }
    }

    /// Puts `key = value` at the root, commits, appends the change.
    fn put(&mut self, store: &SledStorage, id: &DocId, key: &str, value: &str) {
        self.am.put(ROOT, key, value).unwrap();
        self.am.commit();
        let bytes = self.am.save_after(&self.heads);
        assert!(!bytes.is_empty());
        self.heads = self.am.get_heads();
        store.append(id, &bytes).unwrap();
    }
}

fn value(store: &SledStorage, id: &DocId, key: &str) -> Option<String> {
    let am = load_doc(store, id).unwrap()?;
    am.get(ROOT, key)
        .unwrap()
        .map(|(v, _)| v.into_string().unwrap())
}

fn reopen(path: &Path, store: SledStorage) -> SledStorage {
    drop(store);
    SledStorage::open(path).expect("reopens after drop (lock retry)")
}

#[test]
fn appended_changes_survive_reopen_and_load_as_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = doc("V001");
    let store = SledStorage::open(dir.path()).unwrap();
    assert_eq!(store.load(&v1).unwrap(), None);
    let mut w = Writer::new();
    w.put(&store, &v1, "村名", "小河村");
    w.put(&store, &v1, "书记", "王芳");
    w.put(&store, &v1, "村名", "大河村");
    store.flush().unwrap();
    let heads = w.am.get_heads();

    let store = reopen(dir.path(), store);
    assert_eq!(value(&store, &v1, "村名").as_deref(), Some("大河村"));
    assert_eq!(value(&store, &v1, "书记").as_deref(), Some("王芳"));
    let loaded = load_doc(&store, &v1).unwrap().unwrap();
    assert_eq!(loaded.get_heads(), heads);
    assert_eq!(loaded.save(), w.am.save());

    // Appending after a reopen continues the sequence instead of overwriting.
    let mut w2 = Writer::from_store(&store, &v1);
    w2.put(&store, &v1, "户数", "312");
    store.flush().unwrap();
    let store = reopen(dir.path(), store);
    assert_eq!(value(&store, &v1, "户数").as_deref(), Some("312"));
    assert_eq!(value(&store, &v1, "村名").as_deref(), Some("大河村"));
    assert_eq!(store.stats(&v1).unwrap().chunks, 4);
}

#[test]
fn a_whole_saved_document_can_be_appended_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStorage::open(dir.path()).unwrap();
    let v = doc("V9");
    let mut am = AutoCommit::new();
    am.put(ROOT, "a", "一").unwrap();
    store.append(&v, &am.save()).unwrap();
    let heads = am.get_heads();
    am.put(ROOT, "b", "二").unwrap();
    store.append(&v, &am.save_after(&heads)).unwrap();
    assert_eq!(value(&store, &v, "a").as_deref(), Some("一"));
    assert_eq!(value(&store, &v, "b").as_deref(), Some("二"));
}

#[test]
fn docs_are_listed_sorted_and_remove_takes_everything_of_one_doc() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStorage::open(dir.path()).unwrap();
    for id in ["V3", "V1", "V10", "V2", "V1-a"] {
        let mut w = Writer::new();
        w.put(&store, &doc(id), "name", id);
        w.put(&store, &doc(id), "more", id);
    }
    store.compact(&doc("V2")).unwrap();
    let names: Vec<String> = store
        .docs()
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(names, ["V1", "V1-a", "V10", "V2", "V3"]);

    store.set_sync_state("relay", &doc("V1"), b"s1").unwrap();
    store.set_sync_state("relay", &doc("V1-a"), b"s1a").unwrap();
    store.set_sync_state("dev-7", &doc("V1"), b"d1").unwrap();
    store.remove(&doc("V1")).unwrap();
    store.remove(&doc("V2")).unwrap();
    store.flush().unwrap();
    let store = reopen(dir.path(), store);
    let names: Vec<String> = store
        .docs()
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(names, ["V1-a", "V10", "V3"]);
    assert_eq!(store.load(&doc("V1")).unwrap(), None);
    assert_eq!(store.sync_state("relay", &doc("V1")).unwrap(), None);
    assert_eq!(store.sync_state("dev-7", &doc("V1")).unwrap(), None);
    assert_eq!(
        store.sync_state("relay", &doc("V1-a")).unwrap().as_deref(),
        Some(&b"s1a"[..])
    );
    assert_eq!(value(&store, &doc("V1-a"), "name").as_deref(), Some("V1-a"));
}

#[test]
fn sync_states_are_kept_per_peer_and_doc() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStorage::open(dir.path()).unwrap();
    let (a, b) = (doc("A"), doc("B"));
    assert_eq!(store.sync_state("relay", &a).unwrap(), None);
    store.set_sync_state("relay", &a, b"ra").unwrap();
    store.set_sync_state("relay", &b, b"rb").unwrap();
    store.set_sync_state("县中继", &a, b"xa").unwrap();
    store.set_sync_state("relay", &a, b"ra2").unwrap();
    store.flush().unwrap();
    let store = reopen(dir.path(), store);
    assert_eq!(
        store.sync_state("relay", &a).unwrap().as_deref(),
        Some(&b"ra2"[..])
    );
    assert_eq!(
        store.sync_state("relay", &b).unwrap().as_deref(),
        Some(&b"rb"[..])
    );
    assert_eq!(
        store.sync_state("县中继", &a).unwrap().as_deref(),
        Some(&b"xa"[..])
    );
    assert_eq!(store.sync_state("县中继", &b).unwrap(), None);
    assert!(store.set_sync_state("bad\0peer", &a, b"x").is_err());
    assert!(store.set_sync_state("", &a, b"x").is_err());
    // Sync states alone do not make a document.
    assert!(store.docs().unwrap().is_empty());
}

#[test]
fn meta_values_round_trip_and_scan_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStorage::open(dir.path()).unwrap();
    assert_eq!(store.meta_get("device/id").unwrap(), None);
    store.meta_put("device/id", b"{\"id\":\"d1\"}").unwrap();
    store.meta_put("relay/device/b", b"2").unwrap();
    store.meta_put("relay/device/a", b"1").unwrap();
    store.meta_put("relay/device/c", b"3").unwrap();
    store.meta_put("relay/devices", b"x").unwrap();
    store.meta_remove("relay/device/c").unwrap();
    store.meta_remove("absent").unwrap();
    store.flush().unwrap();
    let store = reopen(dir.path(), store);
    assert_eq!(
        store.meta_get("device/id").unwrap().as_deref(),
        Some(&b"{\"id\":\"d1\"}"[..])
    );
    let scan = store.meta_scan("relay/device/").unwrap();
    assert_eq!(
        scan,
        vec![
            ("relay/device/a".to_string(), b"1".to_vec()),
            ("relay/device/b".to_string(), b"2".to_vec()),
        ]
    );
    assert_eq!(store.meta_scan("").unwrap().len(), 4);
}

#[test]
fn a_second_open_of_a_held_store_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let _held = SledStorage::open(dir.path()).unwrap();
    let err = SledStorage::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("another minqing process is using"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
}

#[test]
fn compaction_keeps_the_document_and_drops_the_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStorage::open(dir.path()).unwrap();
    let v = doc("V001");
    let mut w = Writer::new();
    for i in 0..=COMPACT_CHUNKS {
        w.put(&store, &v, &format!("visit-{i}"), &format!("走访记录 {i}"));
    }
    let before = store.stats(&v).unwrap();
    assert_eq!(before.chunks, COMPACT_CHUNKS + 1);
    assert_eq!(before.snapshot_bytes, 0);
    assert!(store.compact_if_needed(&v).unwrap());
    let after = store.stats(&v).unwrap();
    assert_eq!(after.chunks, 0);
    assert!(after.snapshot_bytes > 0);
    assert!(!store.compact_if_needed(&v).unwrap());
    store.flush().unwrap();

    let store = reopen(dir.path(), store);
    let loaded = load_doc(&store, &v).unwrap().unwrap();
    assert_eq!(loaded.get_heads(), w.am.get_heads());
    assert_eq!(loaded.save(), w.am.save());

    // Writes after compaction land after the snapshot and load with it.
    w.put(&store, &v, "after", "压缩之后");
    store.flush().unwrap();
    let store = reopen(dir.path(), store);
    assert_eq!(value(&store, &v, "after").as_deref(), Some("压缩之后"));
    assert_eq!(value(&store, &v, "visit-0").as_deref(), Some("走访记录 0"));
    assert_eq!(store.stats(&v).unwrap().chunks, 1);
}

#[test]
fn small_documents_do_not_churn() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStorage::open(dir.path()).unwrap();
    let v = doc("V1");
    let mut w = Writer::new();
    for i in 0..10 {
        w.put(&store, &v, &format!("k{i}"), "小");
    }
    assert!(!store.compact_if_needed(&v).unwrap());
    assert_eq!(store.stats(&v).unwrap().chunks, 10);
}

#[test]
fn a_chunk_appended_while_compacting_survives() {
    // Compaction deletes exactly the chunk keys it read. Run compactions and
    // appends concurrently and check that nothing written is lost.
    let dir = tempfile::tempdir().unwrap();
    let store = SledStorage::open(dir.path()).unwrap();
    let v = doc("V1");
    let mut w = Writer::new();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let compactor = {
        let (store, v, done) = (store.clone(), v.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                store.compact(&v).unwrap();
            }
        })
    };
    let n = 300;
    for i in 0..n {
        w.put(&store, &v, &format!("k{i}"), &format!("值{i}"));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    compactor.join().unwrap();
    store.flush().unwrap();
    let store = reopen(dir.path(), store);
    let loaded = load_doc(&store, &v).unwrap().unwrap();
    assert_eq!(loaded.get_heads(), w.am.get_heads());
    for i in 0..n {
        assert_eq!(
            loaded
                .get(ROOT, format!("k{i}"))
                .unwrap()
                .map(|(v, _)| v.into_string().unwrap()),
            Some(format!("值{i}"))
        );
    }
}

#[test]
fn compaction_leaves_changes_with_missing_dependencies_alone() {
    // After a whole saved document, automerge queues a change whose
    // dependencies are missing instead of refusing the load; `save` would drop
    // it, so compaction must leave such a document as it is.
    let dir = tempfile::tempdir().unwrap();
    let store = SledStorage::open(dir.path()).unwrap();
    let v = doc("V1");
    let mut am = AutoCommit::new();
    am.put(ROOT, "a", "1").unwrap();
    am.commit();
    store.append(&v, &am.save()).unwrap();
    let h1 = am.get_heads();
    am.put(ROOT, "b", "2").unwrap();
    am.commit();
    let h2 = am.get_heads();
    am.put(ROOT, "c", "3").unwrap();
    am.commit();
    // Only the third change: the second is missing.
    store.append(&v, &am.save_after(&h2)).unwrap();
    assert!(load_doc(&store, &v).unwrap().is_some());
    store.compact(&v).unwrap();
    assert_eq!(
        store.stats(&v).unwrap().chunks,
        2,
        "the chunks must be kept"
    );
    // Once the second change arrives, the document is complete and compacts.
    store.append(&v, &am.save_after(&h1)).unwrap();
    store.compact(&v).unwrap();
    assert_eq!(store.stats(&v).unwrap().chunks, 0);
    assert_eq!(value(&store, &v, "b").as_deref(), Some("2"));
    assert_eq!(value(&store, &v, "c").as_deref(), Some("3"));
}

/// Opens the store's sled database directly; sled may still hold the lock of a
/// `Db` dropped a moment ago in this process, so retry briefly.
fn open_sled(path: &Path) -> sled::Db {
    let mut tries = 0;
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if tries < 100 && e.to_string().contains("could not acquire lock") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("cannot open {}: {e}", path.display()),
        }
    }
}

/// Overwrites the record under `seq` of `id` with damaged bytes, straight through sled.
fn damage_chunk(path: &Path, id: &str, seq: u64, how: impl Fn(&mut Vec<u8>)) {
    let db = open_sled(path);
    let chunks = db.open_tree("chunks").unwrap();
    let mut key = id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    let mut rec = chunks.get(&key).unwrap().expect("chunk exists").to_vec();
    how(&mut rec);
    chunks.insert(key, rec).unwrap();
    db.flush().unwrap();
}

fn fill_three_villages(path: &Path) -> Vec<Writer> {
    let store = SledStorage::open(path).unwrap();
    let mut writers = Vec::new();
    for id in ["V1", "V2", "V3"] {
        let mut w = Writer::new();
        for i in 0..20 {
            w.put(&store, &doc(id), &format!("k{i}"), &format!("{id} 第{i}条"));
        }
        writers.push(w);
    }
    store.flush().unwrap();
    writers
}

#[test]
fn a_chunk_failing_its_checksum_names_the_village_and_spares_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut writers = fill_three_villages(dir.path());
    damage_chunk(dir.path(), "V2", 17, |rec| {
        let last = rec.len() - 1;
        rec[last] ^= 0x40;
    });

    let store = SledStorage::open(dir.path()).unwrap();
    let err = store.load(&doc("V2")).unwrap_err();
    match &err {
        StorageError::Corrupt { doc: d, detail } => {
            assert_eq!(d.as_str(), "V2");
            assert_eq!(detail, "chunk 17 fails its checksum");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("village V2"), "{msg}");
    assert!(
        store.compact(&doc("V2")).is_err(),
        "compaction must not paper over damage"
    );

    // Other villages load and accept writes, before and after a reopen.
    assert_eq!(
        value(&store, &doc("V1"), "k19").as_deref(),
        Some("V1 第19条")
    );
    writers[2].put(&store, &doc("V3"), "new", "新的走访");
    store.flush().unwrap();
    let store = reopen(dir.path(), store);
    assert_eq!(
        value(&store, &doc("V3"), "new").as_deref(),
        Some("新的走访")
    );
    assert_eq!(value(&store, &doc("V3"), "k0").as_deref(), Some("V3 第0条"));
    assert!(store.load(&doc("V2")).is_err());
    assert_eq!(store.docs().unwrap().len(), 3);
}

#[test]
fn bytes_automerge_refuses_are_reported_for_that_village_only() {
    let dir = tempfile::tempdir().unwrap();
    fill_three_villages(dir.path());
    // A record whose checksum is right but whose payload is not automerge.
    damage_chunk(dir.path(), "V1", 3, |rec| {
        let payload = b"not an automerge change at all".to_vec();
        let crc = crc32fast_hash(&payload);
        rec.clear();
        rec.push(1);
        rec.extend_from_slice(&crc.to_be_bytes());
        rec.extend_from_slice(&payload);
    });
    let store = SledStorage::open(dir.path()).unwrap();
    let err = load_doc(&store, &doc("V1")).unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { doc: d, .. } if d.as_str() == "V1"),
        "{err:?}"
    );
    assert_eq!(value(&store, &doc("V2"), "k5").as_deref(), Some("V2 第5条"));
}

#[test]
fn truncated_and_unknown_records_are_corrupt_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    fill_three_villages(dir.path());
    damage_chunk(dir.path(), "V1", 0, |rec| rec.truncate(2));
    damage_chunk(dir.path(), "V3", 5, |rec| rec[0] = 9);
    let store = SledStorage::open(dir.path()).unwrap();
    let e1 = store.load(&doc("V1")).unwrap_err().to_string();
    assert!(e1.contains("chunk 0 is truncated"), "{e1}");
    let e3 = store.load(&doc("V3")).unwrap_err().to_string();
    assert!(e3.contains("chunk 5 has unknown record version 9"), "{e3}");
    assert!(store.load(&doc("V2")).unwrap().is_some());
}

/// CRC-32 (IEEE) as the store computes it, without naming the store's internals.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_malformed_key_does_not_hide_the_other_villages() {
    let dir = tempfile::tempdir().unwrap();
    fill_three_villages(dir.path());
    {
        let db = open_sled(dir.path());
        db.open_tree("chunks")
            .unwrap()
            .insert(b"bad key\xff", b"x")
            .unwrap();
        db.open_tree("snapshots")
            .unwrap()
            .insert(b"\xfe", b"x")
            .unwrap();
        db.flush().unwrap();
    }
    let store = SledStorage::open(dir.path()).unwrap();
    let names: Vec<String> = store
        .docs()
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(names, ["V1", "V2", "V3"]);
    assert_eq!(value(&store, &doc("V3"), "k1").as_deref(), Some("V3 第1条"));
}

#[test]
fn a_half_written_sled_snapshot_left_by_a_kill_does_not_stop_the_store_opening() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = doc("V1");
    let store = SledStorage::open(dir.path()).unwrap();
    let mut w = Writer::new();
    w.put(&store, &v1, "phone", "13905370001");
    store.flush().unwrap();
    drop(store);
    // What a SIGKILL during sled's own snapshot leaves: a `.generating` file that
    // sorts after every finished snapshot, with a few bytes in it.
    std::fs::write(dir.path().join("snap.FFFFFFFFFFFFFFFF.generating"), b"half").unwrap();
    let store = SledStorage::open(dir.path()).expect("opens despite the half-written snapshot");
    assert_eq!(value(&store, &v1, "phone").as_deref(), Some("13905370001"));
    assert!(!dir.path().join("snap.FFFFFFFFFFFFFFFF.generating").exists());
}
