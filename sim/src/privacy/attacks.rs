//! The attacks a curious server can run on the uploads it received. Each
//! returns scores (higher = more likely one of the user's training items)
//! or an estimate; `super::analyse` scores them against the truth.

use std::ops::Range;

use fedmr_core::wire::UpdateMessage;

/// Attack 1, one upload: every touched row's change, projected on the rows'
/// principal direction. A positive row moves along the user's head and a
/// negative against it; positives are in every epoch's batch (negatives are
/// drawn anew each epoch), so the side that moved further is taken as the
/// positive one. One score per `message.item_ids`.
pub fn direction_scores(message: &UpdateMessage) -> Vec<f64> {
    let n = message.item_ids.len();
    if n == 0 {
        return Vec::new();
    }
    let dim = message.item_rows.len() / n;
    let rows: Vec<&[f32]> = rows_of(message).collect();
    let direction = principal_direction(&rows, dim);
    let projections: Vec<f64> = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&direction)
                .map(|(&a, b)| f64::from(a) * b)
                .sum()
        })
        .collect();
    let mean_abs = |sign: f64| {
        let side: Vec<f64> = projections
            .iter()
            .filter(|&&p| p * sign > 0.0)
            .map(|p| p.abs())
            .collect();
        side.iter().sum::<f64>() / side.len().max(1) as f64
    };
    let sign = if mean_abs(1.0) >= mean_abs(-1.0) {
        1.0
    } else {
        -1.0
    };
    projections.into_iter().map(|p| sign * p).collect()
}

/// The top right singular vector of the rows (power iteration on RᵀR).
fn principal_direction(rows: &[&[f32]], dim: usize) -> Vec<f64> {
    let mut v = vec![1.0 / (dim.max(1) as f64).sqrt(); dim];
    for _ in 0..100 {
        let mut next = vec![0f64; dim];
        for r in rows {
            let dot: f64 = r.iter().zip(&v).map(|(&a, b)| f64::from(a) * b).sum();
            for (n, &a) in next.iter_mut().zip(r.iter()) {
                *n += dot * f64::from(a);
            }
        }
        let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return v;
        }
        v = next.into_iter().map(|x| x / norm).collect();
    }
    v
}

/// Attack 2, across rounds: each catalog item's share of the user's uploads
/// that changed its row. A user's positives are in every upload; sampled
/// negatives change from round to round. Rows an upload carries unchanged
/// (an upload of every catalog row) do not count.
pub fn recurrence_scores(uploads: &[&UpdateMessage], n_items: usize) -> Vec<f64> {
    let mut counts = vec![0f64; n_items];
    for message in uploads {
        for (&id, row) in message.item_ids.iter().zip(rows_of(message)) {
            if let Some(c) = counts
                .get_mut(id as usize)
                .filter(|_| row.iter().any(|&v| v != 0.0))
            {
                *c += 1.0;
            }
        }
    }
    let rounds = uploads.len().max(1) as f64;
    counts.into_iter().map(|c| c / rounds).collect()
}

/// Attack 2, across rounds, by direction: attack 1's score of each item
/// averaged over all of a user's uploads (0 where an upload lacks the row).
/// Averaging cancels noise that is independent from round to round, which
/// is what local DP's composition over rounds accounts for.
pub fn mean_direction_scores(uploads: &[&UpdateMessage], n_items: usize) -> Vec<f64> {
    let mut sums = vec![0f64; n_items];
    for message in uploads {
        for (&id, score) in message.item_ids.iter().zip(direction_scores(message)) {
            if let Some(s) = sums.get_mut(id as usize) {
                *s += score;
            }
        }
    }
    let rounds = uploads.len().max(1) as f64;
    sums.into_iter().map(|s| s / rounds).collect()
}

/// The item rows of an upload, one slice per id.
fn rows_of(message: &UpdateMessage) -> std::slice::ChunksExact<'_, f32> {
    let dim = message.item_rows.len() / message.item_ids.len().max(1);
    message.item_rows.chunks_exact(dim.max(1))
}

/// Attack 4, the private router: an expert's parameters get gradients in
/// proportion to its weight in the user's router, so the RMS of each
/// expert's change in the dense update tells their balance. Returns the
/// MLP expert's estimated share of (MLP + Gate).
pub fn mlp_share_estimate(dense: &[f32], mlp: &Range<usize>, gate: &Range<usize>) -> f64 {
    let rms = |r: &Range<usize>| {
        let values = dense.get(r.clone()).unwrap_or(&[]);
        (values.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / values.len().max(1) as f64)
            .sqrt()
    };
    let (m, g) = (rms(mlp), rms(gate));
    if m + g > 0.0 { m / (m + g) } else { 0.5 }
}

/// Attack 3, the declared sample count: a round trains on every positive
/// once plus `negatives` sampled negatives per positive, so the count gives
/// the user's history length away.
pub fn history_length(samples: u64, negatives: usize) -> f64 {
    samples as f64 / (1 + negatives) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(ids: Vec<u32>, rows: Vec<f32>, samples: u64) -> UpdateMessage {
        UpdateMessage {
            round: 1,
            base_version: 1,
            idempotency_key: "k".into(),
            samples,
            item_ids: ids,
            item_rows: rows,
            dense: Vec::new(),
        }
    }

    #[test]
    fn rows_that_moved_further_along_the_shared_direction_score_highest() {
        // Two positives moved far along +h, three negatives a little along -h.
        let rows = vec![3.0, 3.1, 2.9, 3.0, -1.0, -0.9, -1.1, -1.0, -0.9, -1.0];
        let scores = direction_scores(&message(vec![1, 2, 3, 4, 5], rows, 4));
        assert!(scores[0].min(scores[1]) > scores[2].max(scores[3]).max(scores[4]));
        // The same with the roles' signs flipped: the attack does not rely on them.
        let flipped: Vec<f32> = vec![-3.0, -3.1, -2.9, -3.0, 1.0, 0.9, 1.1, 1.0, 0.9, 1.0];
        let scores = direction_scores(&message(vec![1, 2, 3, 4, 5], flipped, 4));
        assert!(scores[0].min(scores[1]) > scores[2].max(scores[3]).max(scores[4]));
    }

    #[test]
    fn recurrence_counts_share_of_uploads_and_samples_give_the_length() {
        let a = message(vec![0, 2], vec![0.0; 2], 4);
        let b = message(vec![0, 3], vec![0.0; 2], 4);
        assert_eq!(recurrence_scores(&[&a, &b], 4), vec![0.0; 4]);
        let a = message(vec![0, 2], vec![1.0; 2], 4);
        let b = message(vec![0, 3], vec![1.0, 0.0], 4);
        assert_eq!(recurrence_scores(&[&a, &b], 4), vec![1.0, 0.0, 0.5, 0.0]);
        assert_eq!(history_length(12, 2), 4.0);
    }

    #[test]
    fn the_expert_that_changed_more_gets_the_larger_share() {
        let dense = [9.0, 9.0, 0.3, 0.4, 0.3, 0.3, 1.0, 1.0];
        let share = mlp_share_estimate(&dense, &(2..4), &(4..8));
        // RMS 0.354 (MLP) against 0.738 (Gate).
        let (m, g) = (0.125f64.sqrt(), 0.545f64.sqrt());
        assert!((share - m / (m + g)).abs() < 1e-6, "{share}");
        assert_eq!(mlp_share_estimate(&[0.0; 4], &(0..2), &(2..4)), 0.5);
    }
}
