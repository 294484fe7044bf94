//! Scoring every item for one user: the global expert views of all items
//! (shared by all users of a model version), mixed by the user's router,
//! with the backbone's additions to the view, scored by the user's head.
//! PFedRec's personal rows replace the global ones; FedRAP's are added.

use ndarray::{Array1, Array2};

use crate::model::layers::embedding::gather;
use crate::model::stack::{expert_weights, item_view, mix};
use crate::model::{Catalog, Fusion, GlobalModel, PersonalItems, PrivateState};

/// Expert views of every item under one global model.
pub struct ItemViews(pub Vec<Array2<f32>>);

impl ItemViews {
    pub fn compute(global: &GlobalModel, catalog: &Catalog) -> Self {
        ItemViews(global.fusion().views(&global.items.0.0.view(), catalog))
    }
}

/// Expert views of `ids` as this user sees them (PFedRec's personal rows
/// in place of the global ones).
fn user_views(
    global: &GlobalModel,
    catalog: &Catalog,
    views: &ItemViews,
    state: &PrivateState,
    ids: &[usize],
) -> Vec<Array2<f32>> {
    let personal = match (&state.personal_items.0, state.personal_kind) {
        (Some(p), PersonalItems::Replace) => p,
        _ => return views.0.iter().map(|v| gather(&v.view(), ids)).collect(),
    };
    let mut rows = gather(&global.items.0.0.view(), ids);
    for (k, &id) in ids.iter().enumerate() {
        if let Ok(p) = personal.ids.binary_search(&(id as u32)) {
            rows.row_mut(k).assign(&personal.values.row(p));
        }
    }
    match global.fusion() {
        Fusion::IdOnly => vec![rows],
        fusion => fusion.views(&rows.view(), &subset(catalog, ids)),
    }
}

fn subset(catalog: &Catalog, ids: &[usize]) -> Catalog {
    Catalog {
        n_items: ids.len(),
        features: catalog.gather(ids),
    }
}

/// FedRAP's personal rows of `ids` (zero where none), or `None`.
pub fn additive_rows(state: &PrivateState, ids: &[usize], dim: usize) -> Option<Array2<f32>> {
    let personal = match (&state.personal_items.0, state.personal_kind) {
        (Some(p), PersonalItems::Add) => p,
        _ => return None,
    };
    let mut rows = Array2::zeros((ids.len(), dim));
    for (k, &id) in ids.iter().enumerate() {
        if let Ok(p) = personal.ids.binary_search(&(id as u32)) {
            rows.row_mut(k).assign(&personal.values.row(p));
        }
    }
    Some(rows)
}

/// The user's expert weights (router output) given their history.
pub fn preference(
    global: &GlobalModel,
    catalog: &Catalog,
    views: &ItemViews,
    state: &PrivateState,
    history: &[u32],
) -> Array1<f32> {
    let ids: Vec<usize> = history.iter().map(|&i| i as usize).collect();
    let hv = user_views(global, catalog, views, state, &ids);
    let all_rows: Vec<usize> = (0..ids.len()).collect();
    expert_weights(&state.model.0, &hv, &all_rows)
}

/// Scores of every item for this user (higher is better).
pub fn score_all(
    global: &GlobalModel,
    catalog: &Catalog,
    views: &ItemViews,
    state: &PrivateState,
    history: &[u32],
) -> Vec<f32> {
    let weights = preference(global, catalog, views, state, history);
    let user = &state.model.0;
    let linear = user
        .head
        .linear()
        .filter(|_| !global.dense.adds_id_to_view());
    let Some(head) = linear else {
        // A head that is not linear in the view: score the mixed views.
        let all: Vec<usize> = (0..global.n_items()).collect();
        let mixed = mix(
            &user_views(global, catalog, views, state, &all),
            &weights.view(),
        );
        let personal = additive_rows(state, &all, global.dim());
        let view = item_view(
            &global.dense,
            mixed,
            &global.items.0.0.view(),
            personal.as_ref().map(|p| p.view()).as_ref(),
        );
        return user.head.score(global.ncf(), &view.view()).to_vec();
    };
    // sum_j w_j (F_j theta) + b: one matrix-vector product per expert, no mixed copy.
    let mut scores = Array1::from_elem(global.n_items(), head.bias[0]);
    for (v, &w) in views.0.iter().zip(&weights) {
        scores.scaled_add(w, &v.dot(&head.theta));
    }
    let Some(personal) = state.personal_items.0.as_ref() else {
        return scores.to_vec();
    };
    let ids: Vec<usize> = personal.ids.iter().map(|&i| i as usize).collect();
    match state.personal_kind {
        PersonalItems::None => {}
        PersonalItems::Replace => {
            let pv = user_views(global, catalog, views, state, &ids);
            let own = head.forward(&mix(&pv, &weights.view()).view());
            for (&id, &s) in ids.iter().zip(&own) {
                scores[id] = s;
            }
        }
        PersonalItems::Add => {
            let extra = personal.values.dot(&head.theta);
            for (&id, &e) in ids.iter().zip(&extra) {
                scores[id] += e;
            }
        }
    }
    scores.to_vec()
}
