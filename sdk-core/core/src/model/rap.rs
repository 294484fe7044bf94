//! FedRAP's regularisers (FEDMR.md, "Backbones"): the user's item view is a
//! private personal part P_u plus the global common part Q, and the local
//! loss is BCE - a * MSE(P_u, Q) + b * L1(Q). The first term keeps the
//! personal part from collapsing onto the common one; the second keeps Q
//! sparse, so that what every user shares is small. Both weights ramp up
//! with tanh(round / 10), letting early rounds fit the data first.

use ndarray::{Array2, ArrayView2, Zip};

/// The two weights at one round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RapWeights {
    /// a: how strongly P_u is pushed away from Q.
    pub difference: f32,
    /// b: the L1 pressure on Q.
    pub sparsity: f32,
}

impl RapWeights {
    /// The weights before the ramp. Both terms are means over the entries
    /// of the rows a round touches, so they do not grow with the catalog.
    pub const BASE: RapWeights = RapWeights {
        difference: 0.1,
        sparsity: 1e-3,
    };

    /// The weights at `round` (1-based: the version of the model trained on).
    pub fn at_round(round: u64) -> Self {
        let ramp = (round as f32 / 10.0).tanh();
        RapWeights {
            difference: Self::BASE.difference * ramp,
            sparsity: Self::BASE.sparsity * ramp,
        }
    }
}

/// The regulariser's value and its gradients with respect to P and Q
/// (rows of the same items, same shape).
pub fn regularizer(
    personal: &ArrayView2<f32>,
    common: &ArrayView2<f32>,
    weights: RapWeights,
) -> (f32, Array2<f32>, Array2<f32>) {
    let n = personal.len().max(1) as f32;
    let diff = personal - common;
    let mse = diff.iter().map(|v| v * v).sum::<f32>() / n;
    let l1 = common.iter().map(|v| v.abs()).sum::<f32>() / n;
    let loss = -weights.difference * mse + weights.sparsity * l1;

    let d_personal = diff.mapv(|v| -weights.difference * 2.0 * v / n);
    let mut d_common = -&d_personal;
    Zip::from(&mut d_common)
        .and(common)
        .for_each(|g, &q| *g += weights.sparsity * q.signum() / n);
    (loss, d_personal, d_common)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{check_scalar_input_grad, random_matrix};
    use crate::rng::Rng;
    use ndarray::Array1;

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = Rng::new(71);
        let p = random_matrix(3, 4, &mut rng);
        // Q away from 0, where L1 has no derivative.
        let q = random_matrix(3, 4, &mut rng).mapv(|v| if v.abs() < 0.2 { v + 0.5 } else { v });
        let w = RapWeights {
            difference: 0.7,
            sparsity: 0.3,
        };
        let flat = |m: &Array2<f32>| Array1::from_iter(m.iter().copied());
        let shape = |v: &Array1<f32>| Array2::from_shape_vec((3, 4), v.to_vec()).unwrap();
        check_scalar_input_grad(
            &flat(&p),
            |x| regularizer(&shape(x).view(), &q.view(), w).0 as f64,
            |x| flat(&regularizer(&shape(x).view(), &q.view(), w).1),
        );
        check_scalar_input_grad(
            &flat(&q),
            |x| regularizer(&p.view(), &shape(x).view(), w).0 as f64,
            |x| flat(&regularizer(&p.view(), &shape(x).view(), w).2),
        );
    }

    #[test]
    fn weights_ramp_up_with_rounds() {
        assert!(RapWeights::at_round(1).difference < RapWeights::at_round(10).difference);
        let late = RapWeights::at_round(100);
        assert!((late.difference - RapWeights::BASE.difference).abs() < 1e-6);
        assert_eq!(RapWeights::at_round(0).sparsity, 0.0);
    }
}
