//! Mutual TLS over QUIC on 127.0.0.1: enrolled devices get through; unknown,
//! revoked, foreign and expired certificates are refused with a clear error.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use minqing_net::{
    BUNDLE_FORMAT, Bundle, ConnectOptions, DeviceGate, Identity, NetError, RelayCa, ServerTls,
    Validity, connect, map_read_error, peer_fingerprint, server_endpoint,
};

/// A test laptop: its bundle and the identity a CA issued it directly.
struct Dev {
    bundle: Bundle,
    identity: Identity,
}

impl Dev {
    fn fingerprint(&self) -> Result<String, NetError> {
        self.identity.fingerprint()
    }
}

#[derive(Default)]
struct Gate {
    allowed: Mutex<BTreeSet<String>>,
    refused: Mutex<Vec<(String, String)>>,
}

impl DeviceGate for Gate {
    fn admit(&self, fingerprint: &str) -> Result<(), String> {
        if self.allowed.lock().unwrap().contains(fingerprint) {
            Ok(())
        } else {
            Err("revoked or not enrolled".into())
        }
    }
    fn refused(&self, fingerprint: &str, reason: &str) {
        self.refused
            .lock()
            .unwrap()
            .push((fingerprint.to_owned(), reason.to_owned()));
    }
}

struct Relay {
    ca: RelayCa,
    gate: Arc<Gate>,
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    _endpoint: minqing_net::quinn::Endpoint,
}

/// A relay that echoes one stream per connection and records the peer fingerprint.
fn start_relay() -> Relay {
    let ca = RelayCa::create("test").unwrap();
    let server = ca.issue_server(&[]).unwrap();
    let tls = ServerTls {
        ca_cert_pem: ca.cert_pem().to_owned(),
        cert_pem: server.cert_pem,
        key_pem: server.key_pem,
    };
    let gate = Arc::new(Gate::default());
    let endpoint = server_endpoint("127.0.0.1:0".parse().unwrap(), &tls, gate.clone()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ep = endpoint.clone();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                seen.lock()
                    .unwrap()
                    .push(peer_fingerprint(&conn).unwrap_or_default());
                if let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let data = recv.read_to_end(1024).await.unwrap_or_default();
                    let _ = send.write_all(&data).await;
                    let _ = send.finish();
                    let _ = conn.closed().await;
                }
            });
        }
    });
    Relay {
        ca,
        gate,
        addr,
        seen,
        _endpoint: endpoint,
    }
}

fn bundle_for(relay: &Relay, ca: &RelayCa, validity: Validity, enrol: bool) -> Dev {
    let dev = ca.issue_device("abcdefgh23456789", validity).unwrap();
    if enrol {
        relay
            .gate
            .allowed
            .lock()
            .unwrap()
            .insert(dev.fingerprint.clone());
    }
    Dev {
        bundle: Bundle {
            format: BUNDLE_FORMAT.into(),
            device_id: "abcdefgh23456789".into(),
            cadre: "王芳".into(),
            team: None,
            relay_name: "test".into(),
            relay_addr: relay.addr.to_string(),
            server_name: "localhost".into(),
            ca_cert_pem: relay.ca.cert_pem().to_owned(),
            villages: vec!["V1".into()],
            issued_at: "2026-01-01T00:00:00Z".into(),
            escrow_public_key: None,
            enrol_secret: minqing_net::new_secret(),
        },
        identity: Identity {
            cert_pem: dev.cert_pem,
            key_pem: dev.key_pem,
        },
    }
}

/// Connects, sends `hello`, returns what came back or the mapped error.
async fn echo(dev: &Dev) -> Result<Vec<u8>, NetError> {
    let conn = connect(
        &dev.bundle,
        &dev.identity,
        ConnectOptions {
            timeout: Duration::from_secs(5),
        },
    )
    .await?;
    let (mut send, mut recv) = conn
        .connection
        .open_bi()
        .await
        .map_err(|e| minqing_net::map_connection_error(&e, &conn.addr))?;
    // A refused client may see the write succeed; the read reports the refusal.
    let _ = send.write_all(b"hello").await;
    let _ = send.finish();
    let out = recv.read_to_end(1024).await.map_err(|e| match e {
        minqing_net::quinn::ReadToEndError::Read(r) => map_read_error(&r, &conn.addr),
        other => NetError::ConnectionLost(minqing_net::Lost::ReadToEnd(other)),
    })?;
    conn.close().await;
    Ok(out)
}

fn valid() -> Validity {
    Validity::from_now(minqing_net::DEVICE_CERT_VALIDITY)
}

#[tokio::test]
async fn enrolled_device_gets_through_and_is_identified() {
    let relay = start_relay();
    let bundle = bundle_for(&relay, &relay.ca, valid(), true);
    assert_eq!(echo(&bundle).await.unwrap(), b"hello");
    assert_eq!(
        relay.seen.lock().unwrap().as_slice(),
        [bundle.fingerprint().unwrap()]
    );
    assert!(relay.gate.refused.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_or_revoked_device_is_refused_clearly() {
    let relay = start_relay();
    let bundle = bundle_for(&relay, &relay.ca, valid(), true);
    assert!(echo(&bundle).await.is_ok());
    // Revoke: the gate changes while the relay runs, the next handshake fails.
    relay.gate.allowed.lock().unwrap().clear();
    let err = echo(&bundle).await.unwrap_err();
    assert!(err.is_refused(), "{err:?}");
    assert!(err.to_string().contains("revoked or not enrolled"), "{err}");
    let refused = relay.gate.refused.lock().unwrap().clone();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, bundle.fingerprint().unwrap());
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let relay = start_relay();
    let other = RelayCa::create("other").unwrap();
    let bundle = bundle_for(&relay, &other, valid(), true);
    let err = echo(&bundle).await.unwrap_err();
    assert!(err.is_refused(), "{err:?}");
    assert!(relay.seen.lock().unwrap().is_empty());
    assert_eq!(relay.gate.refused.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let relay = start_relay();
    let day = Duration::from_secs(24 * 3600);
    let expired = Validity {
        not_before: SystemTime::now() - 30 * day,
        not_after: SystemTime::now() - day,
    };
    let bundle = bundle_for(&relay, &relay.ca, expired, true);
    let err = echo(&bundle).await.unwrap_err();
    assert!(err.is_refused(), "{err:?}");
    let refused = relay.gate.refused.lock().unwrap().clone();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].1.to_lowercase().contains("expired"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_unreachable_not_refused() {
    let relay = start_relay();
    let mut bundle = bundle_for(&relay, &relay.ca, valid(), true);
    // A port nothing listens on: bind a UDP socket to find one, then drop it.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    bundle.bundle.relay_addr = sock.local_addr().unwrap().to_string();
    drop(sock);
    let conn = connect(
        &bundle.bundle,
        &bundle.identity,
        ConnectOptions {
            timeout: Duration::from_millis(500),
        },
    )
    .await;
    let err = conn.unwrap_err();
    assert!(matches!(err, NetError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("unreachable"), "{err}");
}

#[test]
fn bundle_round_trips_with_mode_0600_and_carries_no_key() {
    use std::os::unix::fs::PermissionsExt;
    let ca = RelayCa::create("县中继").unwrap();
    let bundle = Bundle {
        format: BUNDLE_FORMAT.into(),
        device_id: "abcdefgh23456789".into(),
        cadre: "李明".into(),
        team: Some("第三服务队".into()),
        relay_name: "县中继".into(),
        relay_addr: "127.0.0.1:4433".into(),
        server_name: "localhost".into(),
        ca_cert_pem: ca.cert_pem().to_owned(),
        villages: vec!["V1".into(), "V2".into()],
        issued_at: "2026-01-01T00:00:00Z".into(),
        escrow_public_key: None,
        enrol_secret: minqing_net::new_secret(),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("laptop.bundle");
    bundle.write(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(Bundle::read(&path).unwrap(), bundle);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("PRIVATE KEY"), "{text}");

    std::fs::write(&path, r#"{"format":"minqing-bundle/9"}"#).unwrap();
    let err = Bundle::read(&path).unwrap_err().to_string();
    assert!(
        err.contains("not a minqing enrolment bundle") || err.contains("format"),
        "{err}"
    );
}

/// Every field a laptop accepts is checked before anything is written.
#[test]
fn bundles_with_bad_fields_are_refused() {
    let ca = RelayCa::create("县中继").unwrap();
    let good = Bundle {
        format: BUNDLE_FORMAT.into(),
        device_id: "abcdefgh23456789".into(),
        cadre: "李明".into(),
        team: None,
        relay_name: "县中继".into(),
        relay_addr: "127.0.0.1:4433".into(),
        server_name: "localhost".into(),
        ca_cert_pem: ca.cert_pem().to_owned(),
        villages: vec!["V1".into()],
        issued_at: "2026-01-01T00:00:00Z".into(),
        escrow_public_key: None,
        enrol_secret: minqing_net::new_secret(),
    };
    assert!(good.check().is_ok());
    let leaf = ca.issue_device("abcdefgh23456789", valid()).unwrap();
    type Change = Box<dyn Fn(&mut Bundle)>;
    let cases: Vec<(&str, Change)> = vec![
        ("device id", Box::new(|b| b.device_id = "../../etc".into())),
        ("cadre", Box::new(|b| b.cadre = "李\u{1b}[2J".into())),
        ("cadre", Box::new(|b| b.cadre = "李".repeat(40_000))),
        ("address", Box::new(|b| b.relay_addr = "nowhere".into())),
        (
            "server name",
            Box::new(|b| b.server_name = "bad name!".into()),
        ),
        ("village", Box::new(|b| b.villages = vec!["../x".into()])),
        (
            "CA",
            Box::new(move |b| b.ca_cert_pem = leaf.cert_pem.clone()),
        ),
        ("CA", Box::new(|b| b.ca_cert_pem = "garbage".into())),
        ("secret", Box::new(|b| b.enrol_secret = "abc".into())),
    ];
    for (what, change) in cases {
        let mut b = good.clone();
        change(&mut b);
        assert!(b.check().is_err(), "a bad {what} passed the checks");
    }
}
