//! The SDK's one error type: what the core reports (one to one, but for the
//! dataset-file errors the SDK never meets) and what the device adds: the
//! store, the network, the app's input.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // What the app passed in.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("invalid interaction at index {index}: {reason}")]
    InvalidInteraction { index: usize, reason: String },
    #[error("unknown item {0:?}")]
    UnknownItem(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The caller's cancel flag was raised; nothing was written.
    #[error("cancelled: the cancel flag was raised; nothing was written")]
    Cancelled,
    /// The progress listener failed (an app callback raised); the round
    /// ended there and nothing was written.
    #[error("progress listener failed: {0}")]
    ListenerFailed(String),

    // What the client's state allows.
    /// The call needs something the client does not have yet.
    #[error("not ready: {0}")]
    NotReady(String),
    /// A model or catalog that does not fit what is installed.
    #[error("incompatible: {0}")]
    Incompatible(String),
    #[error("training diverged (non-finite parameters) at learning rate {lr}")]
    Diverged { lr: f32 },
    /// Another training of the same store (thread, client or process)
    /// committed first; nothing was written. Train again to build on it.
    #[error("busy: {0}")]
    Busy(String),

    // What came from the server.
    /// Bytes that are not a valid message: bad frame, digest, encoding or content.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    #[error("invalid update: {0}")]
    InvalidUpdate(String),
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The server could not be reached (after retries), or answered 5xx.
    #[error("network: {0}")]
    Network(String),
    /// The server refused the client's token.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The server refused a request for a reason retrying cannot fix.
    #[error("server refused ({status}): {message}")]
    Refused { status: u16, message: String },

    // The device's own storage.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Store(String),
    /// The file was written by a newer build; opening it must not touch it.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: u32, supported: u32 },
    /// The on-device encoder (feature `encoder`) could not load its model or
    /// tokenizer, or could not encode an input.
    #[error("encoder: {0}")]
    Encoder(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Core errors keep their name and meaning.
impl From<fedmr_core::Error> for Error {
    fn from(e: fedmr_core::Error) -> Self {
        use fedmr_core::Error as Core;
        match e {
            // The SDK reads no dataset files; should one of these ever
            // arrive, it is the caller's input that was wrong.
            e @ (Core::Io { .. } | Core::Format { .. } | Core::InvalidDataset(_)) => {
                Error::InvalidArgument(e.to_string())
            }
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
