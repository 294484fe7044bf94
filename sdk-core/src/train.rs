//! One local round on a device: sample negatives, run E full-batch SGD
//! epochs on the user's data, and produce the update (FEDMR.md, "Training").

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::layers::embedding::{gather, scatter_add};
use crate::model::optim::sgd_step;
use crate::model::params::{Global, Tensors};
use crate::model::rap::{RapWeights, regularizer};
use crate::model::stack::{Batch, loss_and_gradients};
use crate::model::{Backbone, Catalog, Fusion, GlobalModel, PersonalItems, PrivateState};
use crate::rng::Rng;
use crate::update::{ModelUpdate, SparseRows};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub lr: f32,
    /// Learning rate of the item-ID rows (default: `lr`). Under the mean BCE
    /// a row's gradient is divided by the batch size, while the dense fusion
    /// layers see every sample: one step size rarely suits both.
    #[serde(default)]
    pub item_lr: Option<f32>,
    pub epochs: usize,
    /// Negatives sampled per positive.
    pub negatives: usize,
    /// The round this training belongs to, 1-based (the version of the model
    /// trained on); FedRAP's regularisers ramp up with it. Not part of the
    /// published configuration: each caller sets it.
    #[serde(skip, default = "first_round")]
    pub round: u64,
}

fn first_round() -> u64 {
    1
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            lr: 0.1,
            item_lr: None,
            epochs: 5,
            negatives: 1,
            round: first_round(),
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::InvalidConfig(format!(
                "learning rate must be positive, got {}",
                self.lr
            )));
        }
        if let Some(lr) = self.item_lr.filter(|lr| !(lr.is_finite() && *lr > 0.0)) {
            return Err(Error::InvalidConfig(format!(
                "item learning rate must be positive, got {lr}"
            )));
        }
        if self.epochs == 0 {
            return Err(Error::InvalidConfig("epochs must be at least 1".into()));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocalReport {
    /// Mean BCE of each epoch, before that epoch's step.
    pub epoch_losses: Vec<f32>,
    pub samples: u64,
}

/// Where training reads content features from: the whole `Catalog` in the
/// simulator, the SQLite catalog on a device (only the touched rows).
pub trait FeatureSource {
    /// Feature rows of `ids`, one matrix per modality.
    fn gather_features(&self, ids: &[usize]) -> Result<Vec<Array2<f32>>>;
}

impl FeatureSource for Catalog {
    fn gather_features(&self, ids: &[usize]) -> Result<Vec<Array2<f32>>> {
        Ok(self.gather(ids))
    }
}

/// What an observer sees after each epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochProgress {
    /// Epochs done so far (1-based).
    pub epoch: usize,
    pub epochs: usize,
    /// Mean BCE of this epoch, before its step.
    pub loss: f32,
}

/// An observer's answer after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Keep the epochs done so far and finish the round with them.
    Stop,
    /// Discard the round: `train_local_observed` returns `Error::Cancelled`.
    Cancel,
}

/// Trains one user for one round. `positives` are the user's training items
/// (the only items excluded from negative sampling: validation and test items
/// stay eligible, as they would be on a real device that holds them out).
/// `rng` is the stream for this user and round.
pub fn train_local(
    global: &GlobalModel,
    catalog: &dyn FeatureSource,
    backbone: Backbone,
    state: &mut PrivateState,
    positives: &[u32],
    config: &TrainConfig,
    rng: &mut Rng,
) -> Result<(ModelUpdate, LocalReport)> {
    let mut run_all = |_: &EpochProgress| Flow::Continue;
    train_local_observed(
        global,
        catalog,
        backbone,
        state,
        positives,
        config,
        rng,
        &mut run_all,
    )
}

/// `train_local` with an observer called after every epoch, which may stop
/// the round early (keeping the epochs done) or cancel it. `state` changes
/// only when the call returns `Ok`.
#[allow(clippy::too_many_arguments)]
pub fn train_local_observed(
    global: &GlobalModel,
    catalog: &dyn FeatureSource,
    backbone: Backbone,
    state: &mut PrivateState,
    positives: &[u32],
    config: &TrainConfig,
    rng: &mut Rng,
    observer: &mut dyn FnMut(&EpochProgress) -> Flow,
) -> Result<(ModelUpdate, LocalReport)> {
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

    // Negatives for every epoch up front, so the touched rows are known and
    // the item table is trained as a compact local copy of those rows only.
    let per_epoch = seen.len() * config.negatives;
    let negatives: Vec<Vec<u32>> = (0..config.epochs)
        .map(|_| sample_negatives(&seen, n_items, per_epoch, rng))
        .collect();
    let touched = touched_items(&seen, &negatives);
    let local_index = |id: u32| touched.binary_search(&id).expect("touched item");
    let touched_usize: Vec<usize> = touched.iter().map(|&i| i as usize).collect();

    let mut rows = gather(&global.items.0.0.view(), &touched_usize);
    // Content rows of the touched items, read once; batches index them locally.
    let local_features = match global.fusion() {
        Fusion::IdOnly => Catalog::default(),
        Fusion::Mffm(_) => Catalog {
            n_items: touched.len(),
            features: catalog.gather_features(&touched_usize)?,
        },
    };
    // FedRAP's personal rows P_u of the touched items (zero where new).
    let additive = backbone.personal_items() == PersonalItems::Add;
    let mut personal = additive.then(|| personal_rows_of(state, &touched, global.dim()));
    let rap_weights = RapWeights::at_round(config.round);
    let mut dense = global.dense.clone();
    // A copy, committed to the state only if the round ends finite.
    let mut user = state.model.0.clone();
    let mut epoch_losses = Vec::with_capacity(config.epochs);

    let positive_local: Vec<usize> = seen.iter().map(|&i| local_index(i)).collect();
    for negs in &negatives {
        let batch_local: Vec<usize> = positive_local
            .iter()
            .copied()
            .chain(negs.iter().map(|&i| local_index(i)))
            .collect();
        let id_rows = gather(&rows.view(), &batch_local);
        let features = match &dense.fusion {
            Fusion::IdOnly => Vec::new(),
            Fusion::Mffm(_) => local_features.gather(&batch_local),
        };
        let personal_batch = personal.as_ref().map(|p| gather(&p.view(), &batch_local));
        let labels: Array1<f32> = (0..batch_local.len())
            .map(|k| if k < seen.len() { 1.0 } else { 0.0 })
            .collect();
        let batch = Batch {
            id_rows: id_rows.view(),
            features: features.iter().map(|f| f.view()).collect(),
            labels: labels.view(),
            positives: seen.len(),
            personal_rows: personal_batch.as_ref().map(|p| p.view()),
        };
        let grads = loss_and_gradients(&dense, &user, &batch);
        let mut loss = grads.loss;
        sgd_step(&mut dense.0, &grads.dense.flatten(), config.lr);
        sgd_step(&mut user, &grads.user.flatten(), config.lr);
        let item_lr = config.item_lr.unwrap_or(config.lr);
        let mut d_rows = Array2::zeros(rows.raw_dim());
        scatter_add(&mut d_rows, &batch_local, &grads.id_rows.view());
        if let (Some(p), Some(d_batch)) = (personal.as_mut(), &grads.personal_rows) {
            let mut d_personal = Array2::zeros(p.raw_dim());
            scatter_add(&mut d_personal, &batch_local, &d_batch.view());
            // The regulariser over this epoch's distinct rows.
            let mut epoch_rows = batch_local.clone();
            epoch_rows.sort_unstable();
            epoch_rows.dedup();
            let (reg, d_p, d_q) = regularizer(
                &gather(&p.view(), &epoch_rows).view(),
                &gather(&rows.view(), &epoch_rows).view(),
                rap_weights,
            );
            loss += reg;
            scatter_add(&mut d_personal, &epoch_rows, &d_p.view());
            scatter_add(&mut d_rows, &epoch_rows, &d_q.view());
            // P_u is private, like the head: it steps with the dense rate,
            // so the shared rows (item rate) carry what users have in common.
            p.scaled_add(-config.lr, &d_personal);
        }
        rows.scaled_add(-item_lr, &d_rows);
        epoch_losses.push(loss);

        let progress = EpochProgress {
            epoch: epoch_losses.len(),
            epochs: config.epochs,
            loss,
        };
        match observer(&progress) {
            Flow::Continue => {}
            Flow::Stop => break,
            Flow::Cancel => return Err(Error::Cancelled),
        }
    }
    let personal_finite = personal
        .as_ref()
        .is_none_or(|p| p.iter().all(|v| v.is_finite()));
    if !(dense.all_finite()
        && user.all_finite()
        && personal_finite
        && rows.iter().all(|v| v.is_finite()))
    {
        return Err(Error::Diverged { lr: config.lr });
    }

    // Stopped early: rows only the skipped epochs would have touched did not
    // change, and sending them would drag the server's row average to zero.
    let epochs_run = epoch_losses.len();
    let (touched, rows, personal) = if epochs_run < config.epochs {
        let kept = touched_items(&seen, &negatives[..epochs_run]);
        let kept_local: Vec<usize> = kept.iter().map(|&i| local_index(i)).collect();
        let personal = personal.map(|p| gather(&p.view(), &kept_local));
        (kept, gather(&rows.view(), &kept_local), personal)
    } else {
        (touched, rows, personal)
    };
    state.model.0 = user;

    let trained_rows = Global(SparseRows {
        ids: touched,
        values: rows,
    });
    let samples = (seen.len() + per_epoch) as u64;
    let update = ModelUpdate::from_training(global, &dense, &trained_rows, samples);
    match backbone.personal_items() {
        PersonalItems::None => {}
        PersonalItems::Replace => state.personal_items.0 = Some(trained_rows.0),
        PersonalItems::Add => {
            let trained = SparseRows {
                ids: trained_rows.0.ids,
                values: personal.expect("additive backbones train personal rows"),
            };
            state.personal_items.0 = Some(merge_rows(state.personal_items.0.take(), trained));
        }
    }
    Ok((
        update,
        LocalReport {
            epoch_losses,
            samples,
        },
    ))
}

/// The user's personal rows of `ids` (sorted), zero where none is kept yet.
fn personal_rows_of(state: &PrivateState, ids: &[u32], dim: usize) -> Array2<f32> {
    let mut out = Array2::zeros((ids.len(), dim));
    if let Some(kept) = &state.personal_items.0 {
        for (k, id) in ids.iter().enumerate() {
            if let Ok(p) = kept.ids.binary_search(id) {
                out.row_mut(k).assign(&kept.values.row(p));
            }
        }
    }
    out
}

/// `old` with `new`'s rows added or overwritten; ids stay sorted.
fn merge_rows(old: Option<SparseRows>, new: SparseRows) -> SparseRows {
    let Some(old) = old else {
        return new;
    };
    let mut ids: Vec<u32> = old.ids.iter().chain(&new.ids).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    let mut values = Array2::zeros((ids.len(), new.values.ncols()));
    for (k, id) in ids.iter().enumerate() {
        let row = match new.ids.binary_search(id) {
            Ok(p) => new.values.row(p),
            Err(_) => old
                .values
                .row(old.ids.binary_search(id).expect("an old id")),
        };
        values.row_mut(k).assign(&row);
    }
    SparseRows { ids, values }
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
    // seen ones below it: exact and O(log |seen|) without building the complement.
    (0..count)
        .map(|_| {
            let k = rng.below(free as u64) as u32;
            // Smallest x with k + 1 unseen items in [0, x]; that x is unseen.
            let (mut lo, mut hi) = (k, k + seen.len() as u32);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let unseen_upto_mid = mid + 1 - seen.partition_point(|&s| s <= mid) as u32;
                if unseen_upto_mid > k {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn merged_rows_keep_old_and_take_new() {
        let rows = |ids: Vec<u32>, v: Vec<f32>| SparseRows {
            values: Array2::from_shape_vec((ids.len(), 1), v).unwrap(),
            ids,
        };
        let merged = merge_rows(
            Some(rows(vec![1, 4, 7], vec![1.0, 4.0, 7.0])),
            rows(vec![2, 4], vec![20.0, 40.0]),
        );
        assert_eq!(merged.ids, vec![1, 2, 4, 7]);
        assert_eq!(merged.values.column(0).to_vec(), vec![1.0, 20.0, 40.0, 7.0]);
    }
}
