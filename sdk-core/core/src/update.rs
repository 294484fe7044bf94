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
        // One branch-free pass over contiguous slices (the server checks
        // every upload; the chained element iterators cost 8% of its time).
        let within = |values: &[f32]| {
            values
                .iter()
                .fold(true, |ok, v| ok & (v.abs() <= MAX_UPDATE_VALUE))
        };
        let row_values = self.row_values();
        if !(within(&self.dense) && within(&row_values)) {
            let mut values = self.dense.iter().chain(row_values.iter());
            if !values.clone().all(|v| v.is_finite()) {
                return bad("non-finite value".into());
            }
            let v = values
                .find(|v| v.abs() > MAX_UPDATE_VALUE)
                .expect("a value failed the bound");
            return bad(format!(
                "value {v:e} beyond the bound of {MAX_UPDATE_VALUE:e}"
            ));
        }
        Ok(())
    }

    /// L2 norm over every value the update carries (dense and item rows).
    pub fn l2_norm(&self) -> f32 {
        // f64 sums in eight lanes: exact enough for a bound, and vectorised.
        let sum_squares = |values: &[f32]| {
            let mut lanes = [0f64; 8];
            let chunks = values.chunks_exact(8);
            let tail: f64 = chunks
                .remainder()
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum();
            for chunk in chunks {
                for (lane, &v) in lanes.iter_mut().zip(chunk) {
                    *lane += f64::from(v) * f64::from(v);
                }
            }
            lanes.iter().sum::<f64>() + tail
        };
        (sum_squares(&self.dense) + sum_squares(&self.row_values())).sqrt() as f32
    }

    /// The item rows' values as one slice (borrowed when the rows are
    /// contiguous, as every update built here is).
    fn row_values(&self) -> std::borrow::Cow<'_, [f32]> {
        match self.item_rows.values.as_slice() {
            Some(values) => std::borrow::Cow::Borrowed(values),
            None => std::borrow::Cow::Owned(self.item_rows.values.iter().copied().collect()),
        }
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

    /// A fused model, so updates carry dense values too.
    fn model() -> GlobalModel {
        let mut rng = crate::rng::Rng::new(12);
        let catalog = crate::model::Catalog {
            n_items: 10,
            features: vec![ndarray::Array2::from_shape_fn((10, 3), |_| {
                rng.normal() as f32
            })],
        };
        let config = crate::model::ModelConfig {
            fusion: crate::model::FusionMode::full(),
            dim: 4,
            ..Default::default()
        };
        GlobalModel::new(&config, &catalog, 1).unwrap()
    }

    fn update_of(model: &GlobalModel, rows: ndarray::Array2<f32>) -> ModelUpdate {
        ModelUpdate {
            samples: 3,
            item_rows: SparseRows {
                ids: (0..rows.nrows() as u32).collect(),
                values: rows,
            },
            dense: vec![0.25; model.dense.num_params()],
        }
    }

    #[test]
    fn every_value_is_checked_wherever_it_sits() {
        let model = model();
        let honest = ndarray::Array2::from_elem((9, 4), 0.5f32);
        assert!(update_of(&model, honest.clone()).validate(&model).is_ok());
        // Each position of the rows (within and after the eight-value
        // chunks), each bad kind; the message names the kind.
        for at in 0..honest.len() {
            for (bad, says) in [
                (f32::NAN, "non-finite"),
                (f32::INFINITY, "non-finite"),
                (-2e6, "beyond the bound"),
            ] {
                let mut rows = honest.clone();
                rows.as_slice_mut().unwrap()[at] = bad;
                let err = update_of(&model, rows).validate(&model).unwrap_err();
                assert!(err.to_string().contains(says), "{at} {bad}: {err}");
            }
        }
        // A non-finite value is named first even after a too-large one.
        let mut rows = honest.clone();
        rows[[0, 0]] = 5e6;
        rows[[8, 3]] = f32::NAN;
        let err = update_of(&model, rows).validate(&model).unwrap_err();
        assert!(err.to_string().contains("non-finite"), "{err}");
        let mut update = update_of(&model, honest.clone());
        *update.dense.last_mut().unwrap() = f32::NEG_INFINITY;
        assert!(update.validate(&model).is_err());
        // Rows that are not one contiguous slice are checked as well.
        let mut wide = ndarray::Array2::from_elem((4, 9), 0.5f32);
        wide[[3, 8]] = 3e6;
        let err = update_of(&model, wide.reversed_axes())
            .validate(&model)
            .unwrap_err();
        assert!(err.to_string().contains("beyond the bound"), "{err}");
    }

    #[test]
    fn the_norm_equals_a_plain_sum_for_any_length() {
        let model = model();
        let mut rng = crate::rng::Rng::new(5);
        for n in [1usize, 7, 8, 9, 23] {
            let rows = ndarray::Array2::from_shape_fn((n, 4), |_| rng.normal() as f32);
            let update = update_of(&model, rows);
            let plain: f64 = update
                .dense
                .iter()
                .chain(update.item_rows.values.iter())
                .map(|&v| f64::from(v) * f64::from(v))
                .sum();
            let got = f64::from(update.l2_norm());
            assert!((got - plain.sqrt()).abs() <= 1e-6 * plain.sqrt(), "{n}");
            let transposed = update_of(
                &model,
                update.item_rows.values.t().to_owned().reversed_axes(),
            );
            assert_eq!(transposed.l2_norm(), update.l2_norm());
        }
    }
}
