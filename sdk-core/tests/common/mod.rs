//! Small fixtures shared by the integration tests.

use fedmr_core::data::Dataset;
use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::model::{Backbone, Catalog, FusionMode, GlobalModel, ModelConfig};

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
