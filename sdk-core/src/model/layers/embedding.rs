//! Row gather from an item table, and the sparse scatter-add of its gradient.

use ndarray::{Array2, ArrayView2, Axis};

/// Rows `ids` of `table`, in that order (ids may repeat).
pub fn gather(table: &ArrayView2<f32>, ids: &[usize]) -> Array2<f32> {
    table.select(Axis(0), ids)
}

/// Adds each row of `d_rows` into row `ids[k]` of `grad` (repeated ids add up).
pub fn scatter_add(grad: &mut Array2<f32>, ids: &[usize], d_rows: &ArrayView2<f32>) {
    for (&id, row) in ids.iter().zip(d_rows.rows()) {
        let mut target = grad.row_mut(id);
        target += &row;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{check_input_grad, random_matrix};
    use crate::rng::Rng;

    #[test]
    fn gather_scatter_gradient_with_repeated_ids() {
        let mut rng = Rng::new(7);
        let table = random_matrix(5, 3, &mut rng);
        let ids = [4usize, 1, 4, 0];
        check_input_grad(
            &table,
            |t| gather(&t.view(), &ids),
            |t, dy| {
                let mut g = Array2::zeros(t.raw_dim());
                scatter_add(&mut g, &ids, &dy.view());
                g
            },
            &mut rng,
        );
    }
}
