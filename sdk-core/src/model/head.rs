//! The user's private linear score head: s_i = theta_u . v_i + b_u.
//! For FedAvg, FCF and PFedRec, theta_u plays the role of the user embedding.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::params::impl_tensors;
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct LinearHead {
    pub theta: Array1<f32>,
    /// One value; an array so that it is a tensor like any other.
    pub bias: Array1<f32>,
}

impl LinearHead {
    pub fn new(dim: usize, init_std: f32, rng: &mut Rng) -> Self {
        LinearHead {
            theta: Array1::from_shape_simple_fn(dim, || rng.normal() as f32 * init_std),
            bias: Array1::zeros(1),
        }
    }

    pub fn forward(&self, items: &ArrayView2<f32>) -> Array1<f32> {
        items.dot(&self.theta) + self.bias[0]
    }

    /// Adds parameter gradients; returns dL/d(items).
    pub fn backward(
        &self,
        items: &ArrayView2<f32>,
        d_scores: &ArrayView1<f32>,
        grad: &mut LinearHead,
    ) -> Array2<f32> {
        grad.theta += &items.t().dot(d_scores);
        grad.bias[0] += d_scores.sum();
        let col = d_scores.view().insert_axis(ndarray::Axis(1));
        &col * &self.theta
    }
}

impl_tensors!(LinearHead { theta, bias });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{check_input_grad, check_param_grads, random_matrix};
    use crate::model::params::Tensors;
    use ndarray::Axis;

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = Rng::new(41);
        let head = LinearHead::new(4, 1.0, &mut rng);
        let items = random_matrix(5, 4, &mut rng);
        check_param_grads(
            &head,
            |h: &LinearHead| h.forward(&items.view()).insert_axis(Axis(1)),
            |h: &LinearHead, dy, g: &mut LinearHead| {
                h.backward(&items.view(), &dy.column(0), g);
            },
            &mut rng,
        );
        check_input_grad(
            &items,
            |x| head.forward(&x.view()).insert_axis(Axis(1)),
            |x, dy| head.backward(&x.view(), &dy.column(0), &mut head.zeros_like()),
            &mut rng,
        );
    }
}
