//! The parameters a round trains: a copy of the global dense parameters,
//! of the touched item rows, of the user's private model and (FedRAP) of
//! the touched personal rows. One full-batch SGD step per epoch; the copy
//! becomes the upload and the new private state only when the round ends.

use ndarray::{Array1, Array2};

use super::personal::{merge_rows, personal_rows_of};
use super::{RoundPlan, TrainConfig};
use crate::model::layers::embedding::{gather, scatter_add, scatter_scaled_add};
use crate::model::params::{Global, Tensors};
use crate::model::rap::{RapWeights, regularizer};
use crate::model::stack::{Batch, loss_and_gradients};
use crate::model::{
    Backbone, Catalog, DenseParams, Fusion, GlobalModel, PersonalItems, PrivateState, SparseRows,
    UserModel,
};
use crate::update::ModelUpdate;

pub(super) struct LocalCopy {
    dense: Global<DenseParams>,
    /// The touched item rows, in `RoundPlan::touched` order.
    rows: Array2<f32>,
    /// FedRAP's personal rows P_u of the touched items (zero where new).
    personal: Option<Array2<f32>>,
    user: UserModel,
    batch_features: BatchFeatures,
}

/// An epoch's content rows, one matrix per modality, kept across epochs:
/// the positives' rows (the same in every epoch of a round,
/// `RoundPlan::batch`) are copied once, after that only the negatives'
/// (gathering the whole batch every epoch was 4% of a round).
#[derive(Default)]
struct BatchFeatures {
    rows: Vec<Array2<f32>>,
    /// The source rows of the positives `rows` holds.
    positives: Vec<usize>,
}

impl BatchFeatures {
    /// Rows `batch` of `source`, the first `positives` of them the
    /// positives.
    fn fill(&mut self, batch: &[usize], positives: usize, source: &Catalog) -> &[Array2<f32>] {
        let reusable = !self.rows.is_empty()
            && self.positives.as_slice() == &batch[..positives]
            && self.rows.iter().all(|f| f.nrows() == batch.len());
        if !reusable {
            self.rows = source.gather(batch);
            self.positives = batch[..positives].to_vec();
            return &self.rows;
        }
        for (out, modality) in self.rows.iter_mut().zip(&source.features) {
            for (k, &row) in batch.iter().enumerate().skip(positives) {
                let mut dst = out.row_mut(k);
                match (dst.as_slice_mut(), modality.row(row).as_slice()) {
                    (Some(d), Some(s)) => d.copy_from_slice(s),
                    _ => dst.assign(&modality.row(row)),
                }
            }
        }
        &self.rows
    }
}

impl LocalCopy {
    pub(super) fn new(
        global: &GlobalModel,
        backbone: Backbone,
        state: &PrivateState,
        plan: &RoundPlan,
    ) -> Self {
        let additive = backbone.personal_items() == PersonalItems::Add;
        LocalCopy {
            dense: global.dense.clone(),
            rows: gather(&global.items.0.0.view(), &plan.touched_indices()),
            personal: additive.then(|| personal_rows_of(state, plan.touched(), global.dim())),
            user: state.model.0.clone(),
            batch_features: BatchFeatures::default(),
        }
    }

    /// One SGD step on `batch` (local row positions, the first `positives`
    /// of them positive); returns the epoch's loss before the step. Batch
    /// positions `hidden` (ID dropout) read their ID row as zero, and their
    /// rows get no gradient from them. `features` holds the batch's content
    /// rows at the given row indices.
    pub(super) fn epoch(
        &mut self,
        batch: &[usize],
        hidden: Option<&[bool]>,
        positives: usize,
        features: (&Catalog, &[usize]),
        config: &TrainConfig,
        rap_weights: RapWeights,
    ) -> f32 {
        let mut id_rows = gather(&self.rows.view(), batch);
        let hidden_rows: Vec<usize> = hidden
            .map(|h| (0..batch.len()).filter(|&k| h[k]).collect())
            .unwrap_or_default();
        hidden_rows
            .iter()
            .for_each(|&k| id_rows.row_mut(k).fill(0.0));
        let (source, source_rows) = features;
        let features = match &self.dense.fusion {
            Fusion::IdOnly => &[][..],
            Fusion::Mffm(_) => self.batch_features.fill(source_rows, positives, source),
        };
        let personal_batch = self.personal.as_ref().map(|p| gather(&p.view(), batch));
        let labels: Array1<f32> = (0..batch.len())
            .map(|k| if k < positives { 1.0 } else { 0.0 })
            .collect();
        let grads = loss_and_gradients(
            &self.dense,
            &self.user,
            &Batch {
                id_rows: id_rows.view(),
                features: features.iter().map(|f| f.view()).collect(),
                labels: labels.view(),
                positives,
                personal_rows: personal_batch.as_ref().map(|p| p.view()),
            },
        );
        let mut loss = grads.loss;
        // The residual form's MFFM may step at its own rate, the rest at lr.
        let fusion_lr = match &self.dense.0.fusion {
            Fusion::Mffm(m) => m.own_lr(),
            Fusion::IdOnly => None,
        };
        match (fusion_lr, &mut self.dense.0.fusion, &grads.dense.fusion) {
            (Some(lr), Fusion::Mffm(m), Fusion::Mffm(g)) => {
                m.add_scaled(g, -lr);
                if let (Some(ncf), Some(g)) = (self.dense.0.ncf.as_mut(), &grads.dense.ncf) {
                    ncf.add_scaled(g, -config.lr);
                }
            }
            _ => self.dense.0.add_scaled(&grads.dense, -config.lr),
        }
        self.user.add_scaled(&grads.user, -config.lr);
        let mut d_id = grads.id_rows;
        hidden_rows.iter().for_each(|&k| d_id.row_mut(k).fill(0.0));
        let item_lr = config.item_lr.unwrap_or(config.lr);
        if let (Some(p), Some(d_batch)) = (self.personal.as_mut(), &grads.personal_rows) {
            let mut d_rows = Array2::zeros(self.rows.raw_dim());
            scatter_add(&mut d_rows, batch, &d_id.view());
            let mut d_personal = Array2::zeros(p.raw_dim());
            scatter_add(&mut d_personal, batch, &d_batch.view());
            // The regulariser over this epoch's distinct rows (of the rows
            // before this epoch's step, so the step waits for it).
            let mut epoch_rows = batch.to_vec();
            epoch_rows.sort_unstable();
            epoch_rows.dedup();
            let (reg, d_p, d_q) = regularizer(
                &gather(&p.view(), &epoch_rows).view(),
                &gather(&self.rows.view(), &epoch_rows).view(),
                rap_weights,
            );
            loss += reg;
            scatter_add(&mut d_personal, &epoch_rows, &d_p.view());
            scatter_add(&mut d_rows, &epoch_rows, &d_q.view());
            // P_u is private, like the head: it steps with the dense rate,
            // so the shared rows (item rate) carry what users have in common.
            p.scaled_add(-config.lr, &d_personal);
            self.rows.scaled_add(-item_lr, &d_rows);
        } else {
            // Only the batch's rows move: step them in place.
            scatter_scaled_add(&mut self.rows, batch, &d_id.view(), -item_lr);
        }
        loss
    }

    pub(super) fn all_finite(&self) -> bool {
        self.dense.all_finite()
            && self.user.all_finite()
            && self
                .personal
                .as_ref()
                .is_none_or(|p| p.iter().all(|v| v.is_finite()))
            && self.rows.iter().all(|v| v.is_finite())
    }

    /// The upload (change of the global parameters) after `epochs_run`
    /// epochs; the user's private model and personal rows move into `state`.
    pub(super) fn finish(
        self,
        global: &GlobalModel,
        backbone: Backbone,
        state: &mut PrivateState,
        plan: &RoundPlan,
        epochs_run: usize,
        samples: u64,
    ) -> ModelUpdate {
        // Stopped early: rows only the skipped epochs would have touched did not
        // change, and sending them would drag the server's row average to zero.
        let (touched, rows, personal) = if epochs_run < plan.negatives.len() {
            let kept = plan.touched_in(epochs_run);
            let kept_local: Vec<usize> = kept.iter().map(|&i| plan.local_index(i)).collect();
            let personal = self.personal.map(|p| gather(&p.view(), &kept_local));
            (kept, gather(&self.rows.view(), &kept_local), personal)
        } else {
            (plan.touched().to_vec(), self.rows, self.personal)
        };
        state.model.0 = self.user;
        let trained_rows = Global(SparseRows {
            ids: touched,
            values: rows,
        });
        let update = ModelUpdate::from_training(global, &self.dense, &trained_rows, samples);
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
        update
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::random_matrix;
    use crate::rng::Rng;

    #[test]
    fn kept_batch_features_equal_a_fresh_gather_every_epoch() {
        let mut rng = Rng::new(11);
        let touched = Catalog {
            n_items: 9,
            features: vec![random_matrix(9, 5, &mut rng), random_matrix(9, 3, &mut rng)],
        };
        let mut kept = BatchFeatures::default();
        // Two positives (positions 0 and 4), then each epoch's negatives,
        // repeats included; the last epoch has other positives.
        let epochs: [&[usize]; 4] = [&[0, 4, 1, 2], &[0, 4, 7, 7], &[0, 4, 8, 3], &[5, 6, 1, 2]];
        for batch in epochs {
            let expected = touched.gather(batch);
            assert_eq!(
                kept.fill(batch, 2, &touched),
                expected.as_slice(),
                "batch {batch:?}"
            );
        }
        // A longer batch with the same positives is gathered afresh.
        let longer = [5, 6, 1, 2, 3];
        assert_eq!(
            kept.fill(&longer, 2, &touched),
            touched.gather(&longer).as_slice()
        );
    }
}
