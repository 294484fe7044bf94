//! The curious server's attacks recover what they claim on an undefended
//! federation over real HTTP (server on 127.0.0.1, one SQLite-backed client
//! per phone): so a defence that brings them to guessing is measured by
//! attacks that work.

use fedmr_core::data::Dataset;
use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::model::{Backbone, FusionMode, ModelConfig};
use fedmr_core::privacy::{LocalDp, Protection, UploadRows};
use fedmr_core::train::TrainConfig;
use fedmr_sim::dataset::catalog;
use fedmr_sim::federation::SimConfig;
use fedmr_sim::http::HttpFederation;
use fedmr_sim::privacy::{PrivacyReport, measure};
use fedmr_test_support::TempDir;

fn dataset() -> Dataset {
    generate(&SyntheticConfig {
        n_users: 30,
        n_items: 200,
        modality_dim: 12,
        seed: 4,
        ..SyntheticConfig::default()
    })
}

fn config(protection: Protection) -> SimConfig {
    SimConfig {
        model: ModelConfig {
            backbone: Backbone::FedAvg,
            fusion: FusionMode::full(),
            dim: 16,
            init_std: 0.1,
        },
        train: TrainConfig {
            lr: 0.1,
            item_lr: Some(3.0),
            epochs: 5,
            negatives: 1,
            protection,
            ..TrainConfig::default()
        },
        rounds: 3,
        seed: 1,
        threads: 2,
        ..SimConfig::default()
    }
}

/// Three rounds over HTTP under `protection`, and the attacks on them.
fn attacked(protection: Protection) -> PrivacyReport {
    let ds = dataset();
    let names: Vec<String> = ds.modalities.iter().map(|m| m.name.clone()).collect();
    let cat = catalog(&ds, &[]).unwrap();
    let dir = TempDir::new("sim-privacy");
    let mut federation =
        HttpFederation::new(&ds, &cat, &names, config(protection), &dir.0).unwrap();
    let report = measure(&mut federation, &ds.users(), ds.n_items, 3).unwrap();
    println!("{report}");
    report
}

#[test]
fn an_undefended_federation_gives_each_users_items_away() {
    let report = attacked(Protection::none());
    assert_eq!((report.users, report.uploads), (30, 90));
    // 1. One upload: positives and negatives apart (guessing: 0.5).
    assert!(report.one_upload_auc.mean > 0.9, "{report}");
    // 2. Across three rounds: the recurring rows are the positives.
    assert!(report.across_rounds_auc.mean > 0.9, "{report}");
    assert!(report.across_rounds_recall.min == 1.0, "{report}");
    assert!(
        report.across_rounds_f1.mean > 0.6
            && report.across_rounds_f1.mean > 5.0 * report.across_rounds_guess_f1.mean,
        "{report}"
    );
    // 3. The sample count is the history length, for every upload (the
    // synthetic users all have 18 training items, so here guessing the
    // population's mean does as well; KU's lengths vary).
    assert_eq!(report.history_exact, 1.0, "{report}");
    // 4. The router's MLP-vs-Gate balance, from the dense change (guessing: 0).
    let r = report.router_correlation.expect("MLP and Gate experts");
    assert!(r > 0.5, "{report}");
}

#[test]
fn each_defence_takes_away_what_it_claims() {
    let undefended = attacked(Protection::none());

    // Fixed negatives recur like positives: "in every upload" stops meaning "positive".
    let fixed = attacked(Protection {
        fixed_negatives: true,
        ..Protection::none()
    });
    assert!(
        fixed.across_rounds_precision.mean < 0.5 * undefended.across_rounds_precision.mean,
        "{fixed}\n{undefended}"
    );

    // A hidden count: every upload declares one sample.
    let hidden = attacked(Protection {
        hide_sample_count: true,
        ..Protection::none()
    });
    assert_eq!(undefended.history_exact, 1.0);
    assert_eq!(hidden.history_exact, 0.0, "{hidden}");

    // Catalog rows: every upload carries the whole table (200 rows of 16).
    let catalog_rows = attacked(Protection {
        rows: UploadRows::Catalog,
        ..Protection::none()
    });
    assert!(undefended.upload_rows < 150.0, "{undefended}");
    assert_eq!(catalog_rows.upload_rows, 200.0, "{catalog_rows}");

    // Strong local DP: the row attacks fall to guessing (±0.1 on 30 users).
    let dp = attacked(Protection {
        rows: UploadRows::Catalog,
        fixed_negatives: true,
        hide_sample_count: true,
        local_dp: Some(LocalDp {
            clip_norm: 0.1,
            noise_multiplier: 20.0,
        }),
        secure_aggregation: None,
    });
    for auc in [
        dp.one_upload_auc.mean,
        dp.across_rounds_auc.mean,
        dp.across_rounds_direction_auc.mean,
    ] {
        assert!((auc - 0.5).abs() < 0.1, "{dp}");
    }
    assert!(
        undefended.across_rounds_direction_auc.mean > 0.9,
        "{undefended}"
    );
}

/// Under secure aggregation the server holds one masked vector per client
/// (and the round's sum): read as well as it can be, each per-user attack
/// is at guessing.
#[test]
fn secure_aggregation_leaves_each_attack_at_guessing() {
    let secure = attacked(Protection::preset("secure", 1.0).unwrap());
    assert_eq!((secure.users, secure.uploads), (30, 90), "{secure}");
    for auc in [
        secure.one_upload_auc.mean,
        secure.across_rounds_auc.mean,
        secure.across_rounds_direction_auc.mean,
    ] {
        assert!((auc - 0.5).abs() < 0.1, "{secure}");
    }
    // Every upload carries every row.
    assert_eq!(secure.upload_rows, 200.0, "{secure}");
    assert!(secure.history_exact < 0.05, "{secure}");
    let r = secure.router_correlation.expect("MLP and Gate experts");
    assert!(r.abs() < 0.5, "{secure}");
}
