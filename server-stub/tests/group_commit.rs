//! Uploads racing into one round through the group commit: exactly as many
//! are accepted as the round takes (the rest are told it is full or
//! closed), a retry racing its original is counted once, and the published
//! model is, bit for bit, the aggregate of the stored updates in their
//! stored order — the order a restart replays.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use fedmr_core::aggregate::{Aggregator, ServerOptimizer, ServerStep};
use fedmr_core::model::params::Tensors;
use fedmr_core::rng::Rng;
use fedmr_core::wire::UpdateMessage;
use fedmr_server::db::ServerDb;
use fedmr_server::rounds::Accepted;
use fedmr_server::{ServerConfig, ServerCore, ServerError};

const ROUND: u32 = 160;
const CLIENTS: usize = 200;
const THREADS: usize = 16;

fn message(core: &ServerCore, client: usize) -> UpdateMessage {
    let snap = core.snapshot();
    let mut rng = Rng::derive(17, &[client as u64]);
    let dim = snap.global.dim();
    let first = rng.below(20) as u32;
    UpdateMessage {
        round: snap.version,
        base_version: snap.version,
        idempotency_key: format!("key-{client}"),
        samples: 1 + rng.below(30),
        item_ids: vec![first, 20 + rng.below(20) as u32],
        item_rows: (0..2 * dim).map(|_| (rng.normal() * 0.05) as f32).collect(),
        dense: (0..snap.global.dense.num_params())
            .map(|_| (rng.normal() * 0.01) as f32)
            .collect(),
    }
}

#[test]
fn racing_uploads_fill_the_round_once_and_aggregate_in_stored_order() {
    let dir = TempDir::new("group-commit");
    let mut config = ServerConfig::new(&dir.0, ADMIN);
    config.min_updates = ROUND;
    let db_path = config.db_path();
    let core = Arc::new(open_core(config));
    let base = core.snapshot().global.clone();
    let bodies: Arc<Vec<Vec<u8>>> =
        Arc::new((0..CLIENTS).map(|c| message(&core, c).encode()).collect());

    // Each thread sends its clients' updates, every one of them twice
    // (a retry racing its original), all threads released together.
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (core, bodies, start) = (core.clone(), bodies.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (t..CLIENTS)
                    .step_by(THREADS)
                    .flat_map(|c| [c, c])
                    .map(|c| (c, core.submit(&format!("client-{c}"), &bodies[c])))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<Vec<(usize, Result<Accepted, ServerError>)>> =
        threads.into_iter().map(|h| h.join().unwrap()).collect();

    let mut new = vec![0usize; CLIENTS];
    let mut closed_by = 0;
    for (client, answer) in answers.into_iter().flatten() {
        match answer {
            Ok(Accepted::New { round_closed }) => {
                new[client] += 1;
                closed_by += usize::from(round_closed);
            }
            Ok(Accepted::Duplicate) => {}
            Err(ServerError::Stale(_)) => {}
            other => panic!("client {client}: {other:?}"),
        }
    }
    assert!(
        new.iter().all(|&n| n <= 1),
        "an update counted twice: {new:?}"
    );
    assert_eq!(new.iter().sum::<usize>(), ROUND as usize, "{new:?}");
    assert_eq!(closed_by, 1);
    assert_eq!(core.snapshot().version, 2);

    // The closed round's rows, in stored order (their payloads are freed
    // only by the next round's uploads).
    let stored = ServerDb::open(&db_path, fedmr_server::Durability::Normal)
        .unwrap()
        .updates_of(1)
        .unwrap();
    assert_eq!(stored.len(), ROUND as usize);
    let aggregate = |order: &mut dyn Iterator<Item = &Vec<u8>>| {
        let mut agg = Aggregator::new(&base, model_config().backbone)
            .with_sample_cap(fedmr_core::aggregate::DEFAULT_SAMPLE_CAP);
        for bytes in order {
            let update = UpdateMessage::decode(bytes).unwrap();
            agg.add(&base, &update.to_update(base.dim()).unwrap())
                .unwrap();
        }
        let mut global = base.clone();
        agg.apply(
            &mut global,
            &mut ServerOptimizer::new(&ServerStep::Plain { lr: 1.0 }),
        );
        global
    };
    let in_order = aggregate(&mut stored.iter().map(|u| &u.payload));
    let reversed = aggregate(&mut stored.iter().rev().map(|u| &u.payload));
    let published = &core.snapshot().global;
    assert_eq!(
        fedmr_test_support::max_difference(published, &in_order),
        0.0,
        "the published model is not the stored order's aggregate"
    );
    // The check can tell orders apart: summing in another order differs.
    assert!(fedmr_test_support::max_difference(&reversed, &in_order) > 0.0);
}
