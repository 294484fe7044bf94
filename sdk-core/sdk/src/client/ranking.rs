//! Scoring for `recommend` and `preferences`, without ever holding every
//! item's features in memory: the catalog is read from the store in chunks
//! and scored through the core's `ScoreBuilder`, the same path the
//! simulation takes. `ItemScores` are cached by the client (see
//! `fedmr_core::rank::scores` for why 3 floats per item are enough); the
//! global expert views may be kept from a model install to the next
//! training (`GlobalViews`), which then only rescores.

use std::collections::HashSet;

use ndarray::{Array1, Array2, s};
use serde::{Deserialize, Serialize};

use super::installed::{InstalledCatalog, InstalledModel, decode_rows, features_of};
use super::types::{ExpertWeight, ModalityShare, Preferences};
use crate::store::Store;
use crate::{Error, Result};
use fedmr_core::model::{Catalog, Fusion, PrivateState};
pub(crate) use fedmr_core::rank::ItemScores;
use fedmr_core::rank::{
    ScoreBuilder, global_views, replaced_ids, router_weights as weights_of, user_id_rows,
    views_from_features,
};

/// Items per chunk when scanning the catalog: bounds memory to a few MB.
pub(crate) const CHUNK: usize = 2048;

/// The user's history as the model sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct History {
    /// Catalog ids of items with a positive net weight (training positives,
    /// the router's context), in the order the user first met them.
    pub positives: Vec<u32>,
    /// Catalog ids of every interacted item, sorted.
    pub seen: Vec<u32>,
    /// Interacted keys the catalog does not know.
    pub unknown: usize,
}

impl History {
    /// The history as the installed catalog's ids (keys joined in SQL).
    pub fn load(store: &Store) -> Result<Self> {
        let mut positives = Vec::new();
        let mut seen = Vec::new();
        let mut unknown = 0;
        for (id, weight) in store.item_weights_by_id()? {
            match id {
                Some(id) => {
                    seen.push(id);
                    if weight > 0.0 {
                        positives.push(id);
                    }
                }
                None => unknown += 1,
            }
        }
        seen.sort_unstable();
        Ok(History {
            positives,
            seen,
            unknown,
        })
    }
}

/// Expert views of `ids` for this user, their features read from the store.
pub(crate) fn views_of(
    store: &Store,
    catalog: &InstalledCatalog,
    model: &InstalledModel,
    state: &PrivateState,
    ids: &[u32],
) -> Result<Vec<Array2<f32>>> {
    let features = match *model.global.fusion() {
        Fusion::IdOnly => Catalog::default(),
        _ => features_of(store, catalog, ids)?,
    };
    Ok(views_from_features(&model.global, state, ids, &features))
}

/// Every item's global expert views, one matrix per expert (items x d).
pub(crate) struct GlobalViews(pub Vec<Array2<f32>>);

/// Where `item_scores` gets the global expert views from.
pub(crate) enum ViewSource<'a> {
    /// Computed chunk by chunk from the stored features, then dropped.
    Compute,
    /// Computed, and kept (returned) for a later rescoring.
    ComputeAndKeep,
    /// Kept from an earlier computation under the same global model.
    Kept(&'a GlobalViews),
}

/// Every item's scores, `chunk` items at a time, from the catalog's
/// features (one scan) or from kept global views; the user's own rows
/// (PFedRec) are recomputed either way. `weights` (the user's router
/// weights) are used only by heads that need them.
pub(crate) fn item_scores(
    store: &Store,
    catalog: &InstalledCatalog,
    model: &InstalledModel,
    state: &PrivateState,
    weights: &Array1<f32>,
    chunk: usize,
    source: ViewSource<'_>,
) -> Result<(ItemScores, Option<GlobalViews>)> {
    let global = &model.global;
    let n = global.n_items();
    let chunk = chunk.max(1);
    let mut builder = ScoreBuilder::new(global, state, weights);
    let mut kept: Option<Vec<Array2<f32>>> = matches!(source, ViewSource::ComputeAndKeep)
        .then(|| vec![Array2::zeros((n, global.dim())); global.fusion().experts()]);
    let own = replaced_ids(state);
    // `features`: the chunk's content rows when they were read (the user's
    // own rows are recomputed from them), else `None` (read from the store).
    let mut add_views =
        |first: usize, mut views: Vec<Array2<f32>>, features: Option<&Catalog>| -> Result<()> {
            let ids: Vec<u32> = (first as u32..(first + views[0].nrows()) as u32).collect();
            if let Some(kept) = &mut kept {
                for (all, v) in kept.iter_mut().zip(&views) {
                    all.slice_mut(s![first..first + v.nrows(), ..]).assign(v);
                }
            }
            overlay_own_rows(
                store, catalog, model, state, own, &ids, features, &mut views,
            )?;
            builder.add(&ids, views);
            Ok(())
        };
    match (source, global.fusion()) {
        (ViewSource::Kept(views), _) => {
            if views.0.iter().any(|v| v.nrows() != n) {
                return Err(Error::Store("kept views do not fit the model".into()));
            }
            for first in (0..n).step_by(chunk) {
                let rows = s![first..(first + chunk).min(n), ..];
                let chunk_views = views.0.iter().map(|v| v.slice(rows).to_owned()).collect();
                add_views(first, chunk_views, None)?;
            }
        }
        (_, Fusion::IdOnly) => {
            let none = Catalog::default();
            for first in (0..n).step_by(chunk) {
                let ids: Vec<u32> = (first as u32..(first + chunk).min(n) as u32).collect();
                add_views(first, global_views(global, &ids, &none), Some(&none))?;
            }
        }
        _ => {
            let dims = catalog.modality_dims();
            store.for_each_feature_chunk(chunk, |first, rows| {
                let ids: Vec<u32> = (first as u32..(first + rows.len()) as u32).collect();
                let features = Catalog {
                    n_items: rows.len(),
                    features: decode_rows(rows, &dims)?,
                };
                add_views(
                    first,
                    global_views(global, &ids, &features),
                    Some(&features),
                )
            })?
        }
    }
    let scores = builder.finish().map_err(|e| {
        Error::Store(format!(
            "catalog table and model disagree on the item count: {e}"
        ))
    })?;
    Ok((scores, kept.map(GlobalViews)))
}

/// Replaces the rows of the user's own items (sorted `own`, PFedRec's
/// personal ID rows) in the global `views` of `ids` by the user's views;
/// their content rows come from `features` (one row per id) if given, else
/// from the store (never while the caller holds the store's reader).
#[allow(clippy::too_many_arguments)]
fn overlay_own_rows(
    store: &Store,
    catalog: &InstalledCatalog,
    model: &InstalledModel,
    state: &PrivateState,
    own: &[u32],
    ids: &[u32],
    features: Option<&Catalog>,
    views: &mut [Array2<f32>],
) -> Result<()> {
    let (positions, own_ids): (Vec<usize>, Vec<u32>) = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| own.binary_search(id).is_ok())
        .map(|(k, &id)| (k, id))
        .unzip();
    if own_ids.is_empty() {
        return Ok(());
    }
    let own_views = match features {
        Some(features) => {
            let own_features = Catalog {
                n_items: own_ids.len(),
                features: features.gather(&positions),
            };
            views_from_features(&model.global, state, &own_ids, &own_features)
        }
        None => views_of(store, catalog, model, state, &own_ids)?,
    };
    for (view, own_view) in views.iter_mut().zip(&own_views) {
        for (row, &k) in positions.iter().enumerate() {
            view.row_mut(k).assign(&own_view.row(row));
        }
    }
    Ok(())
}

/// The user's router weights given their positives.
pub(crate) fn router_weights(
    store: &Store,
    catalog: &InstalledCatalog,
    model: &InstalledModel,
    state: &PrivateState,
    positives: &[u32],
) -> Result<Array1<f32>> {
    if state.model.0.router.is_none() {
        let experts = model.global.fusion().experts();
        return Ok(Array1::from_elem(experts, 1.0 / experts as f32));
    }
    let hv = views_of(store, catalog, model, state, positives)?;
    Ok(weights_of(state, &hv))
}

/// The top `k` of `scores` among `allowed` ids, best first (ties: lower id).
pub(crate) fn top_k(scores: &[f32], allowed: impl Iterator<Item = u32>, k: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = allowed.collect();
    let better = |a: &u32, b: &u32| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    };
    if k < ids.len() {
        ids.select_nth_unstable_by(k, better);
        ids.truncate(k);
    }
    ids.sort_unstable_by(better);
    ids
}

/// The ids of a `recommend` call's candidate keys (each once, in the order
/// given), looked up in the store; an unknown key is an error.
pub(crate) fn candidate_ids(store: &Store, keys: &[String]) -> Result<Vec<u32>> {
    let found = store.ids_of(keys)?;
    let mut unique = HashSet::new();
    let mut ids = Vec::with_capacity(keys.len());
    for (key, id) in keys.iter().zip(found) {
        let id = id.ok_or_else(|| Error::UnknownItem(key.clone()))?;
        if unique.insert(id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The ids one `recommend` call ranks: its candidates (or every item of
/// the catalog) but the `exclude`d (sorted).
pub(crate) fn allowed_ids(
    catalog: &InstalledCatalog,
    candidates: Option<Vec<u32>>,
    exclude: &[u32],
) -> Vec<u32> {
    let kept = |id: &u32| exclude.binary_search(id).is_err();
    match candidates {
        None => (0..catalog.n_items() as u32).filter(kept).collect(),
        Some(ids) => ids.into_iter().filter(kept).collect(),
    }
}

/// Router weights per expert, and per-input shares through the Sum expert.
pub(crate) fn preferences(
    store: &Store,
    catalog: &InstalledCatalog,
    model: &InstalledModel,
    state: &PrivateState,
    positives: &[u32],
    trained: bool,
) -> Result<Preferences> {
    let weights = router_weights(store, catalog, model, state, positives)?;
    let (names, modalities): (Vec<String>, _) = match model.global.fusion() {
        Fusion::IdOnly => (vec!["id".into()], None),
        Fusion::Mffm(m) => {
            let names = m
                .experts
                .iter()
                .map(|e| format!("{e:?}").to_lowercase())
                .collect();
            let linear = state.model.0.head.linear().is_some();
            let shares = if linear
                && m.experts.contains(&fedmr_core::model::Expert::Sum)
                && !positives.is_empty()
            {
                Some(sum_expert_shares(
                    store, catalog, model, state, m, positives,
                )?)
            } else {
                None
            };
            (names, shares)
        }
    };
    Ok(Preferences {
        experts: names
            .into_iter()
            .zip(weights)
            .map(|(expert, weight)| ExpertWeight { expert, weight })
            .collect(),
        modalities,
        trained,
    })
}

/// Share of input k = mean over the user's items of |z_k . theta| / sum_j |z_j . theta|,
/// where the Sum expert's view is sum_k z_k.
fn sum_expert_shares(
    store: &Store,
    catalog: &InstalledCatalog,
    model: &InstalledModel,
    state: &PrivateState,
    mffm: &fedmr_core::model::Mffm,
    positives: &[u32],
) -> Result<Vec<ModalityShare>> {
    let features = features_of(store, catalog, positives)?.features;
    let id_rows = user_id_rows(&model.global, state, positives);
    let feature_views: Vec<_> = features.iter().map(|f| f.view()).collect();
    let id_view = id_rows.view();
    let z = mffm.normalized_inputs(mffm.use_id.then_some(&id_view), &feature_views);
    let Some(head) = state.model.0.head.linear() else {
        return Ok(Vec::new());
    };
    let theta = &head.theta;
    let contributions: Vec<Array1<f32>> = z.iter().map(|zk| zk.dot(theta).mapv(f32::abs)).collect();
    let mut shares = vec![0f32; z.len()];
    for item in 0..positives.len() {
        let total: f32 = contributions.iter().map(|c| c[item]).sum();
        if total > 0.0 {
            for (share, c) in shares.iter_mut().zip(&contributions) {
                *share += c[item] / total;
            }
        }
    }
    let sum: f32 = shares.iter().sum();
    let mut names: Vec<String> = Vec::new();
    if mffm.use_id {
        names.push("id".into());
    }
    names.extend(catalog.meta.modalities.iter().map(|m| m.name.clone()));
    Ok(names
        .into_iter()
        .zip(shares)
        .map(|(modality, share)| ModalityShare {
            modality,
            share: if sum > 0.0 { share / sum } else { 0.0 },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedmr_core::data::synthetic::{SyntheticConfig, generate};
    use fedmr_core::model::{Backbone, FusionMode, GlobalModel, ModelConfig};
    use fedmr_core::rank::{ItemViews, score_all};
    use fedmr_core::rng::Rng;
    use fedmr_core::train::{TrainConfig, train_local};
    use fedmr_core::wire::{CatalogMessage, ModelMessage};
    use fedmr_test_support::TempDir;

    /// The chunked, store-backed scores equal the simulator's in-memory
    /// `score_all` (on the same f16-rounded features), for every backbone
    /// and fusion, including PFedRec's personal rows.
    #[test]
    fn chunked_scores_match_score_all() {
        let ds = generate(&SyntheticConfig {
            n_users: 10,
            n_items: 50,
            modality_dim: 6,
            seed: 1,
            ..SyntheticConfig::default()
        });
        let keys = (0..ds.n_items).map(|i| format!("k{i}")).collect();
        let mods: Vec<(&str, _)> = ds
            .modalities
            .iter()
            .map(|m| (m.name.as_str(), &m.features))
            .collect();
        let message = CatalogMessage::from_features(1, keys, &mods).unwrap();
        let dir = TempDir::new("ranking");
        let store = Store::open(&dir.db()).unwrap();
        store.install_catalog(&message, [0; 32], false).unwrap();
        let catalog = InstalledCatalog::load(&store).unwrap().unwrap();
        let rounded = Catalog {
            n_items: ds.n_items,
            features: decode_rows(
                &message
                    .items
                    .iter()
                    .map(|i| i.features_f16.clone())
                    .collect::<Vec<_>>(),
                &catalog.modality_dims(),
            )
            .unwrap(),
        };
        let history = [3u32, 9, 27, 31];

        for backbone in Backbone::ALL {
            for fusion in [FusionMode::full(), FusionMode::IdOnly] {
                let config = ModelConfig {
                    backbone,
                    fusion: fusion.clone(),
                    dim: 8,
                    init_std: 0.1,
                };
                let global = GlobalModel::new(&config, &rounded, 2).unwrap();
                let mut state = PrivateState::new(&config, &global, 4);
                // Two rounds, so FedRAP's personal rows exist for items
                // trained in the first round only too.
                for round in 1..=2 {
                    let train = TrainConfig {
                        round,
                        ..TrainConfig::default()
                    };
                    let positives = &history[..history.len() - 2 + round as usize];
                    train_local(
                        &global,
                        &rounded,
                        backbone,
                        &mut state,
                        positives,
                        &train,
                        &mut Rng::new(5 + round),
                    )
                    .unwrap();
                }
                assert_eq!(
                    state.personal_items.0.is_some(),
                    matches!(backbone, Backbone::PFedRec | Backbone::FedRap)
                );
                let msg = ModelMessage::from_model(
                    1,
                    (1, [0; 32]),
                    &config,
                    &TrainConfig::default(),
                    &global,
                );
                let model = InstalledModel::from_message(msg, global.clone(), [0; 32]);

                let want = score_all(
                    &global,
                    &rounded,
                    &ItemViews::compute(&global, &rounded),
                    &state,
                    &history,
                );
                let weights = router_weights(&store, &catalog, &model, &state, &history).unwrap();
                let score =
                    |source| item_scores(&store, &catalog, &model, &state, &weights, 7, source);
                let (computed, none) = score(ViewSource::Compute).unwrap();
                assert!(none.is_none());
                let (first, kept) = score(ViewSource::ComputeAndKeep).unwrap();
                let kept = kept.expect("views kept");
                assert_eq!(first, computed);
                // Rescoring from kept global views: the user's own rows
                // (PFedRec) are recomputed, everything else is reused.
                let (rescored, _) = score(ViewSource::Kept(&kept)).unwrap();
                for scores in [computed, rescored] {
                    let got = scores.combine(&weights);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                            "{backbone:?} {fusion:?} item {i}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn top_k_orders_by_score_then_id() {
        let scores = [0.5, 2.0, 2.0, -1.0, 3.0];
        assert_eq!(top_k(&scores, 0..5, 3), [4, 1, 2]);
        assert_eq!(top_k(&scores, [0u32, 3].into_iter(), 10), [0, 3]);
        assert!(top_k(&scores, 0..5, 0).is_empty());
    }
}
