//! The server's SQLite file: the published catalog and model, the updates
//! of the open round (durable before they are acknowledged), the
//! optimiser state, and client tokens (hashed).
//!
//! Migrations by `PRAGMA user_version` through `fedmr_sqlite`, as on the device.

use std::path::Path;

use fedmr_sqlite::{MigrateError, Step};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::checkpoint::Checkpointer;
use crate::error::ServerError;

pub const SCHEMA_VERSION: u32 = 1;

/// Closed-round payloads freed by each upload's commit: a round's are gone
/// by the time half as many uploads have arrived in the next.
const CLEARED_PER_INSERT: usize = 2;

const MIGRATIONS: &[Step] = &[v0_to_v1];
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
        Ok(ServerDb {
            checkpointer: None,
            uncleared,
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
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let clearing = self.uncleared.len().min(CLEARED_PER_INSERT * updates.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO updates (round, client, idempotency_key, payload, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let now = now_ms();
            for (client, key, payload) in updates {
                insert.execute(params![round as i64, client, key, payload, now])?;
            }
            let mut clear =
                tx.prepare_cached("UPDATE updates SET payload = zeroblob(0) WHERE id = ?1")?;
            for id in self.uncleared.range(..clearing) {
                clear.execute([id])?;
            }
        }
        tx.commit()?;
        self.uncleared.drain(..clearing);
        self.wrote(updates.iter().map(|u| u.2.len()).sum());
        Ok(())
    }

    /// The open round's updates in arrival order (replayed at start).
    pub fn updates_of(&self, round: u64) -> Result<Vec<StoredUpdate>, ServerError> {
        let mut stmt = self.conn.prepare(
            "SELECT client, idempotency_key, payload FROM updates WHERE round = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([round as i64], |r| {
                Ok(StoredUpdate {
                    client: r.get(0)?,
                    idempotency_key: r.get(1)?,
                    payload: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
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
            .prepare_cached("SELECT id FROM updates WHERE round = ?1 ORDER BY id")?
            .query_map([round as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        tx.execute("DELETE FROM updates WHERE round < ?1", [round as i64])?;
        tx.execute(
            "DELETE FROM models WHERE version < ?1",
            [next.version as i64 - 1],
        )?;
        tx.commit()?;
        self.uncleared = closed.into();
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

    #[test]
    fn a_closed_rounds_payloads_are_freed_by_later_uploads_and_its_keys_stay() {
        let dir = std::env::temp_dir().join(format!("fedmr-db-clear-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.sqlite");
        let mut db = ServerDb::open(&path, Durability::Normal).unwrap();
        db.initialize(1, b"catalog", &model(1)).unwrap();
        let payload = vec![7u8; 5000];
        let five: Vec<(String, String)> =
            (0..5).map(|i| (format!("c{i}"), format!("k{i}"))).collect();
        let rows: Vec<(&str, &str, &[u8])> = five
            .iter()
            .map(|(c, k)| (c.as_str(), k.as_str(), payload.as_slice()))
            .collect();
        db.insert_updates(1, &rows).unwrap();
        db.close_round(1, &model(2)).unwrap();
        // The close itself frees nothing.
        assert_eq!(stored_payload_bytes(&db, 1), vec![5000; 5]);
        db.insert_update(2, "c0", "n0", &payload).unwrap();
        assert_eq!(stored_payload_bytes(&db, 1), vec![0, 0, 5000, 5000, 5000]);
        // What is left is found again after a restart.
        drop(db);
        let mut db = ServerDb::open(&path, Durability::Normal).unwrap();
        db.insert_update(2, "c1", "n1", &payload).unwrap();
        assert_eq!(stored_payload_bytes(&db, 1), vec![0, 0, 0, 0, 5000]);
        db.insert_update(2, "c2", "n2", &payload).unwrap();
        assert_eq!(stored_payload_bytes(&db, 1), vec![0; 5]);
        // The open round's payloads are untouched, the closed one's keys kept.
        assert_eq!(stored_payload_bytes(&db, 2), vec![5000; 3]);
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
