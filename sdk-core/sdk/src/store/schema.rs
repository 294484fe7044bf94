//! The device store's schema: its migration steps, run by `fedmr_sqlite`
//! (keyed by `PRAGMA user_version`). A new schema version appends one step
//! and bumps `SCHEMA_VERSION`.

use fedmr_sqlite::Step;
use rusqlite::{Connection, Transaction};

use crate::{Error, Result};

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = 5;

/// Ordered migration steps; index `i` migrates from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[Step] = &[v0_to_v1, v1_to_v2, v2_to_v3, v3_to_v4, v4_to_v5];

const _: () = assert!(MIGRATIONS.len() == SCHEMA_VERSION as usize);

/// Brings the database up to `SCHEMA_VERSION` inside the caller's transaction.
///
/// A file from a newer build is refused with `SchemaTooNew` before anything
/// is written, so downgrading the app never corrupts a user's data.
pub fn migrate(tx: &Transaction<'_>) -> Result<()> {
    fedmr_sqlite::migrate(tx, MIGRATIONS)
        .map(|_| ())
        .map_err(Error::from)
}

/// Version 1: interactions, catalog/model/private-state singletons, outbox.
///
/// The singleton tables use `CHECK (id = 1)` so there is never more than one
/// catalog, model or private state; payloads are opaque blobs for now.
fn v0_to_v1(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE interactions (
             id INTEGER PRIMARY KEY,
             item_key TEXT NOT NULL CHECK (length(item_key) > 0),
             kind TEXT NOT NULL,
             weight REAL NOT NULL,
             timestamp_ms INTEGER NOT NULL
         );
         CREATE INDEX interactions_timestamp ON interactions (timestamp_ms);
         CREATE INDEX interactions_item_key ON interactions (item_key);

         CREATE TABLE catalog_meta (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             version INTEGER NOT NULL,
             sha256 BLOB NOT NULL CHECK (length(sha256) = 32),
             payload BLOB NOT NULL
         );

         CREATE TABLE model_meta (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             version INTEGER NOT NULL,
             payload BLOB NOT NULL
         );

         CREATE TABLE private_state (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             payload BLOB NOT NULL,
             updated_ms INTEGER NOT NULL
         );

         CREATE TABLE outbox (
             id INTEGER PRIMARY KEY,
             idempotency_key TEXT NOT NULL UNIQUE,
             round INTEGER NOT NULL,
             base_version INTEGER NOT NULL,
             payload BLOB NOT NULL,
             created_ms INTEGER NOT NULL
         );",
    )
}

/// Version 2: catalog items in their own table, one row per item with its
/// key and f16 features, so training reads only the rows it touches and a
/// 100k-item catalog never has to sit in memory. `catalog_meta.payload`
/// now holds the encoded modality list. Version-1 catalog and model blobs
/// had no defined format, so they are dropped (the next sync re-downloads).
fn v1_to_v2(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "DELETE FROM catalog_meta;
         DELETE FROM model_meta;
         CREATE TABLE catalog_items (
             id INTEGER PRIMARY KEY,
             item_key TEXT NOT NULL UNIQUE,
             features BLOB NOT NULL
         );",
    )
}

/// Version 3: the privacy ledger, one row per trained round with the noise
/// its upload carried (standard deviation over the mechanism's sensitivity;
/// 0 for a round without local DP), from which the SDK reports the
/// (epsilon, delta) the user has spent. Came with wire protocol 2, whose
/// model message no protocol-1 blob can be read as: the stored model goes
/// (the next sync downloads the current one), so an upgraded app still opens.
fn v2_to_v3(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "DELETE FROM model_meta;
         CREATE TABLE privacy_ledger (
             id INTEGER PRIMARY KEY,
             round INTEGER NOT NULL,
             noise_to_sensitivity REAL NOT NULL CHECK (noise_to_sensitivity >= 0)
         );",
    )
}

/// Version 4: secure aggregation's per-round state (the round's secrets,
/// the roster, the shares held for neighbours), one row per queued update
/// that is going through the protocol, deleted with it. Came with wire
/// protocol 3: the stored protocol-2 model goes as in version 3.
fn v3_to_v4(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "DELETE FROM model_meta;
         CREATE TABLE secagg_rounds (
             idempotency_key TEXT PRIMARY KEY,
             round INTEGER NOT NULL,
             state BLOB NOT NULL
         );",
    )
}

/// Version 5: what lets a client open without reading its model, and rank
/// right after an app start without scoring the catalog.
/// - `model_meta.digest`: the model's body digest (what `sync` sends as
///   If-None-Match), so opening reads 32 bytes instead of the 26 MB model;
///   copied from the stored message's frame (bytes 16..48).
/// - `model_meta.file`: the model is a file beside the database, written
///   once (`model_file`), and `payload` is empty; a model stored before
///   keeps its blob (`file` NULL) until the next one replaces it.
/// - `history_version`: bumped by every write to `interactions`, the tag of
///   what the ranking derived from the history.
/// - `ranking_scores` / `ranking_context`: every item's scores and the
///   history-dependent part of ranking (router weights, seen items), each
///   tagged with the model digest and private state it was computed from.
///   They derive from the user's data: forget-me deletes them.
fn v4_to_v5(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "ALTER TABLE model_meta ADD COLUMN digest BLOB;
         UPDATE model_meta SET digest = substr(payload, 17, 32);
         ALTER TABLE model_meta ADD COLUMN file TEXT;
         CREATE TABLE history_version (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             version INTEGER NOT NULL
         );
         INSERT INTO history_version (id, version) VALUES (1, 0);
         CREATE TABLE ranking_scores (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             model_digest BLOB NOT NULL,
             state_tag BLOB NOT NULL,
             history_version INTEGER,
             payload BLOB NOT NULL
         );
         CREATE TABLE ranking_context (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             model_digest BLOB NOT NULL,
             state_tag BLOB NOT NULL,
             history_version INTEGER NOT NULL,
             payload BLOB NOT NULL
         );",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_version(conn: &Connection) -> Result<u32> {
        fedmr_sqlite::user_version(conn).map_err(Error::from)
    }
    use crate::store::Store;
    use fedmr_test_support::TempDir;

    /// Sorted `sqlite_master` SQL, to compare schemas reached by different paths.
    fn schema_sql(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn open_creates_current_schema() {
        let dir = TempDir::new("schema-fresh");
        drop(Store::open(&dir.db()).unwrap());
        let conn = Connection::open(dir.db()).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let sql = schema_sql(&conn).join("\n");
        for table in [
            "interactions",
            "catalog_meta",
            "model_meta",
            "private_state",
            "outbox",
            "catalog_items",
            "privacy_ledger",
            "secagg_rounds",
            "history_version",
            "ranking_scores",
            "ranking_context",
        ] {
            assert!(sql.contains(&format!("CREATE TABLE {table} ")), "{table}");
        }
        assert!(sql.contains("interactions_timestamp"));
        assert!(sql.contains("interactions_item_key"));
    }

    /// Every earlier version, built by replaying the released steps, migrates
    /// to exactly the schema a fresh install gets.
    #[test]
    fn every_earlier_version_migrates_to_current() {
        let fresh = TempDir::new("schema-ref");
        drop(Store::open(&fresh.db()).unwrap());
        let want = schema_sql(&Connection::open(fresh.db()).unwrap());

        for version in 0..SCHEMA_VERSION {
            let dir = TempDir::new("schema-old");
            {
                let conn = Connection::open(dir.db()).unwrap();
                for step in &MIGRATIONS[..version as usize] {
                    step(&conn).unwrap();
                }
                conn.pragma_update(None, "user_version", version).unwrap();
            }
            let store = Store::open(&dir.db()).unwrap();
            assert!(store.integrity_check().unwrap());
            drop(store);
            let conn = Connection::open(dir.db()).unwrap();
            assert_eq!(
                user_version(&conn).unwrap(),
                SCHEMA_VERSION,
                "from v{version}"
            );
            assert_eq!(schema_sql(&conn), want, "from v{version}");
        }
    }

    /// A version-2 file with a model installed: it opens, keeps the catalog
    /// and interactions, and drops the protocol-1 model for the next sync.
    #[test]
    fn version_2_data_opens_without_its_protocol_1_model() {
        let dir = TempDir::new("schema-v2-data");
        {
            let conn = Connection::open(dir.db()).unwrap();
            v0_to_v1(&conn).unwrap();
            v1_to_v2(&conn).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute_batch(
                "INSERT INTO interactions (item_key, kind, weight, timestamp_ms)
                     VALUES ('a', 'like', 4.0, 10);
                 INSERT INTO model_meta (id, version, payload) VALUES (1, 3, x'464452400100');",
            )
            .unwrap();
        }
        let store = Store::open(&dir.db()).unwrap();
        assert_eq!(store.interaction_count().unwrap(), 1);
        assert_eq!(store.model().unwrap(), None);
        assert!(store.privacy_ledger().unwrap().is_empty());
    }

    /// A version-3 file with a model installed: it opens with its ledger,
    /// and drops the protocol-2 model for the next sync.
    #[test]
    fn version_3_data_opens_without_its_protocol_2_model() {
        let dir = TempDir::new("schema-v3-data");
        {
            let conn = Connection::open(dir.db()).unwrap();
            for step in &MIGRATIONS[..3] {
                step(&conn).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            conn.execute_batch(
                "INSERT INTO privacy_ledger (round, noise_to_sensitivity) VALUES (1, 0.5);
                 INSERT INTO model_meta (id, version, payload) VALUES (1, 3, x'464452400200');",
            )
            .unwrap();
        }
        let store = Store::open(&dir.db()).unwrap();
        assert_eq!(store.model().unwrap(), None);
        assert_eq!(store.privacy_ledger().unwrap().len(), 1);
        assert_eq!(store.secure_round_count().unwrap(), 0);
    }

    /// A version-1 file with data: the user's interactions and outbox survive
    /// the move to version 2; the format-less catalog and model blobs go.
    #[test]
    fn version_1_data_survives_migration() {
        let dir = TempDir::new("schema-v1-data");
        {
            let conn = Connection::open(dir.db()).unwrap();
            v0_to_v1(&conn).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO interactions (item_key, kind, weight, timestamp_ms)
                     VALUES ('a', 'like', 4.0, 10);
                 INSERT INTO catalog_meta (id, version, sha256, payload)
                     VALUES (1, 3, zeroblob(32), x'00');
                 INSERT INTO model_meta (id, version, payload) VALUES (1, 3, x'00');
                 INSERT INTO outbox (idempotency_key, round, base_version, payload, created_ms)
                     VALUES ('k', 1, 1, x'01', 5);",
            )
            .unwrap();
        }
        let store = Store::open(&dir.db()).unwrap();
        assert_eq!(store.interaction_count().unwrap(), 1);
        assert_eq!(store.pending_updates().unwrap().len(), 1);
        assert_eq!(store.catalog_meta().unwrap(), None);
        assert_eq!(store.model().unwrap(), None);
        assert!(store.catalog_keys().unwrap().is_empty());
    }

    #[test]
    fn zero_byte_file_is_version_zero_and_migrates() {
        let dir = TempDir::new("schema-empty");
        std::fs::File::create(dir.db()).unwrap();
        let store = Store::open(&dir.db()).unwrap();
        assert_eq!(store.interaction_count().unwrap(), 0);
        drop(store);
        let conn = Connection::open(dir.db()).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn newer_schema_is_refused_and_left_untouched() {
        let dir = TempDir::new("schema-new");
        let newer = SCHEMA_VERSION + 1;
        {
            let conn = Connection::open(dir.db()).unwrap();
            conn.execute_batch("CREATE TABLE future (x INTEGER);")
                .unwrap();
            conn.pragma_update(None, "user_version", newer).unwrap();
        }
        let before = schema_sql(&Connection::open(dir.db()).unwrap());

        match Store::open(&dir.db()) {
            Err(Error::SchemaTooNew { found, supported }) => {
                assert_eq!((found, supported), (newer, SCHEMA_VERSION));
            }
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("a newer schema must be refused"),
        }

        let conn = Connection::open(dir.db()).unwrap();
        assert_eq!(user_version(&conn).unwrap(), newer);
        assert_eq!(schema_sql(&conn), before);
    }

    #[test]
    fn migrate_is_a_no_op_at_current_version() {
        let dir = TempDir::new("schema-noop");
        drop(Store::open(&dir.db()).unwrap());
        let mut conn = Connection::open(dir.db()).unwrap();
        let before = schema_sql(&conn);
        let tx = conn.transaction().unwrap();
        migrate(&tx).unwrap();
        tx.commit().unwrap();
        assert_eq!(schema_sql(&conn), before);
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
    }
}
