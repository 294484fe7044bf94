//! What leaves the device: a whole client session (sync, record, train,
//! upload; three rounds) through a loopback proxy that keeps every byte the
//! client sends. None of it may contain an item key the user touched, a
//! timestamp they recorded, or any of their private parameters (router,
//! head). Undefended, the declared sample count gives the history length
//! away (README, "What the server learns", attack 3); under the hidden-count
//! defence every upload declares one sample, and that is checked here too.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::*;
use fedmr_core::privacy::Protection;
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::UpdateMessage;
use fedmr_sdk::{Client, ClientConfig, Interaction, InteractionKind, Remote, TrainOptions};

/// A TCP proxy on 127.0.0.1 in front of `upstream` that records every byte
/// its clients send.
fn tap(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = sent.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { break };
            let mut server = TcpStream::connect(upstream).unwrap();
            let (mut back_from, mut back_to) =
                (server.try_clone().unwrap(), client.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut back_from, &mut back_to);
                let _ = back_to.shutdown(Shutdown::Write);
            });
            let record = record.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 << 10];
                loop {
                    let n = match client.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                    if server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = server.shutdown(Shutdown::Write);
            });
        }
    });
    (addr, sent)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_client_session_sends_no_key_timestamp_or_private_parameter() {
    let (_dir, uploads) = audited_session(TrainConfig::default());
    // Undefended: the count is the history's (6 positives + 6 negatives).
    for body in &uploads {
        assert_eq!(UpdateMessage::decode(body).unwrap().samples, 12);
    }
}

#[test]
fn under_the_hidden_count_no_upload_says_how_much_the_user_did() {
    let train = TrainConfig {
        protection: Protection::preset("combined", 1.0).unwrap(),
        ..TrainConfig::default()
    };
    let (_dir, uploads) = audited_session(train);
    for body in &uploads {
        assert_eq!(UpdateMessage::decode(body).unwrap().samples, 1);
    }
}

/// Three rounds of one client of a server publishing `train`, through the
/// tap, with every check that holds whatever the defences; returns the
/// update bodies sent.
fn audited_session(train: TrainConfig) -> (TempDir, Vec<Vec<u8>>) {
    let dir = TempDir::new("wire-audit");
    let server = start_training(&dir, train, |c| c.min_updates = 1);
    let token = issue(&server, "phone-1");
    let upstream = server.addr;
    let (proxy, sent) = tap(upstream);
    let remote = Remote::new(format!("http://{proxy}"), &token);
    let phone = Client::open(ClientConfig {
        seed: Some(9),
        ..ClientConfig::new(dir.0.join("phone.sqlite"))
    })
    .unwrap();

    let items = [3usize, 7, 11, 19, 23, 42];
    let timestamps: Vec<i64> = (0..items.len() as i64)
        .map(|t| 1_712_345_678_901 + 7_919 * t)
        .collect();
    let interactions: Vec<Interaction> = items
        .iter()
        .zip(&timestamps)
        .map(|(&i, &t)| Interaction {
            item_key: fedmr_server::item_key(i),
            kind: InteractionKind::Like,
            timestamp_ms: t,
        })
        .collect();
    phone.record_batch(&interactions).unwrap();
    let mut uploads = Vec::new();
    for round in 1..=3 {
        phone.sync(&remote).unwrap();
        phone.train(&TrainOptions::default()).unwrap();
        uploads.extend(
            phone
                .pending_uploads()
                .unwrap()
                .into_iter()
                .map(|u| u.bytes),
        );
        let report = phone.upload(&remote).unwrap();
        assert_eq!(report.delivered, 1, "round {round}: {report:?}");
    }
    let sent = sent.lock().unwrap().clone();

    // The tap saw the session: every update body went through it.
    assert_eq!(uploads.len(), 3);
    for body in &uploads {
        assert!(contains(&sent, body), "an upload did not pass the tap");
    }
    for i in &interactions {
        assert!(
            !contains(&sent, i.item_key.as_bytes()),
            "item key {} left the device",
            i.item_key
        );
    }
    for t in &timestamps {
        assert!(
            !contains(&sent, &t.to_le_bytes()),
            "timestamp {t} left the device (binary)"
        );
        assert!(
            !contains(&sent, t.to_string().as_bytes()),
            "timestamp {t} left the device (text)"
        );
    }
    // The private parameters as the export shows them: no two consecutive
    // ones (8 bytes) appear anywhere in what was sent.
    let export: serde_json::Value = serde_json::from_str(&phone.export().unwrap()).unwrap();
    let private: Vec<f32> = export["private_model"]["parameters"]
        .as_array()
        .expect("private parameters in the export")
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert!(private.len() > 8, "{} private values", private.len());
    for pair in private.windows(2) {
        let bytes: Vec<u8> = pair.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(
            !contains(&sent, &bytes),
            "private parameters {pair:?} left the device"
        );
    }
    drop(server);
    (dir, uploads)
}
