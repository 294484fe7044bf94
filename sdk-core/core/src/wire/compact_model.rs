//! The global model in fewer bytes for a phone's download: f16, or 8-, 6-
//! or 4-bit integer codes with one scale per item row (and per 64 values of
//! each dense tensor).
//!
//! The server aggregates and stores the f32 model; each compact download
//! is made from it on the first request of a version. A phone trains from the values it received
//! and uploads the change from them, so the rounding is never aggregated
//! back into the model: it costs the phone's ranking and the starting
//! point of its training, nothing more (README, "Compressed model
//! downloads").

use serde::{Deserialize, Serialize};

use super::envelope::{self, MessageKind};
use super::messages::ModelMessage;
use super::packed::{Packed, pack_f16, pack_int};
use crate::codec;
use crate::model::GlobalModel;
use crate::model::params::Tensors;
use crate::{Error, Result};

/// Values per integer scale within a dense tensor (the item table has one
/// scale per row).
const DENSE_BLOCK: usize = 64;

/// How a model download encodes its values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelEncoding {
    /// The model as the server holds it (4 bytes a value).
    #[default]
    F32,
    /// 2 bytes a value.
    F16,
    /// 8-bit codes and an f16 scale per item row (per 64 values of a
    /// dense tensor): 0.26 of f32 at d = 64.
    Int8,
    /// 6-bit codes, scaled as int8: 0.20 of f32 at d = 64.
    Int6,
    /// 4-bit codes, scaled as int8: 0.13 of f32 at d = 64.
    Int4,
}

impl ModelEncoding {
    pub const ALL: [ModelEncoding; 5] = [
        ModelEncoding::F32,
        ModelEncoding::F16,
        ModelEncoding::Int8,
        ModelEncoding::Int6,
        ModelEncoding::Int4,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelEncoding::F32 => "f32",
            ModelEncoding::F16 => "f16",
            ModelEncoding::Int8 => "int8",
            ModelEncoding::Int6 => "int6",
            ModelEncoding::Int4 => "int4",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        ModelEncoding::ALL
            .into_iter()
            .find(|e| e.name() == name.trim())
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "model encoding {name:?}: expected one of f32, f16, int8, int6, int4"
                ))
            })
    }

    /// Bits per integer code, for the integer encodings.
    fn code_bits(self) -> Option<u8> {
        match self {
            ModelEncoding::F32 | ModelEncoding::F16 => None,
            ModelEncoding::Int8 => Some(8),
            ModelEncoding::Int6 => Some(6),
            ModelEncoding::Int4 => Some(4),
        }
    }

    /// `model` with its values as a phone receives them in this encoding
    /// (a simulation in one process trains and ranks from these).
    pub fn round_trip(self, model: &GlobalModel) -> Result<GlobalModel> {
        let Some((items, dense)) = self.pack(model)? else {
            return Ok(model.clone());
        };
        let mut received = model.clone();
        let items = items.unpack(items.len(), "item table")?;
        received
            .items
            .0
            .0
            .as_slice_mut()
            .expect("the item table is standard-layout")
            .copy_from_slice(&items);
        received
            .dense
            .load_flat(&dense.unpack(dense.len(), "dense parameters")?)
            .map_err(Error::Shape)?;
        Ok(received)
    }

    /// The item table and the dense parameters packed; `None` for f32.
    fn pack(self, model: &GlobalModel) -> Result<Option<(Packed, Packed)>> {
        let items = model.items.0.0.as_standard_layout();
        let items = items.as_slice().expect("standard layout");
        let dense = model.dense.flatten();
        if self == ModelEncoding::F16 {
            return Ok(Some((pack_f16(items)?, pack_f16(&dense)?)));
        }
        let Some(bits) = self.code_bits() else {
            return Ok(None);
        };
        let mut segments = Vec::new();
        model.dense.visit(&mut |t| segments.push(t.len()));
        let dim = model.dim().max(1);
        Ok(Some((
            pack_int(items, bits, &[items.len()], dim)?,
            pack_int(&dense, bits, &segments, DENSE_BLOCK)?,
        )))
    }
}

/// A compact download's body: the model message's header (tables empty)
/// and the two tables packed.
#[derive(Serialize, Deserialize)]
struct CompactModelBody {
    header: ModelMessage,
    items: Packed,
    dense: Packed,
}

impl ModelMessage {
    /// The framed download of `model` under this header in `encoding`
    /// (`encode()` for f32). Fails when a value does not fit the encoding
    /// (a server then sends f32).
    pub fn encode_as(&self, model: &GlobalModel, encoding: ModelEncoding) -> Result<Vec<u8>> {
        let Some((items, dense)) = encoding.pack(model)? else {
            // The values are `model`'s, whatever tables this header holds.
            return Ok(ModelMessage {
                item_table: model.items.0.0.iter().copied().collect(),
                fusion: model.dense.flatten(),
                ..self.without_tables()
            }
            .encode());
        };
        let body = CompactModelBody {
            header: self.without_tables(),
            items,
            dense,
        };
        Ok(envelope::seal(MessageKind::CompactModel, &codec::encode(&body)).0)
    }

    /// Whether `bytes` frame a compact model (else a plain one, or nothing).
    pub(super) fn is_compact(bytes: &[u8]) -> bool {
        bytes.get(6) == Some(&(MessageKind::CompactModel as u8))
    }

    /// Checks and unpacks a compact model download.
    pub(super) fn decode_compact(bytes: &[u8]) -> Result<(Self, GlobalModel)> {
        let (body, _) = envelope::open(bytes, MessageKind::CompactModel)?;
        let body: CompactModelBody = codec::decode(body, "compact model")?;
        let mut message = body.header;
        let cells = (message.n_items as usize)
            .checked_mul(message.config.dim)
            .ok_or_else(|| Error::InvalidMessage("item table size overflows".into()))?;
        message.item_table = body.items.unpack(cells, "item table")?;
        message.fusion = body.dense.unpack(body.dense.len(), "dense parameters")?;
        message.into_model()
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;
    use crate::model::{Catalog, ModelConfig};
    use crate::train::TrainConfig;

    fn model() -> (ModelConfig, GlobalModel) {
        let catalog = Catalog {
            n_items: 50,
            features: vec![
                Array2::from_shape_fn((50, 12), |(i, j)| ((i * 7 + j) % 11) as f32 / 11.0),
                Array2::from_shape_fn((50, 6), |(i, j)| ((i + 3 * j) % 5) as f32 / 5.0),
            ],
        };
        let config = ModelConfig {
            dim: 16,
            ..ModelConfig::default()
        };
        let model = GlobalModel::new(&config, &catalog, 9).unwrap();
        (config, model)
    }

    fn largest_error(a: &GlobalModel, b: &GlobalModel) -> f32 {
        let items = a.items.0.0.iter().zip(b.items.0.0.iter());
        let (da, db) = (a.dense.flatten(), b.dense.flatten());
        items
            .chain(da.iter().zip(&db))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn each_encoding_decodes_to_its_round_trip_and_is_smaller() {
        let (config, model) = model();
        let full =
            ModelMessage::from_model(3, (1, [2; 32]), &config, &TrainConfig::default(), &model);
        let plain = full.encode();
        // A header without tables encodes the model's values all the same.
        let header =
            ModelMessage::header(3, (1, [2; 32]), &config, &TrainConfig::default(), &model);
        assert_eq!(header.encode_as(&model, ModelEncoding::F32).unwrap(), plain);
        let mut sizes = Vec::new();
        for encoding in ModelEncoding::ALL {
            let bytes = header.encode_as(&model, encoding).unwrap();
            let (decoded_header, decoded) = ModelMessage::decode(&bytes).unwrap();
            assert_eq!(
                decoded,
                encoding.round_trip(&model).unwrap(),
                "{encoding:?}"
            );
            assert_eq!(decoded_header.version, 3);
            assert_eq!(decoded_header.config, config);
            sizes.push(bytes.len() as f64 / plain.len() as f64);
            let error = largest_error(&model, &decoded);
            let bound = match encoding {
                ModelEncoding::F32 => 0.0,
                ModelEncoding::F16 => 1e-3,
                ModelEncoding::Int8 => 2e-2,
                ModelEncoding::Int6 => 8e-2,
                ModelEncoding::Int4 => 0.35,
            };
            assert!(
                error <= bound && (error > 0.0) == (bound > 0.0),
                "{encoding:?} {error}"
            );
        }
        // Fewer bits, fewer bytes (this small model's header weighs).
        assert_eq!(sizes[0], 1.0);
        assert!(sizes.windows(2).all(|w| w[1] < w[0]), "{sizes:?}");
        assert!(
            sizes[1] < 0.52 && sizes[2] < 0.33 && sizes[4] < 0.2,
            "{sizes:?}"
        );
    }

    #[test]
    fn names_parse_back_and_unknown_ones_are_refused() {
        for encoding in ModelEncoding::ALL {
            assert_eq!(ModelEncoding::parse(encoding.name()).unwrap(), encoding);
        }
        assert!(matches!(
            ModelEncoding::parse("int3"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_value_too_large_for_the_encoding_is_an_error_not_garbage() {
        let (config, mut model) = model();
        model.items.0.0[[0, 0]] = 1e9;
        let header =
            ModelMessage::from_model(3, (1, [2; 32]), &config, &TrainConfig::default(), &model);
        for encoding in &ModelEncoding::ALL[1..] {
            let encoding = *encoding;
            assert!(header.encode_as(&model, encoding).is_err(), "{encoding:?}");
        }
    }

    #[test]
    fn damaged_compact_downloads_are_refused() {
        let (config, model) = model();
        let header =
            ModelMessage::from_model(3, (1, [2; 32]), &config, &TrainConfig::default(), &model);
        let good = header.encode_as(&model, ModelEncoding::Int8).unwrap();
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(ModelMessage::decode(&flipped).is_err());
        // A well-framed body whose item table is one row short.
        let (body, _) = envelope::open(&good, MessageKind::CompactModel).unwrap();
        let mut body: CompactModelBody = codec::decode(body, "t").unwrap();
        body.header.n_items += 1;
        let reframed = envelope::seal(MessageKind::CompactModel, &codec::encode(&body)).0;
        assert!(matches!(
            ModelMessage::decode(&reframed),
            Err(Error::InvalidMessage(_))
        ));
    }
}
