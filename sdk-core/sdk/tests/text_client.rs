//! `Client::recommend_for_text` (feature `encoder`): items the server never
//! processed are encoded on the device and scored by the user's model.
//! Needs the paraphrase-MiniLM-L3 model from scripts/fetch-models (skips
//! without it, fails under CI=true).
#![cfg(feature = "encoder")]

use std::path::PathBuf;

use ndarray::Array2;

use fedmr_core::model::{Backbone, Catalog, FusionMode, GlobalModel, ModelConfig};
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::{CatalogMessage, ModelMessage};
use fedmr_encoder::{TextEncoder, TextEncoderOptions};
use fedmr_sdk::LocalItem;
use fedmr_sdk::{Client, ClientConfig, Error, Interaction, InteractionKind, TrainOptions};

fn encoder() -> Option<TextEncoder> {
    let models = fedmr_test_support::models_dir();
    let dir = models.join("paraphrase-minilm-l3");
    if !dir.join("model.onnx").is_file() {
        let message = format!("{} not found: run scripts/fetch-models", dir.display());
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{message} (required when CI=true)");
        }
        eprintln!("SKIPPED: {message}");
        return None;
    }
    Some(TextEncoder::load(&dir, TextEncoderOptions::default()).unwrap())
}

const SPACE: [&str; 6] = [
    "Astronauts stranded on a space station",
    "A rocket launch to the Moon",
    "Aliens invade a distant planet",
    "A spaceship crew explores a nebula",
    "Mission to Mars goes wrong",
    "Galactic war between star empires",
];
const COOKING: [&str; 6] = [
    "A chef opens a small Italian restaurant",
    "Baking sourdough bread at home",
    "A cooking contest between grandmothers",
    "The secret recipe of a famous soup",
    "Street food tour through Bangkok",
    "A pastry school in Paris",
];

/// A client with a catalog whose `text` modality is `modality`-named
/// features from the encoder, a model of `fusion`, and likes on the space items.
fn client(
    encoder: &TextEncoder,
    tag: &str,
    modality: &str,
    fusion: FusionMode,
) -> (Client, PathBuf) {
    let texts: Vec<&str> = SPACE.iter().chain(&COOKING).copied().collect();
    let features = encoder.encode(&texts).unwrap();
    let keys: Vec<String> = (0..texts.len()).map(|i| format!("item-{i}")).collect();
    let catalog = CatalogMessage::from_features(1, keys, &[(modality, &features)]).unwrap();
    let config = ModelConfig {
        backbone: Backbone::FedAvg,
        fusion,
        dim: 16,
        init_std: 0.1,
    };
    let shape = Catalog {
        n_items: texts.len(),
        features: vec![features],
    };
    let global = GlobalModel::new(&config, &shape, 1).unwrap();
    let train = TrainConfig {
        lr: 0.5,
        epochs: 20,
        ..TrainConfig::default()
    };
    let (catalog_bytes, catalog_digest) = catalog.encode();
    let model = ModelMessage::from_model(1, (1, catalog_digest), &config, &train, &global).encode();
    let dir = std::env::temp_dir().join(format!("fedmr-text-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let client = Client::open(ClientConfig {
        seed: Some(4),
        ..ClientConfig::new(dir.join("c.sqlite"))
    })
    .unwrap();
    client.apply_catalog(&catalog_bytes).unwrap();
    client.apply_model(&model).unwrap();
    for i in 0..4 {
        client
            .record(Interaction {
                item_key: format!("item-{i}"),
                kind: InteractionKind::Like,
                timestamp_ms: 1_000 + i,
            })
            .unwrap();
    }
    (client, dir)
}

fn local(key: &str, text: &str) -> LocalItem {
    LocalItem {
        key: key.into(),
        text: text.into(),
    }
}

#[test]
fn local_items_are_scored_by_the_users_model() {
    let Some(encoder) = encoder() else { return };
    let (client, dir) = client(&encoder, "ok", "text", FusionMode::full());
    for _ in 0..3 {
        client.train(&TrainOptions::default()).unwrap();
    }
    let items = [
        local("new-cook", "A chef teaches how to cook pasta"),
        local("new-space", "Astronauts on a mission to a distant moon"),
        local(
            "new-space-again",
            "Astronauts on a mission to a distant moon",
        ),
    ];
    let top = client.recommend_for_text(&encoder, &items, 3).unwrap();
    assert_eq!(top.len(), 3);
    assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(top.iter().all(|r| r.score.is_finite()));
    let score = |key: &str| top.iter().find(|r| r.item_key == key).unwrap().score;
    // Same text, same score; and the user who liked space items prefers
    // the new space item to the new cooking one.
    assert_eq!(score("new-space"), score("new-space-again"));
    assert!(
        score("new-space") > score("new-cook"),
        "space {} vs cooking {}",
        score("new-space"),
        score("new-cook")
    );
    assert_eq!(
        client
            .recommend_for_text(&encoder, &items, 1)
            .unwrap()
            .len(),
        1
    );
    assert!(
        client
            .recommend_for_text(&encoder, &[], 5)
            .unwrap()
            .is_empty()
    );
    let err = client
        .recommend_for_text(&encoder, &[local(" ", "x")], 1)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn models_and_catalogs_that_cannot_score_text_are_refused() {
    let Some(encoder) = encoder() else { return };
    let items = [local("a", "some text")];
    let (id_only, d1) = client(&encoder, "id", "text", FusionMode::IdOnly);
    let err = id_only.recommend_for_text(&encoder, &items, 1).unwrap_err();
    assert!(matches!(err, Error::Incompatible(_)), "{err}");
    let (no_text, d2) = client(&encoder, "image", "image", FusionMode::full());
    let err = no_text.recommend_for_text(&encoder, &items, 1).unwrap_err();
    assert!(matches!(err, Error::Incompatible(_)), "{err}");

    // A catalog whose text features are of another width.
    let narrow = Array2::from_elem((3, 8), 0.1f32);
    let catalog = CatalogMessage::from_features(
        1,
        vec!["x".into(), "y".into(), "z".into()],
        &[("text", &narrow)],
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("fedmr-text-narrow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let client = Client::open(ClientConfig::new(dir.join("c.sqlite"))).unwrap();
    let err = client.recommend_for_text(&encoder, &items, 1).unwrap_err();
    assert!(matches!(err, Error::NotReady(_)), "{err}");
    client.apply_catalog(&catalog.encode().0).unwrap();
    let config = ModelConfig {
        dim: 4,
        ..ModelConfig::default()
    };
    let shape = Catalog {
        n_items: 3,
        features: vec![narrow],
    };
    let global = GlobalModel::new(&config, &shape, 1).unwrap();
    let model = ModelMessage::from_model(
        1,
        (1, catalog.encode().1),
        &config,
        &TrainConfig::default(),
        &global,
    );
    client.apply_model(&model.encode()).unwrap();
    let err = client.recommend_for_text(&encoder, &items, 1).unwrap_err();
    assert!(matches!(err, Error::Incompatible(_)), "{err}");
    for d in [d1, d2, dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}
