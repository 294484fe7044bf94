//! The frame around every message:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `FDMR` |
//! | 2 | protocol version, little-endian |
//! | 1 | message kind |
//! | 1 | reserved, 0 |
//! | 8 | body length, little-endian |
//! | 32 | sha256 of the body |
//! | n | body (bincode, see `codec`) |
//!
//! The digest is checked before the body is decoded, so a truncated or
//! corrupted download is refused without ever being parsed.

use sha2::{Digest, Sha256};

use crate::codec::MAX_BODY_BYTES;
use crate::{Error, Result};

pub const MAGIC: [u8; 4] = *b"FDMR";
/// 2: the training configuration carries the round's `Protection`.
/// 3: `Protection` may ask for secure aggregation (and its six messages).
pub const PROTOCOL_VERSION: u16 = 3;
pub const HEADER_LEN: usize = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageKind {
    Catalog = 1,
    Model = 2,
    Update = 3,
    Round = 4,
    SecAggKeys = 5,
    SecAggRoster = 6,
    SecAggShares = 7,
    SecAggMasked = 8,
    SecAggUnmaskRequest = 9,
    SecAggUnmaskResponse = 10,
    /// A model download in f16 or int8 (`compact_model.rs`).
    CompactModel = 11,
}

impl MessageKind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => MessageKind::Catalog,
            2 => MessageKind::Model,
            3 => MessageKind::Update,
            4 => MessageKind::Round,
            5 => MessageKind::SecAggKeys,
            6 => MessageKind::SecAggRoster,
            7 => MessageKind::SecAggShares,
            8 => MessageKind::SecAggMasked,
            9 => MessageKind::SecAggUnmaskRequest,
            10 => MessageKind::SecAggUnmaskResponse,
            11 => MessageKind::CompactModel,
            _ => return None,
        })
    }
}

/// Frames `body` as a message of `kind`. Returns the bytes and the body's sha256.
pub fn seal(kind: MessageKind, body: &[u8]) -> (Vec<u8>, [u8; 32]) {
    let digest: [u8; 32] = Sha256::digest(body).into();
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    out.push(kind as u8);
    out.push(0);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&digest);
    out.extend_from_slice(body);
    (out, digest)
}

/// Checks the frame of a message expected to be of `kind` and returns its
/// body and the body's sha256.
pub fn open(bytes: &[u8], kind: MessageKind) -> Result<(&[u8], [u8; 32])> {
    let bad = |m: String| Err(Error::InvalidMessage(m));
    if bytes.len() < HEADER_LEN {
        return bad(format!(
            "{} bytes is shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        ));
    }
    if bytes[..4] != MAGIC {
        return bad("not a FedMR message (bad magic bytes)".into());
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != PROTOCOL_VERSION {
        return bad(format!(
            "protocol version {version}, this build speaks {PROTOCOL_VERSION}"
        ));
    }
    match MessageKind::from_byte(bytes[6]) {
        Some(found) if found == kind => {}
        Some(found) => return bad(format!("expected a {kind:?} message, got {found:?}")),
        None => return bad(format!("unknown message kind {}", bytes[6])),
    }
    if bytes[7] != 0 {
        return bad("reserved header byte is not zero".into());
    }
    let declared = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if declared > MAX_BODY_BYTES as u64 {
        return bad(format!(
            "body of {declared} bytes exceeds the {MAX_BODY_BYTES}-byte limit"
        ));
    }
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != declared {
        return bad(format!(
            "truncated or padded: header says {declared} body bytes, found {}",
            body.len()
        ));
    }
    let digest: [u8; 32] = Sha256::digest(body).into();
    if digest[..] != bytes[16..48] {
        return bad("body does not match its sha256 (corrupted)".into());
    }
    Ok((body, digest))
}

/// The body digest a framed message declares (not verified: call `open`
/// first). This is the message's identity: ETags and installed versions use it.
pub fn declared_digest(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.get(16..48)?.try_into().ok()
}

/// A body digest as lowercase hex: the ETag the server sends and the
/// If-None-Match the client sends back, so both sides spell it one way.
pub fn digest_hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_returns_the_body() {
        let (bytes, digest) = seal(MessageKind::Model, b"hello");
        assert_eq!(bytes.len(), HEADER_LEN + 5);
        assert_eq!(
            open(&bytes, MessageKind::Model).unwrap(),
            (&b"hello"[..], digest)
        );
    }

    #[test]
    fn every_damage_is_refused() {
        let (good, _) = seal(MessageKind::Catalog, b"catalog body");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated", good[..good.len() - 1].to_vec()),
            ("header only", good[..HEADER_LEN - 1].to_vec()),
            ("padded", [&good[..], b"x"].concat()),
            ("flipped body bit", {
                let mut b = good.clone();
                *b.last_mut().unwrap() ^= 1;
                b
            }),
            ("bad magic", {
                let mut b = good.clone();
                b[0] = b'X';
                b
            }),
            ("future version", {
                let mut b = good.clone();
                b[4..6].copy_from_slice(&(PROTOCOL_VERSION + 1).to_le_bytes());
                b
            }),
            ("past version", {
                let mut b = good.clone();
                b[4..6].copy_from_slice(&(PROTOCOL_VERSION - 1).to_le_bytes());
                b
            }),
            ("unknown kind", {
                let mut b = good.clone();
                b[6] = 99;
                b
            }),
        ];
        for (name, bytes) in cases {
            let err = open(&bytes, MessageKind::Catalog).unwrap_err();
            assert!(matches!(err, Error::InvalidMessage(_)), "{name}: {err}");
        }
        let err = open(&good, MessageKind::Model).unwrap_err();
        assert!(err.to_string().contains("expected a Model"), "{err}");
    }
}
