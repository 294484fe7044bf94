//! The server's SQLite file: the published catalog and model, the updates
//! of the open round (durable before they are acknowledged; their payloads
//! in the round's file, `round_log.rs`), the optimiser state, and client
//! tokens (hashed).
//!
//! Migrations by `PRAGMA user_version` through `fedmr_sqlite`, as on the device.

use std::path::Path;

use fedmr_sqlite::{MigrateError, Step};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::checkpoint::Checkpointer;
use crate::error::ServerError;
use crate::round_log::RoundLogs;

pub const SCHEMA_VERSION: u32 = 2;

/// Closed-round payloads freed by each upload's commit: a round's are gone
/// by the time half as many uploads have arrived in the next.
const CLEARED_PER_INSERT: usize = 2;

/// About what an update's row (client, key, offset, length) adds to the
/// WAL, for the checkpoint thread's count; its payload is in a round file.
const ROW_BYTES: usize = 200;

const MIGRATIONS: &[Step] = &[v0_to_v1, v1_to_v2];
const _: () = assert!(MIGRATIONS.len() == SCHEMA_VERSION as usize);

fn v0_to_v1(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE catalog (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             version INTEGER NOT NULL,
             bytes BLOB NOT NULL
         );
         CREATE TABLE models (
             version INTEGER PRIMARY KEY,
             bytes BLOB NOT NULL,
             optimizer BLOB NOT NULL,
             created_ms INTEGER NOT NULL
         );
         CREATE TABLE updates (
             id INTEGER PRIMARY KEY,
             round INTEGER NOT NULL,
             client TEXT NOT NULL,
             idempotency_key TEXT NOT NULL,
             payload BLOB NOT NULL,
             received_ms INTEGER NOT NULL,
             UNIQUE (round, client)
         );
         CREATE TABLE clients (
             client_id TEXT PRIMARY KEY,
             token_sha256 BLOB NOT NULL UNIQUE,
             created_ms INTEGER NOT NULL
         );",
    )
}

/// Payloads move to the round files (`round_log.rs`): a row holds where its
/// payload is (`payload` stays empty), or, when both are NULL, the payload
/// itself (rows stored before, and a backup's open round).
fn v1_to_v2(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "ALTER TABLE updates ADD COLUMN payload_at INTEGER;
         ALTER TABLE updates ADD COLUMN payload_len INTEGER;",
    )
}

/// An update as stored for replay after a restart.
pub struct StoredUpdate {
    pub client: String,
    pub idempotency_key: String,
    pub payload: Vec<u8>,
}

/// The latest published model, as stored.
pub struct StoredModel {
    pub version: u64,
    pub bytes: Vec<u8>,
    pub optimizer: Vec<u8>,
}

/// How hard a commit is pushed to the disk before it is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = NORMAL` under WAL: a commit survives the process being
    /// killed; an OS crash or power loss can lose the last commits.
    #[default]
    Normal,
    /// `synchronous = FULL`: the WAL is synced at every commit, so an
    /// acknowledged update survives power loss too (one fsync per update).
    Full,
}

impl Durability {
    pub fn parse(s: &str) -> Result<Durability, String> {
        match s {
            "normal" => Ok(Durability::Normal),
            "full" => Ok(Durability::Full),
            other => Err(format!("durability must be normal or full, got {other:?}")),
        }
    }
}

pub struct ServerDb {
    /// Declared before `conn`: the checkpoint thread stops first.
    checkpointer: Option<Checkpointer>,
    /// Rows of the closed round whose payloads are still stored: freed a
    /// few per upload (`CLEARED_PER_INSERT`) rather than all in the close,
    /// where freeing a round's megabytes stalled every upload.
    uncleared: std::collections::VecDeque<i64>,
    /// Where new payloads go.
    logs: RoundLogs,
    conn: Connection,
    /// The file did not exist before this open: a new federation.
    pub fresh: bool,
}

/// Wall-clock milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl ServerDb {
    /// Opens (or, if there is no file, creates) the store. An existing file
    /// is checked page by page first: a damaged one is refused, never
    /// repaired or replaced behind the operator's back.
    pub fn open(path: &Path, durability: Durability) -> Result<ServerDb, ServerError> {
        let fresh = !path.exists();
        let damaged = |e: rusqlite::Error| {
            ServerError::Damaged(format!(
                "{}: {e} (restore a backup with `fedmr-server init --from-backup`)",
                path.display()
            ))
        };
        let mut conn = Connection::open(path).map_err(damaged)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        if !fresh {
            // Checked before anything is written: an existing file that was
            // never initialised (a first start killed at once, or all of it
            // in a WAL that is gone) is not quietly made into a new store.
            let schema: u32 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(damaged)?;
            if schema == 0 {
                return Err(ServerError::Damaged(format!(
                    "{} exists but holds no schema and no published model: a first start \
                     that was interrupted, or its WAL was lost. Move it aside and run \
                     `fedmr-server init`, or restore a backup with `fedmr-server init --from-backup`",
                    path.display()
                )));
            }
        }
        conn.pragma_update(None, "journal_mode", "wal")
            .map_err(damaged)?;
        // NORMAL under WAL: a commit survives the process being killed
        // (SIGKILL), which is the durability a 202 promises; FULL adds
        // power loss (README, "Durability").
        let synchronous = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        if !fresh {
            let verdict: String = conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(damaged)?;
            if verdict != "ok" {
                return Err(ServerError::Damaged(format!(
                    "{}: the integrity check says {verdict:?} (restore a backup with \
                     `fedmr-server init --from-backup`)",
                    path.display()
                )));
            }
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(damaged)?;
        fedmr_sqlite::migrate(&tx, MIGRATIONS).map_err(|e| match e {
            MigrateError::Sqlite(e) => damaged(e),
            other => ServerError::Damaged(format!("{}: {other}", path.display())),
        })?;
        tx.commit()?;
        // Payloads a closed round left (the process stopped before they
        // were freed); `length` reads no blob.
        let uncleared = conn
            .prepare(
                "SELECT id FROM updates WHERE length(payload) > 0
                 AND round < (SELECT MAX(version) FROM models) ORDER BY id",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut logs = RoundLogs::new(path, durability == Durability::Full);
        let latest: Option<i64> =
            conn.query_row("SELECT MAX(version) FROM models", [], |r| r.get(0))?;
        match latest {
            // A new store: files left by another of the same name are not ours.
            None if fresh => logs.remove_all(),
            // A store without a model is refused by the server; its files
            // are left as they are, like the store.
            None => {}
            // The open round's file and the one closed before it are kept.
            Some(version) => logs.remove_before((version as u64).saturating_sub(1)),
        }
        Ok(ServerDb {
            checkpointer: None,
            uncleared,
            logs,
            conn,
            fresh,
        })
    }

    /// `PRAGMA synchronous` as SQLite reports it (1 NORMAL, 2 FULL).
    pub fn synchronous(&self) -> Result<i64, ServerError> {
        Ok(self
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))?)
    }

    /// Copies the store at `from` to `to` with SQLite's online backup: a
    /// running server keeps serving (WAL lets the copy read a consistent
    /// snapshot beside it). The copy is checked before this returns.
    pub fn backup(from: &Path, to: &Path) -> Result<(), ServerError> {
        if to.exists() {
            return Err(ServerError::BadRequest(format!(
                "{} exists; give a new file",
                to.display()
            )));
        }
        let src = Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| ServerError::NotFound(format!("{}: {e}", from.display())))?;
        src.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut dst = Connection::open(to)?;
        {
            let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
            backup.run_to_completion(256, std::time::Duration::ZERO, None)?;
        }
        if let Err(e) = inline_open_round(&dst, from) {
            drop(dst);
            let _ = std::fs::remove_file(to);
            return Err(e);
        }
        let verdict: String = dst.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if verdict != "ok" {
            return Err(ServerError::Damaged(format!(
                "the copy {} fails its integrity check: {verdict}",
                to.display()
            )));
        }
        Ok(())
    }

    pub fn catalog(&self) -> Result<Option<(u64, Vec<u8>)>, ServerError> {
        Ok(self
            .conn
            .query_row("SELECT version, bytes FROM catalog WHERE id = 1", [], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })
            .optional()?)
    }

    pub fn latest_model(&self) -> Result<Option<StoredModel>, ServerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT version, bytes, optimizer FROM models ORDER BY version DESC LIMIT 1",
                [],
                |r| {
                    Ok(StoredModel {
                        version: r.get::<_, i64>(0)? as u64,
                        bytes: r.get(1)?,
                        optimizer: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// First start: the catalog and the initial model, together.
    pub fn initialize(
        &mut self,
        catalog_version: u64,
        catalog: &[u8],
        model: &StoredModel,
    ) -> Result<(), ServerError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO catalog (id, version, bytes) VALUES (1, ?1, ?2)",
            params![catalog_version as i64, catalog],
        )?;
        tx.execute(
            "INSERT INTO models (version, bytes, optimizer, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![model.version as i64, model.bytes, model.optimizer, now_ms()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Moves WAL checkpoints out of the commits onto a thread of their own
    /// (`checkpoint.rs`); the server's store does this once it is open.
    pub fn checkpoint_in_background(&mut self, path: &Path) -> Result<(), ServerError> {
        let checkpointer = Checkpointer::start(path)?;
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        self.checkpointer = Some(checkpointer);
        Ok(())
    }

    fn wrote(&self, bytes: usize) {
        if let Some(c) = &self.checkpointer {
            c.wrote(bytes as u64);
        }
    }

    /// Stores an accepted update; after this returns, a kill cannot lose it.
    pub fn insert_update(
        &mut self,
        round: u64,
        client: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<(), ServerError> {
        self.insert_updates(round, &[(client, key, payload)])
    }

    /// Stores accepted updates in one transaction, in the given order
    /// (their arrival order, which replay follows); all or none.
    pub fn insert_updates(
        &mut self,
        round: u64,
        updates: &[(&str, &str, &[u8])],
    ) -> Result<(), ServerError> {
        // The payloads first: a row is committed only once its bytes are
        // written (and synced under `Durability::Full`).
        let payloads: Vec<&[u8]> = updates.iter().map(|u| u.2).collect();
        let offsets = self
            .logs
            .append(round, &payloads)
            .map_err(|e| ServerError::Internal(format!("writing the round's updates: {e}")))?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let clearing = self.uncleared.len().min(CLEARED_PER_INSERT * updates.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO updates
                     (round, client, idempotency_key, payload, payload_at, payload_len, received_ms)
                 VALUES (?1, ?2, ?3, x'', ?4, ?5, ?6)",
            )?;
            let now = now_ms();
            for ((client, key, payload), at) in updates.iter().zip(&offsets) {
                insert.execute(params![
                    round as i64,
                    client,
                    key,
                    *at as i64,
                    payload.len() as i64,
                    now
                ])?;
            }
            let mut clear =
                tx.prepare_cached("UPDATE updates SET payload = zeroblob(0) WHERE id = ?1")?;
            for id in self.uncleared.range(..clearing) {
                clear.execute([id])?;
            }
        }
        tx.commit()?;
        self.uncleared.drain(..clearing);
        self.wrote(updates.len() * ROW_BYTES);
        Ok(())
    }

    /// The open round's updates in arrival order (replayed at start).
    pub fn updates_of(&self, round: u64) -> Result<Vec<StoredUpdate>, ServerError> {
        let mut stmt = self.conn.prepare(
            "SELECT client, idempotency_key, payload, payload_at, payload_len
             FROM updates WHERE round = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([round as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(client, idempotency_key, inline, at, len)| {
                let payload = match (at, len) {
                    (Some(at), Some(len)) => {
                        self.logs.read(round, at as u64, len as u64).map_err(|e| {
                            ServerError::Damaged(format!(
                                "round {round}: the payload of {client}'s update \
                                 ({len} bytes at {at}) cannot be read: {e}"
                            ))
                        })?
                    }
                    _ => inline,
                };
                Ok(StoredUpdate {
                    client,
                    idempotency_key,
                    payload,
                })
            })
            .collect()
    }

    /// (client, idempotency key) of every update of `round`.
    pub fn keys_of(&self, round: u64) -> Result<Vec<(String, String)>, ServerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT client, idempotency_key FROM updates WHERE round = ?1")?;
        let rows = stmt
            .query_map([round as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Closes `round` atomically: the new model and optimiser state are
    /// stored, the round's updates kept for their keys (a late retry is
    /// told it was counted, also after a restart; their payloads are freed
    /// by the next uploads), older rounds' deleted, older models pruned
    /// (the last two versions stay).
    pub fn close_round(&mut self, round: u64, next: &StoredModel) -> Result<(), ServerError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO models (version, bytes, optimizer, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![next.version as i64, next.bytes, next.optimizer, now_ms()],
        )?;
        // The round's payloads are freed by the next uploads' commits; its
        // keys stay (a late retry is told it was counted). Older rounds'
        // rows go, with any payload not freed yet.
        let closed: Vec<i64> = tx
            .prepare_cached(
                "SELECT id FROM updates WHERE round = ?1 AND length(payload) > 0 ORDER BY id",
            )?
            .query_map([round as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        tx.execute("DELETE FROM updates WHERE round < ?1", [round as i64])?;
        tx.execute(
            "DELETE FROM models WHERE version < ?1",
            [next.version as i64 - 1],
        )?;
        tx.commit()?;
        self.uncleared = closed.into();
        // The closed round's file stays until the next close, for a
        // backup taken meanwhile; older ones go.
        self.logs.remove_before(round);
        self.wrote(next.bytes.len());
        Ok(())
    }

    pub fn put_client(&self, client_id: &str, token_sha256: &[u8; 32]) -> Result<(), ServerError> {
        self.conn.execute(
            "INSERT INTO clients (client_id, token_sha256, created_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (client_id) DO UPDATE SET token_sha256 = excluded.token_sha256",
            params![client_id, token_sha256, now_ms()],
        )?;
        Ok(())
    }

    pub fn clients(&self) -> Result<Vec<(String, [u8; 32])>, ServerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT client_id, token_sha256 FROM clients")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

/// In a backup copy, the open round's payloads are copied from the round
/// file into their rows (a restored store has no round files); closed
/// rounds' rows keep only their keys. The round file of the copy's open
/// round outlives one more close (`close_round`), so it is there to read.
fn inline_open_round(copy: &Connection, from: &Path) -> Result<(), ServerError> {
    let open: Option<i64> = copy.query_row("SELECT MAX(version) FROM models", [], |r| r.get(0))?;
    let Some(open) = open else {
        return Ok(());
    };
    let logs = RoundLogs::new(from, false);
    let rows: Vec<(i64, i64, i64)> = copy
        .prepare(
            "SELECT id, payload_at, payload_len FROM updates
             WHERE round = ?1 AND payload_at IS NOT NULL",
        )?
        .query_map([open], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let tx = copy.unchecked_transaction()?;
    for (id, at, len) in rows {
        let payload = logs.read(open as u64, at as u64, len as u64).map_err(|e| {
            ServerError::Internal(format!(
                "the open round's updates could not be copied ({e}): run the backup again"
            ))
        })?;
        tx.execute(
            "UPDATE updates SET payload = ?1, payload_at = NULL, payload_len = NULL WHERE id = ?2",
            params![payload, id],
        )?;
    }
    tx.execute(
        "UPDATE updates SET payload_at = NULL, payload_len = NULL WHERE round < ?1",
        [open],
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_payload_bytes(db: &ServerDb, round: u64) -> Vec<i64> {
        db.conn
            .prepare("SELECT length(payload) FROM updates WHERE round = ?1 ORDER BY id")
            .unwrap()
            .query_map([round as i64], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn model(version: u64) -> StoredModel {
        StoredModel {
            version,
            bytes: vec![version as u8; 10],
            optimizer: vec![],
        }
    }

    fn temp_store(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("fedmr-db-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.sqlite");
        (dir, path)
    }

    fn round_file(path: &std::path::Path, round: u64) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("{}-rounds/round-{round}.updates", path.display()))
    }

    #[test]
    fn payloads_are_written_once_to_their_round_file_and_go_with_it() {
        let (dir, path) = temp_store("round-files");
        let mut db = ServerDb::open(&path, Durability::Normal).unwrap();
        db.initialize(1, b"catalog", &model(1)).unwrap();
        let (a, b) = (vec![1u8; 3000], vec![2u8; 700]);
        db.insert_updates(1, &[("c0", "k0", &a), ("c1", "k1", &b)])
            .unwrap();
        db.insert_update(1, "c2", "k2", &a[..10]).unwrap();
        // Not in SQLite: only where they are.
        assert_eq!(stored_payload_bytes(&db, 1), vec![0, 0, 0]);
        assert_eq!(std::fs::metadata(round_file(&path, 1)).unwrap().len(), 3710);
        let read = |db: &ServerDb, round| -> Vec<Vec<u8>> {
            db.updates_of(round)
                .unwrap()
                .into_iter()
                .map(|u| u.payload)
                .collect()
        };
        assert_eq!(read(&db, 1), vec![a.clone(), b.clone(), a[..10].to_vec()]);
        // Bytes written without a committed row (a crash between the two)
        // are never read, and appends go after them.
        let mut garbage = std::fs::OpenOptions::new()
            .append(true)
            .open(round_file(&path, 1))
            .unwrap();
        std::io::Write::write_all(&mut garbage, &[9; 33]).unwrap();
        drop(db);
        let mut db = ServerDb::open(&path, Durability::Normal).unwrap();
        db.insert_update(1, "c3", "k3", &b).unwrap();
        assert_eq!(read(&db, 1).len(), 4);
        assert_eq!(read(&db, 1)[3], b);
        // Closing keeps the closed round's file (a backup may be reading
        // it); the next close removes it.
        db.close_round(1, &model(2)).unwrap();
        assert!(round_file(&path, 1).exists());
        db.insert_update(2, "c0", "n0", &b).unwrap();
        db.close_round(2, &model(3)).unwrap();
        assert!(!round_file(&path, 1).exists());
        assert!(round_file(&path, 2).exists());
        // A damaged file is an error, not a short payload.
        std::fs::write(round_file(&path, 2), [0u8; 5]).unwrap();
        assert!(matches!(db.updates_of(2), Err(ServerError::Damaged(_))));
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn inline_payloads_of_a_closed_round_are_freed_by_later_uploads_and_its_keys_stay() {
        // Rows with their payload inline are what a restored backup's
        // open round holds.
        let (dir, path) = temp_store("clear");
        let mut db = ServerDb::open(&path, Durability::Normal).unwrap();
        db.initialize(1, b"catalog", &model(1)).unwrap();
        let five: Vec<(String, String)> =
            (0..5).map(|i| (format!("c{i}"), format!("k{i}"))).collect();
        for (c, k) in &five {
            db.conn
                .execute(
                    "INSERT INTO updates (round, client, idempotency_key, payload, received_ms)
                     VALUES (1, ?1, ?2, zeroblob(5000), 0)",
                    params![c, k],
                )
                .unwrap();
        }
        drop(db);
        let mut db = ServerDb::open(&path, Durability::Normal).unwrap();
        assert_eq!(db.updates_of(1).unwrap().len(), 5);
        db.close_round(1, &model(2)).unwrap();
        // The close itself frees nothing.
        assert_eq!(stored_payload_bytes(&db, 1), vec![5000; 5]);
        let payload = vec![7u8; 100];
        db.insert_update(2, "c0", "n0", &payload).unwrap();
        assert_eq!(stored_payload_bytes(&db, 1), vec![0, 0, 5000, 5000, 5000]);
        // What is left is found again after a restart.
        drop(db);
        let mut db = ServerDb::open(&path, Durability::Normal).unwrap();
        db.insert_update(2, "c1", "n1", &payload).unwrap();
        assert_eq!(stored_payload_bytes(&db, 1), vec![0, 0, 0, 0, 5000]);
        db.insert_update(2, "c2", "n2", &payload).unwrap();
        assert_eq!(stored_payload_bytes(&db, 1), vec![0; 5]);
        let mut keys = db.keys_of(1).unwrap();
        keys.sort();
        assert_eq!(keys, five);
        // The next close removes the older round's rows.
        db.close_round(2, &model(3)).unwrap();
        assert!(db.keys_of(1).unwrap().is_empty());
        assert_eq!(db.keys_of(2).unwrap().len(), 3);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
