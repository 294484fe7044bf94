//! The personal item rows a backbone keeps on the device (PFedRec's
//! replaced rows, FedRAP's additive ones).

use ndarray::Array2;

use crate::model::{PrivateState, SparseRows};

/// The user's personal rows of `ids` (sorted), zero where none is kept yet.
pub(super) fn personal_rows_of(state: &PrivateState, ids: &[u32], dim: usize) -> Array2<f32> {
    let mut out = Array2::zeros((ids.len(), dim));
    if let Some(kept) = &state.personal_items.0 {
        kept.overlay(ids, &mut out);
    }
    out
}

/// `old` with `new`'s rows added or overwritten; ids stay sorted.
pub(super) fn merge_rows(old: Option<SparseRows>, new: SparseRows) -> SparseRows {
    let Some(old) = old else {
        return new;
    };
    let mut ids: Vec<u32> = old.ids.iter().chain(&new.ids).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    let mut values = Array2::zeros((ids.len(), new.values.ncols()));
    for (k, id) in ids.iter().enumerate() {
        let row = match new.ids.binary_search(id) {
            Ok(p) => new.values.row(p),
            Err(_) => old
                .values
                .row(old.ids.binary_search(id).expect("an old id")),
        };
        values.row_mut(k).assign(&row);
    }
    SparseRows { ids, values }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_rows_keep_old_and_take_new() {
        let rows = |ids: Vec<u32>, v: Vec<f32>| SparseRows {
            values: Array2::from_shape_vec((ids.len(), 1), v).unwrap(),
            ids,
        };
        let merged = merge_rows(
            Some(rows(vec![1, 4, 7], vec![1.0, 4.0, 7.0])),
            rows(vec![2, 4], vec![20.0, 40.0]),
        );
        assert_eq!(merged.ids, vec![1, 2, 4, 7]);
        assert_eq!(merged.values.column(0).to_vec(), vec![1.0, 20.0, 40.0, 7.0]);
    }
}
