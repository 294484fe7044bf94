//! The update payloads of a round, outside SQLite: one append-only file per
//! round beside the store (`server.sqlite-rounds/round-<n>.updates`), each
//! payload written once. In SQLite a 50 KB payload was written twice (into
//! the WAL, then copied into the main file by the checkpoint) and freed page
//! by page when its round closed; here it is one write, and a whole round's
//! payloads go with one unlink. SQLite keeps each update's client, key,
//! offset and length, committed after the payload is written (and synced,
//! under `--durability full`), so a committed row always finds its bytes;
//! bytes without a row (a crash in between) are never read.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub(crate) struct RoundLogs {
    dir: PathBuf,
    /// Sync each append before its rows are committed.
    sync: bool,
    /// The round being appended to, its file and its length.
    open: Option<(u64, File, u64)>,
}

impl RoundLogs {
    /// The logs of the store at `db_path`.
    pub(crate) fn new(db_path: &Path, sync: bool) -> RoundLogs {
        let mut dir = db_path.as_os_str().to_owned();
        dir.push("-rounds");
        RoundLogs {
            dir: PathBuf::from(dir),
            sync,
            open: None,
        }
    }

    fn path(&self, round: u64) -> PathBuf {
        self.dir.join(format!("round-{round}.updates"))
    }

    /// Appends `payloads` to `round`'s file; their offsets, in order.
    pub(crate) fn append(&mut self, round: u64, payloads: &[&[u8]]) -> io::Result<Vec<u64>> {
        if self.open.as_ref().map(|(r, _, _)| *r) != Some(round) {
            std::fs::create_dir_all(&self.dir)?;
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(self.path(round))?;
            // Bytes past the last committed row (a crash before its commit)
            // are written over or left unread: appends start at the end.
            let end = file.metadata()?.len();
            self.open = Some((round, file, end));
        }
        let (_, file, end) = self.open.as_mut().expect("opened above");
        let mut offsets = Vec::with_capacity(payloads.len());
        let mut at = *end;
        for payload in payloads {
            file.write_all_at(payload, at)?;
            offsets.push(at);
            at += payload.len() as u64;
        }
        if self.sync {
            file.sync_data()?;
        }
        *end = at;
        Ok(offsets)
    }

    /// `len` bytes at `offset` of `round`'s file.
    pub(crate) fn read(&self, round: u64, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let file = File::open(self.path(round))?;
        let mut bytes = vec![0; usize::try_from(len).map_err(io::Error::other)?];
        file.read_exact_at(&mut bytes, offset)?;
        Ok(bytes)
    }

    /// Deletes the files of rounds before `round` (closed, and no longer
    /// needed by a backup taken during the round after them).
    pub(crate) fn remove_before(&mut self, round: u64) {
        if self.open.as_ref().is_some_and(|(r, _, _)| *r < round) {
            self.open = None;
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let old = name
                .to_str()
                .and_then(|n| n.strip_prefix("round-")?.strip_suffix(".updates"))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|r| r < round);
            if old {
                // Best effort: a file left behind is removed at the next close.
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Removes every file (a new store must not read an old store's).
    pub(crate) fn remove_all(&mut self) {
        self.open = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
