//! The relay side of a sync session: a sans-IO state machine that serves one
//! device over documents it borrows from a shared [`DocHost`], enforcing the
//! device's assignment on every frame.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::sync::{ChunkList, Message, State, SyncDoc};
use automerge::{ChangeHash, ReadDoc};

use crate::frame::{
    DocHeads, ErrorCode, Frame, FrameDecoder, Heads, HeadsDigest, PROTOCOL_VERSION, RefuseCode,
};
use crate::host::DocHost;
use crate::session::{
    Assembler, LimitExceeded, Outbox, SessionConfig, SessionError, Side, Violation, decode_message,
    decode_state, our_capabilities, panic_detail, same_set, seed_push_since_shared,
    state_for_empty_peer,
};
use crate::trust::{ContentPolicy, ParsedChange, Rejection, actor_belongs_to, parse_changes};
use crate::{DocId, StorageError};

/// What the relay driver must know: audit refusals, log applied changes, and
/// see the session's end. Changes and sync states are already in the
/// [`DocHost`]; the driver flushes its storage before transmitting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayEvent {
    /// The device sent a frame for a document outside its assignment; it was
    /// refused and nothing of it applied. Write it to the audit log.
    Refused {
        /// The document.
        doc: DocId,
        /// How many bytes of changes the refused message carried (0: it only asked).
        change_bytes: usize,
    },
    /// A sync message from the device for an assigned village was refused
    /// (forged actor, bad or oversized change, broken schema) or the village is
    /// quarantined on the relay; nothing of it was applied and the device was
    /// told. Write it to the audit log.
    Rejected {
        /// The document.
        doc: DocId,
        /// Why (the code sent to the device).
        code: RefuseCode,
        /// Words for the operator (also sent to the device).
        reason: String,
    },
    /// Changes from the device were applied to the shared document.
    Applied {
        /// The document.
        doc: DocId,
        /// Number of new changes.
        changes: usize,
    },
    /// The device said `Bye`: the session is complete.
    Finished(RelayOutcome),
}

/// How a relay session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayOutcome {
    /// For each assigned document, the device's last announced heads.
    pub synced: BTreeMap<DocId, Vec<ChangeHash>>,
    /// Documents refused in this session.
    pub refused: BTreeSet<DocId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    Serving,
    Done,
    Failed,
}

#[derive(Debug)]
struct RelayDoc {
    state: State,
    persisted: Option<Vec<u8>>,
    messages: usize,
    /// The device's changes whose dependencies have not arrived yet, with the
    /// message count at which they arrived. Never in the shared document;
    /// dropped with the session.
    pending: Vec<(ParsedChange, usize)>,
    /// Refused in this session (forged, oversized, schema, quarantined): later
    /// messages for it are ignored.
    rejected: bool,
}

impl RelayDoc {
    fn new(state: State, persisted: Option<Vec<u8>>) -> Self {
        RelayDoc {
            state,
            persisted,
            messages: 0,
            pending: Vec::new(),
            rejected: false,
        }
    }
}

/// One device–relay session, relay side. The transport has already
/// authenticated the device (its certificate names `device_id`); the session
/// checks that `Hello` names the same device and serves only `assignment`.
#[derive(Debug)]
pub struct RelaySession {
    config: SessionConfig,
    relay: String,
    device: String,
    assignment: BTreeSet<DocId>,
    decoder: FrameDecoder,
    out: Outbox,
    events: VecDeque<RelayEvent>,
    phase: Phase,
    docs: BTreeMap<DocId, RelayDoc>,
    refused: BTreeSet<DocId>,
    refused_frames: usize,
    policy: ContentPolicy,
    assembler: Assembler,
}

/// An encoded `Error` frame telling a device it may not sync at all, for a
/// transport that wants to say so in words before closing.
pub fn unauthorized_frame(message: &str) -> Vec<u8> {
    let frame = Frame::Error {
        code: ErrorCode::Unauthorized,
        message: message.chars().take(1000).collect(),
    };
    // At most 1000 chars (< 4096 bytes) in a small frame: encoding cannot fail.
    frame.encode().unwrap_or_default()
}

/// An encoded `Error { code: Wipe }` frame: the relay's order to a revoked
/// laptop to destroy its keys (docs/sync.md#remote-wipe).
pub fn wipe_frame(message: &str) -> Vec<u8> {
    let frame = Frame::Error {
        code: ErrorCode::Wipe,
        message: message.chars().take(1000).collect(),
    };
    // At most 1000 chars (< 4096 bytes) in a small frame: encoding cannot fail.
    frame.encode().unwrap_or_default()
}

impl RelaySession {
    /// A session serving `device_id` the documents of `assignment`.
    pub fn new(
        config: SessionConfig,
        relay_name: &str,
        device_id: &str,
        assignment: BTreeSet<DocId>,
    ) -> Self {
        RelaySession {
            decoder: FrameDecoder::new(config.max_frame_len),
            config,
            relay: relay_name.to_owned(),
            device: device_id.to_owned(),
            assignment,
            out: Outbox::default(),
            events: VecDeque::new(),
            phase: Phase::AwaitHello,
            docs: BTreeMap::new(),
            refused: BTreeSet::new(),
            refused_frames: 0,
            policy: ContentPolicy::default(),
            assembler: Assembler::default(),
        }
    }

    /// Sets what the session accepts in a device's changes (trusted changes,
    /// the schema check, size limits). Without it: actors are checked, chunks
    /// are parsed and bounded with the default limits, and no schema is known.
    pub fn with_policy(mut self, policy: ContentPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Bytes this session holds on behalf of its device: a partly received
    /// frame or sync message, and changes waiting for their dependencies —
    /// what the relay's buffer budget accounts for.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
            + self.assembler.buffered()
            + self
                .docs
                .values()
                .flat_map(|d| d.pending.iter())
                .map(|(c, _)| c.len)
                .sum::<usize>()
    }

    /// Feeds bytes received from the device, using `docs` for the documents.
    pub fn handle_input(&mut self, bytes: &[u8], docs: &dyn DocHost) -> Result<(), SessionError> {
        match self.phase {
            Phase::Failed => return Err(SessionError::Closed),
            Phase::Done => return Ok(()),
            _ => {}
        }
        let r = self.handle_input_inner(bytes, docs);
        if let Err(e) = &r {
            tracing::warn!(device = %self.device, error = %e, "sync session failed");
            self.phase = Phase::Failed;
            self.out.frames.clear();
            if let Some(frame) = e.to_frame("the relay") {
                // An error frame is small; if it cannot be encoded there is nothing to send.
                let _ = self.out.push(&frame, self.config.max_frame_len);
            }
        }
        r
    }

    /// The next encoded frames to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.frames.pop_front()
    }

    /// The next event for the driver, if any.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// True once the session has finished (successfully or not).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Failed)
    }

    /// The device this session serves.
    pub fn device(&self) -> &str {
        &self.device
    }

    fn handle_input_inner(&mut self, bytes: &[u8], host: &dyn DocHost) -> Result<(), SessionError> {
        self.decoder.push(bytes);
        while let Some(frame) = self.decoder.next_frame()? {
            match (self.phase, frame) {
                (_, Frame::Error { code, message }) => {
                    return Err(SessionError::Remote { code, message });
                }
                (Phase::AwaitHello, Frame::Hello { device, docs, .. }) => {
                    self.on_hello(device, docs, host)?
                }
                (Phase::Serving, Frame::Sync { doc, message }) => {
                    self.assembler.check_idle(&doc)?;
                    self.on_sync(doc, &message, host)?
                }
                (Phase::Serving, Frame::SyncPart { doc, total, bytes }) => {
                    // A device's message carries at most the changes the
                    // policy allows (plus heads and a Bloom filter).
                    let max = self
                        .config
                        .max_message_len
                        .min(self.policy.limits.max_message_changes_len + (1 << 20));
                    if let Some((doc, message)) = self.assembler.part(doc, total, bytes, max)? {
                        self.on_sync(doc, &message, host)?
                    }
                }
                (Phase::Serving, Frame::Bye) => {
                    tracing::debug!(device = %self.device, "device said Bye");
                    self.phase = Phase::Done;
                    let synced = self
                        .docs
                        .iter()
                        .map(|(id, d)| {
                            (id.clone(), d.state.their_heads.clone().unwrap_or_default())
                        })
                        .collect();
                    self.events.push_back(RelayEvent::Finished(RelayOutcome {
                        synced,
                        refused: self.refused.clone(),
                    }));
                    return Ok(());
                }
                (phase, frame) => {
                    return Err(Violation::UnexpectedFrame {
                        from: Side::Device,
                        frame: frame.kind_name(),
                        phase: if phase == Phase::AwaitHello {
                            "waiting for Hello"
                        } else {
                            "serving"
                        },
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    fn on_hello(
        &mut self,
        device: String,
        held: Vec<DocHeads>,
        host: &dyn DocHost,
    ) -> Result<(), SessionError> {
        if device != self.device {
            return Err(SessionError::Unauthorized(format!(
                "Hello names device {device:?} but its certificate is for {:?}",
                self.device
            )));
        }
        if held.len() > self.config.max_docs || self.assignment.len() > self.config.max_docs {
            return Err(LimitExceeded::HelloVillages {
                max: self.config.max_docs,
            }
            .into());
        }
        let mut held_heads: BTreeMap<DocId, Heads> = BTreeMap::new();
        for entry in held {
            if entry.heads == Heads::Unchanged {
                return Err(Violation::UnchangedInHello(entry.doc).into());
            }
            held_heads.insert(entry.doc, entry.heads);
        }
        let mut welcome = Vec::with_capacity(self.assignment.len());
        // Villages whose first message the relay sends in this flight.
        let mut speak_first = Vec::new();
        // Villages whose relay copy does not load: refused after Welcome.
        let mut quarantined = Vec::new();
        for id in &self.assignment {
            let mut heads = Vec::new();
            match host.with_doc(id, &mut |am| heads = am.get_heads()) {
                Ok(()) => {}
                Err(StorageError::Corrupt { doc, detail }) if doc == *id => {
                    // Named in Welcome (so the device keeps its copy) with no
                    // heads, then refused: other villages sync as usual.
                    welcome.push(DocHeads {
                        doc: id.clone(),
                        heads: Heads::List(Vec::new()),
                    });
                    let mut d = RelayDoc::new(State::new(), None);
                    d.rejected = true;
                    self.docs.insert(id.clone(), d);
                    quarantined.push((id.clone(), detail));
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let (state, persisted, announce) = match held_heads.get(id) {
                None => {
                    // The device has nothing of it: the first message carries it whole.
                    speak_first.push(id.clone());
                    (state_for_empty_peer(), None, Heads::List(heads))
                }
                Some(Heads::Clean(digest)) => {
                    let mut persisted = host.sync_state(&self.device, id)?;
                    let mut state = decode_state(persisted.as_deref());
                    if *digest == HeadsDigest::of(&heads) {
                        // The device holds exactly our heads: nothing to exchange.
                        // Remember them as shared (repairs a state whose last
                        // acknowledgement was lost, or that was lost whole).
                        if persisted.is_none() || !same_set(&state.shared_heads, &heads) {
                            state.shared_heads = heads.clone();
                            let encoded = state.encode();
                            host.set_sync_state(&self.device, id, &encoded)?;
                            persisted = Some(encoded);
                        }
                        state.their_heads = Some(heads);
                        (state, persisted, Heads::Unchanged)
                    } else if persisted.is_some() && *digest == HeadsDigest::of(&state.shared_heads)
                    {
                        // The device holds exactly the shared heads and we have
                        // more: send every change made since, in this flight.
                        if state.shared_heads.is_empty() {
                            state = state_for_empty_peer();
                        } else {
                            host.with_doc(id, &mut |am| seed_push_since_shared(&mut state, am))?;
                        }
                        speak_first.push(id.clone());
                        (state, persisted, Heads::List(heads))
                    } else {
                        // Its heads are unknown here (our sync state was lost or
                        // is from before a restore): ask, from scratch.
                        tracing::debug!(device = %self.device, doc = %id, "clean village with unknown heads; asking");
                        speak_first.push(id.clone());
                        (State::new(), persisted, Heads::List(heads))
                    }
                }
                Some(_) => {
                    // Dirty: the device's first message is on its way.
                    let persisted = host.sync_state(&self.device, id)?;
                    (
                        decode_state(persisted.as_deref()),
                        persisted,
                        Heads::List(heads),
                    )
                }
            };
            welcome.push(DocHeads {
                doc: id.clone(),
                heads: announce,
            });
            self.docs
                .insert(id.clone(), RelayDoc::new(state, persisted));
        }
        self.out.push(
            &Frame::Welcome {
                version: PROTOCOL_VERSION,
                relay: self.relay.clone(),
                docs: welcome,
            },
            self.config.max_frame_len,
        )?;
        self.phase = Phase::Serving;
        for (id, detail) in quarantined {
            self.reject(&id, Rejection::Quarantined { detail })?;
        }
        for id in speak_first {
            self.respond(&id, None, host)?;
        }
        Ok(())
    }

    /// Refuses a device's message for an assigned village: nothing of it was
    /// applied; the device is told why; the driver audits the event.
    fn reject(&mut self, id: &DocId, why: Rejection) -> Result<(), SessionError> {
        let reason = format!("village {id}: {why}");
        tracing::warn!(device = %self.device, doc = %id, code = why.code().name(), %reason, "refused a sync message");
        if let Some(d) = self.docs.get_mut(id) {
            d.rejected = true;
            d.pending.clear();
        }
        self.refused.insert(id.clone());
        self.events.push_back(RelayEvent::Rejected {
            doc: id.clone(),
            code: why.code(),
            reason: reason.clone(),
        });
        let mut reason = reason;
        if reason.len() > crate::frame::MAX_MESSAGE_LEN {
            let mut cut = crate::frame::MAX_MESSAGE_LEN;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        self.out.push(
            &Frame::Refused {
                doc: id.clone(),
                code: why.code(),
                reason,
            },
            self.config.max_frame_len,
        )
    }

    fn on_sync(
        &mut self,
        id: DocId,
        message: &[u8],
        host: &dyn DocHost,
    ) -> Result<(), SessionError> {
        if !self.assignment.contains(&id) {
            // Refused, audited, and the rest of the session goes on.
            let change_bytes = automerge::sync::Message::decode(message)
                .map(|m| m.changes.iter().map(<[u8]>::len).sum())
                .unwrap_or(message.len());
            self.refused_frames += 1;
            if self.refused_frames > self.config.max_docs {
                return Err(LimitExceeded::Refusals {
                    max: self.config.max_docs,
                }
                .into());
            }
            tracing::warn!(device = %self.device, doc = %id, change_bytes, "refused: village not assigned");
            self.refused.insert(id.clone());
            self.events.push_back(RelayEvent::Refused {
                doc: id.clone(),
                change_bytes,
            });
            return self.out.push(
                &Frame::Refused {
                    doc: id.clone(),
                    code: RefuseCode::NotAssigned,
                    reason: format!(
                        "village {id} is not assigned to this device; nothing was applied"
                    ),
                },
                self.config.max_frame_len,
            );
        }
        if self.docs.get(&id).is_some_and(|d| d.rejected) {
            // Already refused in this session; the device was told.
            return Ok(());
        }
        let msg = decode_message(&id, message)?;
        self.respond(&id, Some(msg), host)
    }

    /// Applies `msg` (if any) to the shared document and queues automerge's answer.
    ///
    /// A device's changes are parsed and bounded first; each must be the
    /// device's own, already held, or trusted. Changes whose dependencies are
    /// missing wait in the session (bounded). The rest are applied, and the
    /// document is put back as it was if the schema check fails.
    fn respond(
        &mut self,
        id: &DocId,
        msg: Option<Message>,
        host: &dyn DocHost,
    ) -> Result<(), SessionError> {
        let max_messages = self.config.max_messages_per_doc;
        let limits = self.policy.limits.clone();
        let pending_elsewhere: (usize, usize) = self
            .docs
            .iter()
            .filter(|(d, _)| *d != id)
            .flat_map(|(_, d)| d.pending.iter())
            .fold((0, 0), |(n, b), (c, _)| (n + 1, b + c.len));
        let Some(d) = self.docs.get_mut(id) else {
            // Every assigned document got an entry in on_hello.
            return Err(Violation::NoSessionState(id.clone()).into());
        };
        let mut msg = msg;
        let mut candidates: Vec<(ParsedChange, usize)> = Vec::new();
        if let Some(m) = &mut msg {
            d.messages += 1;
            if d.messages > max_messages {
                return Err(LimitExceeded::Convergence {
                    doc: id.clone(),
                    max: max_messages,
                }
                .into());
            }
            let parsed = match parse_changes(m.changes.iter(), &limits) {
                Ok(p) => p,
                Err(why) => return self.reject(id, why),
            };
            m.changes = ChunkList::empty();
            let now = d.messages;
            // Changes still waiting, unless they waited too long.
            for (c, at) in std::mem::take(&mut d.pending) {
                if now.saturating_sub(at) <= limits.max_pending_messages {
                    candidates.push((c, at));
                } else {
                    tracing::debug!(device = %self.device, doc = %id, "dropped a change whose dependencies never came");
                }
            }
            candidates.extend(parsed.into_iter().map(|c| (c, now)));
        }
        let device = self.device.clone();
        let policy = &self.policy;
        let state_before = d.state.clone();
        let mut verdict: Result<(), Rejection> = Ok(());
        let mut failure: Option<String> = None;
        let mut applied = 0usize;
        let mut reply = None;
        let mut waiting: Vec<(ParsedChange, usize)> = Vec::new();
        // automerge may panic on a peer's malformed changes, even halfway
        // through applying them (found by the sync_message fuzz target); the
        // host then puts the village back as storage holds it, and the panic
        // refuses the village like any change automerge cannot apply.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            host.try_with_doc(id, &mut |am| {
                let before = am.get_heads();
                if let Some(mut m) = msg.take() {
                    // Who wrote them: only changes new to the relay count.
                    let mut fresh: Vec<(ParsedChange, usize)> = Vec::new();
                    let mut seen = BTreeSet::new();
                    for (c, at) in candidates.drain(..) {
                        let hash = c.change.hash();
                        if am.get_change_by_hash(&hash).is_some() || !seen.insert(hash) {
                            continue;
                        }
                        if !policy.trusted.contains(&hash)
                            && !actor_belongs_to(c.change.actor_id(), &device)
                        {
                            verdict = Err(Rejection::ForgedActor {
                                actor: c.change.actor_id().to_hex_string(),
                            });
                            return false;
                        }
                        fresh.push((c, at));
                    }
                    // Which can be applied now: every dependency held or arriving.
                    // Changes of this batch already ready, with their last op counter.
                    let mut known: BTreeMap<ChangeHash, u64> = BTreeMap::new();
                    let mut ready = Vec::new();
                    loop {
                        let mut progress = false;
                        let mut rest = Vec::new();
                        for (c, at) in fresh.drain(..) {
                            let dep_max_ops: Option<Vec<u64>> = c
                                .change
                                .deps()
                                .iter()
                                .map(|h| {
                                    known.get(h).copied().or_else(|| {
                                        am.get_change_by_hash(h).map(|d| d.max_op())
                                    })
                                })
                                .collect();
                            if let Some(dep_max_ops) = dep_max_ops {
                                // A change's ops are counted after every op it
                                // depends on. automerge 0.12 does not check it,
                                // and a change that breaks it makes `save()`
                                // write a village that does not load ("mismatching
                                // heads"): no new laptop could get the village
                                // (found by the sync_message fuzz target).
                                let after = dep_max_ops.into_iter().max().unwrap_or(0);
                                if c.change.start_op().get() <= after {
                                    verdict = Err(Rejection::BadChange {
                                        detail: format!(
                                            "a change counts its ops from {} but depends on op {after}",
                                            c.change.start_op()
                                        ),
                                    });
                                    return false;
                                }
                                known.insert(c.change.hash(), c.change.max_op());
                                ready.push(c.change.raw_bytes().to_vec());
                                progress = true;
                            } else {
                                rest.push((c, at));
                            }
                        }
                        fresh = rest;
                        if !progress || fresh.is_empty() {
                            break;
                        }
                    }
                    let (n, bytes) = fresh
                        .iter()
                        .fold(pending_elsewhere, |(n, b), (c, _)| (n + 1, b + c.len));
                    if n > limits.max_pending_changes {
                        verdict = Err(Rejection::TooLarge {
                            what: "the changes waiting for missing dependencies (count)",
                            len: n,
                            max: limits.max_pending_changes,
                        });
                        return false;
                    }
                    if bytes > limits.max_pending_bytes {
                        verdict = Err(Rejection::TooLarge {
                            what: "the changes waiting for missing dependencies",
                            len: bytes,
                            max: limits.max_pending_bytes,
                        });
                        return false;
                    }
                    waiting = fresh;
                    m.changes = ChunkList::from(ready);
                    if let Err(e) = am.receive_sync_message(&mut d.state, m) {
                        failure = Some(e.to_string());
                        return false;
                    }
                    if am.get_heads() != before {
                        if let Some(check) = &policy.schema
                            && let Err(detail) = check(am, &before)
                        {
                            verdict = Err(Rejection::Schema { detail });
                            return false;
                        }
                        applied = am.get_changes(&before).len();
                    }
                }
                // Every minqing laptop takes a whole village in one message
                // (its first sync does). A peer whose message names no
                // capabilities and asks for much of the history (one that
                // claims to hold nothing) then gets its compact saved form
                // rather than every change one by one: ≈ 1/5 of the bytes,
                // and far less memory to build (docs/benchmarks.md, L1).
                if d.state.their_capabilities.is_none() {
                    d.state.their_capabilities = our_capabilities();
                }
                reply = am.generate_sync_message(&mut d.state);
                if let Some(r) = &mut reply
                    && !waiting.is_empty()
                {
                    // Ask for what the waiting changes depend on: automerge does not
                    // know them (they are not in the document).
                    let waiting_hashes: BTreeSet<ChangeHash> =
                        waiting.iter().map(|(c, _)| c.change.hash()).collect();
                    let mut need: BTreeSet<ChangeHash> = r.need.iter().copied().collect();
                    for (c, _) in &waiting {
                        for dep in c.change.deps() {
                            if !waiting_hashes.contains(dep) && am.get_change_by_hash(dep).is_none()
                            {
                                need.insert(*dep);
                            }
                        }
                    }
                    r.need = need.into_iter().collect();
                }
                true
            })
        }));
        let kept = match run {
            Ok(kept) => kept,
            Err(panic) => {
                failure = Some(panic_detail(&*panic));
                Ok(false)
            }
        };
        let kept = match kept {
            Ok(k) => k,
            Err(StorageError::Corrupt { doc, detail }) if doc == *id => {
                d.state = state_before;
                return self.reject(id, Rejection::Quarantined { detail });
            }
            Err(e) => return Err(e.into()),
        };
        if !kept {
            d.state = state_before;
            if let Some(detail) = failure {
                // e.g. a sequence number this actor already used (a store
                // copied to a second laptop): the village is refused, the
                // session goes on.
                return self.reject(id, Rejection::BadChange { detail });
            }
            if let Err(why) = verdict {
                return self.reject(id, why);
            }
            return Err(Violation::DiscardedWithoutReason(id.clone()).into());
        }
        d.pending = waiting;
        if applied > 0 {
            tracing::debug!(device = %self.device, doc = %id, changes = applied, "applied changes");
            self.events.push_back(RelayEvent::Applied {
                doc: id.clone(),
                changes: applied,
            });
        }
        let encoded = d.state.encode();
        if d.persisted.as_ref() != Some(&encoded) {
            host.set_sync_state(&self.device, id, &encoded)?;
            d.persisted = Some(encoded);
        }
        if let Some(m) = reply {
            self.out
                .push_sync(id, m.encode(), self.config.max_frame_len)?;
        }
        Ok(())
    }
}
