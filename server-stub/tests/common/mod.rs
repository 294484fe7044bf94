//! A small server on 127.0.0.1:0 and helpers to talk to it.

#![allow(dead_code)]

pub mod child;

use fedmr_core::data::Dataset;
use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::model::params::Tensors;
use fedmr_core::model::{FusionMode, ModelConfig};
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::UpdateMessage;
use fedmr_server::{RunningServer, ServerConfig, ServerCore, genesis_from_dataset};

pub const ADMIN: &str = "admin-secret";

pub fn dataset() -> Dataset {
    generate(&SyntheticConfig {
        n_users: 12,
        n_items: 60,
        modality_dim: 8,
        seed: 2,
        ..SyntheticConfig::default()
    })
}

pub fn model_config() -> ModelConfig {
    ModelConfig {
        fusion: FusionMode::full(),
        dim: 8,
        ..ModelConfig::default()
    }
}

pub use fedmr_test_support::TempDir;

pub fn open_core(config: ServerConfig) -> ServerCore {
    open_core_training(config, TrainConfig::default())
}

/// A server whose models carry `train` (the configuration clients obey).
pub fn open_core_training(config: ServerConfig, train: TrainConfig) -> ServerCore {
    let ds = dataset();
    ServerCore::open(config, || {
        genesis_from_dataset(&ds, &model_config(), &train, 1)
    })
    .unwrap()
}

pub fn start(dir: &TempDir, tweak: impl FnOnce(&mut ServerConfig)) -> RunningServer {
    start_training(dir, TrainConfig::default(), tweak)
}

pub fn start_training(
    dir: &TempDir,
    train: TrainConfig,
    tweak: impl FnOnce(&mut ServerConfig),
) -> RunningServer {
    let mut config = ServerConfig::new(&dir.0, ADMIN);
    config.min_updates = 3;
    tweak(&mut config);
    RunningServer::start(
        open_core_training(config, train),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
}

pub fn http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::new()
}

pub fn issue(server: &RunningServer, client: &str) -> String {
    let response = http()
        .post(format!("{}/v1/admin/clients", server.url()))
        .bearer_auth(ADMIN)
        .body(client.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    response.text().unwrap()
}

/// A well-formed update for the server's current model version.
pub fn update(server: &RunningServer, key: &str) -> UpdateMessage {
    update_for(&server.core, key)
}

/// A well-formed update for `core`'s current model version.
pub fn update_for(core: &ServerCore, key: &str) -> UpdateMessage {
    let snap = core.snapshot();
    let dim = snap.global.dim();
    UpdateMessage {
        round: snap.version,
        base_version: snap.version,
        idempotency_key: key.into(),
        samples: 10,
        item_ids: vec![0, 3],
        item_rows: vec![0.01; 2 * dim],
        dense: vec![0.001; snap.global.dense.num_params()],
    }
}

pub fn post(server: &RunningServer, token: &str, body: Vec<u8>) -> (u16, String) {
    let response = http()
        .post(format!("{}/v1/updates", server.url()))
        .bearer_auth(token)
        .body(body)
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

/// Accepted updates in the open round, and the model version.
pub fn round_state(server: &RunningServer) -> (u32, u64) {
    let round = server.core.round_message();
    (round.accepted, round.base_version)
}
