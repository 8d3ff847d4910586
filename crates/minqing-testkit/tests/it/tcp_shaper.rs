//! The TCP shaper end to end on 127.0.0.1: complete, ordered streams through delay, counters, outages.

use std::net::SocketAddr;
use std::time::Duration;

use minqing_testkit::rtt::TcpEcho;
use minqing_testkit::shaper::{LinkConfig, TcpOptions, TcpOutage, TcpShaper};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// A liveness bound only: how long a test waits for bytes before it fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn a_large_stream_arrives_complete_and_in_order_through_delay_and_jitter() {
    let echo = TcpEcho::start().await.unwrap();
    let config = LinkConfig {
        one_way_delay: Duration::from_millis(20),
        jitter: Duration::from_millis(10),
        seed: 5,
        // Ignored by TCP: bytes are never lost or reordered.
        loss: 0.5,
        reorder: true,
    };
    let shaper = TcpShaper::start(local(), echo.local_addr(), config)
        .await
        .unwrap();
    let stream = TcpStream::connect(shaper.local_addr()).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let data = pattern(1 << 20);
    let to_send = data.clone();
    let writer = tokio::spawn(async move {
        for piece in to_send.chunks(7_777) {
            w.write_all(piece).await.unwrap();
        }
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    timeout(PATIENCE, r.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the echoed stream differs from what was sent");

    let s = shaper.stats();
    let n = data.len() as u64;
    assert_eq!(s.sessions, 1);
    assert_eq!((s.up.bytes, s.up.received_bytes), (n, n));
    assert_eq!((s.down.bytes, s.down.received_bytes), (n, n));
    assert_eq!((s.up.dropped_bytes, s.down.dropped_bytes), (0, 0));
    assert_eq!(s.up.packets, s.up.received_packets);
}

#[tokio::test]
async fn a_round_trip_costs_at_least_twice_the_one_way_delay() {
    let echo = TcpEcho::start().await.unwrap();
    let delay = Duration::from_millis(20);
    let shaper = TcpShaper::start(local(), echo.local_addr(), LinkConfig::delay(delay))
        .await
        .unwrap();
    let mut s = TcpStream::connect(shaper.local_addr()).await.unwrap();
    let mut buf = [0u8; 4];
    for i in 0..3u8 {
        let start = Instant::now();
        s.write_all(&[i; 4]).await.unwrap();
        timeout(PATIENCE, s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, [i; 4]);
        let rtt = start.elapsed();
        assert!(rtt >= 2 * delay, "round trip {i}: {rtt:?}");
    }
    let stats = shaper.stats();
    assert_eq!((stats.up.bytes, stats.down.bytes), (12, 12));
    assert_eq!(stats.turns, 5, "three requests and three replies alternate");
}

#[tokio::test]
async fn an_outage_stalls_the_bytes_and_they_arrive_after_it() {
    let echo = TcpEcho::start().await.unwrap();
    let shaper = TcpShaper::start(
        local(),
        echo.local_addr(),
        LinkConfig::delay(Duration::from_millis(5)),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(shaper.local_addr()).await.unwrap();
    shaper.outage(true);
    s.write_all(b"held during the outage").await.unwrap();
    // Give a broken shaper every chance to leak the bytes through.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stats = shaper.stats();
    assert_eq!(stats.up.received_bytes, 22);
    assert_eq!(stats.up.bytes, 0, "no byte may cross during an outage");
    let mut buf = [0u8; 1];
    assert!(
        timeout(Duration::from_millis(50), s.read(&mut buf))
            .await
            .is_err(),
        "nothing may come back during an outage"
    );

    shaper.outage(false);
    let mut back = [0u8; 22];
    timeout(PATIENCE, s.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"held during the outage");
    let stats = shaper.stats();
    assert_eq!((stats.up.bytes, stats.down.bytes), (22, 22));
    assert_eq!(stats.up.dropped_bytes, 0);
}

#[tokio::test]
async fn in_close_mode_an_outage_closes_connections_and_refuses_new_ones() {
    let echo = TcpEcho::start().await.unwrap();
    let options = TcpOptions {
        outage: TcpOutage::Close,
        ..TcpOptions::default()
    };
    let shaper = TcpShaper::start_with(local(), echo.local_addr(), LinkConfig::default(), options)
        .await
        .unwrap();
    let mut s = TcpStream::connect(shaper.local_addr()).await.unwrap();
    s.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    timeout(PATIENCE, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();

    shaper.outage(true);
    let mut rest = Vec::new();
    let end = timeout(PATIENCE, s.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty(), "no bytes after the cut: {rest:?}");
    let _ = end; // an orderly close (Ok) or a reset (Err) both mean closed
    let mut fresh = TcpStream::connect(shaper.local_addr()).await.unwrap();
    let mut none = Vec::new();
    let _ = timeout(PATIENCE, fresh.read_to_end(&mut none))
        .await
        .unwrap();
    assert!(none.is_empty());

    shaper.outage(false);
    let mut again = TcpStream::connect(shaper.local_addr()).await.unwrap();
    again.write_all(b"ok").await.unwrap();
    timeout(PATIENCE, again.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ok");
}
