//! fedmr-core: the FedMR engine without I/O — what a phone, the server and
//! the simulation share.
//!
//! `model` holds the math (layers with hand-written backprop, MFFM, router,
//! heads); `train` runs one local round and yields an `update`; `aggregate`
//! folds updates into the next global model; `privacy` shapes an upload
//! to the round's defences and accounts local DP; `secagg` is secure
//! aggregation (the server learns only the sum); `rank` scores items for a user;
//! `wire` frames and checks every message that crosses a process boundary,
//! and `codec` is the one place bincode is named. `data` holds datasets in
//! memory (types, splits, the seeded synthetic generator); reading them from
//! files is `fedmr-data`'s job.
//!
//! Nothing here opens a file, a socket or a database: the device SDK
//! (`fedmr-sdk`), the server (`fedmr-server`) and the simulation
//! (`fedmr-sim`) bring the I/O.

pub mod aggregate;
pub mod codec;
pub mod data;
pub mod demo;
mod error;
pub mod model;
pub mod privacy;
pub mod rank;
pub mod rng;
pub mod secagg;
pub mod train;
pub mod update;
pub mod wire;

pub use error::{Error, Result};
