//! A storage error while a round closes (here a trigger that refuses the
//! next model, as a full disk would) must not hang the server: the submit
//! that triggered the close gets an error, the round stays open with every
//! acknowledged update, and once storage works again the round closes.

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use fedmr_server::{ServerConfig, ServerCore};

/// `core.submit` on another thread; `None` if it has not returned in 20 s.
fn submit_within(core: &Arc<ServerCore>, client: &str, body: Vec<u8>) -> Option<bool> {
    let (tx, rx) = mpsc::channel();
    let (core, client) = (core.clone(), client.to_string());
    std::thread::spawn(move || {
        let _ = tx.send(core.submit(&client, &body).is_ok());
    });
    rx.recv_timeout(Duration::from_secs(20)).ok()
}

/// A connection whose trigger refuses the next model, as a full disk would
/// (dropping the trigger is storage working again).
fn refuse_models(db_path: &std::path::Path) -> rusqlite::Connection {
    let refuse = rusqlite::Connection::open(db_path).unwrap();
    refuse
        .execute_batch(
            "CREATE TRIGGER disk_full BEFORE INSERT ON models
             BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .unwrap();
    refuse
}

#[test]
fn a_failed_close_keeps_the_round_open_and_the_server_answering() {
    let dir = TempDir::new("storage-failure");
    let mut config = ServerConfig::new(&dir.0, ADMIN);
    config.min_updates = 2;
    let db_path = config.db_path();
    let core = Arc::new(open_core(config));

    assert_eq!(
        submit_within(&core, "a", update_for(&core, "ka").encode()),
        Some(true)
    );
    let refuse = refuse_models(&db_path);
    // The second update fills the round; storing the next model fails.
    assert_eq!(
        submit_within(&core, "b", update_for(&core, "kb").encode()),
        Some(false),
        "the submit that hit the storage error must return, with an error"
    );
    let round = core.round_message();
    assert_eq!(
        (round.base_version, round.accepted),
        (1, 2),
        "round still open, both kept"
    );
    assert_eq!(core.snapshot().version, 1);

    // Storage works again: the next update closes the round with all three.
    refuse.execute_batch("DROP TRIGGER disk_full;").unwrap();
    assert_eq!(
        submit_within(&core, "c", update_for(&core, "kc").encode()),
        Some(true)
    );
    assert_eq!(core.snapshot().version, 2);
    drop(core);
    // And a restart finds the published model, not the failed one.
    let mut config = ServerConfig::new(&dir.0, ADMIN);
    config.min_updates = 2;
    assert_eq!(open_core(config).snapshot().version, 2);
}

/// The close that failed is retried by the server itself (its deadline
/// checker), without waiting for another upload.
#[test]
fn a_failed_close_is_retried_once_storage_works() {
    let dir = TempDir::new("storage-retry");
    let mut config = ServerConfig::new(&dir.0, ADMIN);
    config.min_updates = 2;
    let db_path = config.db_path();
    let core = Arc::new(open_core(config));
    let refuse = refuse_models(&db_path);
    submit_within(&core, "a", update_for(&core, "ka").encode());
    assert_eq!(
        submit_within(&core, "b", update_for(&core, "kb").encode()),
        Some(false)
    );
    assert!(core.tick().is_err(), "storage still refuses");
    assert_eq!(core.snapshot().version, 1);
    refuse.execute_batch("DROP TRIGGER disk_full;").unwrap();
    assert!(core.tick().unwrap(), "the tick closes the full round");
    assert_eq!(core.snapshot().version, 2);
    assert_eq!(core.round_message().accepted, 0);
}
