//! The real `minqing-relay` process on 127.0.0.1, driven by test devices built
//! on `minqing-net` + `minqing-sync`: enrolment, partial replication, refusal of
//! unassigned villages, revocation while serving, unknown CAs, restart after SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use automerge::{AutoCommit, ReadDoc, transaction::Transactable};
use minqing_net::{Bundle, ConnectOptions, Identity, NetError};
use minqing_sync::{DocId, DocOutcome, MemStorage, SessionConfig, SessionOutcome, Storage};

const BIN: &str = env!("CARGO_BIN_EXE_minqing-relay");

/// The operator passphrase file every command here reads (the CA key is
/// sealed with it; docs/security.md), with the test-only cheap KDF.
fn passphrase_file() -> PathBuf {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let p = std::env::temp_dir().join(format!(
            "minqing-relay-serve-test-{}.pass",
            std::process::id()
        ));
        std::fs::write(&p, "operator passphrase\n").unwrap();
        p
    })
    .clone()
}

fn relay(home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .env("MINQING_RELAY_PASSPHRASE_FILE", passphrase_file())
        .env("MINQING_TEST_WEAK_KDF", "1")
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(home: &Path, args: &[&str]) -> String {
    let (code, out, err) = relay(home, args);
    assert_eq!(code, 0, "minqing-relay {args:?} failed: {err}");
    out
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);

impl Server {
    fn start(home: &Path) -> Server {
        // serve unseals the CA key (it signs at first contact).
        let mut child = Command::new(BIN)
            .env("MINQING_RELAY_PASSPHRASE_FILE", passphrase_file())
            .arg("serve")
            .arg("--home")
            .arg(home)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let line = lines
                .next()
                .expect("relay exited before listening")
                .unwrap();
            if line.contains("listening on") {
                break;
            }
        }
        // Keep draining stderr so the relay never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server(child)
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.0.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn enroll(home: &Path, cadre: &str, villages: &str) -> (String, Bundle) {
    let out_path: PathBuf = home.join(format!("{cadre}.bundle"));
    let out = ok(
        home,
        &[
            "enroll",
            "--cadre",
            cadre,
            "--villages",
            villages,
            "--out",
            out_path.to_str().unwrap(),
        ],
    );
    let id = out.lines().last().unwrap().trim().to_owned();
    (id, Bundle::read(&out_path).unwrap())
}

/// A test laptop after its first contact: its bundle and identity.
struct Dev {
    bundle: Bundle,
    identity: Identity,
}

/// The laptop's first contact with the running relay: a new key, the
/// bundle's secret, a certificate.
async fn first_contact(bundle: Bundle) -> Dev {
    let key = minqing_net::new_device_key().unwrap();
    let identity = minqing_net::enrol(
        &bundle,
        &key,
        ConnectOptions {
            timeout: Duration::from_secs(10),
        },
    )
    .await
    .unwrap();
    Dev { bundle, identity }
}

/// One sync pass of a test device holding `storage`.
async fn sync(dev: &Dev, storage: &MemStorage) -> Result<SessionOutcome, NetError> {
    let bundle = &dev.bundle;
    let conn = minqing_net::connect(
        bundle,
        &dev.identity,
        ConnectOptions {
            timeout: Duration::from_secs(10),
        },
    )
    .await?;
    let mut docs = Vec::new();
    for id in storage.docs().unwrap() {
        let doc = minqing_sync::load_doc(storage, &id).unwrap().unwrap();
        let state = storage.sync_state(&bundle.relay_name, &id).unwrap();
        docs.push((id, doc, state));
    }
    let mut session =
        minqing_sync::DeviceSession::new(SessionConfig::default(), &bundle.device_id, docs)
            .unwrap();
    let out = minqing_net::run_device_session(
        &conn,
        &mut session,
        storage,
        &bundle.relay_name,
        &mut |_| {},
    )
    .await;
    conn.close().await;
    out
}

fn doc_id(s: &str) -> DocId {
    DocId::new(s).unwrap()
}

/// Writes `key = value` into the `info` map of the device's copy of `village`,
/// as that device (its actor: the device id and an incarnation).
fn edit(storage: &MemStorage, device: &str, village: &str, key: &str, value: &str) {
    let id = doc_id(village);
    let doc = minqing_sync::load_doc(storage, &id).unwrap().unwrap();
    let mut am = AutoCommit::load(&doc.save()).unwrap();
    am.set_actor(minqing_sync::device_actor(
        device,
        minqing_sync::Incarnation::from_random([1, 2, 3, 4]),
    ));
    let heads = am.get_heads();
    let info = match am.get(automerge::ROOT, "info").unwrap() {
        Some((_, obj)) => obj,
        None => panic!("village {village} has no info map"),
    };
    am.put(&info, key, value).unwrap();
    am.commit();
    storage.append(&id, &am.save_after(&heads)).unwrap();
}

fn read(storage: &MemStorage, village: &str, key: &str) -> Option<String> {
    let doc = minqing_sync::load_doc(storage, &doc_id(village)).unwrap()?;
    let (_, info) = doc.get(automerge::ROOT, "info").unwrap()?;
    let (v, _) = doc.get(&info, key).unwrap()?;
    v.into_string().ok()
}

fn audit(home: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&ok(home, &["audit", "--json"])).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_serves_enrolled_devices_only_their_villages() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("relay");
    let listen = format!("127.0.0.1:{}", free_port());
    ok(&home, &["init", "--name", "县中继", "--listen", &listen]);
    for (id, name) in [("V1", "小河村"), ("V2", "大山村"), ("V3", "东风社区")] {
        ok(&home, &["village", "add", "--id", id, "--name", name]);
    }
    let (a_id, a) = enroll(&home, "王芳", "V1,V2");
    let (b_id, b) = enroll(&home, "李明", "V2");
    let server = Server::start(&home);
    let a = first_contact(a).await;
    let b = first_contact(b).await;

    // First sync: each device receives exactly its villages.
    let sa = MemStorage::new();
    let sb = MemStorage::new();
    let out = sync(&a, &sa).await.unwrap();
    assert_eq!(
        out.docs.keys().cloned().collect::<Vec<_>>(),
        [doc_id("V1"), doc_id("V2")]
    );
    assert!(
        out.docs
            .values()
            .all(|o| matches!(o, DocOutcome::Added { .. })),
        "{out:?}"
    );
    assert_eq!(sa.docs().unwrap(), [doc_id("V1"), doc_id("V2")]);
    assert_eq!(read(&sa, "V1", "name").as_deref(), Some("小河村"));
    sync(&b, &sb).await.unwrap();
    assert_eq!(sb.docs().unwrap(), [doc_id("V2")]);

    // Concurrent offline edits of the same village converge through the relay.
    edit(&sa, &a.bundle.device_id, "V2", "note_a", "王芳走访了三户");
    edit(&sb, &b.bundle.device_id, "V2", "note_b", "李明记录诉求");
    sync(&a, &sa).await.unwrap();
    sync(&b, &sb).await.unwrap();
    sync(&a, &sa).await.unwrap();
    for s in [&sa, &sb] {
        assert_eq!(read(s, "V2", "note_a").as_deref(), Some("王芳走访了三户"));
        assert_eq!(read(s, "V2", "note_b").as_deref(), Some("李明记录诉求"));
    }
    assert_eq!(sb.docs().unwrap(), [doc_id("V2")], "B never receives V1");

    // A device pushing a village it is not assigned: refused, audited, the rest goes on.
    let mut rogue = AutoCommit::new();
    rogue.put(automerge::ROOT, "info", "伪造").unwrap();
    sb.append(&doc_id("V3"), &rogue.save()).unwrap();
    edit(&sb, &b.bundle.device_id, "V2", "after_refusal", "仍然同步");
    let out = sync(&b, &sb).await.unwrap();
    // The relay refuses the first-flight message for V3 and lists only V2 in
    // `Welcome`, so the device also learns it holds a village it may not keep.
    assert!(
        matches!(
            out.docs[&doc_id("V3")],
            DocOutcome::Refused { .. } | DocOutcome::Removed
        ),
        "{out:?}"
    );
    assert!(
        matches!(out.docs[&doc_id("V2")], DocOutcome::InSync { .. }),
        "{out:?}"
    );
    let log = audit(&home);
    assert!(
        log.iter().any(|e| e["kind"] == "refused_village"
            && e["village"] == "V3"
            && e["device_id"] == b_id.as_str()),
        "{log:#?}"
    );
    sync(&a, &sa).await.unwrap();
    assert_eq!(
        read(&sa, "V2", "after_refusal").as_deref(),
        Some("仍然同步")
    );
    assert_eq!(
        sa.docs().unwrap(),
        [doc_id("V1"), doc_id("V2")],
        "A never receives V3"
    );

    // Reassignment: A loses V1 and gains V3.
    ok(&home, &["assign", &a_id[..8], "--villages", "V2,V3"]);
    let out = sync(&a, &sa).await.unwrap();
    assert_eq!(out.docs[&doc_id("V1")], DocOutcome::Removed, "{out:?}");
    assert!(
        matches!(out.docs[&doc_id("V3")], DocOutcome::Added { .. }),
        "{out:?}"
    );
    assert_eq!(sa.docs().unwrap(), [doc_id("V2"), doc_id("V3")]);
    // The relay's V3 is intact: B's refused change was never applied.
    assert_eq!(read(&sa, "V3", "name").as_deref(), Some("东风社区"));

    // Revocation while the relay runs: the next connection is refused, audited.
    ok(&home, &["revoke", &b_id]);
    let err = sync(&b, &sb).await.unwrap_err();
    assert!(err.is_refused(), "{err:?}");
    assert!(err.to_string().contains("revoked or not enrolled"), "{err}");
    // The relay writes the line on a worker thread just after the refusal.
    let mut log = audit(&home);
    for _ in 0..100 {
        if log
            .iter()
            .any(|e| e["kind"] == "refused_handshake" && e["device_id"] == b_id.as_str())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        log = audit(&home);
    }
    assert!(
        log.iter()
            .any(|e| e["kind"] == "refused_handshake" && e["device_id"] == b_id.as_str()),
        "{log:#?}"
    );

    // A laptop enrolled with another relay is refused too.
    let other = tempfile::tempdir().unwrap();
    let other_home = other.path().join("relay");
    ok(
        &other_home,
        &["init", "--name", "别的中继", "--listen", &listen],
    );
    ok(
        &other_home,
        &["village", "add", "--id", "V1", "--name", "小河村"],
    );
    // (Its certificate comes straight from the other relay's CA: that relay
    // is not running to answer a first contact.)
    let (_, mut stranger_bundle) = enroll(&other_home, "张三", "V1");
    let read = |f: &str| std::fs::read_to_string(other_home.join("ca").join(f)).unwrap();
    // The CA key is sealed with the operator passphrase (docs/security.md).
    let ca_key = minqing_store::sealed::read(
        &other_home.join("ca").join("ca.key"),
        "relay-ca-key",
        minqing_store::sealed::OpenWith::Passphrase(
            &minqing_store::secret::Passphrase::from_file(&passphrase_file()).unwrap(),
        ),
    )
    .unwrap();
    let other_ca = minqing_net::RelayCa::load(
        "别的中继",
        &read("ca.pem"),
        std::str::from_utf8(&ca_key).unwrap(),
    )
    .unwrap();
    let issued = other_ca
        .issue_device(
            &stranger_bundle.device_id,
            minqing_net::Validity::from_now(Duration::from_secs(86_400)),
        )
        .unwrap();
    stranger_bundle.ca_cert_pem = a.bundle.ca_cert_pem.clone();
    let stranger = Dev {
        bundle: stranger_bundle,
        identity: Identity {
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        },
    };
    let err = sync(&stranger, &MemStorage::new()).await.unwrap_err();
    assert!(err.is_refused(), "{err:?}");

    // SIGTERM: graceful, exit 0; the last sync is recorded.
    server.signal("TERM");
    let mut server = server;
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let devices: serde_json::Value =
        serde_json::from_str(&ok(&home, &["devices", "--json"])).unwrap();
    let a_row = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == a_id.as_str())
        .unwrap();
    assert!(a_row["last_sync"].is_string(), "{a_row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_with_sigkill_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("relay");
    let listen = format!("127.0.0.1:{}", free_port());
    ok(&home, &["init", "--name", "县中继", "--listen", &listen]);
    ok(&home, &["village", "add", "--id", "V1", "--name", "小河村"]);
    let (_, a) = enroll(&home, "王芳", "V1");
    let (_, c) = enroll(&home, "赵六", "V1");
    let server = Server::start(&home);
    let a = first_contact(a).await;
    let c = first_contact(c).await;
    let sa = MemStorage::new();
    sync(&a, &sa).await.unwrap();
    for i in 0..20 {
        edit(
            &sa,
            &a.bundle.device_id,
            "V1",
            &format!("visit{i}"),
            &format!("第{i}次走访"),
        );
        sync(&a, &sa).await.unwrap();
    }
    server.signal("KILL");
    drop(server);

    let server = Server::start(&home);
    let sc = MemStorage::new();
    sync(&c, &sc).await.unwrap();
    for i in 0..20 {
        assert_eq!(
            read(&sc, "V1", &format!("visit{i}")),
            Some(format!("第{i}次走访")),
            "visit {i} was acknowledged before the kill"
        );
    }
    drop(server);
}
