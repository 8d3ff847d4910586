//! The UDP shaper end to end on 127.0.0.1: delay, order, deterministic loss, outages, counters, sessions.

use std::net::SocketAddr;
use std::time::Duration;

use minqing_testkit::rtt::{UdpEcho, udp_round_trip};
use minqing_testkit::shaper::{Direction, LinkConfig, ShaperHandle, Stats, UdpOptions, UdpShaper};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LOCAL: &str = "127.0.0.1:0";
/// A liveness bound only: how long a test waits for traffic before it fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn local() -> SocketAddr {
    LOCAL.parse().unwrap()
}

async fn client() -> UdpSocket {
    UdpSocket::bind(LOCAL).await.unwrap()
}

/// Waits until the shaper's counters satisfy `done`, or fails after [`PATIENCE`].
async fn wait_for(handle: &ShaperHandle, what: &str, done: impl Fn(&Stats) -> bool) -> Stats {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let s = handle.stats();
        if done(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {PATIENCE:?} for {what}; counters: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Receives datagrams on `sock` until `n` have come, returning them in arrival order.
async fn receive(sock: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_535];
    while got.len() < n {
        let (len, _) = timeout(PATIENCE, sock.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} datagrams came back", got.len()))
            .unwrap();
        got.push(buf[..len].to_vec());
    }
    got
}

#[tokio::test]
async fn round_trip_costs_at_least_twice_the_one_way_delay() {
    let echo = UdpEcho::start().await.unwrap();
    let delay = Duration::from_millis(20);
    let shaper = UdpShaper::start(local(), echo.local_addr(), LinkConfig::delay(delay))
        .await
        .unwrap();
    let sock = client().await;
    for i in 0..5u8 {
        let rtt = udp_round_trip(&sock, shaper.local_addr(), &[i; 8], PATIENCE)
            .await
            .unwrap();
        assert!(
            rtt >= 2 * delay,
            "round trip {i} took {rtt:?}, below 2 × {delay:?}"
        );
    }
    // Changing the link live applies to what arrives next.
    shaper
        .set_config(LinkConfig::delay(Duration::from_millis(40)))
        .unwrap();
    let rtt = udp_round_trip(&sock, shaper.local_addr(), b"slower", PATIENCE)
        .await
        .unwrap();
    assert!(
        rtt >= Duration::from_millis(80),
        "after set_config: {rtt:?}"
    );
}

#[tokio::test]
async fn jitter_without_reordering_keeps_order() {
    let echo = UdpEcho::start().await.unwrap();
    let config = LinkConfig {
        one_way_delay: Duration::from_millis(5),
        jitter: Duration::from_millis(15),
        seed: 9,
        ..LinkConfig::default()
    };
    let shaper = UdpShaper::start(local(), echo.local_addr(), config)
        .await
        .unwrap();
    let sock = client().await;
    let sent: Vec<Vec<u8>> = (0..60u32).map(|i| i.to_be_bytes().to_vec()).collect();
    for p in &sent {
        sock.send_to(p, shaper.local_addr()).await.unwrap();
    }
    assert_eq!(receive(&sock, sent.len()).await, sent);
}

#[tokio::test]
async fn seeded_loss_drops_exactly_the_predicted_datagrams() {
    let echo = UdpEcho::start().await.unwrap();
    let config = LinkConfig {
        loss: 0.25,
        seed: 42,
        ..LinkConfig::default()
    };
    let shaper = UdpShaper::start(local(), echo.local_addr(), config)
        .await
        .unwrap();
    let handle = shaper.handle();
    let sock = client().await;
    let n = 200u64;
    let up_lost = (0..n).filter(|i| config.drops(Direction::Up, *i)).count() as u64;
    let up_passed = n - up_lost;
    let down_lost = (0..up_passed)
        .filter(|j| config.drops(Direction::Down, *j))
        .count() as u64;
    assert!(
        up_lost > 0 && down_lost > 0,
        "the seed should lose something both ways"
    );

    for i in 0..n {
        sock.send_to(&i.to_be_bytes(), shaper.local_addr())
            .await
            .unwrap();
        if i % 20 == 19 {
            // Let the shaper drain so the kernel's socket buffers never overflow.
            wait_for(&handle, "the batch to be forwarded", |s| {
                s.up.received_packets == i + 1
            })
            .await;
        }
    }
    let s = wait_for(&handle, "both directions to settle", |s| {
        s.up.packets + s.up.dropped_packets == n
            && s.down.packets + s.down.dropped_packets == s.up.packets
    })
    .await;
    assert_eq!(s.up.dropped_packets, up_lost);
    assert_eq!(s.up.packets, up_passed);
    assert_eq!(echo.received(), up_passed);
    assert_eq!(s.down.dropped_packets, down_lost);
    assert_eq!(s.down.packets, up_passed - down_lost);
    let got = receive(&sock, (up_passed - down_lost) as usize).await;
    // Which ones came back is predicted too: the i-th sent survives the way up if
    // Up-ordinal i is kept, and the way down if its Down-ordinal is kept.
    let mut expected = Vec::new();
    let mut down_index = 0;
    for i in 0..n {
        if config.drops(Direction::Up, i) {
            continue;
        }
        if !config.drops(Direction::Down, down_index) {
            expected.push(i.to_be_bytes().to_vec());
        }
        down_index += 1;
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn an_outage_drops_everything_and_recovery_passes_again() {
    let echo = UdpEcho::start().await.unwrap();
    let shaper = UdpShaper::start(
        local(),
        echo.local_addr(),
        LinkConfig::delay(Duration::from_millis(5)),
    )
    .await
    .unwrap();
    let handle = shaper.handle();
    let sock = client().await;

    shaper.outage(true);
    assert!(handle.is_outage());
    for i in 0..10u8 {
        sock.send_to(&[i], shaper.local_addr()).await.unwrap();
    }
    let s = wait_for(&handle, "the outage to drop the datagrams", |s| {
        s.up.received_packets == 10
    })
    .await;
    assert_eq!(s.up.dropped_packets, 10);
    assert_eq!(s.up.dropped_bytes, 10);
    assert_eq!(s.up.packets, 0);
    assert_eq!(echo.received(), 0);

    shaper.outage(false);
    let rtt = udp_round_trip(&sock, shaper.local_addr(), b"back", PATIENCE).await;
    assert!(rtt.is_ok(), "after the outage: {rtt:?}");
    assert_eq!(echo.received(), 1);
}

#[tokio::test]
async fn an_outage_also_drops_datagrams_already_in_flight() {
    let echo = UdpEcho::start().await.unwrap();
    let shaper = UdpShaper::start(
        local(),
        echo.local_addr(),
        LinkConfig::delay(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let handle = shaper.handle();
    let sock = client().await;
    sock.send_to(b"doomed", shaper.local_addr()).await.unwrap();
    wait_for(&handle, "the datagram to enter the link", |s| {
        s.up.received_packets == 1
    })
    .await;
    shaper.outage(true);
    let s = wait_for(&handle, "the in-flight datagram to fall due", |s| {
        s.up.dropped_packets + s.up.packets == 1
    })
    .await;
    assert_eq!(s.up.dropped_packets, 1);
    assert_eq!(echo.received(), 0);
}

#[tokio::test]
async fn byte_counters_are_exact_and_each_client_is_a_distinct_peer() {
    // A bare socket as the upstream, to see the source address of each client.
    let upstream = UdpSocket::bind(LOCAL).await.unwrap();
    let shaper = UdpShaper::start(
        local(),
        upstream.local_addr().unwrap(),
        LinkConfig::default(),
    )
    .await
    .unwrap();
    let handle = shaper.handle();
    let (a, b) = (client().await, client().await);
    let sizes: Vec<usize> = (1..=10).map(|k| k * 100).collect();
    let total: u64 = sizes.iter().map(|n| *n as u64).sum();

    let mut peers = std::collections::BTreeSet::new();
    let mut buf = vec![0u8; 65_535];
    for (k, size) in sizes.iter().enumerate() {
        let from = if k % 2 == 0 { &a } else { &b };
        from.send_to(&vec![k as u8; *size], shaper.local_addr())
            .await
            .unwrap();
        let (n, peer) = timeout(PATIENCE, upstream.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, *size);
        assert!(buf[..n].iter().all(|x| *x == k as u8));
        peers.insert(peer);
        // Reply with half the size, to count the way down separately.
        upstream.send_to(&buf[..n / 2], peer).await.unwrap();
    }
    assert_eq!(
        peers.len(),
        2,
        "two clients must look like two peers upstream"
    );
    receive(&a, 5).await;
    receive(&b, 5).await;
    let s = handle.stats();
    assert_eq!(s.sessions, 2);
    assert_eq!((s.up.packets, s.up.bytes), (10, total));
    assert_eq!((s.up.received_packets, s.up.received_bytes), (10, total));
    assert_eq!((s.down.packets, s.down.bytes), (10, total / 2));
    assert_eq!((s.up.dropped_packets, s.down.dropped_packets), (0, 0));
    // Each exchange is one request and one reply: a turn per direction change.
    assert!(s.turns >= 10, "turns: {}", s.turns);

    handle.reset_stats();
    assert_eq!(handle.stats(), Stats::default());
}

#[tokio::test]
async fn an_idle_session_expires_and_the_next_datagram_opens_a_new_one() {
    let echo = UdpEcho::start().await.unwrap();
    let options = UdpOptions {
        idle_timeout: Duration::from_millis(100),
        ..UdpOptions::default()
    };
    let shaper = UdpShaper::start_with(local(), echo.local_addr(), LinkConfig::default(), options)
        .await
        .unwrap();
    let sock = client().await;
    udp_round_trip(&sock, shaper.local_addr(), b"one", PATIENCE)
        .await
        .unwrap();
    udp_round_trip(&sock, shaper.local_addr(), b"two", PATIENCE)
        .await
        .unwrap();
    assert_eq!(shaper.stats().sessions, 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    udp_round_trip(&sock, shaper.local_addr(), b"three", PATIENCE)
        .await
        .unwrap();
    assert_eq!(shaper.stats().sessions, 2);
}

#[tokio::test]
async fn non_loopback_addresses_are_refused() {
    let err = UdpShaper::start(
        "0.0.0.0:0".parse().unwrap(),
        "127.0.0.1:9".parse().unwrap(),
        LinkConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not a loopback"), "{err}");
    let err = UdpShaper::start(
        local(),
        "192.168.1.1:9".parse().unwrap(),
        LinkConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not a loopback"), "{err}");
}
