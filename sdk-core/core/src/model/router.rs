//! The private per-user router: w_u = softmax(Wr2 ReLU(Wr1 c_u + br1) + br2),
//! where c_u is the mean of the user's positives' expert views.

use ndarray::{Array1, Array2, ArrayView1, Axis};

use super::layers::Linear;
use super::layers::activations::{relu, relu_backward, softmax, softmax_backward};
use super::params::impl_tensors;
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct Router {
    pub hidden: Linear,
    pub out: Linear,
}

pub struct RouterCache {
    context: Array2<f32>,
    pre: Array2<f32>,
    hidden: Array2<f32>,
    weights: Array1<f32>,
}

impl Router {
    pub fn new(experts: usize, dim: usize, rng: &mut Rng) -> Self {
        Router {
            hidden: Linear::new(experts * dim, dim, rng),
            out: Linear::new(dim, experts, rng),
        }
    }

    /// Expert weights (summing to one) for the context vector c_u.
    pub fn forward(&self, context: &ArrayView1<f32>) -> (Array1<f32>, RouterCache) {
        let context = context.to_owned().insert_axis(Axis(0));
        let pre = self.hidden.forward(&context.view());
        let hidden = relu(&pre.view());
        let logits = self.out.forward(&hidden.view());
        let weights = softmax(&logits.row(0));
        (
            weights.clone(),
            RouterCache {
                context,
                pre,
                hidden,
                weights,
            },
        )
    }

    /// Adds parameter gradients; returns dL/dc.
    pub fn backward(
        &self,
        cache: &RouterCache,
        d_weights: &ArrayView1<f32>,
        grad: &mut Router,
    ) -> Array1<f32> {
        let d_logits = softmax_backward(&cache.weights.view(), d_weights).insert_axis(Axis(0));
        let d_hidden = self
            .out
            .backward(&cache.hidden.view(), &d_logits.view(), &mut grad.out);
        let d_pre = relu_backward(&cache.pre.view(), &d_hidden.view());
        self.hidden
            .backward(&cache.context.view(), &d_pre.view(), &mut grad.hidden)
            .remove_axis(Axis(0))
    }
}

impl_tensors!(Router { hidden, out });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{check_input_grad, check_param_grads, random_matrix};
    use crate::model::params::Tensors;

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = Rng::new(31);
        let router = Router::new(3, 4, &mut rng);
        let c = random_matrix(1, 12, &mut rng);
        check_param_grads(
            &router,
            |r: &Router| r.forward(&c.row(0)).0.insert_axis(Axis(0)),
            |r: &Router, dy, g: &mut Router| {
                let (_, cache) = r.forward(&c.row(0));
                r.backward(&cache, &dy.row(0), g);
            },
            &mut rng,
        );
        check_input_grad(
            &c,
            |c| router.forward(&c.row(0)).0.insert_axis(Axis(0)),
            |c, dy| {
                let (_, cache) = router.forward(&c.row(0));
                router
                    .backward(&cache, &dy.row(0), &mut router.zeros_like())
                    .insert_axis(Axis(0))
            },
            &mut rng,
        );
    }
}
