//! Optimisers over any [`Tensors`] set. Clients use plain SGD (the paper's
//! local optimiser); the server may apply Adam to averaged dense changes.

use super::params::Tensors;

pub fn sgd_step<T: Tensors + ?Sized>(params: &mut T, grad: &[f32], lr: f32) {
    params.add_flat(grad, -lr);
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    pub fn new(lr: f32) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            m: Vec::new(),
            v: Vec::new(),
            t: 0,
        }
    }

    pub fn step<T: Tensors + ?Sized>(&mut self, params: &mut T, grad: &[f32]) {
        if self.m.len() != grad.len() {
            self.m = vec![0.0; grad.len()];
            self.v = vec![0.0; grad.len()];
            self.t = 0;
        }
        self.t += 1;
        let c1 = 1.0 - self.beta1.powi(self.t);
        let c2 = 1.0 - self.beta2.powi(self.t);
        let mut delta = vec![0.0f32; grad.len()];
        for i in 0..grad.len() {
            self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * grad[i];
            self.v[i] = self.beta2 * self.v[i] + (1.0 - self.beta2) * grad[i] * grad[i];
            delta[i] = (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + self.eps);
        }
        params.add_flat(&delta, -self.lr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::head::LinearHead;
    use crate::rng::Rng;

    #[test]
    fn adam_minimises_a_quadratic() {
        let mut p = LinearHead::new(3, 1.0, &mut Rng::new(1));
        let mut adam = Adam::new(0.05);
        for _ in 0..500 {
            let g: Vec<f32> = p.flatten().iter().map(|x| 2.0 * (x - 0.5)).collect();
            adam.step(&mut p, &g);
        }
        assert!(
            p.flatten().iter().all(|x| (x - 0.5).abs() < 1e-2),
            "{:?}",
            p.flatten()
        );
    }

    #[test]
    fn sgd_moves_against_the_gradient() {
        let mut p = LinearHead::new(2, 1.0, &mut Rng::new(2));
        let before = p.flatten();
        sgd_step(&mut p, &[1.0, -1.0, 2.0], 0.1);
        let after = p.flatten();
        assert!((after[0] - (before[0] - 0.1)).abs() < 1e-6);
        assert!((after[2] - (before[2] - 0.2)).abs() < 1e-6);
    }
}
