//! quinn endpoints: the relay's listening endpoint and the device's connect, with
//! a bounded connect time and refusals told apart from network failures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls_pki_types::CertificateDer;

use crate::tls::{DeviceGate, ServerTls, client_crypto, enrol_client_crypto, server_crypto};
use crate::{Bundle, Identity, Lost, NetError, REFUSED_MESSAGE, TlsFailure};

/// Default bound on reaching the relay: 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Application close code the relay uses when it refuses a device after the handshake.
pub const CLOSE_REFUSED: u32 = 0x10;
/// Application close code for a normal end of session.
pub const CLOSE_DONE: u32 = 0;
/// Application close code the relay uses when it shuts down.
pub const CLOSE_SHUTDOWN: u32 = 0x11;
/// Application close code for a protocol or storage error.
pub const CLOSE_ERROR: u32 = 0x12;
/// Application close code a laptop uses after it destroyed its keys on the
/// relay's order (remote wipe; docs/sync.md#remote-wipe).
pub const CLOSE_WIPED: u32 = 0x13;

fn transport(idle: Duration, keep_alive: Option<Duration>) -> Arc<quinn::TransportConfig> {
    Arc::new(transport_config(idle, keep_alive))
}

fn transport_config(idle: Duration, keep_alive: Option<Duration>) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    // Bounded by construction: `idle` comes from our own options (seconds, not from the network).
    if let Ok(idle) = quinn::IdleTimeout::try_from(idle) {
        t.max_idle_timeout(Some(idle));
    }
    t.keep_alive_interval(keep_alive);
    // A device uses one stream per session; leave a few spare.
    t.max_concurrent_bidi_streams(4u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    // No path-MTU probing: every datagram stays at QUIC's 1,200-byte floor, which
    // crosses any field link (tunnels, PPPoE, carrier NAT) without a black-hole
    // search. Probing sent 4 padded probes of up to 1,452 bytes each way on every
    // connection (≈ 11 KB, more than a whole no-change sync of 100 villages) and
    // they took congestion window from the first flight; the gain, 20 % fewer
    // packets on a bulk transfer, only matters for a laptop's first sync.
    t.mtu_discovery_config(None);
    t.congestion_controller_factory(Arc::new(congestion()));
    t
}

/// Bytes of one connection the relay's QUIC stack buffers before the session
/// reads them (QUIC flow control makes the device wait beyond that), once
/// the relay has admitted the laptop and counted the window against its
/// buffer budget (`quinn::Connection::set_receive_window`).
pub const RELAY_RECEIVE_WINDOW: u32 = 2 * 1024 * 1024;

/// The connection receive window every connection gets in its handshake,
/// before the relay knows who it is: what an unauthenticated peer, or an
/// enrolled laptop whose window could not be enlarged, can make the relay
/// buffer. Large enough for a day's first flight (≈ 30 KB for 4 villages,
/// S2 in docs/benchmarks.md), so an everyday sync never waits for the
/// enlargement. The relay counts it against its buffer budget from the
/// moment it accepts the connection (docs/relay.md, "Limits").
pub const RELAY_INITIAL_WINDOW: u32 = 64 * 1024;

const _: () = assert!(RELAY_INITIAL_WINDOW <= RELAY_RECEIVE_WINDOW);

/// Bytes of one connection's answers the relay's QUIC stack keeps until the
/// device acknowledges them (quinn's default is 10 MB). A session's frames
/// are counted in the buffer budget until QUIC takes them (`drive`); this
/// bounds what QUIC then holds for a device that acknowledges nothing. Above
/// what a 300 ms link's congestion window reaches while one sync crosses (S1:
/// 4.7 MB from a 38 KB initial window), so no transfer waits for it.
pub const RELAY_SEND_WINDOW: u64 = 4 * 1024 * 1024;

/// Initial congestion window in packets (of [`quinn::TransportConfig`]'s
/// 1,200-byte initial MTU): the 32 packets Google's QUIC (Chromium) starts with,
/// instead of RFC 9002's 10. A day's sync is tens of kilobytes each way
/// (S2 in docs/benchmarks.md: ≈ 30 KB up, ≈ 20 KB down for 4 villages); with 10
/// packets (≈ 14 KB) each direction needs a second and third flight, which on a
/// 300 ms rural link is most of the sync's time. 38 KB is below the
/// bandwidth-delay product of any link that can carry a sync at all (1 Mbit/s ×
/// 300 ms ≈ 37 KB), and Cubic still backs off on the first loss.
pub const INITIAL_WINDOW_PACKETS: u64 = 32;

fn congestion() -> quinn::congestion::CubicConfig {
    let mut c = quinn::congestion::CubicConfig::default();
    c.initial_window(INITIAL_WINDOW_PACKETS * 1200);
    c
}

/// Binds the relay's QUIC endpoint on `addr` with mutual TLS gated by `gate`.
pub fn server_endpoint(
    addr: SocketAddr,
    tls: &ServerTls,
    gate: Arc<dyn DeviceGate>,
) -> Result<quinn::Endpoint, NetError> {
    let crypto = server_crypto(tls, gate)?;
    let quic = QuicServerConfig::try_from(crypto)
        .map_err(|e| NetError::Tls(TlsFailure::NoInitialCipherSuite(e)))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut t = transport_config(Duration::from_secs(30), None);
    // What the relay holds for one connection before its session reads it:
    // one sync stream at a time (and one spare for a session that lingers),
    // and at most RELAY_INITIAL_WINDOW bytes unread over all of them until
    // the relay enlarges the window of an admitted laptop (counted in its
    // buffer budget) to RELAY_RECEIVE_WINDOW.
    t.max_concurrent_bidi_streams(2u32.into());
    t.receive_window(RELAY_INITIAL_WINDOW.into());
    t.stream_receive_window(RELAY_RECEIVE_WINDOW.into());
    t.send_window(RELAY_SEND_WINDOW);
    cfg.transport_config(Arc::new(t));
    let socket = std::net::UdpSocket::bind(addr)
        .map_err(|e| NetError::io(format!("listening on {addr}"), e))?;
    // One socket takes every laptop's datagrams. When connectivity returns to a
    // county, hundreds of laptops connect in the same second; with the kernel's
    // default receive buffer (≈ 208 KB here) the relay dropped handshake and
    // first-flight datagrams under the 1,000-device load of benchmark R1, and a
    // device whose retransmissions backed off missed the relay's stream wait.
    // Ask for 8 MiB; the kernel caps it at net.core.rmem_max (best effort).
    let sock = socket2::SockRef::from(&socket);
    if let Err(e) = sock.set_recv_buffer_size(RELAY_RECV_BUFFER) {
        tracing::warn!("could not enlarge the UDP receive buffer: {e}");
    }
    if let Ok(n) = sock.recv_buffer_size() {
        tracing::debug!(bytes = n, "relay UDP receive buffer");
    }
    let runtime = quinn::default_runtime().ok_or(NetError::Tls(TlsFailure::NoRuntime))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(cfg), socket, runtime)
        .map_err(|e| NetError::io(format!("listening on {addr}"), e))
}

/// Receive buffer the relay asks for on its UDP socket.
const RELAY_RECV_BUFFER: usize = 8 * 1024 * 1024;

/// How a device connects.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// Bound on reaching the relay and on silence from it once connected.
    pub timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A device's connection to its relay, with the endpoint that drives it
/// (keep both alive for as long as the connection is used).
#[derive(Debug)]
pub struct DeviceConnection {
    /// The client endpoint.
    pub endpoint: quinn::Endpoint,
    /// The established connection.
    pub connection: quinn::Connection,
    /// The relay address it was made to.
    pub addr: String,
    /// Finished sessions still waiting for the relay's end of stream.
    lingering: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Longest silence inside a session: no byte from the relay (or no room to
    /// send one) for this long ends it, even while QUIC keep-alives hold the
    /// connection up (`ConnectOptions::timeout`).
    pub silence: Duration,
    /// Resumed with a ticket before the handshake finished: the first flight
    /// goes as 0-RTT data, kept until the relay's first answer so that it can
    /// be sent again if the relay rejects the early data.
    pub early: bool,
    /// Set when the relay rejected the early data (the first flight went
    /// again, one round trip later).
    pub(crate) early_rejected: std::sync::atomic::AtomicBool,
    /// Whether the handshake has finished (always, unless [`Self::early`]:
    /// then set when it does), so that a resumed connection to a relay that
    /// never answers reads as unreachable, not as a relay gone silent.
    pub(crate) established: Arc<std::sync::atomic::AtomicBool>,
}

impl DeviceConnection {
    /// Whether this connection's first flight reached the relay as 0-RTT
    /// data: it was resumed with a ticket and the relay did not reject the
    /// early data (known once a session on it has read the relay's answer).
    pub fn used_0rtt(&self) -> bool {
        self.early
            && !self
                .early_rejected
                .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Keeps a finished session's wait for the relay's end of stream until
    /// [`DeviceConnection::close`].
    pub(crate) fn linger(&self, task: tokio::task::JoinHandle<()>) {
        lingering(&self.lingering).push(task);
    }

    /// Closes the connection cleanly: first lets finished sessions deliver their
    /// last frames (each wait is bounded), then closes and waits (briefly) for the
    /// close to be sent.
    pub async fn close(self) {
        self.close_with(CLOSE_DONE, b"done").await;
    }

    /// Closes the connection with [`CLOSE_WIPED`]: the laptop's keys are
    /// destroyed (the relay audits the confirmation).
    pub async fn close_wiped(self) {
        self.close_with(CLOSE_WIPED, b"keys destroyed").await;
    }

    async fn close_with(self, code: u32, reason: &[u8]) {
        let tasks = std::mem::take(&mut *lingering(&self.lingering));
        for t in tasks {
            let _ = t.await;
        }
        if self.connection.close_reason().is_some() {
            // The relay closed it (after a finished session: once it had
            // recorded the sync): nothing is left to send, nothing to wait for.
            return;
        }
        self.connection.close(code.into(), reason);
        // Our close must leave before the process ends: the endpoint sends it
        // and then drains (bounded).
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// Locks the lingering sessions. A panic while they were locked may have
/// left the list half-updated: it is dropped (each task still ends on its
/// own bounded wait; the close just does not wait for them), never reused.
fn lingering(
    m: &std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
) -> std::sync::MutexGuard<'_, Vec<tokio::task::JoinHandle<()>>> {
    m.lock().unwrap_or_else(|poisoned| {
        tracing::error!("the lingering sessions' list was poisoned by a panic: dropped");
        let mut g = poisoned.into_inner();
        *g = Vec::new();
        m.clear_poison();
        g
    })
}

async fn resolve(addr: &str) -> Result<SocketAddr, NetError> {
    let mut addrs = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| NetError::Unreachable {
            addr: addr.to_owned(),
            detail: format!("cannot resolve the address: {e}"),
        })?;
    addrs.next().ok_or_else(|| NetError::Unreachable {
        addr: addr.to_owned(),
        detail: "the address resolves to nothing".into(),
    })
}

/// Connects to the relay named in `bundle`, presenting the laptop's `identity`.
///
/// Fails with [`NetError::Unreachable`] if the handshake does not finish within
/// `opts.timeout`, and with [`NetError::Refused`] if the relay rejects the certificate.
/// Note that with TLS 1.3 a refused client may only learn of the refusal on its first
/// stream read: map stream errors with [`map_connection_error`].
pub async fn connect(
    bundle: &Bundle,
    identity: &Identity,
    opts: ConnectOptions,
) -> Result<DeviceConnection, NetError> {
    connect_with(bundle, client_crypto(bundle, identity)?, opts, None).await
}

/// A laptop's QUIC client endpoint for a long-running process, made by
/// [`client_endpoint`]: one UDP socket, and one TLS configuration whose
/// in-memory ticket store lets every pass after the first resume the TLS
/// session and send its first flight as 0-RTT data (docs/sync.md,
/// "Resumption and 0-RTT").
#[derive(Clone)]
pub struct ClientEndpoint {
    endpoint: quinn::Endpoint,
    crypto: Arc<QuicClientConfig>,
}

impl std::fmt::Debug for ClientEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEndpoint")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl ClientEndpoint {
    /// Closes every connection of the endpoint at once (the process stops).
    pub fn close(&self, code: quinn::VarInt, reason: &[u8]) {
        self.endpoint.close(code, reason);
    }
}

/// A client endpoint for the relay named in `bundle`, presenting `identity`,
/// for a long-running laptop process to reuse across sync passes
/// ([`connect_on`]).
pub async fn client_endpoint(
    bundle: &Bundle,
    identity: &Identity,
) -> Result<ClientEndpoint, NetError> {
    let addr = resolve(&bundle.relay_addr).await?;
    let bind: SocketAddr = if addr.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    let crypto = QuicClientConfig::try_from(crate::tls::resuming_client_crypto(bundle, identity)?)
        .map_err(|e| NetError::Tls(TlsFailure::NoInitialCipherSuite(e)))?;
    let endpoint =
        quinn::Endpoint::client(bind).map_err(|e| NetError::io("opening a UDP socket", e))?;
    Ok(ClientEndpoint {
        endpoint,
        crypto: Arc::new(crypto),
    })
}

/// [`connect`] on an endpoint made by [`client_endpoint`] (reused: no new
/// socket per pass). When the endpoint holds a ticket from an earlier pass
/// the connection is returned at once, before the handshake finishes: the
/// session's first flight goes as 0-RTT data ([`DeviceConnection::early`]).
pub async fn connect_on(
    endpoint: &ClientEndpoint,
    bundle: &Bundle,
    opts: ConnectOptions,
) -> Result<DeviceConnection, NetError> {
    connect_prepared(
        bundle,
        endpoint.crypto.clone(),
        opts,
        Some(endpoint.endpoint.clone()),
        true,
    )
    .await
}

/// [`connect_on`] without 0-RTT, giving up if the handshake has not
/// finished `within` (the session on it keeps `opts.timeout` as its bound on
/// silence): how a long-running process looks for a relay that was
/// unreachable — a short attempt, made often, notices the link's return
/// within about `within` plus a round trip, where one long attempt would
/// wait for QUIC's growing retransmission intervals (docs/sync.md,
/// "Outages").
pub async fn connect_within(
    endpoint: &ClientEndpoint,
    bundle: &Bundle,
    opts: ConnectOptions,
    within: Duration,
) -> Result<DeviceConnection, NetError> {
    connect_deadline(
        bundle,
        endpoint.crypto.clone(),
        opts,
        Some(endpoint.endpoint.clone()),
        false,
        within.min(opts.timeout),
    )
    .await
}

/// Connects for a first contact (enrolment): no client certificate, ALPN
/// `minqing-enroll/1`; the relay's certificate is checked as for a sync.
pub async fn connect_enrol(
    bundle: &Bundle,
    opts: ConnectOptions,
) -> Result<DeviceConnection, NetError> {
    connect_with(bundle, enrol_client_crypto(bundle)?, opts, None).await
}

async fn connect_with(
    bundle: &Bundle,
    crypto: rustls::ClientConfig,
    opts: ConnectOptions,
    reuse: Option<quinn::Endpoint>,
) -> Result<DeviceConnection, NetError> {
    let quic = QuicClientConfig::try_from(crypto)
        .map_err(|e| NetError::Tls(TlsFailure::NoInitialCipherSuite(e)))?;
    connect_prepared(bundle, Arc::new(quic), opts, reuse, false).await
}

async fn connect_prepared(
    bundle: &Bundle,
    quic: Arc<QuicClientConfig>,
    opts: ConnectOptions,
    reuse: Option<quinn::Endpoint>,
    try_0rtt: bool,
) -> Result<DeviceConnection, NetError> {
    connect_deadline(bundle, quic, opts, reuse, try_0rtt, opts.timeout).await
}

/// [`connect_prepared`], reaching the relay within `deadline`.
async fn connect_deadline(
    bundle: &Bundle,
    quic: Arc<QuicClientConfig>,
    opts: ConnectOptions,
    reuse: Option<quinn::Endpoint>,
    try_0rtt: bool,
    deadline: Duration,
) -> Result<DeviceConnection, NetError> {
    let addr_text = bundle.relay_addr.clone();
    let work = async {
        let addr = resolve(&addr_text).await?;
        let mut cfg = quinn::ClientConfig::new(quic);
        cfg.transport_config(transport(opts.timeout, Some(opts.timeout / 4)));
        let endpoint = match reuse {
            Some(e) => e,
            None => {
                let bind: SocketAddr = if addr.is_ipv6() {
                    SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
                } else {
                    SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
                };
                quinn::Endpoint::client(bind)
                    .map_err(|e| NetError::io("opening a UDP socket", e))?
            }
        };
        let connecting = endpoint
            .connect_with(cfg, addr, &bundle.server_name)
            .map_err(|e| NetError::Unreachable {
                addr: addr_text.clone(),
                detail: e.to_string(),
            })?;
        // With a ticket from an earlier connection: usable at once, the
        // first flight as 0-RTT data (the handshake finishes meanwhile; a
        // relay that refuses the laptop closes the connection, which the
        // session reads as it would after a full handshake).
        let connecting = if try_0rtt {
            match connecting.into_0rtt() {
                Ok((connection, accepted)) => {
                    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let flag = done.clone();
                    // Resolves when the handshake finishes (or the connection ends).
                    tokio::spawn(async move {
                        let _ = accepted.await;
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    });
                    return Ok::<_, NetError>((endpoint, connection, Some(done)));
                }
                Err(connecting) => connecting,
            }
        } else {
            connecting
        };
        let connection = connecting
            .await
            .map_err(|e| map_connection_error(&e, &addr_text))?;
        Ok((endpoint, connection, None))
    };
    let (endpoint, connection, pending) = match tokio::time::timeout(deadline, work).await {
        Ok(r) => r?,
        Err(_) => return Err(NetError::timed_out(&addr_text, deadline)),
    };
    Ok(DeviceConnection {
        endpoint,
        connection,
        addr: addr_text,
        lingering: std::sync::Mutex::new(Vec::new()),
        silence: opts.timeout,
        early: pending.is_some(),
        early_rejected: std::sync::atomic::AtomicBool::new(false),
        established: pending.unwrap_or_else(|| Arc::new(std::sync::atomic::AtomicBool::new(true))),
    })
}

/// The ALPN protocol a connection negotiated, if any.
pub fn negotiated_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    let data = conn.handshake_data()?;
    let data = data
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?;
    data.protocol
}

/// Turns a quinn connection error into a [`NetError`] a cadre can act on:
/// a TLS alert from the relay or its refusal code becomes [`NetError::Refused`],
/// a TLS failure raised here (the relay's certificate is not the bundle's
/// relay's) [`NetError::WrongRelay`], a timeout or reset [`NetError::Unreachable`].
pub fn map_connection_error(e: &quinn::ConnectionError, addr: &str) -> NetError {
    use quinn::ConnectionError as C;
    match e {
        C::ConnectionClosed(close) => {
            let code = u64::from(close.error_code);
            if (0x100..=0x1ff).contains(&code) {
                NetError::Refused(REFUSED_MESSAGE.into())
            } else {
                NetError::ConnectionLost(Lost::Connection(e.clone()))
            }
        }
        // Raised by this side: a TLS failure here means the relay's certificate
        // did not pass our check (the relay refusing us arrives as ConnectionClosed).
        C::TransportError(t) => {
            let code = u64::from(t.code);
            if (0x100..=0x1ff).contains(&code) {
                NetError::WrongRelay {
                    addr: addr.to_owned(),
                    detail: t.to_string(),
                }
            } else {
                NetError::ConnectionLost(Lost::Connection(e.clone()))
            }
        }
        C::ApplicationClosed(close) => {
            let code = close.error_code.into_inner();
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            if code == u64::from(CLOSE_REFUSED) {
                NetError::Refused(if reason.is_empty() {
                    REFUSED_MESSAGE.into()
                } else {
                    reason
                })
            } else if code == u64::from(CLOSE_SHUTDOWN) {
                NetError::Unreachable {
                    addr: addr.to_owned(),
                    detail: "the relay is shutting down".into(),
                }
            } else {
                NetError::ConnectionLost(Lost::ClosedByRelay { code, reason })
            }
        }
        C::TimedOut | C::Reset => NetError::Unreachable {
            addr: addr.to_owned(),
            detail: format!("connection {e}"),
        },
        _ => NetError::ConnectionLost(Lost::Connection(e.clone())),
    }
}

/// Maps a stream read error (see [`map_connection_error`]).
pub fn map_read_error(e: &quinn::ReadError, addr: &str) -> NetError {
    match e {
        quinn::ReadError::ConnectionLost(c) => map_connection_error(c, addr),
        other => NetError::ConnectionLost(Lost::Read(other.clone())),
    }
}

/// Maps a stream write error (see [`map_connection_error`]).
pub fn map_write_error(e: &quinn::WriteError, addr: &str) -> NetError {
    match e {
        quinn::WriteError::ConnectionLost(c) => map_connection_error(c, addr),
        other => NetError::ConnectionLost(Lost::Write(other.clone())),
    }
}

/// The SHA-256 fingerprint of the certificate the peer presented, if any.
pub fn peer_fingerprint(conn: &quinn::Connection) -> Option<String> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().map(|c| crate::ca::fingerprint(c.as_ref()))
}
