//! Why the server refuses something; each maps to one HTTP status and one
//! metrics reason.

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("stale: {0}")]
    Stale(String),
    #[error("already submitted: {0}")]
    AlreadySubmitted(String),
    #[error("invalid update: {0}")]
    Invalid(String),
    #[error("update norm {norm} above the bound {bound}")]
    NormTooLarge { norm: f32, bound: f32 },
    #[error("body of {0} bytes or more exceeds the limit")]
    TooLarge(usize),
    #[error("the request body took longer than {0:?}")]
    Timeout(std::time::Duration),
    #[error("missing or unknown token")]
    Unauthorized,
    #[error("not found: {0}")]
    NotFound(String),
    /// A secure round went on without this client: it starts over.
    #[error("restart: {0}")]
    Restart(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The store exists but cannot be trusted; the server refuses to start.
    #[error("damaged store: {0}")]
    Damaged(String),
}

impl ServerError {
    /// The label of `updates_rejected_total{reason=...}`.
    pub fn reason(&self) -> &'static str {
        match self {
            ServerError::Malformed(_) => "malformed",
            ServerError::Stale(_) => "stale",
            ServerError::AlreadySubmitted(_) => "already_submitted",
            ServerError::Invalid(_) => "invalid",
            ServerError::NormTooLarge { .. } => "norm",
            ServerError::TooLarge(_) => "too_large",
            ServerError::Timeout(_) => "timeout",
            ServerError::Unauthorized => "unauthorized",
            ServerError::NotFound(_) => "not_found",
            ServerError::Restart(_) => "secagg_restart",
            ServerError::BadRequest(_) => "bad_request",
            ServerError::Internal(_) => "internal",
            ServerError::Damaged(_) => "damaged",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ServerError::Malformed(_) | ServerError::BadRequest(_) => 400,
            ServerError::Unauthorized => 401,
            ServerError::NotFound(_) => 404,
            ServerError::Stale(_) | ServerError::AlreadySubmitted(_) | ServerError::Restart(_) => {
                409
            }
            ServerError::Timeout(_) => 408,
            ServerError::TooLarge(_) => 413,
            ServerError::Invalid(_) | ServerError::NormTooLarge { .. } => 422,
            ServerError::Internal(_) | ServerError::Damaged(_) => 500,
        }
    }
}

impl From<rusqlite::Error> for ServerError {
    fn from(e: rusqlite::Error) -> Self {
        ServerError::Internal(format!("sqlite: {e}"))
    }
}

impl From<fedmr_core::Error> for ServerError {
    fn from(e: fedmr_core::Error) -> Self {
        ServerError::Internal(e.to_string())
    }
}
