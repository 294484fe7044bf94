//! Non-learned scorers for [`evaluate`](crate::eval::evaluate): the floor a
//! trained model has to clear. On KU, cold-first is the one that matters: it
//! shows how much of a score comes from ranking never-seen items first.

use fedmr_core::rng::Rng;
use ndarray::{Array2, Axis};

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

/// Popularity as a deployed list orders it: by count, equal counts by item
/// id (lower first), so no two items tie. (`popularity` leaves ties, which
/// the evaluation counts against the target.)
pub fn popularity_by_id(train_counts: &[u32]) -> impl FnMut(usize) -> Vec<f32> + use<> {
    let mut order: Vec<usize> = (0..train_counts.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(train_counts[i]), i));
    let mut scores = vec![0f32; train_counts.len()];
    for (position, &i) in order.iter().enumerate() {
        scores[i] = (train_counts.len() - position) as f32;
    }
    move |_| scores.clone()
}

/// Content kNN (item-based, on content): a user's score of item i is the
/// sum of the `k` highest cosine similarities between i and the user's
/// training items, over each modality's L2-normalised features side by
/// side. It needs no interaction with i, so it ranks new items too.
pub fn content_knn(
    modalities: &[Array2<f32>],
    histories: Vec<Vec<u32>>,
    k: usize,
) -> impl FnMut(usize) -> Vec<f32> + use<> {
    let n = modalities.first().map_or(0, |m| m.nrows());
    let width: usize = modalities.iter().map(|m| m.ncols()).sum();
    let scale = 1.0 / (modalities.len().max(1) as f32).sqrt();
    let mut unit = Array2::<f32>::zeros((n, width));
    let mut col = 0;
    for m in modalities {
        for (mut dst, src) in unit
            .slice_mut(ndarray::s![.., col..col + m.ncols()])
            .axis_iter_mut(Axis(0))
            .zip(m.axis_iter(Axis(0)))
        {
            let norm = src.dot(&src).sqrt();
            if norm > 0.0 {
                dst.assign(&src.mapv(|v| v * scale / norm));
            }
        }
        col += m.ncols();
    }
    move |user| {
        let history = &histories[user];
        if history.is_empty() {
            return vec![0.0; n];
        }
        let rows: Vec<usize> = history.iter().map(|&i| i as usize).collect();
        let similarity = unit.dot(&unit.select(Axis(0), &rows).t()); // n x |history|
        similarity
            .axis_iter(Axis(0))
            .map(|sims| {
                let mut s = sims.to_vec();
                let top = k.min(s.len());
                s.select_nth_unstable_by(top - 1, |a, b| b.total_cmp(a));
                s[..top].iter().sum()
            })
            .collect()
    }
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
    fn popularity_by_id_breaks_ties_by_id() {
        let s = popularity_by_id(&[3, 0, 7, 3, 0])(0);
        // 2 (7), then 0 and 3 (3, by id), then 1 and 4 (0, by id).
        let mut order: Vec<usize> = (0..5).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        assert_eq!(order, [2, 0, 3, 1, 4]);
    }

    #[test]
    fn content_knn_sums_the_nearest_history_items() {
        // Items on a circle: 0 at angle 0, 1 at 90 degrees, 2 at 45, 3 at 180.
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let text = ndarray::arr2(&[[1.0, 0.0], [0.0, 2.0], [h, h], [-1.0, 0.0]]);
        let mut knn = content_knn(std::slice::from_ref(&text), vec![vec![0, 1]], 1);
        let s = knn(0);
        assert!(
            (s[2] - h).abs() < 1e-6,
            "nearest of 0 and 1 to item 2: cos 45"
        );
        assert!(
            s[3].abs() < 1e-6,
            "item 3 is orthogonal to item 1, opposite item 0"
        );
        let both = content_knn(&[text], vec![vec![0, 1]], 2)(0);
        assert!((both[2] - 2.0 * h).abs() < 1e-6);
        assert!((both[3] + 1.0).abs() < 1e-6);
    }

    #[test]
    fn cold_first_puts_cold_items_above_the_most_popular() {
        let s = cold_first(&[3, 0, 70_000, 0])(0);
        assert!(s[1] > s[2] && s[3] == s[1] && s[2] > s[0]);
    }
}
