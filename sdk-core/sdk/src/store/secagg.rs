//! Secure aggregation's state per queued update: what a round's phases
//! need from one app launch to the next (its secrets among them). Removed
//! with the update (`remove_update`) and by forget-me.

use rusqlite::{OptionalExtension, params};

use super::Store;
use super::db::u64_to_sql;
use crate::Result;

impl Store {
    /// The stored protocol state of the update `idempotency_key`.
    pub fn secure_round(&self, idempotency_key: &str) -> Result<Option<Vec<u8>>> {
        self.with_reader(|conn| {
            Ok(conn
                .query_row(
                    "SELECT state FROM secagg_rounds WHERE idempotency_key = ?1",
                    [idempotency_key],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    /// Stores (replaces) the protocol state of an update, durably, before
    /// anything derived from it is sent.
    pub fn put_secure_round(&self, idempotency_key: &str, round: u64, state: &[u8]) -> Result<()> {
        let round = u64_to_sql(round, "round")?;
        self.with_writer(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO secagg_rounds (idempotency_key, round, state)
                 VALUES (?1, ?2, ?3)",
                params![idempotency_key, round, state],
            )?;
            Ok(())
        })
    }

    /// How many protocol states are stored (tests check they are erased).
    #[cfg(test)]
    pub fn secure_round_count(&self) -> Result<usize> {
        self.with_reader(|conn| {
            Ok(
                conn.query_row("SELECT COUNT(*) FROM secagg_rounds", [], |r| {
                    r.get::<_, i64>(0)
                })? as usize,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use fedmr_test_support::TempDir;

    use super::*;

    #[test]
    fn states_are_kept_replaced_and_erased_with_their_update() {
        let dir = TempDir::new("store-secagg");
        let store = Store::open(&dir.db()).unwrap();
        store.push_update("k", 3, 3, b"update").unwrap();
        store.put_secure_round("k", 3, b"one").unwrap();
        store.put_secure_round("k", 3, b"two").unwrap();
        assert_eq!(
            store.secure_round("k").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(store.secure_round_count().unwrap(), 1);
        store.remove_update("k").unwrap();
        assert_eq!(store.secure_round("k").unwrap(), None);
        store.put_secure_round("j", 4, b"x").unwrap();
        store.erase_user_data().unwrap();
        assert_eq!(store.secure_round_count().unwrap(), 0);
    }
}
