//! Non-learned scorers for [`evaluate`](crate::eval::evaluate): the floor a
//! trained model has to clear. On KU, cold-first is the one that matters: it
//! shows how much of a score comes from ranking never-seen items first.

use fedmr_core::rng::Rng;

/// Uniform random scores, a fresh stream per user so results do not depend on
/// evaluation order.
pub fn random(n_items: usize, seed: u64) -> impl FnMut(usize) -> Vec<f32> {
    move |user| {
        let mut r = Rng::derive(seed, &[user as u64]);
        (0..n_items).map(|_| r.uniform() as f32).collect()
    }
}

/// Score = number of users with the item in training: the same ranking for all.
pub fn popularity(train_counts: &[u32]) -> impl FnMut(usize) -> Vec<f32> + use<> {
    let scores: Vec<f32> = train_counts.iter().map(|&c| c as f32).collect();
    move |_| scores.clone()
}

/// Cold items (count 0) above all warm ones, warm ones by popularity. The cold
/// items tie with one another, and ties count against the target.
pub fn cold_first(train_counts: &[u32]) -> impl FnMut(usize) -> Vec<f32> + use<> {
    let scores: Vec<f32> = train_counts
        .iter()
        .map(|&c| if c == 0 { 1e9 } else { c as f32 })
        .collect();
    move |_| scores.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_seeded_per_user() {
        let mut a = random(20, 5);
        let mut b = random(20, 5);
        let (a1, a0) = (a(1), a(0));
        assert_eq!(a0, b(0), "order of evaluation does not matter");
        assert_eq!(a1, b(1));
        assert_ne!(a0, a1);
        assert_ne!(a0, random(20, 6)(0));
        assert!(a0.len() == 20 && a0.iter().all(|s| (0.0..1.0).contains(s)));
    }

    #[test]
    fn popularity_scores_are_counts() {
        assert_eq!(popularity(&[3, 0, 7])(42), [3.0, 0.0, 7.0]);
    }

    #[test]
    fn cold_first_puts_cold_items_above_the_most_popular() {
        let s = cold_first(&[3, 0, 70_000, 0])(0);
        assert!(s[1] > s[2] && s[3] == s[1] && s[2] > s[0]);
    }
}
