//! The installed global model as a file beside the database, written once.
//!
//! A model is the largest thing a phone writes every round (26 MB at
//! 100,000 items). As a SQLite blob it was written twice, to the WAL and
//! again when the WAL was checkpointed into the database; as a file it is
//! written once: to a temporary name, synced, renamed into place (atomic),
//! and only then referenced from `model_meta` in the same IMMEDIATE
//! transaction. A crash leaves either the old reference with its file, or
//! the new one with its file; a file nobody references (a crash between the
//! rename and the commit) is removed the next time the store opens.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A model's file, named `<database file name>.model-<tag>`: the database
/// keeps the tag (`<version>-<digest prefix>`, distinct per model, so a new
/// one never overwrites a file a reader may be reading), and the file goes
/// wherever the database goes under whatever name.
pub(super) fn tag(version: u64, digest: &[u8; 32]) -> String {
    let prefix: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{version}-{prefix}")
}

/// The path of the model file with `tag`.
pub(super) fn path(db_path: &Path, tag: &str) -> PathBuf {
    db_path.with_file_name(format!("{}{tag}", stem(db_path)))
}

/// What every model file name of this database starts with.
fn stem(db_path: &Path) -> String {
    let file = db_path
        .file_name()
        .map_or_else(|| "fedmr".into(), |f| f.to_string_lossy().into_owned());
    format!("{file}.model-")
}

/// Writes `bytes` to `path`: a temporary file, synced, renamed over `path`,
/// then the directory synced so the rename itself survives a power loss.
pub(super) fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io = |e: std::io::Error| Error::Store(format!("{}: {e}", tmp.display()));
    let mut file = fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io)?;
    sync_dir(path);
    Ok(())
}

/// Reads the model file with `tag`; a missing file is a model replaced
/// after the caller read its reference (retry).
pub(super) fn read(db_path: &Path, tag: &str) -> Result<Vec<u8>> {
    let path = path(db_path, tag);
    fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Busy(format!(
            "the model file {} is gone (replaced meanwhile?); retry",
            path.display()
        )),
        _ => Error::Store(format!("{}: {e}", path.display())),
    })
}

/// Removes the model file with `tag`, if it is there.
pub(super) fn remove(db_path: &Path, tag: &str) {
    let _ = fs::remove_file(path(db_path, tag));
}

/// Whether the model file with `tag` is there.
pub(super) fn exists(db_path: &Path, tag: &str) -> bool {
    path(db_path, tag).is_file()
}

/// Removes every model file of this database but the one with tag `keep`
/// (temporary files included). Callers hold the write lock, so no writer
/// is between writing its file and committing its reference.
pub(super) fn remove_others(db_path: &Path, keep: Option<&str>) {
    let stem = stem(db_path);
    let keep = keep.map(|tag| format!("{stem}{tag}"));
    let dir = match db_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&stem) && Some(&name) != keep.as_ref() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(unix)]
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) {}
