//! The smaller rules a hostile client or a careless operator meets: the
//! admin token cannot be empty, the `Bearer` scheme is case-insensitive
//! (RFC 7235), and an idempotency key has a length limit.

mod common;

use common::*;
use fedmr_core::wire::MAX_IDEMPOTENCY_KEY_BYTES;
use fedmr_server::{RunningServer, ServerConfig};

#[test]
fn an_empty_admin_token_is_refused_at_start() {
    let dir = TempDir::new("auth-empty-admin");
    for token in ["", "   "] {
        let core = open_core(ServerConfig::new(&dir.0, token));
        let err = RunningServer::start(core, "127.0.0.1:0".parse().unwrap())
            .err()
            .expect("refused");
        assert!(err.to_string().contains("admin token is empty"), "{err}");
    }
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let dir = TempDir::new("auth-scheme");
    let server = start(&dir, |_| {});
    let token = issue(&server, "phone-1");
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = http()
            .get(format!("{}/v1/model", server.url()))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{scheme}");
    }
    let wrong_case_token = http()
        .get(format!("{}/v1/model", server.url()))
        .bearer_auth(token.to_uppercase())
        .send()
        .unwrap();
    assert_eq!(wrong_case_token.status().as_u16(), 401);
}

#[test]
fn an_over_long_idempotency_key_is_refused_and_changes_nothing() {
    let dir = TempDir::new("auth-key-length");
    let server = start(&dir, |c| c.min_updates = 10);
    let token = issue(&server, "phone-1");
    for bad in [String::new(), "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1)] {
        let before = round_state(&server);
        let (status, text) = post(&server, &token, update(&server, &bad).encode());
        assert_eq!(status, 400, "{} bytes: {text}", bad.len());
        assert!(text.contains("idempotency key"), "{text}");
        assert_eq!(round_state(&server), before);
    }
    let longest = "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES);
    assert_eq!(
        post(&server, &token, update(&server, &longest).encode()).0,
        202
    );
}
