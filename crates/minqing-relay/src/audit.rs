//! The relay's one audit writer while `serve` runs: a thread that owns
//! `registry/audit.jsonl`, writes lines in batches (one write, one fsync per
//! batch) and aggregates repeated events — the first event of an aggregated
//! kind for a subject (a device id or a certificate fingerprint) is written at
//! once, the others of the same interval become one line with a `count`.
//! Nothing here blocks a caller: events are handed over a bounded channel, and
//! an aggregated event that finds it full is only counted (docs/relay.md, "The
//! audit log").
//!
//! Other parts of the relay add event kinds through [`Audit::event`] (written
//! every time) and [`Audit::aggregated`] (counted per subject and interval).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use crate::registry::{AuditEntry, Home, now_rfc3339};

/// Events waiting for the writer at most.
const CHANNEL: usize = 65_536;
/// Subjects aggregated per interval at most; beyond, one overflow line counts them.
const MAX_SUBJECTS: usize = 10_000;
/// Villages named on one aggregated line at most.
const MAX_VILLAGES_NAMED: usize = 8;
/// Longest detail kept, in characters.
const MAX_DETAIL: usize = 2_000;

/// Kinds of events the relay audits while serving.
pub mod kind {
    /// A laptop finished a session.
    pub const SYNC: &str = "sync";
    /// A laptop proved its enrolment secret and got its certificate.
    pub const ENROLL_COMPLETE: &str = "enroll_complete";
    /// An enrolment was refused (aggregated per device id).
    pub const REFUSED_ENROLMENT: &str = "refused_enrolment";
    /// A certificate was refused in the TLS handshake (aggregated per fingerprint).
    pub const REFUSED_HANDSHAKE: &str = "refused_handshake";
    /// A frame for a village not assigned (aggregated per device).
    pub const REFUSED_VILLAGE: &str = "refused_village";
    /// An authenticated laptop broke the protocol (aggregated per device).
    pub const PROTOCOL_VIOLATION: &str = "protocol_violation";
    /// A session ended by a limit (aggregated per device).
    pub const LIMIT: &str = "limit";
    /// A device's changes were refused: a forged actor, a schema break, a size
    /// bound (aggregated per device).
    pub const REFUSED_CHANGE: &str = "refused_change";
    /// A village that does not load on the relay was met (aggregated per device).
    pub const QUARANTINED_VILLAGE: &str = "quarantined_village";
}

enum Msg {
    Line(AuditEntry),
    Aggregated {
        kind: String,
        subject: String,
        device: Option<String>,
        village: Option<String>,
        detail: String,
    },
    Flush(SyncSender<()>),
}

/// The audit writer; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").finish_non_exhaustive()
    }
}

fn clip(s: String) -> String {
    if s.chars().count() <= MAX_DETAIL {
        s
    } else {
        let mut t: String = s.chars().take(MAX_DETAIL).collect();
        t.push('…');
        t
    }
}

impl Audit {
    /// Starts the writer thread over `home`'s audit log, aggregating over `interval`.
    pub fn start(home: Home, interval: Duration) -> std::io::Result<Audit> {
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL);
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || Writer::new(home, interval.max(Duration::from_secs(1)), d).run(rx))?;
        Ok(Audit { tx, dropped })
    }

    /// An event written every time (batched with others, fsynced).
    pub fn event(&self, kind: &str, device: Option<&str>, village: Option<&str>, detail: String) {
        let entry = AuditEntry {
            at: now_rfc3339(),
            kind: kind.to_owned(),
            device_id: device.map(str::to_owned),
            village: village.map(str::to_owned),
            detail: clip(detail),
            count: None,
            first_at: None,
        };
        // Waits only if 65,536 events are queued; these events are one per session.
        if self.tx.send(Msg::Line(entry)).is_err() {
            tracing::error!("the audit writer has stopped; an audit line was lost");
        }
    }

    /// An event aggregated per (`kind`, `subject`) and interval: `subject` is
    /// the device id, or the certificate fingerprint when no device is known.
    pub fn aggregated(
        &self,
        kind: &str,
        subject: &str,
        device: Option<&str>,
        village: Option<&str>,
        detail: String,
    ) {
        let msg = Msg::Aggregated {
            kind: kind.to_owned(),
            subject: subject.to_owned(),
            device: device.map(str::to_owned),
            village: village.map(str::to_owned),
            detail: clip(detail),
        };
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("the audit writer has stopped; an audit event was lost");
            }
        }
    }

    /// Writes everything pending, aggregated lines included (at shutdown, and in
    /// tests); returns when it is on disk.
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }
}

#[derive(Default)]
struct Pending {
    count: u64,
    first_at: Option<String>,
    device: Option<String>,
    detail: String,
    villages: BTreeSet<String>,
}

struct Writer {
    home: Home,
    interval: Duration,
    dropped: Arc<AtomicU64>,
    /// Subjects seen this interval: (kind, subject) → events after the first.
    seen: BTreeMap<(String, String), Pending>,
    overflow: BTreeMap<String, u64>,
    batch: Vec<AuditEntry>,
}

impl Writer {
    fn new(home: Home, interval: Duration, dropped: Arc<AtomicU64>) -> Self {
        Writer {
            home,
            interval,
            dropped,
            seen: BTreeMap::new(),
            overflow: BTreeMap::new(),
            batch: Vec::new(),
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        let mut tick = Instant::now() + self.interval;
        loop {
            let wait = tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(msg) => {
                    self.take(msg);
                    // Everything already queued goes into the same batch.
                    while self.batch.len() < 4096 {
                        match rx.try_recv() {
                            Ok(m) => self.take(m),
                            Err(_) => break,
                        }
                    }
                    self.write();
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.end_interval();
                    self.write();
                    tick = Instant::now() + self.interval;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.end_interval();
                    self.write();
                    return;
                }
            }
        }
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Line(entry) => self.batch.push(entry),
            Msg::Aggregated {
                kind,
                subject,
                device,
                village,
                detail,
            } => {
                let key = (kind.clone(), subject);
                if let Some(p) = self.seen.get_mut(&key) {
                    p.count += 1;
                    if p.first_at.is_none() {
                        p.first_at = Some(now_rfc3339());
                    }
                    p.detail = detail;
                    p.device = device;
                    if let Some(v) = village
                        && p.villages.len() < MAX_VILLAGES_NAMED
                    {
                        p.villages.insert(v);
                    }
                } else if self.seen.len() >= MAX_SUBJECTS {
                    *self.overflow.entry(kind).or_default() += 1;
                } else {
                    self.batch.push(AuditEntry {
                        at: now_rfc3339(),
                        kind,
                        device_id: device.clone(),
                        village,
                        detail,
                        count: None,
                        first_at: None,
                    });
                    self.seen.insert(key, Pending::default());
                }
            }
            Msg::Flush(done) => {
                self.end_interval();
                self.write();
                let _ = done.send(());
            }
        }
    }

    /// One line per subject with events after its first in this interval.
    fn end_interval(&mut self) {
        let now = now_rfc3339();
        for ((kind, subject), p) in std::mem::take(&mut self.seen) {
            if p.count == 0 {
                continue;
            }
            let mut detail = p.detail;
            if !p.villages.is_empty() {
                detail = format!(
                    "{detail}; villages [{}]",
                    p.villages.into_iter().collect::<Vec<_>>().join(",")
                );
            }
            if p.device.is_none() {
                detail = format!("{detail}; subject {subject}");
            }
            self.batch.push(AuditEntry {
                at: now.clone(),
                kind,
                device_id: p.device,
                village: None,
                detail,
                count: Some(p.count),
                first_at: p.first_at,
            });
        }
        for (kind, n) in std::mem::take(&mut self.overflow) {
            self.batch.push(AuditEntry {
                at: now.clone(),
                kind,
                device_id: None,
                village: None,
                detail: format!("events from more than {MAX_SUBJECTS} subjects in one interval"),
                count: Some(n),
                first_at: None,
            });
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            self.batch.push(AuditEntry {
                at: now,
                kind: "audit_overflow".into(),
                device_id: None,
                village: None,
                detail: "aggregated events not recorded: the audit queue was full".into(),
                count: Some(dropped),
                first_at: None,
            });
        }
    }

    fn write(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        if let Err(e) = self.home.append_audit(&self.batch) {
            tracing::error!(
                lines = self.batch.len(),
                "cannot write the audit log: {e:#}"
            );
        }
        self.batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_is_two_lines_per_subject() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_path_buf());
        home.create_dirs().unwrap();
        let audit = Audit::start(home.clone(), Duration::from_secs(3600)).unwrap();
        for i in 0..2000 {
            audit.aggregated(
                kind::REFUSED_HANDSHAKE,
                "fp1",
                None,
                None,
                format!("not enrolled ({i})"),
            );
        }
        for i in 0..500 {
            audit.aggregated(
                kind::REFUSED_VILLAGE,
                "dev1",
                Some("dev1"),
                Some(&format!("V{}", i % 20)),
                "not assigned".into(),
            );
        }
        audit.event(kind::SYNC, Some("dev2"), None, "villages [V1]".into());
        audit.flush();
        let lines = home.audit_entries().unwrap();
        assert_eq!(lines.len(), 5, "{lines:#?}");
        let hs: Vec<_> = lines
            .iter()
            .filter(|l| l.kind == kind::REFUSED_HANDSHAKE)
            .collect();
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].count, None);
        assert_eq!(hs[1].count, Some(1999));
        let rv: Vec<_> = lines
            .iter()
            .filter(|l| l.kind == kind::REFUSED_VILLAGE)
            .collect();
        assert_eq!(rv[1].count, Some(499));
        assert_eq!(rv[1].device_id.as_deref(), Some("dev1"));
        // After the interval, the next event is written at once again.
        audit.aggregated(kind::REFUSED_HANDSHAKE, "fp1", None, None, "again".into());
        audit.flush();
        assert_eq!(home.audit_entries().unwrap().len(), 6);
    }
}
