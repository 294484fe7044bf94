//! Sample server data for examples, demo apps and binding tests: a catalog
//! and an initial global model over the seeded synthetic dataset, as the
//! bytes a server would publish. Item keys are `item-0`, `item-1`, ...

use crate::data::synthetic::{SyntheticConfig, generate};
use crate::model::{Catalog, GlobalModel, ModelConfig};
use crate::train::TrainConfig;
use crate::wire::{CatalogMessage, ModelMessage};
use crate::{Error, Result};

/// The published bytes of a sample catalog and its version-1 model.
pub struct SampleServerData {
    pub catalog: Vec<u8>,
    pub model: Vec<u8>,
    pub item_keys: Vec<String>,
}

/// A catalog of `n_items` items with two 32-d content modalities and a
/// full-MFFM FedAvg model (d = 32) for it; the same seed gives the same bytes.
pub fn sample_server_data(n_items: usize, seed: u64) -> Result<SampleServerData> {
    if n_items < 3 {
        return Err(Error::InvalidArgument(format!(
            "a sample catalog needs at least 3 items, got {n_items}"
        )));
    }
    let ds = generate(&SyntheticConfig {
        n_users: 1,
        n_items,
        seed,
        ..SyntheticConfig::default()
    });
    let item_keys: Vec<String> = (0..n_items).map(|i| format!("item-{i}")).collect();
    let modalities: Vec<(&str, _)> = ds
        .modalities
        .iter()
        .map(|m| (m.name.as_str(), &m.features))
        .collect();
    let (catalog, catalog_digest) =
        CatalogMessage::from_features(1, item_keys.clone(), &modalities)?.encode();
    let config = ModelConfig {
        dim: 32,
        ..ModelConfig::default()
    };
    let shape = Catalog {
        n_items,
        features: ds.modalities.iter().map(|m| m.features.clone()).collect(),
    };
    let global = GlobalModel::new(&config, &shape, seed)?;
    let train = TrainConfig {
        lr: 0.1,
        item_lr: Some(3.0),
        ..TrainConfig::default()
    };
    let model = ModelMessage::from_model(1, (1, catalog_digest), &config, &train, &global).encode();
    Ok(SampleServerData {
        catalog,
        model,
        item_keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_bad_sizes_refused() {
        let a = sample_server_data(20, 4).unwrap();
        let b = sample_server_data(20, 4).unwrap();
        assert_eq!((a.catalog.clone(), a.model.clone()), (b.catalog, b.model));
        assert_ne!(sample_server_data(20, 5).unwrap().catalog, a.catalog);
        assert_eq!(a.item_keys.len(), 20);
        assert!(sample_server_data(2, 4).is_err());
    }
}
