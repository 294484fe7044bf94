//! fedmr-sdk: the on-device SDK an app embeds.
//!
//! One [`Client`] per user and database file: it records what the user did
//! ([`Interaction`]), installs the catalog and global model the server
//! publishes, trains locally, ranks items, and syncs with the server
//! ([`Remote`]). The math comes from `fedmr-core`; this crate adds the
//! I/O: the SQLite `store` and the HTTP sync.
//!
//! App code starts with `use fedmr_sdk::prelude::*;`.

mod client;
pub mod demo;
mod error;
mod interaction;
mod store;

#[cfg(feature = "encoder")]
pub use client::LocalItem;
pub use client::{
    CancelFlag, Client, ClientConfig, ExpertWeight, ModalityShare, PendingUpload, Preferences,
    PrivacySpent, ProgressListener, RecommendOptions, Recommendation, Remote, Stats, SyncReport,
    TrainOptions, TrainReport, UploadReport,
};
pub use error::{Error, Result};
pub use interaction::{Interaction, InteractionKind};
/// The store's schema version this build writes (`PRAGMA user_version`).
pub use store::SCHEMA_VERSION;

/// The defences a server configures for its rounds' uploads.
pub use fedmr_core::privacy::{LocalDp, Protection, UploadRows};
/// Training settings and progress, as the server's model message carries them.
pub use fedmr_core::train::{EpochProgress, TrainConfig};
/// How a model download is encoded (`Remote::model_encoding`).
pub use fedmr_core::wire::ModelEncoding;

/// What most app code needs, in one import.
pub mod prelude {
    pub use crate::{
        CancelFlag, Client, ClientConfig, Error, Interaction, InteractionKind, RecommendOptions,
        Recommendation, Remote, Result, TrainOptions, TrainReport,
    };
}
