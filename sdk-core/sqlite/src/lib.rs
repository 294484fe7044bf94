//! What the device store and the server do alike with SQLite: versioned
//! schema migrations keyed by `PRAGMA user_version`.
//!
//! `steps[i]` takes a database from version `i` to `i + 1`; a new schema
//! version appends one step. Steps never change once released, so every
//! older file can still be brought up, and a file from a newer build is
//! refused before anything is written.

use rusqlite::{Connection, Transaction};

/// One migration step.
pub type Step = fn(&Connection) -> rusqlite::Result<()>;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The file was written by a newer build; nothing was touched.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    TooNew { found: u32, supported: u32 },
    #[error("invalid schema version {0}")]
    Invalid(i64),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Brings the database up to version `steps.len()` inside the caller's
/// transaction; returns the version it found.
pub fn migrate(tx: &Transaction<'_>, steps: &[Step]) -> Result<u32, MigrateError> {
    let supported = steps.len() as u32;
    let found = user_version(tx)?;
    if found > supported {
        return Err(MigrateError::TooNew { found, supported });
    }
    for step in &steps[found as usize..] {
        step(tx)?;
    }
    if found != supported {
        tx.pragma_update(None, "user_version", supported)?;
    }
    Ok(found)
}

/// Reads `PRAGMA user_version`; SQLite stores it as a signed 32-bit integer.
pub fn user_version(conn: &Connection) -> Result<u32, MigrateError> {
    let raw: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    u32::try_from(raw).map_err(|_| MigrateError::Invalid(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_a(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("CREATE TABLE a (x INTEGER)")
    }
    fn table_b(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("CREATE TABLE b (y INTEGER)")
    }

    #[test]
    fn runs_only_the_missing_steps_and_refuses_newer_files() {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        assert_eq!(migrate(&tx, &[table_a]).unwrap(), 0);
        tx.commit().unwrap();
        let tx = conn.transaction().unwrap();
        // Step 0 would fail if it ran again (table a exists).
        assert_eq!(migrate(&tx, &[table_a, table_b]).unwrap(), 1);
        tx.commit().unwrap();
        assert_eq!(user_version(&conn).unwrap(), 2);
        let tx = conn.transaction().unwrap();
        assert!(matches!(
            migrate(&tx, &[table_a]),
            Err(MigrateError::TooNew {
                found: 2,
                supported: 1
            })
        ));
    }

    #[test]
    fn a_negative_version_is_invalid() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", -1).unwrap();
        assert!(matches!(
            user_version(&conn),
            Err(MigrateError::Invalid(-1))
        ));
    }
}
