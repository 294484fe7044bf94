//! Leak check: training never reads a user's validation or test item. Each
//! user's held-out items are swapped for other items the user never met;
//! every backbone must then train exactly as before (same loss in every
//! round, same private state, same global model), and scoring the real
//! targets with either model gives the same ranks. On KU when present.

use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::data::{Dataset, SplitLabel};
use fedmr_core::model::{Backbone, FusionMode, ModelConfig};
use fedmr_core::train::TrainConfig;
use fedmr_data::mmrec::shared_ku_dir;
use fedmr_sim::coordinator::Coordinator;
use fedmr_sim::dataset;
use fedmr_sim::federation::{Federation, SimConfig};

/// The same data with every validation and test row moved to another item
/// the user has no interaction with.
fn swap_held_out(ds: &Dataset) -> Dataset {
    let users = ds.users();
    let mut out = ds.clone();
    for it in &mut out.interactions {
        if it.split == SplitLabel::Train {
            continue;
        }
        let u = &users[it.user as usize];
        let taken = |i: u32| u.train.contains(&i) || Some(i) == u.valid || Some(i) == u.test;
        let mut item = (it.item + 1) % ds.n_items as u32;
        while taken(item) {
            item = (item + 1) % ds.n_items as u32;
        }
        it.item = item;
    }
    out
}

fn config(backbone: Backbone) -> SimConfig {
    SimConfig {
        model: ModelConfig {
            backbone,
            fusion: FusionMode::full(),
            dim: 16,
            init_std: 0.1,
        },
        train: TrainConfig {
            lr: 0.1,
            item_lr: Some(3.0),
            ..TrainConfig::default()
        },
        rounds: 3,
        patience: 100,
        seed: 3,
        threads: 2,
        ..SimConfig::default()
    }
}

fn check(ds: &Dataset) {
    let swapped = swap_held_out(ds);
    assert_ne!(
        ds.interactions, swapped.interactions,
        "something was swapped"
    );
    let cat = dataset::catalog(ds, &[]).unwrap();
    for backbone in Backbone::ALL {
        let mut real = Federation::in_process(ds, cat.clone(), config(backbone)).unwrap();
        let mut other = Federation::in_process(&swapped, cat.clone(), config(backbone)).unwrap();
        for round in 0..3 {
            let a = real.round(round).unwrap();
            let b = other.round(round).unwrap();
            assert_eq!(a, b, "{backbone}: round {round} trained differently");
        }
        assert_eq!(
            real.coordinator.global(),
            other.coordinator.global(),
            "{backbone}: global model"
        );
        for (p, q) in real.phones.iter().zip(&other.phones) {
            assert_eq!(
                p.state, q.state,
                "{backbone}: private state of user {}",
                p.user
            );
        }
    }
}

#[test]
fn held_out_items_never_reach_training_synthetic() {
    check(&generate(&SyntheticConfig {
        n_users: 30,
        n_items: 80,
        modality_dim: 8,
        seed: 2,
        ..SyntheticConfig::default()
    }));
}

#[test]
fn held_out_items_never_reach_training_on_ku() {
    let Some(dir) = shared_ku_dir() else { return };
    check(&dataset::load(dir.to_str().unwrap(), 0).unwrap());
}
