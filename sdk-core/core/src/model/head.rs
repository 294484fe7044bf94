//! The user's private score head. Linear, s_i = theta_u . v_i + b_u, for
//! FedAvg, FCF, PFedRec and FedRAP (theta_u plays the role of the user
//! embedding); NeuMF's two user embeddings for FedNCF, whose towers are global.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::ncf::{NcfCache, NcfTower, NcfUser};
use super::params::{Tensors, impl_tensors};
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq)]
pub enum UserHead {
    Linear(LinearHead),
    NeuMf(NcfUser),
}

impl Tensors for UserHead {
    fn visit(&self, f: &mut dyn FnMut(&[f32])) {
        match self {
            UserHead::Linear(h) => h.visit(f),
            UserHead::NeuMf(u) => u.visit(f),
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut [f32])) {
        match self {
            UserHead::Linear(h) => h.visit_mut(f),
            UserHead::NeuMf(u) => u.visit_mut(f),
        }
    }
    fn visit_pairs_mut(&mut self, other: &Self, f: &mut dyn FnMut(&mut [f32], &[f32])) {
        match (self, other) {
            (UserHead::Linear(h), UserHead::Linear(o)) => h.visit_pairs_mut(o, f),
            (UserHead::NeuMf(u), UserHead::NeuMf(o)) => u.visit_pairs_mut(o, f),
            _ => panic!("parameter sets of different configurations"),
        }
    }
}

pub enum HeadCache {
    Linear,
    NeuMf(NcfCache),
}

/// The global NeuMF tower a `UserHead::NeuMf` scores with. Their presence
/// together is fixed by the backbone when a model is built.
fn tower_of(tower: Option<&NcfTower>) -> &NcfTower {
    tower.expect("a NeuMF head comes with the model's global tower")
}

impl UserHead {
    /// The linear head, whose scores are linear in the item view (ranking
    /// caches per-expert scores for it).
    pub fn linear(&self) -> Option<&LinearHead> {
        match self {
            UserHead::Linear(h) => Some(h),
            UserHead::NeuMf(_) => None,
        }
    }

    pub fn forward(
        &self,
        tower: Option<&NcfTower>,
        items: &ArrayView2<f32>,
    ) -> (Array1<f32>, HeadCache) {
        match self {
            UserHead::Linear(h) => (h.forward(items), HeadCache::Linear),
            UserHead::NeuMf(u) => {
                let (scores, cache) = tower_of(tower).forward(u, items);
                (scores, HeadCache::NeuMf(cache))
            }
        }
    }

    pub fn score(&self, tower: Option<&NcfTower>, items: &ArrayView2<f32>) -> Array1<f32> {
        self.forward(tower, items).0
    }

    /// Adds the user's (and the tower's) gradients; returns dL/d(items).
    pub fn backward(
        &self,
        tower: Option<&NcfTower>,
        items: &ArrayView2<f32>,
        cache: &HeadCache,
        d_scores: &ArrayView1<f32>,
        grad: &mut UserHead,
        tower_grad: Option<&mut NcfTower>,
    ) -> Array2<f32> {
        match (self, cache, grad) {
            (UserHead::Linear(h), HeadCache::Linear, UserHead::Linear(g)) => {
                h.backward(items, d_scores, g)
            }
            (UserHead::NeuMf(u), HeadCache::NeuMf(c), UserHead::NeuMf(g)) => tower_of(tower)
                .backward(
                    u,
                    items,
                    c,
                    d_scores,
                    tower_grad.expect("tower gradient"),
                    g,
                ),
            _ => unreachable!("gradient and cache have the head's shape"),
        }
    }
}

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
        // Row by row (an axpy each): ndarray's transposed matrix-vector
        // product and broadcast outer product took 4% of a local round.
        let mut d_items = Array2::zeros(items.raw_dim());
        for ((row, mut d_row), &d) in items
            .rows()
            .into_iter()
            .zip(d_items.rows_mut())
            .zip(d_scores)
        {
            grad.theta.scaled_add(d, &row);
            d_row.scaled_add(d, &self.theta);
        }
        grad.bias[0] += d_scores.sum();
        d_items
    }
}

impl_tensors!(LinearHead { theta, bias });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{check_input_grad, check_param_grads, random_matrix};
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
