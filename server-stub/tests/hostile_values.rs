//! Finite but huge: updates whose values are near f32::MAX pass every
//! finiteness check, and two of them used to overflow the aggregate into a
//! non-finite model that the server published and then could not load on
//! restart. They are refused now, and a round whose result would not be
//! finite is never published.

mod common;

use common::*;
use fedmr_core::update::MAX_UPDATE_VALUE;
use fedmr_server::{RunningServer, ServerConfig};

#[test]
fn huge_finite_values_are_refused_and_the_model_stays_usable() {
    let dir = TempDir::new("hostile-values");
    let server = start(&dir, |c| c.min_updates = 2);
    let tokens = [issue(&server, "phone-1"), issue(&server, "phone-2")];
    for (i, token) in tokens.iter().enumerate() {
        let mut hostile = update(&server, &format!("huge-{i}"));
        hostile.item_rows.iter_mut().for_each(|v| *v = 3.0e38);
        let before = round_state(&server);
        let (status, text) = post(&server, token, hostile.encode());
        assert_eq!(status, 422, "{text}");
        assert!(text.contains("bound"), "{text}");
        assert_eq!(round_state(&server), before);
    }
    // Just inside the bound is accepted; honest rounds go on and the
    // published model is finite and loads again after a restart.
    let mut edge = update(&server, "edge");
    edge.dense[0] = MAX_UPDATE_VALUE;
    assert_eq!(post(&server, &tokens[0], edge.encode()).0, 202);
    assert_eq!(
        post(&server, &tokens[1], update(&server, "honest").encode()).0,
        202
    );
    let snap = server.core.snapshot();
    assert_eq!(snap.version, 2, "the round closed");
    assert!(snap.global.is_finite());
    drop(server);
    let config = ServerConfig::new(&dir.0, ADMIN);
    let again = RunningServer::start(open_core(config), "127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(again.core.snapshot().version, 2);
}
