//! Crash safety: a server killed with SIGKILL while updates are in flight,
//! then restarted on the same data directory, resumes its open round with
//! every acknowledged (202) update in it exactly once, and the round it
//! finally closes aggregates exactly the stored updates in arrival order.
//!
//! The server runs in a child process: this test binary re-runs itself with
//! `--exact crash_child` and the data directory in `CHILD_DIR`; that test is
//! a no-op unless the variable is set. The parent posts distinct updates
//! from a few threads (one client token per update: one update per client
//! per round), kills the child at a seeded random moment, restarts it and
//! checks the resumed round, several times over, then lets the round close
//! and compares the published model with one aggregated in-process.
//!
//! `FEDMR_CRASH_SEED` overrides the seed of the kill points and updates.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::child::{self, ChildServer};
use common::*;
use fedmr_core::aggregate::{Aggregator, ServerOptimizer, ServerStep};
use fedmr_core::model::GlobalModel;
use fedmr_core::model::params::Tensors;
use fedmr_core::rng::Rng;
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::{ModelMessage, RoundMessage, UpdateMessage};
use fedmr_server::db::ServerDb;
use fedmr_server::genesis_from_dataset;

/// Kill-and-restart cycles before the round is allowed to close.
const KILLS: usize = 4;
/// Threads posting concurrently: at most this many posts can be in flight
/// (sent, no status seen) when the server dies.
const POSTERS: usize = 3;
/// Client tokens issued up front; one per update.
const CLIENTS: usize = 3000;
/// Updates posted, one by one, to close the round at the end.
const EXTRA: usize = 2;
/// The round of every update until the final close (the genesis model).
const BASE: u64 = 1;
/// Large enough that no round closes while the server is being killed.
const NEVER: u32 = 1_000_000;

/// The server process. Run only as a child of `resumes_after_sigkill`.
#[test]
fn crash_child() {
    child::serve_as_child(NEVER);
}

/// The server child of this test.
fn start_child(dir: &Path, min_updates: u32) -> ChildServer {
    ChildServer::start("crash_child", dir, min_updates)
}

fn client_id(i: usize) -> String {
    format!("crash-client-{i}")
}

fn key(i: usize) -> String {
    format!("crash-key-{i}")
}

fn agent() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The shape updates must have: the genesis model every child starts from.
struct Shape {
    n_items: usize,
    dim: usize,
    dense: usize,
}

/// Client `i`'s update for the genesis round: distinct per client, random
/// (not exactly representable sums, so aggregation order shows in the bits).
fn make_update(shape: &Shape, seed: u64, i: usize) -> UpdateMessage {
    let mut rng = Rng::derive(seed, &[0xc0ffee, i as u64]);
    let rows = 1 + rng.below(6) as usize;
    let mut ids: Vec<u32> = (0..shape.n_items as u32).collect();
    rng.shuffle(&mut ids);
    ids.truncate(rows);
    ids.sort_unstable();
    UpdateMessage {
        round: BASE,
        base_version: BASE,
        idempotency_key: key(i),
        samples: 1 + rng.below(40),
        item_ids: ids,
        item_rows: (0..rows * shape.dim)
            .map(|_| (rng.normal() * 0.05) as f32)
            .collect(),
        dense: (0..shape.dense)
            .map(|_| (rng.normal() * 0.01) as f32)
            .collect(),
    }
}

fn post(http: &reqwest::blocking::Client, url: &str, token: &str, body: Vec<u8>) -> u16 {
    let response = http
        .post(format!("{url}/v1/updates"))
        .bearer_auth(token)
        .body(body)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    let _ = response.bytes();
    status
}

fn round(http: &reqwest::blocking::Client, url: &str, token: &str) -> RoundMessage {
    let response = http
        .get(format!("{url}/v1/round"))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    RoundMessage::decode(&response.bytes().unwrap()).unwrap()
}

fn metric(http: &reqwest::blocking::Client, url: &str, name: &str) -> u64 {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

fn model(http: &reqwest::blocking::Client, url: &str, token: &str) -> (u64, GlobalModel) {
    let response = http
        .get(format!("{url}/v1/model"))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let (header, global) = ModelMessage::decode(&response.bytes().unwrap()).unwrap();
    (header.version, global)
}

/// What the posting threads saw before the server died.
#[derive(Default)]
struct PhaseLog {
    /// Clients whose update got a 202.
    acked: Vec<usize>,
    /// Clients whose post got no status (the connection died): stored or not.
    in_flight: Vec<usize>,
    /// Any other answer: a failure.
    unexpected: Vec<(usize, u16)>,
}

/// Posts fresh updates from `POSTERS` threads until the server dies (or
/// the tokens run out).
fn post_until_killed(
    url: &str,
    tokens: &Arc<Vec<String>>,
    next: &Arc<AtomicUsize>,
    shape: &Arc<Shape>,
    seed: u64,
) -> Vec<std::thread::JoinHandle<PhaseLog>> {
    (0..POSTERS)
        .map(|_| {
            let (url, tokens, next, shape) =
                (url.to_string(), tokens.clone(), next.clone(), shape.clone());
            std::thread::spawn(move || {
                let http = agent();
                let mut log = PhaseLog::default();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= tokens.len() {
                        return log;
                    }
                    let body = make_update(&shape, seed, i).encode();
                    let sent = http
                        .post(format!("{url}/v1/updates"))
                        .bearer_auth(&tokens[i])
                        .body(body)
                        .send();
                    match sent {
                        // The status line is the acknowledgement; the body
                        // may be lost with the connection.
                        Ok(r) if r.status() == 202 => log.acked.push(i),
                        Ok(r) => {
                            log.unexpected.push((i, r.status().as_u16()));
                            return log;
                        }
                        Err(_) => {
                            log.in_flight.push(i);
                            return log;
                        }
                    }
                }
            })
        })
        .collect()
}

/// The open round's stored updates, in arrival order, read from a copy of
/// the dead server's files (so the next child still recovers the original
/// write-ahead log itself).
fn stored_updates(data_dir: &Path, scratch: &Path) -> Vec<(usize, String, Vec<u8>)> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).unwrap();
    for name in ["server.sqlite", "server.sqlite-wal"] {
        let from = data_dir.join(name);
        if from.exists() {
            std::fs::copy(&from, scratch.join(name)).unwrap();
        }
    }
    // The round files hold the payloads (`round_log.rs`).
    let rounds = data_dir.join("server.sqlite-rounds");
    if let Ok(files) = std::fs::read_dir(&rounds) {
        let to = scratch.join("server.sqlite-rounds");
        std::fs::create_dir_all(&to).unwrap();
        for file in files.flatten() {
            std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
        }
    }
    let db = ServerDb::open(
        &scratch.join("server.sqlite"),
        fedmr_server::Durability::Normal,
    )
    .unwrap();
    let rows = db
        .updates_of(BASE)
        .unwrap()
        .into_iter()
        .map(|u| {
            let i = u
                .client
                .strip_prefix("crash-client-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unknown client {}", u.client));
            (i, u.idempotency_key, u.payload)
        })
        .collect();
    drop(db);
    let _ = std::fs::remove_dir_all(scratch);
    rows
}

/// After a restart: the resumed round holds every acknowledged update once,
/// plus possibly some of the posts that were in flight; retries of the
/// acknowledged ones are duplicates; retries of the in-flight ones tell
/// which of them had been stored, and must agree with the count. On return
/// every update in `acked` and `in_flight` is in the round (`in_flight` is
/// moved into `acked`). Returns the in-flight updates that were not stored
/// and are now, in the order they were added.
fn check_resumed(
    server: &ChildServer,
    http: &reqwest::blocking::Client,
    tokens: &[String],
    acked: &mut Vec<usize>,
    in_flight: &mut Vec<usize>,
    expect_stored: &BTreeSet<usize>,
    bodies: impl Fn(usize) -> Vec<u8>,
) -> Vec<usize> {
    let url = &server.url;
    let resumed = round(http, url, &tokens[0]);
    assert_eq!(resumed.base_version, BASE, "no round may have closed");
    let accepted = resumed.accepted as usize;
    assert!(
        accepted >= acked.len(),
        "{} updates were acknowledged (202) but the resumed round has {accepted}",
        acked.len()
    );
    assert!(
        accepted <= acked.len() + in_flight.len(),
        "the resumed round has {accepted} updates; only {} were acknowledged and {} in flight",
        acked.len(),
        in_flight.len()
    );
    assert_eq!(
        metric(http, url, "fedmr_round_updates") as usize,
        accepted,
        "metrics gauge after the restart"
    );

    // Every acknowledged update, again: a duplicate, never a new one.
    for &i in acked.iter() {
        let status = post(http, url, &tokens[i], bodies(i));
        assert_eq!(status, 200, "retry of acknowledged update {i}");
    }
    assert_eq!(
        round(http, url, &tokens[0]).accepted as usize,
        accepted,
        "retries of acknowledged updates changed the count"
    );
    assert_eq!(
        metric(http, url, "fedmr_updates_duplicate_total") as usize,
        acked.len()
    );
    // Another update from an acknowledged client is refused.
    if let Some(&i) = acked.first() {
        let mut other = UpdateMessage::decode(&bodies(i)).unwrap();
        other.idempotency_key = format!("{}-other", other.idempotency_key);
        assert_eq!(post(http, url, &tokens[i], other.encode()), 409);
    }

    // The posts in flight at the kill: a retry is a duplicate exactly when
    // the dead server had stored it.
    let known = acked.len();
    let mut were_stored = 0;
    let mut added = Vec::new();
    for i in in_flight.drain(..) {
        match post(http, url, &tokens[i], bodies(i)) {
            200 => {
                assert!(
                    expect_stored.contains(&i),
                    "update {i} is a duplicate but was not stored"
                );
                were_stored += 1;
            }
            202 => {
                assert!(
                    !expect_stored.contains(&i),
                    "stored update {i} was accepted again"
                );
                added.push(i);
            }
            other => panic!("retry of in-flight update {i}: status {other}"),
        }
        acked.push(i);
    }
    assert_eq!(
        accepted,
        known + were_stored,
        "the resumed count does not match which in-flight updates were stored"
    );
    assert_eq!(
        round(http, url, &tokens[0]).accepted as usize,
        acked.len(),
        "after retrying the in-flight updates"
    );
    added
}

#[test]
fn resumes_after_sigkill_without_losing_or_repeating_updates() {
    let seed = std::env::var("FEDMR_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_240_611_u64);
    let started = Instant::now();
    let dir = TempDir::new("crash");
    let scratch = TempDir::new("crash-copy");
    let genesis = genesis_from_dataset(&dataset(), &model_config(), &TrainConfig::default(), 1)
        .unwrap()
        .global;
    let shape = Arc::new(Shape {
        n_items: genesis.n_items(),
        dim: genesis.dim(),
        dense: genesis.dense.num_params(),
    });
    let bodies = {
        let shape = shape.clone();
        move |i: usize| make_update(&shape, seed, i).encode()
    };
    let http = agent();
    let mut rng = Rng::new(seed);

    // Clients whose update is known to be in the round (202, or a retry
    // after the kill), and posts whose answer the kill swallowed.
    let mut acked: Vec<usize> = Vec::new();
    let mut in_flight: Vec<usize> = Vec::new();
    let mut stored_before_kill = BTreeSet::new();
    let mut tokens = Arc::new(Vec::new());
    let next = Arc::new(AtomicUsize::new(0));
    let mut last_stored = Vec::new();

    for kill in 0..=KILLS {
        let last = kill == KILLS;
        // The last start closes the round: it takes everything stored so
        // far, the unstored in-flight retries, and EXTRA new updates.
        let min_updates = if last {
            let unstored = in_flight
                .iter()
                .filter(|i| !stored_before_kill.contains(*i))
                .count();
            (last_stored.len() + unstored + EXTRA) as u32
        } else {
            NEVER
        };
        let server = start_child(&dir.0, min_updates);
        if kill == 0 {
            tokens = Arc::new(
                (0..CLIENTS)
                    .map(|i| {
                        let r = http
                            .post(format!("{}/v1/admin/clients", server.url))
                            .bearer_auth(ADMIN)
                            .body(client_id(i))
                            .send()
                            .unwrap();
                        assert_eq!(r.status(), 201);
                        r.text().unwrap()
                    })
                    .collect(),
            );
            eprintln!("issued {CLIENTS} tokens in {:.1?}", started.elapsed());
            let (version, published) = model(&http, &server.url, &tokens[0]);
            assert_eq!(version, BASE);
            assert_eq!(published, genesis, "the test's genesis is the server's");
        } else {
            let added = check_resumed(
                &server,
                &http,
                &tokens,
                &mut acked,
                &mut in_flight,
                &stored_before_kill,
                &bodies,
            );
            // They come after everything the dead server had stored.
            last_stored.extend(added.into_iter().map(|i| (i, key(i), bodies(i))));
        }
        if last {
            // Close the round with EXTRA more updates, one at a time.
            for n in 0..EXTRA {
                let i = next.fetch_add(1, Ordering::SeqCst);
                assert!(i < CLIENTS, "ran out of client tokens");
                let r = http
                    .post(format!("{}/v1/updates", server.url))
                    .bearer_auth(&tokens[i])
                    .body(bodies(i))
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 202);
                let closed = r.text().unwrap().contains("\"round_closed\":true");
                assert_eq!(
                    closed,
                    n + 1 == EXTRA,
                    "round closed after extra update {n}"
                );
                acked.push(i);
                last_stored.push((i, key(i), bodies(i)));
            }
            let after = round(&http, &server.url, &tokens[0]);
            assert_eq!((after.base_version, after.accepted), (BASE + 1, 0));
            assert_eq!(metric(&http, &server.url, "fedmr_rounds_closed_total"), 1);

            // The published model is the genesis model plus the stored
            // updates, aggregated in arrival order, each exactly once.
            let (version, published) = model(&http, &server.url, &tokens[0]);
            assert_eq!(version, BASE + 1);
            assert_eq!(last_stored.len(), acked.len());
            let order: Vec<usize> = last_stored.iter().map(|(i, _, _)| *i).collect();
            let as_set: BTreeSet<usize> = order.iter().copied().collect();
            assert_eq!(as_set.len(), order.len(), "an update stored twice");
            assert_eq!(as_set, acked.iter().copied().collect::<BTreeSet<_>>());
            let expected = aggregate(&genesis, &order, |i| {
                make_update(&shape, seed, i).to_update(shape.dim).unwrap()
            });
            assert_ne!(expected, genesis);
            if published != expected {
                let diff = published
                    .items
                    .0
                    .0
                    .iter()
                    .zip(expected.items.0.0.iter())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                panic!(
                    "published model differs from the in-process aggregate (max item diff {diff})"
                );
            }
            // The same updates in another order give other bits, so the
            // comparison above does check the replay order.
            let mut reversed = order.clone();
            reversed.reverse();
            let other = aggregate(&genesis, &reversed, |i| {
                make_update(&shape, seed, i).to_update(shape.dim).unwrap()
            });
            assert_ne!(other, expected, "aggregation order left no trace");
            eprintln!(
                "crash test: {} updates aggregated as stored (seed {seed}) in {:.1?}",
                order.len(),
                started.elapsed()
            );
            break;
        }

        // Post from several threads and kill the server at a random moment.
        let posters = post_until_killed(&server.url, &tokens, &next, &shape, seed);
        let delay = Duration::from_millis(3 + rng.below(80));
        std::thread::sleep(delay);
        server.kill();
        let mut phase = PhaseLog::default();
        for p in posters {
            let log = p.join().unwrap();
            phase.acked.extend(log.acked);
            phase.in_flight.extend(log.in_flight);
            phase.unexpected.extend(log.unexpected);
        }
        assert!(
            phase.unexpected.is_empty(),
            "unexpected answers: {:?}",
            phase.unexpected
        );
        assert!(
            next.load(Ordering::SeqCst) < CLIENTS,
            "posters ran out of tokens before the kill; raise CLIENTS"
        );

        // What the dead server had stored: every acknowledged update (with
        // the bytes that were posted), possibly some in flight, nothing else.
        last_stored = stored_updates(&dir.0, &scratch.0);
        acked.extend(&phase.acked);
        in_flight = phase.in_flight.clone();
        let mut stored: BTreeMap<usize, usize> = BTreeMap::new();
        for (i, k, payload) in &last_stored {
            *stored.entry(*i).or_default() += 1;
            assert_eq!(*k, key(*i), "idempotency key of {i}");
            assert!(*payload == bodies(*i), "stored bytes of update {i}");
        }
        assert!(stored.values().all(|&n| n == 1), "an update stored twice");
        for i in &acked {
            assert!(stored.contains_key(i), "acknowledged update {i} not stored");
        }
        stored_before_kill = stored
            .keys()
            .filter(|i| in_flight.contains(i))
            .copied()
            .collect();
        assert_eq!(
            stored.len(),
            acked.len() + stored_before_kill.len(),
            "stored updates that were neither acknowledged nor in flight"
        );
        eprintln!(
            "kill {kill} after {delay:?}: {} acknowledged in this run, {} in flight ({} of them stored); {} stored in all",
            phase.acked.len(),
            in_flight.len(),
            stored_before_kill.len(),
            stored.len()
        );
    }
}

/// The model the server should publish: `base` plus the updates of
/// `order`, through the core's aggregator and a plain server step.
fn aggregate(
    base: &GlobalModel,
    order: &[usize],
    update: impl Fn(usize) -> fedmr_core::update::ModelUpdate,
) -> GlobalModel {
    let mut aggregator = Aggregator::new(base, model_config().backbone);
    for &i in order {
        aggregator.add(base, &update(i)).unwrap();
    }
    let mut global = base.clone();
    aggregator.apply(
        &mut global,
        &mut ServerOptimizer::new(&ServerStep::Plain { lr: 1.0 }),
    );
    global
}
