//! The relay side of a sync session: a sans-IO state machine that serves one
//! device over documents it borrows from a shared [`DocHost`], enforcing the
//! device's assignment on every frame.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::ChangeHash;
use automerge::sync::{State, SyncDoc};

use crate::DocId;
use crate::frame::{
    DocHeads, ErrorCode, Frame, FrameDecoder, Heads, HeadsDigest, PROTOCOL_VERSION, RefuseCode,
};
use crate::host::DocHost;
use crate::session::{
    Outbox, SessionConfig, SessionError, decode_message, decode_state, panic_detail, same_set,
    seed_push_since_shared, state_for_empty_peer,
};

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
        }
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
                    self.on_sync(doc, &message, host)?
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
                    return Err(SessionError::Protocol(format!(
                        "the device sent {} while the relay was {}",
                        frame.kind_name(),
                        if phase == Phase::AwaitHello {
                            "waiting for Hello"
                        } else {
                            "serving"
                        }
                    )));
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
            return Err(SessionError::Limit(format!(
                "more than {} villages in one session",
                self.config.max_docs
            )));
        }
        let mut held_heads: BTreeMap<DocId, Heads> = BTreeMap::new();
        for entry in held {
            if entry.heads == Heads::Unchanged {
                return Err(SessionError::Protocol(format!(
                    "Hello marks village {} unchanged, which only the relay may say",
                    entry.doc
                )));
            }
            held_heads.insert(entry.doc, entry.heads);
        }
        let mut welcome = Vec::with_capacity(self.assignment.len());
        // Villages whose first message the relay sends in this flight.
        let mut speak_first = Vec::new();
        for id in &self.assignment {
            let mut heads = Vec::new();
            host.with_doc(id, &mut |am| heads = am.get_heads())?;
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
            self.docs.insert(
                id.clone(),
                RelayDoc {
                    state,
                    persisted,
                    messages: 0,
                },
            );
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
        for id in speak_first {
            self.respond(&id, None, host)?;
        }
        Ok(())
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
                return Err(SessionError::Limit(format!(
                    "more than {} refused frames in one session",
                    self.config.max_docs
                )));
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
        let msg = decode_message(&id, message)?;
        self.respond(&id, Some(msg), host)
    }

    /// Applies `msg` (if any) to the shared document and queues automerge's answer.
    fn respond(
        &mut self,
        id: &DocId,
        msg: Option<automerge::sync::Message>,
        host: &dyn DocHost,
    ) -> Result<(), SessionError> {
        let max_messages = self.config.max_messages_per_doc;
        let Some(d) = self.docs.get_mut(id) else {
            // Every assigned document got an entry in on_hello.
            return Err(SessionError::Protocol(format!(
                "village {id} has no session state"
            )));
        };
        if msg.is_some() {
            d.messages += 1;
            if d.messages > max_messages {
                return Err(SessionError::Limit(format!(
                    "village {id} did not converge within {max_messages} messages"
                )));
            }
        }
        let mut result: Result<(), String> = Ok(());
        let mut applied = 0usize;
        let mut reply = None;
        let mut msg = msg;
        // automerge may panic on a peer's malformed changes, even halfway
        // through applying them; the host then drops its copy of the village
        // (reloaded from storage on next use) and the session ends here.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            host.with_doc(id, &mut |am| {
                let before = am.get_heads();
                if let Some(m) = msg.take()
                    && let Err(e) = am.receive_sync_message(&mut d.state, m)
                {
                    result = Err(e.to_string());
                    return;
                }
                if am.get_heads() != before {
                    applied = am.get_changes(&before).len();
                }
                reply = am.generate_sync_message(&mut d.state);
            })
        }));
        match run {
            Ok(r) => r?,
            Err(panic) => result = Err(panic_detail(&*panic)),
        }
        result.map_err(|detail| SessionError::BadMessage {
            doc: id.clone(),
            detail,
        })?;
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
            self.out.push(
                &Frame::Sync {
                    doc: id.clone(),
                    message: m.encode(),
                },
                self.config.max_frame_len,
            )?;
        }
        Ok(())
    }
}
