//! A round's plan: its negatives and the item rows it touches, decided
//! before any content feature is read (so the caller can fetch exactly
//! those rows, from memory or from a device's store).

use crate::error::{Error, Result};
use crate::model::{Catalog, Fusion, GlobalModel};
use crate::privacy::fixed_negatives_seed;
use crate::rng::Rng;

use super::TrainConfig;

/// What one local round will train on.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundPlan {
    /// The user's training items, sorted and distinct.
    pub(super) positives: Vec<u32>,
    /// Each epoch's negatives, in draw order.
    pub(super) negatives: Vec<Vec<u32>>,
    /// Negatives per epoch as configured (positives x negatives per positive).
    per_epoch: usize,
    /// Every item the round touches, sorted and distinct.
    touched: Vec<u32>,
    /// The seed of the round's local-DP noise (drawn only under local DP,
    /// so undefended rounds keep their random streams).
    noise_seed: u64,
    /// Each epoch's batch positions whose ID row is hidden (ID dropout;
    /// drawn only when the model asks for it).
    pub(super) hidden: Vec<Vec<bool>>,
}

/// Checks the round's inputs and draws every epoch's negatives up front, so
/// the touched rows are known and the item table is trained as a compact
/// local copy of those rows only. `rng` is the stream for this user and round.
pub fn plan_round(
    global: &GlobalModel,
    positives: &[u32],
    config: &TrainConfig,
    rng: &mut Rng,
) -> Result<RoundPlan> {
    config.validate()?;
    let n_items = global.n_items();
    if positives.is_empty() {
        return Err(Error::InvalidConfig(
            "a user needs at least one training item".into(),
        ));
    }
    if let Some(&bad) = positives.iter().find(|&&i| i as usize >= n_items) {
        return Err(Error::InvalidConfig(format!(
            "item {bad} is outside the catalog of {n_items}"
        )));
    }
    let mut seen = positives.to_vec();
    seen.sort_unstable();
    seen.dedup();
    let per_epoch = seen.len() * config.negatives;
    let mut fixed;
    let negatives_rng = if config.protection.fixed_negatives {
        fixed = Rng::new(fixed_negatives_seed(&seen));
        &mut fixed
    } else {
        &mut *rng
    };
    let negatives: Vec<Vec<u32>> = (0..config.epochs)
        .map(|_| sample_negatives(&seen, n_items, per_epoch, negatives_rng))
        .collect();
    let touched = touched_items(&seen, &negatives);
    let noise_seed = match config.protection.local_dp {
        Some(_) => rng.next_u64(),
        None => 0,
    };
    let hidden = match global.fusion() {
        Fusion::Mffm(m) if m.id_dropout() > 0.0 => negatives
            .iter()
            .map(|epoch| {
                (0..seen.len() + epoch.len())
                    .map(|_| rng.uniform() < f64::from(m.id_dropout()))
                    .collect()
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(RoundPlan {
        positives: seen,
        negatives,
        per_epoch,
        touched,
        noise_seed,
        hidden,
    })
}

impl RoundPlan {
    /// The item ids whose rows (and content features) the round needs, ascending.
    pub fn touched(&self) -> &[u32] {
        &self.touched
    }

    /// Refuses a whole catalog that does not cover the model's items in
    /// every modality the model reads.
    pub(super) fn check_catalog(&self, global: &GlobalModel, catalog: &Catalog) -> Result<()> {
        let Fusion::Mffm(mffm) = global.fusion() else {
            return Ok(());
        };
        let n_items = global.n_items();
        let rows_ok =
            catalog.n_items == n_items && catalog.features.iter().all(|f| f.nrows() == n_items);
        if !rows_ok || catalog.modality_dims() != mffm.modality_dims() {
            return Err(Error::Shape(format!(
                "catalog: {} rows of widths {:?} for a model of {n_items} items of widths {:?}",
                catalog.n_items,
                catalog.modality_dims(),
                mffm.modality_dims()
            )));
        }
        Ok(())
    }

    /// Refuses features that are not one row per touched item in every
    /// modality the model reads.
    pub(super) fn check_features(&self, global: &GlobalModel, features: &Catalog) -> Result<()> {
        let Fusion::Mffm(mffm) = global.fusion() else {
            return Ok(());
        };
        let rows_ok = features.n_items == self.touched.len()
            && features
                .features
                .iter()
                .all(|f| f.nrows() == self.touched.len());
        if !rows_ok || features.modality_dims() != mffm.modality_dims() {
            return Err(Error::Shape(format!(
                "round features: {} rows of widths {:?} for {} touched items of widths {:?}",
                features.n_items,
                features.modality_dims(),
                self.touched.len(),
                mffm.modality_dims()
            )));
        }
        Ok(())
    }

    pub(super) fn touched_indices(&self) -> Vec<usize> {
        self.touched.iter().map(|&i| i as usize).collect()
    }

    /// Position of `id` among the touched rows.
    pub(super) fn local_index(&self, id: u32) -> usize {
        self.touched.binary_search(&id).expect("touched item")
    }

    /// One epoch's batch as local row positions: positives first, then `negatives`.
    pub(super) fn batch(&self, negatives: &[u32]) -> Vec<usize> {
        self.positives
            .iter()
            .chain(negatives)
            .map(|&i| self.local_index(i))
            .collect()
    }

    /// The rows the first `epochs` epochs touched.
    pub(super) fn touched_in(&self, epochs: usize) -> Vec<u32> {
        touched_items(&self.positives, &self.negatives[..epochs])
    }

    /// The private stream of the round's local-DP noise.
    pub(super) fn noise_stream(&self) -> Rng {
        Rng::new(self.noise_seed)
    }

    /// Training samples behind the round's update.
    pub(super) fn samples(&self) -> u64 {
        (self.positives.len() + self.per_epoch) as u64
    }
}

/// The sorted, distinct items of `seen` and `negatives`.
fn touched_items(seen: &[u32], negatives: &[Vec<u32>]) -> Vec<u32> {
    let mut touched: Vec<u32> = seen
        .iter()
        .chain(negatives.iter().flatten())
        .copied()
        .collect();
    touched.sort_unstable();
    touched.dedup();
    touched
}

/// `count` items drawn uniformly (with replacement) from those not in
/// `seen` (sorted). Empty when the user has seen every item.
pub fn sample_negatives(seen: &[u32], n_items: usize, count: usize, rng: &mut Rng) -> Vec<u32> {
    let free = n_items - seen.len();
    if free == 0 || count == 0 {
        return Vec::new();
    }
    // Map a uniform index over the unseen items to an item id by skipping the
    // seen ones below it, without building the complement.
    (0..count)
        .map(|_| unseen_item(seen, rng.below(free as u64) as u32))
        .collect()
}

/// The k-th unseen item (0-based) for sorted, distinct `seen`: the smallest
/// x with x = k + |seen <= x|, reached by iterating x <- k + |seen <= x|
/// from x = k (non-decreasing, and never past any solution). Sparse
/// histories settle in two or three steps, each one binary search; a
/// bisection over x took about eight.
fn unseen_item(seen: &[u32], k: u32) -> u32 {
    let mut x = k;
    loop {
        let next = k + seen.partition_point(|&s| s <= x) as u32;
        if next == x {
            return x;
        }
        x = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_item_is_the_kth_item_of_the_complement() {
        let mut rng = Rng::new(13);
        for n in [1u32, 2, 10, 257] {
            for _ in 0..20 {
                let mut seen: Vec<u32> = (0..n).filter(|_| rng.uniform() < 0.4).collect();
                seen.dedup();
                let complement: Vec<u32> =
                    (0..n).filter(|i| seen.binary_search(i).is_err()).collect();
                for (k, &item) in complement.iter().enumerate() {
                    assert_eq!(
                        unseen_item(&seen, k as u32),
                        item,
                        "n {n}, seen {seen:?}, k {k}"
                    );
                }
            }
        }
    }

    #[test]
    fn negatives_are_uniform_over_unseen_items() {
        let seen = [0u32, 2, 3, 7, 9];
        let mut rng = Rng::new(5);
        let draws = sample_negatives(&seen, 10, 50_000, &mut rng);
        let mut counts = [0u32; 10];
        draws.iter().for_each(|&d| counts[d as usize] += 1);
        for (item, &c) in counts.iter().enumerate() {
            if seen.contains(&(item as u32)) {
                assert_eq!(c, 0, "seen item {item} drawn");
            } else {
                assert!((9_000..11_000).contains(&c), "item {item}: {c}");
            }
        }
        assert!(sample_negatives(&[0, 1, 2], 3, 5, &mut rng).is_empty());
    }
}
