//! The FFI surface of fedmr-sdk's `Client` for Kotlin, Swift and Python
//! (uniffi proc-macros). It mirrors the Rust API one to one and translates
//! types; every decision stays in the core. Panics cannot cross: uniffi
//! catches them at the boundary and raises an internal error.

uniffi::setup_scaffolding!();

mod client;
mod error;
mod records;

pub use client::{CallbackError, CancelToken, FedmrClient, TrainProgress, sample_server_data};
pub use error::FedmrError;
pub use records::*;
