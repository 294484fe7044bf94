//! The records an app passes to and gets from a `Client`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

use fedmr_core::train::{EpochProgress, TrainConfig};

/// How to open a client.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// The SQLite file; created on first open.
    pub db_path: PathBuf,
    /// Most interactions kept; the oldest go first.
    pub retention_cap: usize,
    /// Seed of the first private state and of negative sampling. `None`
    /// draws a fresh sampling seed per round (what an app wants); a fixed
    /// seed makes rounds reproducible (what a simulation wants).
    pub seed: Option<u64>,
    /// Whether the ranking is kept in the store between app starts:
    /// computed and stored at the end of `train` and `apply_model`, and
    /// stored by a `recommend` that had to compute it, so the first
    /// `recommend` after an app start reads it (true: what an app wants; its
    /// background job pays). False keeps it in memory only, computed by the
    /// first `recommend` or `scores` (a simulation that scores every phone
    /// after every round anyway, and should not write it to flash).
    pub store_ranking: bool,
}

impl ClientConfig {
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        ClientConfig {
            db_path: db_path.into(),
            retention_cap: 50_000,
            seed: None,
            store_ranking: true,
        }
    }
}

/// Raise it from any thread to stop a running `train`; the round is then
/// discarded and `train` returns `Error::Cancelled`.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Told about each finished epoch of a `train`, on the training thread.
/// An `Err` (for example an exception in an app's callback, through the
/// bindings) ends the round: `train` returns [`crate::Error::ListenerFailed`]
/// with the reason and writes nothing.
pub trait ProgressListener: Send + Sync {
    fn on_epoch(&self, progress: &EpochProgress) -> std::result::Result<(), String>;
}

impl<F: Fn(&EpochProgress) + Send + Sync> ProgressListener for F {
    fn on_epoch(&self, progress: &EpochProgress) -> std::result::Result<(), String> {
        self(progress);
        Ok(())
    }
}

/// Options of one `train` call; `Default` trains with the server's settings
/// and no limit.
#[derive(Clone, Default)]
pub struct TrainOptions {
    /// Stop after the epoch that reaches this budget, keeping the epochs done
    /// (at least one epoch always runs).
    pub time_budget: Option<Duration>,
    pub cancel: Option<CancelFlag>,
    pub progress: Option<Arc<dyn ProgressListener>>,
    /// Overrides the training configuration that came with the model
    /// (simulations and experiments; an app should leave it `None`).
    pub config: Option<TrainConfig>,
    /// The random stream of this round (`Rng::new(seed)`), for simulations
    /// that must reproduce another run exactly; `None` derives one from
    /// `ClientConfig::seed`, the model version and the round count.
    pub rng_seed: Option<u64>,
}

/// What one `train` did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainReport {
    pub epochs_run: usize,
    pub epochs_planned: usize,
    /// Mean loss of each epoch run, before its step.
    pub losses: Vec<f32>,
    /// Items with a positive net weight that the catalog knows.
    pub positives: usize,
    /// Interacted items the catalog does not know (kept, not trained on).
    pub unknown_items: usize,
    pub samples: u64,
    /// True when the time budget ended the round before its last epoch.
    pub stopped_early: bool,
    /// The queued update.
    pub round: u64,
    pub base_version: u64,
    pub idempotency_key: String,
    pub update_bytes: usize,
    pub duration_ms: u64,
}

/// Options of `recommend`.
#[derive(Clone, Debug, PartialEq)]
pub struct RecommendOptions {
    /// Leave out items the user already interacted with.
    pub exclude_seen: bool,
    /// Rank only these item keys (each must be in the catalog).
    pub candidates: Option<Vec<String>>,
}

impl Default for RecommendOptions {
    fn default() -> Self {
        RecommendOptions {
            exclude_seen: true,
            candidates: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recommendation {
    pub item_key: String,
    /// The model's logit: higher is better; comparable within one call.
    pub score: f32,
}

/// One fusion expert's weight in the user's private router.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExpertWeight {
    /// "sum", "mlp", "gate", or "id" for an ID-only model.
    pub expert: String,
    pub weight: f32,
}

/// How much one input (the item ID or a content modality) drives the user's
/// scores through the Sum expert, averaged over the user's items; shares
/// sum to 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModalityShare {
    pub modality: String,
    pub share: f32,
}

/// The user's fusion preferences, for an app to show.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Preferences {
    pub experts: Vec<ExpertWeight>,
    /// Present when computable: a Sum expert exists and the user has
    /// interacted with catalog items.
    pub modalities: Option<Vec<ModalityShare>>,
    /// False until the first `train`: the weights are then the initial ones.
    pub trained: bool,
}

/// An update waiting in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    pub idempotency_key: String,
    pub round: u64,
    pub base_version: u64,
    /// The framed `UpdateMessage`, ready to send.
    pub bytes: Vec<u8>,
    pub created_ms: i64,
}

/// What the user's uploads have spent of their privacy under local DP
/// (README, "What the server learns"): every round trained so far, composed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrivacySpent {
    /// Rounds trained (each left one upload).
    pub rounds: u64,
    /// Of them, rounds whose upload carried no local-DP noise: one is enough
    /// to make `epsilon` infinite.
    pub rounds_without_dp: u64,
    pub epsilon: f64,
    pub delta: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub interactions: usize,
    /// Distinct interacted items the catalog knows, and does not know.
    pub known_items: usize,
    pub unknown_items: usize,
    pub catalog_version: Option<u64>,
    /// The installed catalog's sha256 (hex): every model is pinned to it, so
    /// an app can show it and users can compare it with what the server
    /// publishes for everyone.
    pub catalog_digest: Option<String>,
    pub catalog_items: usize,
    pub model_version: Option<u64>,
    pub rounds_trained: u64,
    pub pending_uploads: usize,
    /// The database file plus its WAL.
    pub database_bytes: u64,
}
