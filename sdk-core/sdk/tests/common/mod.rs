//! `Client` test helpers on top of `fedmr-test-support`.

#![allow(dead_code)] // each test binary uses its own subset

pub use fedmr_test_support::small_dataset;

pub mod client {
    use fedmr_core::data::Dataset;
    use fedmr_core::model::{Backbone, FusionMode, ModelConfig};
    use fedmr_sdk::{Client, ClientConfig, Interaction, InteractionKind};
    pub use fedmr_test_support::{TempDir, catalog_message, item_key as key, model_message};

    pub fn model_config(backbone: Backbone) -> ModelConfig {
        fedmr_test_support::config(backbone, FusionMode::full())
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
