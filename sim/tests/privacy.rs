//! The curious server's attacks recover what they claim on an undefended
//! federation over real HTTP (server on 127.0.0.1, one SQLite-backed client
//! per phone): so a defence that brings them to guessing is measured by
//! attacks that work.

use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::model::{Backbone, FusionMode, ModelConfig};
use fedmr_core::train::TrainConfig;
use fedmr_sim::dataset::catalog;
use fedmr_sim::federation::SimConfig;
use fedmr_sim::http::HttpFederation;
use fedmr_sim::privacy::measure;
use fedmr_test_support::TempDir;

#[test]
fn an_undefended_federation_gives_each_users_items_away() {
    let ds = generate(&SyntheticConfig {
        n_users: 30,
        n_items: 200,
        modality_dim: 12,
        seed: 4,
        ..SyntheticConfig::default()
    });
    let names: Vec<String> = ds.modalities.iter().map(|m| m.name.clone()).collect();
    let cat = catalog(&ds, &[]).unwrap();
    let config = SimConfig {
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
            ..TrainConfig::default()
        },
        rounds: 3,
        seed: 1,
        threads: 2,
        ..SimConfig::default()
    };
    let dir = TempDir::new("sim-privacy");
    let mut federation = HttpFederation::new(&ds, &cat, &names, config, &dir.0).unwrap();
    let report = measure(&mut federation, &ds.users(), ds.n_items, 3).unwrap();
    println!("{report}");
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
