//! f32 values in fewer bytes: f16, or signed integer codes of 4 to 8 bits
//! (packed, little-endian bit order) with one f16 scale per block. A
//! compact model download (`compact_model.rs`) is built from these.
//!
//! Blocks never cross a segment (a tensor, or the whole item table with one
//! block per row), so a tensor of small values (a bias) does not share its
//! scale with a neighbour of large ones.

use half::f16;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Code widths an integer packing may use.
pub const BITS: std::ops::RangeInclusive<u8> = 4..=8;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Packed {
    /// Every value as a little-endian f16.
    F16 { values: Vec<u8> },
    /// `code[i] * scale(block of i)`, codes symmetric in
    /// `-(2^(bits-1) - 1)..=2^(bits-1) - 1`; blocks are `block` values long,
    /// cut afresh at the start of every segment (`segments` are lengths).
    Int {
        bits: u8,
        count: u64,
        segments: Vec<u32>,
        block: u32,
        /// One little-endian f16 per block, finite and not negative.
        scales: Vec<u8>,
        /// `count` codes of `bits` bits each, packed.
        codes: Vec<u8>,
    },
}

/// `values` as f16. Fails when one does not fit (beyond ±65504 or not finite).
pub fn pack_f16(values: &[f32]) -> Result<Packed> {
    let mut out = Vec::with_capacity(2 * values.len());
    for &v in values {
        let h = f16::from_f32(v);
        if !h.is_finite() {
            return Err(too_large(v, "f16"));
        }
        out.extend_from_slice(&h.to_le_bytes());
    }
    Ok(Packed::F16 { values: out })
}

/// `values` as `bits`-bit codes, one scale per `block` values within each
/// segment (`segments` must sum to `values.len()`). Each block's scale is
/// its largest magnitude over the largest code, rounded up to an f16, so
/// no code saturates.
pub fn pack_int(values: &[f32], bits: u8, segments: &[usize], block: usize) -> Result<Packed> {
    assert!(BITS.contains(&bits), "bits");
    assert_eq!(segments.iter().sum::<usize>(), values.len(), "segments");
    assert!(block > 0, "block");
    let largest_code = max_code(bits);
    let mut scales = Vec::new();
    let mut codes = BitWriter::with_capacity(values.len(), bits);
    let mut start = 0;
    for &len in segments {
        for chunk in values[start..start + len].chunks(block) {
            let largest = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
            if !largest.is_finite() {
                return Err(too_large(largest, "integer codes"));
            }
            let scale = round_up_f16(largest / largest_code)?;
            scales.extend_from_slice(&scale.to_le_bytes());
            let inverse = if scale.to_f32() > 0.0 {
                1.0 / scale.to_f32()
            } else {
                0.0
            };
            for v in chunk {
                codes.push((v * inverse).round().clamp(-largest_code, largest_code) as i32);
            }
        }
        start += len;
    }
    Ok(Packed::Int {
        bits,
        count: values.len() as u64,
        segments: segments.iter().map(|&s| s as u32).collect(),
        block: block as u32,
        scales,
        codes: codes.finish(),
    })
}

impl Packed {
    /// The f32 values, checked to be exactly `count` and finite; hostile
    /// lengths and scales are refused before anything large is allocated.
    pub fn unpack(&self, count: usize, what: &str) -> Result<Vec<f32>> {
        let bad = |m: String| Err(Error::InvalidMessage(format!("{what}: {m}")));
        match self {
            Packed::F16 { values } => {
                if values.len() != 2 * count {
                    return bad(format!("{} f16 bytes for {count} values", values.len()));
                }
                let out: Vec<f32> = values
                    .chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect();
                if out.iter().any(|v| !v.is_finite()) {
                    return bad("a value is not finite".into());
                }
                Ok(out)
            }
            Packed::Int {
                bits,
                count: declared,
                segments,
                block,
                scales,
                codes,
            } => {
                let (bits, block) = (*bits, *block as usize);
                if !BITS.contains(&bits) {
                    return bad(format!("codes of {bits} bits"));
                }
                if block == 0 {
                    return bad("block of 0 values".into());
                }
                if *declared != count as u64 || codes.len() != (count * bits as usize).div_ceil(8) {
                    return bad(format!(
                        "{} code bytes ({declared} declared) for {count} values of {bits} bits",
                        codes.len()
                    ));
                }
                let total = segments
                    .iter()
                    .try_fold(0usize, |sum, &s| sum.checked_add(s as usize));
                if total != Some(count) {
                    return bad(format!("segments do not cover the {count} values"));
                }
                let blocks: usize = segments.iter().map(|&s| (s as usize).div_ceil(block)).sum();
                if scales.len() != 2 * blocks {
                    return bad(format!("{} scale bytes for {blocks} blocks", scales.len()));
                }
                let mut scale_of = scales
                    .chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]));
                let mut reader = BitReader::new(codes, bits);
                let mut out = Vec::with_capacity(count);
                for &len in segments {
                    let mut left = len as usize;
                    while left > 0 {
                        let n = left.min(block);
                        let scale = scale_of.next().expect("counted above");
                        if !scale.is_finite() || scale.is_sign_negative() {
                            return bad(format!("scale {scale} is not finite and positive"));
                        }
                        let scale = scale.to_f32();
                        out.extend((0..n).map(|_| reader.next() as f32 * scale));
                        left -= n;
                    }
                }
                Ok(out)
            }
        }
    }

    /// How many values it holds (as it says; `unpack` checks the rest).
    pub fn len(&self) -> usize {
        match self {
            Packed::F16 { values } => values.len() / 2,
            Packed::Int { count, .. } => usize::try_from(*count).unwrap_or(usize::MAX),
        }
    }
}

fn max_code(bits: u8) -> f32 {
    ((1i32 << (bits - 1)) - 1) as f32
}

/// Appends `bits`-bit two's-complement codes, low bits first.
struct BitWriter {
    out: Vec<u8>,
    bits: u8,
    acc: u32,
    filled: u8,
}

impl BitWriter {
    fn with_capacity(values: usize, bits: u8) -> Self {
        BitWriter {
            out: Vec::with_capacity((values * bits as usize).div_ceil(8)),
            bits,
            acc: 0,
            filled: 0,
        }
    }

    fn push(&mut self, code: i32) {
        let mask = (1u32 << self.bits) - 1;
        self.acc |= (code as u32 & mask) << self.filled;
        self.filled += self.bits;
        while self.filled >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.filled -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.filled > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// Reads what `BitWriter` wrote (the caller counts the codes).
struct BitReader<'a> {
    bytes: std::slice::Iter<'a, u8>,
    bits: u8,
    acc: u32,
    filled: u8,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8], bits: u8) -> Self {
        BitReader {
            bytes: bytes.iter(),
            bits,
            acc: 0,
            filled: 0,
        }
    }

    fn next(&mut self) -> i32 {
        while self.filled < self.bits {
            let byte = self.bytes.next().copied().unwrap_or(0);
            self.acc |= (byte as u32) << self.filled;
            self.filled += 8;
        }
        let raw = self.acc & ((1u32 << self.bits) - 1);
        self.acc >>= self.bits;
        self.filled -= self.bits;
        // Sign-extend from `bits`.
        let shift = 32 - self.bits as u32;
        ((raw << shift) as i32) >> shift
    }
}

/// The smallest f16 at or above `x` (x finite, not negative).
fn round_up_f16(x: f32) -> Result<f16> {
    let h = f16::from_f32(x);
    // For a non-negative f16 the next bit pattern is the next value up.
    let h = if h.to_f32() < x {
        f16::from_bits(h.to_bits() + 1)
    } else {
        h
    };
    if h.is_finite() {
        Ok(h)
    } else {
        Err(too_large(x, "integer codes (scale)"))
    }
}

fn too_large(v: f32, encoding: &str) -> Error {
    Error::InvalidArgument(format!(
        "a value of magnitude {v} cannot be sent as {encoding}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| (rng.normal() * 0.3) as f32).collect()
    }

    #[test]
    fn f16_round_trips_within_its_precision() {
        let v = values(300, 1);
        let back = pack_f16(&v).unwrap().unpack(300, "t").unwrap();
        for (a, b) in v.iter().zip(&back) {
            assert!((a - b).abs() <= a.abs() * 1e-3 + 1e-7, "{a} {b}");
        }
        assert!(pack_f16(&[1e6]).is_err());
        assert!(pack_f16(&[f32::NAN]).is_err());
    }

    #[test]
    fn the_error_is_at_most_half_a_step_of_its_block_at_every_width() {
        let mut v = values(203, 2);
        // A segment of tiny values beside large ones keeps its own scale.
        v[130..140].iter_mut().for_each(|x| *x *= 1e-4);
        let segments = [128, 2, 10, 63];
        for bits in BITS {
            let packed = pack_int(&v, bits, &segments, 64).unwrap();
            let back = packed.unpack(203, "t").unwrap();
            let mut start = 0;
            for &len in &segments {
                for chunk in (start..start + len).collect::<Vec<_>>().chunks(64) {
                    let largest = chunk.iter().map(|&i| v[i].abs()).fold(0f32, f32::max);
                    for &i in chunk {
                        // The scale is rounded up to an f16: one part in 1024,
                        // or one subnormal step (6e-8) for a block of tiny values.
                        let step = largest / max_code(bits) * (1.0 + 1.0 / 1024.0) + 6e-8;
                        assert!((v[i] - back[i]).abs() <= 0.5 * step, "{bits} bits, {i}");
                    }
                }
                start += len;
            }
            let Packed::Int { scales, codes, .. } = &packed else {
                unreachable!()
            };
            assert_eq!(
                scales.len(),
                2 * (2 + 1 + 1 + 1),
                "blocks never cross a segment"
            );
            assert_eq!(codes.len(), (203 * bits as usize).div_ceil(8));
        }
    }

    #[test]
    fn every_code_survives_the_bit_packing() {
        for bits in BITS {
            let top = max_code(bits) as i32;
            let codes: Vec<i32> = (-top..=top).chain([top, -top, 0, 1]).collect();
            let mut writer = BitWriter::with_capacity(codes.len(), bits);
            codes.iter().for_each(|&c| writer.push(c));
            let bytes = writer.finish();
            let mut reader = BitReader::new(&bytes, bits);
            let back: Vec<i32> = codes.iter().map(|_| reader.next()).collect();
            assert_eq!(back, codes, "{bits} bits");
        }
    }

    #[test]
    fn zeros_and_extremes() {
        let v = vec![0.0; 10];
        assert_eq!(
            pack_int(&v, 8, &[10], 4).unwrap().unpack(10, "t").unwrap(),
            v
        );
        // The largest magnitude comes back exactly up to f16 rounding of the scale.
        let v = vec![-3.0, 1.0, 2.0];
        for bits in BITS {
            let back = pack_int(&v, bits, &[3], 3).unwrap().unpack(3, "t").unwrap();
            assert!((back[0] + 3.0).abs() < 3e-3, "{back:?}");
        }
        assert!(pack_int(&[1e10], 8, &[1], 1).is_err());
        assert!(pack_int(&[f32::INFINITY], 8, &[1], 1).is_err());
    }

    #[test]
    fn hostile_packings_are_refused() {
        let good = pack_int(&values(10, 3), 6, &[10], 4).unwrap();
        let Packed::Int {
            bits,
            count,
            segments,
            block,
            scales,
            codes,
        } = good.clone()
        else {
            unreachable!()
        };
        let with =
            |bits: u8, count: u64, s: Vec<u32>, b: u32, sc: Vec<u8>, c: Vec<u8>| Packed::Int {
                bits,
                count,
                segments: s,
                block: b,
                scales: sc,
                codes: c,
            };
        let mut negative = scales.clone();
        negative[1] |= 0x80;
        let mut infinite = scales.clone();
        infinite[0..2].copy_from_slice(&f16::INFINITY.to_le_bytes());
        let (s, sc, c) = (segments.clone(), scales.clone(), codes.clone());
        let cases = [
            (
                "3 bits",
                with(3, count, s.clone(), block, sc.clone(), c.clone()),
            ),
            (
                "9 bits",
                with(9, count, s.clone(), block, sc.clone(), c.clone()),
            ),
            (
                "count",
                with(bits, count + 1, s.clone(), block, sc.clone(), c.clone()),
            ),
            (
                "block 0",
                with(bits, count, s.clone(), 0, sc.clone(), c.clone()),
            ),
            (
                "short codes",
                with(bits, count, s.clone(), block, sc.clone(), c[1..].to_vec()),
            ),
            (
                "segments",
                with(bits, count, vec![9], block, sc.clone(), c.clone()),
            ),
            (
                "overflowing segments",
                with(
                    bits,
                    count,
                    vec![u32::MAX, u32::MAX, 12],
                    block,
                    sc.clone(),
                    c.clone(),
                ),
            ),
            (
                "scales",
                with(bits, count, s.clone(), block, sc[2..].to_vec(), c.clone()),
            ),
            (
                "negative scale",
                with(bits, count, s.clone(), block, negative, c.clone()),
            ),
            ("infinite scale", with(bits, count, s, block, infinite, c)),
        ];
        for (name, packed) in cases {
            assert!(packed.unpack(10, "t").is_err(), "{name}");
        }
        assert!(good.unpack(11, "t").is_err());
        let nan_f16 = Packed::F16 {
            values: f16::NAN.to_le_bytes().to_vec(),
        };
        assert!(nan_f16.unpack(1, "t").is_err());
    }
}
