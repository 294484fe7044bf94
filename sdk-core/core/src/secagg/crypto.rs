//! The primitives secure aggregation is made of, each from a maintained
//! RustCrypto / dalek crate: X25519 key agreement, HKDF-SHA256 key
//! derivation, the ChaCha20 stream that expands a 32-byte seed into a mask,
//! and the ChaCha20-Poly1305 AEAD that carries Shamir shares from one client
//! to another through the server.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

use super::shamir::P;
use crate::error::{Error, Result};

const SALT: &[u8] = b"fedmr-secagg-v1";

/// The public key of an X25519 secret.
pub fn public_key(secret: &[u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(*secret)).to_bytes()
}

/// A 32-byte key for `purpose`, derived from the X25519 agreement of our
/// `secret` with their `public` key, bound to the round.
pub fn agree(secret: &[u8; 32], public: &[u8; 32], purpose: &str, round: u64) -> Result<[u8; 32]> {
    let shared = StaticSecret::from(*secret).diffie_hellman(&PublicKey::from(*public));
    // A low-order public key makes the "shared" secret a constant anyone knows.
    if !shared.was_contributory() {
        return Err(Error::InvalidMessage(
            "secure aggregation: a public key of low order".into(),
        ));
    }
    Ok(derive(shared.as_bytes(), purpose, round))
}

/// HKDF-SHA256 of `ikm` for `purpose` in `round`.
pub fn derive(ikm: &[u8], purpose: &str, round: u64) -> [u8; 32] {
    let mut info = purpose.as_bytes().to_vec();
    info.extend_from_slice(&round.to_le_bytes());
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(SALT), ikm)
        .expand(&info, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

/// A ChaCha20 key stream (zero nonce: every key is used for one stream).
pub struct KeyStream(ChaCha20);

impl KeyStream {
    pub fn new(key: &[u8; 32]) -> Self {
        KeyStream(ChaCha20::new(key.into(), &[0u8; 12].into()))
    }

    fn fill(&mut self, bytes: &mut [u8]) {
        bytes.fill(0);
        self.0.apply_keystream(bytes);
    }

    /// A uniform element of GF(2^61 - 1) (rejection sampling).
    pub fn field_element(&mut self) -> u64 {
        loop {
            let mut bytes = [0u8; 8];
            self.fill(&mut bytes);
            let v = u64::from_le_bytes(bytes) >> 3;
            if v < P {
                return v;
            }
        }
    }

    /// Adds (`add`) or subtracts the next `values.len()` words of the
    /// stream to `values`, modulo 2^32.
    pub fn apply_mask(&mut self, values: &mut [u32], add: bool) {
        let mut bytes = vec![0u8; 4 * 4096];
        for block in values.chunks_mut(4096) {
            let bytes = &mut bytes[..4 * block.len()];
            self.fill(bytes);
            for (v, w) in block.iter_mut().zip(bytes.chunks_exact(4)) {
                let m = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                *v = if add {
                    v.wrapping_add(m)
                } else {
                    v.wrapping_sub(m)
                };
            }
        }
    }
}

/// The nonce of the one message `from` sends `to` under their shared key
/// (both directions share the key, so the direction is in the nonce).
fn nonce(from: u32, to: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&from.to_le_bytes());
    n[4..8].copy_from_slice(&to.to_le_bytes());
    n
}

/// Encrypts and authenticates `plaintext` from roster index `from` to `to`.
pub fn seal(key: &[u8; 32], from: u32, to: u32, plaintext: &[u8]) -> Vec<u8> {
    ChaCha20Poly1305::new(key.into())
        .encrypt(
            &nonce(from, to).into(),
            Payload {
                msg: plaintext,
                aad: SALT,
            },
        )
        .expect("ChaCha20-Poly1305 encrypts any message that fits in memory")
}

/// Opens what `from` sealed for `to`; a forged or altered message is an error.
pub fn open(key: &[u8; 32], from: u32, to: u32, ciphertext: &[u8]) -> Result<Vec<u8>> {
    ChaCha20Poly1305::new(key.into())
        .decrypt(
            &nonce(from, to).into(),
            Payload {
                msg: ciphertext,
                aad: SALT,
            },
        )
        .map_err(|_| {
            Error::InvalidMessage(format!(
                "secure aggregation: the share from {from} to {to} does not authenticate"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_and_low_order_keys_are_refused() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let ab = agree(&a, &public_key(&b), "mask", 7).unwrap();
        assert_eq!(ab, agree(&b, &public_key(&a), "mask", 7).unwrap());
        assert_ne!(ab, agree(&b, &public_key(&a), "mask", 8).unwrap());
        assert_ne!(ab, agree(&b, &public_key(&a), "share", 7).unwrap());
        assert!(agree(&a, &[0u8; 32], "mask", 7).is_err());
    }

    #[test]
    fn a_mask_added_then_subtracted_leaves_the_values() {
        let mut values: Vec<u32> = (0..10_000).collect();
        KeyStream::new(&[3; 32]).apply_mask(&mut values, true);
        assert_ne!(values[..5], [0, 1, 2, 3, 4]);
        KeyStream::new(&[3; 32]).apply_mask(&mut values, false);
        assert!(values.iter().enumerate().all(|(i, &v)| v == i as u32));
    }

    #[test]
    fn the_chacha20_stream_is_rfc_8439s() {
        // RFC 8439, 2.4.2 uses counter 1; with counter 0 and the all-zero key
        // and nonce the first block starts 76 b8 e0 ad (RFC 7539 A.1 #1).
        let mut words = [0u32; 1];
        KeyStream::new(&[0; 32]).apply_mask(&mut words, true);
        assert_eq!(words[0].to_le_bytes(), [0x76, 0xb8, 0xe0, 0xad]);
    }

    #[test]
    fn sealed_shares_open_only_for_their_direction_and_key() {
        let key = [5u8; 32];
        let sealed = seal(&key, 1, 2, b"share");
        assert_eq!(open(&key, 1, 2, &sealed).unwrap(), b"share");
        assert!(open(&key, 2, 1, &sealed).is_err());
        assert!(open(&[6u8; 32], 1, 2, &sealed).is_err());
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert!(open(&key, 1, 2, &tampered).is_err());
    }
}
