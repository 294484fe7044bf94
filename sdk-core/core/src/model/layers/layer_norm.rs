//! Layer normalisation over each row, with a learned scale and shift.

use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};

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

    pub fn forward(&self, x: &ArrayView2<f32>) -> (Array2<f32>, LayerNormCache) {
        let n = x.ncols() as f32;
        let mut x_hat = x.to_owned();
        let mut inv_std = Array1::zeros(x.nrows());
        for (mut row, s) in x_hat.axis_iter_mut(Axis(0)).zip(inv_std.iter_mut()) {
            let mean = row.sum() / n;
            row -= mean;
            let var = row.iter().map(|v| v * v).sum::<f32>() / n;
            *s = 1.0 / (var + EPS).sqrt();
            row *= *s;
        }
        let y = &x_hat * &self.gamma + &self.beta;
        (y, LayerNormCache { x_hat, inv_std })
    }

    pub fn backward(
        &self,
        cache: &LayerNormCache,
        dy: &ArrayView2<f32>,
        grad: &mut LayerNorm,
    ) -> Array2<f32> {
        grad.gamma += &(dy * &cache.x_hat).sum_axis(Axis(0));
        grad.beta += &dy.sum_axis(Axis(0));
        let n = dy.ncols() as f32;
        let mut dx = dy * &self.gamma; // d x_hat
        Zip::from(dx.rows_mut())
            .and(cache.x_hat.rows())
            .and(&cache.inv_std)
            .for_each(|mut dxh, xh, &s| {
                let sum = dxh.sum();
                let dot = dxh.dot(&xh);
                Zip::from(&mut dxh).and(&xh).for_each(|d, &h| {
                    *d = s / n * (n * *d - sum - h * dot);
                });
            });
        dx
    }
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
