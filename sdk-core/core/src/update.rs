//! What a client sends after a local round: the change of the global
//! parameters only (FEDMR.md, "Training").

use crate::error::{Error, Result};
pub use crate::model::SparseRows;
use crate::model::params::{Global, Tensors};
use crate::model::{DenseParams, GlobalModel};

/// The largest magnitude of any value an update may carry. Honest changes
/// are orders of magnitude smaller (even under local DP's noise); the bound
/// keeps one hostile but finite update (values near f32::MAX) from
/// overflowing the aggregate and the model.
pub const MAX_UPDATE_VALUE: f32 = 1e6;

/// The server's default bound on an update's L2 norm (dense change and
/// item rows together), above which it is clipped. Derived from honest
/// updates' measured norms (README, "Hostile clients").
pub const DEFAULT_NORM_BOUND: f32 = 50.0;

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
        if let Some(v) = self
            .dense
            .iter()
            .chain(rows.values.iter())
            .find(|v| v.abs() > MAX_UPDATE_VALUE)
        {
            return bad(format!(
                "value {v:e} beyond the bound of {MAX_UPDATE_VALUE:e}"
            ));
        }
        Ok(())
    }

    /// L2 norm over every value the update carries (dense and item rows).
    pub fn l2_norm(&self) -> f32 {
        let sq: f64 = self
            .dense
            .iter()
            .chain(self.item_rows.values.iter())
            .map(|&v| f64::from(v) * f64::from(v))
            .sum();
        sq.sqrt() as f32
    }

    /// Scales every value by `factor` (clipping to a norm bound).
    pub fn scale(&mut self, factor: f32) {
        self.dense.iter_mut().for_each(|v| *v *= factor);
        self.item_rows.values.mapv_inplace(|v| v * factor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_and_scale_cover_dense_and_rows() {
        let mut update = ModelUpdate {
            samples: 1,
            item_rows: SparseRows {
                ids: vec![0],
                values: ndarray::array![[0.0, 4.0]],
            },
            dense: vec![3.0],
        };
        assert_eq!(update.l2_norm(), 5.0);
        update.scale(0.5);
        assert_eq!(update.l2_norm(), 2.5);
        assert_eq!(update.dense, vec![1.5]);
    }
}
