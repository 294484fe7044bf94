//! Small fixtures shared by the integration tests.

#![allow(dead_code)] // each test binary uses its own subset

use fedmr_core::Result;
use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::data::{Dataset, UserData};
use fedmr_core::model::{Backbone, Catalog, FusionMode, GlobalModel, ModelConfig, PrivateState};
use fedmr_core::rng::Rng;
use fedmr_core::train::{LocalReport, TrainConfig, train_local};
use fedmr_core::update::ModelUpdate;

pub fn small_dataset() -> Dataset {
    generate(&SyntheticConfig {
        n_users: 40,
        n_items: 80,
        modality_dim: 12,
        seed: 3,
        ..SyntheticConfig::default()
    })
}

pub fn catalog(ds: &Dataset) -> Catalog {
    Catalog {
        n_items: ds.n_items,
        features: ds.modalities.iter().map(|m| m.features.clone()).collect(),
    }
}

pub fn config(backbone: Backbone, fusion: FusionMode) -> ModelConfig {
    ModelConfig {
        backbone,
        fusion,
        dim: 8,
        init_std: 0.1,
    }
}

pub fn global(ds: &Dataset, cfg: &ModelConfig) -> GlobalModel {
    GlobalModel::new(cfg, &catalog(ds), 1).expect("valid config")
}

/// A small dataset with a full-MFFM model of one backbone.
pub struct Fixture {
    pub ds: Dataset,
    pub users: Vec<UserData>,
    pub cfg: ModelConfig,
    pub global: GlobalModel,
    pub catalog: Catalog,
}

impl Fixture {
    pub fn new(backbone: Backbone) -> Self {
        let ds = small_dataset();
        let cfg = config(backbone, FusionMode::full());
        let global = global(&ds, &cfg);
        let catalog = catalog(&ds);
        let users = ds.users();
        Fixture {
            ds,
            users,
            cfg,
            global,
            catalog,
        }
    }

    pub fn state(&self, seed: u64) -> PrivateState {
        PrivateState::new(&self.cfg, &self.global, seed)
    }

    /// One local round on `items` with the RNG stream `seed`.
    pub fn train(
        &self,
        state: &mut PrivateState,
        items: &[u32],
        config: &TrainConfig,
        seed: u64,
    ) -> Result<(ModelUpdate, LocalReport)> {
        let mut rng = Rng::new(seed);
        train_local(
            &self.global,
            &self.catalog,
            self.cfg.backbone,
            state,
            items,
            config,
            &mut rng,
        )
    }
}

/// Wire messages and a fresh database for `Client` tests.
pub mod client {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    use fedmr_core::data::Dataset;
    use fedmr_core::model::{Backbone, FusionMode, GlobalModel, ModelConfig};
    use fedmr_core::train::TrainConfig;
    use fedmr_core::wire::{CatalogMessage, ModelMessage};
    use fedmr_core::{Client, ClientConfig, Interaction, InteractionKind};

    pub fn key(item: u32) -> String {
        format!("item-{item}")
    }

    pub fn catalog_message(ds: &Dataset, version: u64) -> CatalogMessage {
        let keys = (0..ds.n_items as u32).map(key).collect();
        let modalities: Vec<(&str, _)> = ds
            .modalities
            .iter()
            .map(|m| (m.name.as_str(), &m.features))
            .collect();
        CatalogMessage::from_features(version, keys, &modalities).unwrap()
    }

    pub fn model_config(backbone: Backbone) -> ModelConfig {
        super::config(backbone, FusionMode::full())
    }

    pub fn model_message(
        ds: &Dataset,
        cfg: &ModelConfig,
        version: u64,
        catalog_version: u64,
    ) -> ModelMessage {
        let model: GlobalModel = super::global(ds, cfg);
        let train = TrainConfig {
            lr: 0.1,
            item_lr: Some(1.0),
            epochs: 5,
            negatives: 1,
            ..TrainConfig::default()
        };
        ModelMessage::from_model(version, catalog_version, cfg, &train, &model)
    }

    static NEXT: AtomicU64 = AtomicU64::new(0);

    /// A directory removed on drop.
    pub struct TempDir(pub PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> Self {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("fedmr-client-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        pub fn db(&self) -> PathBuf {
            self.0.join("client.sqlite")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub fn like(item: u32, t: i64) -> Interaction {
        Interaction {
            item_key: key(item),
            kind: InteractionKind::Like,
            timestamp_ms: t,
        }
    }

    /// A client with the catalog and model of `ds` installed.
    pub fn ready_client(dir: &TempDir, ds: &Dataset, backbone: Backbone) -> Client {
        let client = Client::open(ClientConfig {
            seed: Some(7),
            ..ClientConfig::new(dir.db())
        })
        .unwrap();
        client
            .apply_catalog(&catalog_message(ds, 1).encode().0)
            .unwrap();
        let cfg = model_config(backbone);
        client
            .apply_model(&model_message(ds, &cfg, 1, 1).encode())
            .unwrap();
        client
    }
}
