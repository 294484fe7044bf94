//! Connections and transactions: one writer and one reader per database file.
//!
//! SQLite allows a single writer at a time, so all writes share one
//! connection and serialize on its mutex. Reads use their own read-only
//! connection; with WAL they see the last committed state and never wait
//! for a write in progress. Lock order, where both are held: writer, reader.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, Row, Transaction, TransactionBehavior};

use super::schema;
use crate::{Error, Result};

/// How long a connection waits for another one's lock before `SQLITE_BUSY`;
/// long enough to ride out a checkpoint, short enough not to hang the app.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The on-device database. `Send + Sync`: share it across threads by reference
/// or `Arc`.
pub struct Store {
    // Fields drop in order: the read-only connection closes first, so the
    // writer is the last one and SQLite checkpoints the WAL into the main
    // file and deletes it (a read-only last connection cannot). A closed
    // client leaves one self-contained file.
    reader: Mutex<Connection>,
    writer: Mutex<Connection>,
    /// The database file; the model file lives beside it.
    pub(super) path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it to
    /// the current schema in one transaction.
    ///
    /// Fails with `SchemaTooNew` for a file written by a newer build, leaving
    /// its schema and version as they were.
    pub fn open(path: &Path) -> Result<Store> {
        let mut writer = Connection::open(path)?;
        writer.busy_timeout(BUSY_TIMEOUT)?;
        // WAL: readers proceed during writes, and commits are one append.
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Store(format!(
                "{}: journal_mode is {mode}, WAL is required",
                path.display()
            )));
        }
        // NORMAL is durable across app crashes under WAL; only a power loss
        // can drop the last commits, which is acceptable for this data.
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        writer.pragma_update(None, "foreign_keys", true)?;
        {
            let tx = writer.transaction_with_behavior(TransactionBehavior::Immediate)?;
            schema::migrate(&tx)?;
            super::state::check_model_file(&tx, path)?;
            tx.commit()?;
        }

        // Read-only, so a read path can never write by mistake.
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.busy_timeout(BUSY_TIMEOUT)?;

        Ok(Store {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            path: path.to_path_buf(),
        })
    }

    /// Runs `f` in an IMMEDIATE transaction on the writer and commits only if
    /// it returns `Ok`; on `Err` (or a panic) everything it wrote is rolled back.
    ///
    /// IMMEDIATE takes the write lock up front, so a transaction never fails
    /// halfway with `SQLITE_BUSY` when it first writes.
    pub(crate) fn with_writer<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = lock(&self.writer)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` on the read-only connection inside one read transaction, so
    /// all its queries see the same committed snapshot.
    pub(crate) fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.reader)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        f(&tx)
        // Dropping `tx` ends the read transaction; there is nothing to commit.
    }

    /// `PRAGMA integrity_check`: true when SQLite finds no corruption.
    pub fn integrity_check(&self) -> Result<bool> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare("PRAGMA integrity_check")?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows.len() == 1 && rows[0] == "ok")
        })
    }

    /// Rebuilds the file without free pages and then truncates the WAL, so
    /// deleted rows leave no copies behind in either file (forget-me).
    ///
    /// Holds both locks so no reader snapshot of ours blocks the checkpoint.
    pub fn vacuum(&self) -> Result<()> {
        let writer = lock(&self.writer)?;
        let _reader = lock(&self.reader)?;
        writer.execute_batch("VACUUM")?;
        let busy: i64 = writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err(Error::Store(
                "WAL checkpoint blocked by another connection; retry later".into(),
            ));
        }
        Ok(())
    }
}

/// Locks a connection. A panic while it was held unwound through the
/// `Transaction`'s drop, which rolled back; so the connection is reusable,
/// and one panic in a caller must not make the store unusable for good.
fn lock(mutex: &Mutex<Connection>) -> Result<MutexGuard<'_, Connection>> {
    match mutex.lock() {
        Ok(guard) => Ok(guard),
        Err(poisoned) => {
            let guard = poisoned.into_inner();
            if !guard.is_autocommit() {
                guard.execute_batch("ROLLBACK")?;
            }
            mutex.clear_poison();
            Ok(guard)
        }
    }
}

/// Versions and rounds are `u64` in the API but SQLite integers are `i64`;
/// values above `i64::MAX` are refused rather than wrapped.
pub(super) fn u64_to_sql(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| Error::Store(format!("{what} {value} is larger than {}", i64::MAX)))
}

/// Reads a column written by `u64_to_sql`; a negative value means corruption.
pub(super) fn get_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(idx)?;
    u64::try_from(value)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Integer, Box::new(e)))
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Interaction, InteractionKind};
    use fedmr_test_support::TempDir;
    use std::sync::mpsc;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn store_is_send_and_sync() {
        assert_send_sync::<Store>();
    }

    fn view(key: &str, ts: i64) -> Interaction {
        Interaction {
            item_key: key.into(),
            kind: InteractionKind::View,
            timestamp_ms: ts,
        }
    }

    #[test]
    fn dropping_the_store_folds_the_wal_into_the_main_file() {
        let dir = TempDir::new("db-close");
        let store = Store::open(&dir.db()).unwrap();
        store.record_batch(&[view("a", 1)], 10).unwrap();
        let wal = dir.db().with_extension("sqlite-wal");
        assert!(wal.exists(), "WAL mode writes a -wal file while open");
        // A read opens the read-only connection's view of the WAL.
        assert_eq!(store.interaction_count().unwrap(), 1);
        drop(store);
        assert!(
            !wal.exists(),
            "the last connection to close checkpoints and removes the WAL"
        );
        let reopened = Store::open(&dir.db()).unwrap();
        assert_eq!(reopened.interaction_count().unwrap(), 1);
    }

    #[test]
    fn open_sets_wal_and_passes_integrity_check() {
        let dir = TempDir::new("db-open");
        let store = Store::open(&dir.db()).unwrap();
        for conn in [&store.writer, &store.reader] {
            let conn = conn.lock().unwrap();
            let mode: String = conn
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
        let writer = store.writer.lock().unwrap();
        let fk: i64 = writer
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        let sync: i64 = writer
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!((fk, sync), (1, 1), "foreign_keys=ON, synchronous=NORMAL");
        drop(writer);
        assert!(store.integrity_check().unwrap());
    }

    #[test]
    fn reopen_is_idempotent_and_keeps_data() {
        let dir = TempDir::new("db-reopen");
        let store = Store::open(&dir.db()).unwrap();
        store
            .record_batch(&[view("a", 1), view("b", 2)], 100)
            .unwrap();
        drop(store);
        let store = Store::open(&dir.db()).unwrap();
        assert_eq!(store.interaction_count().unwrap(), 2);
        assert!(store.integrity_check().unwrap());
        drop(store);
        let store = Store::open(&dir.db()).unwrap();
        assert_eq!(store.interaction_count().unwrap(), 2);
    }

    #[test]
    fn open_fails_cleanly_when_directory_is_missing() {
        let dir = TempDir::new("db-missing");
        let path = dir.path().join("no-such-dir").join("store.sqlite");
        assert!(matches!(Store::open(&path), Err(Error::Sqlite(_))));
    }

    #[test]
    fn with_writer_rolls_back_on_error() {
        let dir = TempDir::new("db-rollback");
        let store = Store::open(&dir.db()).unwrap();
        let result: Result<()> = store.with_writer(|tx| {
            tx.execute(
                "INSERT INTO interactions (item_key, kind, weight, timestamp_ms)
                 VALUES ('a', 'view', 1.0, 1)",
                [],
            )?;
            Err(Error::Store("abort".into()))
        });
        assert!(result.is_err());
        assert_eq!(store.interaction_count().unwrap(), 0);
    }

    #[test]
    fn reader_connection_is_read_only() {
        let dir = TempDir::new("db-readonly");
        let store = Store::open(&dir.db()).unwrap();
        let result = store.with_reader(|conn| {
            conn.execute("DELETE FROM interactions", [])?;
            Ok(())
        });
        assert!(matches!(result, Err(Error::Sqlite(_))));
    }

    #[test]
    fn store_recovers_after_a_panic_inside_a_write() {
        let dir = TempDir::new("db-panic");
        let store = Store::open(&dir.db()).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<()> = store.with_writer(|tx| {
                tx.execute(
                    "INSERT INTO interactions (item_key, kind, weight, timestamp_ms)
                     VALUES ('a', 'view', 1.0, 1)",
                    [],
                )?;
                panic!("caller bug");
            });
        }));
        assert!(panicked.is_err());
        assert!(store.writer.is_poisoned());
        assert_eq!(store.record_batch(&[view("b", 2)], 10).unwrap(), 1);
        let keys: Vec<String> = store
            .interactions(10)
            .unwrap()
            .into_iter()
            .map(|i| i.item_key)
            .collect();
        assert_eq!(keys, ["b"]);
    }

    /// A reader is not blocked by an open write transaction and sees only
    /// committed data (WAL snapshot isolation).
    #[test]
    fn reader_proceeds_during_an_open_write() {
        let dir = TempDir::new("db-wal-read");
        let store = Store::open(&dir.db()).unwrap();
        let (inserted_tx, inserted_rx) = mpsc::channel();
        let (read_done_tx, read_done_rx) = mpsc::channel::<()>();
        let store = &store;
        std::thread::scope(|s| {
            let writer = s.spawn(move || {
                store.with_writer(|tx| {
                    tx.execute(
                        "INSERT INTO interactions (item_key, kind, weight, timestamp_ms)
                         VALUES ('a', 'view', 1.0, 1)",
                        [],
                    )?;
                    inserted_tx.send(()).expect("main thread alive");
                    // Time out rather than hang if the reader is blocked.
                    read_done_rx
                        .recv_timeout(Duration::from_secs(10))
                        .map_err(|_| Error::Store("reader never finished".into()))
                })
            });
            inserted_rx.recv().unwrap();
            assert_eq!(store.interaction_count().unwrap(), 0);
            read_done_tx.send(()).unwrap();
            writer.join().unwrap().unwrap();
        });
        assert_eq!(store.interaction_count().unwrap(), 1);
    }

    #[test]
    fn concurrent_record_and_count() {
        let dir = TempDir::new("db-threads");
        let store = Store::open(&dir.db()).unwrap();
        const BATCHES: i64 = 50;
        std::thread::scope(|s| {
            let writer = s.spawn(|| {
                for b in 0..BATCHES {
                    let batch: Vec<_> = (0..10).map(|i| view("item", b * 10 + i)).collect();
                    store.record_batch(&batch, 10_000)?;
                }
                Ok::<_, Error>(())
            });
            let reader = s.spawn(|| {
                let mut last = 0;
                for _ in 0..200 {
                    let n = store.interaction_count()?;
                    assert!(n >= last && n % 10 == 0, "saw {n} after {last}");
                    last = n;
                }
                Ok::<_, Error>(())
            });
            writer.join().unwrap().unwrap();
            reader.join().unwrap().unwrap();
        });
        assert_eq!(store.interaction_count().unwrap(), BATCHES as usize * 10);
    }
}
