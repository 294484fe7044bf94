//! Folding client updates into the next global model. Streaming: running
//! weighted sums, so memory is O(model) whatever the number of clients. Used
//! by the in-process simulation and by the server alike. A rule against
//! poisoning (a trimmed mean or median, `robust.rs`, or a per-row clip)
//! holds the round's updates instead.

mod robust;

pub use robust::Combine;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::optim::{Adam, Yogi};
use crate::model::params::Tensors;
use crate::model::{Backbone, GlobalModel};
use crate::secagg::UnmaskedSums;
use crate::update::ModelUpdate;

/// How the averaged change of the dense fusion parameters is applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerStep {
    /// global += lr * average change (lr = 1 is plain FedAvg).
    Plain { lr: f32 },
    /// The average change taken as a negative gradient for Adam (the paper's choice).
    Adam { lr: f32 },
    /// The same for FedYogi (Reddi et al., ICLR 2021).
    Yogi { lr: f32 },
}

/// Server-side optimiser state that persists across rounds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ServerOptimizer {
    Plain { lr: f32 },
    Adam(Adam),
    Yogi(Yogi),
}

impl ServerOptimizer {
    pub fn new(step: &ServerStep) -> Self {
        match *step {
            ServerStep::Plain { lr } => ServerOptimizer::Plain { lr },
            ServerStep::Adam { lr } => ServerOptimizer::Adam(Adam::new(lr)),
            ServerStep::Yogi { lr } => ServerOptimizer::Yogi(Yogi::new(lr)),
        }
    }
}

/// The most samples an update's FedAvg weight counts by default (the
/// server's `max_samples`): honest local rounds carry far fewer.
pub const DEFAULT_SAMPLE_CAP: u64 = 10_000;

/// How a round's updates become the model's change: each update's L2 norm
/// clipped to a bound (if any), then combined value by value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregationRule {
    pub combine: Combine,
    /// An update above this L2 norm (dense and rows together) is scaled down to it.
    pub clip: Option<f32>,
    /// Each update's change of an item row is clipped to this multiple of
    /// the median norm of that row's changes in the round: a client may push
    /// a row about as hard as the others who touched it, not ten times harder.
    #[serde(default)]
    pub row_clip: Option<f32>,
}

impl AggregationRule {
    /// Whether the rule needs the whole round at once (it cannot stream).
    pub fn holds_updates(&self) -> bool {
        !self.combine.is_mean() || self.row_clip.is_some()
    }
}

impl Default for AggregationRule {
    fn default() -> Self {
        AggregationRule {
            combine: Combine::Mean,
            clip: None,
            row_clip: None,
        }
    }
}

pub struct Aggregator {
    backbone: Backbone,
    rule: AggregationRule,
    /// The round's updates, kept only under a rule that needs them all at
    /// once (`AggregationRule::holds_updates`); the weighted mean streams.
    held: Vec<ModelUpdate>,
    /// The most samples an update's weight counts (its declared count is
    /// the client's word; the server decides how far it is taken).
    sample_cap: u64,
    dense_sum: Vec<f64>,
    total_weight: f64,
    row_sum: Array2<f32>,
    row_weight: Vec<f64>,
    updates: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AggregateReport {
    pub updates: usize,
    pub rows_changed: usize,
}

impl Aggregator {
    pub fn new(model: &GlobalModel, backbone: Backbone) -> Self {
        Aggregator {
            backbone,
            rule: AggregationRule::default(),
            held: Vec::new(),
            sample_cap: u64::MAX,
            dense_sum: vec![0.0; model.dense.num_params()],
            total_weight: 0.0,
            row_sum: Array2::zeros((model.n_items(), model.dim())),
            row_weight: vec![0.0; model.n_items()],
            updates: 0,
        }
    }

    /// Counts at most `cap` of each update's declared samples in its weight
    /// (1: every client alike).
    pub fn with_sample_cap(mut self, cap: u64) -> Self {
        self.sample_cap = cap.max(1);
        self
    }

    /// Combines updates by `rule` instead of the plain weighted mean.
    pub fn with_rule(mut self, rule: AggregationRule) -> Self {
        self.rule = rule;
        self
    }

    pub fn rule(&self) -> AggregationRule {
        self.rule
    }

    pub fn updates(&self) -> usize {
        self.updates
    }

    /// Adds one update; an invalid one is rejected and changes nothing.
    pub fn add(&mut self, model: &GlobalModel, update: &ModelUpdate) -> Result<()> {
        update.validate(model)?;
        let clipped;
        let update = match self.rule.clip {
            Some(bound) if update.l2_norm() > bound => {
                let mut u = update.clone();
                u.scale(bound / u.l2_norm());
                clipped = u;
                &clipped
            }
            _ => update,
        };
        if self.rule.holds_updates() {
            self.held.push(update.clone());
        } else {
            self.accumulate(update);
        }
        self.updates += 1;
        Ok(())
    }

    /// Adds `update` to the running weighted sums.
    fn accumulate(&mut self, update: &ModelUpdate) {
        let w = self
            .backbone
            .aggregation_weight(update.samples.min(self.sample_cap));
        for (s, &d) in self.dense_sum.iter_mut().zip(&update.dense) {
            *s += w * d as f64;
        }
        self.total_weight += w;
        for (&id, row) in update
            .item_rows
            .ids
            .iter()
            .zip(update.item_rows.values.rows())
        {
            self.row_sum.row_mut(id as usize).scaled_add(w as f32, &row);
            self.row_weight[id as usize] += w;
        }
    }

    /// Adds a secure round's unmasked sums: the same weighted sums `add`
    /// builds one update at a time, but for the whole cohort at once.
    pub fn add_unmasked(&mut self, model: &GlobalModel, sums: &UnmaskedSums) -> Result<()> {
        if self.rule != AggregationRule::default() {
            return Err(crate::Error::InvalidConfig(format!(
                "aggregation {} needs every update, and secure aggregation hides them",
                self.rule.combine
            )));
        }
        let shape_ok = sums.dense.len() == self.dense_sum.len()
            && sums.rows.dim() == self.row_sum.dim()
            && sums.row_weights.len() == self.row_weight.len()
            && model.n_items() == self.row_weight.len();
        if !shape_ok {
            return Err(crate::Error::Shape(
                "unmasked sums of another model's shape".into(),
            ));
        }
        // A row nobody touched sums codes of exactly 0, so its weight is 0
        // and `apply` leaves it alone, as it does in plain aggregation.
        let finite = sums.weight.is_finite()
            && sums.dense.iter().all(|v| v.is_finite())
            && sums.rows.iter().all(|v| v.is_finite());
        if !finite || sums.weight <= 0.0 {
            return Err(crate::Error::InvalidUpdate(
                "the unmasked sum is not usable".into(),
            ));
        }
        for (s, &d) in self.dense_sum.iter_mut().zip(&sums.dense) {
            *s += d;
        }
        self.total_weight += sums.weight;
        self.row_sum += &sums.rows;
        for (w, &add) in self.row_weight.iter_mut().zip(&sums.row_weights) {
            *w += add;
        }
        self.updates += sums.clients;
        Ok(())
    }

    /// Takes in another aggregate of the same round (built with the same
    /// model, rule and cap): the result is as if every update had been
    /// added to one aggregator.
    pub fn merge(&mut self, other: Aggregator) -> Result<()> {
        if other.rule != self.rule
            || other.sample_cap != self.sample_cap
            || other.dense_sum.len() != self.dense_sum.len()
            || other.row_sum.dim() != self.row_sum.dim()
        {
            return Err(crate::Error::InvalidConfig(
                "merging aggregates of different rounds".into(),
            ));
        }
        for (s, o) in self.dense_sum.iter_mut().zip(&other.dense_sum) {
            *s += o;
        }
        self.total_weight += other.total_weight;
        self.row_sum += &other.row_sum;
        for (w, o) in self.row_weight.iter_mut().zip(&other.row_weight) {
            *w += o;
        }
        self.held.extend(other.held);
        self.updates += other.updates;
        Ok(())
    }

    /// Applies the averages: each item row by the mean over the clients that
    /// touched it, the dense parameters through the server optimiser.
    pub fn apply(
        mut self,
        model: &mut GlobalModel,
        optimizer: &mut ServerOptimizer,
    ) -> AggregateReport {
        if self.updates == 0 {
            return AggregateReport::default();
        }
        if let Some(multiple) = self.rule.row_clip {
            clip_rows(&mut self.held, multiple);
            if self.rule.combine.is_mean() {
                for u in std::mem::take(&mut self.held) {
                    self.accumulate(&u);
                }
            }
        }
        let mut rows_changed = 0;
        let table = &mut model.items.0.0;
        let mean: Vec<f32> = if self.rule.combine.is_mean() {
            for (id, &w) in self.row_weight.iter().enumerate() {
                if w > 0.0 {
                    table
                        .row_mut(id)
                        .scaled_add((1.0 / w) as f32, &self.row_sum.row(id));
                    rows_changed += 1;
                }
            }
            self.dense_sum
                .iter()
                .map(|s| (s / self.total_weight) as f32)
                .collect()
        } else {
            rows_changed = combine_rows(&self.held, self.rule.combine, table);
            combine_dense(&self.held, self.rule.combine, self.dense_sum.len())
        };
        match optimizer {
            ServerOptimizer::Plain { lr } => model.dense.add_flat(&mean, *lr),
            ServerOptimizer::Adam(adam) => {
                let grad: Vec<f32> = mean.iter().map(|m| -m).collect();
                adam.step(&mut model.dense.0, &grad);
            }
            ServerOptimizer::Yogi(yogi) => {
                let grad: Vec<f32> = mean.iter().map(|m| -m).collect();
                yogi.step(&mut model.dense.0, &grad);
            }
        }
        AggregateReport {
            updates: self.updates,
            rows_changed,
        }
    }
}

/// Clips every update's change of an item row to `multiple` × the median
/// norm of that row's changes this round (over the clients that touched
/// it): a client pushing one row far harder than the others who touched it
/// is cut back to their scale, whatever the row.
fn clip_rows(held: &mut [ModelUpdate], multiple: f32) {
    let mut norms: std::collections::HashMap<u32, Vec<f32>> = std::collections::HashMap::new();
    for u in held.iter() {
        for (&id, row) in u.item_rows.ids.iter().zip(u.item_rows.values.rows()) {
            norms.entry(id).or_default().push(row.dot(&row).sqrt());
        }
    }
    let bounds: std::collections::HashMap<u32, f32> = norms
        .into_iter()
        .map(|(id, mut n)| (id, multiple * Combine::Median.of(&mut n)))
        .collect();
    for u in held {
        let rows = &mut u.item_rows;
        for (id, mut row) in rows.ids.iter().zip(rows.values.rows_mut()) {
            let (norm, bound) = (row.dot(&row).sqrt(), bounds[id]);
            if norm > bound {
                row *= bound / norm;
            }
        }
    }
}

/// Each dense value combined over every held update.
fn combine_dense(held: &[ModelUpdate], combine: Combine, len: usize) -> Vec<f32> {
    let mut column = vec![0.0f32; held.len()];
    (0..len)
        .map(|j| {
            for (c, u) in column.iter_mut().zip(held) {
                *c = u.dense[j];
            }
            combine.of(&mut column)
        })
        .collect()
}

/// Each item row changed by its values combined over the updates that
/// touched it (as the mean takes each row over its own clients); returns
/// how many rows changed.
fn combine_rows(held: &[ModelUpdate], combine: Combine, table: &mut Array2<f32>) -> usize {
    let mut touches: Vec<Vec<(usize, usize)>> = vec![Vec::new(); table.nrows()];
    for (i, u) in held.iter().enumerate() {
        for (r, &id) in u.item_rows.ids.iter().enumerate() {
            touches[id as usize].push((i, r));
        }
    }
    let mut column = Vec::new();
    let mut changed = 0;
    for (id, touched) in touches.iter().enumerate() {
        if touched.is_empty() {
            continue;
        }
        changed += 1;
        for c in 0..table.ncols() {
            column.clear();
            column.extend(
                touched
                    .iter()
                    .map(|&(i, r)| held[i].item_rows.values[(r, c)]),
            );
            table[(id, c)] += combine.of(&mut column);
        }
    }
    changed
}
