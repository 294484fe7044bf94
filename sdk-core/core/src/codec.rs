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
    whole(
        bincode::serde::decode_from_slice::<T, _>(bytes, config),
        bytes,
        what,
    )
}

/// Decodes `bytes` as a `T` through bincode's own `Decode` (for message
/// types on hot paths that read their float arrays in one piece; the bytes
/// are the same as `encode` writes). Same limit and exactness as `decode`.
pub fn decode_native<T: bincode::Decode<()>>(bytes: &[u8], what: &str) -> Result<T> {
    let config = CONFIG.with_limit::<MAX_BODY_BYTES>();
    whole(
        bincode::decode_from_slice::<T, _>(bytes, config),
        bytes,
        what,
    )
}

/// A decode's value, if it read all of `bytes`.
fn whole<T>(
    decoded: std::result::Result<(T, usize), bincode::error::DecodeError>,
    bytes: &[u8],
    what: &str,
) -> Result<T> {
    let (value, used) = decoded.map_err(|e| Error::InvalidMessage(format!("{what}: {e}")))?;
    if used != bytes.len() {
        return Err(Error::InvalidMessage(format!(
            "{what}: {} trailing bytes after the message",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// A `Vec<f32>` as `encode` writes it (a varint count, then 4-byte
/// little-endian values), read as one block: value by value through serde
/// it was a tenth of the server's time per upload. The count is checked
/// against the input before anything is allocated.
pub fn decode_f32s<D: bincode::de::Decoder>(
    decoder: &mut D,
) -> std::result::Result<Vec<f32>, bincode::error::DecodeError> {
    use bincode::de::read::Reader;
    use bincode::error::DecodeError;
    let count = <u64 as bincode::Decode<D::Context>>::decode(decoder)?;
    let count = usize::try_from(count).map_err(|_| DecodeError::OutsideUsizeRange(count))?;
    decoder.claim_container_read::<f32>(count)?;
    let bytes = count.checked_mul(4).ok_or(DecodeError::LimitExceeded)?;
    let reader = decoder.reader();
    let block = reader
        .peek_read(bytes)
        .ok_or(DecodeError::UnexpectedEnd { additional: bytes })?;
    let values = block
        .chunks_exact(4)
        .map(|v| f32::from_le_bytes([v[0], v[1], v[2], v[3]]))
        .collect();
    reader.consume(bytes);
    Ok(values)
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
