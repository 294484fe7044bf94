//! Scoring every item for one user: the global expert views of all items
//! (shared by all users of a model version), mixed by the user's router and
//! scored by the user's head; PFedRec's personal rows override the global ones.

use ndarray::{Array1, Array2};

use crate::model::layers::embedding::gather;
use crate::model::stack::{expert_weights, mix};
use crate::model::{Catalog, Fusion, GlobalModel, PrivateState};

/// Expert views of every item under one global model.
pub struct ItemViews(pub Vec<Array2<f32>>);

impl ItemViews {
    pub fn compute(global: &GlobalModel, catalog: &Catalog) -> Self {
        ItemViews(global.fusion.views(&global.items.0.0.view(), catalog))
    }
}

/// Expert views of `ids` as this user sees them (personal rows where kept).
fn user_views(
    global: &GlobalModel,
    catalog: &Catalog,
    views: &ItemViews,
    state: &PrivateState,
    ids: &[usize],
) -> Vec<Array2<f32>> {
    let Some(personal) = state.personal_items.0.as_ref() else {
        return views.0.iter().map(|v| gather(&v.view(), ids)).collect();
    };
    let mut rows = gather(&global.items.0.0.view(), ids);
    for (k, &id) in ids.iter().enumerate() {
        if let Ok(p) = personal.ids.binary_search(&(id as u32)) {
            rows.row_mut(k).assign(&personal.values.row(p));
        }
    }
    match &global.fusion.0 {
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
    let head = &state.model.0.head;
    // sum_j w_j (F_j theta) + b: one matrix-vector product per expert, no mixed copy.
    let mut scores = Array1::from_elem(global.n_items(), head.bias[0]);
    for (v, &w) in views.0.iter().zip(&weights) {
        scores.scaled_add(w, &v.dot(&head.theta));
    }
    if let Some(personal) = state.personal_items.0.as_ref() {
        let ids: Vec<usize> = personal.ids.iter().map(|&i| i as usize).collect();
        let pv = user_views(global, catalog, views, state, &ids);
        let own = head.forward(&mix(&pv, &weights.view()).view());
        for (&id, &s) in ids.iter().zip(&own) {
            scores[id] = s;
        }
    }
    scores.to_vec()
}
