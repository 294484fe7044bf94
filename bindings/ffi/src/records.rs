//! Records and enums that cross the FFI, each converted to or from its
//! fedmr-sdk counterpart.

use fedmr_sdk as core;
pub use fedmr_sdk::demo::SampleServerData;
pub use fedmr_sdk::{
    ExpertWeight, ModalityShare, PendingUpload, Preferences, PrivacySpent, Recommendation,
    SyncReport,
};

/// What the user did with an item; each kind carries the SDK's built-in
/// weight, `Weighted` the one given in `Interaction.weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum InteractionKind {
    View,
    Click,
    Like,
    Purchase,
    /// A negative signal.
    Dislike,
    /// An app-defined signal whose weight is `Interaction.weight`.
    Weighted,
}

/// One thing the user did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Interaction {
    /// The catalog's key of the item.
    pub item_key: String,
    pub kind: InteractionKind,
    /// When, in milliseconds since 1970 (UTC).
    pub timestamp_ms: i64,
    /// The weight of a `Weighted` interaction (finite); must be left out
    /// for the other kinds.
    #[uniffi(default = None)]
    pub weight: Option<f32>,
}

impl Interaction {
    /// The SDK's interaction. A weight that does not fit the kind is the
    /// SDK's `InvalidInteraction` at `index` (its place in a batch), like
    /// every other bad interaction.
    pub(crate) fn into_core(self, index: usize) -> Result<core::Interaction, core::Error> {
        use core::InteractionKind as K;
        let refuse = |reason: &str| core::Error::InvalidInteraction {
            index,
            reason: reason.to_string(),
        };
        let kind = match (self.kind, self.weight) {
            (InteractionKind::Weighted, Some(weight)) => K::Weighted(weight),
            (InteractionKind::Weighted, None) => {
                return Err(refuse("a Weighted interaction needs a weight"));
            }
            (_, Some(_)) => {
                return Err(refuse(
                    "weight is only for Weighted interactions (the other kinds have their own)",
                ));
            }
            (InteractionKind::View, None) => K::View,
            (InteractionKind::Click, None) => K::Click,
            (InteractionKind::Like, None) => K::Like,
            (InteractionKind::Purchase, None) => K::Purchase,
            (InteractionKind::Dislike, None) => K::Dislike,
        };
        Ok(core::Interaction {
            item_key: self.item_key,
            kind,
            timestamp_ms: self.timestamp_ms,
        })
    }
}

/// How to open a client.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ClientConfig {
    /// The SQLite file (created on first open), in the app's private storage.
    pub db_path: String,
    /// Most interactions kept; the oldest go first.
    #[uniffi(default = 50000)]
    pub retention_cap: u64,
    /// Fixes the private state's initialisation and negative sampling
    /// (tests, simulations); leave it out in an app.
    #[uniffi(default = None)]
    pub seed: Option<u64>,
}

/// Options of one `train` call; the defaults train with the server's
/// settings and no time limit.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrainOptions {
    /// Stop after the epoch that reaches this many milliseconds, keeping
    /// the epochs done (at least one always runs).
    #[uniffi(default = None)]
    pub time_budget_ms: Option<u64>,
}

/// What one `train` did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrainReport {
    pub epochs_run: u32,
    pub epochs_planned: u32,
    /// Mean loss of each epoch run.
    pub losses: Vec<f32>,
    /// Interactions with catalog items that were trained on.
    pub positives: u32,
    /// Interactions with items the catalog does not have (kept, not used).
    pub unknown_items: u32,
    /// Training samples (positives and sampled negatives) per epoch.
    pub samples: u64,
    /// The time budget ended the round before its planned epochs.
    pub stopped_early: bool,
    /// The server round the update is for.
    pub round: u64,
    /// The model version the round trained on.
    pub base_version: u64,
    /// The queued update's key (what `pending_uploads` lists).
    pub idempotency_key: String,
    pub update_bytes: u64,
    pub duration_ms: u64,
}

impl From<core::TrainReport> for TrainReport {
    fn from(r: core::TrainReport) -> Self {
        TrainReport {
            epochs_run: r.epochs_run as u32,
            epochs_planned: r.epochs_planned as u32,
            losses: r.losses,
            positives: r.positives as u32,
            unknown_items: r.unknown_items as u32,
            samples: r.samples,
            stopped_early: r.stopped_early,
            round: r.round,
            base_version: r.base_version,
            idempotency_key: r.idempotency_key,
            update_bytes: r.update_bytes as u64,
            duration_ms: r.duration_ms,
        }
    }
}

// Records whose fields uniffi supports as they are: the SDK's own types,
// declared here as remote types (uniffi checks each mirror against the real
// definition at compile time; no conversion code).

/// One recommended item and its score (higher is better).
#[uniffi::remote(Record)]
pub struct Recommendation {
    pub item_key: String,
    pub score: f32,
}

/// What the user's uploads have spent of their privacy under local DP
/// (`rounds` trained, `rounds_without_dp` among them); `epsilon` is
/// infinite once any round ran without it.
#[uniffi::remote(Record)]
pub struct PrivacySpent {
    pub rounds: u64,
    pub rounds_without_dp: u64,
    pub epsilon: f64,
    pub delta: f64,
}

/// One fusion expert's weight in the user's private router.
#[uniffi::remote(Record)]
pub struct ExpertWeight {
    pub expert: String,
    pub weight: f32,
}

/// How much one input drives the user's scores through the Sum expert.
#[uniffi::remote(Record)]
pub struct ModalityShare {
    pub modality: String,
    pub share: f32,
}

/// The user's fusion preferences, for an app to show.
#[uniffi::remote(Record)]
pub struct Preferences {
    pub experts: Vec<ExpertWeight>,
    pub modalities: Option<Vec<ModalityShare>>,
    pub trained: bool,
}

/// An update waiting in the outbox: `bytes` is what `upload` sends.
#[uniffi::remote(Record)]
pub struct PendingUpload {
    pub idempotency_key: String,
    pub round: u64,
    pub base_version: u64,
    pub bytes: Vec<u8>,
    pub created_ms: i64,
}

/// Counts and versions of what a client holds.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Stats {
    /// Interactions stored.
    pub interactions: u64,
    /// Distinct items of the catalog among them.
    pub known_items: u64,
    /// Distinct items the catalog does not have.
    pub unknown_items: u64,
    pub catalog_version: Option<u64>,
    /// The installed catalog's sha256 (hex), which the model is pinned to.
    pub catalog_digest: Option<String>,
    pub catalog_items: u64,
    pub model_version: Option<u64>,
    pub rounds_trained: u64,
    pub pending_uploads: u64,
    pub database_bytes: u64,
}

impl From<core::Stats> for Stats {
    fn from(s: core::Stats) -> Self {
        Stats {
            interactions: s.interactions as u64,
            known_items: s.known_items as u64,
            unknown_items: s.unknown_items as u64,
            catalog_version: s.catalog_version,
            catalog_digest: s.catalog_digest,
            catalog_items: s.catalog_items as u64,
            model_version: s.model_version,
            rounds_trained: s.rounds_trained,
            pending_uploads: s.pending_uploads as u64,
            database_bytes: s.database_bytes,
        }
    }
}

/// Where and as whom to sync.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Remote {
    /// The server, `https://` (plain `http://` only for local addresses).
    pub base_url: String,
    /// This client's token from the server's operator.
    pub token: String,
    /// Per request.
    #[uniffi(default = 30000)]
    pub timeout_ms: u64,
    /// Attempts per request when the server cannot be reached.
    #[uniffi(default = 5)]
    pub max_attempts: u32,
    /// How the model is downloaded; none: the SDK's default (int8).
    #[uniffi(default = None)]
    pub model_encoding: Option<ModelEncoding>,
}

impl From<Remote> for core::Remote {
    fn from(r: Remote) -> Self {
        let defaults = core::Remote::new(r.base_url, r.token);
        core::Remote {
            timeout: std::time::Duration::from_millis(r.timeout_ms),
            max_attempts: r.max_attempts,
            model_encoding: r.model_encoding.map_or(defaults.model_encoding, Into::into),
            ..defaults
        }
    }
}

/// How a model download is encoded: f32 as the server holds it, or f16,
/// int8, int6, int4 in 0.50, 0.26, 0.20, 0.13 of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ModelEncoding {
    F32,
    F16,
    Int8,
    Int6,
    Int4,
}

impl From<ModelEncoding> for core::ModelEncoding {
    fn from(e: ModelEncoding) -> Self {
        match e {
            ModelEncoding::F32 => core::ModelEncoding::F32,
            ModelEncoding::F16 => core::ModelEncoding::F16,
            ModelEncoding::Int8 => core::ModelEncoding::Int8,
            ModelEncoding::Int6 => core::ModelEncoding::Int6,
            ModelEncoding::Int4 => core::ModelEncoding::Int4,
        }
    }
}

/// What one `sync` downloaded.
#[uniffi::remote(Record)]
pub struct SyncReport {
    pub catalog_updated: bool,
    pub model_updated: bool,
    pub bytes_downloaded: u64,
}

/// What one `upload` did with the outbox.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct UploadReport {
    /// Accepted by the server.
    pub delivered: u32,
    /// The server already had them (a retry after a lost acknowledgement).
    pub duplicates: u32,
    /// Refused for good (stale round, malformed, too large): removed.
    pub dropped: u32,
    /// Still queued because the server could not be reached.
    pub remaining: u32,
    pub bytes_uploaded: u64,
    /// Updates of a secure-aggregation round waiting for other clients:
    /// call `upload` again later (a background job's next run).
    pub waiting: u32,
    /// Why `remaining` is not zero, if it is not.
    pub last_error: Option<String>,
}

/// A sample catalog and model, as a server would publish them.
#[uniffi::remote(Record)]
pub struct SampleServerData {
    pub catalog: Vec<u8>,
    pub model: Vec<u8>,
    pub item_keys: Vec<String>,
}
