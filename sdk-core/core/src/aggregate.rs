//! Folding client updates into the next global model. Streaming: running
//! weighted sums, so memory is O(model) whatever the number of clients. Used
//! by the in-process simulation and by the server alike.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::optim::Adam;
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
}

/// Server-side optimiser state that persists across rounds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ServerOptimizer {
    Plain { lr: f32 },
    Adam(Adam),
}

impl ServerOptimizer {
    pub fn new(step: &ServerStep) -> Self {
        match *step {
            ServerStep::Plain { lr } => ServerOptimizer::Plain { lr },
            ServerStep::Adam { lr } => ServerOptimizer::Adam(Adam::new(lr)),
        }
    }
}

pub struct Aggregator {
    backbone: Backbone,
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

    pub fn updates(&self) -> usize {
        self.updates
    }

    /// Adds one update; an invalid one is rejected and changes nothing.
    pub fn add(&mut self, model: &GlobalModel, update: &ModelUpdate) -> Result<()> {
        update.validate(model)?;
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
        self.updates += 1;
        Ok(())
    }

    /// Adds a secure round's unmasked sums: the same weighted sums `add`
    /// builds one update at a time, but for the whole cohort at once.
    pub fn add_unmasked(&mut self, model: &GlobalModel, sums: &UnmaskedSums) -> Result<()> {
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

    /// Applies the averages: each item row by the mean over the clients that
    /// touched it, the dense parameters through the server optimiser.
    pub fn apply(
        self,
        model: &mut GlobalModel,
        optimizer: &mut ServerOptimizer,
    ) -> AggregateReport {
        if self.updates == 0 {
            return AggregateReport::default();
        }
        let mut rows_changed = 0;
        let table = &mut model.items.0.0;
        for (id, &w) in self.row_weight.iter().enumerate() {
            if w > 0.0 {
                table
                    .row_mut(id)
                    .scaled_add((1.0 / w) as f32, &self.row_sum.row(id));
                rows_changed += 1;
            }
        }
        let mean: Vec<f32> = self
            .dense_sum
            .iter()
            .map(|s| (s / self.total_weight) as f32)
            .collect();
        match optimizer {
            ServerOptimizer::Plain { lr } => model.dense.add_flat(&mean, *lr),
            ServerOptimizer::Adam(adam) => {
                let grad: Vec<f32> = mean.iter().map(|m| -m).collect();
                adam.step(&mut model.dense.0, &grad);
            }
        }
        AggregateReport {
            updates: self.updates,
            rows_changed,
        }
    }
}
