//! The single bincode entry point. Every decode has a byte limit, so a
//! hostile length prefix cannot make us allocate more than the limit, and
//! must consume its input exactly, so trailing garbage is an error too.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Upper bound for any one message body: a 100k-item catalog with two
/// 512-d f16 modalities is ~205 MB, so this leaves room without being open-ended.
pub const MAX_BODY_BYTES: usize = 1 << 30;

const CONFIG: bincode::config::Configuration = bincode::config::standard();

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own plain structs into a Vec cannot fail.
    bincode::serde::encode_to_vec(value, CONFIG).expect("encoding to a Vec cannot fail")
}

/// Decodes `bytes` as a `T`, reading at most `MAX_BODY_BYTES`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    let config = CONFIG.with_limit::<MAX_BODY_BYTES>();
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(bytes, config)
        .map_err(|e| Error::InvalidMessage(format!("{what}: {e}")))?;
    if used != bytes.len() {
        return Err(Error::InvalidMessage(format!(
            "{what}: {} trailing bytes after the message",
            bytes.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let value = (7u64, String::from("key"), vec![1.5f32, -2.0]);
        let bytes = encode(&value);
        let back: (u64, String, Vec<f32>) = decode(&bytes, "test").unwrap();
        assert_eq!(back, value);

        let mut longer = bytes.clone();
        longer.push(0);
        let err = decode::<(u64, String, Vec<f32>)>(&longer, "test").unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");

        let err = decode::<(u64, String, Vec<f32>)>(&bytes[..bytes.len() - 1], "test");
        assert!(matches!(err, Err(Error::InvalidMessage(_))));
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating() {
        // A Vec<u8> whose varint length claims u64::MAX elements.
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = decode::<Vec<u8>>(&bytes, "test").unwrap_err();
        assert!(matches!(err, Error::InvalidMessage(_)), "{err}");
    }
}
