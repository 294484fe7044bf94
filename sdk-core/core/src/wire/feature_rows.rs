//! A catalog item's content features on the wire and on disk: every
//! modality concatenated, each value a little-endian f16.

use half::f16;
use half::slice::HalfFloatSliceExt;
use ndarray::Array2;

use crate::{Error, Result};

/// Appends `values` to `out` as little-endian f16.
pub fn encode_f16(values: impl IntoIterator<Item = f32>, out: &mut Vec<u8>) {
    for v in values {
        out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
    }
}

/// `features` as a phone receives them: each value rounded to f16 and back,
/// the precision a catalog message carries. A simulation that feeds the
/// model its features directly rounds them first, so it computes what the
/// phones do.
pub fn round_to_wire_precision(features: &mut Array2<f32>) {
    features.mapv_inplace(|v| f16::from_f32(v).to_f32());
}

/// f16 feature rows (every modality concatenated) to one f32 matrix per
/// modality of the given widths.
pub fn decode_feature_rows(rows: &[Vec<u8>], dims: &[usize]) -> Result<Vec<Array2<f32>>> {
    let width: usize = dims.iter().sum();
    let mut all = vec![0f32; rows.len() * width];
    let mut halves = vec![f16::ZERO; width];
    for (row, out) in rows.iter().zip(all.chunks_exact_mut(width.max(1))) {
        if row.len() != 2 * width {
            return Err(Error::Shape(format!(
                "feature row has {} bytes, expected {}",
                row.len(),
                2 * width
            )));
        }
        for (h, b) in halves.iter_mut().zip(row.chunks_exact(2)) {
            *h = f16::from_le_bytes([b[0], b[1]]);
        }
        halves.convert_to_f32_slice(out);
    }
    let mut offset = 0;
    Ok(dims
        .iter()
        .map(|&d| {
            let m = Array2::from_shape_fn((rows.len(), d), |(r, c)| all[r * width + offset + c]);
            offset += d;
            m
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_per_modality() {
        let mut row = Vec::new();
        encode_f16([1.0, -2.0, 0.5], &mut row);
        let out = decode_feature_rows(&[row.clone(), row], &[1, 2]).unwrap();
        assert_eq!(out[0].row(1).to_vec(), vec![1.0]);
        assert_eq!(out[1].row(0).to_vec(), vec![-2.0, 0.5]);
        assert!(decode_feature_rows(&[vec![0u8; 3]], &[1, 2]).is_err());
    }
}
