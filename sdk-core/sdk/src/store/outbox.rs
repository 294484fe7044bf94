//! The outbox: model updates computed on device and waiting for upload.
//!
//! Each update carries an idempotency key so a retried upload is recognised
//! by the server; the same key can be queued only once.

use rusqlite::{Connection, ffi, params};

use super::Store;
use super::db::{get_u64, now_ms, u64_to_sql};
use crate::{Error, Result};

/// An update to queue for upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewUpdate<'a> {
    pub idempotency_key: &'a str,
    /// The federated round this update was trained for.
    pub round: u64,
    /// The global model version it was computed against.
    pub base_version: u64,
    pub payload: &'a [u8],
}

/// A queued update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpdate {
    pub id: i64,
    pub idempotency_key: String,
    pub round: u64,
    pub base_version: u64,
    pub payload: Vec<u8>,
    pub created_ms: i64,
}

/// Inserts `update` on `conn` (the caller's transaction); shared with the
/// state writer so a private state and its update can land together.
pub(super) fn insert(conn: &Connection, update: &NewUpdate<'_>) -> Result<()> {
    let key = update.idempotency_key;
    if key.trim().is_empty() {
        return Err(Error::Store("idempotency key is empty".into()));
    }
    let round = u64_to_sql(update.round, "round")?;
    let base_version = u64_to_sql(update.base_version, "base version")?;
    let inserted = conn.execute(
        "INSERT INTO outbox (idempotency_key, round, base_version, payload, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key, round, base_version, update.payload, now_ms()],
    );
    match inserted {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Err(Error::Store(format!(
                "duplicate idempotency key {key:?} in the outbox"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// Queues an update; a duplicate idempotency key is an error and changes
    /// nothing.
    #[cfg(test)]
    pub fn push_update(
        &self,
        idempotency_key: &str,
        round: u64,
        base_version: u64,
        payload: &[u8],
    ) -> Result<()> {
        let update = NewUpdate {
            idempotency_key,
            round,
            base_version,
            payload,
        };
        self.with_writer(|tx| insert(tx, &update))
    }

    /// Every queued update, oldest first (the order to upload them in).
    pub fn pending_updates(&self) -> Result<Vec<PendingUpdate>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, idempotency_key, round, base_version, payload, created_ms
                 FROM outbox ORDER BY id",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(PendingUpdate {
                        id: r.get(0)?,
                        idempotency_key: r.get(1)?,
                        round: get_u64(r, 2)?,
                        base_version: get_u64(r, 3)?,
                        payload: r.get(4)?,
                        created_ms: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Removes the update with `idempotency_key` (after the server accepted
    /// it), and its secure-aggregation state with it (the round's secrets
    /// are erased with the round). Returns whether one was there.
    pub fn remove_update(&self, idempotency_key: &str) -> Result<bool> {
        self.with_writer(|tx| {
            tx.execute(
                "DELETE FROM secagg_rounds WHERE idempotency_key = ?1",
                [idempotency_key],
            )?;
            let n = tx.execute(
                "DELETE FROM outbox WHERE idempotency_key = ?1",
                [idempotency_key],
            )?;
            Ok(n > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedmr_test_support::TempDir;

    fn keys(store: &Store) -> Vec<String> {
        store
            .pending_updates()
            .unwrap()
            .into_iter()
            .map(|u| u.idempotency_key)
            .collect()
    }

    #[test]
    fn push_pending_remove() {
        let dir = TempDir::new("outbox-basic");
        let store = Store::open(&dir.db()).unwrap();
        assert!(store.pending_updates().unwrap().is_empty());
        store.push_update("k2", 7, 3, b"second-made-first").unwrap();
        store.push_update("k1", 8, 4, &[0, 1, 2, 255]).unwrap();

        let pending = store.pending_updates().unwrap();
        assert_eq!(keys(&store), ["k2", "k1"]);
        assert_eq!(
            (pending[1].round, pending[1].base_version),
            (8, 4),
            "fields round-trip"
        );
        assert_eq!(pending[1].payload, [0, 1, 2, 255]);
        assert!(pending[0].created_ms > 0);

        assert!(store.remove_update("k2").unwrap());
        assert!(!store.remove_update("k2").unwrap());
        assert!(!store.remove_update("never").unwrap());
        assert_eq!(keys(&store), ["k1"]);
    }

    #[test]
    fn duplicate_key_is_rejected_and_changes_nothing() {
        let dir = TempDir::new("outbox-dup");
        let store = Store::open(&dir.db()).unwrap();
        store.push_update("k", 1, 1, b"original").unwrap();
        let before = store.pending_updates().unwrap();

        match store.push_update("k", 2, 2, b"replacement") {
            Err(Error::Store(msg)) => assert!(msg.contains("duplicate"), "{msg}"),
            other => panic!("expected a duplicate-key error, got {other:?}"),
        }
        assert_eq!(store.pending_updates().unwrap(), before);
    }

    #[test]
    fn empty_key_is_rejected() {
        let dir = TempDir::new("outbox-empty");
        let store = Store::open(&dir.db()).unwrap();
        assert!(matches!(
            store.push_update(" ", 1, 1, b"x"),
            Err(Error::Store(_))
        ));
        assert!(store.pending_updates().unwrap().is_empty());
    }

    #[test]
    fn versions_above_i64_max_are_refused() {
        let dir = TempDir::new("outbox-u64");
        let store = Store::open(&dir.db()).unwrap();
        assert!(store.push_update("k", u64::MAX, 1, b"x").is_err());
        assert!(store.pending_updates().unwrap().is_empty());
    }
}
