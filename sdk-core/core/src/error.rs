//! The core's one error type. The device SDK and the server add their own
//! I/O failures on top (`fedmr_sdk::Error`, the server's `ApiError`).

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
    /// Bytes that are not a valid message: bad frame, digest, encoding or content.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The caller asked to stop; nothing was produced.
    #[error("cancelled")]
    Cancelled,
    /// An encoder (`fedmr-encoder`) could not load its model or tokenizer,
    /// or could not encode an input.
    #[error("encoder: {0}")]
    Encoder(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
