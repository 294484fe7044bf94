//! fedmr-core: the FedMR on-device engine.
//!
//! `model` holds the math (layers with hand-written backprop, MFFM, router,
//! heads); `train` runs one local round and yields an `update`; `aggregate`
//! folds updates into the next global model; `rank` scores items for a user;
//! `data` loads datasets and `eval` applies the paper's protocol.
//!
//! An app uses [`Client`]: the on-device SDK over the SQLite `store`, with
//! catalogs, models and updates as `wire` messages.

pub mod aggregate;
pub mod baselines;
pub mod client;
pub mod data;
pub mod demo;
#[cfg(feature = "encoder")]
pub mod encoder;
pub mod error;
pub mod eval;
pub mod model;
pub mod rank;
pub mod rng;
pub mod store;
pub mod train;
pub mod update;
pub mod wire;

pub use client::{
    Client, ClientConfig, Interaction, Preferences, RecommendOptions, Recommendation, Stats,
    TrainOptions, TrainReport,
};
pub use error::{Error, Result};
pub use store::InteractionKind;
