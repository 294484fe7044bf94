//! Row gather from an item table, and the sparse scatter-add of its gradient.

use ndarray::{Array2, ArrayView2};

/// Rows `ids` of `table`, in that order (ids may repeat). Copies whole rows:
/// ndarray's `select` goes element by element and dominated small rounds.
pub fn gather(table: &ArrayView2<f32>, ids: &[usize]) -> Array2<f32> {
    let cols = table.ncols();
    let mut out = Vec::with_capacity(ids.len() * cols);
    for &id in ids {
        let row = table.row(id);
        match row.as_slice() {
            Some(slice) => out.extend_from_slice(slice),
            None => out.extend(row.iter()),
        }
    }
    Array2::from_shape_vec((ids.len(), cols), out).expect("rows x cols elements")
}

/// Adds each row of `d_rows` into row `ids[k]` of `grad` (repeated ids add up).
pub fn scatter_add(grad: &mut Array2<f32>, ids: &[usize], d_rows: &ArrayView2<f32>) {
    scatter_scaled_add(grad, ids, d_rows, 1.0);
}

/// Adds `alpha` times each row of `d_rows` into row `ids[k]` of `table`:
/// an SGD step on the rows a batch touched, without a table-sized gradient.
pub fn scatter_scaled_add(
    table: &mut Array2<f32>,
    ids: &[usize],
    d_rows: &ArrayView2<f32>,
    alpha: f32,
) {
    for (&id, row) in ids.iter().zip(d_rows.rows()) {
        table.row_mut(id).scaled_add(alpha, &row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{check_input_grad, random_matrix};
    use crate::rng::Rng;

    #[test]
    fn gather_matches_select_on_strided_views() {
        let mut rng = Rng::new(8);
        let table = random_matrix(6, 4, &mut rng);
        let ids = [5usize, 0, 5, 2];
        let t = table.t(); // non-contiguous rows
        assert_eq!(gather(&t, &[3, 1]), t.select(ndarray::Axis(0), &[3, 1]));
        assert_eq!(
            gather(&table.view(), &ids),
            table.select(ndarray::Axis(0), &ids)
        );
    }

    #[test]
    fn scaled_scatter_equals_a_step_with_the_scattered_gradient() {
        let mut rng = Rng::new(9);
        let table = random_matrix(5, 3, &mut rng);
        let d_rows = random_matrix(4, 3, &mut rng);
        let ids = [4usize, 1, 4, 0];
        let mut grad = Array2::zeros(table.raw_dim());
        scatter_add(&mut grad, &ids, &d_rows.view());
        let mut expected = table.clone();
        expected.scaled_add(-0.3, &grad);
        let mut stepped = table.clone();
        scatter_scaled_add(&mut stepped, &ids, &d_rows.view(), -0.3);
        assert!(
            stepped
                .iter()
                .zip(&expected)
                .all(|(a, b)| (a - b).abs() < 1e-6)
        );
        assert_eq!(stepped.row(2), table.row(2), "an untouched row stays");
    }

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
