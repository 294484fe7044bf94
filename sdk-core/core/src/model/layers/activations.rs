//! Element-wise and row-wise activations.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Zip};

use super::simd::dispatch_simd;

pub fn relu(x: &ArrayView2<f32>) -> Array2<f32> {
    x.mapv(|v| v.max(0.0))
}

/// dL/dx given the ReLU's *input* x.
pub fn relu_backward(x: &ArrayView2<f32>, dy: &ArrayView2<f32>) -> Array2<f32> {
    Zip::from(x)
        .and(dy)
        .map_collect(|&x, &d| if x > 0.0 { d } else { 0.0 })
}

pub fn sigmoid_scalar(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Element-wise sigmoid, in place. Through `exp_approx`, so the loop
/// vectorises: with the library's `expf` (a call per element) the gate
/// expert's sigmoids took 11% of a local round.
pub fn sigmoid(mut x: Array2<f32>) -> Array2<f32> {
    match x.as_slice_mut() {
        Some(values) => sigmoid_slice(values),
        None => x.mapv_inplace(|v| 1.0 / (1.0 + exp_approx(-v))),
    }
    x
}

dispatch_simd! {
    fn sigmoid_slice(values: &mut [f32]) {
        values.iter_mut().for_each(|v| *v = 1.0 / (1.0 + exp_approx(-*v)));
    }
}

/// e^x within a few float32 ulps (Cephes' `expf` polynomial on x - n ln 2),
/// without branches or calls so that loops over it vectorise. The input is
/// clamped to [-87, 88], where e^x is a normal float; NaN stays NaN.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    // Adding 1.5 * 2^23 rounds to an integer n, left in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // x - n ln 2 in two parts (ln 2 = 0.693359375 - 2.12194440e-4) for accuracy.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n: n + 127 in the exponent bits.
    let n_bits = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    e_r * f32::from_bits(((n_bits + 127) << 23) as u32)
}

/// dL/dx given the sigmoid's *output* y.
pub fn sigmoid_backward(y: &ArrayView2<f32>, dy: &ArrayView2<f32>) -> Array2<f32> {
    Zip::from(y).and(dy).map_collect(|&y, &d| d * y * (1.0 - y))
}

pub fn softmax(x: &ArrayView1<f32>) -> Array1<f32> {
    let max = x.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let e = x.mapv(|v| (v - max).exp());
    let sum = e.sum();
    e / sum
}

/// dL/dx given the softmax's output y.
pub fn softmax_backward(y: &ArrayView1<f32>, dy: &ArrayView1<f32>) -> Array1<f32> {
    let dot = y.dot(dy);
    Zip::from(y).and(dy).map_collect(|&y, &d| y * (d - dot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{check_input_grad, random_matrix};
    use crate::rng::Rng;
    use ndarray::Axis;

    #[test]
    fn relu_gradient() {
        let mut rng = Rng::new(4);
        // Keep inputs away from the kink, where a finite difference is meaningless.
        let x = random_matrix(3, 5, &mut rng).mapv(|v| if v.abs() < 0.05 { v + 0.1 } else { v });
        check_input_grad(
            &x,
            |x| relu(&x.view()),
            |x, dy| relu_backward(&x.view(), &dy.view()),
            &mut rng,
        );
    }

    #[test]
    fn sigmoid_gradient_and_stability() {
        let mut rng = Rng::new(5);
        let x = random_matrix(3, 5, &mut rng) * 3.0;
        check_input_grad(
            &x,
            |x| sigmoid(x.clone()),
            |x, dy| sigmoid_backward(&sigmoid(x.clone()).view(), &dy.view()),
            &mut rng,
        );
        assert_eq!(sigmoid_scalar(-1000.0), 0.0);
        assert_eq!(sigmoid_scalar(1000.0), 1.0);
    }

    #[test]
    fn exp_approx_is_within_a_few_ulps_of_exp() {
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (got, want) = (exp_approx(x), (x as f64).exp());
            let rel = ((got as f64 - want) / want).abs();
            assert!(
                rel < 4e-7,
                "exp({x}) = {got}, want {want} (relative error {rel})"
            );
            x += 0.001_7;
        }
        assert_eq!(exp_approx(0.0), 1.0);
        assert!(exp_approx(f32::NAN).is_nan());
        // Clamped, not overflowing to infinity or to a wrong exponent.
        assert_eq!(exp_approx(1000.0), exp_approx(88.0));
        assert!(exp_approx(-1000.0) > 0.0 && exp_approx(-1000.0) < 1e-37);
    }

    #[test]
    fn array_sigmoid_matches_the_scalar_one() {
        let x = Array2::from_shape_fn((50, 41), |(i, j)| {
            (i as f32 - 25.0) * 0.7 + j as f32 * 0.013
        });
        let y = sigmoid(x.clone());
        for (&v, &s) in x.iter().zip(&y) {
            assert!((s - sigmoid_scalar(v)).abs() <= 1e-6 * sigmoid_scalar(v).max(1e-30) + 1e-38);
        }
        assert_eq!(sigmoid(ndarray::arr2(&[[1000.0f32, -1000.0]]))[[0, 0]], 1.0);
    }

    #[test]
    fn softmax_gradient_and_sum() {
        let mut rng = Rng::new(6);
        let x = random_matrix(1, 4, &mut rng) * 2.0;
        let row = |x: &Array2<f32>| softmax(&x.row(0)).insert_axis(Axis(0));
        assert!((row(&x).sum() - 1.0).abs() < 1e-6);
        check_input_grad(
            &x,
            row,
            |x, dy| softmax_backward(&softmax(&x.row(0)).view(), &dy.row(0)).insert_axis(Axis(0)),
            &mut rng,
        );
        assert!(
            softmax(&ndarray::arr1(&[1000.0f32, 0.0]).view())
                .iter()
                .all(|v| v.is_finite())
        );
    }
}
