//! Scoring items for one user, one path for everyone: the device scores its
//! catalog chunk by chunk from its store, the simulation scores the whole
//! catalog from expert views shared by all users of a model version; both
//! feed [`ScoreBuilder`].
//!
//! A user sees the global expert views of the items, mixed by their router,
//! with the backbone's additions, scored by their head. PFedRec's personal
//! rows replace the global ID rows; FedRAP's are added to the view.

mod scores;

use ndarray::{Array1, Array2};

pub use scores::{ItemScores, ScoreBuilder};

use crate::model::layers::embedding::gather;
use crate::model::stack::expert_weights;
use crate::model::{Catalog, Fusion, GlobalModel, PersonalItems, PrivateState};

/// Expert views of every item under one global model (shared by all its users).
pub struct ItemViews(pub Vec<Array2<f32>>);

impl ItemViews {
    pub fn compute(global: &GlobalModel, catalog: &Catalog) -> Self {
        ItemViews(global.fusion().views(&global.items.0.0.view(), catalog))
    }
}

/// The ID rows of `ids` as this user sees them: PFedRec's personal rows in
/// place of the global ones.
pub fn user_id_rows(global: &GlobalModel, state: &PrivateState, ids: &[u32]) -> Array2<f32> {
    let as_usize: Vec<usize> = ids.iter().map(|&i| i as usize).collect();
    let mut rows = gather(&global.items.0.0.view(), &as_usize);
    if let Some(personal) = replaced_rows(state) {
        personal.overlay(ids, &mut rows);
    }
    rows
}

/// FedRAP's personal rows of `ids` (zero where none is kept), or `None`
/// for backbones that add none.
pub fn additive_rows(state: &PrivateState, ids: &[u32], dim: usize) -> Option<Array2<f32>> {
    let personal = match (&state.personal_items.0, state.personal_kind) {
        (Some(p), PersonalItems::Add) => p,
        _ => return None,
    };
    let mut rows = Array2::zeros((ids.len(), dim));
    personal.overlay(ids, &mut rows);
    Some(rows)
}

/// The items whose ID rows this user replaced with personal ones (PFedRec):
/// the only items whose views differ from the global ones. Sorted.
pub fn replaced_ids(state: &PrivateState) -> &[u32] {
    replaced_rows(state).map_or(&[], |p| &p.ids)
}

fn replaced_rows(state: &PrivateState) -> Option<&crate::model::SparseRows> {
    match (&state.personal_items.0, state.personal_kind) {
        (Some(p), PersonalItems::Replace) => Some(p),
        _ => None,
    }
}

/// Expert views of `ids` for this user, from their content rows
/// (`features`: one row per id; empty for an ID-only model).
pub fn views_from_features(
    global: &GlobalModel,
    state: &PrivateState,
    ids: &[u32],
    features: &Catalog,
) -> Vec<Array2<f32>> {
    let rows = user_id_rows(global, state, ids);
    match global.fusion() {
        Fusion::IdOnly => vec![rows],
        fusion => fusion.views(&rows.view(), features),
    }
}

/// Expert views of `ids` as every user of `global` shares them (global ID
/// rows), from their content rows (`features`: one row per id; empty for an
/// ID-only model). A user's views differ only at [`replaced_ids`].
pub fn global_views(global: &GlobalModel, ids: &[u32], features: &Catalog) -> Vec<Array2<f32>> {
    let as_usize: Vec<usize> = ids.iter().map(|&i| i as usize).collect();
    let rows = gather(&global.items.0.0.view(), &as_usize);
    match global.fusion() {
        Fusion::IdOnly => vec![rows],
        fusion => fusion.views(&rows.view(), features),
    }
}

/// Expert views of `ids` for this user from the shared views, recomputing
/// only the items whose ID rows the user replaced (PFedRec).
pub fn views_from_shared(
    global: &GlobalModel,
    state: &PrivateState,
    shared: &ItemViews,
    catalog: &Catalog,
    ids: &[u32],
) -> Vec<Array2<f32>> {
    let as_usize: Vec<usize> = ids.iter().map(|&i| i as usize).collect();
    let mut views: Vec<Array2<f32>> = shared
        .0
        .iter()
        .map(|v| gather(&v.view(), &as_usize))
        .collect();
    let Some(personal) = replaced_rows(state) else {
        return views;
    };
    let (positions, own): (Vec<usize>, Vec<u32>) = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| personal.ids.binary_search(id).is_ok())
        .map(|(k, &id)| (k, id))
        .unzip();
    if own.is_empty() {
        return views;
    }
    let own_features = Catalog {
        n_items: own.len(),
        features: catalog.gather(&own.iter().map(|&i| i as usize).collect::<Vec<_>>()),
    };
    let own_views = views_from_features(global, state, &own, &own_features);
    for (view, own_view) in views.iter_mut().zip(&own_views) {
        for (row, &k) in positions.iter().enumerate() {
            view.row_mut(k).assign(&own_view.row(row));
        }
    }
    views
}

/// The user's expert weights (router output) given the views of the items
/// in their history; uniform without a router.
pub fn router_weights(state: &PrivateState, history_views: &[Array2<f32>]) -> Array1<f32> {
    let rows = history_views.first().map_or(0, |v| v.nrows());
    expert_weights(
        &state.model.0,
        history_views,
        &(0..rows).collect::<Vec<_>>(),
    )
}

/// The user's expert weights given their history, from the shared views.
pub fn preference(
    global: &GlobalModel,
    catalog: &Catalog,
    views: &ItemViews,
    state: &PrivateState,
    history: &[u32],
) -> Array1<f32> {
    router_weights(
        state,
        &views_from_shared(global, state, views, catalog, history),
    )
}

/// Scores of every item for this user (higher is better), from the shared views.
pub fn score_all(
    global: &GlobalModel,
    catalog: &Catalog,
    views: &ItemViews,
    state: &PrivateState,
    history: &[u32],
) -> Vec<f32> {
    let weights = preference(global, catalog, views, state, history);
    let all: Vec<u32> = (0..global.n_items() as u32).collect();
    let mut builder = ScoreBuilder::new(global, state, &weights);
    builder.add(&all, views_from_shared(global, state, views, catalog, &all));
    builder
        .finish()
        .expect("every item scored")
        .combine(&weights)
}
