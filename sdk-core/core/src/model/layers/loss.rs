//! Binary cross-entropy on logits, averaged over the batch.

use ndarray::{Array1, ArrayView1, Zip};

use super::activations::sigmoid_scalar;

/// Mean BCE of sigmoid(logits) against labels in {0, 1}; computed on logits
/// so that saturated scores give a finite loss.
pub fn bce_with_logits(logits: &ArrayView1<f32>, labels: &ArrayView1<f32>) -> f32 {
    let n = logits.len().max(1) as f64;
    let total: f64 = Zip::from(logits).and(labels).fold(0.0, |acc, &s, &y| {
        acc + (s.max(0.0) - s * y + (-s.abs()).exp().ln_1p()) as f64
    });
    (total / n) as f32
}

/// dL/dlogits of the mean BCE.
pub fn bce_with_logits_backward(logits: &ArrayView1<f32>, labels: &ArrayView1<f32>) -> Array1<f32> {
    let n = logits.len().max(1) as f32;
    Zip::from(logits)
        .and(labels)
        .map_collect(|&s, &y| (sigmoid_scalar(s) - y) / n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::check_scalar_input_grad;
    use ndarray::arr1;

    #[test]
    fn known_values_and_saturation() {
        let l = bce_with_logits(&arr1(&[0.0f32]).view(), &arr1(&[1.0f32]).view());
        assert!((l - std::f32::consts::LN_2).abs() < 1e-6);
        let big = bce_with_logits(&arr1(&[-200.0f32]).view(), &arr1(&[1.0f32]).view());
        assert!((big - 200.0).abs() < 1e-3);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let labels = arr1(&[1.0f32, 0.0, 1.0, 0.0]);
        let logits = arr1(&[0.3f32, -1.2, 2.5, 0.7]);
        check_scalar_input_grad(
            &logits,
            |s| bce_with_logits(&s.view(), &labels.view()) as f64,
            |s| bce_with_logits_backward(&s.view(), &labels.view()),
        );
    }
}
