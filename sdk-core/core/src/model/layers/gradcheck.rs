//! Finite-difference gradient checks shared by every layer's tests.
//!
//! The model is f32, so the checks are too. Tolerance (documented in the
//! README): central differences with step 1e-2·max(1,|x|) on a scalar loss
//! L = sum(output * R) for a random R accumulated in f64; an analytic
//! gradient a and a numeric one n agree when |a - n| <= 1e-2 · max(|a|, |n|, 0.05).
//! Every entry of every tensor is checked (the test sizes are kept small).

use ndarray::{Array1, Array2};

use crate::model::params::Tensors;
use crate::rng::Rng;

const REL_TOL: f64 = 1e-2;
const FLOOR: f64 = 0.05;

pub fn random_matrix(rows: usize, cols: usize, rng: &mut Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.normal() as f32)
}

fn step(x: f32) -> f32 {
    1e-2 * x.abs().max(1.0)
}

pub fn assert_close(analytic: f64, numeric: f64, what: &str) {
    let scale = analytic.abs().max(numeric.abs()).max(FLOOR);
    assert!(
        (analytic - numeric).abs() <= REL_TOL * scale,
        "{what}: analytic {analytic} vs numeric {numeric}"
    );
}

fn projected(out: &Array2<f32>, r: &Array2<f32>) -> f64 {
    out.iter()
        .zip(r.iter())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Checks the parameter gradients that `backward(params, dL/dout, grad)` adds.
pub fn check_param_grads<T: Tensors + Clone>(
    params: &T,
    forward: impl Fn(&T) -> Array2<f32>,
    backward: impl Fn(&T, Array2<f32>, &mut T),
    rng: &mut Rng,
) {
    let out = forward(params);
    let r = random_matrix(out.nrows(), out.ncols(), rng);
    check_param_grads_of_loss(
        params,
        |p| projected(&forward(p), &r),
        |p, g| backward(p, r.clone(), g),
    );
}

/// Checks the parameter gradient of any scalar loss.
pub fn check_param_grads_of_loss<T: Tensors + Clone>(
    params: &T,
    loss: impl Fn(&T) -> f64,
    backward: impl Fn(&T, &mut T),
) {
    let mut grad = params.zeros_like();
    backward(params, &mut grad);
    let analytic = grad.flatten();
    let base = params.flatten();
    let mut probe = params.clone();
    for (k, &x) in base.iter().enumerate() {
        let h = step(x);
        let mut delta = vec![0.0f32; base.len()];
        delta[k] = h;
        probe.add_flat(&delta, 1.0);
        let up = loss(&probe);
        probe.add_flat(&delta, -2.0);
        let down = loss(&probe);
        probe.add_flat(&delta, 1.0);
        let numeric = (up - down) / (2.0 * h as f64);
        assert_close(analytic[k] as f64, numeric, &format!("parameter {k}"));
    }
}

/// Checks dL/dx returned by `backward(x, dL/dout)`.
pub fn check_input_grad(
    x: &Array2<f32>,
    forward: impl Fn(&Array2<f32>) -> Array2<f32>,
    backward: impl Fn(&Array2<f32>, &Array2<f32>) -> Array2<f32>,
    rng: &mut Rng,
) {
    let out = forward(x);
    let r = random_matrix(out.nrows(), out.ncols(), rng);
    let dx = backward(x, &r);
    assert_eq!(dx.dim(), x.dim());
    let mut probe = x.clone();
    for idx in 0..x.len() {
        let (i, j) = (idx / x.ncols(), idx % x.ncols());
        let h = step(x[(i, j)]);
        probe[(i, j)] = x[(i, j)] + h;
        let up = projected(&forward(&probe), &r);
        probe[(i, j)] = x[(i, j)] - h;
        let down = projected(&forward(&probe), &r);
        probe[(i, j)] = x[(i, j)];
        assert_close(
            dx[(i, j)] as f64,
            (up - down) / (2.0 * h as f64),
            &format!("input ({i},{j})"),
        );
    }
}

/// Checks the gradient of a scalar function of a vector.
pub fn check_scalar_input_grad(
    x: &Array1<f32>,
    loss: impl Fn(&Array1<f32>) -> f64,
    grad: impl Fn(&Array1<f32>) -> Array1<f32>,
) {
    let g = grad(x);
    let mut probe = x.clone();
    for i in 0..x.len() {
        let h = step(x[i]);
        probe[i] = x[i] + h;
        let up = loss(&probe);
        probe[i] = x[i] - h;
        let down = loss(&probe);
        probe[i] = x[i];
        assert_close(
            g[i] as f64,
            (up - down) / (2.0 * h as f64),
            &format!("input {i}"),
        );
    }
}
