//! Everything that crosses a process boundary as bytes: the catalog and the
//! global model a device downloads, the update it uploads, and secure
//! aggregation's messages.
//!
//! `envelope` frames every message (magic, protocol version, kind, length,
//! sha256 of the body); the message files define the bodies and their
//! checks, encoded through `crate::codec`.

mod compact_model;
mod envelope;
mod feature_rows;
mod messages;
mod packed;
mod secagg;

pub use compact_model::ModelEncoding;
pub use envelope::{
    HEADER_LEN, MAGIC, MessageKind, PROTOCOL_VERSION, declared_digest, digest_hex, open, seal,
};
pub use feature_rows::{decode_feature_rows, encode_f16, round_to_wire_precision};
pub use messages::{
    CatalogItem, CatalogMessage, MAX_IDEMPOTENCY_KEY_BYTES, MAX_ITEM_KEY_BYTES, ModalitySpec,
    ModelMessage, RoundMessage, UpdateMessage,
};
pub use secagg::SecAggMessage;
