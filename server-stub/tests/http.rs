//! The HTTP API against a real server on 127.0.0.1:0: every refusal has its
//! status and leaves the server's state unchanged; downloads are
//! conditional; rounds close by count and by deadline; a client's updates
//! wait while the server is down and arrive once.

mod common;

use std::time::Duration;

use common::*;
use fedmr_sdk::Remote;
use fedmr_sdk::{Client, ClientConfig, Error, Interaction, InteractionKind, TrainOptions};
use fedmr_server::NormPolicy;

fn client(dir: &TempDir, name: &str) -> Client {
    Client::open(ClientConfig {
        seed: Some(3),
        ..ClientConfig::new(dir.0.join(format!("{name}.sqlite")))
    })
    .unwrap()
}

fn record_some(c: &Client) {
    let batch: Vec<_> = [1usize, 4, 9, 16]
        .iter()
        .enumerate()
        .map(|(t, &i)| Interaction {
            item_key: fedmr_server::item_key(i),
            kind: InteractionKind::Like,
            timestamp_ms: t as i64,
        })
        .collect();
    c.record_batch(&batch).unwrap();
}

#[test]
fn health_metrics_and_conditional_downloads() {
    let dir = TempDir::new("http-sync");
    let server = start(&dir, |_| {});
    let http = http();
    assert_eq!(
        http.get(format!("{}/healthz", server.url()))
            .send()
            .unwrap()
            .status(),
        200
    );
    let metrics = http
        .get(format!("{}/metrics", server.url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("fedmr_rounds_closed_total 0"), "{metrics}");

    let token = issue(&server, "phone-1");
    let remote = Remote::new(server.url(), &token);
    let phone = client(&dir, "phone-1");
    let first = phone.sync(&remote).unwrap();
    assert!(first.catalog_updated && first.model_updated);
    assert!(first.bytes_downloaded > 0);
    let again = phone.sync(&remote).unwrap();
    assert_eq!(
        (
            again.catalog_updated,
            again.model_updated,
            again.bytes_downloaded
        ),
        (false, false, 0)
    );
    let s = phone.stats().unwrap();
    assert_eq!((s.catalog_version, s.model_version), (Some(1), Some(1)));
}

#[test]
fn tokens_are_required_and_checked() {
    let dir = TempDir::new("http-auth");
    let server = start(&dir, |_| {});
    let token = issue(&server, "phone-1");
    let http = http();
    for path in ["/v1/catalog", "/v1/model", "/v1/round"] {
        let none = http.get(format!("{}{path}", server.url())).send().unwrap();
        assert_eq!(none.status(), 401, "{path}");
        let wrong = http
            .get(format!("{}{path}", server.url()))
            .bearer_auth("nope")
            .send()
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        let ok = http
            .get(format!("{}{path}", server.url()))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(ok.status(), 200, "{path}");
    }
    // A client token is not an admin token.
    let not_admin = http
        .post(format!("{}/v1/admin/clients", server.url()))
        .bearer_auth(&token)
        .body("phone-2")
        .send()
        .unwrap();
    assert_eq!(not_admin.status(), 401);

    let before = round_state(&server);
    let (status, _) = post(&server, "wrong-token", update(&server, "k1").encode());
    assert_eq!(status, 401);
    assert_eq!(round_state(&server), before);

    // The core client reports a refused token as Unauthorized and keeps its outbox.
    let phone = client(&dir, "p");
    phone.sync(&Remote::new(server.url(), &token)).unwrap();
    record_some(&phone);
    phone.train(&TrainOptions::default()).unwrap();
    let err = phone
        .upload(&Remote::new(server.url(), "revoked"))
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err}");
    assert_eq!(phone.pending_uploads().unwrap().len(), 1);
}

#[test]
fn every_bad_update_is_refused_and_changes_nothing() {
    let dir = TempDir::new("http-bad");
    let server = start(&dir, |c| {
        c.norm_bound = Some(10.0);
        c.norm_policy = NormPolicy::Reject;
        c.max_body_bytes = 64 * 1024;
    });
    let token = issue(&server, "phone-1");
    let good = update(&server, "good");
    let n_items = server.core.snapshot().global.n_items() as u32;

    let mut nan = good.clone();
    nan.dense[0] = f32::NAN;
    let mut inf = good.clone();
    inf.item_rows[1] = f32::INFINITY;
    let mut dims = good.clone();
    dims.dense.pop();
    let mut rows = good.clone();
    rows.item_rows.pop();
    let mut range = good.clone();
    range.item_ids[1] = n_items;
    let mut unsorted = good.clone();
    unsorted.item_ids = vec![3, 0];
    let mut norm = good.clone();
    norm.item_rows[0] = 100.0;
    let mut stale = good.clone();
    stale.base_version = 0;
    stale.round = 0;
    let mut zero = good.clone();
    zero.samples = 0;
    let mut flipped = good.encode();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;

    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("NaN", nan.encode(), 422),
        ("infinity", inf.encode(), 422),
        ("dense length", dims.encode(), 422),
        ("row length", rows.encode(), 422),
        ("row id out of range", range.encode(), 422),
        ("unsorted ids", unsorted.encode(), 422),
        ("zero samples", zero.encode(), 422),
        ("norm above bound", norm.encode(), 422),
        ("stale base version", stale.encode(), 409),
        ("oversized body", vec![0u8; 64 * 1024 + 1], 413),
        ("malformed envelope", b"not an update".to_vec(), 400),
        ("corrupted body", flipped, 400),
        ("a round message", server.core.round_message().encode(), 400),
    ];
    for (name, body, want) in cases {
        let before = round_state(&server);
        let (status, text) = post(&server, &token, body);
        assert_eq!(status, want, "{name}: {text}");
        assert_eq!(round_state(&server), before, "{name} changed the round");
    }
    let metrics = http()
        .get(format!("{}/metrics", server.url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for reason in ["invalid", "norm", "stale", "too_large", "malformed"] {
        assert!(
            metrics.contains(&format!("reason=\"{reason}\"")),
            "{reason} missing:\n{metrics}"
        );
    }

    // After all that, a good update is still accepted, once.
    assert_eq!(post(&server, &token, good.encode()).0, 202);
    assert_eq!(
        post(&server, &token, good.encode()).0,
        200,
        "same key again = duplicate"
    );
    assert_eq!(round_state(&server).0, 1);
    let other = update(&server, "other-key");
    assert_eq!(
        post(&server, &token, other.encode()).0,
        409,
        "one update per client per round"
    );
    assert_eq!(round_state(&server).0, 1);
    let metrics = http()
        .get(format!("{}/metrics", server.url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("fedmr_updates_accepted_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fedmr_updates_duplicate_total 1"),
        "{metrics}"
    );
}

#[test]
fn clipping_scales_an_update_to_the_bound() {
    let dir = TempDir::new("http-clip");
    let server = start(&dir, |c| {
        c.norm_bound = Some(1.0);
        c.norm_policy = NormPolicy::Clip;
        c.min_updates = 1;
    });
    let token = issue(&server, "phone-1");
    let mut big = update(&server, "big");
    big.dense.iter_mut().for_each(|v| *v = 0.0);
    big.item_rows.iter_mut().for_each(|v| *v = 0.0);
    big.item_rows[0] = 50.0;
    let before = server.core.snapshot().global.items.0.0[[0, 0]];
    assert_eq!(post(&server, &token, big.encode()).0, 202);
    let after = server.core.snapshot().global.items.0.0[[0, 0]];
    assert!(
        ((after - before) - 1.0).abs() < 1e-5,
        "row moved by {} not 1",
        after - before
    );
}

#[test]
fn rounds_close_by_count_and_by_deadline() {
    let dir = TempDir::new("http-rounds");
    let server = start(&dir, |c| {
        c.min_updates = 2;
        c.min_floor = 1;
        c.round_duration = Duration::from_millis(600);
    });
    let (a, b) = (issue(&server, "a"), issue(&server, "b"));
    assert_eq!(post(&server, &a, update(&server, "a1").encode()).0, 202);
    assert_eq!(round_state(&server), (1, 1));
    let (status, text) = post(&server, &b, update(&server, "b1").encode());
    assert_eq!(status, 202);
    assert!(text.contains("\"round_closed\":true"), "{text}");
    assert_eq!(round_state(&server), (0, 2));

    // An update for the closed round is stale now.
    let mut late = update(&server, "late");
    late.round = 1;
    late.base_version = 1;
    assert_eq!(post(&server, &a, late.encode()).0, 409);

    // Below min_updates, the deadline closes a round with its floor...
    assert_eq!(post(&server, &a, update(&server, "a2").encode()).0, 202);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(round_state(&server), (0, 3));
    // ...and extends one without it.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(round_state(&server), (0, 3));
}

#[test]
fn updates_wait_while_the_server_is_down_and_arrive_once() {
    let dir = TempDir::new("http-down");
    let server_dir = TempDir::new("http-down-server");
    let server = start(&server_dir, |c| c.min_updates = 10);
    let token = issue(&server, "phone-1");
    let remote = Remote::new(server.url(), &token);
    let phone = client(&dir, "phone-1");
    phone.sync(&remote).unwrap();
    record_some(&phone);
    let trained = phone.train(&TrainOptions::default()).unwrap();
    let addr = server.addr;
    drop(server); // down

    let impatient = Remote {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(10),
        timeout: Duration::from_millis(500),
        ..remote.clone()
    };
    let report = phone.upload(&impatient).unwrap();
    assert_eq!((report.delivered, report.remaining), (0, 1));
    assert!(report.last_error.is_some());
    assert_eq!(phone.pending_uploads().unwrap().len(), 1);

    // Back up on the same address and data: delivered, once.
    let mut config = fedmr_server::ServerConfig::new(&server_dir.0, ADMIN);
    config.min_updates = 10;
    let server = fedmr_server::RunningServer::start(open_core(config), addr).unwrap();
    let report = phone.upload(&remote).unwrap();
    assert_eq!((report.delivered, report.remaining), (1, 0));
    assert!(phone.pending_uploads().unwrap().is_empty());
    assert_eq!(round_state(&server), (1, 1));
    assert_eq!(
        server.core.round_message().accepted,
        1,
        "update {} counted once",
        trained.idempotency_key
    );
    // The token survived the restart (stored hashed in the server's database).
    assert!(phone.sync(&remote).is_ok());
}

/// A refused upload still gets its answer: the server reads (and drains)
/// the body before refusing, so the client sees 401 / 413, not a cut
/// connection that it would retry forever.
#[test]
fn refusals_of_large_bodies_are_answered_not_cut() {
    let dir = TempDir::new("http-drain");
    let server = start(&dir, |c| c.max_body_bytes = 64 * 1024);
    let token = issue(&server, "phone-1");
    let http = http();
    for _ in 0..10 {
        let unauthorized = http
            .post(format!("{}/v1/updates", server.url()))
            .bearer_auth("revoked")
            .body(vec![7u8; 60 * 1024])
            .send()
            .expect("an answer, not a broken connection");
        assert_eq!(unauthorized.status(), 401);
        let oversized = http
            .post(format!("{}/v1/updates", server.url()))
            .bearer_auth(&token)
            .body(vec![7u8; 2 << 20])
            .send()
            .expect("an answer, not a broken connection");
        assert_eq!(oversized.status(), 413);
    }
    assert_eq!(round_state(&server).0, 0);
}
