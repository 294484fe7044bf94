//! What ranking derived from the user's data, kept between app starts: the
//! history's version counter, every item's scores and the history-dependent
//! context (router weights, seen items). Payloads are opaque here; each row
//! is tagged with what it was computed from, and a read returns it only
//! when the tags still hold, so a stale row is never used, only replaced.

use rusqlite::{OptionalExtension, params};

use super::Store;
use super::db::{get_u64, u64_to_sql};
use crate::Result;

/// What a ranking row was computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankingTags {
    /// Digest of the installed global model's message body.
    pub model_digest: [u8; 32],
    /// Digest of the private state (or of the seed an untrained one comes from).
    pub state_tag: [u8; 32],
    /// `history_version` when the history was read.
    pub history_version: u64,
}

impl Store {
    /// The interaction history's version: changes with every write to it.
    pub fn history_version(&self) -> Result<u64> {
        self.with_reader(|conn| {
            Ok(conn.query_row(
                "SELECT version FROM history_version WHERE id = 1",
                [],
                |r| get_u64(r, 0),
            )?)
        })
    }

    /// The stored scores if computed under `tags`; scores stored without a
    /// history version hold for any history.
    pub fn ranking_scores(&self, tags: &RankingTags) -> Result<Option<Vec<u8>>> {
        let history = u64_to_sql(tags.history_version, "history version")?;
        self.with_reader(|conn| {
            Ok(conn
                .query_row(
                    "SELECT payload FROM ranking_scores
                     WHERE id = 1 AND model_digest = ?1 AND state_tag = ?2
                       AND (history_version IS NULL OR history_version = ?3)",
                    params![tags.model_digest, tags.state_tag, history],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    /// Replaces the stored scores; `depends_on_history` says whether they
    /// hold for `tags.history_version` only.
    pub fn put_ranking_scores(
        &self,
        tags: &RankingTags,
        depends_on_history: bool,
        payload: &[u8],
    ) -> Result<()> {
        let history = depends_on_history
            .then(|| u64_to_sql(tags.history_version, "history version"))
            .transpose()?;
        self.with_writer(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO ranking_scores
                     (id, model_digest, state_tag, history_version, payload)
                 VALUES (1, ?1, ?2, ?3, ?4)",
                params![tags.model_digest, tags.state_tag, history, payload],
            )?;
            Ok(())
        })
    }

    /// The stored ranking context if computed under exactly `tags`.
    pub fn ranking_context(&self, tags: &RankingTags) -> Result<Option<Vec<u8>>> {
        let history = u64_to_sql(tags.history_version, "history version")?;
        self.with_reader(|conn| {
            Ok(conn
                .query_row(
                    "SELECT payload FROM ranking_context
                     WHERE id = 1 AND model_digest = ?1 AND state_tag = ?2
                       AND history_version = ?3",
                    params![tags.model_digest, tags.state_tag, history],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    /// Replaces the stored ranking context.
    pub fn put_ranking_context(&self, tags: &RankingTags, payload: &[u8]) -> Result<()> {
        let history = u64_to_sql(tags.history_version, "history version")?;
        self.with_writer(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO ranking_context
                     (id, model_digest, state_tag, history_version, payload)
                 VALUES (1, ?1, ?2, ?3, ?4)",
                params![tags.model_digest, tags.state_tag, history, payload],
            )?;
            Ok(())
        })
    }
}

/// Marks the history changed: what ranking derived from it no longer holds.
/// Called inside every transaction that writes `interactions`.
pub(super) fn bump_history_version(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE history_version SET version = version + 1 WHERE id = 1",
        [],
    )
    .map(|_| ())
}

/// Deletes what ranking derived from the user's data (forget-me, a new catalog).
pub(super) fn delete_rankings(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.execute_batch("DELETE FROM ranking_scores; DELETE FROM ranking_context;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interaction::{Interaction, InteractionKind};
    use fedmr_test_support::TempDir;

    fn tags(history_version: u64) -> RankingTags {
        RankingTags {
            model_digest: [1; 32],
            state_tag: [2; 32],
            history_version,
        }
    }

    #[test]
    fn every_history_write_bumps_the_version() {
        let dir = TempDir::new("ranking-history");
        let store = Store::open(&dir.db()).unwrap();
        let v0 = store.history_version().unwrap();
        let like = |t| Interaction {
            item_key: "a".into(),
            kind: InteractionKind::Like,
            timestamp_ms: t,
        };
        store.record_batch(&[like(1)], 10).unwrap();
        let v1 = store.history_version().unwrap();
        assert!(v1 > v0);
        // An empty or refused batch writes nothing and keeps the version.
        store.record_batch(&[], 10).unwrap();
        let bad = Interaction {
            item_key: String::new(),
            ..like(2)
        };
        assert!(store.record_batch(&[bad], 10).is_err());
        assert_eq!(store.history_version().unwrap(), v1);
        store.erase_user_data().unwrap();
        assert!(store.history_version().unwrap() > v1);
    }

    #[test]
    fn rows_are_returned_only_under_their_tags() {
        let dir = TempDir::new("ranking-tags");
        let store = Store::open(&dir.db()).unwrap();
        assert_eq!(store.ranking_scores(&tags(3)).unwrap(), None);

        store.put_ranking_scores(&tags(3), false, b"any").unwrap();
        assert_eq!(store.ranking_scores(&tags(9)).unwrap().unwrap(), b"any");
        let other_state = RankingTags {
            state_tag: [7; 32],
            ..tags(3)
        };
        assert_eq!(store.ranking_scores(&other_state).unwrap(), None);
        let other_model = RankingTags {
            model_digest: [7; 32],
            ..tags(3)
        };
        assert_eq!(store.ranking_scores(&other_model).unwrap(), None);

        store.put_ranking_scores(&tags(3), true, b"only 3").unwrap();
        assert_eq!(store.ranking_scores(&tags(3)).unwrap().unwrap(), b"only 3");
        assert_eq!(store.ranking_scores(&tags(4)).unwrap(), None);

        store.put_ranking_context(&tags(3), b"ctx").unwrap();
        assert_eq!(store.ranking_context(&tags(3)).unwrap().unwrap(), b"ctx");
        assert_eq!(store.ranking_context(&tags(4)).unwrap(), None);
    }

    /// Forget-me leaves nothing derived from the user's data.
    #[test]
    fn forget_me_deletes_the_rankings() {
        let dir = TempDir::new("ranking-forget");
        let store = Store::open(&dir.db()).unwrap();
        store.put_ranking_scores(&tags(0), false, b"s").unwrap();
        store.put_ranking_context(&tags(0), b"c").unwrap();
        store.erase_user_data().unwrap();
        let count = |table: &str| -> i64 {
            store
                .with_reader(|c| {
                    Ok(c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
                })
                .unwrap()
        };
        assert_eq!(count("ranking_scores"), 0);
        assert_eq!(count("ranking_context"), 0);
    }
}
