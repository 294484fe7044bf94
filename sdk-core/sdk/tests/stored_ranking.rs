//! The ranking a client keeps between app starts (issue 16, items 2 and 3):
//! `open` reads headers only, the first `recommend` after an app start
//! reads the scores the last install or training stored, and whatever is
//! read from the store is what a full computation gives now — never a
//! ranking of an older model, state or history.

mod common;

use common::client::*;
use common::small_dataset;
use fedmr_core::model::Backbone;
use fedmr_sdk::{Client, ClientConfig, RecommendOptions, TrainOptions};

fn reopen(dir: &TempDir) -> Client {
    Client::open(ClientConfig {
        seed: Some(7),
        ..ClientConfig::new(dir.db())
    })
    .unwrap()
}

fn sql(dir: &TempDir, statement: &str) {
    rusqlite::Connection::open(dir.db())
        .unwrap()
        .execute_batch(statement)
        .unwrap();
}

fn stored_rows(dir: &TempDir) -> i64 {
    rusqlite::Connection::open(dir.db())
        .unwrap()
        .query_row(
            "SELECT (SELECT COUNT(*) FROM ranking_scores) + (SELECT COUNT(*) FROM ranking_context)",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// What a client computes with nothing stored: the reference every stored
/// ranking must equal.
fn computed_scores(dir: &TempDir) -> Vec<f32> {
    sql(
        dir,
        "DELETE FROM ranking_scores; DELETE FROM ranking_context;",
    );
    reopen(dir).scores().unwrap()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}: item {i}: {g} vs {w}"
        );
    }
}

fn train(client: &Client) {
    client
        .train(&TrainOptions {
            rng_seed: Some(3),
            ..TrainOptions::default()
        })
        .unwrap();
}

/// After a model install, an app start ranks without the model: with the
/// model's bytes destroyed, `recommend` still answers (from the stored
/// ranking) while what needs the model fails. Before this change `open`
/// decoded the model, so it failed.
#[test]
fn an_app_start_ranks_without_reading_the_model() {
    let ds = small_dataset();
    let dir = TempDir::new("stored-no-model");
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    client.record_batch(&[like(3, 1), like(8, 2)]).unwrap();
    let options = RecommendOptions::default();
    let before = client.recommend(10, &options).unwrap();
    drop(client);

    // Keep the header (version, digest), break the model file.
    let model_file = std::fs::read_dir(&dir.0)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains(".model-"))
        .expect("the model is a file beside the database");
    std::fs::write(model_file.path(), b"junk").unwrap();
    let client = reopen(&dir);
    assert_eq!(client.recommend(10, &options).unwrap(), before);
    assert!(
        client.preferences().is_err(),
        "the model is really unreadable"
    );
}

/// After training, a reopened client ranks by the new private state, from
/// the store, exactly as a full computation does.
#[test]
fn training_stores_the_ranking_of_its_new_state() {
    for backbone in [Backbone::FedAvg, Backbone::PFedRec, Backbone::FedNcf] {
        let ds = small_dataset();
        let dir = TempDir::new("stored-train");
        let client = ready_client(&dir, &ds, backbone);
        client
            .record_batch(&[like(3, 1), like(8, 2), like(13, 3)])
            .unwrap();
        let untrained = client.scores().unwrap();
        // Rescored from the global views kept since the install (PFedRec:
        // the user's own rows recomputed).
        train(&client);
        let trained = client.scores().unwrap();
        assert_ne!(trained, untrained, "{backbone:?}");
        drop(client);

        let stored = reopen(&dir).scores().unwrap();
        assert_eq!(
            stored, trained,
            "{backbone:?}: stored = the training client's"
        );
        assert_close(&stored, &computed_scores(&dir), &format!("{backbone:?}"));
    }
}

/// A training on a reopened client (nothing kept in memory) rescores from
/// the catalog and stores the same thing.
#[test]
fn training_without_kept_views_stores_the_same_ranking() {
    let ds = small_dataset();
    let dir = TempDir::new("stored-reopened-train");
    ready_client(&dir, &ds, Backbone::PFedRec)
        .record_batch(&[like(3, 1), like(8, 2)])
        .unwrap();
    let client = reopen(&dir);
    train(&client);
    let trained = client.scores().unwrap();
    drop(client);
    assert_close(&trained, &computed_scores(&dir), "reopened");
}

/// A new interaction after the last store: the history's part is
/// recomputed (the new item is excluded as seen, the router sees it), and
/// stored for the next app start.
#[test]
fn a_new_interaction_is_never_ranked_from_an_older_history() {
    let ds = small_dataset();
    let dir = TempDir::new("stored-history");
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    client.record_batch(&[like(3, 1)]).unwrap();
    train(&client);
    drop(client);

    let client = reopen(&dir);
    let options = RecommendOptions::default();
    let top = client.recommend(1, &options).unwrap();
    let best = top[0].item_key.clone();
    client
        .record(fedmr_sdk::Interaction {
            item_key: best.clone(),
            ..like(0, 5)
        })
        .unwrap();
    drop(client);
    let client = reopen(&dir);
    let after = client.recommend(50, &options).unwrap();
    assert!(
        after.iter().all(|r| r.item_key != best),
        "seen item excluded"
    );
    let scores = client.scores().unwrap();
    drop(client);
    assert_close(&reopen(&dir).scores().unwrap(), &scores, "stored again");
    assert_close(&scores, &computed_scores(&dir), "after the interaction");
}

/// Another client of the same file trains: what was stored for the older
/// state (put back by hand here) is not used.
#[test]
fn a_ranking_of_another_state_is_not_used() {
    let ds = small_dataset();
    let dir = TempDir::new("stored-other-state");
    let first = ready_client(&dir, &ds, Backbone::FedAvg);
    first.record_batch(&[like(3, 1), like(8, 2)]).unwrap();
    let untrained = first.scores().unwrap();
    drop(first);
    sql(
        &dir,
        "CREATE TABLE old_scores AS SELECT * FROM ranking_scores;
         CREATE TABLE old_context AS SELECT * FROM ranking_context;",
    );
    train(&reopen(&dir));
    sql(
        &dir,
        "DELETE FROM ranking_scores; INSERT INTO ranking_scores SELECT * FROM old_scores;
         DELETE FROM ranking_context; INSERT INTO ranking_context SELECT * FROM old_context;",
    );
    let stored = reopen(&dir).scores().unwrap();
    assert_ne!(stored, untrained, "the untrained ranking was used");
    assert_close(&stored, &computed_scores(&dir), "trained state");
}

/// Damaged stored rankings are recomputed, never trusted or panicked on.
#[test]
fn damaged_stored_rankings_are_recomputed() {
    let ds = small_dataset();
    let dir = TempDir::new("stored-damaged");
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    client.record_batch(&[like(3, 1), like(8, 2)]).unwrap();
    train(&client);
    let want = client.scores().unwrap();
    drop(client);
    for damage in [
        "UPDATE ranking_scores SET payload = x'0102'",
        "UPDATE ranking_context SET payload = x''",
        "UPDATE ranking_scores SET payload = substr(payload, 1, length(payload) - 4)",
    ] {
        sql(&dir, damage);
        assert_close(&reopen(&dir).scores().unwrap(), &want, damage);
    }
}

/// Forget-me leaves no ranking derived from the user's data; a reopened
/// client ranks as a new user.
#[test]
fn forget_me_removes_the_stored_ranking() {
    let ds = small_dataset();
    let dir = TempDir::new("stored-forget");
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    let new_user = client.scores().unwrap();
    client.record_batch(&[like(3, 1), like(8, 2)]).unwrap();
    train(&client);
    assert!(stored_rows(&dir) > 0);
    client.forget_me().unwrap();
    assert_eq!(stored_rows(&dir), 0);
    drop(client);
    assert_eq!(reopen(&dir).scores().unwrap(), new_user);
}

/// A `recommend` refused for an unknown candidate computes and stores
/// nothing (bad input changes nothing, not even the stored ranking).
#[test]
fn a_refused_recommend_stores_nothing() {
    let ds = small_dataset();
    let dir = TempDir::new("stored-refused");
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    client.record_batch(&[like(3, 1)]).unwrap();
    let stored_context = || -> Option<i64> {
        rusqlite::Connection::open(dir.db())
            .unwrap()
            .query_row("SELECT history_version FROM ranking_context", [], |r| {
                r.get(0)
            })
            .ok()
    };
    let before = stored_context();
    let options = RecommendOptions {
        candidates: Some(vec![key(1), "no-such-item".into()]),
        ..RecommendOptions::default()
    };
    assert!(matches!(
        client.recommend(5, &options),
        Err(fedmr_sdk::Error::UnknownItem(_))
    ));
    assert_eq!(stored_context(), before, "nothing computed or stored");
    // The same call with known candidates does store the new context.
    let options = RecommendOptions {
        candidates: Some(vec![key(1), key(2)]),
        ..RecommendOptions::default()
    };
    assert_eq!(client.recommend(5, &options).unwrap().len(), 2);
    assert_ne!(stored_context(), before);
}
