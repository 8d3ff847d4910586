//! The power-cut file system keeps exactly what was made durable: a file's
//! contents as of its last fsync, a directory's entries as of its last fsync,
//! and (seeded) some or none of what came after.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use minqing_testkit::powercut::{CutPlan, PowerCutFs};

fn sync_dir(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

/// Runs `work` on a fresh mount cut by `plan`, returns the surviving tree.
fn run(plan: CutPlan, work: impl FnOnce(&Path)) -> tempfile::TempDir {
    let mnt = tempfile::tempdir().unwrap();
    let fs = PowerCutFs::mount(mnt.path(), plan).expect("FUSE mount (needs /dev/fuse and root)");
    work(mnt.path());
    let (image, _) = fs.finish().unwrap();
    let out = tempfile::tempdir().unwrap();
    image.write_to(out.path()).unwrap();
    out
}

#[test]
fn synced_data_survives_and_unsynced_data_may_not() {
    let mut missing_unsynced_dir = 0;
    let mut lost_tail = 0;
    for seed in 0..24 {
        let out = run(CutPlan::never(seed), |m| {
            std::fs::create_dir(m.join("d")).unwrap();
            sync_dir(m);
            let mut f = File::create(m.join("d/durable")).unwrap();
            f.write_all(b"kept").unwrap();
            f.sync_all().unwrap();
            sync_dir(&m.join("d"));
            f.write_all(b" tail").unwrap(); // never synced
            let mut g = File::create(m.join("d/unlisted")).unwrap();
            g.write_all(b"x").unwrap();
            g.sync_all().unwrap(); // contents synced, directory not
        });
        let durable = std::fs::read(out.path().join("d/durable")).unwrap();
        assert!(durable.starts_with(b"kept"), "seed {seed}: {durable:?}");
        if durable == b"kept" {
            lost_tail += 1;
        }
        if !out.path().join("d/unlisted").exists() {
            missing_unsynced_dir += 1;
        } else {
            assert_eq!(std::fs::read(out.path().join("d/unlisted")).unwrap(), b"x");
        }
    }
    assert!(lost_tail > 0, "an unsynced append is sometimes lost");
    assert!(
        missing_unsynced_dir > 0,
        "a create is not durable before its directory is synced"
    );
}

#[test]
fn a_cut_fails_every_later_operation_and_a_rename_needs_its_directory() {
    let out = run(
        CutPlan {
            seed: 7,
            cut_before_op: Some(6),
            cut_before_sync: None,
        },
        |m| {
            // ops: create(1) write(2) fsync(3) fsyncdir(4) rename(5) fsyncdir(6: cut)
            let mut f = File::create(m.join("a")).unwrap();
            f.write_all(b"v1").unwrap();
            f.sync_all().unwrap();
            sync_dir(m);
            std::fs::rename(m.join("a"), m.join("b")).unwrap();
            assert!(
                File::open(m).unwrap().sync_all().is_err(),
                "the cut fails fsync"
            );
            assert!(OpenOptions::new().write(true).open(m.join("b")).is_err());
        },
    );
    // The rename was never made durable: with this seed's choice the root's
    // pending changes either all landed or none did; either way one name holds v1.
    let a = out.path().join("a");
    let b = out.path().join("b");
    assert!(a.exists() != b.exists(), "exactly one of a, b");
    let data = std::fs::read(if a.exists() { a } else { b }).unwrap();
    assert_eq!(data, b"v1");
}
