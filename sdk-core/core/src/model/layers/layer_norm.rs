//! Layer normalisation over each row, with a learned scale and shift.

use ndarray::{Array1, Array2, ArrayView2};

use super::simd::dispatch_simd;
use crate::model::params::impl_tensors;

const EPS: f32 = 1e-5;

#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm {
    pub gamma: Array1<f32>,
    pub beta: Array1<f32>,
}

/// What the backward pass needs from the forward pass.
pub struct LayerNormCache {
    pub x_hat: Array2<f32>,
    pub inv_std: Array1<f32>,
}

impl LayerNorm {
    pub fn new(width: usize) -> Self {
        LayerNorm {
            gamma: Array1::ones(width),
            beta: Array1::zeros(width),
        }
    }

    // Both passes walk rows as slices (`normalize_rows`, `backward_rows`):
    // ndarray's broadcasting products over the same rows took 6% of a
    // local round.
    pub fn forward(&self, x: &ArrayView2<f32>) -> (Array2<f32>, LayerNormCache) {
        let (rows, width) = x.dim();
        assert_eq!(width, self.gamma.len(), "layer norm width");
        let x = x.as_standard_layout();
        let (gamma, beta) = (params(&self.gamma), params(&self.beta));
        let mut x_hat = Array2::zeros((rows, width));
        let mut y = Array2::zeros((rows, width));
        let mut inv_std = Array1::zeros(rows);
        normalize_rows(
            x.as_slice().expect("standard layout"),
            gamma,
            beta,
            x_hat.as_slice_mut().expect("fresh array"),
            y.as_slice_mut().expect("fresh array"),
            inv_std.as_slice_mut().expect("fresh array"),
        );
        (y, LayerNormCache { x_hat, inv_std })
    }

    pub fn backward(
        &self,
        cache: &LayerNormCache,
        dy: &ArrayView2<f32>,
        grad: &mut LayerNorm,
    ) -> Array2<f32> {
        let (rows, width) = dy.dim();
        assert_eq!(width, self.gamma.len(), "layer norm width");
        let dy = dy.as_standard_layout();
        let gamma = params(&self.gamma);
        let d_gamma = grad
            .gamma
            .as_slice_mut()
            .expect("parameters are in standard layout");
        let d_beta = grad
            .beta
            .as_slice_mut()
            .expect("parameters are in standard layout");
        let mut dx = Array2::zeros((rows, width));
        backward_rows(
            dy.as_slice().expect("standard layout"),
            cache.x_hat.as_slice().expect("standard layout"),
            cache.inv_std.as_slice().expect("standard layout"),
            gamma,
            d_gamma,
            d_beta,
            dx.as_slice_mut().expect("fresh array"),
        );
        dx
    }
}

dispatch_simd! {
    /// x_hat = (x - mean) / std and y = x_hat * gamma + beta, row by row
    /// (rows as wide as gamma).
    fn normalize_rows(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        x_hat: &mut [f32],
        y: &mut [f32],
        inv_std: &mut [f32],
    ) {
        let width = gamma.len().max(1);
        let n = gamma.len() as f32;
        let rows = x.chunks_exact(width).zip(x_hat.chunks_exact_mut(width));
        for ((xr, hr), (yr, s)) in rows.zip(y.chunks_exact_mut(width).zip(inv_std)) {
            let mean = lane_dot(xr, None) / n;
            let var = lane_squared_deviation(xr, mean) / n;
            *s = 1.0 / (var + EPS).sqrt();
            for ((h, y), (&x, (&g, &b))) in hr
                .iter_mut()
                .zip(yr.iter_mut())
                .zip(xr.iter().zip(gamma.iter().zip(beta)))
            {
                *h = (x - mean) * *s;
                *y = *h * g + b;
            }
        }
    }
}

dispatch_simd! {
    /// dL/dx of the rows, adding dL/dgamma and dL/dbeta:
    /// dx_hat = dy * gamma; dx = s / n (n dx_hat - sum dx_hat - x_hat (dx_hat . x_hat)).
    fn backward_rows(
        dy: &[f32],
        x_hat: &[f32],
        inv_std: &[f32],
        gamma: &[f32],
        d_gamma: &mut [f32],
        d_beta: &mut [f32],
        dx: &mut [f32],
    ) {
        let width = gamma.len().max(1);
        let n = gamma.len() as f32;
        let rows = dy.chunks_exact(width).zip(x_hat.chunks_exact(width));
        for ((dyr, hr), (dxr, &s)) in rows.zip(dx.chunks_exact_mut(width).zip(inv_std)) {
            for (((dg, db), dxh), (&d, (&h, &g))) in d_gamma
                .iter_mut()
                .zip(d_beta.iter_mut())
                .zip(dxr.iter_mut())
                .zip(dyr.iter().zip(hr.iter().zip(gamma)))
            {
                *dg += d * h;
                *db += d;
                *dxh = d * g;
            }
            let sum = lane_dot(dxr, None);
            let dot = lane_dot(dxr, Some(hr));
            for (dxh, &h) in dxr.iter_mut().zip(hr) {
                *dxh = s / n * (n * *dxh - sum - h * dot);
            }
        }
    }
}

/// sum(a) or a . b, in eight independent lanes: a single running sum is a
/// chain of dependent adds the compiler may not reorder, so it would not
/// vectorise (these sums took a tenth of a local round).
#[inline(always)]
fn lane_dot(a: &[f32], b: Option<&[f32]>) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = a.chunks_exact(8);
    let rest = chunks.remainder();
    let mut tail = 0.0;
    match b {
        None => {
            for c in chunks {
                for k in 0..8 {
                    lanes[k] += c[k];
                }
            }
            tail = rest.iter().sum();
        }
        Some(b) => {
            let b_chunks = b.chunks_exact(8);
            let b_rest = b_chunks.remainder();
            for (c, d) in chunks.zip(b_chunks) {
                for k in 0..8 {
                    lanes[k] += c[k] * d[k];
                }
            }
            tail += rest.iter().zip(b_rest).map(|(x, y)| x * y).sum::<f32>();
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// sum((a - mean)^2) in eight lanes, two-pass for accuracy (E[x^2] - mean^2
/// cancels badly when the mean is large against the spread).
#[inline(always)]
fn lane_squared_deviation(a: &[f32], mean: f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for k in 0..8 {
            lanes[k] += (c[k] - mean) * (c[k] - mean);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn params(v: &Array1<f32>) -> &[f32] {
    v.as_slice().expect("parameters are in standard layout")
}

impl_tensors!(LayerNorm { gamma, beta });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{check_input_grad, check_param_grads, random_matrix};
    use crate::model::params::Tensors;
    use crate::rng::Rng;

    fn random_ln(width: usize, rng: &mut Rng) -> LayerNorm {
        let mut ln = LayerNorm::new(width);
        ln.gamma.mapv_inplace(|_| 1.0 + rng.normal() as f32 * 0.3);
        ln.beta.mapv_inplace(|_| rng.normal() as f32 * 0.3);
        ln
    }

    #[test]
    fn output_rows_are_normalised() {
        let mut rng = Rng::new(2);
        let x = random_matrix(3, 8, &mut rng) * 5.0 + 2.0;
        let (y, _) = LayerNorm::new(8).forward(&x.view());
        for row in y.rows() {
            assert!(row.mean().unwrap().abs() < 1e-5);
            assert!((row.mapv(|v| v * v).mean().unwrap() - 1.0).abs() < 1e-3);
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = Rng::new(3);
        let ln = random_ln(6, &mut rng);
        let x = random_matrix(4, 6, &mut rng);
        check_param_grads(
            &ln,
            |l: &LayerNorm| l.forward(&x.view()).0,
            |l: &LayerNorm, dy, g: &mut LayerNorm| {
                let (_, c) = l.forward(&x.view());
                l.backward(&c, &dy.view(), g);
            },
            &mut rng,
        );
        check_input_grad(
            &x,
            |x| ln.forward(&x.view()).0,
            |x, dy| {
                let (_, c) = ln.forward(&x.view());
                ln.backward(&c, &dy.view(), &mut ln.zeros_like())
            },
            &mut rng,
        );
    }
}
