//! The bodies of the three messages, their encodings and their checks.
//! Each `decode` returns a value that has passed every check the message
//! can be given on its own; checks against other state (does this model fit
//! the installed catalog?) are the receiver's.

use std::collections::HashSet;

use half::f16;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::envelope::{self, MessageKind};
use super::feature_rows::{decode_feature_rows, encode_f16};
use crate::codec;
use crate::model::params::Tensors;
use crate::model::{GlobalModel, ModelConfig};
use crate::train::TrainConfig;
use crate::update::{ModelUpdate, SparseRows};
use crate::{Error, Result};

/// The longest item key (UTF-8 bytes) a catalog or a device accepts.
pub const MAX_ITEM_KEY_BYTES: usize = 512;

/// One content modality of a catalog, e.g. "image" with 512 dimensions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModalitySpec {
    pub name: String,
    pub dim: u32,
}

/// One catalog item: the app's key and its content features, every modality
/// concatenated in `CatalogMessage::modalities` order, as little-endian f16.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogItem {
    pub key: String,
    #[serde(with = "serde_bytes")]
    pub features_f16: Vec<u8>,
}

/// The item catalog the server publishes. Item ids are positions in `items`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogMessage {
    pub version: u64,
    pub modalities: Vec<ModalitySpec>,
    pub items: Vec<CatalogItem>,
}

impl CatalogMessage {
    /// Builds a catalog from per-modality f32 feature matrices (row = item),
    /// rounding them to f16.
    pub fn from_features(
        version: u64,
        keys: Vec<String>,
        modalities: &[(&str, &Array2<f32>)],
    ) -> Result<Self> {
        if let Some((name, f)) = modalities.iter().find(|(_, f)| f.nrows() != keys.len()) {
            return Err(Error::Shape(format!(
                "modality {name} has {} rows for {} keys",
                f.nrows(),
                keys.len()
            )));
        }
        let items = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                let mut features_f16 = Vec::new();
                for (_, f) in modalities {
                    encode_f16(f.row(i).iter().copied(), &mut features_f16);
                }
                CatalogItem { key, features_f16 }
            })
            .collect();
        let message = CatalogMessage {
            version,
            modalities: modalities
                .iter()
                .map(|(name, f)| ModalitySpec {
                    name: (*name).to_string(),
                    dim: f.ncols() as u32,
                })
                .collect(),
            items,
        };
        message.validate()?;
        Ok(message)
    }

    /// The features as the model sees them: one f32 matrix per modality.
    pub fn to_catalog(&self) -> Result<crate::model::Catalog> {
        let dims: Vec<usize> = self.modalities.iter().map(|m| m.dim as usize).collect();
        let rows: Vec<Vec<u8>> = self.items.iter().map(|i| i.features_f16.clone()).collect();
        Ok(crate::model::Catalog {
            n_items: self.items.len(),
            features: decode_feature_rows(&rows, &dims)?,
        })
    }

    /// Total feature values per item, over all modalities.
    pub fn row_len(&self) -> usize {
        self.modalities.iter().map(|m| m.dim as usize).sum()
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidMessage(format!("catalog: {m}")));
        if self.items.is_empty() {
            return bad("no items".into());
        }
        if self.items.len() > u32::MAX as usize {
            return bad(format!("{} items, limit {}", self.items.len(), u32::MAX));
        }
        let mut names = HashSet::new();
        for m in &self.modalities {
            if m.name.trim().is_empty() || m.dim == 0 {
                return bad(format!("modality {:?} with {} dimensions", m.name, m.dim));
            }
            if !names.insert(m.name.as_str()) {
                return bad(format!("modality {:?} listed twice", m.name));
            }
        }
        let row_bytes = 2 * self.row_len();
        let mut keys = HashSet::with_capacity(self.items.len());
        for (i, item) in self.items.iter().enumerate() {
            if item.key.trim().is_empty() || item.key.len() > MAX_ITEM_KEY_BYTES {
                return bad(format!("item {i} has an empty or over-long key"));
            }
            if !keys.insert(item.key.as_str()) {
                return bad(format!("item key {:?} appears twice", item.key));
            }
            if item.features_f16.len() != row_bytes {
                return bad(format!(
                    "item {:?} has {} feature bytes, expected {row_bytes}",
                    item.key,
                    item.features_f16.len()
                ));
            }
            if item
                .features_f16
                .chunks_exact(2)
                .any(|b| !f16::from_le_bytes([b[0], b[1]]).is_finite())
            {
                return bad(format!("item {:?} has a non-finite feature", item.key));
            }
        }
        Ok(())
    }

    /// The framed bytes, and the body's sha256 (the catalog's digest).
    pub fn encode(&self) -> (Vec<u8>, [u8; 32]) {
        envelope::seal(MessageKind::Catalog, &codec::encode(self))
    }

    /// Checks the frame and digest, decodes and validates.
    pub fn decode(bytes: &[u8]) -> Result<(Self, [u8; 32])> {
        let (body, digest) = envelope::open(bytes, MessageKind::Catalog)?;
        let message: CatalogMessage = codec::decode(body, "catalog")?;
        message.validate()?;
        Ok((message, digest))
    }
}

/// A global model version, with the training configuration clients must use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMessage {
    pub version: u64,
    /// The catalog version whose item ids this model's rows follow.
    pub catalog_version: u64,
    /// That catalog's digest (the sha256 of its body): a client trains only
    /// on the catalog every client of this model was sent, so a server cannot
    /// quietly hand some users manipulated features (RAIFLE's "active data
    /// manipulation") under the same version.
    pub catalog_digest: [u8; 32],
    pub config: ModelConfig,
    pub train: TrainConfig,
    pub modality_dims: Vec<u32>,
    pub n_items: u32,
    /// `n_items x config.dim`, row-major.
    pub item_table: Vec<f32>,
    /// Dense parameters (fusion, then FedNCF's towers) in `Tensors::flatten` order.
    pub fusion: Vec<f32>,
}

impl ModelMessage {
    pub fn from_model(
        version: u64,
        catalog: (u64, [u8; 32]),
        config: &ModelConfig,
        train: &TrainConfig,
        model: &GlobalModel,
    ) -> Self {
        ModelMessage {
            item_table: model.items.0.0.iter().copied().collect(),
            fusion: model.dense.flatten(),
            ..ModelMessage::header(version, catalog, config, train, model)
        }
    }

    /// The header fields alone (both tables empty): what `encode_as` needs
    /// beside the model, without copying the model's values.
    pub fn header(
        version: u64,
        (catalog_version, catalog_digest): (u64, [u8; 32]),
        config: &ModelConfig,
        train: &TrainConfig,
        model: &GlobalModel,
    ) -> Self {
        let modality_dims = match model.fusion() {
            crate::model::Fusion::IdOnly => Vec::new(),
            crate::model::Fusion::Mffm(m) => m.modality_dims().iter().map(|&d| d as u32).collect(),
        };
        ModelMessage {
            version,
            catalog_version,
            catalog_digest,
            config: config.clone(),
            train: train.clone(),
            modality_dims,
            n_items: model.n_items() as u32,
            item_table: Vec::new(),
            fusion: Vec::new(),
        }
    }

    pub(super) fn without_tables(&self) -> Self {
        ModelMessage {
            version: self.version,
            catalog_version: self.catalog_version,
            catalog_digest: self.catalog_digest,
            config: self.config.clone(),
            train: self.train.clone(),
            modality_dims: self.modality_dims.clone(),
            n_items: self.n_items,
            item_table: Vec::new(),
            fusion: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        envelope::seal(MessageKind::Model, &codec::encode(self)).0
    }

    /// Checks the frame and digest and decodes the model, plain (`encode`)
    /// or compact (`encode_as`). The returned message keeps its header
    /// fields; its two tables have moved into the model (so a large model is
    /// never held twice).
    pub fn decode(bytes: &[u8]) -> Result<(Self, GlobalModel)> {
        if Self::is_compact(bytes) {
            return Self::decode_compact(bytes);
        }
        let (body, _) = envelope::open(bytes, MessageKind::Model)?;
        let message: ModelMessage = codec::decode(body, "model")?;
        message.into_model()
    }

    /// Splits into the header (tables emptied) and the checked model.
    pub fn into_model(mut self) -> Result<(Self, GlobalModel)> {
        self.train.validate()?;
        let n = self.n_items as usize;
        let table = std::mem::take(&mut self.item_table);
        let values = table.len();
        let items = Array2::from_shape_vec((n, self.config.dim), table).map_err(|_| {
            Error::Shape(format!(
                "item table has {values} values for {n} items x {}",
                self.config.dim
            ))
        })?;
        let dims: Vec<usize> = self.modality_dims.iter().map(|&d| d as usize).collect();
        let model = GlobalModel::from_parts(&self.config, &dims, items, &self.fusion)?;
        self.fusion = Vec::new();
        Ok((self, model))
    }
}

/// The longest idempotency key an update may carry (bytes). The SDK's are 32
/// hex digits; the bound keeps a client from making the server store and
/// index arbitrary strings.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;

/// One client's update for one round, as uploaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateMessage {
    pub round: u64,
    pub base_version: u64,
    pub idempotency_key: String,
    pub samples: u64,
    pub item_ids: Vec<u32>,
    /// `item_ids.len() x dim`, row-major.
    pub item_rows: Vec<f32>,
    pub dense: Vec<f32>,
}

/// The serde layout `encode` writes, field by field, with the two float
/// arrays read as blocks (`codec::decode_f32s`).
impl<Context> bincode::Decode<Context> for UpdateMessage {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> std::result::Result<Self, bincode::error::DecodeError> {
        use bincode::Decode;
        Ok(UpdateMessage {
            round: <u64 as Decode<Context>>::decode(decoder)?,
            base_version: <u64 as Decode<Context>>::decode(decoder)?,
            idempotency_key: <String as Decode<Context>>::decode(decoder)?,
            samples: <u64 as Decode<Context>>::decode(decoder)?,
            item_ids: <Vec<u32> as Decode<Context>>::decode(decoder)?,
            item_rows: codec::decode_f32s(decoder)?,
            dense: codec::decode_f32s(decoder)?,
        })
    }
}

impl UpdateMessage {
    pub fn new(
        round: u64,
        base_version: u64,
        idempotency_key: String,
        update: &ModelUpdate,
    ) -> Self {
        UpdateMessage {
            round,
            base_version,
            idempotency_key,
            samples: update.samples,
            item_ids: update.item_rows.ids.clone(),
            item_rows: update.item_rows.values.iter().copied().collect(),
            dense: update.dense.clone(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        envelope::seal(MessageKind::Update, &codec::encode(self)).0
    }

    /// Checks the frame and decodes; the idempotency key must be 1 to
    /// `MAX_IDEMPOTENCY_KEY_BYTES` bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (body, _) = envelope::open(bytes, MessageKind::Update)?;
        let message: UpdateMessage = codec::decode_native(body, "update")?;
        let key = message.idempotency_key.len();
        if key == 0 || key > MAX_IDEMPOTENCY_KEY_BYTES {
            return Err(Error::InvalidMessage(format!(
                "update: idempotency key of {key} bytes (1 to {MAX_IDEMPOTENCY_KEY_BYTES})"
            )));
        }
        Ok(message)
    }

    /// The update as the aggregator takes it, for a model of dimension `dim`;
    /// `ModelUpdate::validate` checks it against the model.
    pub fn to_update(&self, dim: usize) -> Result<ModelUpdate> {
        let values = Array2::from_shape_vec((self.item_ids.len(), dim), self.item_rows.clone())
            .map_err(|_| {
                Error::InvalidUpdate(format!(
                    "{} row values for {} ids of dimension {dim}",
                    self.item_rows.len(),
                    self.item_ids.len()
                ))
            })?;
        Ok(ModelUpdate {
            samples: self.samples,
            item_rows: SparseRows {
                ids: self.item_ids.clone(),
                values,
            },
            dense: self.dense.clone(),
        })
    }
}

/// The open round, as `GET /v1/round` announces it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundMessage {
    pub round: u64,
    /// The model version updates of this round must be computed against.
    pub base_version: u64,
    pub catalog_version: u64,
    /// The training configuration clients must use.
    pub train: TrainConfig,
    /// Updates that close the round as soon as they are in.
    pub min_updates: u32,
    pub accepted: u32,
    /// When the round closes if it has at least its floor of updates
    /// (milliseconds since the Unix epoch).
    pub deadline_ms: u64,
}

impl RoundMessage {
    pub fn encode(&self) -> Vec<u8> {
        envelope::seal(MessageKind::Round, &codec::encode(self)).0
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (body, _) = envelope::open(bytes, MessageKind::Round)?;
        codec::decode(body, "round")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Catalog;

    fn catalog() -> CatalogMessage {
        let image = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f32 / 10.0);
        let text = Array2::from_shape_fn((3, 2), |(i, j)| -((i + j) as f32));
        let keys = vec!["a".into(), "b".into(), "c".into()];
        CatalogMessage::from_features(5, keys, &[("image", &image), ("text", &text)]).unwrap()
    }

    #[test]
    fn catalog_round_trips_and_reports_its_digest() {
        let message = catalog();
        let (bytes, digest) = message.encode();
        let (back, got) = CatalogMessage::decode(&bytes).unwrap();
        assert_eq!(back, message);
        assert_eq!(got, digest);
    }

    #[test]
    fn invalid_catalogs_are_refused() {
        let mut dup = catalog();
        dup.items[1].key = "a".into();
        let mut short = catalog();
        short.items[0].features_f16.pop();
        let mut nan = catalog();
        nan.items[2].features_f16[0..2].copy_from_slice(&f16::NAN.to_le_bytes());
        let mut empty_key = catalog();
        empty_key.items[0].key = " ".into();
        let mut zero_dim = catalog();
        zero_dim.modalities[0].dim = 0;
        for (name, m) in [
            ("duplicate key", dup),
            ("short row", short),
            ("NaN", nan),
            ("empty key", empty_key),
            ("zero dim", zero_dim),
        ] {
            let (bytes, _) = m.encode();
            let err = CatalogMessage::decode(&bytes).unwrap_err();
            assert!(matches!(err, Error::InvalidMessage(_)), "{name}: {err}");
        }
    }

    #[test]
    fn model_round_trips_exactly() {
        let features = vec![
            Array2::from_elem((3, 4), 0.5f32),
            Array2::from_elem((3, 2), 1.0),
        ];
        let cat = Catalog {
            n_items: 3,
            features,
        };
        let config = ModelConfig {
            dim: 8,
            ..ModelConfig::default()
        };
        let model = GlobalModel::new(&config, &cat, 3).unwrap();
        let message =
            ModelMessage::from_model(2, (5, [7; 32]), &config, &TrainConfig::default(), &model);
        let (header, decoded) = ModelMessage::decode(&message.encode()).unwrap();
        assert_eq!(decoded, model);
        assert_eq!(
            (
                header.version,
                header.catalog_version,
                header.catalog_digest,
                &header.config,
                &header.train
            ),
            (2, 5, [7; 32], &config, &TrainConfig::default())
        );
        assert!(header.item_table.is_empty() && header.fusion.is_empty());

        let mut wrong = message.clone();
        wrong.fusion.pop();
        assert!(matches!(wrong.into_model(), Err(Error::Shape(_))));
        let mut nan = message.clone();
        nan.item_table[0] = f32::NAN;
        assert!(nan.into_model().is_err());
        let mut rows = message;
        rows.n_items = 4;
        assert!(rows.into_model().is_err());
    }

    #[test]
    fn a_residual_model_round_trips_and_a_bad_fusion_step_is_refused() {
        use crate::model::{Expert, FusionMode};
        let cat = Catalog {
            n_items: 3,
            features: vec![Array2::from_elem((3, 4), 0.5f32)],
        };
        let residual = |fusion_lr| ModelConfig {
            dim: 8,
            fusion: FusionMode::Residual {
                experts: Expert::ALL.to_vec(),
                evidence: true,
                fusion_lr,
                id_dropout: 0.25,
            },
            ..ModelConfig::default()
        };
        let config = residual(Some(0.01));
        let mut model = GlobalModel::new(&config, &cat, 3).unwrap();
        if let crate::model::Fusion::Mffm(m) = &mut model.dense.0.fusion {
            m.residual.as_mut().unwrap().scale.fill(0.25);
        }
        let message =
            ModelMessage::from_model(2, (5, [7; 32]), &config, &TrainConfig::default(), &model);
        let (header, decoded) = ModelMessage::decode(&message.encode()).unwrap();
        assert_eq!(decoded, model, "the scale and the step come back");
        assert_eq!(header.config, config);
        for bad in [f32::NAN, -1.0, 0.0, f32::INFINITY] {
            let hostile = ModelMessage::from_model(
                2,
                (5, [7; 32]),
                &residual(Some(bad)),
                &TrainConfig::default(),
                &model,
            );
            assert!(ModelMessage::decode(&hostile.encode()).is_err(), "{bad}");
        }
        for bad in [f32::NAN, -0.5, 1.0, 7.0] {
            let mut config = residual(Some(0.01));
            if let FusionMode::Residual { id_dropout, .. } = &mut config.fusion {
                *id_dropout = bad;
            }
            let hostile =
                ModelMessage::from_model(2, (5, [7; 32]), &config, &TrainConfig::default(), &model);
            assert!(
                ModelMessage::decode(&hostile.encode()).is_err(),
                "dropout {bad}"
            );
        }
    }

    #[test]
    fn an_update_decodes_as_serde_wrote_it_and_hostile_lengths_are_refused() {
        let mut rng = crate::rng::Rng::new(4);
        for (ids, dim, dense) in [(0usize, 4usize, 0usize), (1, 3, 5), (300, 64, 4608)] {
            let message = UpdateMessage {
                round: 1 << 40,
                base_version: 7,
                idempotency_key: "k\u{e9}y".into(),
                samples: 300,
                item_ids: (0..ids as u32).map(|i| i * 1000 + 3).collect(),
                item_rows: (0..ids * dim).map(|_| rng.normal() as f32).collect(),
                dense: (0..dense).map(|_| rng.normal() as f32 * 1e-30).collect(),
            };
            let body = codec::encode(&message);
            let native: UpdateMessage = codec::decode_native(&body, "update").unwrap();
            let serde: UpdateMessage = codec::decode(&body, "update").unwrap();
            assert_eq!(native, message);
            assert_eq!(native, serde);
            assert_eq!(UpdateMessage::decode(&message.encode()).unwrap(), message);
            // Every truncation is an error, as is a trailing byte.
            for cut in (0..body.len()).step_by(body.len() / 50 + 1) {
                assert!(codec::decode_native::<UpdateMessage>(&body[..cut], "u").is_err());
            }
            let mut longer = body.clone();
            longer.push(0);
            assert!(codec::decode_native::<UpdateMessage>(&longer, "u").is_err());
        }
        // A float array whose count claims far more than the input holds
        // (or than memory could) is refused, not allocated.
        let mut hostile = codec::encode(&(1u64, 1u64, String::from("k"), 1u64, Vec::<u32>::new()));
        hostile.push(253);
        hostile.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        let err = codec::decode_native::<UpdateMessage>(&hostile, "update").unwrap_err();
        assert!(matches!(err, Error::InvalidMessage(_)), "{err}");
        let mut short = codec::encode(&(1u64, 1u64, String::from("k"), 1u64, Vec::<u32>::new()));
        short.push(200); // 200 floats claimed, none present
        assert!(codec::decode_native::<UpdateMessage>(&short, "update").is_err());
    }
}
