//! The whole per-user computation on a batch of items: item views from the
//! fusion experts, the router's mix, the backbone's additions to the view
//! (FedNCF's ID row, FedRAP's personal row), the head's scores, BCE; and its
//! exact gradient with respect to every parameter and to the item rows.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, s};

use super::layers::loss::{bce_with_logits, bce_with_logits_backward};
use super::params::Tensors;
use super::{DenseParams, Fusion, UserModel};

/// A training batch: the first `positives` rows are the user's positives
/// (the router's context is their mean).
pub struct Batch<'a> {
    /// Item-ID embedding rows, B x d.
    pub id_rows: ArrayView2<'a, f32>,
    /// Content features, one B x d_m matrix per modality.
    pub features: Vec<ArrayView2<'a, f32>>,
    pub labels: ArrayView1<'a, f32>,
    pub positives: usize,
    /// FedRAP's personal rows P_u of the batch's items, added to their view.
    pub personal_rows: Option<ArrayView2<'a, f32>>,
}

pub struct Gradients {
    pub loss: f32,
    pub dense: DenseParams,
    pub user: UserModel,
    pub id_rows: Array2<f32>,
    /// Present when the batch had personal rows.
    pub personal_rows: Option<Array2<f32>>,
}

/// Router context c_u: the mean of each expert's view over the given rows,
/// concatenated.
pub fn context(views: &[Array2<f32>], rows: &[usize]) -> Array1<f32> {
    let dim = views[0].ncols();
    let mut c = Array1::zeros(views.len() * dim);
    if rows.is_empty() {
        return c;
    }
    for (j, v) in views.iter().enumerate() {
        let mut part = c.slice_mut(s![j * dim..(j + 1) * dim]);
        for &r in rows {
            part += &v.row(r);
        }
        part /= rows.len() as f32;
    }
    c
}

/// Expert weights for a user whose positives have these views.
pub fn expert_weights(
    user: &UserModel,
    views: &[Array2<f32>],
    positive_rows: &[usize],
) -> Array1<f32> {
    match &user.router {
        None => Array1::ones(views.len()) / views.len() as f32,
        Some(router) => router.forward(&context(views, positive_rows).view()).0,
    }
}

pub fn mix(views: &[Array2<f32>], weights: &ArrayView1<f32>) -> Array2<f32> {
    let mut mixed = Array2::zeros(views[0].raw_dim());
    for (v, &w) in views.iter().zip(weights) {
        mixed.scaled_add(w, v);
    }
    mixed
}

/// The item views the head scores: the router's mix, plus the ID rows
/// (FedNCF + MFFM) and the personal rows (FedRAP) where the backbone adds them.
pub fn item_view(
    dense: &DenseParams,
    mixed: Array2<f32>,
    id_rows: &ArrayView2<f32>,
    personal_rows: Option<&ArrayView2<f32>>,
) -> Array2<f32> {
    let mut view = mixed;
    if dense.adds_id_to_view() {
        view += id_rows;
    }
    if let Some(p) = personal_rows {
        view += p;
    }
    view
}

/// Loss and gradients of the mean BCE over the batch.
pub fn loss_and_gradients(dense: &DenseParams, user: &UserModel, batch: &Batch) -> Gradients {
    let fusion = &dense.fusion;
    let mut dense_grad = dense.zeros_like();
    let mut user_grad = user.zeros_like();

    let (views, mffm_cache) = match fusion {
        Fusion::IdOnly => (vec![batch.id_rows.to_owned()], None),
        Fusion::Mffm(m) => {
            let (v, c) = m.forward(m.use_id.then_some(&batch.id_rows), &batch.features);
            (v, Some(c))
        }
    };
    let positive_rows: Vec<usize> = (0..batch.positives).collect();
    let routed = user
        .router
        .as_ref()
        .map(|r| r.forward(&context(&views, &positive_rows).view()));
    let weights = match &routed {
        Some((w, _)) => w.clone(),
        None => Array1::ones(1),
    };
    let item_views = item_view(
        dense,
        mix(&views, &weights.view()),
        &batch.id_rows,
        batch.personal_rows.as_ref(),
    );
    let (scores, head_cache) = user.head.forward(dense.ncf.as_ref(), &item_views.view());
    let loss = bce_with_logits(&scores.view(), &batch.labels);

    let d_scores = bce_with_logits_backward(&scores.view(), &batch.labels);
    let d_mixed = user.head.backward(
        dense.ncf.as_ref(),
        &item_views.view(),
        &head_cache,
        &d_scores.view(),
        &mut user_grad.head,
        dense_grad.ncf.as_mut(),
    );
    let personal_rows = batch.personal_rows.map(|_| d_mixed.clone());
    let d_id_from_view = dense.adds_id_to_view().then(|| d_mixed.clone());
    let mut d_views: Vec<Array2<f32>> = weights.iter().map(|&w| &d_mixed * w).collect();
    if let (Some(router), Some((_, cache))) = (&user.router, &routed) {
        let d_weights: Array1<f32> = views.iter().map(|v| (v * &d_mixed).sum()).collect();
        let d_context = router.backward(
            cache,
            &d_weights.view(),
            user_grad.router.as_mut().expect("router grad"),
        );
        let dim = views[0].ncols();
        let per_row = batch.positives.max(1) as f32;
        for (j, dv) in d_views.iter_mut().enumerate() {
            let dc = d_context
                .slice(s![j * dim..(j + 1) * dim])
                .mapv(|v| v / per_row);
            dv.slice_mut(s![..batch.positives, ..])
                .axis_iter_mut(Axis(0))
                .for_each(|mut row| row += &dc);
        }
    }
    let mut id_rows = match (fusion, &mut dense_grad.fusion) {
        (Fusion::IdOnly, _) => d_views.pop().expect("one view"),
        (Fusion::Mffm(m), Fusion::Mffm(g)) => m
            .backward(
                mffm_cache.as_ref().expect("cache"),
                &batch.features,
                &d_views,
                g,
            )
            .unwrap_or_else(|| Array2::zeros(batch.id_rows.raw_dim())),
        _ => unreachable!("gradient has the model's shape"),
    };
    if let Some(d) = d_id_from_view {
        id_rows += &d;
    }
    Gradients {
        loss,
        dense: dense_grad,
        user: user_grad,
        id_rows,
        personal_rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{assert_close, check_param_grads_of_loss, random_matrix};
    use crate::model::{
        Backbone, Catalog, Expert, FusionMode, GlobalModel, Mffm, ModelConfig, PrivateState,
    };
    use crate::rng::Rng;
    use ndarray::arr1;

    /// One user's batch and everything the loss depends on.
    struct Case {
        dense: DenseParams,
        user: UserModel,
        rows: Array2<f32>,
        personal: Option<Array2<f32>>,
        feats: Vec<Array2<f32>>,
        labels: Array1<f32>,
    }

    impl Case {
        fn new(backbone: Backbone, fusion: FusionMode) -> Self {
            let mut rng = Rng::new(51);
            let catalog = Catalog {
                n_items: 6,
                features: vec![random_matrix(6, 5, &mut rng), random_matrix(6, 3, &mut rng)],
            };
            let config = ModelConfig {
                backbone,
                fusion,
                dim: 4,
                init_std: 0.5,
            };
            let ids = [0usize, 3, 5, 1, 2];
            let personal = (backbone == Backbone::FedRap)
                .then(|| random_matrix(ids.len(), 4, &mut rng).mapv(|v| v * 0.5));
            // NeuMF's ReLUs: draw models until every unit is clear of its
            // kink, where finite differences would be meaningless.
            for seed in 1..1000 {
                let global = GlobalModel::new(&config, &catalog, seed).unwrap();
                let mut private = PrivateState::new(&config, &global, seed + 1);
                if let Some(r) = private.model.0.router.as_mut() {
                    // A non-trivial router so its gradient is not near zero.
                    r.out.w.mapv_inplace(|v| v * 4.0);
                }
                let mut dense = global.dense.0.clone();
                if let Fusion::Mffm(Mffm {
                    residual: Some(r), ..
                }) = &mut dense.fusion
                {
                    // Off its zero start, so every path carries gradient.
                    r.scale.fill(0.7);
                }
                let case = Case {
                    dense,
                    user: private.model.0,
                    rows: crate::model::layers::embedding::gather(&global.items.0.0.view(), &ids),
                    personal: personal.clone(),
                    feats: catalog.gather(&ids),
                    labels: arr1(&[1.0f32, 1.0, 0.0, 0.0, 0.0]),
                };
                if case.ncf_margin().is_none_or(|m| m > 0.05) {
                    return case;
                }
            }
            panic!("no model clear of the ReLU kinks");
        }

        /// NeuMF's smallest |pre-activation| on this batch, if NeuMF.
        fn ncf_margin(&self) -> Option<f32> {
            let (tower, crate::model::head::UserHead::NeuMf(user)) =
                (self.dense.ncf.as_ref()?, &self.user.head)
            else {
                return None;
            };
            let views = match &self.dense.fusion {
                Fusion::IdOnly => vec![self.rows.clone()],
                Fusion::Mffm(m) => {
                    let feats: Vec<_> = self.feats.iter().map(|f| f.view()).collect();
                    m.forward(m.use_id.then_some(&self.rows.view()), &feats).0
                }
            };
            let weights = expert_weights(&self.user, &views, &[0, 1]);
            let view = item_view(
                &self.dense,
                mix(&views, &weights.view()),
                &self.rows.view(),
                None,
            );
            Some(tower.relu_margin(user, &view.view()))
        }

        fn run(
            &self,
            dense: &DenseParams,
            user: &UserModel,
            rows: &Array2<f32>,
            personal: Option<&Array2<f32>>,
        ) -> Gradients {
            let batch = Batch {
                id_rows: rows.view(),
                features: self.feats.iter().map(|f| f.view()).collect(),
                labels: self.labels.view(),
                positives: 2,
                personal_rows: personal.map(|p| p.view()),
            };
            loss_and_gradients(dense, user, &batch)
        }

        fn loss(
            &self,
            dense: &DenseParams,
            user: &UserModel,
            rows: &Array2<f32>,
            personal: Option<&Array2<f32>>,
        ) -> f64 {
            self.run(dense, user, rows, personal).loss as f64
        }
    }

    /// d loss / d rows against central differences, entry by entry.
    fn check_rows(analytic: &Array2<f32>, rows: &Array2<f32>, loss: impl Fn(&Array2<f32>) -> f64) {
        let mut probe = rows.clone();
        for ((i, j), &a) in analytic.indexed_iter() {
            let h = 1e-2;
            probe[(i, j)] += h;
            let up = loss(&probe);
            probe[(i, j)] -= 2.0 * h;
            let down = loss(&probe);
            probe[(i, j)] += h;
            assert_close(
                a as f64,
                (up - down) / (2.0 * h as f64),
                &format!("row ({i},{j})"),
            );
        }
    }

    /// End to end: MFFM + router + head (linear or NeuMF) + BCE, against
    /// finite differences of the loss, for the dense global parameters, the
    /// user's parameters, the ID rows and (FedRAP) the personal rows.
    fn check_stack(backbone: Backbone, mode: FusionMode) {
        let c = Case::new(backbone, mode);
        let p = c.personal.as_ref();
        check_param_grads_of_loss(
            &c.dense,
            |d| c.loss(d, &c.user, &c.rows, p),
            |d, g| *g = c.run(d, &c.user, &c.rows, p).dense,
        );
        check_param_grads_of_loss(
            &c.user,
            |u| c.loss(&c.dense, u, &c.rows, p),
            |u, g| *g = c.run(&c.dense, u, &c.rows, p).user,
        );
        let grads = c.run(&c.dense, &c.user, &c.rows, p);
        check_rows(&grads.id_rows, &c.rows, |r| c.loss(&c.dense, &c.user, r, p));
        if let Some(personal) = p {
            let analytic = grads.personal_rows.expect("personal gradient");
            check_rows(&analytic, personal, |q| {
                c.loss(&c.dense, &c.user, &c.rows, Some(q))
            });
        }
    }

    #[test]
    fn end_to_end_gradient_full_mffm_with_router() {
        check_stack(Backbone::FedAvg, FusionMode::full());
    }

    #[test]
    fn end_to_end_gradient_id_only() {
        check_stack(Backbone::FedAvg, FusionMode::IdOnly);
    }

    #[test]
    fn end_to_end_gradient_single_expert_and_no_id() {
        check_stack(
            Backbone::FedAvg,
            FusionMode::Mffm {
                experts: vec![Expert::Gate],
                use_id: true,
            },
        );
        check_stack(
            Backbone::FedAvg,
            FusionMode::Mffm {
                experts: Expert::ALL.to_vec(),
                use_id: false,
            },
        );
    }

    #[test]
    fn end_to_end_gradient_residual_forms() {
        for backbone in [Backbone::FedAvg, Backbone::FedNcf, Backbone::FedRap] {
            for evidence in [false, true] {
                check_stack(
                    backbone,
                    FusionMode::Residual {
                        experts: Expert::ALL.to_vec(),
                        evidence,
                        fusion_lr: None,
                        id_dropout: 0.0,
                    },
                );
            }
        }
    }

    #[test]
    fn end_to_end_gradient_fedncf() {
        check_stack(Backbone::FedNcf, FusionMode::IdOnly);
        check_stack(Backbone::FedNcf, FusionMode::full());
    }

    #[test]
    fn end_to_end_gradient_fedrap() {
        check_stack(Backbone::FedRap, FusionMode::IdOnly);
        check_stack(Backbone::FedRap, FusionMode::full());
    }

    #[test]
    fn fedncf_with_mffm_adds_the_id_row_to_the_view() {
        let c = Case::new(Backbone::FedNcf, FusionMode::full());
        assert!(c.dense.adds_id_to_view());
        let bumped = c.rows.mapv(|v| v + 1.0);
        // Through LN alone a constant shift of a row would vanish; the
        // added raw row makes the loss move.
        let (a, b) = (
            c.loss(&c.dense, &c.user, &c.rows, None),
            c.loss(&c.dense, &c.user, &bumped, None),
        );
        assert!((a - b).abs() > 1e-4, "{a} vs {b}");
        let fedavg = Case::new(Backbone::FedAvg, FusionMode::full());
        assert!(!fedavg.dense.adds_id_to_view());
    }
}
