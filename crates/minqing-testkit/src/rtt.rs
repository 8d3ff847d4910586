//! Round-trip helpers: loopback echo servers and a UDP round-trip probe, to check a shaper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::shaper::{ShaperError, check_loopback};

/// Errors of the round-trip helpers.
#[derive(Debug, thiserror::Error)]
pub enum RttError {
    /// A socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No echo came back in time.
    #[error("no echo within {0:?}")]
    Timeout(Duration),
    /// The address is not on this machine.
    #[error(transparent)]
    Shaper(#[from] ShaperError),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> RttError {
    move |source| RttError::Io { what, source }
}

/// A UDP echo server on 127.0.0.1 that sends every datagram back to its sender.
/// Stops when dropped.
pub struct UdpEcho {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
    _task: JoinSet<()>,
}

impl UdpEcho {
    /// Binds 127.0.0.1 on a free port and starts echoing.
    pub async fn start() -> Result<UdpEcho, RttError> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(io("bind the UDP echo server"))?;
        let addr = socket.local_addr().map_err(io("read the echo address"))?;
        let received = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&received);
        let mut task = JoinSet::new();
        task.spawn(async move {
            let mut buf = vec![0u8; 65_535];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                let _ = socket.send_to(&buf[..n], from).await;
            }
        });
        Ok(UdpEcho {
            addr,
            received,
            _task: task,
        })
    }

    /// Where to send datagrams.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many datagrams it has received (and echoed).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// A TCP echo server on 127.0.0.1 that writes back every byte it reads, per
/// connection, and closes its side when the client closes. Stops when dropped.
pub struct TcpEcho {
    addr: SocketAddr,
    _task: JoinSet<()>,
}

impl TcpEcho {
    /// Binds 127.0.0.1 on a free port and starts echoing.
    pub async fn start() -> Result<TcpEcho, RttError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io("bind the TCP echo server"))?;
        let addr = listener.local_addr().map_err(io("read the echo address"))?;
        let mut task = JoinSet::new();
        task.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                while conns.try_join_next().is_some() {}
                conns.spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = s.shutdown().await;
                });
            }
        });
        Ok(TcpEcho { addr, _task: task })
    }

    /// Where to connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Sends `payload` from `socket` to `target` and waits for the same bytes to come
/// back (other datagrams are skipped), returning the round-trip time.
pub async fn udp_round_trip(
    socket: &UdpSocket,
    target: SocketAddr,
    payload: &[u8],
    timeout: Duration,
) -> Result<Duration, RttError> {
    check_loopback(target)?;
    let start = Instant::now();
    socket
        .send_to(payload, target)
        .await
        .map_err(io("send a probe"))?;
    let mut buf = vec![0u8; 65_535];
    let wait = async {
        loop {
            let (n, _) = socket
                .recv_from(&mut buf)
                .await
                .map_err(io("receive an echo"))?;
            if &buf[..n] == payload {
                return Ok::<_, RttError>(start.elapsed());
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| RttError::Timeout(timeout))?
}

/// Summary of round-trip samples, for benchmark output.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RttSummary {
    /// Number of samples.
    pub n: usize,
    /// Smallest, in milliseconds.
    pub min_ms: f64,
    /// Median, in milliseconds.
    pub median_ms: f64,
    /// Largest, in milliseconds.
    pub max_ms: f64,
}

/// Summarises samples; `None` when there are none.
pub fn summarize(samples: &[Duration]) -> Option<RttSummary> {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let (first, last) = (ms.first()?, ms.last()?);
    let mid = ms.len() / 2;
    let median = if ms.len().is_multiple_of(2) {
        (ms[mid - 1] + ms[mid]) / 2.0
    } else {
        ms[mid]
    };
    Some(RttSummary {
        n: ms.len(),
        min_ms: *first,
        median_ms: median,
        max_ms: *last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_samples() {
        assert_eq!(summarize(&[]), None);
        let s = summarize(&[
            Duration::from_millis(30),
            Duration::from_millis(10),
            Duration::from_millis(20),
            Duration::from_millis(40),
        ])
        .unwrap();
        assert_eq!(s.n, 4);
        assert_eq!(s.min_ms, 10.0);
        assert_eq!(s.median_ms, 25.0);
        assert_eq!(s.max_ms, 40.0);
    }
}
