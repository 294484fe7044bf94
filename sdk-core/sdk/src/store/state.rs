//! Singleton state: the server's global model as last downloaded,
//! the user's private model state, and erasing the user's data (forget-me).

use rusqlite::{OptionalExtension, params};

use super::db::{get_u64, now_ms, u64_to_sql};
use super::outbox::{self, NewUpdate};
use super::{Store, model_file};
use crate::{Error, Result};

/// The global model as last downloaded; `payload` is opaque to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRecord {
    pub version: u64,
    pub payload: Vec<u8>,
}

impl Store {
    /// Replaces the stored global model; `digest` is its body digest. The
    /// model is written once, as a file (`model_file`), referenced in the
    /// same transaction; the file it replaces goes after the commit.
    pub fn put_model(&self, version: u64, digest: &[u8; 32], payload: &[u8]) -> Result<()> {
        let sql_version = u64_to_sql(version, "model version")?;
        let name = model_file::tag(version, digest);
        let replaced = self.with_writer(|tx| {
            let replaced = model_file_name(tx)?;
            model_file::write(&model_file::path(&self.path, &name), payload)?;
            tx.execute(
                "INSERT OR REPLACE INTO model_meta (id, version, digest, payload, file)
                 VALUES (1, ?1, ?2, x'', ?3)",
                params![sql_version, digest, name],
            )?;
            Ok(replaced)
        })?;
        if let Some(old) = replaced.filter(|old| *old != name) {
            model_file::remove(&self.path, &old);
        }
        Ok(())
    }

    /// The stored global model, if one was ever downloaded.
    pub fn model(&self) -> Result<Option<ModelRecord>> {
        let row = self.with_reader(|conn| {
            Ok(conn
                .query_row(
                    "SELECT version, payload, file FROM model_meta WHERE id = 1",
                    [],
                    |r| {
                        Ok((
                            get_u64(r, 0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, Option<String>>(2)?,
                        ))
                    },
                )
                .optional()?)
        })?;
        let Some((version, payload, file)) = row else {
            return Ok(None);
        };
        let payload = match file {
            Some(name) => model_file::read(&self.path, &name)?,
            // Stored before models became files (schema 4 and earlier).
            None => payload,
        };
        Ok(Some(ModelRecord { version, payload }))
    }

    /// The stored model's version and body digest, without reading the model.
    pub fn model_header(&self) -> Result<Option<(u64, [u8; 32])>> {
        let row = self.with_reader(|conn| {
            Ok(conn
                .query_row(
                    "SELECT version, digest FROM model_meta WHERE id = 1",
                    [],
                    |r| Ok((get_u64(r, 0)?, r.get::<_, Option<Vec<u8>>>(1)?)),
                )
                .optional()?)
        })?;
        let Some((version, digest)) = row else {
            return Ok(None);
        };
        let digest = digest
            .and_then(|d| <[u8; 32]>::try_from(d).ok())
            .ok_or_else(|| Error::Store("the stored model has no valid digest".into()))?;
        Ok(Some((version, digest)))
    }

    /// Replaces the user's private state (the parts of the model that never
    /// leave the device).
    #[cfg(test)]
    pub fn put_private_state(&self, payload: &[u8]) -> Result<()> {
        self.with_writer(|tx| write_private_state(tx, payload))
    }

    /// The user's private state, if training ever ran.
    pub fn private_state(&self) -> Result<Option<Vec<u8>>> {
        self.with_reader(|conn| {
            Ok(conn
                .query_row("SELECT payload FROM private_state WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()?)
        })
    }

    /// Stores a training round's result: the new private state and the update
    /// to upload, in ONE transaction, so they land together or not at all
    /// (a crash can never leave a state whose update was lost, or vice versa).
    /// A duplicate idempotency key fails the whole call.
    /// `noise_to_sensitivity` is the local-DP noise of the update (0 without
    /// DP), entered in the privacy ledger in the same transaction.
    ///
    /// `expected` is the stored state the round started from: if another
    /// round committed since, the call fails with [`Error::Busy`] and writes
    /// nothing (the writer transaction is IMMEDIATE, so the check and the
    /// write are one step for every connection and process). An update of
    /// the same base version still waiting in the outbox, and not yet in a
    /// secure round, is replaced: the newest work is what gets sent.
    pub fn put_private_state_and_update(
        &self,
        expected: Option<&[u8]>,
        state_payload: &[u8],
        update: &NewUpdate<'_>,
        noise_to_sensitivity: f64,
    ) -> Result<()> {
        let round = u64_to_sql(update.round, "round")?;
        let base_version = u64_to_sql(update.base_version, "base version")?;
        self.with_writer(|tx| {
            let current: Option<Vec<u8>> = tx
                .query_row("SELECT payload FROM private_state WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()?;
            if current.as_deref() != expected {
                return Err(Error::Busy(
                    "another training of this store committed while this one ran; \
                     nothing was written"
                        .into(),
                ));
            }
            write_private_state(tx, state_payload)?;
            // (A reused key is left for the insert to refuse.)
            tx.execute(
                "DELETE FROM outbox WHERE base_version = ?1 AND idempotency_key != ?2
                   AND idempotency_key NOT IN (SELECT idempotency_key FROM secagg_rounds)",
                params![base_version, update.idempotency_key],
            )?;
            outbox::insert(tx, update)?;
            tx.execute(
                "INSERT INTO privacy_ledger (round, noise_to_sensitivity) VALUES (?1, ?2)",
                params![round, noise_to_sensitivity],
            )?;
            Ok(())
        })
    }

    /// The noise of every round trained so far (see `put_private_state_and_update`).
    pub fn privacy_ledger(&self) -> Result<Vec<f64>> {
        self.with_reader(|conn| {
            let mut stmt =
                conn.prepare("SELECT noise_to_sensitivity FROM privacy_ledger ORDER BY id")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<f64>>>()?)
        })
    }

    /// Forget-me: deletes the user's interactions, private state and queued
    /// updates in one transaction, then vacuums so no copy lingers in free
    /// pages or the WAL. The server's catalog and model are kept.
    pub fn erase_user_data(&self) -> Result<()> {
        self.with_writer(|tx| {
            tx.execute_batch(
                "DELETE FROM interactions;
                 DELETE FROM private_state;
                 DELETE FROM outbox;
                 DELETE FROM secagg_rounds;
                 DELETE FROM privacy_ledger;",
            )?;
            super::ranking::bump_history_version(tx)?;
            super::ranking::delete_rankings(tx)?;
            Ok(())
        })?;
        self.vacuum()
    }
}

/// The tag of the model file `model_meta` references, if any.
pub(super) fn model_file_name(conn: &rusqlite::Connection) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT file FROM model_meta WHERE id = 1", [], |r| {
            r.get::<_, Option<String>>(0)
        })
        .optional()?
        .flatten())
}

/// At open, under the write lock (no writer is between writing a model file
/// and referencing it): removes model files nobody references, and forgets
/// a model whose file is gone (a database copied or restored without it),
/// so the next sync downloads it again instead of `If-None-Match` keeping
/// a model that cannot be read.
pub(super) fn check_model_file(
    conn: &rusqlite::Connection,
    db_path: &std::path::Path,
) -> Result<()> {
    let mut referenced = model_file_name(conn)?;
    if let Some(tag) = referenced.as_deref()
        && !model_file::exists(db_path, tag)
    {
        conn.execute("DELETE FROM model_meta", [])?;
        super::ranking::delete_rankings(conn)?;
        referenced = None;
    }
    model_file::remove_others(db_path, referenced.as_deref());
    Ok(())
}

fn write_private_state(conn: &rusqlite::Connection, payload: &[u8]) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO private_state (id, payload, updated_ms) VALUES (1, ?1, ?2)",
        params![payload, now_ms()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::interaction::{Interaction, InteractionKind};
    use fedmr_test_support::TempDir;

    fn open(tag: &str) -> (TempDir, Store) {
        let dir = TempDir::new(tag);
        let store = Store::open(&dir.db()).unwrap();
        (dir, store)
    }

    fn update<'a>(key: &'a str, payload: &'a [u8]) -> NewUpdate<'a> {
        NewUpdate {
            idempotency_key: key,
            round: 1,
            base_version: 1,
            payload,
        }
    }

    #[test]
    fn model_put_get_replace() {
        let (_dir, store) = open("state-model");
        assert_eq!(store.model().unwrap(), None);
        store.put_model(3, &[3; 32], b"m3").unwrap();
        store.put_model(4, &[4; 32], b"m4").unwrap();
        let want = ModelRecord {
            version: 4,
            payload: b"m4".to_vec(),
        };
        assert_eq!(store.model().unwrap(), Some(want));
        assert_eq!(store.model_header().unwrap(), Some((4, [4; 32])));
    }

    /// Model files beside the database: `<db>.model-*`.
    fn model_files(dir: &TempDir) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&dir.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".model-"))
            .collect();
        names.sort();
        names
    }

    /// The model is written once, as a file; the database keeps a reference
    /// (its blob stays empty, so the WAL never carries the model).
    #[test]
    fn the_model_is_a_file_replaced_whole() {
        let (dir, store) = open("state-model-file");
        store.put_model(3, &[3; 32], b"m3").unwrap();
        let first = model_files(&dir);
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(std::fs::read(dir.0.join(&first[0])).unwrap(), b"m3");
        let blob: i64 = store
            .with_reader(|c| {
                Ok(c.query_row("SELECT length(payload) FROM model_meta", [], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(blob, 0);

        store.put_model(4, &[4; 32], b"m4").unwrap();
        let second = model_files(&dir);
        assert_eq!(second.len(), 1, "the replaced file goes: {second:?}");
        assert_ne!(second, first);
        assert_eq!(store.model().unwrap().unwrap().payload, b"m4");

        // A file the database does not reference (a crash between the
        // rename and the commit, or a temporary file) goes at the next open.
        std::fs::write(dir.0.join("fedmr.sqlite.model-9-00"), b"x").unwrap();
        let orphan_tmp = dir.0.join(format!("{}.tmp", second[0]));
        std::fs::write(&orphan_tmp, b"y").unwrap();
        drop(store);
        let store = Store::open(&dir.db()).unwrap();
        assert_eq!(model_files(&dir), second);
        assert_eq!(store.model().unwrap().unwrap().payload, b"m4");

        // A new catalog drops the model and its file.
        store
            .install_catalog(
                &super::super::catalog::tests::small_catalog(2),
                [2; 32],
                true,
            )
            .unwrap();
        assert_eq!(store.model().unwrap(), None);
        assert!(model_files(&dir).is_empty());
    }

    /// A database moved with its model file under another name keeps its
    /// model; one copied without it forgets the model (the next sync
    /// downloads it again) rather than keep a reference nothing can read.
    #[test]
    fn the_model_file_travels_with_the_database() {
        let (dir, store) = open("state-model-move");
        store.put_model(3, &[3; 32], b"m3").unwrap();
        drop(store);
        let moved = dir.0.join("moved.sqlite");
        std::fs::rename(dir.db(), &moved).unwrap();
        for name in model_files(&dir) {
            let to = name.replace("fedmr.sqlite", "moved.sqlite");
            std::fs::rename(dir.0.join(&name), dir.0.join(to)).unwrap();
        }
        let store = Store::open(&moved).unwrap();
        assert_eq!(store.model().unwrap().unwrap().payload, b"m3");
        drop(store);

        let copied = dir.0.join("copied.sqlite");
        std::fs::copy(&moved, &copied).unwrap();
        let store = Store::open(&copied).unwrap();
        assert_eq!(store.model_header().unwrap(), None);
        assert_eq!(store.model().unwrap(), None);
    }

    /// A model stored as a blob before models became files still reads.
    #[test]
    fn a_model_stored_as_a_blob_still_reads() {
        let (_dir, store) = open("state-model-blob");
        store
            .with_writer(|tx| {
                tx.execute(
                    "INSERT INTO model_meta (id, version, digest, payload) VALUES (1, 2, ?1, x'6d32')",
                    [[2u8; 32]],
                )?;
                Ok(())
            })
            .unwrap();
        assert_eq!(store.model().unwrap().unwrap().payload, b"m2");
        assert_eq!(store.model_header().unwrap(), Some((2, [2; 32])));
    }

    /// A model file removed behind a reader's back is reported as busy
    /// (retry), not as a damaged store.
    #[test]
    fn a_missing_model_file_asks_for_a_retry() {
        let (dir, store) = open("state-model-gone");
        store.put_model(3, &[3; 32], b"m3").unwrap();
        for name in model_files(&dir) {
            std::fs::remove_file(dir.0.join(name)).unwrap();
        }
        assert!(matches!(store.model(), Err(Error::Busy(_))));
    }

    #[test]
    fn private_state_put_get_replace() {
        let (_dir, store) = open("state-private");
        assert_eq!(store.private_state().unwrap(), None);
        store.put_private_state(b"s1").unwrap();
        store.put_private_state(b"s2").unwrap();
        assert_eq!(store.private_state().unwrap(), Some(b"s2".to_vec()));
    }

    #[test]
    fn state_and_update_land_together() {
        let (_dir, store) = open("state-both");
        store
            .put_private_state_and_update(None, b"state", &update("r1", b"delta"), 0.0)
            .unwrap();
        assert_eq!(store.private_state().unwrap(), Some(b"state".to_vec()));
        let pending = store.pending_updates().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].idempotency_key, "r1");
        assert_eq!(pending[0].payload, b"delta");
    }

    #[test]
    fn duplicate_update_key_leaves_state_and_outbox_unchanged() {
        let (_dir, store) = open("state-atomic");
        store
            .put_private_state_and_update(None, b"old-state", &update("r1", b"delta1"), 2.0)
            .unwrap();
        let outbox_before = store.pending_updates().unwrap();

        let result = store.put_private_state_and_update(
            Some(b"old-state"),
            b"new-state",
            &update("r1", b"delta2"),
            3.0,
        );
        assert!(matches!(result, Err(Error::Store(_))), "{result:?}");
        assert_eq!(store.private_state().unwrap(), Some(b"old-state".to_vec()));
        assert_eq!(store.pending_updates().unwrap(), outbox_before);
        assert_eq!(store.privacy_ledger().unwrap(), vec![2.0]);
    }

    #[test]
    fn a_round_that_started_before_another_committed_is_refused() {
        let (_dir, store) = open("state-busy");
        store
            .put_private_state_and_update(None, b"s1", &update("r1", b"d1"), 0.0)
            .unwrap();
        // A second round that also started from "no state" lost the race.
        let late = store.put_private_state_and_update(None, b"s1'", &update("r2", b"d2"), 0.0);
        assert!(matches!(late, Err(Error::Busy(_))), "{late:?}");
        assert_eq!(store.private_state().unwrap(), Some(b"s1".to_vec()));
        assert_eq!(store.pending_updates().unwrap().len(), 1);
        assert_eq!(store.privacy_ledger().unwrap(), vec![0.0]);
    }

    #[test]
    fn the_newest_update_of_a_version_replaces_the_unsent_one() {
        let (_dir, store) = open("state-newest");
        let on = |key, version| NewUpdate {
            idempotency_key: key,
            round: version,
            base_version: version,
            payload: b"d",
        };
        store
            .put_private_state_and_update(None, b"s1", &on("a", 1), 0.0)
            .unwrap();
        store
            .put_private_state_and_update(Some(b"s1"), b"s2", &on("b", 1), 0.0)
            .unwrap();
        let keys = |store: &Store| -> Vec<String> {
            let pending = store.pending_updates().unwrap();
            pending.into_iter().map(|u| u.idempotency_key).collect()
        };
        assert_eq!(keys(&store), ["b"], "b replaced a (same version, not sent)");
        // Another version queues beside it; one already in a secure round stays.
        store.put_secure_round("b", 1, b"secret").unwrap();
        store
            .put_private_state_and_update(Some(b"s2"), b"s3", &on("c", 2), 0.0)
            .unwrap();
        store
            .put_private_state_and_update(Some(b"s3"), b"s4", &on("d", 1), 0.0)
            .unwrap();
        assert_eq!(keys(&store), ["b", "c", "d"]);
    }

    #[test]
    fn erase_user_data_keeps_catalog_and_model() {
        let (dir, store) = open("state-erase");
        let catalog = crate::store::catalog::tests::small_catalog(1);
        store.install_catalog(&catalog, [1; 32], false).unwrap();
        store.put_model(1, &[1; 32], b"model").unwrap();
        let secret = "very-private-item-key";
        let batch: Vec<_> = (0..200)
            .map(|i| Interaction {
                item_key: format!("{secret}-{i}"),
                kind: InteractionKind::Like,
                timestamp_ms: i,
            })
            .collect();
        store.record_batch(&batch, 1000).unwrap();
        store
            .put_private_state_and_update(None, b"state", &update("r1", b"delta"), 0.0)
            .unwrap();

        store.erase_user_data().unwrap();

        assert_eq!(store.interaction_count().unwrap(), 0);
        assert_eq!(store.private_state().unwrap(), None);
        assert!(store.pending_updates().unwrap().is_empty());
        assert!(store.privacy_ledger().unwrap().is_empty());
        assert_eq!(store.catalog_meta().unwrap().unwrap().version, 1);
        assert_eq!(store.catalog_keys().unwrap().len(), catalog.items.len());
        assert_eq!(store.model().unwrap().unwrap().payload, b"model");
        assert!(store.integrity_check().unwrap());

        // Vacuum + WAL truncation: the erased keys are in neither file.
        for name in ["store.sqlite", "store.sqlite-wal"] {
            let path = dir.path().join(name);
            let bytes = std::fs::read(&path).unwrap_or_default();
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{name} still holds erased data");
        }
    }
}
