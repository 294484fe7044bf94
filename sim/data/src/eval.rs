//! The paper's evaluation protocol: full ranking over all items, the user's
//! training items masked (and, for test, the validation item), HR@K and
//! NDCG@K with a single target, ties counted against the target.
//!
//! Ties are pessimistic on purpose: a model whose scores saturate must not earn
//! hits from the order in which a top-k routine returns equal scores (the
//! authors' code does exactly that). Reports split users by whether their
//! target item is cold, because on KU most of a score can come from cold
//! targets alone.

use fedmr_core::data::UserData;

/// Which held-out item is the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Target {
    Valid,
    Test,
}

/// The cut-offs every report carries: the paper's 50, and 10 and 20 because
/// HR@50 alone cannot tell personalisation from a good global ranking.
pub const KS: [usize; 3] = [10, 20, 50];

/// Position of a target among its candidates (0 = top).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranked {
    /// Candidates scoring strictly higher plus those tying with the target.
    pub rank: usize,
    /// Candidates tying with the target (NaN candidates count as ties).
    pub ties: usize,
}

/// Ranks `target` among all other non-excluded items in one pass.
///
/// Candidates are every index of `scores` except the target and `excluded`
/// (which may be unsorted, repeat, or contain ids out of range; an exclusion
/// of the target itself is ignored). A NaN candidate counts against the
/// target as a tie. A NaN target, or a target outside `scores`, ranks last:
/// rank = ties = the number of candidates.
pub fn rank_of(scores: &[f32], target: u32, excluded: &[u32]) -> Ranked {
    let n = scores.len();
    let t = target as usize;
    let mut masked = vec![false; n];
    let mut n_masked = 0;
    for &e in excluded {
        let e = e as usize;
        if e < n && e != t && !masked[e] {
            masked[e] = true;
            n_masked += 1;
        }
    }
    let Some(&target_score) = scores.get(t) else {
        let candidates = n - n_masked;
        return Ranked {
            rank: candidates,
            ties: candidates,
        };
    };
    if target_score.is_nan() {
        let candidates = n - 1 - n_masked;
        return Ranked {
            rank: candidates,
            ties: candidates,
        };
    }
    let (mut higher, mut ties) = (0, 0);
    for (i, &s) in scores.iter().enumerate() {
        if i == t || masked[i] {
            continue;
        }
        if s > target_score {
            higher += 1;
        } else if s == target_score || s.is_nan() {
            ties += 1;
        }
    }
    Ranked {
        rank: higher + ties,
        ties,
    }
}

/// 1/log2(rank + 2) if the target is in the top `k`, else 0.
pub fn ndcg_at_rank(rank: usize, k: usize) -> f64 {
    if rank < k {
        1.0 / ((rank + 2) as f64).log2()
    } else {
        0.0
    }
}

/// Means over users, as fractions in [0, 1], one entry per K in [`KS`].
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Metrics {
    pub users: usize,
    pub hr: Vec<(usize, f64)>,
    pub ndcg: Vec<(usize, f64)>,
    /// Mean number of candidates tying with the target.
    pub mean_ties: f64,
}

impl Metrics {
    /// Aggregates ranks; with no users every value is 0.
    pub fn from_ranks(ranks: &[Ranked]) -> Metrics {
        let n = ranks.len().max(1) as f64;
        let mean = |f: &dyn Fn(&Ranked) -> f64| ranks.iter().map(f).sum::<f64>() / n;
        Metrics {
            users: ranks.len(),
            hr: KS
                .iter()
                .map(|&k| (k, mean(&|r| f64::from(u8::from(r.rank < k)))))
                .collect(),
            ndcg: KS
                .iter()
                .map(|&k| (k, mean(&|r| ndcg_at_rank(r.rank, k))))
                .collect(),
            mean_ties: mean(&|r| r.ties as f64),
        }
    }

    /// HR@k, if k is one of [`KS`].
    pub fn hr_at(&self, k: usize) -> Option<f64> {
        lookup(&self.hr, k)
    }

    /// NDCG@k, if k is one of [`KS`].
    pub fn ndcg_at(&self, k: usize) -> Option<f64> {
        lookup(&self.ndcg, k)
    }
}

fn lookup(values: &[(usize, f64)], k: usize) -> Option<f64> {
    values.iter().find(|(kk, _)| *kk == k).map(|(_, v)| *v)
}

/// In percent, the way the paper reports: `HR@10 4.90 HR@20 ... NDCG@50 5.35 (204 users, ties 0.0)`.
impl std::fmt::Display for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, v) in &self.hr {
            write!(f, "HR@{k} {:.2} ", v * 100.0)?;
        }
        for (k, v) in &self.ndcg {
            write!(f, "NDCG@{k} {:.2} ", v * 100.0)?;
        }
        write!(f, "({} users, ties {:.1})", self.users, self.mean_ties)
    }
}

/// Metrics over all evaluated users, and over those whose target item is
/// cold (no training interaction by anyone) or warm.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct EvalReport {
    pub all: Metrics,
    pub cold: Metrics,
    pub warm: Metrics,
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "all:  {}", self.all)?;
        writeln!(f, "cold: {}", self.cold)?;
        write!(f, "warm: {}", self.warm)
    }
}

/// Evaluates every user that has the target. `score_user(u)` returns a score
/// per item for user index `u` (the index into `users`); the user's training
/// items are masked, and for [`Target::Test`] the validation item too.
/// `cold_items[i]` says whether item i had no training interaction.
pub fn evaluate(
    users: &[UserData],
    cold_items: &[bool],
    target: Target,
    mut score_user: impl FnMut(usize) -> Vec<f32>,
) -> EvalReport {
    let (mut all, mut cold, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    let mut excluded = Vec::new();
    for (u, data) in users.iter().enumerate() {
        let wanted = match target {
            Target::Valid => data.valid,
            Target::Test => data.test,
        };
        let Some(item) = wanted else { continue };
        excluded.clear();
        excluded.extend_from_slice(&data.train);
        if target == Target::Test {
            excluded.extend(data.valid);
        }
        let ranked = rank_of(&score_user(u), item, &excluded);
        all.push(ranked);
        if cold_items.get(item as usize).copied().unwrap_or(false) {
            cold.push(ranked);
        } else {
            warm.push(ranked);
        }
    }
    EvalReport {
        all: Metrics::from_ranks(&all),
        cold: Metrics::from_ranks(&cold),
        warm: Metrics::from_ranks(&warm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines;
    use crate::mmrec::{load_mmrec, shared_ku_dir};

    fn user(train: &[u32], valid: Option<u32>, test: Option<u32>) -> UserData {
        UserData {
            train: train.to_vec(),
            valid,
            test,
        }
    }

    #[test]
    fn rank_counts_higher_and_ties_against_the_target() {
        let s = [0.5, 0.9, 0.5, 0.1, 0.7, 0.5];
        assert_eq!(rank_of(&s, 0, &[]), Ranked { rank: 4, ties: 2 });
        assert_eq!(rank_of(&s, 1, &[]), Ranked { rank: 0, ties: 0 });
        assert_eq!(rank_of(&s, 3, &[]), Ranked { rank: 5, ties: 0 });
        assert_eq!(rank_of(&s, 4, &[]), Ranked { rank: 1, ties: 0 });
    }

    #[test]
    fn all_equal_scores_rank_last() {
        let s = [0.3f32; 7];
        assert_eq!(rank_of(&s, 2, &[]), Ranked { rank: 6, ties: 6 });
        assert_eq!(rank_of(&s, 2, &[0, 1]), Ranked { rank: 4, ties: 4 });
    }

    #[test]
    fn masks_are_honoured_unsorted_repeated_out_of_range_and_never_the_target() {
        let s = [0.9, 0.1, 0.8, 0.5, 0.5];
        assert_eq!(rank_of(&s, 3, &[]), Ranked { rank: 3, ties: 1 });
        assert_eq!(
            rank_of(&s, 3, &[2, 0, 2, 99, 4, 3]),
            Ranked { rank: 0, ties: 0 }
        );
    }

    #[test]
    fn nan_scores_count_against_the_target() {
        let s = [0.2, f32::NAN, 0.5, 0.1];
        assert_eq!(rank_of(&s, 2, &[]), Ranked { rank: 1, ties: 1 });
        assert_eq!(rank_of(&s, 1, &[3]), Ranked { rank: 2, ties: 2 });
        assert_eq!(rank_of(&s, 7, &[0]), Ranked { rank: 3, ties: 3 });
    }

    #[test]
    fn ndcg_values_are_exact() {
        assert_eq!(ndcg_at_rank(0, 10), 1.0);
        assert_eq!(ndcg_at_rank(1, 10), 1.0 / 3f64.log2());
        assert_eq!(ndcg_at_rank(9, 10), 1.0 / 11f64.log2());
        assert_eq!(ndcg_at_rank(10, 10), 0.0);
        let m = Metrics::from_ranks(&[Ranked { rank: 0, ties: 0 }, Ranked { rank: 1, ties: 3 }]);
        assert_eq!(m.users, 2);
        assert_eq!(m.hr_at(10), Some(1.0));
        assert_eq!(m.ndcg_at(50), Some((1.0 + 1.0 / 3f64.log2()) / 2.0));
        assert_eq!(m.mean_ties, 1.5);
        assert_eq!(m.hr_at(5), None);
        let empty = Metrics::from_ranks(&[]);
        assert_eq!((empty.users, empty.hr_at(50)), (0, Some(0.0)));
    }

    #[test]
    fn test_target_masks_the_valid_item_and_train_items() {
        // Item 1 (valid) and item 2 (train) outscore the test item 3.
        let users = [user(&[2], Some(1), Some(3))];
        let scores = |_| vec![0.0, 0.9, 0.8, 0.5, 0.1];
        let r = evaluate(&users, &[false; 5], Target::Test, scores);
        assert_eq!(r.all.ndcg_at(10), Some(1.0));
        // For the validation target the test item is a candidate like any other.
        let scores = |_| vec![0.0, 0.5, 0.8, 0.9, 0.1];
        let r = evaluate(&users, &[false; 5], Target::Valid, scores);
        assert_eq!(r.all.ndcg_at(10), Some(1.0 / 3f64.log2()));
    }

    #[test]
    fn users_without_the_target_are_skipped_and_cold_warm_split() {
        let users = [
            user(&[0], Some(1), Some(4)), // cold target
            user(&[1], Some(0), Some(2)), // warm
            user(&[2], Some(1), None),    // no test: skipped
            user(&[3], None, Some(4)),    // cold
        ];
        let cold = [false, false, false, false, true];
        let mut asked = Vec::new();
        let r = evaluate(&users, &cold, Target::Test, |u| {
            asked.push(u);
            vec![1.0, 1.0, 1.0, 1.0, 2.0]
        });
        assert_eq!(asked, [0, 1, 3]);
        assert_eq!((r.all.users, r.cold.users, r.warm.users), (3, 2, 1));
        assert_eq!(r.cold.hr_at(10), Some(1.0));
        assert_eq!(r.cold.ndcg_at(10), Some(1.0));
        // User 1's target ties with items 3 (and 0 is the masked valid item).
        assert_eq!(r.warm.mean_ties, 1.0);
        let v = evaluate(&users, &cold, Target::Valid, |_| vec![0.0; 5]);
        assert_eq!((v.all.users, v.cold.users), (3, 0));
    }

    #[test]
    fn popularity_beats_random_when_targets_are_popular() {
        // 100 items; items 0..5 are everyone's favourites and every target.
        let n_items = 100;
        let users: Vec<UserData> = (0..50u32)
            .map(|u| user(&[10 + u % 40, u % 5], Some((u + 1) % 5), Some((u + 2) % 5)))
            .collect();
        let mut counts = vec![1u32; n_items];
        for (i, c) in counts.iter_mut().take(5).enumerate() {
            *c = 40 + i as u32;
        }
        let cold = vec![false; n_items];
        let pop = evaluate(&users, &cold, Target::Test, baselines::popularity(&counts));
        let rnd = evaluate(&users, &cold, Target::Test, baselines::random(n_items, 3));
        let (p, r) = (pop.all.hr_at(10).unwrap(), rnd.all.hr_at(10).unwrap());
        assert_eq!(p, 1.0);
        assert!(r < 0.4, "random HR@10 {r}");
        assert!(pop.all.ndcg_at(10).unwrap() > 0.5);
    }

    #[test]
    fn ku_popularity_and_cold_first_on_test() {
        let Some(dir) = shared_ku_dir() else { return };
        let d = load_mmrec(&dir).unwrap();
        let (users, cold, counts) = (d.users(), d.cold_items(), d.train_counts());
        let pop = evaluate(&users, &cold, Target::Test, baselines::popularity(&counts));
        let cf = evaluate(&users, &cold, Target::Test, baselines::cold_first(&counts));
        let rnd = evaluate(&users, &cold, Target::Test, baselines::random(d.n_items, 0));
        eprintln!(
            "KU test, popularity:\n{pop}\nKU test, cold-first:\n{cf}\nKU test, random:\n{rnd}"
        );
        assert_eq!((cf.all.users, cf.cold.users, cf.warm.users), (204, 88, 116));
        let hr50 = |r: &EvalReport| r.all.hr_at(50).unwrap();
        assert!(hr50(&cf) >= 0.40, "cold-first HR@50 {}", hr50(&cf));
        assert!(
            (0.10..=0.30).contains(&hr50(&pop)),
            "popularity HR@50 {}",
            hr50(&pop)
        );
        // Every cold target is in cold-first's top 50: only 16 items are cold.
        assert_eq!(cf.cold.hr_at(50), Some(1.0));
    }
}
