//! What a client sends after a local round: the change of the global
//! parameters only (FEDMR.md, "Training").

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::model::params::{Global, Tensors};
use crate::model::{DenseParams, GlobalModel};

/// Rows of an item table, by item id (ids ascending and unique).
#[derive(Clone, Debug, PartialEq)]
pub struct SparseRows {
    pub ids: Vec<u32>,
    pub values: Array2<f32>,
}

/// A client's change of the global model after one local round.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelUpdate {
    /// Training samples behind the update (positives and negatives of one epoch).
    pub samples: u64,
    /// Change of the item-ID rows the client touched.
    pub item_rows: SparseRows,
    /// Change of the dense parameters (fusion, FedNCF's towers), in `Tensors::flatten` order.
    pub dense: Vec<f32>,
}

impl ModelUpdate {
    /// The change from `base` to the locally trained global parameters.
    /// Takes only `Global` values: private state cannot reach an upload.
    pub fn from_training(
        base: &GlobalModel,
        trained_dense: &Global<DenseParams>,
        trained_rows: &Global<SparseRows>,
        samples: u64,
    ) -> Self {
        let base_dense = base.dense.flatten();
        let dense = trained_dense
            .flatten()
            .iter()
            .zip(&base_dense)
            .map(|(a, b)| a - b)
            .collect();
        let mut values = trained_rows.values.clone();
        for (mut row, &id) in values.rows_mut().into_iter().zip(&trained_rows.ids) {
            row -= &base.items.0.0.row(id as usize);
        }
        ModelUpdate {
            samples,
            item_rows: SparseRows {
                ids: trained_rows.ids.clone(),
                values,
            },
            dense,
        }
    }

    /// Checks an update against the model it claims to change: every way a
    /// malformed or hostile update could corrupt aggregation is an error here.
    pub fn validate(&self, model: &GlobalModel) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidUpdate(m));
        if self.samples == 0 {
            return bad("zero samples".into());
        }
        let expected = model.dense.num_params();
        if self.dense.len() != expected {
            return bad(format!(
                "{} dense values, model has {expected}",
                self.dense.len()
            ));
        }
        let rows = &self.item_rows;
        if rows.values.nrows() != rows.ids.len() || rows.values.ncols() != model.dim() {
            return bad(format!(
                "item rows are {}x{} for {} ids, model dimension {}",
                rows.values.nrows(),
                rows.values.ncols(),
                rows.ids.len(),
                model.dim()
            ));
        }
        if let Some(&id) = rows.ids.iter().find(|&&id| id as usize >= model.n_items()) {
            return bad(format!(
                "item id {id} out of range (catalog has {})",
                model.n_items()
            ));
        }
        if rows.ids.windows(2).any(|w| w[0] >= w[1]) {
            return bad("item ids must be ascending and unique".into());
        }
        if !self
            .dense
            .iter()
            .chain(rows.values.iter())
            .all(|v| v.is_finite())
        {
            return bad("non-finite value".into());
        }
        Ok(())
    }
}
