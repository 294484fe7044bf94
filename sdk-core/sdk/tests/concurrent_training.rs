//! Trainings of one store never interleave: from two threads on one
//! `Client`, or from two `Client`s on one file (as two processes would
//! be), every call either commits a round on top of the previous one or is
//! refused with `Error::Busy` and writes nothing; and the outbox keeps one
//! update per model version, the newest.
//!
//! Before: two threads × 10 trainings left 12 rounds in the private state
//! and 20 updates queued (issue 15).

mod common;

use std::sync::Arc;

use common::client::*;
use common::small_dataset;
use fedmr_core::model::Backbone;
use fedmr_sdk::{Client, ClientConfig, Error, TrainOptions};

const PER_THREAD: usize = 10;

/// Trains `PER_THREAD` times on each client from its own thread; returns
/// (committed, refused as busy).
fn race(clients: Vec<Arc<Client>>) -> (usize, usize) {
    let handles: Vec<_> = clients
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let (mut ok, mut busy) = (0, 0);
                for _ in 0..PER_THREAD {
                    match c.train(&TrainOptions::default()) {
                        Ok(_) => ok += 1,
                        Err(Error::Busy(_)) => busy += 1,
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                (ok, busy)
            })
        })
        .collect();
    let (ok, busy) = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    eprintln!("{ok} rounds committed, {busy} refused as busy");
    (ok, busy)
}

fn with_history(c: &Client) {
    let batch: Vec<_> = (0..12u32).map(|i| like(i, i as i64)).collect();
    c.record_batch(&batch).unwrap();
}

#[test]
fn two_threads_on_one_client_never_lose_a_round() {
    let ds = small_dataset();
    let dir = TempDir::new("concurrent-one");
    let client = Arc::new(ready_client(&dir, &ds, Backbone::FedAvg));
    with_history(&client);
    let (ok, busy) = race(vec![client.clone(), client.clone()]);
    assert_eq!(ok + busy, 2 * PER_THREAD);
    let stats = client.stats().unwrap();
    assert_eq!(
        stats.rounds_trained as usize, ok,
        "every committed round, once"
    );
    assert_eq!(
        stats.pending_uploads, 1,
        "one update per model version, the newest"
    );
}

#[test]
fn two_clients_on_one_file_never_lose_a_round() {
    let ds = small_dataset();
    let dir = TempDir::new("concurrent-two");
    let first = Arc::new(ready_client(&dir, &ds, Backbone::Fcf));
    with_history(&first);
    let second = Arc::new(
        Client::open(ClientConfig {
            seed: Some(7),
            ..ClientConfig::new(dir.db())
        })
        .unwrap(),
    );
    let (ok, busy) = race(vec![first.clone(), second]);
    assert_eq!(ok + busy, 2 * PER_THREAD);
    let stats = first.stats().unwrap();
    assert_eq!(stats.rounds_trained as usize, ok);
    assert_eq!(stats.pending_uploads, 1);
}
