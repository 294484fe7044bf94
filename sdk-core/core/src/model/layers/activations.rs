//! Element-wise and row-wise activations.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Zip};

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

pub fn sigmoid(x: &ArrayView2<f32>) -> Array2<f32> {
    x.mapv(sigmoid_scalar)
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
            |x| sigmoid(&x.view()),
            |x, dy| sigmoid_backward(&sigmoid(&x.view()).view(), &dy.view()),
            &mut rng,
        );
        assert_eq!(sigmoid_scalar(-1000.0), 0.0);
        assert_eq!(sigmoid_scalar(1000.0), 1.0);
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
