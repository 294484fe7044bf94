//! Secure aggregation over HTTP: a real server on 127.0.0.1 and real SDK
//! clients, each phase driven by `Client::upload` as a background job would.

mod common;

use common::*;
use fedmr_core::aggregate::{Aggregator, ServerOptimizer, ServerStep};
use fedmr_core::model::GlobalModel;
use fedmr_core::model::params::Tensors;
use fedmr_core::privacy::Protection;
use fedmr_core::secagg::normalised_weight;
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::UpdateMessage;
use fedmr_sdk::{Client, ClientConfig, Interaction, InteractionKind, Remote, TrainOptions};
use fedmr_server::RunningServer;
use fedmr_test_support::max_difference;

const PHONES: usize = 10;

fn secure_training() -> TrainConfig {
    TrainConfig {
        lr: 0.5,
        epochs: 2,
        protection: Protection::preset("secure", 1.0).unwrap(),
        ..TrainConfig::default()
    }
}

struct Phone {
    client: Client,
    remote: Remote,
    db: std::path::PathBuf,
}

/// Phones with a trained update each for the open round; returns them and
/// their updates as the plain protocol would have sent them.
fn trained_phones(dir: &TempDir, server: &RunningServer) -> (Vec<Phone>, Vec<UpdateMessage>) {
    let mut phones = Vec::new();
    let mut updates = Vec::new();
    for p in 0..PHONES {
        let db = dir.0.join(format!("phone-{p}.sqlite"));
        let client = Client::open(ClientConfig {
            seed: Some(p as u64),
            ..ClientConfig::new(&db)
        })
        .unwrap();
        let remote = Remote::new(server.url(), issue(server, &format!("phone-{p}")));
        client.sync(&remote).unwrap();
        let batch: Vec<Interaction> = (0..4)
            .map(|k| Interaction {
                item_key: fedmr_server::item_key(p * 5 + k * 3),
                kind: InteractionKind::Like,
                timestamp_ms: k as i64,
            })
            .collect();
        client.record_batch(&batch).unwrap();
        client.train(&TrainOptions::default()).unwrap();
        let pending = client.pending_uploads().unwrap();
        updates.push(UpdateMessage::decode(&pending[0].bytes).unwrap());
        phones.push(Phone { client, remote, db });
    }
    (phones, updates)
}

fn plain_aggregate(base: &GlobalModel, updates: &[UpdateMessage], cap: u64) -> GlobalModel {
    let backbone = common::model_config().backbone;
    let mut aggregator = Aggregator::new(base, backbone).with_sample_cap(cap);
    for u in updates {
        aggregator
            .add(base, &u.to_update(base.dim()).unwrap())
            .unwrap();
    }
    let mut next = base.clone();
    aggregator.apply(
        &mut next,
        &mut ServerOptimizer::new(&ServerStep::Plain { lr: 1.0 }),
    );
    next
}

fn secure_states(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM secagg_rounds", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_secure_round_survives_30_percent_vanishing_and_equals_the_plain_sum() {
    let dir = TempDir::new("secure-round");
    let server = start_training(&dir, secure_training(), |c| c.min_updates = PHONES as u32);
    let base = server.core.snapshot().global.clone();
    let (phones, updates) = trained_phones(&dir, &server);
    // 30% of the cohort.
    let vanishing = [0usize, 3, 6];
    let mut gone = [false; PHONES];
    let mut delivered = [false; PHONES];
    // A background job's runs: every phone still around calls `upload`,
    // each run in a fresh process (the app is killed between phases: the
    // client is opened again from its SQLite file).
    for _pass in 0..8 {
        for (p, phone) in phones.iter().enumerate() {
            if gone[p] || delivered[p] {
                continue;
            }
            let reopened = Client::open(ClientConfig::new(&phone.db)).unwrap();
            let report = reopened.upload(&phone.remote).unwrap();
            delivered[p] = report.delivered == 1;
            // The app is killed for good once its masked input is in.
            let masked = report.last_error.as_deref() == Some("secure round: waiting at masked");
            gone[p] = vanishing.contains(&p) && masked;
        }
        if (0..PHONES).all(|p| gone[p] || delivered[p]) {
            break;
        }
    }
    assert_eq!(
        gone.iter().filter(|&&g| g).count(),
        3,
        "three vanished after uploading"
    );
    assert_eq!(
        server.core.snapshot().version,
        2,
        "the round closed without them"
    );
    for (p, phone) in phones.iter().enumerate() {
        if !gone[p] {
            assert!(delivered[p], "phone {p} finished");
            assert!(phone.client.pending_uploads().unwrap().is_empty());
            assert_eq!(secure_states(&phone.db), 0, "phone {p}'s secrets erased");
        }
    }
    // The sum of everyone who uploaded, the vanished included.
    let config = secure_training().protection.secure_aggregation.unwrap();
    let plain = plain_aggregate(&base, &updates, config.sample_cap);
    let secure = server.core.snapshot().global.clone();
    let diff = max_difference(&plain, &secure);
    // Each mean: sums of codes rounded by half a step each, over a weight of
    // at least the lightest client's.
    let backbone = common::model_config().backbone;
    let lightest = updates
        .iter()
        .map(|u| normalised_weight(backbone, u.samples, config.sample_cap))
        .fold(f64::INFINITY, f64::min);
    let bound = (PHONES as f64 * config.fixed_point().step() / 2.0 / lightest) as f32;
    let moved = max_difference(&base, &secure);
    eprintln!(
        "secure vs plain: {diff:e} (bound {bound:e}); the round moved the model by {moved:e}"
    );
    assert!(diff <= bound, "{diff:e} > {bound:e}");
    assert!(moved > 10.0 * bound, "the model moved");
}

#[test]
fn clients_lost_before_their_input_are_left_out_once_the_operator_moves_on() {
    let dir = TempDir::new("secure-round-lost");
    let server = start_training(&dir, secure_training(), |c| c.min_updates = PHONES as u32);
    let base = server.core.snapshot().global.clone();
    let (phones, updates) = trained_phones(&dir, &server);
    let lost = [1usize, 4];
    let mut delivered = [false; PHONES];
    let mut passes = 0;
    while !(0..PHONES).all(|p| lost.contains(&p) || delivered[p]) {
        passes += 1;
        assert!(passes < 10, "the round never completed");
        for (p, phone) in phones.iter().enumerate() {
            // The lost phones advertise and share (passes 1 and 2), then
            // are never seen again.
            if delivered[p] || (lost.contains(&p) && passes > 2) {
                continue;
            }
            let report = phone.client.upload(&phone.remote).unwrap();
            delivered[p] = report.delivered == 1;
        }
        if passes == 3 {
            // Everyone else's input is in; the deadline would do the same.
            let response = http()
                .post(format!("{}/v1/admin/secagg/advance", server.url()))
                .bearer_auth(ADMIN)
                .send()
                .unwrap();
            assert_eq!(
                response.status().as_u16(),
                200,
                "{}",
                response.text().unwrap()
            );
        }
    }
    assert_eq!(server.core.snapshot().version, 2);
    let kept: Vec<UpdateMessage> = updates
        .iter()
        .enumerate()
        .filter(|(p, _)| !lost.contains(p))
        .map(|(_, u)| u.clone())
        .collect();
    let config = secure_training().protection.secure_aggregation.unwrap();
    let diff = max_difference(
        &plain_aggregate(&base, &kept, config.sample_cap),
        &server.core.snapshot().global,
    );
    let with_lost = max_difference(
        &plain_aggregate(&base, &updates, config.sample_cap),
        &server.core.snapshot().global,
    );
    assert!(
        diff < with_lost / 10.0,
        "the sum of the {} survivors ({diff:e} vs {with_lost:e})",
        kept.len()
    );
}

#[test]
fn bad_and_out_of_turn_secure_messages_are_refused_and_change_nothing() {
    let dir = TempDir::new("secure-round-refusals");
    let server = start_training(&dir, secure_training(), |c| c.min_updates = 3);
    let token = issue(&server, "phone-x");
    let http = http();
    let post = |path: &str, body: Vec<u8>| {
        http.post(format!("{}{path}", server.url()))
            .bearer_auth(&token)
            .body(body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let get = |path: &str| {
        http.get(format!("{}{path}", server.url()))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    // Not a framed message; a plain update in a secure round.
    assert_eq!(post("/v1/secagg/keys", b"junk".to_vec()), 400);
    let update = fedmr_core::update::ModelUpdate {
        samples: 1,
        item_rows: fedmr_core::update::SparseRows {
            ids: vec![],
            values: ndarray::Array2::zeros((0, 8)),
        },
        dense: vec![0.0; server.core.snapshot().global.dense.num_params()],
    };
    assert_eq!(
        post(
            "/v1/updates",
            UpdateMessage::new(1, 1, "k".into(), &update).encode()
        ),
        422
    );
    // Out of turn: no keys advertised yet, so nothing to fetch or to send.
    assert_eq!(get("/v1/secagg/roster"), 409);
    assert_eq!(get("/v1/secagg/inbox"), 409);
    let advert = fedmr_core::secagg::ClientRound::new(1, &[1; 32]).advert();
    let masked = fedmr_core::secagg::MaskedInput::new(1, 0, &[0; 4]);
    use fedmr_core::wire::SecAggMessage;
    assert_eq!(post("/v1/secagg/masked", masked.encode()), 409);
    // Keys for another round are stale; the right ones wait for the cohort.
    let mut stale = advert.clone();
    stale.round = 7;
    assert_eq!(post("/v1/secagg/keys", stale.encode()), 409);
    assert_eq!(post("/v1/secagg/keys", advert.encode()), 202);
    assert_eq!(get("/v1/secagg/roster"), 204);
    // Other keys from the same client in the same round are refused.
    let other = fedmr_core::secagg::ClientRound::new(1, &[2; 32]).advert();
    assert_eq!(post("/v1/secagg/keys", other.encode()), 422);
    assert_eq!(server.core.snapshot().version, 1);
}

/// An app that trains again before its update is through (a background job
/// runs train, then upload, every time) takes part once: the later update of
/// the same round is dropped, the round completes.
#[test]
fn a_second_update_of_one_round_is_superseded_not_a_failure() {
    let dir = TempDir::new("secure-round-twice");
    let server = start_training(&dir, secure_training(), |c| c.min_updates = PHONES as u32);
    let (phones, _) = trained_phones(&dir, &server);
    let mut delivered = [0usize; PHONES];
    let mut dropped = 0;
    for pass in 0..8 {
        for (p, phone) in phones.iter().enumerate() {
            if delivered[p] == 1 {
                continue;
            }
            if p == 0 && pass == 1 {
                phone.client.train(&TrainOptions::default()).unwrap();
                assert_eq!(phone.client.pending_uploads().unwrap().len(), 2);
            }
            let report = phone.client.upload(&phone.remote).unwrap();
            delivered[p] += report.delivered;
            dropped += report.dropped;
        }
    }
    assert_eq!(delivered, [1; PHONES]);
    assert_eq!(dropped, 1, "the second update of phone 0");
    assert_eq!(server.core.snapshot().version, 2);
    assert!(phones[0].client.pending_uploads().unwrap().is_empty());
}
