//! The aggregator: weighted averages, sparse rows averaged over the clients
//! that touched them, bad updates rejected without effect.

use fedmr_core::aggregate::{AggregationRule, Aggregator, Combine, ServerOptimizer, ServerStep};
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
    aggregate_by(backbone, AggregationRule::default(), updates)
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

fn aggregate_by(
    backbone: Backbone,
    rule: AggregationRule,
    updates: &[ModelUpdate],
) -> (GlobalModel, GlobalModel) {
    let ds = small_dataset();
    let g = global(&ds, &config(backbone, FusionMode::full()));
    let mut next = g.clone();
    let mut agg = Aggregator::new(&g, backbone).with_rule(rule);
    updates.iter().for_each(|u| agg.add(&g, u).unwrap());
    agg.apply(
        &mut next,
        &mut ServerOptimizer::new(&ServerStep::Plain { lr: 1.0 }),
    );
    (g, next)
}

#[test]
fn median_and_trimmed_mean_ignore_a_poisoner_that_the_mean_follows() {
    let ds = small_dataset();
    let g = global(&ds, &config(Backbone::FedAvg, FusionMode::full()));
    // Four honest clients move row 1 and the dense values by 1; a fifth
    // declares a huge sample count and moves them by 1,000.
    let mut ups: Vec<ModelUpdate> = (0..4).map(|_| update(&g, 10, &[1], 1.0, 1.0)).collect();
    ups.push(update(&g, 1_000_000, &[1, 7], 1000.0, 1000.0));
    let d = |(base, m): &(GlobalModel, GlobalModel), id: usize| {
        m.items.0.0[(id, 0)] - base.items.0.0[(id, 0)]
    };
    let dense =
        |(base, m): &(GlobalModel, GlobalModel)| m.dense.flatten()[0] - base.dense.flatten()[0];
    let mean = aggregate_by(Backbone::FedAvg, AggregationRule::default(), &ups);
    assert!(
        d(&mean, 1) > 900.0,
        "the weighted mean follows the poisoner"
    );
    let rule = |combine| AggregationRule {
        combine,
        ..AggregationRule::default()
    };
    let median = aggregate_by(Backbone::FedAvg, rule(Combine::Median), &ups);
    assert!((d(&median, 1) - 1.0).abs() < 1e-5);
    assert!((dense(&median) - 1.0).abs() < 1e-5);
    let trimmed = aggregate_by(
        Backbone::FedAvg,
        rule(Combine::TrimmedMean { trim: 0.2 }),
        &ups,
    );
    assert!((d(&trimmed, 1) - 1.0).abs() < 1e-5);
    assert!((dense(&trimmed) - 1.0).abs() < 1e-5);
    // A row only the poisoner touched is its own (per-row rules cannot
    // outvote nobody): the clip bounds it.
    assert!((d(&median, 7) - 1000.0).abs() < 1e-2);
    let clipped = aggregate_by(
        Backbone::FedAvg,
        AggregationRule {
            combine: Combine::Median,
            clip: Some(1.0),
            row_clip: None,
        },
        &ups,
    );
    assert!(d(&clipped, 7).abs() <= 1.0, "{}", d(&clipped, 7));
}

#[test]
fn clipping_scales_an_update_down_to_the_bound() {
    let ds = small_dataset();
    let g = global(&ds, &config(Backbone::Fcf, FusionMode::full()));
    let big = update(&g, 1, &[2], 3.0, 3.0);
    let norm = big.l2_norm();
    let (base, next) = aggregate_by(
        Backbone::Fcf,
        AggregationRule {
            combine: Combine::Mean,
            clip: Some(norm / 3.0),
            row_clip: None,
        },
        &[big],
    );
    let change = next.items.0.0[(2, 0)] - base.items.0.0[(2, 0)];
    assert!((change - 1.0).abs() < 1e-4, "{change}");
}

#[test]
fn a_robust_rule_refuses_a_secure_rounds_sums() {
    let ds = small_dataset();
    let g = global(&ds, &config(Backbone::Fcf, FusionMode::full()));
    let layout = fedmr_core::secagg::Layout::of(&g);
    let code = fedmr_core::secagg::SecureAggregation::default().fixed_point();
    let u = update(&g, 1, &[2], 0.1, 0.1);
    let q = fedmr_core::secagg::quantize(&u, 1.0, &layout, &code).unwrap();
    let sums = fedmr_core::secagg::dequantize(&q.values, 1, &layout, &code).unwrap();
    let mut plain = Aggregator::new(&g, Backbone::Fcf);
    plain.add_unmasked(&g, &sums).unwrap();
    let mut robust = Aggregator::new(&g, Backbone::Fcf).with_rule(AggregationRule {
        combine: Combine::Median,
        ..AggregationRule::default()
    });
    assert!(robust.add_unmasked(&g, &sums).is_err());
}

#[test]
fn row_clipping_bounds_a_push_by_the_rounds_median_row_change() {
    let ds = small_dataset();
    let g = global(&ds, &config(Backbone::Fcf, FusionMode::full()));
    // Four honest clients move rows 1 and 2 by 1 per value; a poisoner
    // moves row 1 by 1,000 per value.
    let mut ups: Vec<ModelUpdate> = (0..4).map(|_| update(&g, 1, &[1, 2], 1.0, 0.0)).collect();
    ups.push(update(&g, 1, &[1], 1000.0, 0.0));
    let d = |(base, m): &(GlobalModel, GlobalModel), id: usize| {
        m.items.0.0[(id, 0)] - base.items.0.0[(id, 0)]
    };
    let plain = aggregate_by(Backbone::Fcf, AggregationRule::default(), &ups);
    assert!((d(&plain, 1) - 1004.0 / 5.0).abs() < 1e-3);
    let clipped = aggregate_by(
        Backbone::Fcf,
        AggregationRule {
            row_clip: Some(3.0),
            ..AggregationRule::default()
        },
        &ups,
    );
    // Row 1's median change is an honest one: the poisoner's change of it
    // is cut to three times that, so row 1 moves by (4 + 3) / 5; row 2,
    // which only honest clients touched, as before.
    assert!(
        (d(&clipped, 1) - 7.0 / 5.0).abs() < 1e-4,
        "{}",
        d(&clipped, 1)
    );
    assert!((d(&clipped, 2) - 1.0).abs() < 1e-5);
}
