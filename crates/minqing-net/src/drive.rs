//! Drivers that run a sans-IO `minqing-sync` session over one QUIC bidirectional
//! stream: read bytes, feed the session, persist and flush what it produced, and
//! only then send its frames.

use std::sync::Arc;
use std::time::Duration;

use minqing_sync::{
    DeviceEvent, DeviceSession, DocHost, RelayEvent, RelaySession, SessionOutcome, Storage,
};
use quinn::{RecvStream, SendStream};

use crate::endpoint::{map_connection_error, map_read_error, map_write_error};
use crate::{DeviceConnection, NetError};

/// Largest chunk read from the stream at once.
const READ_CHUNK: usize = 256 * 1024;
/// How long a finished session waits for the peer's end of stream.
const LINGER: Duration = Duration::from_secs(5);

fn storage_err(e: minqing_sync::StorageError) -> NetError {
    NetError::Session(e.to_string())
}

async fn transmit(
    send: &mut SendStream,
    mut next: impl FnMut() -> Option<Vec<u8>>,
    addr: &str,
) -> Result<(), NetError> {
    while let Some(frame) = next() {
        send.write_all(&frame)
            .await
            .map_err(|e| map_write_error(&e, addr))?;
    }
    Ok(())
}

/// Limits on one relay session (docs/relay.md, "Limits").
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// The session ends when the device sends nothing for this long (QUIC
    /// keep-alives do not count).
    pub silence: Duration,
    /// Bytes received and not yet decoded into whole frames, shared by every
    /// session of the relay: one permit per byte. `None`: unbounded.
    pub budget: Option<Arc<tokio::sync::Semaphore>>,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            silence: Duration::from_secs(30),
            budget: None,
        }
    }
}

/// The budget a session holds (returned when it ends).
struct Held {
    budget: Option<Arc<tokio::sync::Semaphore>>,
    bytes: usize,
}

impl Held {
    /// Takes `n` more bytes of the budget, waiting at most `wait`.
    async fn take(&mut self, n: usize, wait: Duration) -> Result<(), NetError> {
        let Some(b) = &self.budget else { return Ok(()) };
        let n32 = u32::try_from(n).map_err(|_| NetError::Limit("a chunk too large".into()))?;
        match tokio::time::timeout(wait, b.acquire_many(n32)).await {
            Ok(Ok(permit)) => {
                permit.forget();
                self.bytes += n;
                Ok(())
            }
            Ok(Err(_)) => Err(NetError::Limit("the relay is shutting down".into())),
            Err(_) => Err(NetError::Limit(format!(
                "the relay is busy (its receive buffers are full for {} s); try again later",
                wait.as_secs()
            ))),
        }
    }

    /// Keeps only `keep` bytes of the budget.
    fn keep(&mut self, keep: usize) {
        if let Some(b) = &self.budget
            && keep < self.bytes
        {
            b.add_permits(self.bytes - keep);
            self.bytes = keep;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.keep(0);
    }
}

/// What one input did to a relay session, computed off the async runtime.
struct RelayStep {
    session: RelaySession,
    result: Result<(), minqing_sync::SessionError>,
    events: Vec<RelayEvent>,
    frames: Vec<Vec<u8>>,
}

/// Runs the relay side of a session on an accepted stream until the device says
/// `Bye`, the stream ends or an error occurs. Every event is passed to
/// `on_event` (audit refusals, record the outcome); the host's storage is
/// flushed before any frame produced by the same input is sent.
///
/// The CPU and disk work of each input (decoding, applying changes to the
/// documents, generating sync messages, the flush) runs on tokio's blocking
/// pool (`spawn_blocking`), never on the runtime's worker threads, so that many
/// devices syncing at once do not stall the endpoint or each other's network
/// I/O. The session moves into the blocking task and back for each input.
///
/// `limits` bound the silence between the device's bytes and the bytes
/// buffered in partial frames (a session that cannot get budget within the
/// silence bound ends with [`NetError::Limit`]). A frame the session refuses
/// ends it with [`NetError::Protocol`].
pub async fn run_relay_session(
    send: &mut SendStream,
    recv: &mut RecvStream,
    session: RelaySession,
    host: Arc<dyn DocHost + Send + Sync>,
    storage: Arc<dyn Storage>,
    limits: &SessionLimits,
    on_event: &mut (dyn FnMut(RelayEvent) + Send),
) -> Result<(), NetError> {
    let peer = session.device().to_owned();
    let mut session = Some(session);
    let mut held = Held {
        budget: limits.budget.clone(),
        bytes: 0,
    };
    loop {
        let chunk =
            match tokio::time::timeout(limits.silence, recv.read_chunk(READ_CHUNK, true)).await {
                Ok(r) => r.map_err(|e| map_read_error(&e, &peer))?,
                Err(_) => {
                    return Err(NetError::Limit(format!(
                        "the laptop sent nothing for {} s",
                        limits.silence.as_secs()
                    )));
                }
            };
        if let Some(c) = &chunk {
            held.take(c.bytes.len(), limits.silence).await?;
        }
        let Some(chunk) = chunk else {
            if session.as_ref().is_some_and(RelaySession::is_closed) {
                return Ok(());
            }
            return Err(NetError::ConnectionLost(
                "the device ended the stream before the session finished".into(),
            ));
        };
        let Some(mut s) = session.take() else {
            // The session is put back after every step; a missing one means the
            // previous step's task failed, which returned early.
            return Err(NetError::Session("session state lost".into()));
        };
        let (host, storage) = (host.clone(), storage.clone());
        let step = tokio::task::spawn_blocking(move || -> Result<RelayStep, NetError> {
            let result = s.handle_input(&chunk.bytes, &*host);
            let mut events = Vec::new();
            while let Some(ev) = s.poll_event() {
                events.push(ev);
            }
            // Durable before anything that acknowledges it leaves.
            storage.flush().map_err(storage_err)?;
            let mut frames = Vec::new();
            while let Some(f) = s.poll_transmit() {
                frames.push(f);
            }
            Ok(RelayStep {
                session: s,
                result,
                events,
                frames,
            })
        })
        .await
        .map_err(|e| NetError::Session(format!("the session's worker failed: {e}")))??;
        held.keep(step.session.buffered());
        for ev in step.events {
            on_event(ev);
        }
        let mut frames = step.frames.into_iter();
        transmit(send, || frames.next(), &peer).await?;
        if let Err(e) = step.result {
            let _ = send.finish();
            return Err(NetError::Protocol(e));
        }
        let closed = step.session.is_closed();
        session = Some(step.session);
        if closed {
            let _ = send.finish();
            // Let the device read the end of our stream; it closes the connection.
            let _ = tokio::time::timeout(LINGER, recv.read_to_end(0)).await;
            return Ok(());
        }
    }
}

/// Persists one device event into `storage` (sync states under `peer`, the relay's
/// name). Returns the outcome when the session finished.
pub fn apply_device_event(
    storage: &dyn Storage,
    peer: &str,
    event: &DeviceEvent,
) -> Result<Option<SessionOutcome>, minqing_sync::StorageError> {
    match event {
        DeviceEvent::DocChanged { doc, bytes } => storage.append(doc, bytes)?,
        DeviceEvent::DocAdded { doc, bytes } => {
            // A stale copy (e.g. a village removed and assigned again) is replaced whole.
            if storage.load(doc)?.is_some() {
                storage.remove(doc)?;
            }
            storage.append(doc, bytes)?;
        }
        DeviceEvent::DocRemoved { doc } => storage.remove(doc)?,
        DeviceEvent::SyncState { doc, state } => storage.set_sync_state(peer, doc, state)?,
        DeviceEvent::Refused { .. } => {}
        DeviceEvent::Finished(outcome) => return Ok(Some(outcome.clone())),
    }
    Ok(None)
}

/// No progress from the relay for `silence`: the session stalled (the relay is
/// stuck, e.g. on a full disk, while QUIC keep-alives hold the connection up).
fn stalled(addr: &str, silence: Duration) -> NetError {
    NetError::ConnectionLost(format!(
        "the relay at {addr} sent nothing for {} s in the middle of the sync (the relay may be stuck): gave up",
        silence.as_secs_f32()
    ))
}

/// Runs the device side of a session over a new stream of `conn`: sends the first
/// flight, then applies each input, persisting every event into `storage` and
/// flushing before it sends what the input produced. `on_event` sees every event
/// after it was persisted (for notices). Returns the session's outcome. Silence
/// longer than `conn.silence` — nothing read, or nothing could be sent — ends
/// the session with [`NetError::ConnectionLost`]; `storage.flush()` is called
/// after every input, so a storage that releases itself when idle (the CLI's)
/// is not held while the relay is awaited.
pub async fn run_device_session(
    conn: &DeviceConnection,
    session: &mut DeviceSession,
    storage: &dyn Storage,
    peer: &str,
    on_event: &mut (dyn FnMut(&DeviceEvent) + Send),
) -> Result<SessionOutcome, NetError> {
    let addr = conn.addr.clone();
    let (mut send, mut recv) = conn
        .connection
        .open_bi()
        .await
        .map_err(|e| map_connection_error(&e, &addr))?;
    let silence = conn.silence;
    tokio::time::timeout(
        silence,
        transmit(&mut send, || session.poll_transmit(), &addr),
    )
    .await
    .map_err(|_| stalled(&addr, silence))??;
    let mut outcome = None;
    loop {
        let chunk = tokio::time::timeout(silence, recv.read_chunk(READ_CHUNK, true))
            .await
            .map_err(|_| stalled(&addr, silence))?
            .map_err(|e| map_read_error(&e, &addr))?;
        let Some(chunk) = chunk else {
            return match outcome {
                Some(o) => Ok(o),
                None => Err(NetError::ConnectionLost(
                    "the relay ended the stream before the session finished".into(),
                )),
            };
        };
        let result = session.handle_input(&chunk.bytes);
        while let Some(ev) = session.poll_event() {
            if let Some(o) = apply_device_event(storage, peer, &ev).map_err(storage_err)? {
                outcome = Some(o);
            }
            on_event(&ev);
        }
        storage.flush().map_err(storage_err)?;
        tokio::time::timeout(
            silence,
            transmit(&mut send, || session.poll_transmit(), &addr),
        )
        .await
        .map_err(|_| stalled(&addr, silence))??;
        if let Err(e) = result {
            let _ = send.finish();
            return Err(match e {
                minqing_sync::SessionError::Remote {
                    code: minqing_sync::frame::ErrorCode::Unauthorized,
                    message,
                } => NetError::Refused(message),
                minqing_sync::SessionError::Remote {
                    code: minqing_sync::frame::ErrorCode::Wipe,
                    message,
                } => NetError::WipeOrdered(message),
                other => NetError::Session(other.to_string()),
            });
        }
        if let Some(o) = &outcome
            && session.is_closed()
        {
            // Every village is settled: the relay acknowledged our changes after
            // its flush, and what it sent is flushed here. The outcome is final
            // now; `Bye` and the end of our stream still have to reach the relay
            // (it keeps the session's last sync states then), so the wait for the
            // relay's end of stream goes on in the background, and
            // `DeviceConnection::close` lets it finish (bounded) before it closes
            // the connection. Waiting for it here would add a round trip to every
            // sync for nothing the cadre needs.
            let _ = send.finish();
            conn.linger(tokio::spawn(async move {
                let _ = tokio::time::timeout(LINGER, recv.read_to_end(0)).await;
                drop(send);
            }));
            return Ok(o.clone());
        }
    }
}

/// Whether `doc` holds changes the peer has not acknowledged: its heads differ
/// from the shared heads in the persisted sync state (`None`: never synced).
pub fn has_local_changes(doc: &automerge::Automerge, state: Option<&[u8]>) -> bool {
    let Some(state) = state.and_then(|s| automerge::sync::State::decode(s).ok()) else {
        return true;
    };
    let mut ours = doc.get_heads();
    let mut shared = state.shared_heads;
    ours.sort();
    shared.sort();
    ours != shared
}

/// How many of `doc`'s changes the peer whose sync state is `state` is not
/// known to have (all of them without a state): "changes not yet at the
/// county" on a laptop's sync page. 0 exactly when [`has_local_changes`] is
/// false for a document that the peer holds in full.
pub fn local_change_count(doc: &automerge::Automerge, state: Option<&[u8]>) -> usize {
    let shared = state
        .and_then(|s| automerge::sync::State::decode(s).ok())
        .map(|s| s.shared_heads)
        .unwrap_or_default();
    doc.get_changes_meta(&shared).len()
}

/// A held document with its persisted sync state, as `DeviceSession::new` takes it.
pub type HeldDoc = (minqing_sync::DocId, automerge::Automerge, Option<Vec<u8>>);

/// Loads every document of `storage` with its sync state for `peer`, ready for
/// [`minqing_sync::DeviceSession::new`].
pub fn device_docs(storage: &dyn Storage, peer: &str) -> Result<Vec<HeldDoc>, NetError> {
    let mut out = Vec::new();
    for id in storage.docs().map_err(storage_err)? {
        if let Some(doc) = minqing_sync::load_doc(storage, &id).map_err(storage_err)? {
            let state = storage.sync_state(peer, &id).map_err(storage_err)?;
            out.push((id, doc, state));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;

    use super::{has_local_changes, local_change_count};

    fn put(doc: &mut automerge::AutoCommit, key: &str) {
        doc.put(automerge::ROOT, key, 1_i64).unwrap();
        doc.commit();
    }

    #[test]
    fn local_changes_are_counted_from_the_shared_heads() {
        let mut doc = automerge::AutoCommit::new();
        put(&mut doc, "a");
        put(&mut doc, "b");
        assert_eq!(local_change_count(doc.document(), None), 2);
        let mut state = automerge::sync::State::new();
        state.shared_heads = doc.get_heads();
        let encoded = state.encode();
        assert_eq!(local_change_count(doc.document(), Some(&encoded)), 0);
        assert!(!has_local_changes(doc.document(), Some(&encoded)));
        put(&mut doc, "c");
        put(&mut doc, "d");
        put(&mut doc, "e");
        assert_eq!(local_change_count(doc.document(), Some(&encoded)), 3);
        assert!(has_local_changes(doc.document(), Some(&encoded)));
        // A state that does not decode counts everything, as no state does.
        assert_eq!(local_change_count(doc.document(), Some(b"junk")), 5);
    }
}
