//! Records and enums that cross the FFI, each converted to or from its
//! fedmr-sdk counterpart.

use fedmr_sdk as core;
pub use fedmr_sdk::demo::SampleServerData;
pub use fedmr_sdk::{
    ExpertWeight, ModalityShare, PendingUpload, Preferences, PrivacySpent, Recommendation,
    SyncReport,
};

#[derive(Debug, Clone, Copy, PartialEq, uniffi::Enum)]
pub enum InteractionKind {
    View,
    Click,
    Like,
    Purchase,
    Dislike,
    /// An app-defined signal with an explicit weight.
    Weighted {
        weight: f32,
    },
}

impl From<InteractionKind> for fedmr_sdk::InteractionKind {
    fn from(k: InteractionKind) -> Self {
        use fedmr_sdk::InteractionKind as K;
        match k {
            InteractionKind::View => K::View,
            InteractionKind::Click => K::Click,
            InteractionKind::Like => K::Like,
            InteractionKind::Purchase => K::Purchase,
            InteractionKind::Dislike => K::Dislike,
            InteractionKind::Weighted { weight } => K::Weighted(weight),
        }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Interaction {
    pub item_key: String,
    pub kind: InteractionKind,
    pub timestamp_ms: i64,
}

impl From<Interaction> for core::Interaction {
    fn from(i: Interaction) -> Self {
        core::Interaction {
            item_key: i.item_key,
            kind: i.kind.into(),
            timestamp_ms: i.timestamp_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ClientConfig {
    pub db_path: String,
    #[uniffi(default = 50000)]
    pub retention_cap: u64,
    #[uniffi(default = None)]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrainOptions {
    /// Stop after the epoch that reaches this many milliseconds.
    #[uniffi(default = None)]
    pub time_budget_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrainReport {
    pub epochs_run: u32,
    pub epochs_planned: u32,
    pub losses: Vec<f32>,
    pub positives: u32,
    pub unknown_items: u32,
    pub samples: u64,
    pub stopped_early: bool,
    pub round: u64,
    pub base_version: u64,
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

/// What the user's uploads have spent of their privacy under local DP;
/// `epsilon` is infinite once any round ran without it.
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

/// An update waiting in the outbox.
#[uniffi::remote(Record)]
pub struct PendingUpload {
    pub idempotency_key: String,
    pub round: u64,
    pub base_version: u64,
    pub bytes: Vec<u8>,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Stats {
    pub interactions: u64,
    pub known_items: u64,
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
    pub base_url: String,
    pub token: String,
    #[uniffi(default = 30000)]
    pub timeout_ms: u64,
    #[uniffi(default = 5)]
    pub max_attempts: u32,
}

impl From<Remote> for core::Remote {
    fn from(r: Remote) -> Self {
        core::Remote {
            timeout: std::time::Duration::from_millis(r.timeout_ms),
            max_attempts: r.max_attempts,
            ..core::Remote::new(r.base_url, r.token)
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

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct UploadReport {
    pub delivered: u32,
    pub duplicates: u32,
    pub dropped: u32,
    pub remaining: u32,
    pub bytes_uploaded: u64,
    /// Updates of a secure-aggregation round waiting for other clients:
    /// call `upload` again later (a background job's next run).
    pub waiting: u32,
    pub last_error: Option<String>,
}

/// A sample catalog and model, as a server would publish them.
#[uniffi::remote(Record)]
pub struct SampleServerData {
    pub catalog: Vec<u8>,
    pub model: Vec<u8>,
    pub item_keys: Vec<String>,
}
