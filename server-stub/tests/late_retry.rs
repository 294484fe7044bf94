//! A phone whose acknowledgement was lost retries; if its round closed in
//! the meantime (its update may have been the one that closed it), the
//! server says it was counted (200 duplicate) instead of 409 stale, which
//! would leave the phone unable to tell whether its work counted. Also
//! after a restart.

mod common;

use common::*;
use fedmr_server::rounds::Accepted;
use fedmr_server::{ServerConfig, ServerError};

#[test]
fn a_retry_after_its_round_closed_is_told_it_counted() {
    let dir = TempDir::new("late-retry");
    let config = || {
        let mut c = ServerConfig::new(&dir.0, ADMIN);
        c.min_updates = 2;
        c
    };
    let core = open_core(config());
    let first = update_for(&core, "a-1").encode();
    let closing = update_for(&core, "b-1").encode();
    assert!(matches!(
        core.submit("a", &first),
        Ok(Accepted::New {
            round_closed: false
        })
    ));
    assert!(matches!(
        core.submit("b", &closing),
        Ok(Accepted::New { round_closed: true })
    ));
    assert_eq!(core.snapshot().version, 2);
    let model = core.snapshot().model.etag.clone();
    // b never saw its 202 and sends the same update again.
    assert_eq!(core.submit("b", &closing).unwrap(), Accepted::Duplicate);
    // Another key from the same client, or a client that was not in the
    // round, is stale: nothing of theirs was counted.
    let mut other = update_for(&core, "x").clone();
    other.round = 1;
    other.base_version = 1;
    other.idempotency_key = "b-2".into();
    assert!(matches!(
        core.submit("b", &other.encode()),
        Err(ServerError::Stale(_))
    ));
    other.idempotency_key = "c-1".into();
    assert!(matches!(
        core.submit("c", &other.encode()),
        Err(ServerError::Stale(_))
    ));
    assert_eq!(core.snapshot().model.etag, model, "nothing changed");
    assert_eq!(core.round_message().accepted, 0);

    drop(core);
    let core = open_core(config());
    assert_eq!(
        core.submit("a", &first).unwrap(),
        Accepted::Duplicate,
        "after a restart too"
    );
    assert_eq!(core.round_message().accepted, 0);
}
