//! WAL checkpoints on a thread of their own. SQLite's automatic checkpoint
//! runs inside whichever commit crosses its threshold, which here was an
//! upload's or a round close's request, holding the round lock: copying
//! megabytes of updates into the main file and syncing it stalled every
//! upload behind it. This thread does the same passive checkpoint (it
//! never blocks a writer) with its own connection, after about as many
//! bytes as SQLite's default threshold (1,000 pages of 4 KiB).

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::error::ServerError;

/// Bytes committed before a checkpoint is asked for.
const THRESHOLD_BYTES: u64 = 4 << 20;

#[derive(Default)]
struct Flags {
    written: u64,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    flags: Mutex<Flags>,
    wake: Condvar,
}

impl Shared {
    fn flags(&self) -> std::sync::MutexGuard<'_, Flags> {
        self.flags.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to the store at `path`.
    pub(crate) fn start(path: &Path) -> Result<Checkpointer, ServerError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("fedmr-checkpoint".into())
                .spawn(move || run(&conn, &shared))
                .map_err(|e| ServerError::Internal(format!("checkpoint thread: {e}")))?
        };
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Counts `bytes` committed; wakes the thread past the threshold.
    pub(crate) fn wrote(&self, bytes: u64) {
        let mut flags = self.shared.flags();
        flags.written += bytes;
        if flags.written >= THRESHOLD_BYTES {
            self.shared.wake.notify_one();
        }
    }
}

fn run(conn: &Connection, shared: &Shared) {
    loop {
        {
            let mut flags = shared.flags();
            while flags.written < THRESHOLD_BYTES && !flags.stop {
                flags = shared.wake.wait(flags).unwrap_or_else(|p| p.into_inner());
            }
            if flags.stop {
                return;
            }
            flags.written = 0;
        }
        // PASSIVE: copies what no reader still needs, never waits for a
        // writer. A failure (a full disk) leaves the WAL longer; the next
        // threshold tries again, and SQLite reads the WAL meanwhile.
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
        if let Err(e) = done {
            eprintln!("fedmr-server: background WAL checkpoint failed: {e}");
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.flags().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
