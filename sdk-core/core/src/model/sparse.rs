//! Rows of an item table by item id: how a round's touched rows travel
//! (an update's item-row change, FedRAP's personal rows).

use ndarray::Array2;

/// Rows of an item table, by item id (ids ascending and unique).
#[derive(Clone, Debug, PartialEq)]
pub struct SparseRows {
    pub ids: Vec<u32>,
    pub values: Array2<f32>,
}

impl SparseRows {
    /// Writes the kept rows of `ids` over the matching rows of `rows`
    /// (row k belongs to `ids[k]`); rows of other ids are left as they are.
    pub fn overlay(&self, ids: &[u32], rows: &mut Array2<f32>) {
        for (k, id) in ids.iter().enumerate() {
            if let Ok(p) = self.ids.binary_search(id) {
                rows.row_mut(k).assign(&self.values.row(p));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_replaces_only_kept_rows() {
        let kept = SparseRows {
            ids: vec![2, 5],
            values: ndarray::array![[20.0], [50.0]],
        };
        let mut rows = ndarray::array![[1.0], [2.0], [3.0]];
        kept.overlay(&[5, 3, 2], &mut rows);
        assert_eq!(rows.column(0).to_vec(), vec![50.0, 2.0, 20.0]);
    }
}
