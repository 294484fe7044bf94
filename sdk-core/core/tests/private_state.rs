//! Private state (router, head or NeuMF user embeddings, PFedRec's and
//! FedRAP's personal item rows) survives across rounds, is what scoring
//! uses, and differs between users.

use fedmr_core::model::Backbone;
use fedmr_core::model::head::UserHead;
use fedmr_core::rank::{ItemViews, preference, score_all};
use fedmr_core::train::TrainConfig;
use fedmr_test_support::Fixture;

fn step() -> TrainConfig {
    TrainConfig {
        lr: 0.3,
        ..TrainConfig::default()
    }
}

#[test]
fn private_state_carries_over_between_rounds() {
    let f = Fixture::new(Backbone::PFedRec);
    let user = &f.users[0];

    let mut kept = f.state(9);
    f.train(&mut kept, &user.train, &step(), 1).unwrap();
    let after_round_1 = kept.clone();
    assert!(
        after_round_1.personal_items.0.is_some(),
        "PFedRec keeps its rows"
    );

    // Round 2 starting from the kept state differs from one starting afresh:
    // the state is carried, not re-initialised.
    let mut fresh = f.state(9);
    f.train(&mut kept, &user.train, &step(), 2).unwrap();
    f.train(&mut fresh, &user.train, &step(), 2).unwrap();
    assert_ne!(kept.model.0, fresh.model.0);
    assert_ne!(kept.model.0, after_round_1.model.0);
}

#[test]
fn scoring_uses_the_private_head_router_and_personal_rows() {
    let f = Fixture::new(Backbone::PFedRec);
    let (g, cat) = (&f.global, &f.catalog);
    let user = &f.users[0];
    let mut state = f.state(9);
    f.train(&mut state, &user.train, &step(), 1).unwrap();
    let views = ItemViews::compute(g, cat);
    let scores = score_all(g, cat, &views, &state, &user.train);

    let mut other_head = state.clone();
    let UserHead::Linear(head) = &mut other_head.model.0.head else {
        panic!("PFedRec has a linear head");
    };
    head.theta.mapv_inplace(|v| -v);
    assert_ne!(scores, score_all(g, cat, &views, &other_head, &user.train));

    let mut other_router = state.clone();
    other_router.model.0.router.as_mut().unwrap().out.b[0] += 3.0;
    assert_ne!(
        scores,
        score_all(g, cat, &views, &other_router, &user.train)
    );

    // Items with personal rows are scored from them; the others from the global rows.
    let personal = state.personal_items.0.clone().unwrap();
    let mut no_rows = state.clone();
    no_rows.personal_items.0 = None;
    let plain = score_all(g, cat, &views, &no_rows, &user.train);
    let touched = |i: usize| personal.ids.binary_search(&(i as u32)).is_ok();
    assert!(
        (0..f.ds.n_items)
            .filter(|&i| touched(i))
            .any(|i| scores[i] != plain[i])
    );
}

#[test]
fn users_with_different_histories_get_different_router_weights() {
    let f = Fixture::new(Backbone::FedAvg);
    let (g, cat) = (&f.global, &f.catalog);
    let views = ItemViews::compute(g, cat);
    // Same private parameters, different histories: the context alone moves the weights.
    let state = f.state(4);
    let a = preference(g, cat, &views, &state, &f.users[0].train);
    let b = preference(g, cat, &views, &state, &f.users[1].train);
    assert!((a.sum() - 1.0).abs() < 1e-5 && (b.sum() - 1.0).abs() < 1e-5);
    assert!(
        a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-4),
        "{a} vs {b}"
    );
}

#[test]
fn fedrap_personal_rows_accumulate_and_are_added_to_the_view() {
    let f = Fixture::new(Backbone::FedRap);
    let (g, cat) = (&f.global, &f.catalog);
    let user = &f.users[0];
    let mut state = f.state(9);
    let round = |r: u64| TrainConfig { round: r, ..step() };
    f.train(&mut state, &user.train, &round(1), 1).unwrap();
    let first = state.personal_items.0.clone().expect("FedRAP keeps P_u");
    f.train(&mut state, &user.train, &round(2), 2).unwrap();
    let second = state.personal_items.0.clone().unwrap();
    // Rows of round 1 stay (each round samples other negatives).
    assert!(
        first
            .ids
            .iter()
            .all(|id| second.ids.binary_search(id).is_ok())
    );
    assert!(second.ids.len() > first.ids.len());

    let views = ItemViews::compute(g, cat);
    let with = score_all(g, cat, &views, &state, &user.train);
    let mut without_rows = state.clone();
    without_rows.personal_items.0 = None;
    let without = score_all(g, cat, &views, &without_rows, &user.train);
    for i in 0..f.ds.n_items {
        let personal = second.ids.binary_search(&(i as u32)).is_ok();
        assert_eq!(with[i] != without[i], personal, "item {i}");
    }
}

#[test]
fn fedncf_user_embeddings_are_private_and_carried_over() {
    let f = Fixture::new(Backbone::FedNcf);
    let (g, cat) = (&f.global, &f.catalog);
    let user = &f.users[0];
    let mut kept = f.state(9);
    let before = kept.clone();
    let (update, _) = f.train(&mut kept, &user.train, &step(), 1).unwrap();
    assert!(matches!(kept.model.0.head, UserHead::NeuMf(_)));
    assert_ne!(kept.model.0.head, before.model.0.head, "embeddings trained");
    // The upload carries the towers (global), never the user embeddings.
    use fedmr_core::model::params::Tensors;
    assert_eq!(update.dense.len(), g.dense.num_params());
    assert!(g.ncf().is_some() && g.ncf().unwrap().num_params() > 0);
    assert!(kept.personal_items.0.is_none());

    let views = ItemViews::compute(g, cat);
    let scores = score_all(g, cat, &views, &kept, &user.train);
    assert_ne!(scores, score_all(g, cat, &views, &before, &user.train));
}
