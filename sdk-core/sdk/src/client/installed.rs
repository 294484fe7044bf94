//! What the client holds in memory of the server's data: the catalog's
//! header (keys and features stay in SQLite, looked up by index) and the
//! global model, decoded on first use so that opening a client reads neither.
//! Immutable once built; an apply builds a new one and swaps it in.

use std::sync::{Arc, OnceLock};

use ndarray::Array2;

use crate::store::{CatalogMeta, Store};
use crate::{Error, Result};
use fedmr_core::model::{Catalog, GlobalModel};
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::{ModelMessage, digest_hex};

pub(crate) struct InstalledCatalog {
    pub meta: CatalogMeta,
}

impl InstalledCatalog {
    pub fn load(store: &Store) -> Result<Option<Self>> {
        Ok(store.catalog_meta()?.map(|meta| InstalledCatalog { meta }))
    }

    pub fn n_items(&self) -> usize {
        self.meta.n_items
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
        if self.global.n_items() != catalog.n_items() {
            return Err(Error::Incompatible(format!(
                "model has {} item rows, catalog has {} items",
                self.global.n_items(),
                catalog.n_items()
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

/// The installed model: its version and digest, read when the client
/// opens, and the model itself, decoded from the store on first use.
pub(crate) struct ModelSlot {
    pub version: u64,
    /// sha256 of the message body: what `sync` sends as If-None-Match.
    pub digest: [u8; 32],
    decoded: OnceLock<Arc<InstalledModel>>,
}

impl ModelSlot {
    /// A model just applied (already decoded).
    pub fn applied(model: InstalledModel) -> Self {
        let slot = ModelSlot {
            version: model.version,
            digest: model.digest,
            decoded: OnceLock::new(),
        };
        let _ = slot.decoded.set(Arc::new(model));
        slot
    }

    /// The stored model, not decoded yet.
    pub fn stored(version: u64, digest: [u8; 32]) -> Self {
        ModelSlot {
            version,
            digest,
            decoded: OnceLock::new(),
        }
    }

    /// The decoded model, read from `store` and checked against `catalog`
    /// on first use. A stored model that does not fit is an invariant
    /// broken by hand (apply keeps them consistent): refused, not mis-ranked.
    pub fn model(&self, store: &Store, catalog: &InstalledCatalog) -> Result<Arc<InstalledModel>> {
        if let Some(model) = self.decoded.get() {
            return Ok(model.clone());
        }
        let record = store.model()?;
        let digest = record
            .as_ref()
            .and_then(|r| fedmr_core::wire::declared_digest(&r.payload));
        let Some(record) =
            record.filter(|r| r.version == self.version && digest == Some(self.digest))
        else {
            // An apply replaced it after this snapshot was taken.
            return Err(Error::Busy(
                "the installed model changed while it was being read; retry".into(),
            ));
        };
        let (message, global) = ModelMessage::decode(&record.payload)?;
        let model = InstalledModel::from_message(message, global, self.digest);
        model.check_fits(catalog)?;
        // Two threads may decode at once; both results are the same model.
        Ok(self.decoded.get_or_init(|| Arc::new(model)).clone())
    }
}

/// The catalog and model as installed; either may be missing.
#[derive(Default)]
pub(crate) struct Installed {
    pub catalog: Option<Arc<InstalledCatalog>>,
    pub model: Option<Arc<ModelSlot>>,
}

impl Installed {
    /// The catalog's header and the model's version and digest: a few rows,
    /// whatever the catalog's size.
    pub fn load(store: &Store) -> Result<Self> {
        let catalog = InstalledCatalog::load(store)?;
        let model = store
            .model_header()?
            .map(|(version, digest)| ModelSlot::stored(version, digest));
        Ok(Installed {
            catalog: catalog.map(Arc::new),
            model: model.map(Arc::new),
        })
    }

    /// Both parts (the model decoded), or why not.
    pub fn ready(&self, store: &Store) -> Result<(&InstalledCatalog, Arc<InstalledModel>)> {
        let (catalog, slot) = self.parts()?;
        Ok((catalog, slot.model(store, catalog)?))
    }

    /// Both parts, the model as installed (maybe not decoded yet), or why not.
    pub fn parts(&self) -> Result<(&InstalledCatalog, &ModelSlot)> {
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
