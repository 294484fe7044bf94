//! How well an attack's guesses match a user's real training items.

use std::collections::HashSet;

/// Area under the ROC curve of `scores` for `labels` (Mann-Whitney, ties
/// count one half); `None` when one class is missing.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over runs of equal scores.
    let mut ranks = vec![0f64; scores.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(r, _)| r)
        .sum();
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Precision, recall and F1 of `guessed` against `truth`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SetScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl SetScores {
    pub fn of(guessed: &HashSet<u32>, truth: &HashSet<u32>) -> Self {
        let hits = guessed.intersection(truth).count() as f64;
        let precision = if guessed.is_empty() {
            0.0
        } else {
            hits / guessed.len() as f64
        };
        let recall = if truth.is_empty() {
            0.0
        } else {
            hits / truth.len() as f64
        };
        SetScores::from_pr(precision, recall)
    }

    /// What guessing `guessed` items uniformly out of `n_items` scores in
    /// expectation against `truth` items.
    pub fn guessing(guessed: usize, truth: usize, n_items: usize) -> Self {
        let n = n_items.max(1) as f64;
        SetScores::from_pr(truth as f64 / n, guessed as f64 / n)
    }

    fn from_pr(precision: f64, recall: f64) -> Self {
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        SetScores {
            precision,
            recall,
            f1,
        }
    }
}

/// Mean, standard deviation, min and max of per-user figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Spread::default();
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Spread {
            mean,
            std: var.sqrt(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            n: values.len(),
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} ± {:.3} [{:.3}, {:.3}]",
            self.mean, self.std, self.min, self.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_one_for_a_perfect_split_half_for_ties_and_none_without_a_class() {
        assert_eq!(
            auc(&[0.9, 0.8, 0.1, 0.2], &[true, true, false, false]),
            Some(1.0)
        );
        assert_eq!(
            auc(&[0.1, 0.2, 0.9, 0.8], &[true, true, false, false]),
            Some(0.0)
        );
        assert_eq!(auc(&[0.5; 4], &[true, false, true, false]), Some(0.5));
        assert_eq!(auc(&[0.5, 0.4], &[true, true]), None);
    }

    #[test]
    fn set_scores_and_guessing() {
        let truth: HashSet<u32> = [1, 2, 3, 4].into();
        let s = SetScores::of(&[1, 2, 9].into(), &truth);
        assert!((s.precision - 2.0 / 3.0).abs() < 1e-12 && (s.recall - 0.5).abs() < 1e-12);
        let g = SetScores::guessing(10, 4, 100);
        assert!((g.precision - 0.04).abs() < 1e-12 && (g.recall - 0.1).abs() < 1e-12);
    }
}
