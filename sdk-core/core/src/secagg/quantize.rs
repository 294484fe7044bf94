//! An update as one vector of Z_2^32 of the same shape for every client
//! (masks only cancel between vectors of one shape), and the sum of such
//! vectors back into the sums the aggregator divides.
//!
//! Layout: `weight x dense`, `weight`, `weight x row` for every item row (zero
//! where the client did not touch it), then `weight` for each row it touched.
//! The server so gets exactly what plain aggregation computes — a weighted
//! mean of the dense change, and each row's mean over the clients that
//! touched it — without any client's weight, rows or values on their own.
//!
//! Fixed point: a value is clamped to `±clip`, multiplied by a scale that
//! leaves room for `max_clients` such values in an i32, rounded, and stored
//! as its two's-complement u32. Wrapping sums of up to `max_clients` of them
//! are exact; the rounding error per value is at most half a step.

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::model::params::Tensors;
use crate::model::{Backbone, GlobalModel};
use crate::update::ModelUpdate;

/// The shape of a round's vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub dense: usize,
    pub items: usize,
    pub dim: usize,
}

impl Layout {
    pub fn of(model: &GlobalModel) -> Self {
        Layout {
            dense: model.dense.num_params(),
            items: model.n_items(),
            dim: model.dim(),
        }
    }

    /// Values per vector.
    pub fn len(&self) -> usize {
        self.dense + 1 + self.items * self.dim + self.items
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn rows_start(&self) -> usize {
        self.dense + 1
    }

    fn row_weights_start(&self) -> usize {
        self.rows_start() + self.items * self.dim
    }
}

/// The fixed-point code of one round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FixedPoint {
    clip: f64,
    scale: f64,
}

impl FixedPoint {
    pub fn new(clip: f32, max_clients: u32) -> Self {
        let clip = f64::from(clip);
        FixedPoint {
            clip,
            scale: f64::from(i32::MAX) / (clip * f64::from(max_clients.max(1))),
        }
    }

    /// The distance between two neighbouring codes (twice the largest
    /// rounding error of one value).
    pub fn step(&self) -> f64 {
        1.0 / self.scale
    }

    fn encode(&self, v: f64) -> (u32, bool) {
        let clamped = v.clamp(-self.clip, self.clip);
        ((clamped * self.scale).round() as i32 as u32, clamped != v)
    }

    fn decode(&self, code: u32) -> f64 {
        f64::from(code as i32) / self.scale
    }
}

/// A client's weight, normalised to (0, 1] by the round's sample cap so it
/// fits the fixed-point range: the ratio between clients is what plain
/// aggregation with the same cap uses.
pub fn normalised_weight(backbone: Backbone, samples: u64, sample_cap: u64) -> f64 {
    let cap = sample_cap.max(1);
    backbone.aggregation_weight(samples.clamp(1, cap)) / backbone.aggregation_weight(cap)
}

/// One client's quantised vector, and how many values the clip changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    pub values: Vec<u32>,
    pub clipped: usize,
}

/// Quantises `update` (already validated against the model) with `weight`.
pub fn quantize(
    update: &ModelUpdate,
    weight: f64,
    layout: &Layout,
    code: &FixedPoint,
) -> Result<Quantized> {
    let rows = &update.item_rows;
    if update.dense.len() != layout.dense
        || rows.values.ncols() != layout.dim
        || rows.ids.iter().any(|&id| id as usize >= layout.items)
    {
        return Err(Error::InvalidUpdate(
            "the update does not fit the round's secure-aggregation layout".into(),
        ));
    }
    let mut values = vec![0u32; layout.len()];
    let mut clipped = 0;
    let mut put = |slot: &mut u32, v: f64| {
        let (c, was_clipped) = code.encode(v);
        *slot = c;
        clipped += usize::from(was_clipped);
    };
    for (slot, &d) in values.iter_mut().zip(&update.dense) {
        put(slot, weight * f64::from(d));
    }
    put(&mut values[layout.dense], weight);
    let (rows_start, weights_start) = (layout.rows_start(), layout.row_weights_start());
    for (&id, row) in rows.ids.iter().zip(rows.values.rows()) {
        let at = rows_start + id as usize * layout.dim;
        for (slot, &v) in values[at..at + layout.dim].iter_mut().zip(row) {
            put(slot, weight * f64::from(v));
        }
        put(&mut values[weights_start + id as usize], weight);
    }
    Ok(Quantized { values, clipped })
}

/// What the server learns from a round under secure aggregation: sums over
/// the clients whose inputs were unmasked, nothing per client.
#[derive(Clone, Debug, PartialEq)]
pub struct UnmaskedSums {
    pub clients: usize,
    pub dense: Vec<f64>,
    pub weight: f64,
    pub rows: Array2<f32>,
    pub row_weights: Vec<f64>,
}

/// Decodes the unmasked sum of `clients` vectors.
pub fn dequantize(
    sum: &[u32],
    clients: usize,
    layout: &Layout,
    code: &FixedPoint,
) -> Result<UnmaskedSums> {
    if sum.len() != layout.len() {
        return Err(Error::Shape(format!(
            "an aggregate of {} values for a layout of {}",
            sum.len(),
            layout.len()
        )));
    }
    let (rows_start, weights_start) = (layout.rows_start(), layout.row_weights_start());
    let rows = Array2::from_shape_fn((layout.items, layout.dim), |(i, k)| {
        code.decode(sum[rows_start + i * layout.dim + k]) as f32
    });
    Ok(UnmaskedSums {
        clients,
        dense: sum[..layout.dense]
            .iter()
            .map(|&c| code.decode(c))
            .collect(),
        weight: code.decode(sum[layout.dense]),
        rows,
        row_weights: sum[weights_start..]
            .iter()
            .map(|&c| code.decode(c))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::SparseRows;

    #[test]
    fn wrapping_sums_decode_to_the_sum_within_half_a_step_per_value() {
        let layout = Layout {
            dense: 3,
            items: 4,
            dim: 2,
        };
        let code = FixedPoint::new(2.0, 10);
        let updates: Vec<ModelUpdate> = (0..10)
            .map(|c| ModelUpdate {
                samples: 1,
                item_rows: SparseRows {
                    ids: vec![c % 4],
                    values: ndarray::array![[-1.5, 0.25 * c as f32]],
                },
                dense: vec![1.9, -1.9, 0.001 * c as f32],
            })
            .collect();
        let mut sum = vec![0u32; layout.len()];
        for u in &updates {
            let q = quantize(u, 1.0, &layout, &code).unwrap();
            assert_eq!(q.clipped, usize::from(u.item_rows.values[[0, 1]] > 2.0));
            for (s, v) in sum.iter_mut().zip(q.values) {
                *s = s.wrapping_add(v);
            }
        }
        let sums = dequantize(&sum, 10, &layout, &code).unwrap();
        let tolerance = 10.0 * code.step() / 2.0;
        // The inputs are f32: compare with their exact values.
        let v = f64::from(1.9f32);
        assert!((sums.dense[0] - 10.0 * v).abs() <= tolerance);
        assert!((sums.dense[1] + 10.0 * v).abs() <= tolerance);
        let small: f64 = (0..10).map(|c| f64::from(0.001 * c as f32)).sum();
        assert!((sums.dense[2] - small).abs() <= tolerance);
        assert!((sums.weight - 10.0).abs() <= tolerance);
        assert!((sums.row_weights[0] - 3.0).abs() <= tolerance);
        assert!((f64::from(sums.rows[[0, 0]]) + 4.5).abs() <= tolerance + 1e-6);
        // Row 1 saw clients 1, 5 and 9: 0.25 + 1.25 + 2.0 (2.25 clipped to 2).
        assert!((f64::from(sums.rows[[1, 1]]) - 3.5).abs() <= tolerance + 1e-6);
    }

    #[test]
    fn an_update_of_another_shape_is_refused() {
        let layout = Layout {
            dense: 3,
            items: 4,
            dim: 2,
        };
        let update = ModelUpdate {
            samples: 1,
            item_rows: SparseRows {
                ids: vec![4],
                values: ndarray::array![[0.0, 0.0]],
            },
            dense: vec![0.0; 3],
        };
        let code = FixedPoint::new(1.0, 3);
        assert!(quantize(&update, 1.0, &layout, &code).is_err());
    }
}
