//! Local training: it learns, it is reproducible, and its update carries the
//! change of the global parameters only.

mod common;

use common::{catalog, config, global, small_dataset};
use fedmr_core::model::params::Tensors;
use fedmr_core::model::{Backbone, FusionMode, PrivateState};
use fedmr_core::rng::Rng;
use fedmr_core::train::{TrainConfig, train_local};

#[test]
fn loss_decreases_over_local_epochs() {
    let ds = small_dataset();
    let cfg = config(Backbone::FedAvg, FusionMode::full());
    let g = global(&ds, &cfg);
    let mut state = PrivateState::new(&cfg, &g, 7);
    let user = &ds.users()[0];
    let train = TrainConfig {
        item_lr: None,
        lr: 0.5,
        epochs: 30,
        negatives: 1,
    };
    let (_, report) = train_local(
        &g,
        &catalog(&ds),
        cfg.backbone,
        &mut state,
        &user.train,
        &train,
        &mut Rng::new(1),
    )
    .unwrap();
    let (first, last) = (report.epoch_losses[0], *report.epoch_losses.last().unwrap());
    assert!(last < 0.7 * first, "loss {first} -> {last}");
}

#[test]
fn same_seed_same_update_bit_for_bit() {
    let ds = small_dataset();
    let cfg = config(Backbone::FedAvg, FusionMode::full());
    let g = global(&ds, &cfg);
    let user = &ds.users()[1];
    let run = |seed| {
        let mut state = PrivateState::new(&cfg, &g, 7);
        let t = TrainConfig::default();
        let (u, _) = train_local(
            &g,
            &catalog(&ds),
            cfg.backbone,
            &mut state,
            &user.train,
            &t,
            &mut Rng::new(seed),
        )
        .unwrap();
        (u, state)
    };
    let (a, sa) = run(5);
    let (b, sb) = run(5);
    let (c, _) = run(6);
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    assert_ne!(
        a.item_rows.ids, c.item_rows.ids,
        "another seed samples other negatives"
    );
}

#[test]
fn update_holds_global_changes_only() {
    let ds = small_dataset();
    let cfg = config(Backbone::PFedRec, FusionMode::full());
    let g = global(&ds, &cfg);
    let mut state = PrivateState::new(&cfg, &g, 7);
    let before = state.clone();
    let user = &ds.users()[2];
    let (update, _) = train_local(
        &g,
        &catalog(&ds),
        cfg.backbone,
        &mut state,
        &user.train,
        &TrainConfig::default(),
        &mut Rng::new(3),
    )
    .unwrap();
    // Dense part: exactly the fusion parameters, nothing of the router or head.
    assert_eq!(update.dense.len(), g.fusion.num_params());
    assert!(update.dense.iter().any(|&d| d != 0.0));
    // Sparse part: the positives and the sampled negatives, no other rows.
    let mut positives = user.train.clone();
    positives.sort_unstable();
    assert!(positives.iter().all(|p| update.item_rows.ids.contains(p)));
    assert!(update.item_rows.ids.len() < ds.n_items);
    update.validate(&g).unwrap();
    // The private state moved, and it is not in the upload.
    assert_ne!(state.model.0, before.model.0);
    let private = state.model.0.flatten();
    assert!(
        !update
            .dense
            .windows(private.len().min(4))
            .any(|w| private.windows(w.len()).any(|p| p == w))
    );
}

#[test]
fn bad_inputs_are_errors() {
    let ds = small_dataset();
    let cfg = config(Backbone::FedAvg, FusionMode::full());
    let g = global(&ds, &cfg);
    let mut state = PrivateState::new(&cfg, &g, 7);
    let before = state.clone();
    let cat = catalog(&ds);
    let t = TrainConfig::default();
    let mut rng = Rng::new(1);
    assert!(train_local(&g, &cat, cfg.backbone, &mut state, &[], &t, &mut rng).is_err());
    assert!(
        train_local(
            &g,
            &cat,
            cfg.backbone,
            &mut state,
            &[ds.n_items as u32],
            &t,
            &mut rng
        )
        .is_err()
    );
    let nan = TrainConfig {
        lr: f32::NAN,
        ..t.clone()
    };
    assert!(train_local(&g, &cat, cfg.backbone, &mut state, &[0], &nan, &mut rng).is_err());
    let zero_epochs = TrainConfig { epochs: 0, ..t };
    assert!(
        train_local(
            &g,
            &cat,
            cfg.backbone,
            &mut state,
            &[0],
            &zero_epochs,
            &mut rng
        )
        .is_err()
    );
    let huge = TrainConfig {
        lr: 1e30,
        item_lr: None,
        epochs: 3,
        negatives: 1,
    };
    let err = train_local(
        &g,
        &cat,
        cfg.backbone,
        &mut state,
        &[0, 1, 2],
        &huge,
        &mut rng,
    );
    assert!(
        matches!(err, Err(fedmr_core::Error::Diverged { .. })),
        "{err:?}"
    );
    assert_eq!(state, before, "a rejected call changes nothing");
}
