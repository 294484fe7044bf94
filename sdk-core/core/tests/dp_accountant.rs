//! The RDP accountant against Google's dp-accounting (0.6.0): the fixture
//! holds its epsilon for the Gaussian mechanism composed over rounds, made
//! by `scripts/dp-fixtures.py` (the Python package is never a dependency of
//! the SDK).

use fedmr_core::privacy::{LocalDp, RdpAccountant};

#[test]
fn epsilon_matches_dp_accounting() {
    let text = include_str!("fixtures/dp_accounting.json");
    let fixture: serde_json::Value = serde_json::from_str(text).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    for case in cases {
        let noise = case["noise_to_sensitivity"].as_f64().unwrap();
        let rounds = case["rounds"].as_u64().unwrap();
        let delta = case["delta"].as_f64().unwrap();
        let expected = case["epsilon"].as_f64().unwrap();
        let mut accountant = RdpAccountant::default();
        (0..rounds).for_each(|_| accountant.spend_gaussian(noise));
        let epsilon = accountant.epsilon(delta);
        assert!(
            (epsilon - expected).abs() <= 1e-9 * expected.max(1.0),
            "noise {noise}, {rounds} rounds, delta {delta}: {epsilon} vs dp-accounting {expected}"
        );
    }
}

#[test]
fn local_dp_accounts_for_the_replace_one_sensitivity() {
    // Noise std = multiplier x clip; two users' clipped uploads may differ
    // by 2 x clip, so the mechanism's noise is half the multiplier.
    let dp = LocalDp {
        clip_norm: 0.5,
        noise_multiplier: 4.0,
    };
    assert_eq!(dp.noise_to_sensitivity(), 2.0);
}
