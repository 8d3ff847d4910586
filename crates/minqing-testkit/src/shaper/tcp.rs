//! The TCP side of the link shaper: a stream proxy that delays every chunk, in order.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use super::{
    Direction, LinkConfig, ShaperError, ShaperHandle, Shared, Stats, TurnTracker, check_loopback,
};

/// What an outage does to TCP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpOutage {
    /// Bytes stop moving (both ways) until the outage ends, then resume one
    /// `one_way_delay` later, in order and complete: what TCP's retransmission
    /// makes of a short cut. Connections stay open; new ones are accepted and
    /// connected upstream but carry nothing until the outage ends.
    #[default]
    Stall,
    /// Every open connection is closed (both sides see an orderly close; bytes
    /// still queued are counted as dropped) and new connections are closed at once
    /// while the outage lasts: what a long cut does once TCP gives up.
    Close,
}

/// Options of a [`TcpShaper`] beyond the link itself.
#[derive(Debug, Clone, Copy)]
pub struct TcpOptions {
    /// What an outage does.
    pub outage: TcpOutage,
    /// At most this many connections at once; further ones are closed on accept.
    pub max_connections: usize,
    /// The most bytes read at once, and so the largest delayed chunk.
    pub chunk_size: usize,
    /// Chunks in flight per connection and direction; when full, the shaper stops
    /// reading (back-pressure, as a real link's window would).
    pub max_queued_chunks: usize,
}

impl Default for TcpOptions {
    /// Stall on outage, 4,096 connections, 16 KiB chunks, 1,024 chunks queued per direction.
    fn default() -> Self {
        TcpOptions {
            outage: TcpOutage::Stall,
            max_connections: 4_096,
            chunk_size: 16 * 1024,
            max_queued_chunks: 1_024,
        }
    }
}

enum Chunk {
    Data { at: Instant, data: Vec<u8> },
    Eof { at: Instant },
}

/// A TCP proxy on 127.0.0.1 that delays every byte between clients and one upstream.
///
/// Each accepted connection gets its own connection to the upstream. Dropping the
/// shaper stops every task and closes every connection.
pub struct TcpShaper {
    local: SocketAddr,
    handle: ShaperHandle,
    _tasks: JoinSet<()>,
}

impl std::fmt::Debug for TcpShaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpShaper")
            .field("local", &self.local)
            .field("handle", &self.handle)
            .finish()
    }
}

impl TcpShaper {
    /// Listens on `listen` (say `127.0.0.1:0`) and forwards to `upstream`, with
    /// default [`TcpOptions`]. Both must be loopback addresses. `config.loss` and
    /// `config.reorder` are ignored: TCP delivers every byte in order.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        config: LinkConfig,
    ) -> Result<TcpShaper, ShaperError> {
        TcpShaper::start_with(listen, upstream, config, TcpOptions::default()).await
    }

    /// Like [`TcpShaper::start`], with explicit options.
    pub async fn start_with(
        listen: SocketAddr,
        upstream: SocketAddr,
        config: LinkConfig,
        options: TcpOptions,
    ) -> Result<TcpShaper, ShaperError> {
        check_loopback(listen)?;
        check_loopback(upstream)?;
        let handle = ShaperHandle::new(config)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(ShaperError::io(format!("bind the TCP shaper to {listen}")))?;
        let local = listener
            .local_addr()
            .map_err(ShaperError::io("read the TCP shaper's address"))?;
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(handle.shared(), listener, upstream, options));
        tracing::debug!(%local, %upstream, "TCP shaper started");
        Ok(TcpShaper {
            local,
            handle,
            _tasks: tasks,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A handle to change the link and read counters (the shaper stops when this
    /// value is dropped, whatever handles remain).
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

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    upstream: SocketAddr,
    options: TcpOptions,
) {
    // Connection tasks live in this set, so stopping this task stops them too.
    let mut conns = JoinSet::new();
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "TCP shaper accept error");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        if conns.len() >= options.max_connections {
            tracing::warn!(%peer, "TCP shaper connection limit reached; closing");
            continue;
        }
        if options.outage == TcpOutage::Close && shared.in_outage() {
            tracing::debug!(%peer, "TCP shaper in outage; closing new connection");
            continue;
        }
        shared.session_opened();
        conns.spawn(connection(Arc::clone(&shared), client, upstream, options));
    }
}

async fn connection(
    shared: Arc<Shared>,
    client: TcpStream,
    upstream: SocketAddr,
    options: TcpOptions,
) {
    let server = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%upstream, error = %e, "TCP shaper cannot connect upstream");
            return;
        }
    };
    // Delay is the shaper's job; Nagle would add its own.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let turns = TurnTracker::default();
    let queue = options.max_queued_chunks.max(1);
    let (up_tx, mut up_rx) = mpsc::channel(queue);
    let (down_tx, mut down_rx) = mpsc::channel(queue);
    let pump = async {
        tokio::join!(
            reader(&shared, client_r, up_tx, Direction::Up, options.chunk_size),
            writer(&shared, &mut up_rx, server_w, Direction::Up, &turns),
            reader(
                &shared,
                server_r,
                down_tx,
                Direction::Down,
                options.chunk_size
            ),
            writer(&shared, &mut down_rx, client_w, Direction::Down, &turns),
        )
    };
    match options.outage {
        TcpOutage::Stall => {
            pump.await;
        }
        TcpOutage::Close => {
            let mut outage = shared.outage_watch();
            tokio::select! {
                _ = pump => {}
                _ = outage.wait_for(|on| *on) => {
                    tracing::debug!("TCP shaper outage: closing connection");
                }
            }
        }
    }
    for (rx, dir) in [(&mut up_rx, Direction::Up), (&mut down_rx, Direction::Down)] {
        while let Ok(chunk) = rx.try_recv() {
            if let Chunk::Data { data, .. } = chunk {
                shared.dropped(dir, data.len());
            }
        }
    }
}

async fn reader(
    shared: &Shared,
    mut r: OwnedReadHalf,
    tx: mpsc::Sender<Chunk>,
    dir: Direction,
    chunk_size: usize,
) {
    let mut not_before = None;
    let mut buf = vec![0u8; chunk_size.max(1)];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => {
                // The close travels the link like the bytes before it.
                let at = Instant::now() + shared.config().one_way_delay;
                let at = not_before.map_or(at, |nb: Instant| nb.max(at));
                let _ = tx.send(Chunk::Eof { at }).await;
                return;
            }
            Ok(n) => n,
        };
        // Without loss, `arrive` always schedules.
        let Some(at) = shared.arrive(dir, n, false, &mut not_before) else {
            continue;
        };
        let data = buf[..n].to_vec();
        if tx.send(Chunk::Data { at, data }).await.is_err() {
            shared.dropped(dir, n);
            return;
        }
    }
}

async fn writer(
    shared: &Shared,
    rx: &mut mpsc::Receiver<Chunk>,
    mut w: OwnedWriteHalf,
    dir: Direction,
    turns: &TurnTracker,
) {
    let mut outage = shared.outage_watch();
    while let Some(chunk) = rx.recv().await {
        let at = match &chunk {
            Chunk::Data { at, .. } | Chunk::Eof { at } => *at,
        };
        sleep_until(at).await;
        let stalled = *outage.borrow_and_update();
        if stalled {
            // Wait for the link to come back, then for the bytes to cross it.
            let _ = outage.wait_for(|on| !*on).await;
            tokio::time::sleep(shared.config().one_way_delay).await;
        }
        match chunk {
            Chunk::Data { data, .. } => {
                if let Err(e) = w.write_all(&data).await {
                    tracing::debug!(?dir, error = %e, "TCP shaper write failed");
                    shared.dropped(dir, data.len());
                    while let Some(rest) = rx.recv().await {
                        if let Chunk::Data { data, .. } = rest {
                            shared.dropped(dir, data.len());
                        }
                    }
                    return;
                }
                shared.delivered(dir, data.len(), turns);
            }
            Chunk::Eof { .. } => {
                let _ = w.shutdown().await;
                return;
            }
        }
    }
}
