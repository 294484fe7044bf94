//! Scoring for `recommend` and `preferences`, without ever holding every
//! item's views or features in memory.
//!
//! With a linear head a user's score of item i is
//! `b + sum_j w_j (F_j(i) . theta)`: the per-expert scores `F_j(i) . theta`
//! depend on the model and the private state only, and are cached (3 floats
//! per item); the router weights `w_j` depend on the history and are cheap
//! to recompute. A warm `recommend` is then one weighted sum and a top-k.
//! FedNCF's NeuMF head is not linear in the view: its final scores are
//! cached per router weights, so a history change costs a catalog scan.

use std::collections::HashSet;

use ndarray::{Array1, Array2, s};

use super::installed::{InstalledCatalog, InstalledModel, decode_rows};
use super::types::{ExpertWeight, ModalityShare, Preferences};
use crate::model::stack::{expert_weights, item_view, mix};
use crate::model::{Catalog, Fusion, PersonalItems, PrivateState};
use crate::rank::additive_rows;
use crate::store::Store;
use crate::{Error, Result};

/// Items per chunk when scanning the catalog: bounds memory to a few MB.
pub(crate) const CHUNK: usize = 2048;

/// Every item's scores for one (model, private state).
pub(crate) enum ItemScores {
    /// Linear head: `F_j(i) . theta` per expert (FedRAP's `P_i . theta`
    /// added to each: the weights sum to one), combined under any weights.
    PerExpert {
        per_expert: Vec<Vec<f32>>,
        bias: f32,
    },
    /// A head not linear in the view (NeuMF): final scores, valid for the
    /// router weights they were computed with only.
    Final(Vec<f32>),
}

/// The user's history as the model sees it.
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
    pub fn load(store: &Store, catalog: &InstalledCatalog) -> Result<Self> {
        let mut positives = Vec::new();
        let mut seen = Vec::new();
        let mut unknown = 0;
        for (key, weight) in store.item_weights()? {
            match catalog.ids.get(&key) {
                Some(&id) => {
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

/// Expert views of the items whose ID rows and feature bytes are given,
/// with the user's personal rows (PFedRec) in place of the global ones.
fn views(
    model: &InstalledModel,
    state: &PrivateState,
    ids: &[u32],
    mut id_rows: Array2<f32>,
    feature_rows: &[Vec<u8>],
    dims: &[usize],
) -> Result<Vec<Array2<f32>>> {
    if let (Some(personal), PersonalItems::Replace) = (&state.personal_items.0, state.personal_kind)
    {
        for (k, id) in ids.iter().enumerate() {
            if let Ok(p) = personal.ids.binary_search(id) {
                id_rows.row_mut(k).assign(&personal.values.row(p));
            }
        }
    }
    Ok(match model.global.fusion() {
        Fusion::IdOnly => vec![id_rows],
        fusion => {
            let features = decode_rows(feature_rows, dims)?;
            let catalog = Catalog {
                n_items: ids.len(),
                features,
            };
            fusion.views(&id_rows.view(), &catalog)
        }
    })
}

fn id_rows_of(model: &InstalledModel, ids: &[u32]) -> Array2<f32> {
    let table = &model.global.items.0.0;
    let mut rows = Array2::zeros((ids.len(), table.ncols()));
    for (k, &id) in ids.iter().enumerate() {
        rows.row_mut(k).assign(&table.row(id as usize));
    }
    rows
}

/// Views of `ids` (features read from the store).
pub(crate) fn views_of(
    store: &Store,
    catalog: &InstalledCatalog,
    model: &InstalledModel,
    state: &PrivateState,
    ids: &[u32],
) -> Result<Vec<Array2<f32>>> {
    let feature_rows = match *model.global.fusion() {
        Fusion::IdOnly => Vec::new(),
        _ => {
            let as_usize: Vec<usize> = ids.iter().map(|&i| i as usize).collect();
            store.feature_rows(&as_usize)?
        }
    };
    let rows = id_rows_of(model, ids);
    views(
        model,
        state,
        ids,
        rows,
        &feature_rows,
        &catalog.modality_dims(),
    )
}

impl ItemScores {
    /// Scans the catalog once, `chunk` items at a time. `weights` (the
    /// user's router weights) are used only by heads that need them.
    pub fn compute(
        store: &Store,
        catalog: &InstalledCatalog,
        model: &InstalledModel,
        state: &PrivateState,
        weights: &Array1<f32>,
        chunk: usize,
    ) -> Result<Self> {
        let global = &model.global;
        let user = &state.model.0;
        let linear = user
            .head
            .linear()
            .filter(|_| !global.dense.adds_id_to_view());
        let n = global.n_items();
        let outputs = if linear.is_some() { weights.len() } else { 1 };
        let mut columns = vec![Vec::with_capacity(n); outputs];
        let dims = catalog.modality_dims();
        let mut add_chunk = |first: usize, feature_rows: &[Vec<u8>], len: usize| -> Result<()> {
            let ids: Vec<u32> = (first as u32..(first + len) as u32).collect();
            let as_usize: Vec<usize> = ids.iter().map(|&i| i as usize).collect();
            let rows = global
                .items
                .0
                .0
                .slice(s![first..first + len, ..])
                .to_owned();
            let personal = additive_rows(state, &as_usize, global.dim());
            let expert_views = views(model, state, &ids, rows.clone(), feature_rows, &dims)?;
            match linear {
                Some(head) => {
                    let extra = personal.map(|p| p.dot(&head.theta));
                    for (scores, v) in columns.iter_mut().zip(expert_views) {
                        let mut s = v.dot(&head.theta);
                        if let Some(e) = &extra {
                            s += e;
                        }
                        scores.extend(s);
                    }
                }
                None => {
                    let view = item_view(
                        &global.dense,
                        mix(&expert_views, &weights.view()),
                        &rows.view(),
                        personal.as_ref().map(|p| p.view()).as_ref(),
                    );
                    columns[0].extend(user.head.score(global.ncf(), &view.view()));
                }
            }
            Ok(())
        };
        match *model.global.fusion() {
            Fusion::IdOnly => {
                for first in (0..n).step_by(chunk) {
                    add_chunk(first, &[], chunk.min(n - first))?;
                }
            }
            _ => store
                .for_each_feature_chunk(chunk, |first, rows| add_chunk(first, rows, rows.len()))?,
        }
        if columns.iter().any(|s| s.len() != n) {
            return Err(Error::Store(format!(
                "catalog table has a different item count than the model's {n}"
            )));
        }
        Ok(match linear {
            Some(head) => ItemScores::PerExpert {
                per_expert: columns,
                bias: head.bias[0],
            },
            None => ItemScores::Final(columns.remove(0)),
        })
    }

    /// Whether these scores hold for other router weights too.
    pub fn independent_of_weights(&self) -> bool {
        matches!(self, ItemScores::PerExpert { .. })
    }

    /// Scores of every item under expert weights `weights` (for `Final`,
    /// the weights they were computed with).
    pub fn combine(&self, weights: &Array1<f32>) -> Vec<f32> {
        let (per_expert, bias) = match self {
            ItemScores::Final(scores) => return scores.clone(),
            ItemScores::PerExpert { per_expert, bias } => (per_expert, *bias),
        };
        let mut scores = vec![bias; per_expert[0].len()];
        for (expert, &w) in per_expert.iter().zip(weights) {
            for (s, &e) in scores.iter_mut().zip(expert) {
                *s += w * e;
            }
        }
        scores
    }
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
    let rows: Vec<usize> = (0..positives.len()).collect();
    Ok(expert_weights(&state.model.0, &hv, &rows))
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

/// Candidate ids for one `recommend` call.
pub(crate) fn allowed_ids(
    catalog: &InstalledCatalog,
    candidates: Option<&[String]>,
    exclude: &[u32],
) -> Result<Vec<u32>> {
    let excluded = |id: &u32| exclude.binary_search(id).is_ok();
    match candidates {
        None => Ok((0..catalog.keys.len() as u32)
            .filter(|id| !excluded(id))
            .collect()),
        Some(keys) => {
            let mut unique = HashSet::new();
            let mut ids = Vec::with_capacity(keys.len());
            for key in keys {
                let &id = catalog
                    .ids
                    .get(key)
                    .ok_or_else(|| Error::UnknownItem(key.clone()))?;
                if unique.insert(id) && !excluded(&id) {
                    ids.push(id);
                }
            }
            Ok(ids)
        }
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
                && m.experts.contains(&crate::model::Expert::Sum)
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
    mffm: &crate::model::Mffm,
    positives: &[u32],
) -> Result<Vec<ModalityShare>> {
    let as_usize: Vec<usize> = positives.iter().map(|&i| i as usize).collect();
    let features = decode_rows(&store.feature_rows(&as_usize)?, &catalog.modality_dims())?;
    let mut id_rows = id_rows_of(model, positives);
    if let (Some(personal), PersonalItems::Replace) = (&state.personal_items.0, state.personal_kind)
    {
        for (k, id) in positives.iter().enumerate() {
            if let Ok(p) = personal.ids.binary_search(id) {
                id_rows.row_mut(k).assign(&personal.values.row(p));
            }
        }
    }
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
    use crate::data::synthetic::{SyntheticConfig, generate};
    use crate::model::{Backbone, FusionMode, GlobalModel, ModelConfig};
    use crate::rank::{ItemViews, score_all};
    use crate::rng::Rng;
    use crate::store::test_util::TempDir;
    use crate::train::{TrainConfig, train_local};
    use crate::wire::{CatalogMessage, ModelMessage};

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
                let msg = ModelMessage::from_model(1, 1, &config, &TrainConfig::default(), &global);
                let model = InstalledModel::from_message(msg, global.clone(), [0; 32]);

                let want = score_all(
                    &global,
                    &rounded,
                    &ItemViews::compute(&global, &rounded),
                    &state,
                    &history,
                );
                let weights = router_weights(&store, &catalog, &model, &state, &history).unwrap();
                let scores =
                    ItemScores::compute(&store, &catalog, &model, &state, &weights, 7).unwrap();
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

    #[test]
    fn top_k_orders_by_score_then_id() {
        let scores = [0.5, 2.0, 2.0, -1.0, 3.0];
        assert_eq!(top_k(&scores, 0..5, 3), [4, 1, 2]);
        assert_eq!(top_k(&scores, [0u32, 3].into_iter(), 10), [0, 3]);
        assert!(top_k(&scores, 0..5, 0).is_empty());
    }
}
