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
use crate::{DeviceConnection, Lost, NetError, Peer, SessionLimit};

/// Largest chunk read from the stream at once.
const READ_CHUNK: usize = 256 * 1024;
/// How long a finished session waits for the peer's end of stream.
const LINGER: Duration = Duration::from_secs(5);
/// The most of a relay session's answers QUIC keeps after taking them: the
/// connection's send window ([`crate::endpoint::RELAY_SEND_WINDOW`]).
const QUIC_SEND_HOLD: usize = crate::endpoint::RELAY_SEND_WINDOW as usize;

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

/// Whether `e` says the relay rejected this connection's 0-RTT data.
fn early_data_rejected(e: &NetError) -> bool {
    matches!(
        e,
        NetError::ConnectionLost(Lost::Read(quinn::ReadError::ZeroRttRejected))
            | NetError::ConnectionLost(Lost::Write(quinn::WriteError::ZeroRttRejected))
    )
}

/// Limits on one relay session (docs/relay.md, "Limits").
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// The session ends when the device sends nothing for this long (QUIC
    /// keep-alives do not count).
    pub silence: Duration,
    /// Bytes held for the sessions — received and not yet decoded into whole
    /// frames, changes waiting for their dependencies, frames for the device
    /// not yet taken by QUIC — shared by every session of the relay: one
    /// permit per byte. `None`: unbounded.
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
        let n32 = u32::try_from(n).map_err(|_| SessionLimit::Chunk)?;
        match tokio::time::timeout(wait, b.acquire_many(n32)).await {
            Ok(Ok(permit)) => {
                permit.forget();
                self.bytes += n;
                Ok(())
            }
            Ok(Err(_)) => Err(SessionLimit::ShuttingDown.into()),
            Err(_) => Err(SessionLimit::Busy {
                secs: wait.as_secs(),
            }
            .into()),
        }
    }

    /// Takes `n` more bytes of the budget if it has them now.
    fn take_now(&mut self, n: usize) -> Result<(), NetError> {
        let Some(b) = &self.budget else { return Ok(()) };
        let n32 = u32::try_from(n).map_err(|_| SessionLimit::Chunk)?;
        match b.try_acquire_many(n32) {
            Ok(permit) => {
                permit.forget();
                self.bytes += n;
                Ok(())
            }
            Err(tokio::sync::TryAcquireError::Closed) => Err(SessionLimit::ShuttingDown.into()),
            Err(tokio::sync::TryAcquireError::NoPermits) => Err(SessionLimit::Full.into()),
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

/// A relay session back from the blocking pool with what its input did.
struct Stepped {
    session: RelaySession,
    step: minqing_sync::RelayStep,
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
/// `limits` bound the silence between the device's bytes, the bytes
/// buffered in partial frames and changes waiting for their dependencies, and
/// the frames produced for the device until QUIC has taken them (a session
/// that cannot get budget, or whose device takes nothing, within the silence
/// bound ends with [`NetError::Limit`]). A frame the session refuses
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
    let mut session = session;
    let mut held = Held {
        budget: limits.budget.clone(),
        bytes: 0,
    };
    // What QUIC may still hold of this session's answers once `write_all`
    // returned: everything written, up to the connection's send window
    // (`RELAY_SEND_WINDOW`), until the device acknowledges it. quinn does not
    // say how much of a stream is unacknowledged, so the bound is kept
    // counted in the budget until the session ends: a device that asks for
    // whole villages and reads nothing cannot make the relay hold its send
    // buffers outside the budget (docs/relay.md, "Limits").
    let mut quic_held: usize = 0;
    loop {
        let chunk =
            match tokio::time::timeout(limits.silence, recv.read_chunk(READ_CHUNK, true)).await {
                Ok(r) => r.map_err(|e| map_read_error(&e, &peer))?,
                Err(_) => {
                    return Err(SessionLimit::Silence {
                        secs: limits.silence.as_secs(),
                    }
                    .into());
                }
            };
        if let Some(c) = &chunk {
            held.take(c.bytes.len(), limits.silence).await?;
        }
        let Some(chunk) = chunk else {
            if session.is_closed() {
                return Ok(());
            }
            return Err(NetError::ConnectionLost(Lost::EndedEarly(Peer::Device)));
        };
        let mut s = session;
        let (host, storage) = (host.clone(), storage.clone());
        let Stepped { session: s, step } = tokio::task::spawn_blocking(move || {
            // Applied through the host, flushed, then the frames: one rule,
            // kept by `minqing_sync::relay_step`.
            minqing_sync::relay_step(&mut s, &*host, &*storage, &chunk.bytes)
                .map(|step| Stepped { session: s, step })
        })
        .await
        .map_err(NetError::Worker)??;
        held.keep(s.buffered() + quic_held);
        for ev in step.events {
            on_event(ev);
        }
        // What the device is sent waits in memory until QUIC takes it (a
        // device that asks for a whole village and does not read holds it):
        // counted in the budget too, at once — a session whose answer does
        // not fit now ends as busy and frees it, rather than hold it uncounted
        // while it waits — and bounded in time by the silence limit.
        let out: usize = step.frames.iter().map(Vec::len).sum();
        held.take_now(out)?;
        let mut frames = step.frames.into_iter();
        match tokio::time::timeout(limits.silence, transmit(send, || frames.next(), &peer)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(SessionLimit::Unread {
                    secs: limits.silence.as_secs(),
                }
                .into());
            }
        }
        drop(frames);
        // Never more than was taken: `out` was, and the send window only
        // grows by what was written.
        quic_held = quic_held.saturating_add(out).min(QUIC_SEND_HOLD);
        held.keep(s.buffered() + quic_held);
        if let Err(e) = step.result {
            let _ = send.finish();
            return Err(NetError::Protocol(e));
        }
        let closed = s.is_closed();
        session = s;
        if closed {
            let _ = send.finish();
            // Let the device read the end of our stream; it closes the connection.
            let _ = tokio::time::timeout(LINGER, recv.read_to_end(0)).await;
            return Ok(());
        }
    }
}

/// No progress from the relay for `silence`: the session stalled (the relay is
/// stuck, e.g. on a full disk, while QUIC keep-alives hold the connection up).
fn stalled(addr: &str, silence: Duration) -> NetError {
    NetError::ConnectionLost(Lost::Stalled {
        addr: addr.to_owned(),
        secs: silence.as_secs_f32(),
    })
}

/// Runs the device side of a session over a new stream of `conn`: sends the first
/// flight, then applies each input, persisting every event into `storage` and
/// flushing before it sends what the input produced
/// ([`minqing_sync::device_step`]). `on_event` sees every event once the
/// input's events are durable (for notices). Returns the session's outcome. Silence
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
    let silence = conn.silence;
    // The first flight (`Hello` and this laptop's changes). On a resumed
    // connection it goes as 0-RTT data and is kept until the relay answers:
    // if the relay rejects the early data (it restarted, or forgot the
    // ticket), the same bytes go again on a new stream of the now
    // established connection — one round trip more, never an error.
    let first: Vec<Vec<u8>> = std::iter::from_fn(|| session.poll_transmit()).collect();
    let mut tries = 0;
    let (mut send, mut recv, mut pending) = loop {
        tries += 1;
        let (mut send, mut recv) = conn
            .connection
            .open_bi()
            .await
            .map_err(|e| map_connection_error(&e, &addr))?;
        let mut frames = first.iter().cloned();
        let answered = async {
            transmit(&mut send, || frames.next(), &addr).await?;
            recv.read_chunk(READ_CHUNK, true)
                .await
                .map_err(|e| map_read_error(&e, &addr))
        };
        let answer = tokio::time::timeout(silence, answered).await;
        match answer {
            // A resumed connection is usable before the relay has said
            // anything: silence then means the relay was never reached.
            Err(_) if !conn.established.load(std::sync::atomic::Ordering::SeqCst) => {
                return Err(NetError::timed_out(&addr, silence));
            }
            Err(_) => return Err(stalled(&addr, silence)),
            Ok(Err(e)) if conn.early && tries == 1 && early_data_rejected(&e) => {
                conn.early_rejected
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::debug!("the relay rejected the 0-RTT data: first flight sent again");
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(chunk)) => break (send, recv, Some(chunk)),
        }
    };
    drop(first);
    let mut outcome = None;
    loop {
        let chunk = match pending.take() {
            Some(first_answer) => first_answer,
            None => tokio::time::timeout(silence, recv.read_chunk(READ_CHUNK, true))
                .await
                .map_err(|_| stalled(&addr, silence))?
                .map_err(|e| map_read_error(&e, &addr))?,
        };
        let Some(chunk) = chunk else {
            return match outcome {
                Some(o) => Ok(o),
                None => Err(NetError::ConnectionLost(Lost::EndedEarly(Peer::Relay))),
            };
        };
        // Persisted and flushed, then the frames: one rule, kept by
        // `minqing_sync::device_step`.
        let step = minqing_sync::device_step(session, storage, peer, &chunk.bytes)?;
        for ev in &step.events {
            on_event(ev);
        }
        if step.outcome.is_some() {
            outcome = step.outcome;
        }
        let mut frames = step.frames.into_iter();
        tokio::time::timeout(silence, transmit(&mut send, || frames.next(), &addr))
            .await
            .map_err(|_| stalled(&addr, silence))??;
        if let Err(e) = step.result {
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
                other => NetError::Session(other),
            });
        }
        if let Some(o) = &outcome
            && session.is_closed()
        {
            // Every village is settled: the relay acknowledged our changes after
            // its flush, and what it sent is flushed here. The outcome is final
            // now; `Bye` and the end of our stream still have to reach the relay,
            // which records the sync (its last-sync time and audit line) only
            // when it reads `Bye`, then ends its stream and closes the
            // connection. So the wait for that close goes on in the background
            // (one round trip after the outcome, bounded), and
            // `DeviceConnection::close` awaits it: once the relay has closed,
            // there is nothing left to send and the process may exit at once.
            let _ = send.finish();
            let connection = conn.connection.clone();
            conn.linger(tokio::spawn(async move {
                let _ = tokio::time::timeout(LINGER, async {
                    let _ = recv.read_to_end(0).await;
                    connection.closed().await
                })
                .await;
                drop(send);
            }));
            return Ok(o.clone());
        }
    }
}
