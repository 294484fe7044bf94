//! One local round on a device: sample negatives, run E full-batch SGD
//! epochs on the user's data, and produce the update (FEDMR.md, "Training").
//!
//! In steps: `plan` decides the round's negatives and the rows it touches;
//! the caller brings those rows' content features; `local_copy` trains a
//! copy of the touched parameters epoch by epoch; finishing turns the copy
//! into the upload and the new private state (`personal` keeps FedRAP's
//! and PFedRec's personal rows).

mod local_copy;
mod personal;
mod plan;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::rap::RapWeights;
use crate::model::{Backbone, Catalog, GlobalModel, PrivateState};
use crate::privacy::{Protection, protect};
use crate::rng::Rng;
use crate::update::ModelUpdate;
use local_copy::LocalCopy;
pub use plan::{RoundPlan, plan_round, sample_negatives};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub lr: f32,
    /// Learning rate of the item-ID rows (default: `lr`). Under the mean BCE
    /// a row's gradient is divided by the batch size, while the dense fusion
    /// layers see every sample: one step size rarely suits both.
    #[serde(default)]
    pub item_lr: Option<f32>,
    pub epochs: usize,
    /// Negatives sampled per positive.
    pub negatives: usize,
    /// What the round's uploads may reveal (the server's choice; clients obey).
    #[serde(default)]
    pub protection: Protection,
    /// The round this training belongs to, 1-based (the version of the model
    /// trained on); FedRAP's regularisers ramp up with it. Not part of the
    /// published configuration: each caller sets it.
    #[serde(skip, default = "first_round")]
    pub round: u64,
}

fn first_round() -> u64 {
    1
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            lr: 0.1,
            item_lr: None,
            epochs: 5,
            negatives: 1,
            protection: Protection::none(),
            round: first_round(),
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::InvalidConfig(format!(
                "learning rate must be positive, got {}",
                self.lr
            )));
        }
        if let Some(lr) = self.item_lr.filter(|lr| !(lr.is_finite() && *lr > 0.0)) {
            return Err(Error::InvalidConfig(format!(
                "item learning rate must be positive, got {lr}"
            )));
        }
        if self.epochs == 0 {
            return Err(Error::InvalidConfig("epochs must be at least 1".into()));
        }
        self.protection.validate()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocalReport {
    /// Mean BCE of each epoch, before that epoch's step.
    pub epoch_losses: Vec<f32>,
    pub samples: u64,
}

/// What an observer sees after each epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochProgress {
    /// Epochs done so far (1-based).
    pub epoch: usize,
    pub epochs: usize,
    /// Mean BCE of this epoch, before its step.
    pub loss: f32,
}

/// An observer's answer after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Keep the epochs done so far and finish the round with them.
    Stop,
    /// Discard the round: `train_planned` returns `Error::Cancelled`.
    Cancel,
}

/// Trains one user for one round. `positives` are the user's training items
/// (the only items excluded from negative sampling: validation and test items
/// stay eligible, as they would be on a real device that holds them out).
/// `rng` is the stream for this user and round.
pub fn train_local(
    global: &GlobalModel,
    catalog: &Catalog,
    backbone: Backbone,
    state: &mut PrivateState,
    positives: &[u32],
    config: &TrainConfig,
    rng: &mut Rng,
) -> Result<(ModelUpdate, LocalReport)> {
    let plan = plan_round(global, positives, config, rng)?;
    plan.check_catalog(global, catalog)?;
    let mut run_all = |_: &EpochProgress| Flow::Continue;
    run_round(
        global,
        FeatureRows::Catalog(catalog),
        backbone,
        state,
        &plan,
        config,
        &mut run_all,
    )
}

/// Where a round reads its content rows.
#[derive(Clone, Copy)]
enum FeatureRows<'a> {
    /// One row per touched item, in `RoundPlan::touched` order: what a
    /// device reads from its store.
    Touched(&'a Catalog),
    /// A whole catalog, read by item id: the simulation holds it in memory,
    /// and copying the touched rows out first was 4% of a round.
    Catalog(&'a Catalog),
}

/// Runs a planned round on the content rows of `plan.touched()` (for an
/// ID-only model, none), calling `observer` after every epoch; it may stop
/// the round early (keeping the epochs done) or cancel it. `state` changes
/// only when the call returns `Ok`. The caller reads the features, so the
/// core never does I/O: the simulation gathers them from memory, a device
/// from its store.
pub fn train_planned(
    global: &GlobalModel,
    touched_features: &Catalog,
    backbone: Backbone,
    state: &mut PrivateState,
    plan: &RoundPlan,
    config: &TrainConfig,
    observer: &mut dyn FnMut(&EpochProgress) -> Flow,
) -> Result<(ModelUpdate, LocalReport)> {
    plan.check_features(global, touched_features)?;
    run_round(
        global,
        FeatureRows::Touched(touched_features),
        backbone,
        state,
        plan,
        config,
        observer,
    )
}

/// The round of `train_planned` and `train_local`, on content rows from
/// either source (the features are checked by the caller).
fn run_round(
    global: &GlobalModel,
    features: FeatureRows,
    backbone: Backbone,
    state: &mut PrivateState,
    plan: &RoundPlan,
    config: &TrainConfig,
    observer: &mut dyn FnMut(&EpochProgress) -> Flow,
) -> Result<(ModelUpdate, LocalReport)> {
    let mut copy = LocalCopy::new(global, backbone, state, plan);
    let rap_weights = RapWeights::at_round(config.round);
    let mut epoch_losses = Vec::with_capacity(config.epochs);
    for (epoch, negatives) in plan.negatives.iter().enumerate() {
        let batch = plan.batch(negatives);
        let (source, source_rows) = match features {
            FeatureRows::Touched(touched) => (touched, batch.clone()),
            FeatureRows::Catalog(catalog) => (
                catalog,
                batch.iter().map(|&k| plan.touched()[k] as usize).collect(),
            ),
        };
        let loss = copy.epoch(
            &batch,
            plan.hidden.get(epoch).map(Vec::as_slice),
            plan.positives.len(),
            (source, &source_rows),
            config,
            rap_weights,
        );
        epoch_losses.push(loss);
        let progress = EpochProgress {
            epoch: epoch_losses.len(),
            epochs: config.epochs,
            loss,
        };
        match observer(&progress) {
            Flow::Continue => {}
            Flow::Stop => break,
            Flow::Cancel => return Err(Error::Cancelled),
        }
    }
    if !copy.all_finite() {
        return Err(Error::Diverged { lr: config.lr });
    }
    let samples = plan.samples();
    let trained = copy.finish(global, backbone, state, plan, epoch_losses.len(), samples);
    let update = protect(
        trained,
        global.n_items(),
        &config.protection,
        &mut plan.noise_stream(),
    );
    Ok((
        update,
        LocalReport {
            epoch_losses,
            samples,
        },
    ))
}
