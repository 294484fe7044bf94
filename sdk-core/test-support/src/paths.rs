//! Where the fetch scripts put what tests need from the registries.

use std::path::{Path, PathBuf};

/// `scripts/fetch-models`' folder: `$FEDMR_MODELS`, or `target/models` at
/// the repository root.
pub fn models_dir() -> PathBuf {
    std::env::var_os("FEDMR_MODELS")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/models"))
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
