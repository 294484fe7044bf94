//! The aggregator: weighted averages, sparse rows averaged over the clients
//! that touched them, bad updates rejected without effect.

use fedmr_core::aggregate::{Aggregator, ServerOptimizer, ServerStep};
use fedmr_core::model::params::Tensors;
use fedmr_core::model::{Backbone, FusionMode, GlobalModel};
use fedmr_core::update::{ModelUpdate, SparseRows};
use fedmr_test_support::{config, global, small_dataset};
use ndarray::Array2;

fn update(
    g: &GlobalModel,
    samples: u64,
    ids: &[u32],
    row_value: f32,
    dense_value: f32,
) -> ModelUpdate {
    ModelUpdate {
        samples,
        item_rows: SparseRows {
            ids: ids.to_vec(),
            values: Array2::from_elem((ids.len(), g.dim()), row_value),
        },
        dense: vec![dense_value; g.dense.num_params()],
    }
}

fn aggregate(backbone: Backbone, updates: &[ModelUpdate]) -> (GlobalModel, GlobalModel) {
    let ds = small_dataset();
    let g = global(&ds, &config(backbone, FusionMode::full()));
    let mut next = g.clone();
    let mut agg = Aggregator::new(&g, backbone);
    updates.iter().for_each(|u| agg.add(&g, u).unwrap());
    agg.apply(
        &mut next,
        &mut ServerOptimizer::new(&ServerStep::Plain { lr: 1.0 }),
    );
    (g, next)
}

#[test]
fn fedavg_weights_by_samples_and_fcf_equally() {
    let ds = small_dataset();
    let g = global(&ds, &config(Backbone::FedAvg, FusionMode::full()));
    let ups = [
        update(&g, 3, &[1], 1.0, 1.0),
        update(&g, 1, &[1, 2], 5.0, 5.0),
    ];
    let (base, fedavg) = aggregate(Backbone::FedAvg, &ups);
    let (_, fcf) = aggregate(Backbone::Fcf, &ups);
    let d = |m: &GlobalModel, id: usize| m.items.0.0[(id, 0)] - base.items.0.0[(id, 0)];
    let dense = |m: &GlobalModel| m.dense.flatten()[0] - base.dense.flatten()[0];
    assert!((d(&fedavg, 1) - 2.0).abs() < 1e-5); // (3*1 + 1*5) / 4
    assert!((d(&fcf, 1) - 3.0).abs() < 1e-5); // (1 + 5) / 2
    // Row 2 was touched by one client only: its own change, not diluted.
    assert!((d(&fedavg, 2) - 5.0).abs() < 1e-5);
    assert_eq!(d(&fedavg, 3), 0.0);
    assert!((dense(&fedavg) - 2.0).abs() < 1e-5);
    assert!((dense(&fcf) - 3.0).abs() < 1e-5);
}

#[test]
fn invalid_updates_are_rejected_and_change_nothing() {
    let ds = small_dataset();
    let g = global(&ds, &config(Backbone::FedAvg, FusionMode::full()));
    let good = update(&g, 2, &[1, 4], 1.0, 1.0);
    let mut bads = Vec::new();
    let mut u = good.clone();
    u.dense[3] = f32::NAN;
    bads.push(u);
    let mut u = good.clone();
    u.item_rows.values[(0, 0)] = f32::INFINITY;
    bads.push(u);
    let mut u = good.clone();
    u.dense.pop();
    bads.push(u);
    bads.push(update(&g, 2, &[ds.n_items as u32], 1.0, 1.0)); // row out of range
    bads.push(update(&g, 2, &[4, 1], 1.0, 1.0)); // unsorted
    bads.push(update(&g, 2, &[1, 1], 1.0, 1.0)); // duplicate
    bads.push(update(&g, 0, &[1], 1.0, 1.0)); // no samples
    let mut u = good.clone();
    u.item_rows.values = Array2::zeros((2, g.dim() + 1));
    bads.push(u);

    let mut agg = Aggregator::new(&g, Backbone::FedAvg);
    agg.add(&g, &good).unwrap();
    for bad in &bads {
        assert!(agg.add(&g, bad).is_err());
    }
    assert_eq!(agg.updates(), 1);
    let mut with_bad = g.clone();
    agg.apply(
        &mut with_bad,
        &mut ServerOptimizer::new(&ServerStep::Plain { lr: 1.0 }),
    );
    let (_, only_good) = aggregate(Backbone::FedAvg, &[good]);
    assert_eq!(with_bad, only_good);
}

#[test]
fn server_adam_moves_dense_parameters_by_its_step_size() {
    let ds = small_dataset();
    let g = global(&ds, &config(Backbone::FedAvg, FusionMode::full()));
    let mut next = g.clone();
    let mut agg = Aggregator::new(&g, Backbone::FedAvg);
    agg.add(&g, &update(&g, 1, &[0], 0.0, 0.3)).unwrap();
    agg.apply(
        &mut next,
        &mut ServerOptimizer::new(&ServerStep::Adam { lr: 0.01 }),
    );
    let step = next.dense.flatten()[0] - g.dense.flatten()[0];
    // Adam's first step is lr * sign(change), whatever the change's size.
    assert!((step - 0.01).abs() < 1e-4, "{step}");
}

#[test]
fn no_updates_leave_the_model_as_it_was() {
    let (base, next) = aggregate(Backbone::FedAvg, &[]);
    assert_eq!(base, next);
}
