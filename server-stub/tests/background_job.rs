//! The background-job pattern of a real app, against a real server: each
//! run records what the user did, syncs, trains, and uploads only when the
//! network is up, several runs per round. The server must receive, for
//! every phone and round, exactly one update: the newest one trained on
//! that round's model (issue 15: it used to receive the oldest and refuse
//! the newer ones with 409).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::*;
use fedmr_core::privacy::Protection;
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::UpdateMessage;
use fedmr_sdk::{Client, ClientConfig, Interaction, InteractionKind, Remote, TrainOptions};
use fedmr_server::UploadObserver;

const PHONES: usize = 3;
const ROUNDS: u64 = 3;
const RUNS_PER_ROUND: usize = 3;

/// The (client, round) -> idempotency keys the server received.
#[derive(Default)]
struct Received(Mutex<HashMap<(String, u64), Vec<String>>>);

impl UploadObserver for Received {
    fn received(&self, client: &str, bytes: &[u8]) {
        if let Ok(m) = UpdateMessage::decode(bytes) {
            let mut seen = self.0.lock().unwrap();
            seen.entry((client.to_string(), m.round))
                .or_default()
                .push(m.idempotency_key);
        }
    }
}

#[test]
fn every_round_gets_each_phones_newest_update() {
    let server_dir = TempDir::new("job-server");
    let train = TrainConfig {
        protection: Protection::preset("hidden-count", 1.0).unwrap(),
        ..TrainConfig::default()
    };
    let server = start_training(&server_dir, train, |c| c.min_updates = PHONES as u32);
    let received = Arc::new(Received::default());
    assert!(server.core.observe(received.clone()));
    let dir = TempDir::new("job-phones");
    let phones: Vec<(Client, Remote)> = (0..PHONES)
        .map(|p| {
            let name = format!("phone-{p}");
            let client = Client::open(ClientConfig {
                seed: Some(p as u64),
                ..ClientConfig::new(dir.0.join(format!("{name}.sqlite")))
            })
            .unwrap();
            (client, Remote::new(server.url(), issue(&server, &name)))
        })
        .collect();

    let mut newest: HashMap<(String, u64), String> = HashMap::new();
    let mut t = 0i64;
    for round in 1..=ROUNDS {
        for run in 0..RUNS_PER_ROUND {
            let network_up = run == RUNS_PER_ROUND - 1;
            for (p, (phone, remote)) in phones.iter().enumerate() {
                t += 1;
                let item = (t as usize * 7 + p) % 50;
                phone
                    .record(Interaction {
                        item_key: fedmr_server::item_key(item),
                        kind: InteractionKind::Like,
                        timestamp_ms: t,
                    })
                    .unwrap();
                phone.sync(remote).unwrap();
                let report = phone.train(&TrainOptions::default()).unwrap();
                assert_eq!(report.base_version, round);
                newest.insert((format!("phone-{p}"), round), report.idempotency_key);
                assert_eq!(phone.stats().unwrap().pending_uploads, 1, "one per version");
                if network_up {
                    let up = phone.upload(remote).unwrap();
                    assert_eq!((up.delivered, up.dropped, up.remaining), (1, 0, 0));
                }
            }
        }
        assert_eq!(
            server.core.snapshot().version,
            round + 1,
            "round {round} closed"
        );
    }
    let received = received.0.lock().unwrap();
    for ((phone, round), key) in &newest {
        assert_eq!(
            received.get(&(phone.clone(), *round)),
            Some(&vec![key.clone()]),
            "{phone}, round {round}: the newest update, once"
        );
    }
    assert_eq!(received.len(), PHONES * ROUNDS as usize);
}
