//! `FedmrClient`: fedmr-sdk's `Client`, method for method.
//!
//! The doc comments here are what Kotlin (KDoc), Swift and Python
//! (docstrings) users read: uniffi copies them into the generated sources.

use std::sync::Arc;
use std::time::Duration;

use fedmr_sdk::EpochProgress;
use fedmr_sdk::{self as core, CancelFlag};

use crate::error::FedmrError;
use crate::records::*;

type Result<T> = std::result::Result<T, FedmrError>;

/// Raise it from any thread to cancel a running `train`: the round is
/// discarded and `train` fails with `Cancelled`.
#[derive(uniffi::Object, Default)]
pub struct CancelToken(CancelFlag);

#[uniffi::export]
impl CancelToken {
    /// A token that is not raised.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    /// Raises the token (safe from any thread, any number of times).
    pub fn cancel(&self) {
        self.0.cancel()
    }
    /// True once `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// Implemented by the app: told after each training epoch, on the thread
/// that called `train`.
#[uniffi::export(with_foreign)]
pub trait TrainProgress: Send + Sync {
    /// Epoch `epoch` of `epochs` finished with mean loss `loss`. An
    /// exception thrown here ends the round: `train` fails with
    /// `CallbackFailed` and nothing is written.
    fn on_epoch(
        &self,
        epoch: u32,
        epochs: u32,
        loss: f32,
    ) -> std::result::Result<(), CallbackError>;
}

/// What an app's callback threw (any exception arrives as this).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum CallbackError {
    /// The callback failed; `reason` is the exception's text.
    #[error("{reason}")]
    Failed { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for CallbackError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        CallbackError::Failed { reason: e.reason }
    }
}

struct Forward(Arc<dyn TrainProgress>);

impl core::ProgressListener for Forward {
    fn on_epoch(&self, p: &EpochProgress) -> std::result::Result<(), String> {
        self.0
            .on_epoch(p.epoch as u32, p.epochs as u32, p.loss)
            .map_err(|e| e.to_string())
    }
}

/// The SDK's entry point: one per user and database file.
///
/// Threading: every method blocks the calling thread until it is done —
/// `train` for seconds, `sync` and `upload` for network round trips, the
/// rest for milliseconds (SQLite). Call them from a background thread,
/// never from a UI thread: on Android `Dispatchers.IO` or the `suspend`
/// functions of `org.fedmr.sdk`, on iOS the `async` functions of the
/// Swift package. A client may be shared by several threads; two
/// trainings of one database (threads or processes) never interleave: the
/// later one fails with `Busy` and writes nothing.
///
/// Errors: every method fails with `FedmrError` and changes nothing when
/// it fails.
#[derive(uniffi::Object)]
pub struct FedmrClient {
    inner: core::Client,
}

#[uniffi::export]
impl FedmrClient {
    /// Opens (creating if needed) the database at `config.db_path` and
    /// reads what is installed (headers only: a few milliseconds at 100,000
    /// items; the model is read when first needed).
    #[uniffi::constructor]
    pub fn open(config: ClientConfig) -> Result<Arc<Self>> {
        let inner = core::Client::open(core::ClientConfig {
            retention_cap: usize::try_from(config.retention_cap).unwrap_or(usize::MAX),
            seed: config.seed,
            ..core::ClientConfig::new(config.db_path)
        })?;
        Ok(Arc::new(FedmrClient { inner }))
    }

    /// Records one interaction. Items the catalog does not know yet are
    /// kept and count once a catalog has them. Refused (`InvalidInput`): a
    /// blank key, a timestamp that is negative, more than a day ahead or
    /// in seconds rather than milliseconds, a missing or non-finite weight.
    pub fn record(&self, interaction: Interaction) -> Result<()> {
        Ok(self.inner.record(interaction.into_core(0)?)?)
    }

    /// Records a batch in one transaction: all of it, or (on any invalid
    /// entry, named by its index) none of it. Returns how many were stored.
    pub fn record_batch(&self, interactions: Vec<Interaction>) -> Result<u64> {
        let batch = interactions
            .into_iter()
            .enumerate()
            .map(|(index, interaction)| interaction.into_core(index))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(self.inner.record_batch(&batch)? as u64)
    }

    /// Installs a catalog message from the server (what `sync` does for
    /// you). False when this exact catalog is already installed; an older
    /// version is refused.
    pub fn apply_catalog(&self, bytes: Vec<u8>) -> Result<bool> {
        Ok(self.inner.apply_catalog(&bytes)?)
    }

    /// Installs a global model message from the server (what `sync` does
    /// for you). It must fit the installed catalog and be newer than the
    /// installed model; false when this exact model is already installed.
    pub fn apply_model(&self, bytes: Vec<u8>) -> Result<bool> {
        Ok(self.inner.apply_model(&bytes)?)
    }

    /// Trains one local round on the recorded interactions and queues its
    /// update for `upload` (one per model version: a newer round replaces
    /// the queued one). Blocking, seconds: run it in a background job.
    /// `progress` is told after each epoch; raising `cancel` stops the round
    /// (`Cancelled`, nothing written).
    // (`options` last: uniffi 0.32 parses a bare name only at the end.)
    #[uniffi::method(default(progress = None, cancel = None, options))]
    pub fn train(
        &self,
        options: TrainOptions,
        progress: Option<Arc<dyn TrainProgress>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<TrainReport> {
        let options = core::TrainOptions {
            time_budget: options.time_budget_ms.map(Duration::from_millis),
            cancel: cancel.map(|c| c.0.clone()),
            progress: progress.map(|p| Arc::new(Forward(p)) as Arc<dyn core::ProgressListener>),
            ..core::TrainOptions::default()
        };
        Ok(self.inner.train(&options)?.into())
    }

    /// The top `k` items for the user, best first. `exclude_seen` leaves
    /// out items the user interacted with; `candidates` ranks only these
    /// keys (unknown ones are refused).
    #[uniffi::method(default(exclude_seen = true, candidates = None))]
    pub fn recommend(
        &self,
        k: u32,
        exclude_seen: bool,
        candidates: Option<Vec<String>>,
    ) -> Result<Vec<Recommendation>> {
        let options = core::RecommendOptions {
            exclude_seen,
            candidates,
        };
        Ok(self.inner.recommend(k as usize, &options)?)
    }

    /// The user's score of every catalog item, by catalog position: what
    /// `recommend` ranks (for evaluation and research).
    pub fn scores(&self) -> Result<Vec<f32>> {
        Ok(self.inner.scores()?)
    }

    /// The user's private router weights, per expert and (where
    /// computable) per modality, for an app to show what drives the
    /// recommendations.
    pub fn preferences(&self) -> Result<Preferences> {
        Ok(self.inner.preferences()?)
    }

    /// Updates waiting for upload, oldest first (`upload` sends them).
    pub fn pending_uploads(&self) -> Result<Vec<PendingUpload>> {
        Ok(self.inner.pending_uploads()?)
    }

    /// Removes an update from the outbox after an app delivered it itself;
    /// false if it was not there.
    pub fn acknowledge_upload(&self, idempotency_key: String) -> Result<bool> {
        Ok(self.inner.acknowledge_upload(&idempotency_key)?)
    }

    /// Counts and versions of what the client holds.
    pub fn stats(&self) -> Result<Stats> {
        Ok(self.inner.stats()?.into())
    }

    /// The (epsilon, `delta`) local DP has spent over every round trained
    /// here; `delta` must be in (0, 1).
    pub fn privacy_spent(&self, delta: f64) -> Result<PrivacySpent> {
        Ok(self.inner.privacy_spent(delta)?)
    }

    /// SQLite's `PRAGMA integrity_check` of the client's database: true when
    /// the file is sound (an app may run it after a crash or an update).
    pub fn integrity_check(&self) -> Result<bool> {
        Ok(self.inner.integrity_check()?)
    }

    /// Everything the client holds about the user, as JSON (for a
    /// "download my data" screen).
    pub fn export(&self) -> Result<String> {
        Ok(self.inner.export()?)
    }

    /// Erases everything of the user's (interactions, private state,
    /// pending updates) and compacts the file so nothing lingers; the
    /// server's catalog and model stay.
    pub fn forget_me(&self) -> Result<()> {
        Ok(self.inner.forget_me()?)
    }

    /// Downloads the catalog and the model if they changed, and installs
    /// them. Blocking: network round trips, retried up to
    /// `remote.max_attempts` times.
    pub fn sync(&self, remote: Remote) -> Result<SyncReport> {
        Ok(self.inner.sync(&remote.into())?)
    }

    /// Sends every pending update, oldest first; what the server could not
    /// take yet stays queued (`remaining`, `waiting`: call again later).
    /// Blocking: network round trips.
    pub fn upload(&self, remote: Remote) -> Result<UploadReport> {
        let r = self.inner.upload(&remote.into())?;
        Ok(UploadReport {
            delivered: r.delivered as u32,
            duplicates: r.duplicates as u32,
            dropped: r.dropped as u32,
            remaining: r.remaining as u32,
            bytes_uploaded: r.bytes_uploaded,
            waiting: r.waiting as u32,
            last_error: r.last_error,
        })
    }
}

/// A sample catalog (`n_items` items, two content modalities) and its
/// version-1 model, for demos and tests.
#[uniffi::export]
pub fn sample_server_data(n_items: u32, seed: u64) -> Result<SampleServerData> {
    Ok(fedmr_sdk::demo::sample_server_data(n_items as usize, seed)?)
}
