//! The federation over real HTTP (server on 127.0.0.1, one SQLite-backed
//! `Client` per phone) computes exactly what the in-process one computes.

use fedmr_core::data::Dataset;
use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::model::{Backbone, FusionMode, ModelConfig};
use fedmr_core::train::TrainConfig;
use fedmr_sim::dataset::catalog;
use fedmr_sim::experiment::run_once;
use fedmr_sim::federation::{RunResult, SimConfig, run_rounds};
use fedmr_sim::http::HttpFederation;
/// Full-precision features: `catalog()` rounds them to the f16 a phone
/// receives, so both paths see the same numbers (before it did, this
/// dataset made them differ).
fn dataset() -> Dataset {
    generate(&SyntheticConfig {
        n_users: 40,
        n_items: 90,
        modality_dim: 12,
        seed: 8,
        ..SyntheticConfig::default()
    })
}

fn config(backbone: Backbone, fusion: FusionMode, clients_per_round: Option<usize>) -> SimConfig {
    SimConfig {
        model: ModelConfig {
            backbone,
            fusion,
            dim: 16,
            init_std: 0.1,
        },
        train: TrainConfig {
            lr: 0.3,
            item_lr: Some(2.0),
            epochs: 3,
            negatives: 1,
            ..TrainConfig::default()
        },
        rounds: 4,
        patience: 100,
        clients_per_round,
        seed: 11,
        threads: 2,
        ..SimConfig::default()
    }
}

fn both(cfg: SimConfig, tag: &str) -> (RunResult, RunResult) {
    let ds = dataset();
    let names: Vec<String> = ds.modalities.iter().map(|m| m.name.clone()).collect();
    let cat = catalog(&ds, &[]).unwrap();
    let in_process = run_once(&ds, &cat, cfg.clone(), |_| {}).unwrap();
    let dir = std::env::temp_dir().join(format!("fedmr-sim-http-{tag}-{}", std::process::id()));
    let mut http = HttpFederation::new(&ds, &cat, &names, cfg, &dir).unwrap();
    let over_http = run_rounds(&mut http, |_| {}).unwrap();
    assert_eq!(http.traffic.len(), over_http.rounds.len());
    assert!(
        http.traffic
            .iter()
            .all(|t| t.uploaded > 0 && t.downloaded > 0)
    );
    drop(http);
    let _ = std::fs::remove_dir_all(dir);
    (in_process, over_http)
}

fn assert_same(a: &RunResult, b: &RunResult, what: &str) {
    assert_eq!(a.rounds.len(), b.rounds.len(), "{what}");
    for (x, y) in a.rounds.iter().zip(&b.rounds) {
        assert_eq!(x.clients, y.clients, "{what} round {}", x.round);
        assert_eq!(x.train_loss, y.train_loss, "{what} round {} loss", x.round);
        assert_eq!(x.valid, y.valid, "{what} round {} valid", x.round);
        assert_eq!(x.test, y.test, "{what} round {} test", x.round);
    }
}

#[test]
fn http_federation_equals_in_process_mffm() {
    let (a, b) = both(config(Backbone::FedAvg, FusionMode::full(), None), "mffm");
    assert_same(&a, &b, "FedAvg + MFFM");
    // It learned something, so equality is not of two constant outputs.
    let first = a.rounds[0].test.all.hr_at(50).unwrap();
    assert!(
        a.rounds
            .iter()
            .any(|r| r.test.all.hr_at(50).unwrap() != first)
    );
}

#[test]
fn http_federation_equals_in_process_sampled_id_only() {
    let (a, b) = both(
        config(Backbone::Fcf, FusionMode::IdOnly, Some(15)),
        "fcf-id",
    );
    assert_same(&a, &b, "FCF ID, 15 clients per round");
}

#[test]
fn http_federation_equals_in_process_fedncf_and_fedrap() {
    for backbone in [Backbone::FedNcf, Backbone::FedRap] {
        let tag = format!("{backbone}");
        let (a, b) = both(config(backbone, FusionMode::full(), None), &tag);
        assert_same(&a, &b, &format!("{backbone} + MFFM"));
        // The router weights the app reads from each client are the
        // simulator's, user by user.
        assert_eq!(a.router_weights.len(), b.router_weights.len());
        for (x, y) in a.router_weights.iter().zip(&b.router_weights) {
            assert_eq!(x.len(), 3);
            for (p, q) in x.iter().zip(y) {
                assert!((p - q).abs() < 1e-5, "{backbone}: {x:?} vs {y:?}");
            }
        }
    }
}

/// Phones that download int8 train and rank from the values the server's
/// int8 encoding gives: the in-process simulation rounds the model the same
/// way, so the two agree, and both differ from f32 downloads.
#[test]
fn int8_downloads_over_http_equal_in_process_and_differ_from_f32() {
    let cfg = SimConfig {
        download: fedmr_core::wire::ModelEncoding::Int8,
        ..config(Backbone::FedAvg, FusionMode::full(), None)
    };
    let (a, b) = both(cfg.clone(), "int8");
    assert_same(&a, &b, "FedAvg + MFFM, int8 downloads");
    let ds = dataset();
    let cat = catalog(&ds, &[]).unwrap();
    let f32_downloads = SimConfig {
        download: fedmr_core::wire::ModelEncoding::F32,
        ..cfg
    };
    let exact = run_once(&ds, &cat, f32_downloads, |_| {}).unwrap();
    assert!(
        exact
            .rounds
            .iter()
            .zip(&a.rounds)
            .any(|(x, y)| x.train_loss != y.train_loss),
        "int8 downloads changed nothing"
    );
}
