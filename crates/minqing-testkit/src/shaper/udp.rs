//! The UDP side of the link shaper: a datagram proxy with one upstream socket per client.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use super::{
    Direction, LinkConfig, ShaperError, ShaperHandle, Shared, Stats, TurnTracker, check_loopback,
};

/// The largest datagram the shaper forwards (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// Options of a [`UdpShaper`] beyond the link itself.
#[derive(Debug, Clone, Copy)]
pub struct UdpOptions {
    /// A client address with no traffic either way for this long loses its proxy
    /// socket; its next datagram opens a new one (the upstream sees a new peer).
    pub idle_timeout: Duration,
    /// At most this many client addresses at once; datagrams from further ones are dropped.
    pub max_sessions: usize,
    /// At most this many datagrams waiting in each direction's delay line; more are
    /// dropped, like a full router queue.
    pub max_queued: usize,
}

impl Default for UdpOptions {
    /// 60 s idle timeout, 8,192 sessions, 65,536 queued datagrams per direction.
    fn default() -> Self {
        UdpOptions {
            idle_timeout: Duration::from_secs(60),
            max_sessions: 8_192,
            max_queued: 65_536,
        }
    }
}

/// A datagram waiting in a delay line.
struct Pending {
    at: Instant,
    seq: u64,
    dir: Direction,
    socket: Arc<UdpSocket>,
    /// `None`: the socket is connected (towards the upstream).
    to: Option<SocketAddr>,
    data: Vec<u8>,
    turns: Arc<TurnTracker>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One direction's entry into the delay line: assigns order and enforces the queue bound.
struct Lane {
    dir: Direction,
    tx: mpsc::Sender<Pending>,
    not_before: Mutex<Option<Instant>>,
    seq: AtomicU64,
}

impl Lane {
    fn offer(
        &self,
        shared: &Shared,
        socket: &Arc<UdpSocket>,
        to: Option<SocketAddr>,
        data: &[u8],
        turns: &Arc<TurnTracker>,
    ) {
        // The lock only guards an Option<Instant>, assigned whole.
        let mut nb = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        let Some(at) = shared.arrive(self.dir, data.len(), true, &mut nb) else {
            return;
        };
        let p = Pending {
            at,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            dir: self.dir,
            socket: Arc::clone(socket),
            to,
            data: data.to_vec(),
            turns: Arc::clone(turns),
        };
        if self.tx.try_send(p).is_err() {
            shared.dropped(self.dir, data.len());
        }
    }
}

/// Delivers datagrams when they fall due, earliest first.
async fn delay_line(shared: Arc<Shared>, mut rx: mpsc::Receiver<Pending>) {
    let mut heap: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut open = true;
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(p)| p.at <= now) {
            let Some(Reverse(p)) = heap.pop() else { break };
            deliver(&shared, p).await;
        }
        let next = heap.peek().map(|Reverse(p)| p.at);
        if !open && next.is_none() {
            return;
        }
        tokio::select! {
            msg = rx.recv(), if open => match msg {
                Some(p) => heap.push(Reverse(p)),
                None => open = false,
            },
            () = sleep_until(next.unwrap_or(now)), if next.is_some() => {}
        }
    }
}

async fn deliver(shared: &Shared, p: Pending) {
    if shared.in_outage() {
        shared.dropped(p.dir, p.data.len());
        return;
    }
    let sent = match p.to {
        Some(to) => p.socket.send_to(&p.data, to).await,
        None => p.socket.send(&p.data).await,
    };
    match sent {
        Ok(_) => {
            // QUIC: a long header (first bit set) is an Initial/Handshake packet.
            let handshake = super::quic_long_header_bytes(&p.data);
            tracing::trace!(
                dir = ?p.dir,
                len = p.data.len(),
                handshake,
                "datagram delivered"
            );
            shared.delivered_handshake(p.dir, handshake);
            shared.delivered(p.dir, p.data.len(), &p.turns)
        }
        Err(e) => {
            tracing::debug!(dir = ?p.dir, error = %e, "shaper could not forward a datagram");
            shared.dropped(p.dir, p.data.len());
        }
    }
}

/// One client address's proxy socket towards the upstream.
struct Session {
    socket: Arc<UdpSocket>,
    turns: Arc<TurnTracker>,
    /// Milliseconds since the shaper started, at the last datagram either way.
    last_seen: Arc<AtomicU64>,
}

type Sessions = Arc<Mutex<BTreeMap<SocketAddr, Session>>>;

/// A UDP proxy on 127.0.0.1 that shapes every datagram between clients and one upstream.
///
/// Dropping it stops every task and closes every socket.
pub struct UdpShaper {
    local: SocketAddr,
    handle: ShaperHandle,
    _tasks: JoinSet<()>,
}

impl std::fmt::Debug for UdpShaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpShaper")
            .field("local", &self.local)
            .field("handle", &self.handle)
            .finish()
    }
}

impl UdpShaper {
    /// Listens on `listen` (say `127.0.0.1:0`) and forwards to `upstream`, with
    /// default [`UdpOptions`]. Both must be loopback addresses.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        config: LinkConfig,
    ) -> Result<UdpShaper, ShaperError> {
        UdpShaper::start_with(listen, upstream, config, UdpOptions::default()).await
    }

    /// Like [`UdpShaper::start`], with explicit options.
    pub async fn start_with(
        listen: SocketAddr,
        upstream: SocketAddr,
        config: LinkConfig,
        options: UdpOptions,
    ) -> Result<UdpShaper, ShaperError> {
        check_loopback(listen)?;
        check_loopback(upstream)?;
        let handle = ShaperHandle::new(config)?;
        let socket = UdpSocket::bind(listen)
            .await
            .map_err(ShaperError::io(format!("bind the UDP shaper to {listen}")))?;
        let local = socket
            .local_addr()
            .map_err(ShaperError::io("read the UDP shaper's address"))?;
        let listen_socket = Arc::new(socket);
        let shared = handle.shared();
        let mut tasks = JoinSet::new();
        let lane = |dir, tasks: &mut JoinSet<()>| {
            let (tx, rx) = mpsc::channel(options.max_queued.max(1));
            tasks.spawn(delay_line(Arc::clone(&shared), rx));
            Arc::new(Lane {
                dir,
                tx,
                not_before: Mutex::new(None),
                seq: AtomicU64::new(0),
            })
        };
        let up = lane(Direction::Up, &mut tasks);
        let down = lane(Direction::Down, &mut tasks);
        let ctx = Ctx {
            shared,
            listen: listen_socket,
            upstream,
            options,
            up,
            down,
            sessions: Arc::new(Mutex::new(BTreeMap::new())),
            epoch: Instant::now(),
        };
        tasks.spawn(listen_loop(ctx));
        tracing::debug!(%local, %upstream, "UDP shaper started");
        Ok(UdpShaper {
            local,
            handle,
            _tasks: tasks,
        })
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A handle to change the link and read counters; it outlives nothing (the shaper
    /// stops when this value is dropped).
    pub fn handle(&self) -> ShaperHandle {
        self.handle.clone()
    }

    /// Shorthand for [`ShaperHandle::set_config`].
    pub fn set_config(&self, config: LinkConfig) -> Result<(), ShaperError> {
        self.handle.set_config(config)
    }

    /// Shorthand for [`ShaperHandle::outage`].
    pub fn outage(&self, on: bool) {
        self.handle.outage(on);
    }

    /// Shorthand for [`ShaperHandle::stats`].
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }
}

struct Ctx {
    shared: Arc<Shared>,
    listen: Arc<UdpSocket>,
    upstream: SocketAddr,
    options: UdpOptions,
    up: Arc<Lane>,
    down: Arc<Lane>,
    sessions: Sessions,
    epoch: Instant,
}

impl Ctx {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

async fn listen_loop(ctx: Ctx) {
    // Session tasks live in this set, so stopping this task stops them too.
    let mut session_tasks = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match ctx.listen.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // On some platforms an ICMP "port unreachable" surfaces here; keep going.
                tracing::debug!(error = %e, "UDP shaper receive error");
                continue;
            }
        };
        while session_tasks.try_join_next().is_some() {}
        let data = &buf[..n];
        let session = match session_for(&ctx, from, &mut session_tasks).await {
            Some(s) => s,
            None => {
                ctx.shared.dropped(Direction::Up, n);
                continue;
            }
        };
        session.1.store(ctx.now_ms(), Ordering::Relaxed);
        ctx.up
            .offer(&ctx.shared, &session.0, None, data, &session.2);
    }
}

/// The proxy socket for `from`, opening one (and its reader task) if needed.
async fn session_for(
    ctx: &Ctx,
    from: SocketAddr,
    tasks: &mut JoinSet<()>,
) -> Option<(Arc<UdpSocket>, Arc<AtomicU64>, Arc<TurnTracker>)> {
    {
        // The map is only inserted into and removed from whole; a poisoned lock is usable.
        let map = ctx.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(&from) {
            return Some((
                Arc::clone(&s.socket),
                Arc::clone(&s.last_seen),
                Arc::clone(&s.turns),
            ));
        }
        if map.len() >= ctx.options.max_sessions {
            tracing::warn!(%from, "UDP shaper session limit reached; dropping");
            return None;
        }
    }
    let bind: SocketAddr = if ctx.upstream.is_ipv6() {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    } else {
        (std::net::Ipv4Addr::LOCALHOST, 0).into()
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "UDP shaper cannot open a proxy socket");
            return None;
        }
    };
    if let Err(e) = socket.connect(ctx.upstream).await {
        tracing::warn!(error = %e, upstream = %ctx.upstream, "UDP shaper cannot connect upstream");
        return None;
    }
    let socket = Arc::new(socket);
    let last_seen = Arc::new(AtomicU64::new(ctx.now_ms()));
    let turns = Arc::new(TurnTracker::default());
    ctx.sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            from,
            Session {
                socket: Arc::clone(&socket),
                turns: Arc::clone(&turns),
                last_seen: Arc::clone(&last_seen),
            },
        );
    ctx.shared.session_opened();
    tracing::debug!(client = %from, "UDP shaper session opened");
    tasks.spawn(session_loop(
        Arc::clone(&ctx.shared),
        Arc::clone(&ctx.listen),
        Arc::clone(&socket),
        from,
        Arc::clone(&ctx.down),
        Arc::clone(&ctx.sessions),
        Arc::clone(&last_seen),
        Arc::clone(&turns),
        ctx.options.idle_timeout,
        ctx.epoch,
    ));
    Some((socket, last_seen, turns))
}

/// Reads the upstream's replies for one client until the session goes idle.
#[allow(clippy::too_many_arguments)]
async fn session_loop(
    shared: Arc<Shared>,
    listen: Arc<UdpSocket>,
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    down: Arc<Lane>,
    sessions: Sessions,
    last_seen: Arc<AtomicU64>,
    turns: Arc<TurnTracker>,
    idle_timeout: Duration,
    epoch: Instant,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let last = Duration::from_millis(last_seen.load(Ordering::Relaxed));
        let deadline = epoch + last + idle_timeout;
        tokio::select! {
            r = socket.recv(&mut buf) => match r {
                Ok(n) => {
                    let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                    last_seen.store(now, Ordering::Relaxed);
                    down.offer(&shared, &listen, Some(client), &buf[..n], &turns);
                }
                Err(e) => {
                    // A connected UDP socket reports ICMP unreachable (upstream not yet
                    // listening) as an error; the session stays usable.
                    tracing::debug!(%client, error = %e, "UDP shaper upstream receive error");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            },
            () = sleep_until(deadline) => {
                let last = Duration::from_millis(last_seen.load(Ordering::Relaxed));
                if Instant::now() >= epoch + last + idle_timeout {
                    sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&client);
                    tracing::debug!(%client, "UDP shaper session expired");
                    return;
                }
            }
        }
    }
}
