//! The wire bytes of every message, pinned. A change to a message's layout
//! (a field added, reordered or retyped, a codec setting, the envelope)
//! changes these bytes and fails this test: bump `PROTOCOL_VERSION` and
//! regenerate on purpose with `FEDMR_BLESS=1 cargo test --test wire_golden`.

use std::path::PathBuf;

use fedmr_core::model::{Backbone, Catalog, FusionMode, GlobalModel, ModelConfig};
use fedmr_core::privacy::Protection;
use fedmr_core::secagg::{ClientRound, SecureAggregation, ServerRound};
use fedmr_core::train::TrainConfig;
use fedmr_core::update::{ModelUpdate, SparseRows};
use fedmr_core::wire::{
    CatalogMessage, ModelEncoding, ModelMessage, RoundMessage, SecAggMessage, UpdateMessage,
};
use ndarray::Array2;

fn golden(name: &str, bytes: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("FEDMR_BLESS").is_some() {
        std::fs::write(&path, bytes).unwrap();
        return;
    }
    let want = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (FEDMR_BLESS=1 creates it)", path.display()));
    assert!(
        want == bytes,
        "{name}: wire bytes changed ({} -> {} bytes); if intended, bump PROTOCOL_VERSION and re-bless",
        want.len(),
        bytes.len()
    );
}

fn train() -> TrainConfig {
    TrainConfig {
        lr: 0.5,
        item_lr: Some(3.0),
        epochs: 2,
        negatives: 1,
        // Pins the protection's encoding, secure aggregation included.
        protection: Protection::preset("secure-fixed-negatives", 1.0).unwrap(),
        ..TrainConfig::default()
    }
}

#[test]
fn catalog_bytes() {
    let image = Array2::from_shape_fn((2, 3), |(i, j)| i as f32 - j as f32 * 0.5);
    let text = Array2::from_shape_fn((2, 1), |(i, _)| 0.25 + i as f32);
    let message = CatalogMessage::from_features(
        7,
        vec!["apple".into(), "pear".into()],
        &[("image", &image), ("text", &text)],
    )
    .unwrap();
    golden("catalog.bin", &message.encode().0);
}

/// A two-item FCF + MFFM model (d = 2) and its configuration.
fn small_model() -> (ModelConfig, GlobalModel) {
    let features = vec![Array2::from_elem((2, 3), 1.0f32)];
    let shape = Catalog {
        n_items: 2,
        features,
    };
    let config = ModelConfig {
        backbone: Backbone::Fcf,
        fusion: FusionMode::full(),
        dim: 2,
        init_std: 0.1,
    };
    let model = GlobalModel::new(&config, &shape, 3).unwrap();
    (config, model)
}

#[test]
fn model_bytes() {
    let (config, model) = small_model();
    golden(
        "model.bin",
        &ModelMessage::from_model(4, (7, [9; 32]), &config, &train(), &model).encode(),
    );
}

/// The compact downloads (f16, and integer codes at 8 and 4 bits: the bit
/// packing is pinned too) of the model above.
#[test]
fn compact_model_bytes() {
    let (config, model) = small_model();
    let header = ModelMessage::header(4, (7, [9; 32]), &config, &train(), &model);
    for encoding in [ModelEncoding::F16, ModelEncoding::Int8, ModelEncoding::Int4] {
        golden(
            &format!("model_{}.bin", encoding.name()),
            &header.encode_as(&model, encoding).unwrap(),
        );
    }
}

#[test]
fn update_bytes() {
    let update = ModelUpdate {
        samples: 12,
        item_rows: SparseRows {
            ids: vec![1, 5],
            values: Array2::from_shape_vec((2, 2), vec![0.5, -0.25, 1.0, 2.0]).unwrap(),
        },
        dense: vec![0.125, -8.0, 3.5],
    };
    golden(
        "update.bin",
        &UpdateMessage::new(4, 4, "0123456789abcdef".into(), &update).encode(),
    );
}

#[test]
fn round_bytes() {
    let round = RoundMessage {
        round: 4,
        base_version: 4,
        catalog_version: 7,
        train: train(),
        min_updates: 10,
        accepted: 3,
        deadline_ms: 1_800_000_000_000,
    };
    golden("round.bin", &round.encode());
}

/// One secure round of three clients with fixed secrets: each of its six
/// message kinds, as sent.
#[test]
fn secure_aggregation_bytes() {
    let (round, len) = (4, 3);
    let config = SecureAggregation {
        neighbours: 2,
        ..SecureAggregation::default()
    };
    let mut server = ServerRound::new(round, config, len).unwrap();
    let mut clients: Vec<ClientRound> = (0..3u8)
        .map(|c| ClientRound::new(round, &[c + 1; 32]))
        .collect();
    golden("secagg_keys.bin", &clients[0].advert().encode());
    for (c, client) in clients.iter().enumerate() {
        server.advertise(&c.to_string(), client.advert()).unwrap();
    }
    server.close_keys(1).unwrap();
    let roster = server.roster_for("0").unwrap().unwrap();
    golden("secagg_roster.bin", &roster.encode());
    for (c, client) in clients.iter_mut().enumerate() {
        let roster = server.roster_for(&c.to_string()).unwrap().unwrap();
        let batch = client.share(&roster, &config, len).unwrap();
        if c == 0 {
            golden("secagg_shares.bin", &batch.encode());
        }
        server.add_shares(&c.to_string(), batch).unwrap();
    }
    server.close_shares().unwrap();
    for (c, client) in clients.iter_mut().enumerate() {
        let inbox = server.inbox(&c.to_string()).unwrap();
        let masked = client.mask(&inbox, &[1, 2, 3]).unwrap();
        if c == 0 {
            golden("secagg_masked.bin", &masked.encode());
        }
        server.add_masked(&c.to_string(), &masked).unwrap();
    }
    let request = server.close_masked().unwrap().clone();
    golden("secagg_unmask_request.bin", &request.encode());
    let response = clients[0].unmask(&request).unwrap();
    golden("secagg_unmask_response.bin", &response.encode());
    // Each decodes back to itself.
    assert_eq!(
        fedmr_core::secagg::UnmaskResponse::decode(&response.encode()).unwrap(),
        response
    );
    assert_eq!(
        fedmr_core::secagg::Roster::decode(&roster.encode()).unwrap(),
        roster
    );
}
