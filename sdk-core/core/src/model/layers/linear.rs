//! Affine layer y = x W + b.

use ndarray::{Array1, Array2, ArrayView2, Axis};

use crate::model::params::impl_tensors;
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    /// Shape (inputs, outputs).
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

impl Linear {
    /// Xavier-uniform weights, zero bias.
    pub fn new(inputs: usize, outputs: usize, rng: &mut Rng) -> Self {
        let bound = (6.0 / (inputs + outputs) as f64).sqrt();
        let w = Array2::from_shape_simple_fn((inputs, outputs), || {
            ((rng.uniform() * 2.0 - 1.0) * bound) as f32
        });
        Linear {
            w,
            b: Array1::zeros(outputs),
        }
    }

    pub fn inputs(&self) -> usize {
        self.w.nrows()
    }

    pub fn outputs(&self) -> usize {
        self.w.ncols()
    }

    pub fn forward(&self, x: &ArrayView2<f32>) -> Array2<f32> {
        let mut y = x.dot(&self.w);
        y += &self.b;
        y
    }

    /// Adds dL/dW and dL/db into `grad`; returns dL/dx.
    pub fn backward(
        &self,
        x: &ArrayView2<f32>,
        dy: &ArrayView2<f32>,
        grad: &mut Linear,
    ) -> Array2<f32> {
        self.backward_params(x, dy, grad);
        dy.dot(&self.w.t())
    }

    /// Parameter gradients only, for inputs that need no gradient (frozen
    /// content features): skips the largest matrix product.
    pub fn backward_params(&self, x: &ArrayView2<f32>, dy: &ArrayView2<f32>, grad: &mut Linear) {
        ndarray::linalg::general_mat_mul(1.0, &x.t(), dy, 1.0, &mut grad.w);
        grad.b += &dy.sum_axis(Axis(0));
    }
}

impl_tensors!(Linear { w, b });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{check_input_grad, check_param_grads, random_matrix};
    use crate::model::params::Tensors;

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = Rng::new(1);
        let layer = Linear::new(5, 3, &mut rng);
        let x = random_matrix(4, 5, &mut rng);
        check_param_grads(
            &layer,
            |l: &Linear| l.forward(&x.view()),
            |l: &Linear, dy, g: &mut Linear| {
                l.backward(&x.view(), &dy.view(), g);
            },
            &mut rng,
        );
        check_input_grad(
            &x,
            |x| layer.forward(&x.view()),
            |x, dy| {
                let mut g = layer.zeros_like();
                layer.backward(&x.view(), &dy.view(), &mut g)
            },
            &mut rng,
        );
    }
}
