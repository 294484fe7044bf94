//! Local training: it learns, it is reproducible, and its update carries the
//! change of the global parameters only.

use fedmr_core::model::params::Tensors;
use fedmr_core::model::{Backbone, Catalog, Expert, FusionMode};
use fedmr_core::rng::Rng;
use fedmr_core::train::{TrainConfig, train_local};
use fedmr_test_support::Fixture;
use ndarray::s;

#[test]
fn loss_decreases_over_local_epochs() {
    let f = Fixture::new(Backbone::FedAvg);
    let mut state = f.state(7);
    let train = TrainConfig {
        item_lr: None,
        lr: 0.5,
        epochs: 30,
        negatives: 1,
        ..TrainConfig::default()
    };
    let (_, report) = f.train(&mut state, &f.users[0].train, &train, 1).unwrap();
    let (first, last) = (report.epoch_losses[0], *report.epoch_losses.last().unwrap());
    assert!(last < 0.7 * first, "loss {first} -> {last}");
}

#[test]
fn same_seed_same_update_bit_for_bit() {
    let f = Fixture::new(Backbone::FedAvg);
    let run = |seed| {
        let mut state = f.state(7);
        let (u, _) = f
            .train(&mut state, &f.users[1].train, &TrainConfig::default(), seed)
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
    let f = Fixture::new(Backbone::PFedRec);
    let mut state = f.state(7);
    let before = state.clone();
    let user = &f.users[2];
    let (update, _) = f
        .train(&mut state, &user.train, &TrainConfig::default(), 3)
        .unwrap();
    // Dense part: exactly the fusion parameters, nothing of the router or head.
    assert_eq!(update.dense.len(), f.global.dense.num_params());
    assert!(update.dense.iter().any(|&d| d != 0.0));
    // Sparse part: the positives and the sampled negatives, no other rows.
    let mut positives = user.train.clone();
    positives.sort_unstable();
    assert!(positives.iter().all(|p| update.item_rows.ids.contains(p)));
    assert!(update.item_rows.ids.len() < f.ds.n_items);
    update.validate(&f.global).unwrap();
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
    let f = Fixture::new(Backbone::FedAvg);
    let mut state = f.state(7);
    let before = state.clone();
    let t = TrainConfig::default();
    assert!(f.train(&mut state, &[], &t, 1).is_err());
    assert!(f.train(&mut state, &[f.ds.n_items as u32], &t, 1).is_err());
    let nan = TrainConfig {
        lr: f32::NAN,
        ..t.clone()
    };
    assert!(f.train(&mut state, &[0], &nan, 1).is_err());
    let zero_epochs = TrainConfig { epochs: 0, ..t };
    assert!(f.train(&mut state, &[0], &zero_epochs, 1).is_err());
    let huge = TrainConfig {
        lr: 1e30,
        item_lr: None,
        epochs: 3,
        negatives: 1,
        ..TrainConfig::default()
    };
    let err = f.train(&mut state, &[0, 1, 2], &huge, 1);
    assert!(
        matches!(err, Err(fedmr_core::Error::Diverged { .. })),
        "{err:?}"
    );
    assert_eq!(state, before, "a rejected call changes nothing");
}

#[test]
fn a_catalog_that_does_not_fit_the_model_is_an_error_and_changes_nothing() {
    let f = Fixture::new(Backbone::FedAvg);
    let mut state = f.state(7);
    let before = state.clone();
    let n = f.catalog.n_items;
    let narrower = Catalog {
        n_items: n,
        features: f
            .catalog
            .features
            .iter()
            .map(|m| m.slice(s![.., 1..]).to_owned())
            .collect(),
    };
    let shorter = Catalog {
        n_items: n - 1,
        features: f
            .catalog
            .features
            .iter()
            .map(|m| m.slice(s![1.., ..]).to_owned())
            .collect(),
    };
    let one_modality = Catalog {
        n_items: n,
        features: f.catalog.features[..1].to_vec(),
    };
    for catalog in [narrower, shorter, one_modality] {
        let err = train_local(
            &f.global,
            &catalog,
            f.cfg.backbone,
            &mut state,
            &f.users[0].train,
            &TrainConfig::default(),
            &mut Rng::new(1),
        );
        assert!(matches!(err, Err(fedmr_core::Error::Shape(_))), "{err:?}");
    }
    assert_eq!(state, before, "a rejected call changes nothing");
}

#[test]
fn the_residual_correction_steps_at_its_own_rate_and_the_head_at_lr() {
    let first_epoch = |fusion_lr| {
        let f = Fixture::with_fusion(
            Backbone::FedAvg,
            FusionMode::Residual {
                experts: Expert::ALL.to_vec(),
                evidence: false,
                fusion_lr,
                id_dropout: 0.0,
            },
        );
        let mut state = f.state(7);
        let train = TrainConfig {
            lr: 0.5,
            epochs: 1,
            ..TrainConfig::default()
        };
        let (update, _) = f.train(&mut state, &f.users[0].train, &train, 1).unwrap();
        (update.dense, state)
    };
    let (at_lr, state_a) = first_epoch(None);
    let (slow, state_b) = first_epoch(Some(0.05));
    // The first step moves only the residual's scale (it starts at zero,
    // so nothing behind it has a gradient yet), by -fusion_lr * gradient.
    assert!(at_lr.iter().any(|&d| d != 0.0));
    for (a, b) in at_lr.iter().zip(&slow) {
        assert!(
            (b - 0.1 * a).abs() <= 1e-6 * a.abs().max(1e-6),
            "{a} vs {b}"
        );
    }
    assert_eq!(state_a, state_b, "the head steps at lr either way");
}

#[test]
fn hidden_id_rows_read_as_zero_and_get_no_gradient() {
    let round = |id_dropout| {
        let f = Fixture::with_fusion(
            Backbone::FedAvg,
            FusionMode::Residual {
                experts: Expert::ALL.to_vec(),
                evidence: false,
                fusion_lr: None,
                id_dropout,
            },
        );
        let mut state = f.state(7);
        let train = TrainConfig {
            lr: 0.5,
            epochs: 1,
            ..TrainConfig::default()
        };
        f.train(&mut state, &f.users[0].train, &train, 1).unwrap().0
    };
    let kept = round(0.0);
    assert!(kept.item_rows.values.iter().any(|&v| v != 0.0));
    // Every row hidden (as near as the range allows): no row learns, the
    // correction's scale still does (from content alone).
    let hidden = round(0.999_999);
    assert_eq!(
        hidden.item_rows.ids, kept.item_rows.ids,
        "same rows touched"
    );
    assert!(hidden.item_rows.values.iter().all(|&v| v == 0.0));
    assert!(hidden.dense.iter().any(|&v| v != 0.0));
    assert_eq!(
        round(0.5),
        round(0.5),
        "the hidden rows are drawn from the round's stream"
    );
    assert_ne!(round(0.5), kept);
}
