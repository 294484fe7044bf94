//! A trained update turned into the upload the round's `Protection` allows.

use ndarray::Array2;

use super::{Protection, UploadRows};
use crate::model::SparseRows;
use crate::rng::Rng;
use crate::update::ModelUpdate;

/// The seed of a user's fixed negatives: a function of their (sorted,
/// distinct) training items only, so the same negatives are drawn every
/// round until the history changes. The server never sees the items, so it
/// cannot recompute the stream.
pub(crate) fn fixed_negatives_seed(positives: &[u32]) -> u64 {
    let labels: Vec<u64> = positives.iter().map(|&i| u64::from(i)).collect();
    Rng::derive_seed(0x4e45_4741_5449_5645, &labels)
}

/// Applies the row set, local DP and the declared count, in that order: the
/// noise covers every value that leaves. `noise` is the round's private
/// stream (used only under local DP).
pub(crate) fn protect(
    mut update: ModelUpdate,
    n_items: usize,
    protection: &Protection,
    noise: &mut Rng,
) -> ModelUpdate {
    if protection.rows == UploadRows::Catalog {
        update.item_rows = every_row(&update.item_rows, n_items);
    }
    if let Some(dp) = &protection.local_dp {
        clip(&mut update, f64::from(dp.clip_norm));
        let std = f64::from(dp.noise_multiplier) * f64::from(dp.clip_norm);
        if std > 0.0 {
            let mut add_noise = |v: &mut f32| *v += (noise.normal() * std) as f32;
            update.item_rows.values.iter_mut().for_each(&mut add_noise);
            update.dense.iter_mut().for_each(&mut add_noise);
        }
    }
    if protection.hide_sample_count {
        update.samples = 1;
    }
    update
}

/// `rows` spread over the whole table, zero where untouched.
fn every_row(rows: &SparseRows, n_items: usize) -> SparseRows {
    let mut values = Array2::zeros((n_items, rows.values.ncols()));
    for (&id, row) in rows.ids.iter().zip(rows.values.rows()) {
        values.row_mut(id as usize).assign(&row);
    }
    SparseRows {
        ids: (0..n_items as u32).collect(),
        values,
    }
}

/// Scales the whole update (rows and dense) down to L2 norm `max` if longer.
fn clip(update: &mut ModelUpdate, max: f64) {
    let norm = f64::from(update.l2_norm());
    if norm > max {
        update.scale((max / norm) as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::LocalDp;

    fn update() -> ModelUpdate {
        ModelUpdate {
            samples: 12,
            item_rows: SparseRows {
                ids: vec![1, 3],
                values: Array2::from_shape_vec((2, 2), vec![3.0, 0.0, 0.0, 4.0]).unwrap(),
            },
            dense: vec![0.0, 12.0],
        }
    }

    #[test]
    fn catalog_rows_carry_every_row_and_the_trained_values() {
        let protection = Protection {
            rows: UploadRows::Catalog,
            ..Protection::none()
        };
        let out = protect(update(), 5, &protection, &mut Rng::new(1));
        assert_eq!(out.item_rows.ids, vec![0, 1, 2, 3, 4]);
        assert_eq!(out.item_rows.values.row(1).to_vec(), vec![3.0, 0.0]);
        assert_eq!(out.item_rows.values.row(3).to_vec(), vec![0.0, 4.0]);
        assert_eq!(out.item_rows.values.row(2).to_vec(), vec![0.0, 0.0]);
        assert_eq!(out.samples, 12);
        assert_eq!(
            protect(update(), 5, &Protection::none(), &mut Rng::new(1)),
            update()
        );
    }

    #[test]
    fn dp_clips_the_whole_update_then_adds_noise_of_the_configured_size() {
        let clip_only = Protection {
            rows: UploadRows::Catalog,
            local_dp: Some(LocalDp {
                clip_norm: 6.5,
                noise_multiplier: 0.0,
            }),
            hide_sample_count: true,
            ..Protection::none()
        };
        // Norm of the update: sqrt(9 + 16 + 144) = 13, so everything halves.
        let out = protect(update(), 4, &clip_only, &mut Rng::new(1));
        assert!((out.l2_norm() - 6.5).abs() < 1e-5);
        assert_eq!(out.dense, vec![0.0, 6.0]);
        assert_eq!(out.samples, 1);

        let noisy = Protection {
            local_dp: Some(LocalDp {
                clip_norm: 1.0,
                noise_multiplier: 2.0,
            }),
            ..clip_only
        };
        let n_items = 4000;
        let out = protect(update(), n_items, &noisy, &mut Rng::new(2));
        let values: Vec<f64> = out.item_rows.values.iter().map(|&v| f64::from(v)).collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((std - 2.0).abs() < 0.05, "std {std}");
    }

    #[test]
    fn fixed_negatives_follow_the_history_only() {
        assert_eq!(
            fixed_negatives_seed(&[1, 4, 9]),
            fixed_negatives_seed(&[1, 4, 9])
        );
        assert_ne!(
            fixed_negatives_seed(&[1, 4, 9]),
            fixed_negatives_seed(&[1, 4, 8])
        );
    }
}
