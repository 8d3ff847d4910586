//! Exports of the relay's villages, so that `report` can read the county while
//! `serve` holds the sled store: `$HOME/export/<village>.automerge` (the
//! document's `save()` bytes) and `export/manifest.json` (village → heads,
//! saved_at), each written atomically (temporary file, fsync, rename, fsync of
//! the directory); the manifest is written after the files it lists.
//!
//! `serve` exports every village at start (before it listens), a village a
//! session changed at most once every [`MIN_INTERVAL`] (on one worker thread
//! of the blocking pool, which rests after each export as long as the export
//! took, so exporting never takes more than half a core), and every village
//! still waiting at graceful shutdown. The saved bytes are taken under the
//! village's lock; the file is written after the lock is released.
//!
//! Freshness: an export holds its village as of its `saved_at`; and whenever
//! no village is waiting for export (and none failed), serve records that time
//! as the manifest's `current_at`: every export then holds everything the
//! relay had received. A report's "as of" is the later of `current_at` and the
//! oldest `saved_at` it read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use automerge::ChangeHash;
use minqing_model::Village;
use minqing_sync::{DocHost, DocId};

use crate::cache::DocCache;
use serde::{Deserialize, Serialize};

use crate::registry::{Home, VillageEntry, now_rfc3339, read_json};

/// `format` of `export/manifest.json`.
pub const MANIFEST_FORMAT: &str = "minqing-relay-export/1";
/// The manifest's file name inside the export directory.
pub const MANIFEST: &str = "manifest.json";
/// Shortest time between two exports of one village while `serve` runs.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// After each export the worker rests this many times as long as the export
/// took: exports use at most 1 / (1 + REST_FACTOR) of one core.
const REST_FACTOR: u32 = 1;
/// Largest export file a report reads, in bytes.
const MAX_EXPORT_FILE: u64 = 2 << 30;

/// `export/manifest.json`: what the export directory holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Every export held everything the relay had received at this time
    /// (RFC 3339), if serve has seen such a moment since these exports.
    #[serde(default)]
    pub current_at: Option<String>,
    /// Exported villages by id.
    pub villages: BTreeMap<String, ManifestEntry>,
}

/// One exported village.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The document's heads when it was saved, hex.
    pub heads: Vec<String>,
    /// When the export was written, RFC 3339.
    pub saved_at: String,
    /// Size of the export file, bytes.
    pub bytes: u64,
}

/// The file holding `doc`'s export.
pub fn export_file(dir: &Path, doc: &DocId) -> PathBuf {
    dir.join(format!("{doc}.automerge"))
}

fn hex_heads(heads: &[ChangeHash]) -> Vec<String> {
    heads.iter().map(ToString::to_string).collect()
}

/// Writes `bytes` to `path` atomically and durably (mode 0600): a temporary
/// file in the same directory, fsync, rename, fsync of the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // One writer per home (serve holds the store's lock), so a fixed name is safe.
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} into place", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the directory {}", dir.display()))?;
    Ok(())
}

/// What the export worker knows, under one lock.
#[derive(Debug, Default)]
struct State {
    /// Villages changed since their last export.
    dirty: BTreeSet<DocId>,
    /// Villages whose last export failed (their export is behind).
    failed: BTreeSet<DocId>,
    /// When each village was last exported.
    last: BTreeMap<DocId, Instant>,
    /// No export starts before this (the worker's rest).
    rest_until: Option<Instant>,
    /// The manifest as last written (or being written).
    manifest: Manifest,
    /// Set by [`Exporter::stop`].
    stopping: bool,
}

/// `serve`'s exporter: keeps `export/` in step with the relay's documents.
pub struct Exporter {
    dir: PathBuf,
    host: Arc<DocCache>,
    state: Mutex<State>,
    wake: Condvar,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What [`Exporter::export_all`] did.
#[derive(Debug, Default, Clone, Copy)]
pub struct StartupExport {
    /// Villages written.
    pub written: usize,
    /// Villages whose export was already current.
    pub unchanged: usize,
    /// Villages that could not be exported (logged).
    pub failed: usize,
}

impl Exporter {
    /// Opens (creating) `home`'s export directory, removes temporary files a
    /// killed serve left behind, and reads the current manifest.
    pub fn open(home: &Home, host: Arc<DocCache>) -> Result<Exporter> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = home.export_dir();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create the export directory {}", dir.display()))?;
        let entries = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot list the export directory {}", dir.display()))?;
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let manifest = match read_json::<Manifest>(&dir.join(MANIFEST)) {
            Ok(Some(m)) if m.format == MANIFEST_FORMAT => m,
            Ok(_) => Manifest::default(),
            Err(e) => {
                tracing::warn!("the export manifest is unreadable; exports are rewritten: {e:#}");
                Manifest::default()
            }
        };
        Ok(Exporter {
            dir,
            host,
            state: Mutex::new(State {
                manifest: Manifest {
                    format: MANIFEST_FORMAT.to_owned(),
                    ..manifest
                },
                ..State::default()
            }),
            wake: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock::lock_or_reload(&self.state, "the export state", || self.reloaded())
    }

    /// The state rebuilt after a panic poisoned it: the manifest as last
    /// written, every village in it to be exported again; no stop requested
    /// is lost (shutdown stops the worker through [`Exporter::stop`] again).
    fn reloaded(&self) -> State {
        let manifest: Manifest = read_json(&self.dir.join(MANIFEST))
            .ok()
            .flatten()
            .unwrap_or_default();
        let dirty = manifest
            .villages
            .keys()
            .filter_map(|v| DocId::new(v.clone()).ok())
            .collect();
        State {
            dirty,
            manifest,
            ..State::default()
        }
    }

    /// Exports every village of the store whose export is missing or behind,
    /// one at a time (a village is loaded from the store and dropped, not
    /// kept in the sessions' cache), and drops manifest entries of villages
    /// the store no longer holds. Run at start, before `serve` listens.
    pub fn export_all(&self) -> Result<StartupExport> {
        let storage = self.host.storage().clone();
        let docs = storage.docs().context("cannot list the relay's villages")?;
        let mut summary = StartupExport::default();
        let known: BTreeSet<String> = docs.iter().map(|d| d.to_string()).collect();
        self.lock()
            .manifest
            .villages
            .retain(|id, _| known.contains(id));
        for doc in docs {
            let am = match minqing_sync::load_doc(&*storage, &doc) {
                Ok(Some(am)) => am,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(village = %doc, "cannot export: {e}");
                    summary.failed += 1;
                    self.lock().failed.insert(doc);
                    continue;
                }
            };
            let heads = hex_heads(&am.get_heads());
            let current = {
                let st = self.lock();
                st.manifest.villages.get(doc.as_str()).is_some_and(|e| {
                    e.heads == heads
                        && std::fs::metadata(export_file(&self.dir, &doc))
                            .is_ok_and(|m| m.len() == e.bytes)
                })
            };
            if current {
                summary.unchanged += 1;
                continue;
            }
            let bytes = am.save();
            drop(am);
            match self.write_export(&doc, heads, &bytes) {
                Ok(()) => summary.written += 1,
                Err(e) => {
                    tracing::error!(village = %doc, "cannot export: {e:#}");
                    summary.failed += 1;
                    self.lock().failed.insert(doc.clone());
                }
            }
            // Not counted for the debounce: the first change after start is
            // exported right away.
            self.lock().dirty.remove(&doc);
        }
        self.write_manifest(true)?;
        Ok(summary)
    }

    /// Writes one village's export file and records it in the in-memory
    /// manifest (written by the caller afterwards).
    fn write_export(&self, doc: &DocId, heads: Vec<String>, bytes: &[u8]) -> Result<()> {
        write_atomic(&export_file(&self.dir, doc), bytes)?;
        let mut st = self.lock();
        st.failed.remove(doc);
        st.manifest.villages.insert(
            doc.to_string(),
            ManifestEntry {
                heads,
                saved_at: now_rfc3339(),
                bytes: bytes.len() as u64,
            },
        );
        Ok(())
    }

    /// Writes the manifest; with `settled` (nothing is being exported right
    /// now) and no village waiting or failed, first records now as `current_at`.
    fn write_manifest(&self, settled: bool) -> Result<()> {
        let manifest = {
            let mut st = self.lock();
            if settled && st.dirty.is_empty() && st.failed.is_empty() {
                st.manifest.current_at = Some(now_rfc3339());
            }
            st.manifest.clone()
        };
        let json = serde_json::to_vec_pretty(&manifest).context("encoding the export manifest")?;
        write_atomic(&self.dir.join(MANIFEST), &json)
    }

    /// Exports `doc` from the sessions' copy: saved under the village's lock,
    /// written after it is released.
    fn export_from_host(&self, doc: &DocId) -> Result<()> {
        let mut saved = None;
        self.host
            .with_doc(doc, &mut |am| saved = Some((am.get_heads(), am.save())))
            .with_context(|| format!("cannot read village {doc}"))?;
        let Some((heads, bytes)) = saved else {
            bail!("village {doc} was not handed over for export");
        };
        self.write_export(doc, hex_heads(&heads), &bytes)
    }

    /// Notes that a session changed `doc` (or serve created it): the worker
    /// exports it once [`MIN_INTERVAL`] has passed since its last export.
    pub fn mark(&self, doc: DocId) {
        self.lock().dirty.insert(doc);
        self.wake.notify_all();
    }

    /// The worker: exports changed villages, each at most once per
    /// [`MIN_INTERVAL`], until [`Exporter::stop`]. Run it on the blocking pool.
    pub fn run(&self) {
        let mut st = self.lock();
        loop {
            if st.stopping {
                return;
            }
            let now = Instant::now();
            let rest = st.rest_until.unwrap_or(now);
            let next = st
                .dirty
                .iter()
                .map(|d| {
                    let due = st.last.get(d).map_or(now, |t| *t + MIN_INTERVAL);
                    (due.max(rest), d.clone())
                })
                .min();
            match next {
                None => {
                    st = crate::lock::recover(
                        &self.state,
                        self.wake.wait(st),
                        "the export state",
                        || self.reloaded(),
                    )
                }
                Some((at, _)) if at > now => {
                    let waited = self
                        .wake
                        .wait_timeout(st, at - now)
                        .map(|(g, _)| g)
                        .map_err(|p| std::sync::PoisonError::new(p.into_inner().0));
                    st = crate::lock::recover(&self.state, waited, "the export state", || {
                        self.reloaded()
                    });
                }
                Some((_, doc)) => {
                    st.dirty.remove(&doc);
                    drop(st);
                    let started = Instant::now();
                    let exported = self.export_from_host(&doc);
                    if exported.is_err() {
                        self.lock().failed.insert(doc.clone());
                    }
                    match exported.and_then(|()| self.write_manifest(true)) {
                        Ok(()) => tracing::debug!(village = %doc, "exported"),
                        Err(e) => tracing::error!(village = %doc, "cannot export: {e:#}"),
                    }
                    let done = Instant::now();
                    st = self.lock();
                    st.last.insert(doc, done);
                    st.rest_until = Some(done + (done - started) * REST_FACTOR);
                }
            }
        }
    }

    /// Asks the worker to return (after the export it is writing, if any).
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_all();
    }

    /// Exports every village still waiting, now (graceful shutdown, after the
    /// worker returned). Returns how many were written.
    pub fn finish(&self) -> Result<usize> {
        let dirty = std::mem::take(&mut self.lock().dirty);
        let mut written = 0;
        let mut first_error = None;
        for doc in dirty {
            match self.export_from_host(&doc) {
                Ok(()) => written += 1,
                Err(e) => {
                    self.lock().failed.insert(doc);
                    first_error.get_or_insert(e);
                }
            }
        }
        self.write_manifest(true)?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }
}

/// Villages read from `serve`'s exports for a report.
#[derive(Debug)]
pub struct FromExports {
    /// The villages, sorted by id.
    pub villages: Vec<Village>,
    /// The exports hold every change the relay had received at this time
    /// (RFC 3339): the later of the manifest's `current_at` and the oldest
    /// `saved_at` read (`None`: neither is known).
    pub as_of: Option<String>,
    /// Villages the registry lists that have no export yet (reported empty).
    pub missing: Vec<String>,
    /// Villages whose export does not load (quarantined): left out, with why.
    pub broken: Vec<(String, String)>,
}

/// Reads the villages of `home`'s exports (`None` when there is no manifest:
/// the running serve writes no exports). `only` restricts to one village;
/// `registry` is the relay's village list: a listed village with no export
/// yet is reported as an empty village.
pub fn read_exports(
    home: &Home,
    registry: &BTreeMap<String, VillageEntry>,
    only: Option<&DocId>,
) -> Result<Option<FromExports>> {
    let dir = home.export_dir();
    let Some(manifest) = read_json::<Manifest>(&dir.join(MANIFEST))? else {
        return Ok(None);
    };
    if manifest.format != MANIFEST_FORMAT {
        bail!(
            "{} has format {:?}, this minqing-relay reads {MANIFEST_FORMAT:?}",
            dir.join(MANIFEST).display(),
            manifest.format
        );
    }
    let mut ids: BTreeSet<String> = manifest.villages.keys().cloned().collect();
    ids.extend(registry.keys().cloned());
    if let Some(only) = only {
        if !ids.contains(only.as_str()) {
            bail!("no village {only} on this relay (`minqing-relay village list` shows them)");
        }
        ids = BTreeSet::from([only.to_string()]);
    }
    let mut out = FromExports {
        villages: Vec::with_capacity(ids.len()),
        as_of: None,
        missing: Vec::new(),
        broken: Vec::new(),
    };
    for id in ids {
        let doc = DocId::new(id.clone())
            .with_context(|| format!("the export manifest names a bad village id {id:?}"))?;
        match manifest.villages.get(&id) {
            Some(entry) => {
                let path = export_file(&dir, &doc);
                // One village that does not load must not stop a county report.
                match read_export(&path, &doc) {
                    Ok(village) => out.villages.push(village),
                    Err(e) => {
                        out.broken.push((id.clone(), format!("{e:#}")));
                        continue;
                    }
                }
                if out.as_of.as_ref().is_none_or(|o| entry.saved_at < *o) {
                    out.as_of = Some(entry.saved_at.clone());
                }
            }
            None => {
                let name = registry.get(&id).map_or(id.as_str(), |v| v.name.as_str());
                let township = registry.get(&id).and_then(|v| v.township.as_deref());
                // Empty: the skeleton and the village's name, nothing else.
                let am = minqing_model::new_village(&doc, name, township, &[0; 16], 0)
                    .with_context(|| format!("village {id}: cannot make its empty document"))?;
                let village = Village::from_new_doc(doc, am)
                    .with_context(|| format!("village {id}: cannot make its empty document"))?;
                out.villages.push(village);
                out.missing.push(id);
            }
        }
    }
    // RFC 3339 in UTC with whole seconds, as serve writes them: the later
    // string is the later time.
    if let Some(current) = manifest.current_at
        && out.as_of.as_ref().is_none_or(|o| current > *o)
    {
        out.as_of = Some(current);
    }
    Ok(Some(out))
}

/// Loads one export file.
fn read_export(path: &Path, doc: &DocId) -> Result<Village> {
    let what = || {
        format!(
            "village {doc}: its export {} cannot be read (serve rewrites it after the village's next change, and at start and shutdown)",
            path.display()
        )
    };
    let meta = std::fs::metadata(path).with_context(what)?;
    if meta.len() > MAX_EXPORT_FILE {
        return Err(anyhow::anyhow!(
            "{} bytes, more than a report reads",
            meta.len()
        ))
        .with_context(what);
    }
    let bytes = std::fs::read(path).with_context(what)?;
    Village::load(doc.clone(), &bytes).with_context(|| {
        format!(
            "village {doc}: its export {} does not load (damaged?); serve rewrites it after the village's next change, and at start and shutdown",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use minqing_sync::{MemStorage, Storage};

    fn host_with(villages: &[&str]) -> Arc<DocCache> {
        let storage = Arc::new(MemStorage::new());
        for v in villages {
            let doc = DocId::new(*v).unwrap();
            let mut am = minqing_model::new_village(&doc, "小河村", None, &[1; 16], 0).unwrap();
            storage.append(&doc, &am.save()).unwrap();
        }
        Arc::new(DocCache::new(storage, usize::MAX))
    }

    fn entry(id: &str) -> VillageEntry {
        VillageEntry {
            id: id.into(),
            name: "新村".into(),
            township: None,
            created_at: now_rfc3339(),
        }
    }

    #[test]
    fn startup_exports_every_village_then_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_owned());
        let host = host_with(&["V1", "V2"]);
        let ex = Exporter::open(&home, host.clone()).unwrap();
        let s = ex.export_all().unwrap();
        assert_eq!((s.written, s.unchanged), (2, 0));
        // A second start with nothing changed writes nothing.
        let ex = Exporter::open(&home, host.clone()).unwrap();
        let s = ex.export_all().unwrap();
        assert_eq!((s.written, s.unchanged), (0, 2));

        // A change through the sessions' host, exported at shutdown.
        let v1 = DocId::new("V1").unwrap();
        host.with_doc(&v1, &mut |am| {
            let mut tx = am.transaction();
            automerge::transaction::Transactable::put(&mut tx, automerge::ROOT, "x", 1_i64)
                .unwrap();
            tx.commit();
        })
        .unwrap();
        ex.mark(v1.clone());
        assert_eq!(ex.finish().unwrap(), 1);
        let registry = BTreeMap::from([
            ("V1".to_owned(), entry("V1")),
            ("V3".to_owned(), entry("V3")),
        ]);
        let read = read_exports(&home, &registry, None).unwrap().unwrap();
        let ids: Vec<String> = read.villages.iter().map(|v| v.id().to_string()).collect();
        assert_eq!(ids, ["V1", "V2", "V3"]);
        assert_eq!(read.missing, ["V3"]);
        assert!(read.as_of.is_some());
        let heads = host.heads(&v1).unwrap();
        let mut got = read.villages.into_iter().next().unwrap();
        assert_eq!(got.heads(), heads);
    }

    #[test]
    fn a_damaged_export_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_owned());
        let ex = Exporter::open(&home, host_with(&["V1"])).unwrap();
        ex.export_all().unwrap();
        let v1 = DocId::new("V1").unwrap();
        std::fs::write(export_file(&home.export_dir(), &v1), b"not automerge").unwrap();
        // A damaged export is quarantined: named in `broken`, the others still read.
        let read = read_exports(&home, &BTreeMap::new(), None)
            .unwrap()
            .unwrap();
        assert!(read.villages.is_empty());
        assert_eq!(read.broken.len(), 1, "{:?}", read.broken);
        assert_eq!(read.broken[0].0, "V1");
        assert!(
            read.broken[0].1.contains("village V1"),
            "{}",
            read.broken[0].1
        );
    }

    #[test]
    fn current_at_only_when_every_export_is_current() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_owned());
        let host = host_with(&["V1"]);
        let v2 = DocId::new("V2").unwrap();
        host.storage().append(&v2, b"not automerge").unwrap();
        let ex = Exporter::open(&home, host.clone()).unwrap();
        let s = ex.export_all().unwrap();
        assert_eq!((s.written, s.failed), (1, 1));
        let manifest = home.export_dir().join(MANIFEST);
        let m: Manifest = read_json(&manifest).unwrap().unwrap();
        assert_eq!(m.current_at, None, "V2's export is behind");
        let read = read_exports(&home, &BTreeMap::new(), None)
            .unwrap()
            .unwrap();
        assert_eq!(read.as_of, Some(m.villages["V1"].saved_at.clone()));

        // Without the broken village, every export is current.
        host.storage().remove(&v2).unwrap();
        let ex = Exporter::open(&home, host).unwrap();
        ex.export_all().unwrap();
        let m: Manifest = read_json(&manifest).unwrap().unwrap();
        assert!(m.current_at.is_some());
    }

    #[test]
    fn no_manifest_means_no_exports() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_owned());
        assert!(
            read_exports(&home, &BTreeMap::new(), None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_worker_exports_a_marked_village_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_owned());
        let ex = Arc::new(Exporter::open(&home, host_with(&["V1"])).unwrap());
        let worker = {
            let ex = ex.clone();
            std::thread::spawn(move || ex.run())
        };
        ex.mark(DocId::new("V1").unwrap());
        let manifest = home.export_dir().join(MANIFEST);
        // The first export of a village is not delayed: wait for it (the
        // bound only keeps a broken worker from hanging the test).
        let deadline = Instant::now() + Duration::from_secs(30);
        while !manifest.exists() {
            assert!(Instant::now() < deadline, "the worker never exported V1");
            std::thread::sleep(Duration::from_millis(10));
        }
        ex.stop();
        worker.join().unwrap();
        let m: Manifest = read_json(&manifest).unwrap().unwrap();
        assert!(m.villages.contains_key("V1"));
    }
}
