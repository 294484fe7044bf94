//! The SDK's one error type: what the core reports, one to one, and what the
//! device's I/O adds (the store, the network, the app's input).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("invalid dataset: {0}")]
    InvalidDataset(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("invalid update: {0}")]
    InvalidUpdate(String),
    #[error("training diverged (non-finite parameters) at learning rate {lr}")]
    Diverged { lr: f32 },
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Store(String),
    /// The file was written by a newer build; opening it must not touch it.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("invalid interaction at index {index}: {reason}")]
    InvalidInteraction { index: usize, reason: String },
    /// Bytes that are not a valid message: bad frame, digest, encoding or content.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// A model or catalog that does not fit what is installed.
    #[error("incompatible: {0}")]
    Incompatible(String),
    /// The call needs something the client does not have yet.
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("unknown item {0:?}")]
    UnknownItem(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The server could not be reached (after retries), or answered 5xx.
    #[error("network: {0}")]
    Network(String),
    /// The server refused the client's token.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The server refused a request for a reason retrying cannot fix.
    #[error("server refused ({status}): {message}")]
    Refused { status: u16, message: String },
    /// The caller's cancel flag was raised; nothing was written.
    #[error("cancelled")]
    Cancelled,
    /// The on-device encoder (feature `encoder`) could not load its model or
    /// tokenizer, or could not encode an input.
    #[error("encoder: {0}")]
    Encoder(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every core error has a variant of the same name and meaning here.
impl From<fedmr_core::Error> for Error {
    fn from(e: fedmr_core::Error) -> Self {
        use fedmr_core::Error as Core;
        match e {
            Core::Io { path, source } => Error::Io { path, source },
            Core::Format { path, message } => Error::Format { path, message },
            Core::InvalidDataset(m) => Error::InvalidDataset(m),
            Core::InvalidConfig(m) => Error::InvalidConfig(m),
            Core::InvalidUpdate(m) => Error::InvalidUpdate(m),
            Core::Diverged { lr } => Error::Diverged { lr },
            Core::Shape(m) => Error::Shape(m),
            Core::InvalidMessage(m) => Error::InvalidMessage(m),
            Core::InvalidArgument(m) => Error::InvalidArgument(m),
            Core::Cancelled => Error::Cancelled,
            Core::Encoder(m) => Error::Encoder(m),
        }
    }
}

impl From<fedmr_sqlite::MigrateError> for Error {
    fn from(e: fedmr_sqlite::MigrateError) -> Self {
        use fedmr_sqlite::MigrateError as M;
        match e {
            M::TooNew { found, supported } => Error::SchemaTooNew { found, supported },
            M::Invalid(raw) => Error::Store(format!("invalid schema version {raw}")),
            M::Sqlite(e) => Error::Sqlite(e),
        }
    }
}
