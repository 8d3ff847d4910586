//! `mq-hostile`: a small hostile laptop for the end-to-end tests of issue 9.
//! It uses an enrolled laptop's home (its bundle and its copy of a village),
//! builds one forged sync message, sends it to the relay over real QUIC with
//! the laptop's certificate, and prints what the relay answered. It also
//! damages a village in a laptop's store, to test quarantine.
//!
//! (front-door builds the full hostile QUIC client in `minqing-testkit`; this
//! stays small: one Hello, one Sync, read the answer.)
//!
//! ```text
//! mq-hostile HOME VILLAGE forged-actor DEVICE_ID   # a household written as DEVICE_ID
//! mq-hostile HOME VILLAGE bomb MIB                 # a compressed change of MIB MiB
//! mq-hostile HOME VILLAGE garbage                  # a valid change + a garbage chunk
//! mq-hostile HOME VILLAGE schema                   # root `residents` set to a string
//! mq-hostile HOME VILLAGE damage                   # append bytes that do not load
//! mq-hostile HOME VILLAGE inject-forged DEVICE_ID  # put a change by DEVICE_ID in HOME's store
//! ```
//! Output: one line per frame the relay sent (`welcome`, `sync N bytes`,
//! `refused CODE: REASON`, `error: MESSAGE`), then `end`.

use std::process::ExitCode;
use std::time::Duration;

use automerge::sync::{ChunkList, Have, Message, MessageVersion};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ROOT, ReadDoc};
use minqing_sync::frame::{DocHeads, Frame, FrameDecoder, Heads};
use minqing_sync::{DocId, Storage};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mq-hostile: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [home, village, attack, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: mq-hostile HOME VILLAGE ATTACK [ARG]");
    };
    let doc_id = DocId::new(village.clone())?;
    // Laptop homes are encrypted at rest: unlock with the passphrase file the
    // test support gives every command (MINQING_PASSPHRASE_FILE).
    let dir = std::path::Path::new(home).join("store");
    let store = if minqing_store::keyring::has_keyring(&dir) {
        let file = std::env::var_os("MINQING_PASSPHRASE_FILE")
            .ok_or_else(|| anyhow::anyhow!("MINQING_PASSPHRASE_FILE is not set"))?;
        let pass = minqing_store::secret::Passphrase::from_file(std::path::Path::new(&file))?;
        let ring = minqing_store::keyring::Keyring::load(&dir)?;
        let key = ring
            .open(&pass, &dir)?
            .ok_or_else(|| anyhow::anyhow!("the passphrase does not open {}", dir.display()))?;
        minqing_store::SledStorage::open_sealed(&dir, &key)?
    } else {
        minqing_store::SledStorage::open(&dir)?
    };
    if let ("inject-forged", [victim]) = (attack.as_str(), rest) {
        // A change written as another device, put in this laptop's own store:
        // the next `minqing sync` carries it (a store copied from another
        // laptop, or a bug, would do the same).
        let bytes = store
            .load(&doc_id)?
            .ok_or_else(|| anyhow::anyhow!("{home} does not hold {village}"))?;
        let mut am = Automerge::load(&bytes)?.with_actor(ActorId::from(victim.as_bytes()));
        let before = am.get_heads();
        let visits = am.get(ROOT, "visits")?.map(|(_, id)| id);
        let visits = visits.ok_or_else(|| anyhow::anyhow!("no visits map"))?;
        let mut tx = am.transaction();
        tx.put(&visits, "injected", "x")?;
        tx.commit();
        store.append(&doc_id, &am.save_after(&before))?;
        store.flush()?;
        println!("injected");
        return Ok(());
    }
    if attack == "damage" {
        store.append(&doc_id, b"\x85\x6f\x4a\x83 not an automerge document")?;
        store.flush()?;
        println!("damaged");
        return Ok(());
    }
    let raw = store
        .meta_get("relay_bundle")?
        .ok_or_else(|| anyhow::anyhow!("{home} is not enrolled"))?;
    // The laptop's key and certificate: in its meta (one-time enrolment), or
    // in the bundle itself (bundles of 5a5e579).
    let mut v: serde_json::Value = serde_json::from_slice(&raw)?;
    let identity = if v["format"] == "minqing-bundle/1" {
        v["format"] = serde_json::json!(minqing_net::BUNDLE_FORMAT);
        minqing_net::Identity {
            cert_pem: v["cert_pem"].as_str().unwrap_or_default().to_owned(),
            key_pem: v["key_pem"].as_str().unwrap_or_default().to_owned(),
        }
    } else {
        let raw = store
            .meta_get("relay_identity")?
            .ok_or_else(|| anyhow::anyhow!("{home} has no identity yet"))?;
        serde_json::from_slice(&raw)?
    };
    let bundle = minqing_net::Bundle::parse_unchecked(&v.to_string())?;
    let bytes = store
        .load(&doc_id)?
        .ok_or_else(|| anyhow::anyhow!("{home} does not hold {village}"))?;
    drop(store);
    let base = Automerge::load(&bytes)?;
    let own = bundle.device_id.as_bytes().to_vec();
    let (doc, chunks) = match (attack.as_str(), rest) {
        ("forged-actor", [victim]) => {
            let mut am = base.clone().with_actor(ActorId::from(victim.as_bytes()));
            let households = am.get(ROOT, "households")?.map(|(_, id)| id);
            let households = households.ok_or_else(|| anyhow::anyhow!("no households map"))?;
            let mut tx = am.transaction();
            let h = tx.put_object(&households, "zzzzzzzzzzzzzzzz", ObjType::Map)?;
            tx.put(&h, "address", "伪造的户")?;
            tx.put(&h, "cadre", "伪造")?;
            tx.put(&h, "device_id", victim.as_str())?;
            tx.put(&h, "created_at", 0i64)?;
            tx.commit();
            let c = am.get_last_local_change().map(|c| c.raw_bytes().to_vec());
            (am, vec![c.unwrap_or_default()])
        }
        ("bomb", [mib]) => {
            let mib: usize = mib.parse()?;
            let mut am = base.clone().with_actor(ActorId::from(own.clone()));
            let visits = am.get(ROOT, "visits")?.map(|(_, id)| id);
            let visits = visits.ok_or_else(|| anyhow::anyhow!("no visits map"))?;
            let mut tx = am.transaction();
            tx.put(&visits, "bomb", "a".repeat(mib << 20))?;
            tx.commit();
            let mut c = am
                .get_last_local_change()
                .ok_or_else(|| anyhow::anyhow!("no change"))?;
            let compressed = c.bytes().to_vec();
            eprintln!("bomb: {} bytes compressed", compressed.len());
            (am, vec![compressed])
        }
        ("garbage", []) => {
            let mut am = base.clone().with_actor(ActorId::from(own.clone()));
            let visits = am.get(ROOT, "visits")?.map(|(_, id)| id);
            let visits = visits.ok_or_else(|| anyhow::anyhow!("no visits map"))?;
            let mut tx = am.transaction();
            tx.put(&visits, "with-garbage", "x")?;
            tx.commit();
            let c = am.get_last_local_change().map(|c| c.raw_bytes().to_vec());
            let garbage = b"\x85\x6f\x4a\x83garbage-chunk".to_vec();
            (am, vec![c.unwrap_or_default(), garbage])
        }
        ("schema", []) => {
            let mut am = base.clone().with_actor(ActorId::from(own.clone()));
            let mut tx = am.transaction();
            tx.put(ROOT, "residents", "not a map")?;
            tx.commit();
            let c = am.get_last_local_change().map(|c| c.raw_bytes().to_vec());
            (am, vec![c.unwrap_or_default()])
        }
        _ => anyhow::bail!("unknown attack {attack} {rest:?}"),
    };
    let message = Message {
        heads: doc.get_heads(),
        need: Vec::new(),
        have: vec![Have::default()],
        changes: ChunkList::from(chunks),
        flags: None,
        version: MessageVersion::V1,
    }
    .encode();
    let mut out = Frame::hello(
        bundle.device_id.clone(),
        vec![DocHeads {
            doc: doc_id.clone(),
            heads: Heads::List(base.get_heads()),
        }],
    )
    .encode()?;
    out.extend(
        Frame::Sync {
            doc: doc_id,
            message,
        }
        .encode()?,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let conn = minqing_net::connect(&bundle, &identity, minqing_net::ConnectOptions::default())
            .await?;
        let (mut send, mut recv) = conn.connection.open_bi().await?;
        send.write_all(&out).await?;
        let mut dec = FrameDecoder::default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        'read: loop {
            let chunk = tokio::time::timeout_at(deadline, recv.read_chunk(1 << 20, true)).await;
            let Ok(Ok(Some(chunk))) = chunk else { break };
            dec.push(&chunk.bytes);
            while let Ok(Some(f)) = dec.next_frame() {
                match f {
                    Frame::Welcome { .. } => println!("welcome"),
                    Frame::Sync { message, .. } => println!("sync {} bytes", message.len()),
                    Frame::Refused { code, reason, .. } => {
                        println!("refused {code:?}: {reason}");
                        break 'read;
                    }
                    Frame::Error { message, .. } => {
                        println!("error: {message}");
                        break 'read;
                    }
                    other => println!("{}", other.kind_name()),
                }
            }
        }
        // The relay has applied (or refused) the message once it answered it.
        let _ = send.finish();
        conn.connection.close(0u32.into(), b"bye");
        conn.endpoint.wait_idle().await;
        println!("end");
        anyhow::Ok(())
    })
}
