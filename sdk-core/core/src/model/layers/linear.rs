//! Affine layer y = x W + b.

use ndarray::{Array1, Array2, ArrayView2, Axis, s};

use super::matmul::{matmul, matmul_add};
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
        let mut y = matmul(x, &self.w.view());
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
        matmul(dy, &self.w.t())
    }

    /// `forward` of the column-wise concatenation [x_1 | x_2 | ...] of
    /// `blocks`, without building it: sum_k x_k W_k + b, W_k the rows of W
    /// that block k meets.
    pub fn forward_blocks(&self, blocks: &[ArrayView2<f32>]) -> Array2<f32> {
        let mut offset = 0;
        let mut y: Option<Array2<f32>> = None;
        for x in blocks {
            let w = self.w.slice(s![offset..offset + x.ncols(), ..]);
            offset += x.ncols();
            match y.as_mut() {
                None => y = Some(matmul(x, &w)),
                Some(y) => matmul_add(&mut y.view_mut(), x, &w),
            }
        }
        assert_eq!(offset, self.inputs(), "blocks cover the layer's inputs");
        let mut y = y.expect("at least one block");
        y += &self.b;
        y
    }

    /// `backward` of `forward_blocks`: adds dL/dW and dL/db into `grad` and
    /// each block's dL/dx_k into `dx[k]`.
    pub fn backward_blocks(
        &self,
        blocks: &[ArrayView2<f32>],
        dy: &ArrayView2<f32>,
        grad: &mut Linear,
        dx: &mut [Array2<f32>],
    ) {
        let mut offset = 0;
        for (x, dx) in blocks.iter().zip(dx) {
            let rows = offset..offset + x.ncols();
            offset += x.ncols();
            matmul_add(&mut grad.w.slice_mut(s![rows.clone(), ..]), &x.t(), dy);
            matmul_add(&mut dx.view_mut(), dy, &self.w.slice(s![rows, ..]).t());
        }
        grad.b += &dy.sum_axis(Axis(0));
    }

    /// Parameter gradients only, for inputs that need no gradient (frozen
    /// content features): skips the largest matrix product.
    pub fn backward_params(&self, x: &ArrayView2<f32>, dy: &ArrayView2<f32>, grad: &mut Linear) {
        matmul_add(&mut grad.w.view_mut(), &x.t(), dy);
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

    #[test]
    fn blocks_equal_the_concatenation() {
        let mut rng = Rng::new(3);
        let layer = Linear::new(7, 4, &mut rng);
        let (a, b) = (random_matrix(5, 3, &mut rng), random_matrix(5, 4, &mut rng));
        let cat = ndarray::concatenate![Axis(1), a, b];
        let blocks = [a.view(), b.view()];
        let close =
            |x: &Array2<f32>, y: &Array2<f32>| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5);
        assert!(close(
            &layer.forward_blocks(&blocks),
            &layer.forward(&cat.view())
        ));
        let dy = random_matrix(5, 4, &mut rng);
        let (mut g_cat, mut g_blocks) = (layer.zeros_like(), layer.zeros_like());
        let dx_cat = layer.backward(&cat.view(), &dy.view(), &mut g_cat);
        let mut dx = [Array2::ones((5, 3)), Array2::ones((5, 4))];
        layer.backward_blocks(&blocks, &dy.view(), &mut g_blocks, &mut dx);
        assert!(
            close(&g_blocks.w, &g_cat.w)
                && close(
                    &g_blocks.b.clone().insert_axis(Axis(0)),
                    &g_cat.b.clone().insert_axis(Axis(0))
                )
        );
        // dx accumulates into what was there (ones).
        assert!(close(
            &(&dx[0] - 1.0),
            &dx_cat.slice(s![.., ..3]).to_owned()
        ));
        assert!(close(
            &(&dx[1] - 1.0),
            &dx_cat.slice(s![.., 3..]).to_owned()
        ));
    }
}
