//! The public `Client` API as an app uses it: every call, and every bad
//! input an app can pass getting a clear error with nothing changed.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::client::*;
use common::small_dataset;
use fedmr_core::model::{Backbone, FusionMode, ModelConfig};
use fedmr_core::privacy::{Protection, RdpAccountant, UploadRows};
use fedmr_core::train::{EpochProgress, TrainConfig};
use fedmr_core::wire::{ModelMessage, UpdateMessage};
use fedmr_sdk::{
    CancelFlag, Client, ClientConfig, Error, Interaction, InteractionKind, RecommendOptions, Stats,
    TrainOptions,
};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn stats(c: &Client) -> Stats {
    c.stats().unwrap()
}

/// Stats without the file size, which a no-op may still change (WAL).
fn logical(c: &Client) -> Stats {
    Stats {
        database_bytes: 0,
        ..stats(c)
    }
}

fn record_history(c: &Client, items: &[u32]) {
    let batch: Vec<_> = items
        .iter()
        .enumerate()
        .map(|(t, &i)| like(i, t as i64))
        .collect();
    c.record_batch(&batch).unwrap();
}

#[test]
fn record_validates_the_whole_batch_and_keeps_unknown_items() {
    let dir = TempDir::new("record");
    let client = Client::open(ClientConfig::new(dir.db())).unwrap();
    client.record(like(1, 10)).unwrap();
    let before = logical(&client);

    let bad = [
        (
            "empty key",
            Interaction {
                item_key: "  ".into(),
                ..like(2, 1)
            },
        ),
        (
            "NaN weight",
            Interaction {
                kind: InteractionKind::Weighted(f32::NAN),
                ..like(2, 1)
            },
        ),
        (
            "inf weight",
            Interaction {
                kind: InteractionKind::Weighted(f32::INFINITY),
                ..like(2, 1)
            },
        ),
        (
            "negative time",
            Interaction {
                timestamp_ms: -1,
                ..like(2, 1)
            },
        ),
        (
            "huge key",
            Interaction {
                item_key: "k".repeat(10_000),
                ..like(2, 1)
            },
        ),
        (
            "time at i64::MAX",
            Interaction {
                timestamp_ms: i64::MAX,
                ..like(2, 1)
            },
        ),
        (
            "time in seconds",
            Interaction {
                timestamp_ms: now_ms() / 1000,
                ..like(2, 1)
            },
        ),
        (
            "time a week ahead",
            Interaction {
                timestamp_ms: now_ms() + 7 * 24 * 3600 * 1000,
                ..like(2, 1)
            },
        ),
    ];
    for (name, interaction) in bad {
        let err = client.record_batch(&[like(3, 1), interaction]).unwrap_err();
        assert!(
            matches!(err, Error::InvalidInteraction { index: 1, .. }),
            "{name}: {err}"
        );
        assert_eq!(logical(&client), before, "{name} changed something");
    }

    // Unknown items (no catalog yet) are kept...
    assert_eq!(before.unknown_items, 1);
    let ds = small_dataset();
    client
        .apply_catalog(&catalog_message(&ds, 1).encode().0)
        .unwrap();
    // ...and count once the catalog has them.
    let after = stats(&client);
    assert_eq!((after.known_items, after.unknown_items), (1, 0));
    client
        .record(Interaction {
            item_key: "not-in-catalog".into(),
            ..like(0, 11)
        })
        .unwrap();
    assert_eq!(stats(&client).unknown_items, 1);
}

#[test]
fn retention_keeps_the_newest() {
    let dir = TempDir::new("retention");
    let client = Client::open(ClientConfig {
        retention_cap: 10,
        ..ClientConfig::new(dir.db())
    })
    .unwrap();
    record_history(&client, &(0..25).collect::<Vec<_>>());
    assert_eq!(stats(&client).interactions, 10);
    let export: serde_json::Value = serde_json::from_str(&client.export().unwrap()).unwrap();
    let oldest = &export["interactions"][0]["item_key"];
    assert_eq!(oldest, "item-15");

    let zero = Client::open(ClientConfig {
        retention_cap: 0,
        ..ClientConfig::new(dir.0.join("other.sqlite"))
    });
    assert!(matches!(zero, Err(Error::InvalidConfig(_))));
}

#[test]
fn catalog_is_verified_before_anything_is_replaced() {
    let dir = TempDir::new("catalog");
    let ds = small_dataset();
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    let before = logical(&client);
    let (good, _) = catalog_message(&ds, 2).encode();

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    let truncated = good[..good.len() - 10].to_vec();
    let mut wrong_kind =
        ModelMessage::encode(&model_message(&ds, &model_config(Backbone::FedAvg), 9, 2));
    wrong_kind.truncate(wrong_kind.len());
    for (name, bytes) in [
        ("corrupt", flipped),
        ("truncated", truncated),
        ("empty", Vec::new()),
        ("garbage", b"definitely not a catalog".to_vec()),
        ("a model", wrong_kind),
    ] {
        let err = client.apply_catalog(&bytes).unwrap_err();
        assert!(matches!(err, Error::InvalidMessage(_)), "{name}: {err}");
        assert_eq!(logical(&client), before, "{name} changed something");
    }

    // A stale version is refused; the same catalog again is a no-op.
    let (old, _) = catalog_message(&ds, 0).encode();
    assert!(matches!(
        client.apply_catalog(&old),
        Err(Error::Incompatible(_))
    ));
    assert!(
        !client
            .apply_catalog(&catalog_message(&ds, 1).encode().0)
            .unwrap()
    );
    assert_eq!(logical(&client), before);

    // A newer catalog replaces it and retires the model built for the old one.
    assert!(client.apply_catalog(&good).unwrap());
    let after = stats(&client);
    assert_eq!(
        (after.catalog_version, after.model_version),
        (Some(2), None)
    );
    let err = client
        .recommend(5, &RecommendOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::NotReady(_)), "{err}");
}

#[test]
fn model_must_fit_the_catalog() {
    let dir = TempDir::new("model");
    let ds = small_dataset();
    let cfg = model_config(Backbone::FedAvg);

    let fresh = Client::open(ClientConfig::new(dir.0.join("fresh.sqlite"))).unwrap();
    let err = fresh
        .apply_model(&model_message(&ds, &cfg, 1, 1).encode())
        .unwrap_err();
    assert!(matches!(err, Error::NotReady(_)), "{err}");

    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    let before = logical(&client);

    // Same structure, other dataset sizes: wrong item count, wrong modality size.
    let other_items =
        fedmr_core::data::synthetic::generate(&fedmr_core::data::synthetic::SyntheticConfig {
            n_users: 40,
            n_items: 81,
            modality_dim: 12,
            seed: 3,
            ..Default::default()
        });
    let other_dims =
        fedmr_core::data::synthetic::generate(&fedmr_core::data::synthetic::SyntheticConfig {
            n_users: 40,
            n_items: 80,
            modality_dim: 13,
            seed: 3,
            ..Default::default()
        });
    let mut truncated = model_message(&ds, &cfg, 2, 1).encode();
    truncated.pop();
    let mut short_table = model_message(&ds, &cfg, 2, 1);
    short_table.item_table.pop();
    let mut nan = model_message(&ds, &cfg, 2, 1);
    nan.fusion[3] = f32::NAN;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "more items",
            model_message(&other_items, &cfg, 2, 1).encode(),
        ),
        (
            "other modality size",
            model_message(&other_dims, &cfg, 2, 1).encode(),
        ),
        (
            "other catalog version",
            model_message(&ds, &cfg, 2, 5).encode(),
        ),
        ("stale version", model_message(&ds, &cfg, 0, 1).encode()),
        ("truncated", truncated),
        ("short item table", short_table.encode()),
        ("NaN parameter", nan.encode()),
    ];
    for (name, bytes) in cases {
        let err = client.apply_model(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Incompatible(_) | Error::InvalidMessage(_) | Error::Shape(_)
            ),
            "{name}: {err}"
        );
        assert_eq!(logical(&client), before, "{name} changed something");
    }
    assert!(
        !client
            .apply_model(&model_message(&ds, &cfg, 1, 1).encode())
            .unwrap()
    );
    assert!(
        client
            .apply_model(&model_message(&ds, &cfg, 2, 1).encode())
            .unwrap()
    );
    assert_eq!(stats(&client).model_version, Some(2));
}

#[test]
fn train_commits_state_and_update_together_and_reports_progress() {
    let dir = TempDir::new("train");
    let ds = small_dataset();
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    let err = client.train(&TrainOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NotReady(_)), "{err}");

    record_history(&client, &[3, 5, 8, 13]);
    client
        .record(Interaction {
            item_key: "unknown".into(),
            ..like(0, 99)
        })
        .unwrap();
    let seen: Arc<Mutex<Vec<EpochProgress>>> = Arc::default();
    let sink = seen.clone();
    let options = TrainOptions {
        progress: Some(Arc::new(move |p: &EpochProgress| {
            sink.lock().unwrap().push(*p)
        })),
        ..TrainOptions::default()
    };
    let report = client.train(&options).unwrap();
    assert_eq!((report.epochs_run, report.epochs_planned), (5, 5));
    assert_eq!((report.positives, report.unknown_items), (4, 1));
    assert!(!report.stopped_early);
    let progress = seen.lock().unwrap().clone();
    assert_eq!(
        progress.iter().map(|p| p.epoch).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        progress.iter().map(|p| p.loss).collect::<Vec<_>>(),
        report.losses
    );
    assert!(report.losses.iter().all(|l| l.is_finite()));

    let pending = client.pending_uploads().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].idempotency_key, report.idempotency_key);
    assert_eq!(pending[0].bytes.len(), report.update_bytes);
    let message = UpdateMessage::decode(&pending[0].bytes).unwrap();
    assert_eq!((message.round, message.base_version), (1, 1));
    assert_eq!(message.idempotency_key, report.idempotency_key);
    let (_, global) =
        ModelMessage::decode(&model_message(&ds, &model_config(Backbone::FedAvg), 1, 1).encode())
            .unwrap();
    message
        .to_update(global.dim())
        .unwrap()
        .validate(&global)
        .unwrap();
    for item in [3u32, 5, 8, 13] {
        assert!(
            message.item_ids.contains(&item),
            "positive {item} not in the update"
        );
    }
    assert_eq!(stats(&client).rounds_trained, 1);

    assert!(client.acknowledge_upload(&report.idempotency_key).unwrap());
    assert!(!client.acknowledge_upload(&report.idempotency_key).unwrap());
    assert!(client.pending_uploads().unwrap().is_empty());
}

#[test]
fn cancel_discards_the_round_and_budget_stops_early() {
    let dir = TempDir::new("cancel");
    let ds = small_dataset();
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    record_history(&client, &[1, 2, 3]);
    let before = logical(&client);

    let cancel = CancelFlag::new();
    let flag = cancel.clone();
    let options = TrainOptions {
        cancel: Some(cancel),
        progress: Some(Arc::new(move |p: &EpochProgress| {
            if p.epoch == 2 {
                flag.cancel();
            }
        })),
        ..TrainOptions::default()
    };
    let err = client.train(&options).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(logical(&client), before);
    assert!(client.pending_uploads().unwrap().is_empty());

    let report = client
        .train(&TrainOptions {
            time_budget: Some(Duration::ZERO),
            ..TrainOptions::default()
        })
        .unwrap();
    assert_eq!(report.epochs_run, 1);
    assert!(report.stopped_early);

    let bad = TrainOptions {
        config: Some(TrainConfig {
            lr: f32::NAN,
            ..TrainConfig::default()
        }),
        ..TrainOptions::default()
    };
    let before = logical(&client);
    assert!(matches!(client.train(&bad), Err(Error::InvalidConfig(_))));
    assert_eq!(logical(&client), before);
}

#[test]
fn a_diverging_round_writes_nothing() {
    let dir = TempDir::new("diverge");
    let ds = small_dataset();
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    record_history(&client, &[1, 2, 3, 4]);
    let before = logical(&client);
    let huge = TrainOptions {
        config: Some(TrainConfig {
            lr: 1e30,
            epochs: 5,
            ..TrainConfig::default()
        }),
        ..TrainOptions::default()
    };
    let err = client.train(&huge).unwrap_err();
    assert!(matches!(err, Error::Diverged { .. }), "{err}");
    assert_eq!(logical(&client), before);
}

#[test]
fn recommend_ranks_excludes_filters_and_survives_reopen() {
    let dir = TempDir::new("recommend");
    let ds = small_dataset();
    let client = ready_client(&dir, &ds, Backbone::PFedRec);
    let history = [2u32, 4, 6, 8, 10];
    record_history(&client, &history);
    client.train(&TrainOptions::default()).unwrap();

    let all = client
        .recommend(1000, &RecommendOptions::default())
        .unwrap();
    assert_eq!(all.len(), ds.n_items - history.len());
    assert!(all.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(all.iter().all(|r| !history.map(key).contains(&r.item_key)));

    let top = client.recommend(5, &RecommendOptions::default()).unwrap();
    assert_eq!(top, all[..5]);
    let with_seen = client
        .recommend(
            1000,
            &RecommendOptions {
                exclude_seen: false,
                candidates: None,
            },
        )
        .unwrap();
    assert_eq!(with_seen.len(), ds.n_items);

    let candidates: Vec<String> = [1u32, 2, 3, 50].map(key).to_vec();
    let filtered = client
        .recommend(
            10,
            &RecommendOptions {
                candidates: Some(candidates),
                ..Default::default()
            },
        )
        .unwrap();
    let mut keys: Vec<_> = filtered.iter().map(|r| r.item_key.clone()).collect();
    keys.sort();
    assert_eq!(keys, [key(1), key(3), key(50)], "seen item 2 excluded");

    let err = client
        .recommend(
            10,
            &RecommendOptions {
                candidates: Some(vec!["nope".into()]),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownItem(ref k) if k == "nope"),
        "{err}"
    );
    assert!(
        client
            .recommend(0, &RecommendOptions::default())
            .unwrap()
            .is_empty()
    );

    // The cache rebuilt from the store after a reopen ranks identically.
    drop(client);
    let reopened = Client::open(ClientConfig {
        seed: Some(7),
        ..ClientConfig::new(dir.db())
    })
    .unwrap();
    assert_eq!(
        reopened
            .recommend(1000, &RecommendOptions::default())
            .unwrap(),
        all
    );

    // Recording changes the router context and the exclusions.
    reopened
        .record(like(all[0].item_key[5..].parse().unwrap(), 100))
        .unwrap();
    let after = reopened
        .recommend(1000, &RecommendOptions::default())
        .unwrap();
    assert!(after.iter().all(|r| r.item_key != all[0].item_key));
}

#[test]
fn training_moves_the_private_model_toward_the_history() {
    // Only the private head and router persist on the device between
    // rounds (the global part waits in the outbox for the server), so one
    // user's training must lift that user's own items in their ranking.
    let ds = small_dataset();
    let users = ds.users();
    let mut before_sum = 0usize;
    let mut after_sum = 0usize;
    for user in users.iter().take(8) {
        let dir = TempDir::new("rank-shift");
        let client = ready_client(&dir, &ds, Backbone::FedAvg);
        record_history(&client, &user.train);
        let keys: Vec<String> = user.train.iter().map(|&i| key(i)).collect();
        let rank_sum = |c: &Client| -> usize {
            let ranked = c
                .recommend(
                    1000,
                    &RecommendOptions {
                        exclude_seen: false,
                        candidates: None,
                    },
                )
                .unwrap();
            keys.iter()
                .map(|k| ranked.iter().position(|r| &r.item_key == k).unwrap())
                .sum()
        };
        before_sum += rank_sum(&client);
        for _ in 0..10 {
            client.train(&TrainOptions::default()).unwrap();
        }
        after_sum += rank_sum(&client);
    }
    assert!(
        after_sum * 10 < before_sum * 7,
        "the users' own items did not move up: rank sum {before_sum} -> {after_sum}"
    );
}

#[test]
fn preferences_before_and_after_training() {
    let dir = TempDir::new("prefs");
    let ds = small_dataset();
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    record_history(&client, &[1, 7, 9]);
    let before = client.preferences().unwrap();
    assert!(!before.trained);
    assert_eq!(
        before
            .experts
            .iter()
            .map(|e| e.expert.as_str())
            .collect::<Vec<_>>(),
        ["sum", "mlp", "gate"]
    );
    client.train(&TrainOptions::default()).unwrap();
    let after = client.preferences().unwrap();
    assert!(after.trained);
    let total: f32 = after.experts.iter().map(|e| e.weight).sum();
    assert!((total - 1.0).abs() < 1e-5, "{total}");
    assert_ne!(before.experts, after.experts, "training moved the router");
    let shares = after.modalities.expect("a Sum expert and a history");
    let names: Vec<_> = shares.iter().map(|s| s.modality.clone()).collect();
    let mut want = vec!["id".to_string()];
    want.extend(ds.modalities.iter().map(|m| m.name.clone()));
    assert_eq!(names, want);
    let total: f32 = shares.iter().map(|s| s.share).sum();
    assert!((total - 1.0).abs() < 1e-5, "{total}");
    assert!(shares.iter().all(|s| s.share > 0.0));

    // ID-only: one "id" expert, no modality split.
    let dir = TempDir::new("prefs-id");
    let client = Client::open(ClientConfig::new(dir.db())).unwrap();
    client
        .apply_catalog(&catalog_message(&ds, 1).encode().0)
        .unwrap();
    let cfg = ModelConfig {
        fusion: FusionMode::IdOnly,
        ..model_config(Backbone::FedAvg)
    };
    client
        .apply_model(&model_message(&ds, &cfg, 1, 1).encode())
        .unwrap();
    let prefs = client.preferences().unwrap();
    assert_eq!(prefs.experts.len(), 1);
    assert_eq!(prefs.experts[0].expert, "id");
    assert_eq!(prefs.modalities, None);
}

#[test]
fn export_then_forget_me() {
    let dir = TempDir::new("forget");
    let ds = small_dataset();
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    record_history(&client, &[11, 12, 13]);
    client.train(&TrainOptions::default()).unwrap();

    let export: serde_json::Value = serde_json::from_str(&client.export().unwrap()).unwrap();
    assert_eq!(export["format"], "fedmr-export");
    assert_eq!(export["interactions"].as_array().unwrap().len(), 3);
    assert_eq!(export["interactions"][0]["kind"], "like");
    assert_eq!(export["private_model"]["rounds_trained"], 1);
    assert!(
        !export["private_model"]["parameters"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(export["pending_uploads"].as_array().unwrap().len(), 1);
    assert_eq!(
        export["preferences"]["experts"].as_array().unwrap().len(),
        3
    );

    client.forget_me().unwrap();
    let s = stats(&client);
    assert_eq!(
        (s.interactions, s.pending_uploads, s.rounds_trained),
        (0, 0, 0)
    );
    assert_eq!((s.catalog_version, s.model_version), (Some(1), Some(1)));
    let export: serde_json::Value = serde_json::from_str(&client.export().unwrap()).unwrap();
    assert!(export["interactions"].as_array().unwrap().is_empty());
    assert!(export["private_model"].is_null());
    assert!(!client.preferences().unwrap().trained);
    // Still usable: recommends for a user with no history.
    assert_eq!(
        client
            .recommend(5, &RecommendOptions::default())
            .unwrap()
            .len(),
        5
    );
    assert!(client.integrity_check().unwrap());
}

#[test]
fn recommend_runs_while_another_thread_trains() {
    let dir = TempDir::new("threads");
    let ds = small_dataset();
    let client = Arc::new(ready_client(&dir, &ds, Backbone::FedAvg));
    record_history(&client, &[1, 2, 3, 4, 5, 6]);
    let trainer = {
        let client = client.clone();
        std::thread::spawn(move || {
            for _ in 0..5 {
                client.train(&TrainOptions::default()).unwrap();
            }
        })
    };
    let mut calls = 0;
    while !trainer.is_finished() || calls < 20 {
        let top = client.recommend(10, &RecommendOptions::default()).unwrap();
        assert_eq!(top.len(), 10);
        calls += 1;
    }
    trainer.join().unwrap();
    assert_eq!(stats(&client).rounds_trained, 5);
    // Five rounds on one model version: the newest update is queued.
    assert_eq!(stats(&client).pending_uploads, 1);
}

#[test]
fn a_new_model_structure_restarts_the_private_model() {
    let dir = TempDir::new("restructure");
    let ds = small_dataset();
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    record_history(&client, &[1, 2, 3]);
    client.train(&TrainOptions::default()).unwrap();
    let cfg = ModelConfig {
        dim: 16,
        ..model_config(Backbone::FedAvg)
    };
    client
        .apply_model(&model_message(&ds, &cfg, 2, 1).encode())
        .unwrap();
    let report = client.train(&TrainOptions::default()).unwrap();
    assert_eq!(report.base_version, 2);
    assert_eq!(
        client
            .recommend(3, &RecommendOptions::default())
            .unwrap()
            .len(),
        3
    );
}

/// Damaged bodies inside valid frames (the digest matches, so the decoder
/// really sees them): every one is an error or a valid install, never a panic.
#[test]
fn damaged_message_bodies_never_panic() {
    use fedmr_core::rng::Rng;
    use fedmr_core::wire::{HEADER_LEN, MessageKind, seal};

    let ds = small_dataset();
    let dir = TempDir::new("fuzz");
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    let cfg = model_config(Backbone::FedAvg);
    let catalog = catalog_message(&ds, 2).encode().0[HEADER_LEN..].to_vec();
    let model = model_message(&ds, &cfg, 2, 1).encode()[HEADER_LEN..].to_vec();
    let mut rng = Rng::new(99);
    for round in 0..300 {
        let (kind, body) = if round % 2 == 0 {
            (MessageKind::Catalog, &catalog)
        } else {
            (MessageKind::Model, &model)
        };
        let mut damaged = body.clone();
        match rng.below(3) {
            0 => damaged.truncate(rng.below(body.len() as u64) as usize),
            1 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(damaged.len() as u64) as usize;
                    damaged[at] = rng.below(256) as u8;
                }
            }
            _ => {
                // Lengths and dimensions live in the first bytes.
                let at = rng.below(24.min(damaged.len() as u64)) as usize;
                damaged[at] = 0xff;
            }
        }
        let (bytes, _) = seal(kind, &damaged);
        let _ = match kind {
            MessageKind::Catalog => client.apply_catalog(&bytes).map(|_| ()),
            _ => client.apply_model(&bytes).map(|_| ()),
        };
    }
    assert!(client.integrity_check().unwrap());
}

#[test]
fn the_servers_defences_hold_whatever_the_caller_overrides() {
    let dir = TempDir::new("protection");
    let ds = small_dataset();
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    let cfg = model_config(Backbone::FedAvg);
    let mut defended = model_message(&ds, &cfg, 2, 1);
    defended.train.protection = Protection {
        rows: UploadRows::Catalog,
        hide_sample_count: true,
        ..Protection::none()
    };
    client.apply_model(&defended.encode()).unwrap();
    record_history(&client, &[3, 5, 8, 13]);
    // An app (or a hostile library) passing its own configuration without
    // the defences does not get them switched off.
    let options = TrainOptions {
        config: Some(TrainConfig {
            epochs: 2,
            ..TrainConfig::default()
        }),
        ..TrainOptions::default()
    };
    let report = client.train(&options).unwrap();
    assert_eq!(report.epochs_run, 2, "the rest of the override applies");
    let pending = client.pending_uploads().unwrap();
    let message = UpdateMessage::decode(&pending[0].bytes).unwrap();
    assert_eq!(message.samples, 1, "the count is hidden");
    assert_eq!(
        message.item_ids,
        (0..ds.n_items as u32).collect::<Vec<_>>(),
        "every catalog row is uploaded"
    );
    assert!(
        report.samples > 1,
        "the app's own report keeps the real count"
    );
}

#[test]
fn privacy_spent_composes_every_round_trained_here() {
    let dir = TempDir::new("privacy-spent");
    let ds = small_dataset();
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    assert!(matches!(
        client.privacy_spent(0.0),
        Err(Error::InvalidArgument(_))
    ));
    let nothing = client.privacy_spent(1e-5).unwrap();
    assert_eq!((nothing.rounds, nothing.epsilon), (0, 0.0));

    record_history(&client, &[3, 5, 8, 13]);
    let cfg = model_config(Backbone::FedAvg);
    let mut dp = model_message(&ds, &cfg, 2, 1);
    dp.train.protection = Protection::preset("dp-4", 0.5).unwrap();
    client.apply_model(&dp.encode()).unwrap();
    client.train(&TrainOptions::default()).unwrap();
    client.train(&TrainOptions::default()).unwrap();
    let spent = client.privacy_spent(1e-5).unwrap();
    let mut reference = RdpAccountant::default();
    reference.spend_gaussian(2.0);
    reference.spend_gaussian(2.0);
    assert_eq!((spent.rounds, spent.rounds_without_dp), (2, 0));
    assert_eq!(spent.epsilon, reference.epsilon(1e-5));
    assert!(spent.epsilon.is_finite() && spent.epsilon > 0.0);

    // One round without noise, and the guarantee is gone.
    client
        .apply_model(&model_message(&ds, &cfg, 3, 1).encode())
        .unwrap();
    client.train(&TrainOptions::default()).unwrap();
    let spent = client.privacy_spent(1e-5).unwrap();
    assert_eq!((spent.rounds, spent.rounds_without_dp), (3, 1));
    assert_eq!(spent.epsilon, f64::INFINITY);

    client.forget_me().unwrap();
    assert_eq!(client.privacy_spent(1e-5).unwrap().rounds, 0);
}

#[test]
fn a_model_pinned_to_another_catalog_is_refused() {
    let dir = TempDir::new("catalog-pin");
    let ds = small_dataset();
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    let (_, digest) = catalog_message(&ds, 1).encode();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(stats(&client).catalog_digest, Some(hex));

    // Same catalog version, other content: what a server that sent this user
    // manipulated features would have to pin.
    let mut elsewhere = model_message(&ds, &model_config(Backbone::FedAvg), 2, 1);
    elsewhere.catalog_digest[0] ^= 1;
    let err = client.apply_model(&elsewhere.encode()).unwrap_err();
    assert!(matches!(err, Error::Incompatible(_)), "{err}");
    assert!(err.to_string().contains("catalog digest"), "{err}");
    assert_eq!(stats(&client).model_version, Some(1), "nothing changed");
}

/// A progress listener that fails (an app callback that raised, through
/// the bindings) ends the round with a typed error; nothing is written.
#[test]
fn a_failing_progress_listener_is_a_typed_error_and_writes_nothing() {
    struct Fails;
    impl fedmr_sdk::ProgressListener for Fails {
        fn on_epoch(&self, p: &EpochProgress) -> Result<(), String> {
            if p.epoch == 2 {
                return Err("the app's view is gone".into());
            }
            Ok(())
        }
    }
    let dir = TempDir::new("listener-fails");
    let ds = small_dataset();
    let client = ready_client(&dir, &ds, Backbone::FedAvg);
    record_history(&client, &[1, 2, 3]);
    let before = logical(&client);
    let err = client
        .train(&TrainOptions {
            progress: Some(Arc::new(Fails)),
            ..TrainOptions::default()
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::ListenerFailed(m) if m.contains("view is gone")),
        "{err}"
    );
    assert_eq!(logical(&client), before);
    assert!(client.pending_uploads().unwrap().is_empty());
}

/// Mistakes an app makes in what it passes get a clear error from the call
/// that made them: an empty database path, a malformed server URL (at once,
/// not after five network retries), and a cancellation says what happened.
#[test]
fn app_mistakes_are_named_at_the_call_that_made_them() {
    match Client::open(ClientConfig::new("")) {
        Err(Error::InvalidConfig(m)) => assert!(m.contains("database path is empty"), "{m}"),
        Err(e) => panic!("expected InvalidConfig, got {e}"),
        Ok(_) => panic!("an empty path was opened"),
    }
    let dir = TempDir::new("app-mistakes");
    let client = Client::open(ClientConfig::new(dir.db())).unwrap();
    for url in [
        "not a url",
        "ftp://example.com",
        "http://",
        "localhost:8750",
    ] {
        let started = std::time::Instant::now();
        let remote = fedmr_sdk::Remote::new(url, "token");
        for result in [
            client.sync(&remote).map(|_| ()),
            client.upload(&remote).map(|_| ()),
        ] {
            match result {
                Err(Error::InvalidArgument(m)) => assert!(m.contains("server URL"), "{url}: {m}"),
                other => panic!("{url}: expected InvalidArgument, got {other:?}"),
            }
        }
        assert!(started.elapsed() < Duration::from_secs(1), "{url}: retried");
    }
    assert!(Error::Cancelled.to_string().contains("nothing was written"));
}
