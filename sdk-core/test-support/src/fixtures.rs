//! A small synthetic dataset, a model over it, and the wire messages a
//! server would publish for them.

use fedmr_core::Result;
use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::data::{Dataset, UserData};
use fedmr_core::model::{Backbone, Catalog, FusionMode, GlobalModel, ModelConfig, PrivateState};
use fedmr_core::rng::Rng;
use fedmr_core::train::{LocalReport, TrainConfig, train_local};
use fedmr_core::update::ModelUpdate;
use fedmr_core::wire::{CatalogMessage, ModelMessage};

/// 40 users, 80 items, two 12-d modalities (seed 3).
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

/// A d = 8 model of `backbone` with `fusion`.
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

/// The app's key of item `item`: `item-<id>`.
pub fn item_key(item: u32) -> String {
    format!("item-{item}")
}

/// The catalog of `ds` as a server publishes it, keys from [`item_key`].
pub fn catalog_message(ds: &Dataset, version: u64) -> CatalogMessage {
    let keys = (0..ds.n_items as u32).map(item_key).collect();
    let modalities: Vec<(&str, _)> = ds
        .modalities
        .iter()
        .map(|m| (m.name.as_str(), &m.features))
        .collect();
    CatalogMessage::from_features(version, keys, &modalities).expect("valid catalog")
}

/// A fresh model of `cfg` over `ds` as a server publishes it.
pub fn model_message(
    ds: &Dataset,
    cfg: &ModelConfig,
    version: u64,
    catalog_version: u64,
) -> ModelMessage {
    let model: GlobalModel = global(ds, cfg);
    let train = TrainConfig {
        lr: 0.1,
        item_lr: Some(1.0),
        epochs: 5,
        negatives: 1,
        ..TrainConfig::default()
    };
    let (_, digest) = catalog_message(ds, catalog_version).encode();
    ModelMessage::from_model(version, (catalog_version, digest), cfg, &train, &model)
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
        Self::with_fusion(backbone, FusionMode::full())
    }

    pub fn with_fusion(backbone: Backbone, fusion: FusionMode) -> Self {
        let ds = small_dataset();
        let cfg = config(backbone, fusion);
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

/// The largest absolute difference between two models' parameters (dense
/// and item table): how far one aggregation path is from another.
pub fn max_difference(a: &GlobalModel, b: &GlobalModel) -> f32 {
    use fedmr_core::model::params::Tensors;
    let (da, db) = (a.dense.flatten(), b.dense.flatten());
    let dense = da.iter().zip(&db).map(|(x, y)| (x - y).abs());
    let rows = a.items.0.0.iter().zip(b.items.0.0.iter());
    dense
        .chain(rows.map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}
