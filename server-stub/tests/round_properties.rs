//! The round state machine against a model of it, over random sequences
//! of submissions (new, duplicate, second key, invalid, late for a closed
//! round) and restarts: the server's answers, its open round and every
//! model it publishes are what the model says — each accepted update
//! counted exactly once, a duplicate or a refused update changing nothing.

mod common;

use std::collections::HashMap;

use common::*;
use fedmr_core::aggregate::{Aggregator, ServerOptimizer, ServerStep};
use fedmr_core::model::GlobalModel;
use fedmr_core::model::params::Tensors;
use fedmr_core::rng::Rng;
use fedmr_core::wire::UpdateMessage;
use fedmr_server::rounds::Accepted;
use fedmr_server::{ServerConfig, ServerCore, ServerError};
use proptest::prelude::*;

const MIN_UPDATES: u32 = 3;

#[derive(Clone, Debug)]
enum Op {
    /// Client `client` sends its update with key number `key` for the open
    /// round (`late`: for the round before it); `invalid` carries a NaN.
    Submit {
        client: u8,
        key: u8,
        late: bool,
        invalid: bool,
    },
    Restart,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..5, 0u8..2, prop::bool::weighted(0.15), prop::bool::weighted(0.1))
            .prop_map(|(client, key, late, invalid)| Op::Submit { client, key, late, invalid }),
        1 => Just(Op::Restart),
    ]
}

fn message(global: &GlobalModel, round: u64, client: u8, key: u8, invalid: bool) -> UpdateMessage {
    let mut rng = Rng::derive(round, &[client as u64, key as u64]);
    let dim = global.dim();
    let ids = vec![rng.below(30) as u32, 30 + rng.below(30) as u32];
    let mut dense: Vec<f32> = (0..global.dense.num_params())
        .map(|_| (rng.normal() * 0.01) as f32)
        .collect();
    if invalid {
        dense[0] = f32::NAN;
    }
    UpdateMessage {
        round,
        base_version: round,
        idempotency_key: format!("{client}-{key}"),
        samples: 1 + rng.below(20),
        item_ids: ids,
        item_rows: (0..2 * dim).map(|_| (rng.normal() * 0.05) as f32).collect(),
        dense,
    }
}

/// What the server should hold.
struct Model {
    version: u64,
    global: GlobalModel,
    /// Open round: client -> (key, update), in arrival order.
    open: Vec<(u8, u8, UpdateMessage)>,
    /// Keys counted in the last closed round.
    closed: HashMap<u8, u8>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_server_follows_its_model(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let dir = TempDir::new("round-props");
        let config = || {
            let mut c = ServerConfig::new(&dir.0, ADMIN);
            c.min_updates = MIN_UPDATES;
            c
        };
        let mut core: ServerCore = open_core(config());
        let mut model = Model {
            version: 1,
            global: core.snapshot().global.clone(),
            open: Vec::new(),
            closed: HashMap::new(),
        };
        for op in ops {
            match op {
                Op::Restart => {
                    drop(core);
                    core = open_core(config());
                }
                Op::Submit { client, key, late, invalid } => {
                    let round = if late { model.version - 1 } else { model.version };
                    let m = message(&model.global, round, client, key, invalid);
                    let got = core.submit(&format!("c{client}"), &m.encode());
                    // The round is checked first: a late update is a
                    // duplicate (by its key) or stale, whatever it holds.
                    if late {
                        if model.closed.get(&client) == Some(&key) && round > 0 {
                            prop_assert_eq!(got.unwrap(), Accepted::Duplicate);
                        } else {
                            prop_assert!(matches!(got, Err(ServerError::Stale(_))), "{:?}", got);
                        }
                    } else if invalid {
                        prop_assert!(matches!(got, Err(ServerError::Invalid(_))), "{:?}", got);
                    } else if let Some((_, k, _)) = model.open.iter().find(|(c, _, _)| *c == client) {
                        if *k == key {
                            prop_assert_eq!(got.unwrap(), Accepted::Duplicate);
                        } else {
                            prop_assert!(matches!(got, Err(ServerError::AlreadySubmitted(_))), "{:?}", got);
                        }
                    } else {
                        model.open.push((client, key, m));
                        let closes = model.open.len() as u32 == MIN_UPDATES;
                        prop_assert_eq!(got.unwrap(), Accepted::New { round_closed: closes });
                        if closes {
                            let mut agg = Aggregator::new(&model.global, model_config().backbone)
                                .with_sample_cap(fedmr_core::aggregate::DEFAULT_SAMPLE_CAP);
                            for (_, _, u) in &model.open {
                                agg.add(&model.global, &u.to_update(model.global.dim()).unwrap()).unwrap();
                            }
                            agg.apply(&mut model.global, &mut ServerOptimizer::new(&ServerStep::Plain { lr: 1.0 }));
                            model.closed = model.open.drain(..).map(|(c, k, _)| (c, k)).collect();
                            model.version += 1;
                        }
                    }
                }
            }
            let snap = core.snapshot();
            prop_assert_eq!(snap.version, model.version);
            prop_assert_eq!(core.round_message().accepted as usize, model.open.len());
            let d = fedmr_test_support::max_difference(&snap.global, &model.global);
            prop_assert!(d <= 1e-6, "published model differs by {}", d);
        }
    }
}
