//! The device side of a sync session: a sans-IO state machine that owns the
//! device's documents for the session and reports what to persist as events.

use std::collections::{BTreeMap, VecDeque};

use automerge::Automerge;
use automerge::sync::{State, SyncDoc};

use crate::DocId;
use crate::frame::{DocHeads, Frame, FrameDecoder, Heads, HeadsDigest};
use crate::session::{
    Assembler, DocOutcome, LimitExceeded, Outbox, SessionConfig, SessionError, SessionOutcome,
    Side, Violation, changes_one_by_one, decode_message, decode_state, receive_guarded, same_set,
    seed_push_since_shared,
};

/// What the device driver must do or know, in order. Persist every event
/// (append / remove / set sync state), then flush, then transmit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// New changes of a held document: append `bytes` to its storage.
    DocChanged {
        /// The document.
        doc: DocId,
        /// Automerge change bytes (`save_after` of the heads before).
        bytes: Vec<u8>,
    },
    /// A newly assigned document arrived: store `bytes` (a whole saved document).
    DocAdded {
        /// The document.
        doc: DocId,
        /// `Automerge::save()` of the received document.
        bytes: Vec<u8>,
    },
    /// The document is no longer assigned to this device: delete the local copy.
    DocRemoved {
        /// The document.
        doc: DocId,
    },
    /// The sync state with the relay changed: persist it under (relay name, doc).
    SyncState {
        /// The document.
        doc: DocId,
        /// `automerge::sync::State::encode()`.
        state: Vec<u8>,
    },
    /// The relay refused this document; nothing was exchanged for it.
    Refused {
        /// The document.
        doc: DocId,
        /// The relay's words.
        reason: String,
    },
    /// The session is complete (a `Bye` is queued); the driver may close after
    /// transmitting.
    Finished(SessionOutcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitWelcome,
    Syncing,
    Done,
    Failed,
}

#[derive(Debug)]
struct DeviceDoc {
    doc: Automerge,
    state: State,
    /// The encoded state last reported (or loaded), to report only changes.
    persisted: Option<Vec<u8>>,
    /// Declared clean in `Hello` (heads = persisted shared heads): no first-flight
    /// `Sync` was sent; the relay answers `Unchanged` or sends what it has.
    clean: bool,
    /// Not held before this session: the relay sends it whole.
    added: bool,
    added_reported: bool,
    messages: usize,
    outcome: Option<DocOutcome>,
}

/// One device–relay session, device side.
///
/// Construct it with the documents the device holds; it queues `Hello` and the
/// first sync message of every document at once (they form the first flight).
#[derive(Debug)]
pub struct DeviceSession {
    config: SessionConfig,
    decoder: FrameDecoder,
    out: Outbox,
    events: VecDeque<DeviceEvent>,
    phase: Phase,
    relay: String,
    docs: BTreeMap<DocId, DeviceDoc>,
    assembler: Assembler,
}

impl DeviceSession {
    /// Starts a session for `device_id` with the documents it holds, each with the
    /// sync state persisted for the relay (`None` if it never synced).
    pub fn new(
        config: SessionConfig,
        device_id: &str,
        docs: Vec<(DocId, Automerge, Option<Vec<u8>>)>,
    ) -> Result<Self, SessionError> {
        if docs.len() > config.max_docs {
            return Err(LimitExceeded::HeldVillages {
                held: docs.len(),
                max: config.max_docs,
            }
            .into());
        }
        let mut session = DeviceSession {
            decoder: FrameDecoder::new(config.max_frame_len),
            config,
            out: Outbox::default(),
            events: VecDeque::new(),
            phase: Phase::AwaitWelcome,
            relay: String::new(),
            docs: BTreeMap::new(),
            assembler: Assembler::default(),
        };
        let mut hello = Vec::with_capacity(docs.len());
        for (id, doc, persisted) in docs {
            let mut state = decode_state(persisted.as_deref());
            let heads = doc.get_heads();
            // Clean: nothing changed here since the last sync with this relay.
            let clean = persisted.is_some() && same_set(&heads, &state.shared_heads);
            seed_push_since_shared(&mut state, &doc);
            hello.push(DocHeads {
                doc: id.clone(),
                heads: if clean {
                    Heads::Clean(HeadsDigest::of(&heads))
                } else {
                    Heads::List(heads)
                },
            });
            session.docs.insert(
                id,
                DeviceDoc {
                    doc,
                    state,
                    persisted,
                    clean,
                    added: false,
                    added_reported: false,
                    messages: 0,
                    outcome: None,
                },
            );
        }
        session.out.push(
            &Frame::hello(device_id.to_owned(), hello),
            session.config.max_frame_len,
        )?;
        // Dirty villages' first messages carry their changes; clean ones send
        // nothing until the relay says it has more.
        let ids: Vec<DocId> = session
            .docs
            .iter()
            .filter(|(_, d)| !d.clean)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            session.send_next(&id)?;
        }
        Ok(session)
    }

    /// Feeds bytes received from the relay (any slice of the stream).
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        match self.phase {
            Phase::Failed => return Err(SessionError::Closed),
            Phase::Done => return Ok(()),
            _ => {}
        }
        let r = self.handle_input_inner(bytes);
        if let Err(e) = &r {
            self.fail(e);
        }
        r
    }

    /// The next encoded frames to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.frames.pop_front()
    }

    /// The next event for the driver, if any.
    pub fn poll_event(&mut self) -> Option<DeviceEvent> {
        self.events.pop_front()
    }

    /// True once the session has finished (successfully or not).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Failed)
    }

    /// The current document of `doc` in this session (for watch mode and tests).
    pub fn doc(&self, doc: &DocId) -> Option<&Automerge> {
        self.docs.get(doc).map(|d| &d.doc)
    }

    fn fail(&mut self, e: &SessionError) {
        tracing::warn!(relay = %self.relay, error = %e, "sync session failed");
        self.phase = Phase::Failed;
        self.out.frames.clear();
        if let Some(frame) = e.to_frame("this minqing") {
            // An error frame is small; if it cannot be encoded there is nothing to send.
            let _ = self.out.push(&frame, self.config.max_frame_len);
        }
    }

    fn handle_input_inner(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.decoder.push(bytes);
        while let Some(frame) = self.decoder.next_frame()? {
            self.handle_frame(frame)?;
            if self.phase == Phase::Done {
                return Ok(());
            }
        }
        self.maybe_finish()
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), SessionError> {
        match (self.phase, frame) {
            (_, Frame::Error { code, message }) => Err(SessionError::Remote { code, message }),
            (Phase::AwaitWelcome, Frame::Welcome { relay, docs, .. }) => {
                self.on_welcome(relay, docs)
            }
            (Phase::Syncing, Frame::Sync { doc, message }) => {
                self.assembler.check_idle(&doc)?;
                self.on_sync(doc, &message)
            }
            (Phase::Syncing, Frame::SyncPart { doc, total, bytes }) => {
                match self
                    .assembler
                    .part(doc, total, bytes, self.config.max_message_len)?
                {
                    Some((doc, message)) => self.on_sync(doc, &message),
                    None => Ok(()),
                }
            }
            (Phase::Syncing, Frame::Refused { doc, reason, .. }) => self.on_refused(doc, reason),
            (phase, frame) => Err(Violation::UnexpectedFrame {
                from: Side::Relay,
                frame: frame.kind_name(),
                phase: match phase {
                    Phase::AwaitWelcome => "waiting for Welcome",
                    _ => "syncing",
                },
            }
            .into()),
        }
    }

    fn on_welcome(&mut self, relay: String, docs: Vec<DocHeads>) -> Result<(), SessionError> {
        if docs.len() > self.config.max_docs {
            return Err(LimitExceeded::AssignedVillages {
                assigned: docs.len(),
                max: self.config.max_docs,
            }
            .into());
        }
        self.relay = relay;
        self.phase = Phase::Syncing;
        let mut assigned: BTreeMap<DocId, ()> = BTreeMap::new();
        for entry in docs {
            match entry.heads {
                Heads::List(_) => {}
                Heads::Clean(_) => {
                    return Err(Violation::CleanInWelcome(entry.doc).into());
                }
                Heads::Unchanged => match self.docs.get_mut(&entry.doc) {
                    // Both sides hold the same heads: settled without an exchange,
                    // and the persisted state already names these heads.
                    Some(d) if d.clean => {
                        d.outcome = Some(DocOutcome::InSync {
                            heads: d.doc.get_heads(),
                        });
                    }
                    _ => {
                        return Err(Violation::UnchangedNotClean(entry.doc).into());
                    }
                },
            }
            assigned.insert(entry.doc, ());
        }
        for (id, d) in self.docs.iter_mut() {
            if !assigned.contains_key(id) {
                d.outcome = Some(DocOutcome::Removed);
                self.events
                    .push_back(DeviceEvent::DocRemoved { doc: id.clone() });
            }
        }
        for id in assigned.into_keys() {
            self.docs.entry(id).or_insert_with(|| DeviceDoc {
                doc: Automerge::new(),
                state: State::new(),
                persisted: None,
                clean: false,
                added: true,
                added_reported: false,
                messages: 0,
                outcome: None,
            });
        }
        Ok(())
    }

    fn on_sync(&mut self, id: DocId, message: &[u8]) -> Result<(), SessionError> {
        let max_messages = self.config.max_messages_per_doc;
        let d = match self.docs.get_mut(&id) {
            // Refused in this session: whatever was still on its way is moot.
            Some(d) if matches!(d.outcome, Some(DocOutcome::Refused { .. })) => return Ok(()),
            Some(d) if d.outcome != Some(DocOutcome::Removed) => d,
            _ => {
                return Err(Violation::NotAssigned(id).into());
            }
        };
        d.messages += 1;
        if d.messages > max_messages {
            return Err(LimitExceeded::Convergence {
                doc: id,
                max: max_messages,
            }
            .into());
        }
        let msg = decode_message(&id, message)?;
        tracing::trace!(
            doc = %id,
            bytes = message.len(),
            changes = msg.changes.len(),
            heads = msg.heads.len(),
            "sync message from the relay"
        );
        let before = d.doc.get_heads();
        receive_guarded(&mut d.doc, &mut d.state, msg).map_err(|detail| {
            SessionError::BadMessage {
                doc: id.clone(),
                detail,
            }
        })?;
        let after = d.doc.get_heads();
        if after != before {
            if d.added && !d.added_reported {
                d.added_reported = true;
                self.events.push_back(DeviceEvent::DocAdded {
                    doc: id.clone(),
                    bytes: d.doc.save(),
                });
            } else {
                self.events.push_back(DeviceEvent::DocChanged {
                    doc: id.clone(),
                    bytes: d.doc.save_after(&before),
                });
            }
        }
        let encoded = d.state.encode();
        if d.persisted.as_ref() != Some(&encoded) {
            d.persisted = Some(encoded.clone());
            self.events.push_back(DeviceEvent::SyncState {
                doc: id.clone(),
                state: encoded,
            });
        }
        // Settled when the relay's last advertised heads are ours.
        let settled = d.state.their_heads.as_ref() == Some(&after);
        if settled && d.added && !d.added_reported {
            // An empty document was assigned: store it all the same.
            d.added_reported = true;
            self.events.push_back(DeviceEvent::DocAdded {
                doc: id.clone(),
                bytes: d.doc.save(),
            });
        }
        d.outcome = settled.then(|| {
            if d.added {
                DocOutcome::Added {
                    heads: after.clone(),
                }
            } else {
                DocOutcome::InSync {
                    heads: after.clone(),
                }
            }
        });
        // Whatever automerge still wants to say: data the relay lacks, or (when
        // settled) our new heads so the relay can advance its shared heads; the
        // latter needs no answer.
        self.send_next(&id)
    }

    fn on_refused(&mut self, id: DocId, reason: String) -> Result<(), SessionError> {
        match self.docs.get_mut(&id) {
            // A document the device was told is no longer assigned: expected.
            Some(d) if d.outcome == Some(DocOutcome::Removed) => Ok(()),
            // Told once already.
            Some(d) if matches!(d.outcome, Some(DocOutcome::Refused { .. })) => Ok(()),
            Some(d) => {
                d.outcome = Some(DocOutcome::Refused {
                    reason: reason.clone(),
                });
                self.events
                    .push_back(DeviceEvent::Refused { doc: id, reason });
                Ok(())
            }
            None => Err(Violation::RefusedUnoffered(id).into()),
        }
    }

    fn send_next(&mut self, id: &DocId) -> Result<(), SessionError> {
        let Some(d) = self.docs.get_mut(id) else {
            return Ok(());
        };
        // The relay accepts changes one by one, never a whole saved document.
        changes_one_by_one(&mut d.state);
        if let Some(msg) = d.doc.generate_sync_message(&mut d.state) {
            let changes = msg.changes.len();
            let message = msg.encode();
            tracing::trace!(doc = %id, bytes = message.len(), changes, "sync message to the relay");
            self.out.push_sync(id, message, self.config.max_frame_len)?;
        }
        Ok(())
    }

    fn maybe_finish(&mut self) -> Result<(), SessionError> {
        if self.phase != Phase::Syncing || self.docs.values().any(|d| d.outcome.is_none()) {
            return Ok(());
        }
        self.out.push(&Frame::Bye, self.config.max_frame_len)?;
        self.phase = Phase::Done;
        tracing::debug!(relay = %self.relay, docs = self.docs.len(), "all villages settled; Bye");
        let docs = self
            .docs
            .iter()
            .filter_map(|(id, d)| d.outcome.clone().map(|o| (id.clone(), o)))
            .collect();
        self.events.push_back(DeviceEvent::Finished(SessionOutcome {
            relay: self.relay.clone(),
            docs,
        }));
        Ok(())
    }
}
