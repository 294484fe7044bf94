//! Finite but huge: updates whose values are near f32::MAX pass every
//! finiteness check, and two of them used to overflow the aggregate into a
//! non-finite model that the server published and then could not load on
//! restart. They are refused now, and a round whose result would not be
//! finite is never published. And a declared sample count is the client's
//! word: the server decides how much an update weighs.

mod common;

use common::*;
use fedmr_core::privacy::Protection;
use fedmr_core::train::TrainConfig;
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

/// The change of item row 0 after a round of one honest update (10 samples,
/// +0.01) and one that declares `u64::MAX` samples (-1.0), on a server
/// publishing `train`.
fn row_change_with_a_huge_sample_count(tag: &str, train: TrainConfig) -> f32 {
    let dir = TempDir::new(tag);
    let server = start_training(&dir, train, |c| c.min_updates = 2);
    let before = server.core.snapshot().global.items.0.0[[0, 0]];
    let (honest_token, hostile_token) = (issue(&server, "honest"), issue(&server, "hostile"));
    let honest = update(&server, "honest-key");
    let mut hostile = update(&server, "hostile-key");
    hostile.samples = u64::MAX;
    hostile.item_rows.iter_mut().for_each(|v| *v = -1.0);
    assert_eq!(post(&server, &honest_token, honest.encode()).0, 202);
    assert_eq!(post(&server, &hostile_token, hostile.encode()).0, 202);
    let after = server.core.snapshot();
    assert_eq!(after.version, 2, "the round closed");
    after.global.items.0.0[[0, 0]] - before
}

#[test]
fn a_declared_sample_count_cannot_outweigh_everyone() {
    // Undefended: the declared count weighs at most `max_samples` (10,000):
    // (10 x 0.01 + 10,000 x -1) / 10,010. Taken at its word it would be -1.
    let capped = row_change_with_a_huge_sample_count("hostile-samples", TrainConfig::default());
    let want = (10.0 * 0.01 - 10_000.0) / 10_010.0;
    assert!((capped - want).abs() < 1e-4, "{capped} vs {want}");
    assert!(
        capped > -0.9995,
        "{capped}: the declared count was taken at its word"
    );

    // Hidden count: the server weighs every update as one, whatever it says.
    let hidden = TrainConfig {
        protection: Protection::preset("hidden-count", 1.0).unwrap(),
        ..TrainConfig::default()
    };
    let equal = row_change_with_a_huge_sample_count("hostile-samples-hidden", hidden);
    assert!((equal - (0.01 - 1.0) / 2.0).abs() < 1e-4, "{equal}");
}
