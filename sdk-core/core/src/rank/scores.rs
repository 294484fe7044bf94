//! Every item's scores for one (model, private state), built chunk by chunk.
//!
//! With a linear head a user's score of item i is
//! `b + sum_j w_j (F_j(i) . theta)`: the per-expert scores `F_j(i) . theta`
//! depend on the model and the private state only, so they are kept (3
//! floats per item) and combined under any router weights `w_j`. FedNCF's
//! NeuMF head is not linear in the view: its final scores hold for the
//! router weights they were computed with only.

use ndarray::Array1;
use ndarray::Array2;

use super::additive_rows;
use crate::error::{Error, Result};
use crate::model::head::LinearHead;
use crate::model::layers::embedding::gather;
use crate::model::stack::{item_view, mix};
use crate::model::{GlobalModel, PrivateState};

/// Every item's scores for one (model, private state). Serializable: the
/// device keeps them between app starts.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ItemScores {
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

impl ItemScores {
    /// How many items are scored.
    pub fn n_items(&self) -> usize {
        match self {
            ItemScores::Final(scores) => scores.len(),
            ItemScores::PerExpert { per_expert, .. } => per_expert.first().map_or(0, Vec::len),
        }
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

/// Collects [`ItemScores`] from the items' views, in item order.
pub struct ScoreBuilder<'a> {
    global: &'a GlobalModel,
    state: &'a PrivateState,
    /// The user's router weights; only heads that are not linear use them.
    weights: Array1<f32>,
    linear: Option<&'a LinearHead>,
    columns: Vec<Vec<f32>>,
}

impl<'a> ScoreBuilder<'a> {
    pub fn new(global: &'a GlobalModel, state: &'a PrivateState, weights: &Array1<f32>) -> Self {
        let linear = state
            .model
            .0
            .head
            .linear()
            .filter(|_| !global.dense.adds_id_to_view());
        let outputs = if linear.is_some() { weights.len() } else { 1 };
        ScoreBuilder {
            global,
            state,
            weights: weights.clone(),
            linear,
            columns: vec![Vec::with_capacity(global.n_items()); outputs],
        }
    }

    /// Scores the next items `ids` (continuing in item order) from their
    /// expert views as this user sees them.
    pub fn add(&mut self, ids: &[u32], views: Vec<Array2<f32>>) {
        let global = self.global;
        let personal = additive_rows(self.state, ids, global.dim());
        match self.linear {
            Some(head) => {
                let extra = personal.map(|p| p.dot(&head.theta));
                for (scores, v) in self.columns.iter_mut().zip(views) {
                    let mut s = v.dot(&head.theta);
                    if let Some(e) = &extra {
                        s += e;
                    }
                    scores.extend(s);
                }
            }
            None => {
                let as_usize: Vec<usize> = ids.iter().map(|&i| i as usize).collect();
                let id_rows = gather(&global.items.0.0.view(), &as_usize);
                let view = item_view(
                    &global.dense,
                    mix(&views, &self.weights.view()),
                    &id_rows.view(),
                    personal.as_ref().map(|p| p.view()).as_ref(),
                );
                let head = &self.state.model.0.head;
                self.columns[0].extend(head.score(global.ncf(), &view.view()));
            }
        }
    }

    /// The scores, once every item of the model has been added.
    pub fn finish(mut self) -> Result<ItemScores> {
        let n = self.global.n_items();
        if let Some(column) = self.columns.iter().find(|c| c.len() != n) {
            return Err(Error::Shape(format!(
                "{} items scored, the model has {n}",
                column.len()
            )));
        }
        Ok(match self.linear {
            Some(head) => ItemScores::PerExpert {
                per_expert: self.columns,
                bias: head.bias[0],
            },
            None => ItemScores::Final(self.columns.remove(0)),
        })
    }
}
