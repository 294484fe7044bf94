//! The whole per-user computation on a batch of items: item views from the
//! fusion experts, the router's mix, the head's scores, BCE; and its exact
//! gradient with respect to every parameter and to the item-ID rows.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, s};

use super::layers::loss::{bce_with_logits, bce_with_logits_backward};
use super::params::Tensors;
use super::{Fusion, UserModel};

/// A training batch: the first `positives` rows are the user's positives
/// (the router's context is their mean).
pub struct Batch<'a> {
    /// Item-ID embedding rows, B x d.
    pub id_rows: ArrayView2<'a, f32>,
    /// Content features, one B x d_m matrix per modality.
    pub features: Vec<ArrayView2<'a, f32>>,
    pub labels: ArrayView1<'a, f32>,
    pub positives: usize,
}

pub struct Gradients {
    pub loss: f32,
    pub fusion: Fusion,
    pub user: UserModel,
    pub id_rows: Array2<f32>,
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

/// Loss and gradients of the mean BCE over the batch.
pub fn loss_and_gradients(fusion: &Fusion, user: &UserModel, batch: &Batch) -> Gradients {
    let mut fusion_grad = fusion.zeros_like();
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
    let mixed = mix(&views, &weights.view());
    let scores = user.head.forward(&mixed.view());
    let loss = bce_with_logits(&scores.view(), &batch.labels);

    let d_scores = bce_with_logits_backward(&scores.view(), &batch.labels);
    let d_mixed = user
        .head
        .backward(&mixed.view(), &d_scores.view(), &mut user_grad.head);
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
    let id_rows = match (fusion, &mut fusion_grad) {
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
    Gradients {
        loss,
        fusion: fusion_grad,
        user: user_grad,
        id_rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{assert_close, check_param_grads_of_loss, random_matrix};
    use crate::model::{Catalog, FusionMode, GlobalModel, ModelConfig, PrivateState};
    use crate::rng::Rng;
    use ndarray::arr1;

    fn setup(
        fusion: FusionMode,
    ) -> (
        Fusion,
        UserModel,
        Array2<f32>,
        Vec<Array2<f32>>,
        Array1<f32>,
    ) {
        let mut rng = Rng::new(51);
        let catalog = Catalog {
            n_items: 6,
            features: vec![random_matrix(6, 5, &mut rng), random_matrix(6, 3, &mut rng)],
        };
        let config = ModelConfig {
            fusion,
            dim: 4,
            init_std: 0.5,
            ..Default::default()
        };
        let global = GlobalModel::new(&config, &catalog, 1).unwrap();
        let mut private = PrivateState::new(&config, &global, 2);
        if let Some(r) = private.model.0.router.as_mut() {
            // A non-trivial router so its gradient is not near zero.
            r.out.w.mapv_inplace(|v| v * 4.0);
        }
        let ids = [0usize, 3, 5, 1, 2];
        let rows = layers_gather(&global.items.0.0, &ids);
        let feats = catalog.gather(&ids);
        let labels = arr1(&[1.0f32, 1.0, 0.0, 0.0, 0.0]);
        (global.fusion.0, private.model.0, rows, feats, labels)
    }

    fn layers_gather(t: &Array2<f32>, ids: &[usize]) -> Array2<f32> {
        crate::model::layers::embedding::gather(&t.view(), ids)
    }

    fn loss_of(
        f: &Fusion,
        u: &UserModel,
        rows: &Array2<f32>,
        feats: &[Array2<f32>],
        labels: &Array1<f32>,
    ) -> f64 {
        let batch = Batch {
            id_rows: rows.view(),
            features: feats.iter().map(|f| f.view()).collect(),
            labels: labels.view(),
            positives: 2,
        };
        loss_and_gradients(f, u, &batch).loss as f64
    }

    /// End to end: MFFM + router + head + BCE, against finite differences of
    /// the loss, for the fusion parameters, the user's parameters and the ID rows.
    fn check_stack(mode: FusionMode) {
        let (fusion, user, rows, feats, labels) = setup(mode);
        let grads = |f: &Fusion, u: &UserModel| {
            let batch = Batch {
                id_rows: rows.view(),
                features: feats.iter().map(|f| f.view()).collect(),
                labels: labels.view(),
                positives: 2,
            };
            loss_and_gradients(f, u, &batch)
        };
        check_param_grads_of_loss(
            &fusion,
            |f| loss_of(f, &user, &rows, &feats, &labels),
            |f, g| *g = grads(f, &user).fusion,
        );
        check_param_grads_of_loss(
            &user,
            |u| loss_of(&fusion, u, &rows, &feats, &labels),
            |u, g| *g = grads(&fusion, u).user,
        );
        let d_rows = grads(&fusion, &user).id_rows;
        let mut probe = rows.clone();
        for ((i, j), &a) in d_rows.indexed_iter() {
            let h = 1e-2;
            probe[(i, j)] += h;
            let up = loss_of(&fusion, &user, &probe, &feats, &labels);
            probe[(i, j)] -= 2.0 * h;
            let down = loss_of(&fusion, &user, &probe, &feats, &labels);
            probe[(i, j)] += h;
            assert_close(
                a as f64,
                (up - down) / (2.0 * h as f64),
                &format!("id row ({i},{j})"),
            );
        }
    }

    #[test]
    fn end_to_end_gradient_full_mffm_with_router() {
        check_stack(FusionMode::full());
    }

    #[test]
    fn end_to_end_gradient_id_only() {
        check_stack(FusionMode::IdOnly);
    }

    #[test]
    fn end_to_end_gradient_single_expert_and_no_id() {
        check_stack(FusionMode::Mffm {
            experts: vec![Expert::Gate],
            use_id: true,
        });
        check_stack(FusionMode::Mffm {
            experts: Expert::ALL.to_vec(),
            use_id: false,
        });
    }

    use crate::model::Expert;
}
