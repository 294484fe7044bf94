//! `FedmrClient`: fedmr-sdk's `Client`, method for method.

use std::sync::Arc;
use std::time::Duration;

use fedmr_sdk::EpochProgress;
use fedmr_sdk::{self as core, CancelFlag};

use crate::error::FedmrError;
use crate::records::*;

type Result<T> = std::result::Result<T, FedmrError>;

/// Raise it from any thread to cancel a running `train`.
#[derive(uniffi::Object, Default)]
pub struct CancelToken(CancelFlag);

#[uniffi::export]
impl CancelToken {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn cancel(&self) {
        self.0.cancel()
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// Implemented by the app: told after each training epoch.
#[uniffi::export(with_foreign)]
pub trait TrainProgress: Send + Sync {
    /// An exception thrown here ends the round: `train` fails with
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

#[derive(uniffi::Object)]
pub struct FedmrClient {
    inner: core::Client,
}

#[uniffi::export]
impl FedmrClient {
    #[uniffi::constructor]
    pub fn open(config: ClientConfig) -> Result<Arc<Self>> {
        let inner = core::Client::open(core::ClientConfig {
            db_path: config.db_path.into(),
            retention_cap: usize::try_from(config.retention_cap).unwrap_or(usize::MAX),
            seed: config.seed,
        })?;
        Ok(Arc::new(FedmrClient { inner }))
    }

    pub fn record(&self, interaction: Interaction) -> Result<()> {
        Ok(self.inner.record(interaction.into())?)
    }

    pub fn record_batch(&self, interactions: Vec<Interaction>) -> Result<u64> {
        let batch: Vec<core::Interaction> = interactions.into_iter().map(Into::into).collect();
        Ok(self.inner.record_batch(&batch)? as u64)
    }

    pub fn apply_catalog(&self, bytes: Vec<u8>) -> Result<bool> {
        Ok(self.inner.apply_catalog(&bytes)?)
    }

    pub fn apply_model(&self, bytes: Vec<u8>) -> Result<bool> {
        Ok(self.inner.apply_model(&bytes)?)
    }

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

    pub fn scores(&self) -> Result<Vec<f32>> {
        Ok(self.inner.scores()?)
    }

    pub fn preferences(&self) -> Result<Preferences> {
        Ok(self.inner.preferences()?)
    }

    pub fn pending_uploads(&self) -> Result<Vec<PendingUpload>> {
        Ok(self.inner.pending_uploads()?)
    }

    pub fn acknowledge_upload(&self, idempotency_key: String) -> Result<bool> {
        Ok(self.inner.acknowledge_upload(&idempotency_key)?)
    }

    pub fn stats(&self) -> Result<Stats> {
        Ok(self.inner.stats()?.into())
    }

    /// The (epsilon, `delta`) local DP has spent over every round trained here.
    pub fn privacy_spent(&self, delta: f64) -> Result<PrivacySpent> {
        Ok(self.inner.privacy_spent(delta)?)
    }

    /// SQLite's `PRAGMA integrity_check` of the client's database: true when
    /// the file is sound (an app may run it after a crash or an update).
    pub fn integrity_check(&self) -> Result<bool> {
        Ok(self.inner.integrity_check()?)
    }

    pub fn export(&self) -> Result<String> {
        Ok(self.inner.export()?)
    }

    pub fn forget_me(&self) -> Result<()> {
        Ok(self.inner.forget_me()?)
    }

    pub fn sync(&self, remote: Remote) -> Result<SyncReport> {
        Ok(self.inner.sync(&remote.into())?)
    }

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
