//! `Client::train`: one local round on the device's own data, committed
//! together with the update it produced.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::installed::StoreFeatures;
use super::private::{PrivateRecord, load_state};
use super::ranking::History;
use super::types::{TrainOptions, TrainReport};
use super::{Client, random_u64};
use crate::rng::Rng;
use crate::store::NewUpdate;
use crate::train::{EpochProgress, Flow, TrainConfig, train_local_observed};
use crate::wire::UpdateMessage;
use crate::{Error, Result};

impl Client {
    /// Trains the private model and the local copy of the global one on the
    /// user's interactions, then stores the new private state and the update
    /// to upload in ONE transaction. Nothing is written if the round fails,
    /// diverges or is cancelled. Runs on the caller's thread; `recommend`
    /// stays usable from other threads meanwhile.
    pub fn train(&self, options: &TrainOptions) -> Result<TrainReport> {
        let started = Instant::now();
        let installed = self.installed();
        let (catalog, model) = installed.ready()?;
        let config = TrainConfig {
            // One round per published model version.
            round: model.version,
            ..options
                .config
                .clone()
                .unwrap_or_else(|| model.train.clone())
        };
        config.validate()?;
        let history = History::load(&self.store, catalog)?;
        if history.positives.is_empty() {
            return Err(Error::NotReady(
                "no interactions with catalog items to train on".into(),
            ));
        }
        let record = self.private_record()?;
        let mut state = load_state(record.as_ref(), model, self.init_seed())?;
        let rounds_before = record.as_ref().map_or(0, |r| r.rounds_trained);

        let mut rng = match options.rng_seed {
            Some(seed) => Rng::new(seed),
            None => {
                let seed = self.config.seed.unwrap_or_else(random_u64);
                Rng::derive(seed, &[0x7a11, model.version, rounds_before])
            }
        };
        let features = StoreFeatures {
            store: &self.store,
            dims: catalog.modality_dims(),
        };
        let cancelled = || options.cancel.as_ref().is_some_and(|c| c.is_cancelled());
        if cancelled() {
            return Err(Error::Cancelled);
        }
        let mut stopped_early = false;
        let mut observer = |p: &EpochProgress| {
            if let Some(listener) = &options.progress {
                listener.on_epoch(p);
            }
            if cancelled() {
                Flow::Cancel
            } else if p.epoch < p.epochs
                && options.time_budget.is_some_and(|b| started.elapsed() >= b)
            {
                stopped_early = true;
                Flow::Stop
            } else {
                Flow::Continue
            }
        };
        let (update, local) = train_local_observed(
            &model.global,
            &features,
            model.config.backbone,
            &mut state,
            &history.positives,
            &config,
            &mut rng,
            &mut observer,
        )?;
        if cancelled() {
            return Err(Error::Cancelled);
        }

        let key = new_idempotency_key();
        // One round per published model version: the round is the version trained on.
        let round = model.version;
        let bytes = UpdateMessage::new(round, model.version, key.clone(), &update).encode();
        let record = PrivateRecord::new(
            &state,
            catalog.meta.version,
            model.version,
            rounds_before + 1,
            key.clone(),
        );
        self.store.put_private_state_and_update(
            &record.encode(),
            &NewUpdate {
                idempotency_key: &key,
                round,
                base_version: model.version,
                payload: &bytes,
            },
        )?;
        self.state_generation.fetch_add(1, Ordering::SeqCst);

        Ok(TrainReport {
            epochs_run: local.epoch_losses.len(),
            epochs_planned: config.epochs,
            losses: local.epoch_losses,
            positives: history.positives.len(),
            unknown_items: history.unknown,
            samples: local.samples,
            stopped_early,
            round,
            base_version: model.version,
            idempotency_key: key,
            update_bytes: bytes.len(),
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }
}

/// 128 random bits as hex: unique per update without coordination.
fn new_idempotency_key() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}
