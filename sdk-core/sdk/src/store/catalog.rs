//! The installed catalog: one row per item (id = position in the server's
//! catalog, the app's key, the f16 features of every modality), plus its
//! version, digest and modality list. Replaced as a whole, atomically.

use rusqlite::{OptionalExtension, params};

use super::Store;
use super::db::{get_u64, u64_to_sql};
use crate::{Error, Result};
use fedmr_core::codec;
use fedmr_core::wire::{CatalogMessage, ModalitySpec};

/// The installed catalog's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogMeta {
    pub version: u64,
    pub sha256: [u8; 32],
    pub modalities: Vec<ModalitySpec>,
    pub n_items: usize,
}

impl Store {
    /// Replaces the catalog with `message` (already validated) in one
    /// transaction; with `drop_model`, the installed model, which no longer
    /// fits, goes in the same transaction.
    pub fn install_catalog(
        &self,
        message: &CatalogMessage,
        sha256: [u8; 32],
        drop_model: bool,
    ) -> Result<()> {
        let version = u64_to_sql(message.version, "catalog version")?;
        let modalities = codec::encode(&message.modalities);
        let dropped = self.with_writer(|tx| {
            let dropped = if drop_model {
                super::state::model_file_name(tx)?
            } else {
                None
            };
            tx.execute("DELETE FROM catalog_items", [])?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO catalog_items (id, item_key, features) VALUES (?1, ?2, ?3)",
                )?;
                for (id, item) in message.items.iter().enumerate() {
                    insert.execute(params![id as i64, item.key, item.features_f16])?;
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO catalog_meta (id, version, sha256, payload)
                 VALUES (1, ?1, ?2, ?3)",
                params![version, sha256, modalities],
            )?;
            if drop_model {
                tx.execute("DELETE FROM model_meta", [])?;
            }
            // Item ids are the catalog's: what was ranked by them goes.
            super::ranking::delete_rankings(tx)?;
            Ok(dropped)
        })?;
        if let Some(name) = dropped {
            super::model_file::remove(&self.path, &name);
        }
        Ok(())
    }

    /// The installed catalog's header, if a catalog is installed.
    pub fn catalog_meta(&self) -> Result<Option<CatalogMeta>> {
        self.with_reader(|conn| {
            let row = conn
                .query_row(
                    // Install writes ids 0..n, so the count is the largest
                    // id + 1: one b-tree descent where COUNT(*) reads a
                    // whole index (7 ms at 100,000 items).
                    "SELECT version, sha256, payload,
                            (SELECT COALESCE(MAX(id) + 1, 0) FROM catalog_items)
                     FROM catalog_meta WHERE id = 1",
                    [],
                    |r| {
                        Ok((
                            get_u64(r, 0)?,
                            r.get::<_, [u8; 32]>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    },
                )
                .optional()?;
            let Some((version, sha256, payload, n_items)) = row else {
                return Ok(None);
            };
            Ok(Some(CatalogMeta {
                version,
                sha256,
                modalities: codec::decode(&payload, "stored catalog modalities")?,
                n_items: n_items as usize,
            }))
        })
    }

    /// The keys of `ids`, in the order given (a rowid lookup each: ranking
    /// names only the items it returns, the keys never sit in memory).
    pub fn keys_of(&self, ids: &[u32]) -> Result<Vec<String>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(KEY_OF_ID)?;
            ids.iter()
                .map(|&id| {
                    stmt.query_row([i64::from(id)], |r| r.get(0))
                        .optional()?
                        .ok_or_else(|| Error::Store(format!("catalog has no item {id}")))
                })
                .collect()
        })
    }

    /// The ids of `keys`, in the order given; `None` for a key the catalog
    /// does not have. Answered from the key's covering unique index.
    pub fn ids_of(&self, keys: &[String]) -> Result<Vec<Option<u32>>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(ID_OF_KEY)?;
            keys.iter()
                .map(|key| {
                    let id = stmt.query_row([key], |r| r.get::<_, i64>(0)).optional()?;
                    id.map(|id| {
                        u32::try_from(id)
                            .map_err(|_| Error::Store(format!("catalog item id {id} out of range")))
                    })
                    .transpose()
                })
                .collect()
        })
    }

    /// Every item key, by item id.
    #[cfg(test)]
    pub fn catalog_keys(&self) -> Result<Vec<String>> {
        let n = self.catalog_meta()?.map_or(0, |m| m.n_items);
        self.keys_of(&(0..n as u32).collect::<Vec<_>>())
    }

    /// The f16 feature bytes of `ids`, in the order given.
    pub fn feature_rows(&self, ids: &[usize]) -> Result<Vec<Vec<u8>>> {
        self.with_reader(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT features FROM catalog_items WHERE id = ?1")?;
            ids.iter()
                .map(|&id| {
                    stmt.query_row([id as i64], |r| r.get(0))
                        .optional()?
                        .ok_or_else(|| Error::Store(format!("catalog has no item {id}")))
                })
                .collect()
        })
    }

    /// Calls `f(first_id, rows)` for consecutive chunks of at most `chunk`
    /// items' feature bytes, in id order, all from one snapshot.
    pub fn for_each_feature_chunk(
        &self,
        chunk: usize,
        mut f: impl FnMut(usize, &[Vec<u8>]) -> Result<()>,
    ) -> Result<()> {
        let chunk = chunk.max(1);
        self.with_reader(|conn| {
            let mut stmt = conn.prepare("SELECT features FROM catalog_items ORDER BY id")?;
            let mut rows = stmt.query([])?;
            let mut buffer = Vec::with_capacity(chunk);
            let mut first = 0;
            while let Some(row) = rows.next()? {
                buffer.push(row.get::<_, Vec<u8>>(0)?);
                if buffer.len() == chunk {
                    f(first, &buffer)?;
                    first += buffer.len();
                    buffer.clear();
                }
            }
            if !buffer.is_empty() {
                f(first, &buffer)?;
            }
            Ok(())
        })
    }
}

/// A rowid lookup: reads the key, not the features' overflow pages.
const KEY_OF_ID: &str = "SELECT item_key FROM catalog_items WHERE id = ?1";
/// Answered from the key's covering unique index.
const ID_OF_KEY: &str = "SELECT id FROM catalog_items WHERE item_key = ?1";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use fedmr_test_support::TempDir;
    use ndarray::Array2;

    pub(crate) fn small_catalog(version: u64) -> CatalogMessage {
        let image = Array2::from_shape_fn((5, 3), |(i, j)| (i + j) as f32);
        let keys = (0..5).map(|i| format!("item-{i}")).collect();
        CatalogMessage::from_features(version, keys, &[("image", &image)]).unwrap()
    }

    #[test]
    fn keys_and_ids_are_looked_up_by_index() {
        let dir = TempDir::new("catalog-keys");
        let store = Store::open(&dir.db()).unwrap();
        // Keys whose sorted order is not the id order.
        let keys: Vec<String> = ["zeta", "alpha", "mid", "beta"].map(String::from).into();
        let image = Array2::from_shape_fn((4, 3), |(i, j)| (i * j) as f32);
        let catalog = CatalogMessage::from_features(1, keys.clone(), &[("image", &image)]).unwrap();
        store.install_catalog(&catalog, [1; 32], false).unwrap();
        let plan = |sql: &str| -> String {
            store
                .with_reader(|conn| {
                    Ok(conn.query_row(&format!("EXPLAIN QUERY PLAN {sql}"), [1], |r| r.get(3))?)
                })
                .unwrap()
        };
        assert!(
            plan(ID_OF_KEY).contains("COVERING INDEX"),
            "{}",
            plan(ID_OF_KEY)
        );
        assert!(
            plan(KEY_OF_ID).contains("INTEGER PRIMARY KEY"),
            "{}",
            plan(KEY_OF_ID)
        );
        assert_eq!(store.catalog_keys().unwrap(), keys, "by id, not by key");
        assert_eq!(store.keys_of(&[2, 0]).unwrap(), ["mid", "zeta"]);
        assert!(store.keys_of(&[4]).is_err());
        let asked: Vec<String> = ["beta", "nope", "zeta"].map(String::from).into();
        assert_eq!(store.ids_of(&asked).unwrap(), [Some(3), None, Some(0)]);
    }

    #[test]
    fn install_read_and_replace() {
        let dir = TempDir::new("catalog");
        let store = Store::open(&dir.db()).unwrap();
        assert_eq!(store.catalog_meta().unwrap(), None);
        store
            .install_catalog(&small_catalog(1), [1; 32], false)
            .unwrap();
        store.put_model(1, &[1; 32], b"model").unwrap();

        let mut v2 = small_catalog(2);
        v2.items.truncate(3);
        store.install_catalog(&v2, [2; 32], true).unwrap();
        let meta = store.catalog_meta().unwrap().unwrap();
        assert_eq!((meta.version, meta.sha256, meta.n_items), (2, [2; 32], 3));
        assert_eq!(meta.modalities, v2.modalities);
        assert_eq!(
            store.catalog_keys().unwrap(),
            ["item-0", "item-1", "item-2"]
        );
        assert_eq!(store.model().unwrap(), None, "drop_model removes the model");

        let rows = store.feature_rows(&[2, 0]).unwrap();
        assert_eq!(
            rows,
            [
                v2.items[2].features_f16.clone(),
                v2.items[0].features_f16.clone()
            ]
        );
        assert!(store.feature_rows(&[3]).is_err());

        let mut seen = Vec::new();
        store
            .for_each_feature_chunk(2, |first, rows| {
                seen.push((first, rows.len()));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, [(0, 2), (2, 1)]);
    }
}
