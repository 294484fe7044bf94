//! The soak: 1,000 phones upload, round after round, to a server that is
//! SIGKILLed and restarted every second or so while some phones' connections
//! drop mid-request (a request cut off halfway, or sent whole and hung up
//! on before the answer). Each phone retries with the same idempotency key
//! until it has an acknowledgement. A round closes when all 1,000 are in, so
//! every phone's answer is definite: each round's published model must be
//! exactly the aggregate of all 1,000 updates, each counted once (a lost
//! update would leave the round open for ever, a doubled one would show in
//! the model).
//!
//! The server runs as a child: this binary re-runs itself with `--exact
//! soak_child` (`common::child`), as crash.rs does.
//! `FEDMR_SOAK_PHONES` / `FEDMR_SOAK_ROUNDS` change the size (1,000 × 3).

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::child::{self, ChildServer};
use common::*;
use fedmr_core::aggregate::{Aggregator, DEFAULT_SAMPLE_CAP, ServerOptimizer, ServerStep};
use fedmr_core::model::GlobalModel;
use fedmr_core::model::params::Tensors;
use fedmr_core::rng::Rng;
use fedmr_core::wire::{ModelMessage, RoundMessage, UpdateMessage};

/// Threads posting for the phones.
const WORKERS: usize = 16;
/// Share of uploads whose first attempt drops its connection.
const DROP_SHARE: f64 = 0.05;

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn soak_child() {
    child::serve_as_child(u32::MAX);
}

/// The server child of this test; a round closes with all `phones`.
fn start_child(dir: &Path, phones: usize) -> ChildServer {
    ChildServer::start("soak_child", dir, phones as u32)
}

fn agent() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Phone `i`'s update on model `version`: distinct per phone and round.
fn make_update(base: &GlobalModel, version: u64, i: usize) -> UpdateMessage {
    let mut rng = Rng::derive(version, &[0x50a4, i as u64]);
    let rows = 1 + rng.below(4) as usize;
    let mut ids: Vec<u32> = (0..base.n_items() as u32).collect();
    rng.shuffle(&mut ids);
    ids.truncate(rows);
    ids.sort_unstable();
    UpdateMessage {
        round: version,
        base_version: version,
        idempotency_key: format!("phone-{i}-round-{version}"),
        samples: 1 + rng.below(40),
        item_ids: ids,
        item_rows: (0..rows * base.dim())
            .map(|_| (rng.normal() * 0.05) as f32)
            .collect(),
        dense: (0..base.dense.num_params())
            .map(|_| (rng.normal() * 0.01) as f32)
            .collect(),
    }
}

/// A request that never gets its answer: half of it, or all of it and then
/// the connection closed before the status line is read.
fn drop_connection(url: &str, token: &str, body: &[u8], whole: bool) {
    let addr = url.trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return;
    };
    let head = format!(
        "POST /v1/updates HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let sent = if whole { body } else { &body[..body.len() / 2] };
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(sent);
    let _ = stream.flush();
    // Dropped here: the server sees the connection close.
}

/// Retries `f` until the (possibly restarting) server answers.
fn until_ok<T>(url: &RwLock<String>, mut f: impl FnMut(&str) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let current = url.read().unwrap().clone();
        if let Some(t) = f(&current) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not answer for 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fetch_model(
    http: &reqwest::blocking::Client,
    url: &str,
    token: &str,
) -> Option<(u64, GlobalModel)> {
    let r = http
        .get(format!("{url}/v1/model"))
        .bearer_auth(token)
        .send()
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let (header, global) = ModelMessage::decode(&r.bytes().ok()?).ok()?;
    Some((header.version, global))
}

fn fetch_round(http: &reqwest::blocking::Client, url: &str, token: &str) -> Option<RoundMessage> {
    let r = http
        .get(format!("{url}/v1/round"))
        .bearer_auth(token)
        .send()
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    RoundMessage::decode(&r.bytes().ok()?).ok()
}

#[test]
fn a_thousand_phones_upload_through_restarts_and_dropped_connections() {
    if child::in_child() {
        return;
    }
    let phones = size("FEDMR_SOAK_PHONES", 1000);
    let rounds = size("FEDMR_SOAK_ROUNDS", 3) as u64;
    let dir = TempDir::new("soak");
    let first = start_child(&dir.0, phones);
    let http = agent();
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..phones)
            .map(|i| {
                let r = http
                    .post(format!("{}/v1/admin/clients", first.url))
                    .bearer_auth(ADMIN)
                    .body(format!("phone-{i}"))
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 201);
                r.text().unwrap()
            })
            .collect(),
    );
    let url = Arc::new(RwLock::new(first.url.clone()));
    let server = Arc::new(std::sync::Mutex::new(Some(first)));
    let done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let acks = Arc::new(AtomicUsize::new(0));
    // Kills at seeded points of progress (every 150-450 acknowledgements),
    // so the soak restarts the server however fast this machine is.
    let killer = {
        let (url, server, done, kills, dir, acks) = (
            url.clone(),
            server.clone(),
            done.clone(),
            kills.clone(),
            dir.0.clone(),
            acks.clone(),
        );
        std::thread::spawn(move || {
            let mut rng = Rng::new(0x50a4);
            let mut at = 0;
            loop {
                at += 150 + rng.below(300) as usize;
                while acks.load(Ordering::SeqCst) < at && !done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(2));
                }
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let mut slot = server.lock().unwrap();
                drop(slot.take()); // SIGKILL and reap
                kills.fetch_add(1, Ordering::SeqCst);
                let next = start_child(&dir, phones);
                *url.write().unwrap() = next.url.clone();
                *slot = Some(next);
            }
        })
    };

    let mut dropped = 0usize;
    let mut duplicates = 0usize;
    for version in 1..=rounds {
        let (v, base) = until_ok(&url, |u| fetch_model(&http, u, &tokens[0]));
        assert_eq!(v, version, "the model version before round {version}");
        let base = Arc::new(base);
        let next = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (url, tokens, next, base, acks) = (
                    url.clone(),
                    tokens.clone(),
                    next.clone(),
                    base.clone(),
                    acks.clone(),
                );
                std::thread::spawn(move || {
                    let http = agent();
                    let mut rng = Rng::derive(version, &[0xd0, w as u64]);
                    let (mut dropped, mut duplicates) = (0, 0);
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= tokens.len() {
                            return (dropped, duplicates);
                        }
                        let body = make_update(&base, version, i).encode();
                        if rng.uniform() < DROP_SHARE {
                            let current = url.read().unwrap().clone();
                            drop_connection(&current, &tokens[i], &body, rng.below(2) == 0);
                            dropped += 1;
                        }
                        let status = until_ok(&url, |u| {
                            let r = http
                                .post(format!("{u}/v1/updates"))
                                .bearer_auth(&tokens[i])
                                .body(body.clone())
                                .send()
                                .ok()?;
                            match r.status().as_u16() {
                                s @ (200 | 202) => Some(s),
                                // The server is starting or shutting down.
                                500..=599 => None,
                                s => panic!(
                                    "phone {i}, round {version}: {s} {}",
                                    r.text().unwrap_or_default()
                                ),
                            }
                        });
                        acks.fetch_add(1, Ordering::SeqCst);
                        if status == 200 {
                            duplicates += 1;
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            let (d, dup) = w.join().unwrap();
            dropped += d;
            duplicates += dup;
        }
        // Every phone holds an acknowledgement: the round must close.
        until_ok(&url, |u| {
            fetch_round(&http, u, &tokens[0]).filter(|r| r.base_version == version + 1)
        });
        let (v, published) = until_ok(&url, |u| fetch_model(&http, u, &tokens[0]));
        assert_eq!(v, version + 1);
        let mut expected = (*base).clone();
        let mut aggregator =
            Aggregator::new(&base, model_config().backbone).with_sample_cap(DEFAULT_SAMPLE_CAP);
        for i in 0..phones {
            let update = make_update(&base, version, i)
                .to_update(base.dim())
                .unwrap();
            aggregator.add(&base, &update).unwrap();
        }
        aggregator.apply(
            &mut expected,
            &mut ServerOptimizer::new(&ServerStep::Plain { lr: 1.0 }),
        );
        let difference = fedmr_test_support::max_difference(&published, &expected);
        eprintln!(
            "round {version}: {phones} phones, model difference to every update counted once: {difference:.2e}"
        );
        assert!(difference <= 1e-5, "round {version}: {difference}");
    }
    done.store(true, Ordering::SeqCst);
    killer.join().unwrap();
    let kills = kills.load(Ordering::SeqCst);
    eprintln!(
        "soak: {phones} phones x {rounds} rounds through {kills} SIGKILL restarts, \
         {dropped} dropped connections, {duplicates} retries answered as duplicates"
    );
    assert!(kills >= 2, "the server was killed only {kills} times");
    assert!(dropped > 0);
}
