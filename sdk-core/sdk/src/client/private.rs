//! The user's private state as stored on the device: the private model
//! (head, router), PFedRec's personal item rows, and bookkeeping.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::installed::InstalledModel;
use crate::{Error, Result};
use fedmr_core::codec;
use fedmr_core::model::PrivateState;
use fedmr_core::model::params::Tensors;
use fedmr_core::update::SparseRows;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PrivateRecord {
    /// The catalog whose item ids `personal_ids` refer to.
    pub catalog_version: u64,
    /// The global model version the last round trained on.
    pub model_version: u64,
    pub rounds_trained: u64,
    /// The outbox key of the update committed with this state.
    pub last_update_key: String,
    /// The private model in `Tensors::flatten` order.
    pub user_params: Vec<f32>,
    pub personal_ids: Vec<u32>,
    pub personal_rows: Vec<f32>,
}

impl PrivateRecord {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(codec::decode(bytes, "stored private state")?)
    }

    pub fn new(
        state: &PrivateState,
        catalog_version: u64,
        model_version: u64,
        rounds_trained: u64,
        last_update_key: String,
    ) -> Self {
        let (personal_ids, personal_rows) = match &state.personal_items.0 {
            Some(rows) => (rows.ids.clone(), rows.values.iter().copied().collect()),
            None => (Vec::new(), Vec::new()),
        };
        PrivateRecord {
            catalog_version,
            model_version,
            rounds_trained,
            last_update_key,
            user_params: state.model.0.flatten(),
            personal_ids,
            personal_rows,
        }
    }
}

/// The user's private state for `model`, and the stored record it came from.
///
/// No record yet gives a fresh state. A record from a model of another
/// structure (say a new latent size) cannot be carried over: the private
/// model starts again. Personal item rows are kept only while the catalog
/// they index is installed.
pub(crate) fn load_state(
    record: Option<&PrivateRecord>,
    model: &InstalledModel,
    seed: u64,
) -> Result<PrivateState> {
    let mut state = PrivateState::new(&model.config, &model.global, seed);
    let Some(record) = record else {
        return Ok(state);
    };
    if state.model.0.load_flat(&record.user_params).is_err() {
        return Ok(state);
    }
    if !state.model.0.all_finite() {
        return Err(Error::Store("stored private state is not finite".into()));
    }
    let dim = model.global.dim();
    if record.catalog_version == model.catalog_version && !record.personal_ids.is_empty() {
        let rows = Array2::from_shape_vec(
            (record.personal_ids.len(), dim),
            record.personal_rows.clone(),
        );
        let in_range = record
            .personal_ids
            .iter()
            .all(|&i| (i as usize) < model.global.n_items());
        if let (Ok(values), true) = (rows, in_range) {
            state.personal_items.0 = Some(SparseRows {
                ids: record.personal_ids.clone(),
                values,
            });
        }
    }
    Ok(state)
}
