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
