//! Server optimisers over any [`Tensors`] set: Adam and Yogi applied to
//! averaged dense changes. Clients use plain SGD (the paper's local
//! optimiser), which is `Tensors::add_scaled(gradient, -lr)`.

use super::params::Tensors;

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

/// FedYogi's server step (Reddi et al., "Adaptive Federated Optimization",
/// ICLR 2021, Algorithm 2): like Adam without bias correction, but the
/// second moment moves additively, `v -= (1 - b2) g² sign(v - g²)`, so it
/// cannot collapse after a run of small changes; `tau` is the paper's
/// adaptivity (10⁻³), and v starts at tau².
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Yogi {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub tau: f32,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Yogi {
    pub fn new(lr: f32) -> Self {
        Yogi {
            lr,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// One step against `grad` (the negated mean change of a round).
    pub fn step<T: Tensors + ?Sized>(&mut self, params: &mut T, grad: &[f32]) {
        if self.m.len() != grad.len() {
            self.m = vec![0.0; grad.len()];
            self.v = vec![self.tau * self.tau; grad.len()];
        }
        let mut delta = vec![0.0f32; grad.len()];
        for i in 0..grad.len() {
            let g2 = grad[i] * grad[i];
            self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * grad[i];
            self.v[i] -= (1.0 - self.beta2) * g2 * (self.v[i] - g2).signum();
            delta[i] = self.m[i] / (self.v[i].max(0.0).sqrt() + self.tau);
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
    fn yogi_minimises_a_quadratic_and_its_second_moment_moves_additively() {
        let mut p = LinearHead::new(3, 1.0, &mut Rng::new(1));
        let mut yogi = Yogi::new(0.05);
        for _ in 0..2000 {
            let g: Vec<f32> = p.flatten().iter().map(|x| 2.0 * (x - 0.5)).collect();
            yogi.step(&mut p, &g);
        }
        assert!(
            p.flatten().iter().all(|x| (x - 0.5).abs() < 1e-2),
            "{:?}",
            p.flatten()
        );
        // One step from v = tau² with g = 1: v = tau² + (1 - b2) * 1.
        let mut q = LinearHead::new(1, 1.0, &mut Rng::new(2));
        let mut y = Yogi::new(0.1);
        y.step(&mut q, &[1.0, 1.0]);
        assert!((y.v[0] - (1e-6 + 0.01)).abs() < 1e-7, "{}", y.v[0]);
    }
}
