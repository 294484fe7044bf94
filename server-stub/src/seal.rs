//! The published-version seal: a small file beside the store holding the
//! newest model version this server has published. SQLite cannot know that
//! its WAL was deleted or cut, or that an older copy of the file was put
//! back; the seal can: a store whose newest model is older than the seal
//! lost committed rounds, and the server refuses to start on it rather
//! than serve an old model and forget every update since.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::ServerError;

/// `<store>.published` beside the store.
pub fn path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".published");
    PathBuf::from(name)
}

/// The sealed version, if a seal exists.
pub fn read(db: &Path) -> Result<Option<u64>, ServerError> {
    let p = path(db);
    match std::fs::read_to_string(&p) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            ServerError::Damaged(format!("{}: not a model version: {text:?}", p.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ServerError::Internal(format!("{}: {e}", p.display()))),
    }
}

/// Refuses a store whose newest model is older than the seal.
pub fn check(db: &Path, stored_version: u64) -> Result<(), ServerError> {
    match read(db)? {
        Some(sealed) if stored_version < sealed => Err(ServerError::Damaged(format!(
            "{}: its newest model is version {stored_version} but version {sealed} was \
             published (its WAL was lost or cut, or an older copy was put back): the rounds \
             since and their acknowledged updates are gone. Restore the newest backup with \
             `fedmr-server init --from-backup`, or accept the loss by deleting {}",
            db.display(),
            path(db).display()
        ))),
        _ => Ok(()),
    }
}

/// Replaces the seal atomically (written, synced, renamed over).
pub fn write(db: &Path, version: u64) -> std::io::Result<()> {
    let p = path(db);
    let tmp = p.with_extension("published.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{version}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &p)?;
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself is durable once the directory is synced.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Removes a store that was just created and could not be initialised, so
/// that the next start does not take it for a damaged one.
pub fn remove_store(db: &Path) {
    for suffix in ["", "-wal", "-shm", ".published"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_round_trips_and_a_missing_one_is_none() {
        let dir = std::env::temp_dir().join(format!("fedmr-seal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("server.sqlite");
        assert_eq!(read(&db).unwrap(), None);
        write(&db, 7).unwrap();
        assert_eq!(read(&db).unwrap(), Some(7));
        write(&db, 8).unwrap();
        assert_eq!(read(&db).unwrap(), Some(8));
        std::fs::write(path(&db), "garbage").unwrap();
        assert!(matches!(read(&db), Err(ServerError::Damaged(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
