//! A hostile peer for the relay's end-to-end tests and the lock-out benchmark
//! (docs/testing.md, "Hostile peers"):
//!
//! - [`HostilePeer`]: a laptop with a valid certificate that speaks the sync
//!   protocol over real QUIC and misbehaves on purpose — a `Hello` naming
//!   another device, a frame announced large and sent in part (then kept
//!   alive with QUIC PINGs and nothing else), bytes dripped slowly, garbage.
//! - [`InitialFlood`]: half-open QUIC handshakes from one process — raw UDP
//!   datagrams, each a well-formed QUIC v1 Initial packet (fresh destination
//!   connection id, so a new connection for the relay) carrying a TLS
//!   ClientHello for ALPN `minqing/1`, never followed by anything. It counts
//!   what comes back (Retry packets tell that the relay validates addresses).
//!
//! Loopback only: both refuse a target outside 127.0.0.0/8 and ::1.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use minqing_net::quinn;
use minqing_net::{Bundle, ConnectOptions, DeviceConnection, Identity, NetError};
use minqing_sync::frame::{DocHeads, Frame};

/// What can go wrong driving a hostile peer.
#[derive(Debug, thiserror::Error)]
pub enum HostileError {
    /// The target is not a loopback address.
    #[error("{0} is not a loopback address: hostile peers only attack 127.0.0.1")]
    NotLoopback(SocketAddr),
    /// The transport failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// TLS / QUIC packet construction failed.
    #[error("building a packet: {0}")]
    Packet(String),
    /// A frame could not be encoded.
    #[error("encoding a frame: {0}")]
    Frame(#[from] minqing_sync::FrameError),
}

fn loopback(addr: SocketAddr) -> Result<SocketAddr, HostileError> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(HostileError::NotLoopback(addr))
    }
}

/// An authenticated laptop that misbehaves, over one QUIC connection and one
/// sync stream.
pub struct HostilePeer {
    conn: DeviceConnection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl std::fmt::Debug for HostilePeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostilePeer")
            .field("addr", &self.conn.addr)
            .finish_non_exhaustive()
    }
}

impl HostilePeer {
    /// Connects with `identity` (a valid certificate) and opens a sync stream.
    /// `keep_alive` bounds silence on the QUIC level: the connection sends
    /// PINGs every `keep_alive / 4`, so it stays up while sending no data.
    pub async fn connect(
        bundle: &Bundle,
        identity: &Identity,
        keep_alive: Duration,
    ) -> Result<HostilePeer, HostileError> {
        if let Ok(a) = bundle.relay_addr.parse::<SocketAddr>() {
            loopback(a)?;
        }
        let conn = minqing_net::connect(
            bundle,
            identity,
            ConnectOptions {
                timeout: keep_alive,
            },
        )
        .await?;
        let (send, recv) = conn
            .connection
            .open_bi()
            .await
            .map_err(|e| NetError::ConnectionLost(minqing_net::Lost::Open(e)))?;
        Ok(HostilePeer { conn, send, recv })
    }

    /// Sends raw bytes on the sync stream.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), HostileError> {
        self.send
            .write_all(bytes)
            .await
            .map_err(|e| NetError::ConnectionLost(minqing_net::Lost::Write(e)))?;
        Ok(())
    }

    /// Sends a `Hello` that names `device` (another laptop's id: impersonation).
    pub async fn hello_as(&mut self, device: &str) -> Result<(), HostileError> {
        let frame = Frame::hello(device.to_owned(), Vec::<DocHeads>::new());
        let bytes = frame.encode()?;
        self.send_raw(&bytes).await
    }

    /// Sends a `Hello` as `device` that claims to hold `villages` (for
    /// villages not assigned to it: each is refused, and audited).
    pub async fn hello_holding(
        &mut self,
        device: &str,
        villages: &[String],
    ) -> Result<(), HostileError> {
        let docs = villages
            .iter()
            .filter_map(|v| minqing_sync::DocId::new(v.clone()).ok())
            .map(|doc| DocHeads {
                doc,
                heads: minqing_sync::frame::Heads::List(Vec::new()),
            })
            .collect();
        let frame = Frame::hello(device.to_owned(), docs);
        let bytes = frame.encode()?;
        self.send_raw(&bytes).await
    }

    /// Sends one `Sync` frame carrying `message` for each of `villages`
    /// (after a `Hello`; for villages not assigned, each is refused).
    pub async fn sync_frames(
        &mut self,
        villages: &[String],
        message: &[u8],
    ) -> Result<(), HostileError> {
        let mut out = Vec::new();
        for v in villages {
            let Ok(doc) = minqing_sync::DocId::new(v.clone()) else {
                continue;
            };
            let frame = Frame::Sync {
                doc,
                message: message.to_vec(),
            };
            out.extend(frame.encode()?);
            if out.len() > 256 * 1024 {
                self.send_raw(&out).await?;
                out.clear();
            }
        }
        self.send_raw(&out).await
    }

    /// Sends the header of a frame announced as `announced` bytes and then
    /// `sent` bytes of its body (zeros), and nothing more: a partial frame the
    /// relay must buffer or drop.
    pub async fn partial_frame(&mut self, announced: u32, sent: usize) -> Result<(), HostileError> {
        self.send_raw(&announced.to_be_bytes()).await?;
        let chunk = vec![0u8; 64 * 1024];
        let mut left = sent;
        while left > 0 {
            let n = left.min(chunk.len());
            self.send_raw(&chunk[..n]).await?;
            left -= n;
        }
        Ok(())
    }

    /// Sends `bytes` one byte every `interval` (a slow peer).
    pub async fn drip(&mut self, bytes: &[u8], interval: Duration) -> Result<(), HostileError> {
        for b in bytes {
            self.send_raw(std::slice::from_ref(b)).await?;
            tokio::time::sleep(interval).await;
        }
        Ok(())
    }

    /// Waits (at most `limit`) until the relay ends the connection; returns
    /// how long that took and the relay's words, or `None` if it did not.
    pub async fn wait_closed(&mut self, limit: Duration) -> Option<(Duration, String)> {
        let start = Instant::now();
        let closed = tokio::time::timeout(limit, self.conn.connection.closed())
            .await
            .ok()?;
        let words = match closed {
            quinn::ConnectionError::ApplicationClosed(c) => {
                String::from_utf8_lossy(&c.reason).into_owned()
            }
            other => other.to_string(),
        };
        Some((start.elapsed(), words))
    }

    /// Reads what the relay sent on the stream until it ends (at most `limit`,
    /// at most 1 MiB), lossily as text (error frames carry words).
    pub async fn read_reply(&mut self, limit: Duration) -> String {
        match tokio::time::timeout(limit, self.recv.read_to_end(1024 * 1024)).await {
            Ok(Ok(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(Err(e)) => format!("<read error: {e}>"),
            Err(_) => "<nothing>".into(),
        }
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.conn.close().await;
    }
}

/// Settings of a handshake flood.
#[derive(Debug, Clone)]
pub struct InitialFlood {
    /// The relay's UDP address (loopback only).
    pub target: SocketAddr,
    /// Half-open handshakes started per second.
    pub per_second: u32,
    /// The server name in the ClientHello.
    pub server_name: String,
}

/// What a flood did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FloodStats {
    /// Initial packets sent (each a new half-open handshake).
    pub sent: u64,
    /// Seconds it ran.
    pub seconds: f64,
    /// Retry packets received (the relay asked for address validation).
    pub retries: u64,
    /// Initial / Handshake packets received (the relay started a handshake).
    pub handshakes: u64,
    /// Any other datagrams received.
    pub other: u64,
}

/// A running flood; [`FloodHandle::stop`] ends it.
#[derive(Debug)]
pub struct FloodHandle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<FloodStats, HostileError>>>,
    sent: Arc<AtomicU64>,
}

impl FloodHandle {
    /// Initial packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops the flood and returns what it did.
    pub fn stop(mut self) -> Result<FloodStats, HostileError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            _ => Err(HostileError::Packet("the flood thread panicked".into())),
        }
    }
}

impl Drop for FloodHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// QUIC's variable-length integer.
fn varint(v: u64, out: &mut Vec<u8>) {
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// The source connection id every flood packet carries.
const SCID: [u8; 8] = *b"minqflud";

/// A TLS ClientHello (handshake message bytes) for ALPN `minqing/1`, with QUIC
/// transport parameters naming [`SCID`] as the initial source connection id.
fn client_hello(server_name: &str) -> Result<Vec<u8>, HostileError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| HostileError::Packet(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![minqing_net::ALPN.to_vec()];
    let mut params = Vec::new();
    // initial_source_connection_id (0x0f)
    varint(0x0f, &mut params);
    varint(SCID.len() as u64, &mut params);
    params.extend_from_slice(&SCID);
    let name = rustls_pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(|e| HostileError::Packet(e.to_string()))?;
    let mut conn =
        rustls::quic::ClientConnection::new(Arc::new(cfg), rustls::quic::Version::V1, name, params)
            .map_err(|e| HostileError::Packet(e.to_string()))?;
    let mut hello = Vec::new();
    conn.write_hs(&mut hello);
    if hello.is_empty() {
        return Err(HostileError::Packet("rustls wrote no ClientHello".into()));
    }
    Ok(hello)
}

/// One protected QUIC v1 Initial packet (1,200 bytes) carrying `hello`,
/// addressed to the new connection id `dcid`.
fn initial_packet(dcid: &[u8], hello: &[u8]) -> Result<Vec<u8>, HostileError> {
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .ok_or_else(|| HostileError::Packet("no TLS 1.3 suite".into()))?;
    let quic = suite
        .quic
        .ok_or_else(|| HostileError::Packet("the suite has no QUIC algorithm".into()))?;
    let keys = rustls::quic::Keys::initial(
        rustls::quic::Version::V1,
        suite,
        quic,
        dcid,
        rustls::Side::Client,
    );
    const PN_LEN: usize = 4;
    const TAG: usize = 16;
    const DATAGRAM: usize = 1200;
    // Payload: one CRYPTO frame, then PADDING up to the datagram size.
    let mut payload = Vec::with_capacity(DATAGRAM);
    payload.push(0x06);
    varint(0, &mut payload);
    varint(hello.len() as u64, &mut payload);
    payload.extend_from_slice(hello);
    let mut header = vec![0xc0 | (PN_LEN as u8 - 1)];
    header.extend_from_slice(&1u32.to_be_bytes());
    header.push(dcid.len() as u8);
    header.extend_from_slice(dcid);
    header.push(SCID.len() as u8);
    header.extend_from_slice(&SCID);
    varint(0, &mut header); // no token
    // Length (2-byte varint) covers packet number, payload and tag.
    let fixed = header.len() + 2 + PN_LEN + TAG;
    if payload.len() + fixed < DATAGRAM {
        payload.resize(DATAGRAM - fixed, 0);
    }
    let length = (PN_LEN + payload.len() + TAG) as u16;
    header.extend_from_slice(&(length | 0x4000).to_be_bytes());
    let pn_offset = header.len();
    header.extend_from_slice(&0u32.to_be_bytes());
    let tag = keys
        .local
        .packet
        .encrypt_in_place(0, &header, &mut payload)
        .map_err(|e| HostileError::Packet(e.to_string()))?;
    let mut packet = header;
    packet.extend_from_slice(&payload);
    packet.extend_from_slice(tag.as_ref());
    let sample_at = pn_offset + PN_LEN;
    let sample: Vec<u8> = packet[sample_at..sample_at + 16].to_vec();
    let (first, rest) = packet.split_at_mut(1);
    keys.local
        .header
        .encrypt_in_place(
            &sample,
            &mut first[0],
            &mut rest[pn_offset - 1..pn_offset - 1 + PN_LEN],
        )
        .map_err(|e| HostileError::Packet(e.to_string()))?;
    Ok(packet)
}

impl InitialFlood {
    /// Starts the flood on its own thread: every millisecond, the packets due
    /// at `per_second`; each with a new random destination connection id.
    pub fn start(self) -> Result<FloodHandle, HostileError> {
        let target = loopback(self.target)?;
        let hello = client_hello(&self.server_name)?;
        // Checked once here so that the thread's errors are only I/O.
        initial_packet(&[0u8; 8], &hello)?;
        let socket = UdpSocket::bind(if target.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        })?;
        socket.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), sent.clone());
        let rate = f64::from(self.per_second.max(1));
        let thread = std::thread::Builder::new()
            .name("initial-flood".into())
            .spawn(move || -> Result<FloodStats, HostileError> {
                let start = Instant::now();
                let mut stats = FloodStats::default();
                let mut buf = [0u8; 2048];
                while !s.load(Ordering::Relaxed) {
                    let due = (start.elapsed().as_secs_f64() * rate) as u64;
                    while stats.sent < due {
                        let dcid: [u8; 8] = rand::random();
                        let packet = initial_packet(&dcid, &hello)?;
                        match socket.send_to(&packet, target) {
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e.into()),
                        }
                        stats.sent += 1;
                        n.store(stats.sent, Ordering::Relaxed);
                    }
                    loop {
                        match socket.recv_from(&mut buf) {
                            Ok((len, _)) if len > 0 => {
                                let first = buf[0];
                                if first & 0x80 == 0 {
                                    stats.other += 1;
                                } else {
                                    match (first >> 4) & 0x03 {
                                        3 => stats.retries += 1,
                                        0 | 2 => stats.handshakes += 1,
                                        _ => stats.other += 1,
                                    }
                                }
                            }
                            _ => break,
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                stats.seconds = start.elapsed().as_secs_f64();
                Ok(stats)
            })?;
        Ok(FloodHandle {
            stop,
            thread: Some(thread),
            sent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_packets_are_full_size_and_differ() {
        let hello = client_hello("localhost").unwrap();
        let a = initial_packet(&[1u8; 8], &hello).unwrap();
        let b = initial_packet(&[2u8; 8], &hello).unwrap();
        assert_eq!(a.len(), 1200);
        assert_eq!(b.len(), 1200);
        assert_ne!(a, b);
        // A long header, version 1.
        assert_eq!(a[0] & 0xc0, 0xc0);
        assert_eq!(&a[1..5], &[0, 0, 0, 1]);
    }

    #[test]
    fn floods_refuse_other_hosts() {
        let flood = InitialFlood {
            target: "10.0.0.1:4433".parse().unwrap(),
            per_second: 1,
            server_name: "localhost".into(),
        };
        assert!(matches!(flood.start(), Err(HostileError::NotLoopback(_))));
    }
}
