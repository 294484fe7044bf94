//! The interaction log: what the user viewed, clicked, liked, bought or
//! disliked, kept with a retention cap so the file cannot grow without bound.

use rusqlite::params;

use super::Store;
use super::db::now_ms;
use crate::interaction::{Interaction, InteractionKind};
use crate::{Error, Result};
use fedmr_core::wire::MAX_ITEM_KEY_BYTES;

/// An interaction as stored; `weight` is the weight at the time it was recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInteraction {
    pub id: i64,
    pub item_key: String,
    pub kind: InteractionKind,
    pub weight: f32,
    pub timestamp_ms: i64,
}

/// Why `interaction` cannot be stored, if it cannot.
fn invalid_reason(interaction: &Interaction) -> Option<String> {
    let key = &interaction.item_key;
    if key.trim().is_empty() {
        return Some("item key is empty or whitespace".into());
    }
    if key.len() > MAX_ITEM_KEY_BYTES {
        return Some(format!(
            "item key is {} bytes, limit {MAX_ITEM_KEY_BYTES}",
            key.len()
        ));
    }
    let weight = interaction.kind.weight();
    if !weight.is_finite() {
        return Some(format!("weight {weight} is not finite"));
    }
    if interaction.timestamp_ms < 0 {
        return Some(format!(
            "timestamp {} is negative",
            interaction.timestamp_ms
        ));
    }
    // 1e9..1e10 is 2001-2286 counted in seconds, but 12 Jan - 26 Apr 1970
    // in milliseconds: a unit mistake, not a real interaction.
    if SECONDS_SINCE_2001.contains(&interaction.timestamp_ms) {
        return Some(format!(
            "timestamp {} looks like seconds since 1970; milliseconds are expected \
             (multiply by 1000)",
            interaction.timestamp_ms
        ));
    }
    // A timestamp past tomorrow is a unit or clock mistake; kept, it would
    // outlive every real interaction under retention.
    let tomorrow = now_ms().saturating_add(MAX_CLOCK_AHEAD_MS);
    if interaction.timestamp_ms > tomorrow {
        return Some(format!(
            "timestamp {} ms is more than a day ahead of this device's clock ({} ms)",
            interaction.timestamp_ms,
            now_ms()
        ));
    }
    None
}

/// Timestamps that read as seconds since 1970 (years 2001-2286).
const SECONDS_SINCE_2001: std::ops::Range<i64> = 1_000_000_000..10_000_000_000;

/// How far ahead of the device clock a timestamp may be (clock skew).
const MAX_CLOCK_AHEAD_MS: i64 = 24 * 3600 * 1000;

impl Store {
    /// Records `batch` and then keeps only the newest `retention_cap`
    /// interactions (by timestamp, then insertion order), all in one
    /// transaction. Returns how many were inserted.
    ///
    /// The whole batch is validated first: one bad entry fails the call with
    /// its index and nothing is written, so a caller never has to guess which
    /// part of a batch landed.
    pub fn record_batch(&self, batch: &[Interaction], retention_cap: usize) -> Result<usize> {
        if retention_cap == 0 {
            return Err(Error::InvalidConfig(
                "interaction retention cap must be at least 1".into(),
            ));
        }
        for (index, interaction) in batch.iter().enumerate() {
            if let Some(reason) = invalid_reason(interaction) {
                return Err(Error::InvalidInteraction { index, reason });
            }
        }
        if batch.is_empty() {
            return Ok(0);
        }
        let cap = i64::try_from(retention_cap).unwrap_or(i64::MAX);
        self.with_writer(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO interactions (item_key, kind, weight, timestamp_ms)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for i in batch {
                insert.execute(params![
                    i.item_key,
                    i.kind.as_str(),
                    f64::from(i.kind.weight()),
                    i.timestamp_ms
                ])?;
            }
            // Delete only the excess, oldest first, through the timestamp
            // index: cost proportional to what goes, not to the table.
            let count: i64 = tx.query_row("SELECT COUNT(*) FROM interactions", [], |r| r.get(0))?;
            if count > cap {
                tx.execute(
                    "DELETE FROM interactions WHERE id IN (
                         SELECT id FROM interactions
                         ORDER BY timestamp_ms, id LIMIT ?1)",
                    [count - cap],
                )?;
            }
            super::ranking::bump_history_version(tx)?;
            Ok(batch.len())
        })
    }

    /// The newest `limit` interactions, returned oldest first (the order
    /// training replays them in).
    pub fn interactions(&self, limit: usize) -> Result<Vec<StoredInteraction>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, item_key, kind, weight, timestamp_ms FROM (
                     SELECT * FROM interactions
                     ORDER BY timestamp_ms DESC, id DESC LIMIT ?1)
                 ORDER BY timestamp_ms, id",
            )?;
            let rows = stmt
                .query_map([limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, f64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(id, item_key, kind, weight, timestamp_ms)| {
                // Stored from an f32, so the narrowing is exact.
                let weight = weight as f32;
                let kind = InteractionKind::parse(&kind, weight).ok_or_else(|| {
                    Error::Store(format!("interaction {id} has unknown kind {kind:?}"))
                })?;
                Ok(StoredInteraction {
                    id,
                    item_key,
                    kind,
                    weight,
                    timestamp_ms,
                })
            })
            .collect()
    }

    /// The net weight of every item the user interacted with, summed over
    /// the stored interactions, in the order the items were first met.
    pub fn item_weights(&self) -> Result<Vec<(String, f64)>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT item_key, SUM(weight) FROM interactions GROUP BY item_key
                 ORDER BY MIN(timestamp_ms), MIN(id)",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// `item_weights` with each item's catalog id (`None` for a key the
    /// installed catalog does not have), joined in SQL through the key's
    /// index so no key map has to sit in memory.
    pub fn item_weights_by_id(&self) -> Result<Vec<(Option<u32>, f64)>> {
        let rows = self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT c.id, w.weight FROM (
                     SELECT item_key, SUM(weight) AS weight,
                            MIN(timestamp_ms) AS first_ms, MIN(id) AS first_id
                     FROM interactions GROUP BY item_key) AS w
                 LEFT JOIN catalog_items AS c ON c.item_key = w.item_key
                 ORDER BY w.first_ms, w.first_id",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, Option<i64>>(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(id, weight)| {
                let id = id
                    .map(|id| {
                        u32::try_from(id)
                            .map_err(|_| Error::Store(format!("catalog item id {id} out of range")))
                    })
                    .transpose()?;
                Ok((id, weight))
            })
            .collect()
    }

    /// How many interactions are stored.
    pub fn interaction_count(&self) -> Result<usize> {
        let n: i64 = self.with_reader(|conn| {
            Ok(conn.query_row("SELECT COUNT(*) FROM interactions", [], |r| r.get(0))?)
        })?;
        usize::try_from(n).map_err(|_| Error::Store(format!("invalid interaction count {n}")))
    }

    /// Deletes every interaction. Returns how many were deleted.
    #[cfg(test)]
    pub fn clear_interactions(&self) -> Result<usize> {
        self.with_writer(|tx| {
            let n = tx.execute("DELETE FROM interactions", [])?;
            super::ranking::bump_history_version(tx)?;
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name() {
        assert_eq!(
            InteractionKind::from_name("like").unwrap(),
            InteractionKind::Like
        );
        for bad in ["poke", "", "LIKE", "weighted"] {
            let err = InteractionKind::from_name(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err}");
        }
    }
    use fedmr_test_support::TempDir;

    fn new(key: &str, kind: InteractionKind, ts: i64) -> Interaction {
        Interaction {
            item_key: key.into(),
            kind,
            timestamp_ms: ts,
        }
    }

    fn open(tag: &str) -> (TempDir, Store) {
        let dir = TempDir::new(tag);
        let store = Store::open(&dir.db()).unwrap();
        (dir, store)
    }

    #[test]
    fn record_inserts_and_counts() {
        let (_dir, store) = open("int-record");
        let batch = [
            new("a", InteractionKind::View, 10),
            new("b", InteractionKind::Click, 20),
            new("c", InteractionKind::Purchase, 30),
        ];
        assert_eq!(store.record_batch(&batch, 100).unwrap(), 3);
        assert_eq!(store.interaction_count().unwrap(), 3);
        assert_eq!(store.record_batch(&batch[..1], 100).unwrap(), 1);
        assert_eq!(store.interaction_count().unwrap(), 4);
        assert_eq!(store.record_batch(&[], 100).unwrap(), 0);
        assert_eq!(store.interaction_count().unwrap(), 4);
    }

    #[test]
    fn every_kind_round_trips_through_the_table() {
        let (_dir, store) = open("int-kinds");
        let kinds = [
            InteractionKind::View,
            InteractionKind::Click,
            InteractionKind::Like,
            InteractionKind::Purchase,
            InteractionKind::Dislike,
            InteractionKind::Weighted(0.3),
            InteractionKind::Weighted(-1.5),
        ];
        let batch: Vec<_> = kinds
            .iter()
            .enumerate()
            .map(|(i, &k)| new(&format!("item{i}"), k, i as i64))
            .collect();
        store.record_batch(&batch, 100).unwrap();
        let stored = store.interactions(100).unwrap();
        assert_eq!(stored.len(), kinds.len());
        for ((s, n), &k) in stored.iter().zip(&batch).zip(&kinds) {
            assert_eq!(s.kind, k);
            assert_eq!(s.weight, k.weight());
            assert_eq!(s.item_key, n.item_key);
            assert_eq!(s.timestamp_ms, n.timestamp_ms);
        }
        for k in kinds {
            assert_eq!(InteractionKind::parse(k.as_str(), k.weight()), Some(k));
        }
        assert_eq!(InteractionKind::parse("poke", 1.0), None);
    }

    #[test]
    fn default_weights_are_as_documented() {
        let w: Vec<f32> = [
            InteractionKind::View,
            InteractionKind::Click,
            InteractionKind::Like,
            InteractionKind::Purchase,
            InteractionKind::Dislike,
        ]
        .iter()
        .map(|k| k.weight())
        .collect();
        assert_eq!(w, [1.0, 2.0, 4.0, 8.0, -4.0]);
    }

    #[test]
    fn each_bad_entry_is_rejected_with_its_index_and_nothing_written() {
        let (_dir, store) = open("int-bad");
        store
            .record_batch(&[new("seed", InteractionKind::View, 1)], 100)
            .unwrap();
        let long_key = "k".repeat(MAX_ITEM_KEY_BYTES + 1);
        let bad = [
            new("", InteractionKind::View, 5),
            new(" \t\n", InteractionKind::View, 5),
            new("x", InteractionKind::Weighted(f32::NAN), 5),
            new("x", InteractionKind::Weighted(f32::INFINITY), 5),
            new("x", InteractionKind::Weighted(f32::NEG_INFINITY), 5),
            new("x", InteractionKind::View, -1),
            new(&long_key, InteractionKind::View, 5),
        ];
        for b in bad {
            // The bad entry sits in the middle of otherwise valid ones.
            let batch = [
                new("ok1", InteractionKind::Like, 2),
                b.clone(),
                new("ok2", InteractionKind::Like, 3),
            ];
            match store.record_batch(&batch, 100) {
                Err(Error::InvalidInteraction { index, reason }) => {
                    assert_eq!(index, 1, "{b:?}: {reason}");
                }
                other => panic!("{b:?} gave {other:?}"),
            }
            assert_eq!(store.interaction_count().unwrap(), 1, "{b:?}");
        }
        // Exactly at the limit is fine.
        let max_key = "k".repeat(MAX_ITEM_KEY_BYTES);
        store
            .record_batch(&[new(&max_key, InteractionKind::View, 0)], 100)
            .unwrap();
        assert_eq!(store.interaction_count().unwrap(), 2);
    }

    #[test]
    fn zero_retention_cap_is_rejected() {
        let (_dir, store) = open("int-cap0");
        let result = store.record_batch(&[new("a", InteractionKind::View, 1)], 0);
        assert!(matches!(result, Err(Error::InvalidConfig(_))));
        assert_eq!(store.interaction_count().unwrap(), 0);
    }

    #[test]
    fn retention_keeps_the_newest_by_timestamp_then_id() {
        let (_dir, store) = open("int-retention");
        // Out of timestamp order across batches, with a tie at ts=50.
        store
            .record_batch(
                &[
                    new("t50-first", InteractionKind::View, 50),
                    new("t90", InteractionKind::View, 90),
                    new("t10", InteractionKind::View, 10),
                ],
                10,
            )
            .unwrap();
        store
            .record_batch(
                &[
                    new("t30", InteractionKind::View, 30),
                    new("t50-second", InteractionKind::View, 50),
                    new("t70", InteractionKind::View, 70),
                ],
                3,
            )
            .unwrap();
        assert_eq!(store.interaction_count().unwrap(), 3);
        let keys: Vec<_> = store
            .interactions(10)
            .unwrap()
            .into_iter()
            .map(|i| i.item_key)
            .collect();
        assert_eq!(keys, ["t50-second", "t70", "t90"]);
    }

    #[test]
    fn interactions_returns_newest_limit_oldest_first() {
        let (_dir, store) = open("int-limit");
        let batch: Vec<_> = [40, 10, 30, 20]
            .iter()
            .map(|&ts| new(&format!("t{ts}"), InteractionKind::Click, ts))
            .collect();
        store.record_batch(&batch, 100).unwrap();
        let ts: Vec<_> = store
            .interactions(3)
            .unwrap()
            .iter()
            .map(|i| i.timestamp_ms)
            .collect();
        assert_eq!(ts, [20, 30, 40]);
        assert!(store.interactions(0).unwrap().is_empty());
    }

    #[test]
    fn clear_interactions_empties_the_table() {
        let (_dir, store) = open("int-clear");
        store
            .record_batch(
                &[
                    new("a", InteractionKind::View, 1),
                    new("b", InteractionKind::View, 2),
                ],
                100,
            )
            .unwrap();
        assert_eq!(store.clear_interactions().unwrap(), 2);
        assert_eq!(store.interaction_count().unwrap(), 0);
    }
}
