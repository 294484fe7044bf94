//! Properties of the aggregator over random rounds: how updates arrive or
//! are grouped does not change the model (within f32 rounding: every sum is
//! kept in f64 or combined from the same values), and an update that is
//! refused changes nothing.

use fedmr_core::aggregate::{AggregationRule, Aggregator, Combine, ServerOptimizer, ServerStep};
use fedmr_core::model::params::Tensors;
use fedmr_core::model::{Backbone, FusionMode, GlobalModel};
use fedmr_core::update::{ModelUpdate, SparseRows};
use fedmr_test_support::{config, global, max_difference, small_dataset};
use ndarray::Array2;
use proptest::prelude::*;

/// Largest difference tolerated between two groupings of one round: the
/// models' values are O(1) and the sums are formed in f64.
const TOLERANCE: f32 = 1e-5;

/// A random update for `g`: a sample count, some rows, small changes.
fn arb_update(n_items: u32, dim: usize, dense: usize) -> impl Strategy<Value = ModelUpdate> {
    (
        1u64..50,
        proptest::collection::btree_set(0..n_items, 0..6),
        -1.0f32..1.0,
        any::<u64>(),
    )
        .prop_map(move |(samples, ids, scale, seed)| {
            let ids: Vec<u32> = ids.into_iter().collect();
            let mut rng = fedmr_core::rng::Rng::new(seed);
            let mut value = || scale * (rng.uniform() as f32 - 0.5);
            let values = Array2::from_shape_fn((ids.len(), dim), |_| value());
            let dense = (0..dense).map(|_| value()).collect();
            ModelUpdate {
                samples,
                item_rows: SparseRows { ids, values },
                dense,
            }
        })
}

fn model() -> GlobalModel {
    global(
        &small_dataset(),
        &config(Backbone::FedAvg, FusionMode::full()),
    )
}

fn arb_round() -> impl Strategy<Value = Vec<ModelUpdate>> {
    let g = model();
    proptest::collection::vec(
        arb_update(g.n_items() as u32, g.dim(), g.dense.num_params()),
        1..8,
    )
}

fn arb_rule() -> impl Strategy<Value = AggregationRule> {
    (
        prop_oneof![
            Just(Combine::Mean),
            Just(Combine::Median),
            (0.0f32..0.45).prop_map(|trim| Combine::TrimmedMean { trim }),
        ],
        proptest::option::of(0.5f32..20.0),
        proptest::option::of(1.0f32..5.0),
    )
        .prop_map(|(combine, clip, row_clip)| AggregationRule {
            combine,
            clip,
            row_clip,
        })
}

fn apply(g: &GlobalModel, agg: Aggregator) -> GlobalModel {
    let mut next = g.clone();
    agg.apply(
        &mut next,
        &mut ServerOptimizer::new(&ServerStep::Plain { lr: 1.0 }),
    );
    next
}

fn aggregator(g: &GlobalModel, rule: AggregationRule) -> Aggregator {
    Aggregator::new(g, Backbone::FedAvg)
        .with_sample_cap(40)
        .with_rule(rule)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arrival order and grouping (partial aggregates merged, as a server
    /// aggregating in parallel would) give the same model.
    #[test]
    fn grouping_and_order_do_not_change_the_model(
        updates in arb_round(),
        rule in arb_rule(),
        split in any::<prop::sample::Index>(),
        shuffle_seed in any::<u64>(),
    ) {
        let g = model();
        let mut one = aggregator(&g, rule);
        for u in &updates {
            one.add(&g, u).unwrap();
        }
        let mut shuffled = updates.clone();
        fedmr_core::rng::Rng::new(shuffle_seed).shuffle(&mut shuffled);
        let at = split.index(shuffled.len() + 1);
        let (left, right) = shuffled.split_at(at);
        let mut a = aggregator(&g, rule);
        left.iter().for_each(|u| a.add(&g, u).unwrap());
        let mut b = aggregator(&g, rule);
        right.iter().for_each(|u| b.add(&g, u).unwrap());
        a.merge(b).unwrap();
        prop_assert_eq!(a.updates(), updates.len());
        let d = max_difference(&apply(&g, one), &apply(&g, a));
        prop_assert!(d <= TOLERANCE, "models differ by {}", d);
    }

    /// A refused update (here: one non-finite value, or a row out of
    /// range), wherever it arrives, leaves the result as if it never came.
    #[test]
    fn a_refused_update_changes_nothing(
        updates in arb_round(),
        rule in arb_rule(),
        at in any::<prop::sample::Index>(),
        kind in 0..3u8,
    ) {
        let g = model();
        let mut bad = updates[0].clone();
        match kind {
            0 => bad.dense[0] = f32::NAN,
            1 => bad.samples = 0,
            _ => {
                bad.item_rows = SparseRows {
                    ids: vec![g.n_items() as u32],
                    values: Array2::zeros((1, g.dim())),
                }
            }
        }
        let at = at.index(updates.len() + 1);
        let mut with_bad = aggregator(&g, rule);
        for (i, u) in updates.iter().enumerate() {
            if i == at {
                prop_assert!(with_bad.add(&g, &bad).is_err());
            }
            with_bad.add(&g, u).unwrap();
        }
        if at == updates.len() {
            prop_assert!(with_bad.add(&g, &bad).is_err());
        }
        let mut without = aggregator(&g, rule);
        updates.iter().for_each(|u| without.add(&g, u).unwrap());
        prop_assert_eq!(apply(&g, with_bad), apply(&g, without));
    }

    /// Whatever the rule, a dense value moves no further than the clients'
    /// own changes of it reach (the mean and every robust rule stay within
    /// the range of what was sent).
    #[test]
    fn the_round_stays_within_the_range_of_the_updates(
        updates in arb_round(),
        rule in arb_rule(),
    ) {
        let g = model();
        let mut agg = aggregator(&g, AggregationRule { clip: None, ..rule });
        updates.iter().for_each(|u| agg.add(&g, u).unwrap());
        let next = apply(&g, agg);
        let (before, after) = (g.dense.flatten(), next.dense.flatten());
        for j in 0..before.len() {
            let sent = updates.iter().map(|u| u.dense[j]);
            let lo = sent.clone().fold(f32::INFINITY, f32::min);
            let hi = sent.fold(f32::NEG_INFINITY, f32::max);
            let moved = after[j] - before[j];
            prop_assert!(moved >= lo - 1e-5 && moved <= hi + 1e-5, "{} not in [{}, {}]", moved, lo, hi);
        }
    }
}
