//! Shamir's t-of-n secret sharing of 32-byte secrets over the prime field
//! GF(2^61 - 1). No maintained crate shares over a prime field with the
//! x-coordinates SecAgg+ needs (a holder's roster index), so this one is
//! ours: about sixty lines, checked against vectors made independently in
//! Python (`tests`).
//!
//! A secret is cut into five chunks of at most 7 bytes (< 2^56 < p); each
//! chunk is the constant term of its own random polynomial of degree t - 1.

use serde::{Deserialize, Serialize};

use super::crypto::KeyStream;
use crate::error::{Error, Result};

/// The field's modulus, the Mersenne prime 2^61 - 1.
pub const P: u64 = (1 << 61) - 1;
const CHUNKS: usize = 5;
const CHUNK_BYTES: usize = 7;

/// One holder's share of a 32-byte secret: the polynomials at `x`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// The holder's x-coordinate (its roster index + 1; never 0).
    pub x: u32,
    pub y: [u64; CHUNKS],
}

fn add(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= P { s - P } else { s }
}

fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + P - b }
}

fn mul(a: u64, b: u64) -> u64 {
    let x = u128::from(a) * u128::from(b);
    // 2^61 = 1 (mod p): fold the high bits onto the low ones.
    add((x as u64) & P, (x >> 61) as u64)
}

fn pow(mut base: u64, mut exp: u64) -> u64 {
    let mut acc = 1;
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    acc
}

fn inverse(a: u64) -> u64 {
    pow(a, P - 2)
}

/// Evaluates the polynomial with `coefficients` (constant first) at `x`.
pub(crate) fn evaluate(coefficients: &[u64], x: u64) -> u64 {
    coefficients
        .iter()
        .rev()
        .fold(0, |acc, &c| add(mul(acc, x), c))
}

fn chunks(secret: &[u8; 32]) -> [u64; CHUNKS] {
    let mut out = [0u64; CHUNKS];
    for (k, chunk) in secret.chunks(CHUNK_BYTES).enumerate() {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        out[k] = u64::from_le_bytes(bytes);
    }
    out
}

/// Shares `secret` among the holders at `xs` so that any `threshold` of
/// them recover it and fewer learn nothing. Coefficients come from `stream`
/// (uniform in the field by rejection).
pub fn split(
    secret: &[u8; 32],
    xs: &[u32],
    threshold: usize,
    stream: &mut KeyStream,
) -> Result<Vec<Share>> {
    if threshold == 0 || threshold > xs.len() || xs.contains(&0) {
        return Err(Error::InvalidConfig(format!(
            "cannot share among {} holders with threshold {threshold}",
            xs.len()
        )));
    }
    let polynomials: Vec<Vec<u64>> = chunks(secret)
        .iter()
        .map(|&constant| {
            let mut c = vec![constant];
            c.extend((1..threshold).map(|_| stream.field_element()));
            c
        })
        .collect();
    Ok(xs
        .iter()
        .map(|&x| Share {
            x,
            y: std::array::from_fn(|k| evaluate(&polynomials[k], u64::from(x))),
        })
        .collect())
}

/// Recovers a secret from shares (at least the threshold used to split;
/// all are used, so they must come from one sharing).
pub fn combine(shares: &[Share]) -> Result<[u8; 32]> {
    let bad = |m: &str| Err(Error::InvalidMessage(format!("secret shares: {m}")));
    if shares.is_empty() {
        return bad("none given");
    }
    let xs: Vec<u64> = shares.iter().map(|s| u64::from(s.x)).collect();
    if xs.contains(&0) || (1..xs.len()).any(|i| xs[..i].contains(&xs[i])) {
        return bad("x-coordinates must be distinct and non-zero");
    }
    // Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i).
    let basis: Vec<u64> = (0..xs.len())
        .map(|i| {
            let (mut num, mut den) = (1, 1);
            for (j, &xj) in xs.iter().enumerate() {
                if j != i {
                    num = mul(num, xj);
                    den = mul(den, sub(xj, xs[i]));
                }
            }
            mul(num, inverse(den))
        })
        .collect();
    let mut secret = [0u8; 32];
    for (k, out) in secret.chunks_mut(CHUNK_BYTES).enumerate() {
        let value = shares
            .iter()
            .zip(&basis)
            .fold(0, |acc, (s, &l)| add(acc, mul(s.y[k], l)));
        if value >> (8 * out.len()) != 0 {
            return bad("they do not belong to one secret");
        }
        out.copy_from_slice(&value.to_le_bytes()[..out.len()]);
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_arithmetic_matches_python_vectors() {
        // python3: p = 2**61 - 1; (a * b) % p, pow(a, p - 2, p)
        let a = 0x1234_5678_9abc_def0 % P;
        let b = 0x0fed_cba9_8765_4321 % P;
        assert_eq!(mul(a, b), 812_522_142_051_616_513);
        assert_eq!(inverse(a), 513_990_220_133_202_702);
        assert_eq!(mul(a, inverse(a)), 1);
        assert_eq!(sub(3, 5), P - 2);
    }

    #[test]
    fn polynomial_and_lagrange_match_python_vectors() {
        // python3: f(x) = 42 + 7 x + 1234567890123 x^2 (mod p) at x = 1, 2, 3, 1000.
        let coefficients = [42, 7, 1_234_567_890_123];
        let expected = [
            (1, 1_234_567_890_172),
            (2, 4_938_271_560_548),
            (3, 11_111_111_011_170),
            (1000, 1_234_567_890_123_007_042),
        ];
        for (x, y) in expected {
            assert_eq!(evaluate(&coefficients, x), y, "f({x})");
        }
        // Any three of them give f(0) = 42 back in every chunk.
        let shares: Vec<Share> = [expected[0], expected[2], expected[3]]
            .iter()
            .map(|&(x, y)| Share {
                x: x as u32,
                y: [y; 5],
            })
            .collect();
        let secret = combine(&shares).unwrap();
        let mut want = [0u8; 32];
        for k in 0..4 {
            want[7 * k] = 42;
        }
        want[28] = 42;
        assert_eq!(secret, want);
    }

    #[test]
    fn any_threshold_of_shares_recovers_and_fewer_do_not() {
        let secret: [u8; 32] = std::array::from_fn(|i| (i * 37 + 11) as u8);
        let mut stream = KeyStream::new(&[9; 32]);
        let xs = [1, 2, 5, 9, 11, 12];
        let shares = split(&secret, &xs, 4, &mut stream).unwrap();
        assert_eq!(combine(&shares[..4]).unwrap(), secret);
        assert_eq!(combine(&shares[2..]).unwrap(), secret);
        assert_eq!(combine(&shares).unwrap(), secret);
        // Three shares of a degree-3 polynomial point elsewhere.
        assert_ne!(combine(&shares[..3]).ok(), Some(secret));
        let mut dup = shares[..4].to_vec();
        dup[1].x = dup[0].x;
        assert!(combine(&dup).is_err());
        assert!(split(&secret, &xs, 7, &mut stream).is_err());
        assert!(split(&secret, &[0, 1], 1, &mut stream).is_err());
    }
}
