//! The link shaper: a loopback proxy that adds delay, jitter, loss and outages, and counts traffic.
//!
//! Two proxies share one model of the link:
//!
//! - [`UdpShaper`] forwards datagrams (QUIC). Each client address gets its own
//!   proxy socket towards the upstream, so the relay sees distinct peers. Loss,
//!   delay, jitter (optionally reordering) and outages apply per datagram.
//! - [`TcpShaper`] forwards byte streams (the WebSocket baseline). Every chunk
//!   read is delayed by the same one-way delay and jitter, never reordered; loss
//!   does not apply (TCP would retransmit). An outage stalls the bytes by
//!   default, or closes every connection ([`TcpOutage::Close`]).
//!
//! Both are driven live through a [`ShaperHandle`]: [`ShaperHandle::set_config`],
//! [`ShaperHandle::outage`], [`ShaperHandle::stats`].
//!
//! Loss and jitter are deterministic: the fate of the `i`-th datagram in a
//! direction is a pure function of `(seed, direction, i)`
//! ([`LinkConfig::drops`], [`LinkConfig::jitter_for`]), so a test can compute
//! exactly which datagrams a seed drops.

mod tcp;
mod udp;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

pub use tcp::{TcpOptions, TcpOutage, TcpShaper};
pub use udp::{UdpOptions, UdpShaper};

/// The longest one-way delay or jitter a [`LinkConfig`] accepts (a bound on queued memory).
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// Errors starting or configuring a shaper.
#[derive(Debug, thiserror::Error)]
pub enum ShaperError {
    /// An address outside 127.0.0.0/8 and ::1 was given; the shaper only works on this machine.
    #[error(
        "{0} is not a loopback address: the shaper only listens on and forwards to 127.0.0.1 / ::1"
    )]
    NotLoopback(SocketAddr),
    /// The loss probability is not a number in 0..=1.
    #[error("loss must be a probability between 0 and 1, got {0}")]
    BadLoss(f64),
    /// The delay or jitter exceeds [`MAX_DELAY`].
    #[error("delay and jitter must each be at most {max:?}, got {got:?}")]
    DelayTooLong {
        /// The value given.
        got: Duration,
        /// The limit, [`MAX_DELAY`].
        max: Duration,
    },
    /// Binding or configuring a socket failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What the shaper was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ShaperError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ShaperError {
        let what = what.into();
        move |source| ShaperError::Io { what, source }
    }
}

/// Refuses any address outside the loopback range.
pub fn check_loopback(addr: SocketAddr) -> Result<SocketAddr, ShaperError> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(ShaperError::NotLoopback(addr))
    }
}

/// Which way traffic crosses the shaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the client (device) towards the upstream (relay).
    Up,
    /// From the upstream (relay) back to the client (device).
    Down,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::Up => 0,
            Direction::Down => 1,
        }
    }
}

/// The link's behaviour. Change it live with [`ShaperHandle::set_config`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Added to every datagram or chunk, each way. A round trip costs at least twice this.
    pub one_way_delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per datagram or chunk (never negative,
    /// so `one_way_delay` stays a lower bound).
    pub jitter: Duration,
    /// Probability in `0..=1` that a datagram is dropped (UDP only; TCP ignores it).
    pub loss: f64,
    /// Seed for loss and jitter; the same seed drops the same datagrams.
    pub seed: u64,
    /// Whether jitter may reorder datagrams (UDP only). When false, a datagram is
    /// never delivered before one that entered earlier in the same direction.
    pub reorder: bool,
}

impl Default for LinkConfig {
    /// A perfect link: no delay, no jitter, no loss, seed 0, no reordering.
    fn default() -> Self {
        LinkConfig {
            one_way_delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            seed: 0,
            reorder: false,
        }
    }
}

impl LinkConfig {
    /// A link with this one-way delay and nothing else (RTT = 2 × `one_way_delay`).
    pub fn delay(one_way_delay: Duration) -> Self {
        LinkConfig {
            one_way_delay,
            ..LinkConfig::default()
        }
    }

    /// Checks the ranges: loss in `0..=1`, delay and jitter at most [`MAX_DELAY`].
    pub fn validate(&self) -> Result<(), ShaperError> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(ShaperError::BadLoss(self.loss));
        }
        for d in [self.one_way_delay, self.jitter] {
            if d > MAX_DELAY {
                return Err(ShaperError::DelayTooLong {
                    got: d,
                    max: MAX_DELAY,
                });
            }
        }
        Ok(())
    }

    /// Whether the `index`-th datagram (counting from 0 since the shaper started,
    /// every datagram that arrived in `dir`, outages included) is lost.
    pub fn drops(&self, dir: Direction, index: u64) -> bool {
        if self.loss <= 0.0 {
            return false;
        }
        unit(mix(self.seed, dir.index() as u64 * 2, index)) < self.loss
    }

    /// The jitter added to the `index`-th datagram or chunk in `dir`: uniform in `0..=jitter`.
    pub fn jitter_for(&self, dir: Direction, index: u64) -> Duration {
        if self.jitter.is_zero() {
            return Duration::ZERO;
        }
        let nanos = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        let r = mix(self.seed, dir.index() as u64 * 2 + 1, index);
        Duration::from_nanos(r % nanos.saturating_add(1))
    }
}

/// SplitMix64 over (seed, stream, index): a stable, portable hash, so a seed means
/// the same thing in every version of this crate and on every machine.
fn mix(seed: u64, stream: u64, index: u64) -> u64 {
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0xD6E8_FEB8_6659_FD93))
        .wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps a u64 to `[0, 1)` with 53 bits of precision.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Counters for one direction. "Packets" are datagrams for UDP and chunks (one
/// read from the socket) for TCP; bytes are payload bytes (UDP payloads, TCP
/// stream bytes), without IP, UDP or TCP headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DirectionStats {
    /// Datagrams or chunks that arrived at the shaper.
    pub received_packets: u64,
    /// Bytes that arrived at the shaper.
    pub received_bytes: u64,
    /// Datagrams or chunks delivered onwards.
    pub packets: u64,
    /// Bytes delivered onwards.
    pub bytes: u64,
    /// Datagrams or chunks dropped (loss, outage, full queue, closed connection).
    pub dropped_packets: u64,
    /// Bytes dropped.
    pub dropped_bytes: u64,
    /// UDP only: of `bytes`, those in QUIC long-header packets (Initial,
    /// 0-RTT, Handshake, Retry): the connection handshake, its padding and its
    /// ACKs. The rest of `bytes` is 1-RTT (short-header) packets, the
    /// connection's application data. Always 0 for TCP.
    pub quic_handshake_bytes: u64,
}

/// A snapshot of a shaper's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Client → upstream.
    pub up: DirectionStats,
    /// Upstream → client.
    pub down: DirectionStats,
    /// UDP sessions (client addresses) or TCP connections opened.
    pub sessions: u64,
    /// Direction changes seen at delivery, per session or connection: a rough count
    /// of flights. For a request/response protocol over TCP, round trips ≈ `turns / 2`
    /// rounded up; over QUIC, ACKs make it an overestimate.
    pub turns: u64,
}

#[derive(Default)]
struct DirCounters {
    received_packets: AtomicU64,
    received_bytes: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
    dropped_packets: AtomicU64,
    dropped_bytes: AtomicU64,
    quic_handshake_bytes: AtomicU64,
    /// Ordinal of the next arrival, for loss and jitter; never reset (so a seed's
    /// sequence is not restarted by [`ShaperHandle::reset_stats`]).
    next_index: AtomicU64,
}

impl DirCounters {
    fn snapshot(&self) -> DirectionStats {
        DirectionStats {
            received_packets: self.received_packets.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
            packets: self.packets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            dropped_packets: self.dropped_packets.load(Ordering::Relaxed),
            dropped_bytes: self.dropped_bytes.load(Ordering::Relaxed),
            quic_handshake_bytes: self.quic_handshake_bytes.load(Ordering::Relaxed),
        }
    }

    fn reset(&self) {
        for c in [
            &self.received_packets,
            &self.received_bytes,
            &self.packets,
            &self.bytes,
            &self.dropped_packets,
            &self.dropped_bytes,
            &self.quic_handshake_bytes,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// State shared by a shaper's tasks and its handles.
pub(crate) struct Shared {
    config: Mutex<LinkConfig>,
    outage: watch::Sender<bool>,
    dirs: [DirCounters; 2],
    sessions: AtomicU64,
    turns: AtomicU64,
}

/// Direction of the last delivery on one session or connection, for [`Stats::turns`].
#[derive(Default)]
pub(crate) struct TurnTracker(std::sync::atomic::AtomicU8);

impl Shared {
    fn new(config: LinkConfig) -> Arc<Shared> {
        let (outage, _) = watch::channel(false);
        Arc::new(Shared {
            config: Mutex::new(config),
            outage,
            dirs: Default::default(),
            sessions: AtomicU64::new(0),
            turns: AtomicU64::new(0),
        })
    }

    fn lock_config(&self) -> MutexGuard<'_, LinkConfig> {
        // A panic while holding this lock cannot leave a LinkConfig half-written
        // (it is Copy and assigned whole), so a poisoned lock is still usable.
        self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn config(&self) -> LinkConfig {
        *self.lock_config()
    }

    pub(crate) fn in_outage(&self) -> bool {
        *self.outage.borrow()
    }

    pub(crate) fn outage_watch(&self) -> watch::Receiver<bool> {
        self.outage.subscribe()
    }

    fn dir(&self, dir: Direction) -> &DirCounters {
        &self.dirs[dir.index()]
    }

    /// Counts an arrival and decides its fate: `None` if dropped (outage, or loss when
    /// `lossy`), else the instant to deliver it, not before `*not_before` unless the
    /// link reorders (then `not_before` is left alone).
    pub(crate) fn arrive(
        &self,
        dir: Direction,
        len: usize,
        lossy: bool,
        not_before: &mut Option<Instant>,
    ) -> Option<Instant> {
        let c = self.dir(dir);
        let index = c.next_index.fetch_add(1, Ordering::Relaxed);
        c.received_packets.fetch_add(1, Ordering::Relaxed);
        c.received_bytes.fetch_add(len as u64, Ordering::Relaxed);
        let cfg = self.config();
        if lossy && (self.in_outage() || cfg.drops(dir, index)) {
            self.dropped(dir, len);
            return None;
        }
        let at = Instant::now() + cfg.one_way_delay + cfg.jitter_for(dir, index);
        if lossy && cfg.reorder {
            return Some(at);
        }
        let at = match *not_before {
            Some(prev) if prev > at => prev,
            _ => at,
        };
        *not_before = Some(at);
        Some(at)
    }

    pub(crate) fn delivered(&self, dir: Direction, len: usize, turns: &TurnTracker) {
        let c = self.dir(dir);
        c.packets.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(len as u64, Ordering::Relaxed);
        let code = dir.index() as u8 + 1;
        let prev = turns.0.swap(code, Ordering::Relaxed);
        if prev != 0 && prev != code {
            self.turns.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts `len` delivered bytes of QUIC long-header packets.
    pub(crate) fn delivered_handshake(&self, dir: Direction, len: usize) {
        self.dir(dir)
            .quic_handshake_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, dir: Direction, len: usize) {
        let c = self.dir(dir);
        c.dropped_packets.fetch_add(1, Ordering::Relaxed);
        c.dropped_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }

    pub(crate) fn session_opened(&self) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
    }
}

/// A cheap, cloneable handle to change a running shaper and read its counters.
#[derive(Clone)]
pub struct ShaperHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ShaperHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShaperHandle")
            .field("config", &self.config())
            .field("outage", &self.is_outage())
            .finish()
    }
}

impl ShaperHandle {
    pub(crate) fn new(config: LinkConfig) -> Result<ShaperHandle, ShaperError> {
        config.validate()?;
        Ok(ShaperHandle {
            shared: Shared::new(config),
        })
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// The link's current behaviour.
    pub fn config(&self) -> LinkConfig {
        self.shared.config()
    }

    /// Changes the link for every datagram or chunk that arrives from now on
    /// (what is already in flight keeps its delivery time).
    pub fn set_config(&self, config: LinkConfig) -> Result<(), ShaperError> {
        config.validate()?;
        *self.shared.lock_config() = config;
        Ok(())
    }

    /// Starts (`true`) or ends (`false`) an outage. During an outage UDP drops every
    /// datagram both ways, including those already in flight when they fall due; TCP
    /// stalls or closes connections (see [`TcpOutage`]).
    pub fn outage(&self, on: bool) {
        self.shared.outage.send_replace(on);
    }

    /// Whether an outage is on.
    pub fn is_outage(&self) -> bool {
        self.shared.in_outage()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        Stats {
            up: self.shared.dir(Direction::Up).snapshot(),
            down: self.shared.dir(Direction::Down).snapshot(),
            sessions: self.shared.sessions.load(Ordering::Relaxed),
            turns: self.shared.turns.load(Ordering::Relaxed),
        }
    }

    /// Sets every counter to zero (between benchmark scenarios). The loss and jitter
    /// sequence is not restarted: datagram ordinals keep counting.
    pub fn reset_stats(&self) {
        for d in &self.shared.dirs {
            d.reset();
        }
        self.shared.sessions.store(0, Ordering::Relaxed);
        self.shared.turns.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_a_pure_function_of_seed_direction_and_index() {
        let a = LinkConfig {
            loss: 0.3,
            seed: 7,
            ..LinkConfig::default()
        };
        let drops: Vec<bool> = (0..1000).map(|i| a.drops(Direction::Up, i)).collect();
        let again: Vec<bool> = (0..1000).map(|i| a.drops(Direction::Up, i)).collect();
        assert_eq!(drops, again);
        let n = drops.iter().filter(|d| **d).count();
        assert!(
            (200..400).contains(&n),
            "30% of 1000 should be near 300, got {n}"
        );
        let down: Vec<bool> = (0..1000).map(|i| a.drops(Direction::Down, i)).collect();
        assert_ne!(drops, down, "directions draw from different streams");
        let other = LinkConfig { seed: 8, ..a };
        let other: Vec<bool> = (0..1000).map(|i| other.drops(Direction::Up, i)).collect();
        assert_ne!(drops, other, "a different seed drops different datagrams");
    }

    #[test]
    fn no_loss_and_full_loss_are_exact() {
        let none = LinkConfig::default();
        let all = LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        };
        assert!((0..1000).all(|i| !none.drops(Direction::Down, i)));
        assert!((0..1000).all(|i| all.drops(Direction::Down, i)));
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let c = LinkConfig {
            jitter: Duration::from_millis(5),
            seed: 3,
            ..LinkConfig::default()
        };
        let js: Vec<Duration> = (0..500).map(|i| c.jitter_for(Direction::Up, i)).collect();
        assert!(js.iter().all(|j| *j <= Duration::from_millis(5)));
        assert!(js.iter().any(|j| *j > Duration::from_millis(1)));
    }

    #[test]
    fn bad_configs_are_refused() {
        let bad_loss = LinkConfig {
            loss: 1.5,
            ..LinkConfig::default()
        };
        assert!(matches!(bad_loss.validate(), Err(ShaperError::BadLoss(_))));
        let nan = LinkConfig {
            loss: f64::NAN,
            ..LinkConfig::default()
        };
        assert!(nan.validate().is_err());
        let long = LinkConfig::delay(Duration::from_secs(61));
        assert!(matches!(
            long.validate(),
            Err(ShaperError::DelayTooLong { .. })
        ));
    }

    #[test]
    fn only_loopback_is_accepted() {
        assert!(check_loopback("127.0.0.1:9".parse().unwrap()).is_ok());
        assert!(check_loopback("[::1]:9".parse().unwrap()).is_ok());
        assert!(check_loopback("10.0.0.1:9".parse().unwrap()).is_err());
        assert!(check_loopback("0.0.0.0:9".parse().unwrap()).is_err());
    }
}

/// Bytes of QUIC long-header packets (RFC 9000 §17.2) at the start of one UDP
/// datagram. A datagram may coalesce several long-header packets, each with its
/// own Length field, and end with one short-header (1-RTT) packet, which runs
/// to the end of the datagram and is not counted. Anything that does not parse
/// as QUIC counts as 0 (the shaper forwards it all the same).
pub fn quic_long_header_bytes(datagram: &[u8]) -> usize {
    fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
        let first = *b.get(*at)?;
        let len = 1usize << (first >> 6);
        let bytes = b.get(*at..*at + len)?;
        let mut v = u64::from(first & 0x3f);
        for x in &bytes[1..] {
            v = (v << 8) | u64::from(*x);
        }
        *at += len;
        Some(v)
    }
    fn one(b: &[u8]) -> Option<usize> {
        let first = *b.first()?;
        if first & 0x80 == 0 {
            return None;
        }
        let mut at = 1 + 4; // first byte, version
        let dcid = usize::from(*b.get(at)?);
        at += 1 + dcid;
        let scid = usize::from(*b.get(at)?);
        at += 1 + scid;
        match (first >> 4) & 0x3 {
            // Initial: a token precedes the length.
            0 => {
                let token = usize::try_from(varint(b, &mut at)?).ok()?;
                at += token;
            }
            // Retry: no length; it fills the datagram.
            3 => return Some(b.len()),
            _ => {}
        }
        let len = usize::try_from(varint(b, &mut at)?).ok()?;
        let end = at.checked_add(len)?;
        (end <= b.len()).then_some(end)
    }
    let mut total = 0;
    let mut rest = datagram;
    while let Some(n) = one(rest) {
        total += n;
        rest = &rest[n..];
    }
    total
}

#[cfg(test)]
mod quic_tests {
    use super::quic_long_header_bytes;

    #[test]
    fn long_header_packets_are_counted_and_short_ones_are_not() {
        // Initial: 0xc0, version 1, dcid 2 bytes, scid 0, token len 0, length 3, payload 3.
        let initial = [0xc0, 0, 0, 0, 1, 2, 0xaa, 0xbb, 0, 0, 3, 1, 2, 3];
        // Handshake: 0xe0, version, dcid 0, scid 1, length 2 (2-byte varint 0x40 0x02), payload 2.
        let handshake = [0xe0, 0, 0, 0, 1, 0, 1, 0xcc, 0x40, 0x02, 9, 9];
        let short = [0x40, 1, 2, 3, 4, 5];
        let mut d = initial.to_vec();
        d.extend_from_slice(&handshake);
        d.extend_from_slice(&short);
        assert_eq!(quic_long_header_bytes(&d), initial.len() + handshake.len());
        assert_eq!(quic_long_header_bytes(&short), 0);
        // A length running past the datagram is not QUIC: nothing counted.
        let mut bad = initial.to_vec();
        bad[10] = 50;
        assert_eq!(quic_long_header_bytes(&bad), 0);
        assert_eq!(quic_long_header_bytes(&[]), 0);
    }
}
