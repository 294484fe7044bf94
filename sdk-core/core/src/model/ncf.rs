//! FedNCF's scorer, NeuMF: a GMF tower (user embedding * item view) and an
//! MLP tower (three ReLU layers over [user embedding; item view]), joined by
//! one linear layer. The towers' weights are global; the two user embeddings
//! are private. Both towers read the same item view (FEDMR.md, "Backbones").

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, concatenate, s};

use super::layers::Linear;
use super::layers::activations::{relu, relu_backward};
use super::params::impl_tensors;
use crate::rng::Rng;

/// The global part: the MLP tower and the output layer.
#[derive(Clone, Debug, PartialEq)]
pub struct NcfTower {
    /// 2d -> d -> d/2 -> d/4, each followed by a ReLU.
    pub layers: Vec<Linear>,
    /// [GMF (d); MLP (d/4)] -> 1.
    pub out: Linear,
}

impl_tensors!(NcfTower { layers, out });

/// The private part: one user embedding per tower.
#[derive(Clone, Debug, PartialEq)]
pub struct NcfUser {
    pub gmf: Array1<f32>,
    pub mlp: Array1<f32>,
}

impl_tensors!(NcfUser { gmf, mlp });

impl NcfUser {
    pub fn new(dim: usize, init_std: f32, rng: &mut Rng) -> Self {
        let mut draw = || Array1::from_shape_simple_fn(dim, || rng.normal() as f32 * init_std);
        NcfUser {
            gmf: draw(),
            mlp: draw(),
        }
    }
}

pub struct NcfCache {
    /// Input of each MLP layer, then the last layer's output after its ReLU.
    inputs: Vec<Array2<f32>>,
    /// Each MLP layer's pre-activation.
    pre: Vec<Array2<f32>>,
    joined: Array2<f32>,
}

impl NcfTower {
    pub fn new(dim: usize, rng: &mut Rng) -> Self {
        let widths = [2 * dim, dim, (dim / 2).max(1), (dim / 4).max(1)];
        let layers = widths
            .windows(2)
            .map(|w| Linear::new(w[0], w[1], rng))
            .collect();
        let mut out = Linear::new(dim + widths[3], 1, rng);
        // GMF's output weights start at 1, so NeuMF starts as matrix
        // factorisation (sum of user * item) and the MLP tower learns what
        // it adds. With Xavier weights (|w| ~ 0.15) every GMF gradient is
        // scaled by w² and plain SGD barely leaves the start on some seeds;
        // the NCF paper starts NeuMF from a pretrained GMF for the same reason.
        out.w.slice_mut(s![..dim, ..]).fill(1.0);
        NcfTower { layers, out }
    }

    /// Scores of the items (rows of `items`, B x d) for this user.
    pub fn forward(&self, user: &NcfUser, items: &ArrayView2<f32>) -> (Array1<f32>, NcfCache) {
        let b = items.nrows();
        let gmf = items * &user.gmf;
        let user_rows = user.mlp.broadcast((b, user.mlp.len())).expect("1 x d row");
        let mut x = concatenate(Axis(1), &[user_rows, items.view()]).expect("same rows");
        let mut inputs = Vec::with_capacity(self.layers.len() + 1);
        let mut pre = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let p = layer.forward(&x.view());
            let next = relu(&p.view());
            inputs.push(x);
            pre.push(p);
            x = next;
        }
        let joined = concatenate(Axis(1), &[gmf.view(), x.view()]).expect("same rows");
        inputs.push(x);
        let scores = self.out.forward(&joined.view()).column(0).to_owned();
        (
            scores,
            NcfCache {
                inputs,
                pre,
                joined,
            },
        )
    }

    /// The smallest |pre-activation| of any MLP unit on these items: finite
    /// differences are only meaningful away from the ReLU kinks.
    #[cfg(test)]
    pub(crate) fn relu_margin(&self, user: &NcfUser, items: &ArrayView2<f32>) -> f32 {
        let (_, cache) = self.forward(user, items);
        cache
            .pre
            .iter()
            .flat_map(|p| p.iter())
            .fold(f32::INFINITY, |m, v| m.min(v.abs()))
    }

    /// Adds the tower's and the user's gradients; returns dL/d(items).
    pub fn backward(
        &self,
        user: &NcfUser,
        items: &ArrayView2<f32>,
        cache: &NcfCache,
        d_scores: &ArrayView1<f32>,
        grad: &mut NcfTower,
        user_grad: &mut NcfUser,
    ) -> Array2<f32> {
        let dim = user.gmf.len();
        let d_out = d_scores.view().insert_axis(Axis(1));
        let d_joined = self
            .out
            .backward(&cache.joined.view(), &d_out, &mut grad.out);
        let d_gmf = d_joined.slice(s![.., ..dim]);
        user_grad.gmf += &(&d_gmf * items).sum_axis(Axis(0));
        let mut d_items = &d_gmf * &user.gmf;

        let mut dx = d_joined.slice(s![.., dim..]).to_owned();
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let d_pre = relu_backward(&cache.pre[k].view(), &dx.view());
            dx = layer.backward(&cache.inputs[k].view(), &d_pre.view(), &mut grad.layers[k]);
        }
        user_grad.mlp += &dx.slice(s![.., ..dim]).sum_axis(Axis(0));
        d_items += &dx.slice(s![.., dim..]);
        d_items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{check_input_grad, check_param_grads, random_matrix};
    use crate::model::params::Tensors;

    /// A tower, user and items whose ReLUs are all clear of their kinks.
    fn away_from_kinks(dim: usize, rng: &mut Rng) -> (NcfTower, NcfUser, Array2<f32>) {
        for _ in 0..1000 {
            let tower = NcfTower::new(dim, rng);
            let user = NcfUser::new(dim, 1.0, rng);
            let items = random_matrix(5, dim, rng);
            if tower.relu_margin(&user, &items.view()) > 0.05 {
                return (tower, user, items);
            }
        }
        panic!("no draw clear of the ReLU kinks");
    }

    #[test]
    fn a_new_tower_starts_as_matrix_factorisation_plus_the_mlp() {
        let dim = 8;
        let tower = NcfTower::new(dim, &mut Rng::new(3));
        assert!(tower.out.w.slice(s![..dim, ..]).iter().all(|&w| w == 1.0));
        // The MLP tower's own output weights keep their random start.
        assert!(tower.out.w.slice(s![dim.., ..]).iter().any(|&w| w != 1.0));
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = Rng::new(61);
        let dim = 8;
        let (tower, user, items) = away_from_kinks(dim, &mut rng);
        let scores = |t: &NcfTower, u: &NcfUser, x: &Array2<f32>| {
            t.forward(u, &x.view()).0.insert_axis(Axis(1))
        };
        check_param_grads(
            &tower,
            |t| scores(t, &user, &items),
            |t, dy, g| {
                let (_, cache) = t.forward(&user, &items.view());
                t.backward(
                    &user,
                    &items.view(),
                    &cache,
                    &dy.column(0),
                    g,
                    &mut user.zeros_like(),
                );
            },
            &mut rng,
        );
        check_param_grads(
            &user,
            |u| scores(&tower, u, &items),
            |u, dy, g| {
                let (_, cache) = tower.forward(u, &items.view());
                let mut tg = tower.zeros_like();
                tower.backward(u, &items.view(), &cache, &dy.column(0), &mut tg, g);
            },
            &mut rng,
        );
        check_input_grad(
            &items,
            |x| scores(&tower, &user, x),
            |x, dy| {
                let (_, cache) = tower.forward(&user, &x.view());
                tower.backward(
                    &user,
                    &x.view(),
                    &cache,
                    &dy.column(0),
                    &mut tower.zeros_like(),
                    &mut user.zeros_like(),
                )
            },
            &mut rng,
        );
    }

    #[test]
    fn towers_have_the_neumf_widths() {
        let tower = NcfTower::new(64, &mut Rng::new(1));
        let shapes: Vec<_> = tower.layers.iter().map(|l| l.w.dim()).collect();
        assert_eq!(shapes, vec![(128, 64), (64, 32), (32, 16)]);
        assert_eq!(tower.out.w.dim(), (64 + 16, 1));
    }
}
