//! What the client holds in memory of the server's data: the catalog's keys
//! (features stay in SQLite) and the decoded global model. Immutable once
//! built; an apply builds a new one and swaps it in.

use std::collections::HashMap;
use std::sync::Arc;

use ndarray::Array2;

use crate::store::{CatalogMeta, Store};
use crate::{Error, Result};
use fedmr_core::model::{Catalog, GlobalModel};
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::{ModelMessage, digest_hex};

pub(crate) struct InstalledCatalog {
    pub meta: CatalogMeta,
    pub keys: Vec<String>,
    pub ids: HashMap<String, u32>,
}

impl InstalledCatalog {
    pub fn load(store: &Store) -> Result<Option<Self>> {
        let Some(meta) = store.catalog_meta()? else {
            return Ok(None);
        };
        let keys = store.catalog_keys()?;
        let ids = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as u32))
            .collect();
        Ok(Some(InstalledCatalog { meta, keys, ids }))
    }

    pub fn modality_dims(&self) -> Vec<usize> {
        self.meta
            .modalities
            .iter()
            .map(|m| m.dim as usize)
            .collect()
    }
}

pub(crate) struct InstalledModel {
    pub version: u64,
    /// sha256 of the message body: what `sync` sends as If-None-Match.
    pub digest: [u8; 32],
    pub catalog_version: u64,
    /// The digest of the catalog this model was published for.
    pub catalog_digest: [u8; 32],
    pub config: fedmr_core::model::ModelConfig,
    pub train: TrainConfig,
    pub global: GlobalModel,
}

impl InstalledModel {
    pub fn from_message(message: ModelMessage, global: GlobalModel, digest: [u8; 32]) -> Self {
        InstalledModel {
            version: message.version,
            digest,
            catalog_version: message.catalog_version,
            catalog_digest: message.catalog_digest,
            config: message.config,
            train: message.train,
            global,
        }
    }

    /// Whether this model's rows and inputs fit `catalog`.
    pub fn check_fits(&self, catalog: &InstalledCatalog) -> Result<()> {
        if self.catalog_version != catalog.meta.version {
            return Err(Error::Incompatible(format!(
                "model {} is for catalog version {}, installed catalog is version {}",
                self.version, self.catalog_version, catalog.meta.version
            )));
        }
        // Same version, other content: this user was sent a catalog other
        // than the one the model was published with (a server manipulating
        // some users' features), or the server changed a catalog in place.
        if self.catalog_digest != catalog.meta.sha256 {
            return Err(Error::Incompatible(format!(
                "model {} is pinned to catalog digest {}, installed catalog has {}",
                self.version,
                digest_hex(&self.catalog_digest),
                digest_hex(&catalog.meta.sha256)
            )));
        }
        if self.global.n_items() != catalog.keys.len() {
            return Err(Error::Incompatible(format!(
                "model has {} item rows, catalog has {} items",
                self.global.n_items(),
                catalog.keys.len()
            )));
        }
        let model_dims = match self.global.fusion() {
            fedmr_core::model::Fusion::IdOnly => None,
            fedmr_core::model::Fusion::Mffm(m) => Some(m.modality_dims()),
        };
        if let Some(dims) = model_dims.filter(|d| *d != catalog.modality_dims()) {
            return Err(Error::Incompatible(format!(
                "model expects modality sizes {dims:?}, catalog has {:?}",
                catalog.modality_dims()
            )));
        }
        Ok(())
    }
}

/// The catalog and model as installed; either may be missing.
#[derive(Default)]
pub(crate) struct Installed {
    pub catalog: Option<Arc<InstalledCatalog>>,
    pub model: Option<Arc<InstalledModel>>,
}

impl Installed {
    pub fn load(store: &Store) -> Result<Self> {
        let catalog = InstalledCatalog::load(store)?;
        let model = match store.model()? {
            None => None,
            Some(record) => {
                let (message, global) = ModelMessage::decode(&record.payload)?;
                let digest = fedmr_core::wire::declared_digest(&record.payload).unwrap_or_default();
                Some(InstalledModel::from_message(message, global, digest))
            }
        };
        // A stored model that does not fit is an invariant broken by hand
        // (apply keeps them consistent); refuse rather than mis-rank.
        if let (Some(c), Some(m)) = (&catalog, &model) {
            m.check_fits(c)?;
        }
        Ok(Installed {
            catalog: catalog.map(Arc::new),
            model: model.map(Arc::new),
        })
    }

    /// Both parts, or why not.
    pub fn ready(&self) -> Result<(&InstalledCatalog, &InstalledModel)> {
        let catalog = self
            .catalog
            .as_ref()
            .ok_or_else(|| Error::NotReady("no catalog installed (apply_catalog first)".into()))?;
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| Error::NotReady("no model installed (apply_model first)".into()))?;
        Ok((catalog, model))
    }
}

/// The content rows of `ids` (in that order), read from the store.
pub(crate) fn features_of(
    store: &Store,
    catalog: &InstalledCatalog,
    ids: &[u32],
) -> Result<Catalog> {
    let as_usize: Vec<usize> = ids.iter().map(|&i| i as usize).collect();
    Ok(Catalog {
        n_items: ids.len(),
        features: decode_rows(&store.feature_rows(&as_usize)?, &catalog.modality_dims())?,
    })
}

/// Stored f16 feature rows to one f32 matrix per modality; a row of the
/// wrong size means the store is damaged.
pub(crate) fn decode_rows(rows: &[Vec<u8>], dims: &[usize]) -> Result<Vec<Array2<f32>>> {
    fedmr_core::wire::decode_feature_rows(rows, dims)
        .map_err(|e| Error::Store(format!("stored catalog: {e}")))
}
