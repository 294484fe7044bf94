//! The one public error of the bindings: fedmr-sdk's errors grouped by what
//! an app can do about them, with the core's message.

use fedmr_sdk::Error;

/// Every failure of the SDK, grouped by what an app can do about it; the
/// call that failed changed nothing. `reason` is the SDK's explanation.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum FedmrError {
    /// An argument, interaction, configuration or option the app passed is invalid.
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    /// A catalog/model/update message is malformed, corrupt or truncated.
    #[error("invalid message: {reason}")]
    InvalidMessage { reason: String },
    /// A catalog or model that does not fit what is installed (stale version, wrong shape).
    #[error("incompatible: {reason}")]
    Incompatible { reason: String },
    /// The call needs a catalog, a model or interactions the client does not have yet.
    #[error("not ready: {reason}")]
    NotReady { reason: String },
    /// A candidate key the catalog does not have.
    #[error("unknown item {key}")]
    UnknownItem { key: String },
    /// Training diverged; nothing was written.
    #[error("training diverged: {reason}")]
    Diverged { reason: String },
    /// The cancel token was raised; nothing was written.
    #[error("{reason}")]
    Cancelled { reason: String },
    /// The progress callback threw; the round ended and nothing was written.
    #[error("progress callback failed: {reason}")]
    CallbackFailed { reason: String },
    /// Another training of the same store committed first; nothing was
    /// written (train again to build on it).
    #[error("busy: {reason}")]
    Busy { reason: String },
    /// The server could not be reached.
    #[error("network: {reason}")]
    Network { reason: String },
    /// The server refused the token.
    #[error("unauthorized: {reason}")]
    Unauthorized { reason: String },
    /// The server refused a request for good.
    #[error("server refused ({status}): {reason}")]
    Refused { status: u16, reason: String },
    /// The database or file system failed, or the database is from a newer app version.
    #[error("storage: {reason}")]
    Storage { reason: String },
}

impl From<Error> for FedmrError {
    fn from(e: Error) -> Self {
        // `reason`, not `message`: Kotlin exceptions already have a `message`.
        let reason = e.to_string();
        match e {
            Error::InvalidConfig(_)
            | Error::InvalidInteraction { .. }
            | Error::InvalidArgument(_)
            | Error::Shape(_)
            | Error::InvalidUpdate(_)
            // Encoders (not in the phone builds) fail on the model files or bytes given.
            | Error::Encoder(_) => FedmrError::InvalidInput { reason },
            Error::InvalidMessage(_) => FedmrError::InvalidMessage { reason },
            Error::Incompatible(_) => FedmrError::Incompatible { reason },
            Error::NotReady(_) => FedmrError::NotReady { reason },
            Error::UnknownItem(key) => FedmrError::UnknownItem { key },
            Error::Diverged { .. } => FedmrError::Diverged { reason },
            Error::Cancelled => FedmrError::Cancelled { reason },
            Error::Busy(_) => FedmrError::Busy { reason },
            Error::ListenerFailed(why) => FedmrError::CallbackFailed { reason: why },
            Error::Network(_) => FedmrError::Network { reason },
            Error::Unauthorized(_) => FedmrError::Unauthorized { reason },
            Error::Refused { status, message } => FedmrError::Refused {
                status,
                reason: message,
            },
            Error::Sqlite(_)
            | Error::Store(_)
            | Error::SchemaTooNew { .. } => FedmrError::Storage { reason },
        }
    }
}
