//! What the workspace's tests and benches share: one temporary directory,
//! small synthetic datasets and models with their wire messages, and the
//! benches' timer. Depends on the core only, so every crate can use it.

mod fixtures;
mod paths;
mod temp_dir;
mod timing;

pub use fixtures::{
    Fixture, catalog, catalog_message, config, global, item_key, max_difference, model_message,
    small_dataset,
};
pub use paths::{models_dir, repo_root};
pub use temp_dir::TempDir;
pub use timing::median_secs;
