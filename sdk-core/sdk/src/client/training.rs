//! `Client::train`: one local round on the device's own data, committed
//! together with the update it produced.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::installed::{InstalledCatalog, InstalledModel, features_of};
use super::private::{PrivateRecord, load_state};
use super::ranking::History;
use super::scoring::Views;
use super::types::{TrainOptions, TrainReport};
use super::{Client, random_u64};
use crate::store::NewUpdate;
use crate::{Error, Result};
use fedmr_core::model::{Catalog, Fusion, PrivateState};
use fedmr_core::rng::Rng;
use fedmr_core::train::{
    EpochProgress, Flow, LocalReport, RoundPlan, TrainConfig, plan_round, train_planned,
};
use fedmr_core::update::ModelUpdate;
use fedmr_core::wire::UpdateMessage;

/// What a round starts from, read from the store.
struct RoundStart {
    config: TrainConfig,
    history: History,
    state: PrivateState,
    rounds_before: u64,
    rng: Rng,
    /// The stored private state this round starts from (its bytes): the
    /// commit checks nobody else committed since.
    previous: Option<Vec<u8>>,
}

/// A finished round, before it is committed.
struct RoundDone {
    update: ModelUpdate,
    local: LocalReport,
    stopped_early: bool,
}

impl Client {
    /// Trains the private model and the local copy of the global one on the
    /// user's interactions, then stores the new private state and the update
    /// to upload in ONE transaction. Nothing is written if the round fails,
    /// diverges or is cancelled. Runs on the caller's thread; `recommend`
    /// stays usable from other threads meanwhile.
    ///
    /// Trainings of one store never interleave: if another one (another
    /// thread, another `Client` or another process on the same file)
    /// committed after this one started, this one fails with
    /// [`Error::Busy`] and writes nothing. The newest update trained on a
    /// model version replaces an older one for that version still waiting
    /// to be sent, so an upload always carries the newest work.
    pub fn train(&self, options: &TrainOptions) -> Result<TrainReport> {
        let started = Instant::now();
        let installed = self.installed();
        let (catalog, model) = installed.ready(&self.store)?;
        let model = &*model;
        let mut start = self.start_round(model, options)?;
        if cancelled(options) {
            return Err(Error::Cancelled);
        }
        let plan = plan_round(
            &model.global,
            &start.history.positives,
            &start.config,
            &mut start.rng,
        )?;
        let features = self.round_features(catalog, model, &plan)?;
        let done = run_round(model, &features, &mut start, &plan, options, started)?;
        if cancelled(options) {
            return Err(Error::Cancelled);
        }
        self.commit_round(catalog, model, start, done, started)
    }

    /// The configuration, history, private state and random stream of the
    /// next round on `model`.
    fn start_round(&self, model: &InstalledModel, options: &TrainOptions) -> Result<RoundStart> {
        let config = TrainConfig {
            // One round per published model version.
            round: model.version,
            // The server's defences hold whatever the caller overrides.
            protection: model.train.protection.clone(),
            ..options
                .config
                .clone()
                .unwrap_or_else(|| model.train.clone())
        };
        config.validate()?;
        let history = History::load(&self.store)?;
        if history.positives.is_empty() {
            return Err(Error::NotReady(
                "no interactions with catalog items to train on".into(),
            ));
        }
        let previous = self.store.private_state()?;
        let record = previous.as_deref().map(PrivateRecord::decode).transpose()?;
        let state = load_state(record.as_ref(), model, self.init_seed())?;
        let rounds_before = record.as_ref().map_or(0, |r| r.rounds_trained);
        let rng = match options.rng_seed {
            Some(seed) => Rng::new(seed),
            None => {
                let seed = self.config.seed.unwrap_or_else(random_u64);
                Rng::derive(seed, &[0x7a11, model.version, rounds_before])
            }
        };
        Ok(RoundStart {
            config,
            history,
            state,
            rounds_before,
            rng,
            previous,
        })
    }

    /// The content rows of the items `plan` touches, read from the store
    /// (only those rows: the catalog never sits in memory).
    fn round_features(
        &self,
        catalog: &InstalledCatalog,
        model: &InstalledModel,
        plan: &RoundPlan,
    ) -> Result<Catalog> {
        if matches!(model.global.fusion(), Fusion::IdOnly) {
            return Ok(Catalog::default());
        }
        features_of(&self.store, catalog, plan.touched())
    }

    /// Stores the new private state and the update in one transaction.
    fn commit_round(
        &self,
        catalog: &InstalledCatalog,
        model: &InstalledModel,
        start: RoundStart,
        done: RoundDone,
        started: Instant,
    ) -> Result<TrainReport> {
        let key = new_idempotency_key();
        // One round per published model version: the round is the version trained on.
        let round = model.version;
        let bytes = UpdateMessage::new(round, model.version, key.clone(), &done.update).encode();
        let record = PrivateRecord::new(
            &start.state,
            catalog.meta.version,
            model.version,
            start.rounds_before + 1,
            key.clone(),
        );
        let noise = start
            .config
            .protection
            .local_dp
            .map_or(0.0, |dp| dp.noise_to_sensitivity());
        self.store.put_private_state_and_update(
            start.previous.as_deref(),
            &record.encode(),
            &NewUpdate {
                idempotency_key: &key,
                round,
                base_version: model.version,
                payload: &bytes,
            },
            noise,
        )?;
        self.state_generation.fetch_add(1, Ordering::SeqCst);

        let report = TrainReport {
            epochs_run: done.local.epoch_losses.len(),
            epochs_planned: start.config.epochs,
            losses: done.local.epoch_losses,
            positives: start.history.positives.len(),
            unknown_items: start.history.unknown,
            samples: done.local.samples,
            stopped_early: done.stopped_early,
            round,
            base_version: model.version,
            idempotency_key: key,
            update_bytes: bytes.len(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        // Only private parameters changed: rescore from the global views
        // kept since the model was installed, if any, and store the result
        // for the next app start (not counted in the report's duration).
        self.refresh_ranking(Views::UseAndDrop);
        Ok(report)
    }
}

/// The epochs of a planned round, reporting progress and obeying the
/// caller's cancel flag and time budget after each one.
fn run_round(
    model: &InstalledModel,
    features: &Catalog,
    start: &mut RoundStart,
    plan: &RoundPlan,
    options: &TrainOptions,
    started: Instant,
) -> Result<RoundDone> {
    let mut stopped_early = false;
    let mut listener_failed = None;
    let mut observer = |p: &EpochProgress| {
        if let Some(listener) = &options.progress
            && let Err(reason) = listener.on_epoch(p)
        {
            listener_failed = Some(reason);
            return Flow::Cancel;
        }
        if cancelled(options) {
            Flow::Cancel
        } else if p.epoch < p.epochs && options.time_budget.is_some_and(|b| started.elapsed() >= b)
        {
            stopped_early = true;
            Flow::Stop
        } else {
            Flow::Continue
        }
    };
    let trained = train_planned(
        &model.global,
        features,
        model.config.backbone,
        &mut start.state,
        plan,
        &start.config,
        &mut observer,
    );
    // The listener's failure, not the cancellation it caused.
    if let Some(reason) = listener_failed {
        return Err(Error::ListenerFailed(reason));
    }
    let (update, local) = trained?;
    Ok(RoundDone {
        update,
        local,
        stopped_early,
    })
}

/// Whether the caller has raised the cancel flag.
fn cancelled(options: &TrainOptions) -> bool {
    options.cancel.as_ref().is_some_and(|c| c.is_cancelled())
}

/// 128 random bits as hex: unique per update without coordination.
fn new_idempotency_key() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}
