//! What a server run is configured with.

use std::path::PathBuf;
use std::time::Duration;

use fedmr_core::aggregate::{Combine, ServerStep};
use serde::{Deserialize, Serialize};

use crate::db::Durability;

/// What to do with an update whose L2 norm is above the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormPolicy {
    /// Scale it down to the bound and accept it.
    Clip,
    /// Refuse it (422).
    Reject,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Holds `server.sqlite`.
    pub data_dir: PathBuf,
    /// A round closes as soon as it has this many updates.
    pub min_updates: u32,
    /// At its deadline a round closes if it has at least this many updates;
    /// otherwise the deadline is extended by `round_duration`.
    pub min_floor: u32,
    pub round_duration: Duration,
    /// Largest accepted request body (413 above).
    pub max_body_bytes: usize,
    /// Bound on an update's L2 norm (dense change and item rows together).
    pub norm_bound: Option<f32>,
    pub norm_policy: NormPolicy,
    pub server_step: ServerStep,
    /// The most samples an update's declared count weighs in FedAvg's
    /// average (under the hidden-count defence every update weighs one): a
    /// client declaring 2^64 - 1 no longer outweighs everyone else.
    pub max_samples: u64,
    /// Bearer token of admin calls (issuing client tokens).
    pub admin_token: String,
    /// Open connections at most; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// A connection on which nothing arrives for this long is closed (a
    /// client stalled mid-request, or an idle keep-alive).
    pub idle_timeout: Duration,
    /// The longest a request body may take to arrive (408 after).
    pub body_timeout: Duration,
    /// How commits reach the disk (`synchronous` NORMAL or FULL).
    pub durability: Durability,
    /// How a round's updates are combined: the weighted mean, or a robust
    /// rule against poisoning (needs each update: not with secure aggregation).
    pub combine: Combine,
    /// Clip each update's change of any one item row to this multiple of
    /// the round's median row change (poisoning: README, "Hostile clients").
    pub row_clip: Option<f32>,
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>, admin_token: impl Into<String>) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            min_updates: 100,
            min_floor: 1,
            round_duration: Duration::from_secs(3600),
            max_body_bytes: 8 << 20,
            norm_bound: Some(fedmr_core::update::DEFAULT_NORM_BOUND),
            norm_policy: NormPolicy::Clip,
            server_step: ServerStep::Plain { lr: 1.0 },
            max_samples: 10_000,
            admin_token: admin_token.into(),
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(120),
            durability: Durability::Normal,
            combine: Combine::Mean,
            row_clip: None,
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("server.sqlite")
    }
}
