//! Secure aggregation gives the model plain aggregation gives, within the
//! fixed-point code's rounding, on real local rounds — also when 30% of the
//! clients vanish after uploading.

use fedmr_core::aggregate::{Aggregator, ServerOptimizer, ServerStep};
use fedmr_core::model::{Backbone, GlobalModel};
use fedmr_core::secagg::{
    ClientRound, Layout, SecureAggregation, ServerRound, dequantize, normalised_weight, quantize,
};
use fedmr_core::train::TrainConfig;
use fedmr_core::update::ModelUpdate;
use fedmr_test_support::{Fixture, max_difference};

fn trained_updates(fx: &Fixture, users: usize) -> Vec<ModelUpdate> {
    let config = TrainConfig {
        lr: 0.5,
        epochs: 2,
        ..TrainConfig::default()
    };
    fx.users
        .iter()
        .take(users)
        .enumerate()
        .map(|(u, user)| {
            let mut state = fx.state(u as u64);
            fx.train(&mut state, &user.train, &config, 100 + u as u64)
                .unwrap()
                .0
        })
        .collect()
}

fn step() -> ServerOptimizer {
    ServerOptimizer::new(&ServerStep::Plain { lr: 1.0 })
}

/// The securely aggregated next model; clients in `vanish` upload their
/// masked input and are never heard from again.
fn secure_model(
    fx: &Fixture,
    updates: &[ModelUpdate],
    config: SecureAggregation,
    vanish: &[usize],
) -> (GlobalModel, usize) {
    let layout = Layout::of(&fx.global);
    let code = config.fixed_point();
    let round = 1;
    let mut server = ServerRound::new(round, config, layout.len()).unwrap();
    let mut clients: Vec<ClientRound> = (0..updates.len())
        .map(|c| ClientRound::new(round, &[c as u8 ^ 0x5a; 32]))
        .collect();
    for (c, client) in clients.iter().enumerate() {
        server.advertise(&c.to_string(), client.advert()).unwrap();
    }
    server.close_keys(7).unwrap();
    for (c, client) in clients.iter_mut().enumerate() {
        let roster = server.roster_for(&c.to_string()).unwrap().unwrap();
        let batch = client.share(&roster, &config, layout.len()).unwrap();
        server.add_shares(&c.to_string(), batch).unwrap();
    }
    server.close_shares().unwrap();
    let mut clipped = 0;
    for (c, (client, update)) in clients.iter_mut().zip(updates).enumerate() {
        let weight = normalised_weight(fx.cfg.backbone, update.samples, config.sample_cap);
        let q = quantize(update, weight, &layout, &code).unwrap();
        clipped += q.clipped;
        let inbox = server.inbox(&c.to_string()).unwrap();
        let masked = client.mask(&inbox, &q.values).unwrap();
        server.add_masked(&c.to_string(), &masked).unwrap();
    }
    let request = server.close_masked().unwrap().clone();
    for (c, client) in clients.iter_mut().enumerate() {
        if !vanish.contains(&c) {
            let response = client.unmask(&request).unwrap();
            server.add_unmask(&c.to_string(), response).unwrap();
        }
    }
    let (sum, survivors) = server.finish().unwrap();
    let sums = dequantize(&sum, survivors, &layout, &code).unwrap();
    let mut next = fx.global.clone();
    let mut agg = Aggregator::new(&fx.global, fx.cfg.backbone);
    agg.add_unmasked(&fx.global, &sums).unwrap();
    agg.apply(&mut next, &mut step());
    (next, clipped)
}

fn plain_model(fx: &Fixture, updates: &[ModelUpdate], sample_cap: u64) -> GlobalModel {
    let mut next = fx.global.clone();
    let mut agg = Aggregator::new(&fx.global, fx.cfg.backbone).with_sample_cap(sample_cap);
    updates.iter().for_each(|u| agg.add(&fx.global, u).unwrap());
    agg.apply(&mut next, &mut step());
    next
}

#[test]
fn the_secure_aggregate_is_the_plain_one_within_the_rounding() {
    for backbone in [Backbone::FedAvg, Backbone::Fcf] {
        let fx = Fixture::new(backbone);
        let updates = trained_updates(&fx, 10);
        let config = SecureAggregation {
            max_clients: 64,
            ..SecureAggregation::default()
        };
        let plain = plain_model(&fx, &updates, config.sample_cap);
        let (secure, clipped) = secure_model(&fx, &updates, config, &[2, 5, 7]);
        assert_eq!(clipped, 0, "{backbone:?}: no value reached the clip");
        // Each mean divides sums of codes rounded by at most half a step
        // each by a weight of at least one client's smallest.
        let smallest = updates
            .iter()
            .map(|u| normalised_weight(backbone, u.samples, config.sample_cap))
            .fold(f64::INFINITY, f64::min);
        let bound = (updates.len() as f64 * config.fixed_point().step() / smallest) as f32;
        let diff = max_difference(&plain, &secure);
        eprintln!("{backbone:?}: max difference {diff:e}, bound {bound:e}");
        assert!(diff <= bound, "{backbone:?}: {diff:e} > {bound:e}");
        assert!(
            max_difference(&plain, &fx.global) > 100.0 * bound,
            "the round changed the model"
        );
    }
}
