//! What a loaded village really costs in memory: `minqing-bench heap-probe`
//! loads one village of a relay store several times in a fresh process and
//! reads the process's RSS, so that the relay's document cache
//! (`minqing_relay::MEMORY_PER_SAVED_BYTE`, docs/relay.md "Limits") counts a
//! village for what it holds, not for a guess. R1 runs it on the data set's
//! villages and reports the factor (docs/benchmarks.md).
//!
//! RSS, not a count of allocations: it is what the relay's budget is about,
//! and it includes what the allocator keeps around the document. Each copy is
//! loaded from the stored bytes and kept; the figure per copy is
//! `(RSS after n copies − RSS before the first) / n`, which includes one load's
//! transient buffers spread over the copies: an upper bound of the steady cost.

use std::path::Path;

use anyhow::{Context, Result};
use minqing_sync::{DocId, Storage};
use serde::{Deserialize, Serialize};

/// What the probe measured for one village.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    /// The village.
    pub village: String,
    /// Its saved size (the bytes its storage holds), bytes.
    pub saved: u64,
    /// Copies loaded and kept.
    pub copies: usize,
    /// RSS growth per copy, bytes.
    pub per_copy: u64,
    /// Peak RSS growth while generating a sync message that carries the
    /// whole history (what a peer asking for everything costs), bytes.
    pub reply_peak: u64,
    /// Size of that message, bytes.
    pub reply_bytes: u64,
    /// Peak RSS growth while loading the first copy, above what that copy
    /// keeps once loaded (one load's transient buffers), bytes.
    pub load_transient: u64,
    /// The same for a whole-history answer in its compact saved form (the
    /// relay's way: the peer's capabilities are set first, as
    /// `minqing_sync`'s relay session does), above the loaded copies, bytes.
    pub compact_peak: u64,
    /// Size of that message, bytes.
    pub compact_bytes: u64,
}

impl Probe {
    /// Memory per saved byte.
    pub fn factor(&self) -> f64 {
        self.per_copy as f64 / self.saved.max(1) as f64
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
}

fn rss() -> u64 {
    status_kib("VmRSS:") * 1024
}

fn hwm() -> u64 {
    status_kib("VmHWM:") * 1024
}

/// Runs in the `heap-probe` child process: loads `village` from the store in
/// `store` `copies` times and prints a [`Probe`] as one JSON line.
pub fn probe(store: &Path, village: &str, copies: usize) -> Result<Probe> {
    let id = DocId::new(village.to_owned())?;
    let bytes = {
        let s = crate::homes::open_store(store)?;
        s.load(&id)?
            .with_context(|| format!("village {village} is not in {}", store.display()))?
        // The store (and its threads) closes here: nothing of it is measured.
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let copies = copies.max(1);
    let before = rss();
    // Peak of the first load above what it keeps: the high-water mark is
    // reset first (`clear_refs` 5 resets VmHWM to the current RSS).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let mut docs = Vec::with_capacity(copies);
    docs.push(automerge::Automerge::load(&bytes).context("the village does not load")?);
    let load_transient = hwm().saturating_sub(rss());
    for _ in 1..copies {
        docs.push(automerge::Automerge::load(&bytes).context("the village does not load")?);
    }
    let after = rss();
    // A peer that holds nothing of it and asks for everything: the message
    // automerge generates carries every change.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base = rss();
    let mut state = automerge::sync::State::new();
    let ask = automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: vec![automerge::sync::Have::default()],
        changes: automerge::sync::ChunkList::empty(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    use automerge::sync::SyncDoc;
    let doc = &mut docs[0];
    doc.receive_sync_message(&mut state, ask)
        .context("the probe's request does not apply")?;
    let reply = doc
        .generate_sync_message(&mut state)
        .map(|m| m.encode().len())
        .unwrap_or(0);
    let reply_peak = hwm().saturating_sub(base);
    // The relay's way: a peer that names no capabilities is answered as one
    // that takes a whole document in one message (its compact saved form).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base = rss();
    let mut state = automerge::sync::State::new();
    let ask = automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: vec![automerge::sync::Have::default()],
        changes: automerge::sync::ChunkList::empty(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    let doc = &mut docs[1 % copies];
    doc.receive_sync_message(&mut state, ask)
        .context("the probe's request does not apply")?;
    state.their_capabilities = Some(vec![
        automerge::sync::Capability::MessageV2,
        automerge::sync::Capability::SyncReset,
    ]);
    let compact = doc
        .generate_sync_message(&mut state)
        .map(|m| m.encode().len())
        .unwrap_or(0);
    let compact_peak = hwm().saturating_sub(base);
    drop(docs);
    Ok(Probe {
        village: village.to_owned(),
        saved: bytes.len() as u64,
        copies,
        per_copy: after.saturating_sub(before) / copies as u64,
        reply_peak,
        reply_bytes: reply as u64,
        load_transient,
        compact_peak,
        compact_bytes: compact as u64,
    })
}

/// Runs the probe in a fresh process of this binary (nothing else in its heap).
pub fn probe_in_child(store: &Path, village: &str, copies: usize) -> Result<Probe> {
    let exe = std::env::current_exe().context("cannot find the minqing-bench executable")?;
    let out = crate::homes::run(
        std::process::Command::new(exe)
            .arg("heap-probe")
            .arg("--store")
            .arg(store)
            .args(["--village", village, "--copies", &copies.to_string()])
            .env("MINQING_LOG", "error"),
    )?;
    serde_json::from_str(out.trim()).context("the heap probe printed no result")
}
