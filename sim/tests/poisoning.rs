//! Poisoning in the simulation: malicious clients promote their target
//! item (its exposure rises), and the `poisoning` command writes the table
//! a user reads.

use std::process::Command;

use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::model::{Backbone, FusionMode, ModelConfig};
use fedmr_core::train::TrainConfig;
use fedmr_sim::dataset;
use fedmr_sim::federation::{Federation, SimConfig};
use fedmr_sim::poisoning::AttackConfig;

fn config(share: f64) -> SimConfig {
    SimConfig {
        model: ModelConfig {
            backbone: Backbone::Fcf,
            fusion: FusionMode::IdOnly,
            dim: 16,
            ..ModelConfig::default()
        },
        train: TrainConfig {
            lr: 1.0,
            item_lr: Some(3.0),
            ..TrainConfig::default()
        },
        rounds: 15,
        patience: 100,
        attack: Some(AttackConfig {
            share,
            ..AttackConfig::default()
        }),
        ..SimConfig::default()
    }
}

fn final_exposure(share: f64) -> (f64, usize) {
    let ds = generate(&SyntheticConfig::default());
    let catalog = dataset::catalog(&ds, &[]).unwrap();
    let mut federation = Federation::in_process(&ds, catalog, config(share)).unwrap();
    let attackers = federation.poisoning.as_ref().unwrap().attackers();
    let run = federation.run(|_| {}).unwrap();
    (run.rounds.last().unwrap().exposure.unwrap(), attackers)
}

fn ds_users() -> usize {
    SyntheticConfig::default().n_users
}

#[test]
fn malicious_clients_push_their_target_into_top_10s() {
    let (clean, none) = final_exposure(0.0);
    let (attacked, attackers) = final_exposure(0.05);
    assert_eq!(none, 0);
    assert_eq!(attackers, (0.05 * ds_users() as f64).ceil() as usize);
    assert!(
        attacked > clean + 0.2,
        "exposure {clean:.3} without attackers, {attacked:.3} with"
    );
}

#[test]
fn the_poisoning_command_writes_its_table() {
    let out = std::env::temp_dir().join(format!("fedmr-sim-poisoning-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(env!("CARGO_BIN_EXE_fedmr-sim"))
        .args([
            "poisoning",
            "--rounds",
            "2",
            "--dim",
            "8",
            "--seeds",
            "0",
            "--malicious",
            "0.05",
            "--defences",
            "none,rowclip,median",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let md = std::fs::read_to_string(out.join("poisoning.md")).unwrap();
    for row in ["| none | 5% |", "| rowclip | 5% |", "| median | 5% |"] {
        assert!(md.contains(row), "missing {row} in\n{md}");
    }
    assert!(out.join("poisoning.json").is_file());
    let bad = Command::new(env!("CARGO_BIN_EXE_fedmr-sim"))
        .args(["poisoning", "--defences", "krum", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("krum"));
    let _ = std::fs::remove_dir_all(&out);
}
