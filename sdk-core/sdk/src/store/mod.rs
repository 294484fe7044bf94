//! The on-device SQLite store: everything the SDK keeps between app launches.
//!
//! One file per idea: `db` owns the connections and transactions, `schema`
//! the versioned migrations, and one file per table family: `interactions`
//! (what the user did), `catalog` (items and their content features),
//! `model_file` (the global model, a file written once),
//! `outbox` (updates waiting for upload), `ranking` (scores kept between
//! app starts), `secagg` (secure aggregation's
//! state per update in flight) and `state` (global model, the
//! user's private state, and forget-me).
//!
//! All writes go through one writer connection in IMMEDIATE transactions;
//! reads use a separate read-only connection, and WAL mode lets them proceed
//! while a write is in flight.

mod catalog;
mod db;
mod interactions;
mod model_file;
mod outbox;
mod ranking;
mod schema;
mod secagg;
mod state;

pub use catalog::CatalogMeta;
pub use db::Store;
pub use outbox::{NewUpdate, PendingUpdate};
pub use ranking::RankingTags;
pub use schema::SCHEMA_VERSION;
