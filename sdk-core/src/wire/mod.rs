//! Everything that crosses a process boundary as bytes: the catalog and the
//! global model a device downloads, and the update it uploads.
//!
//! `envelope` frames every message (magic, protocol version, kind, length,
//! sha256 of the body); `codec` is the one place that calls bincode; the
//! message files define the bodies and their checks.

pub mod codec;
mod envelope;
mod messages;

pub use envelope::{
    HEADER_LEN, MAGIC, MessageKind, PROTOCOL_VERSION, declared_digest, digest_hex, open, seal,
};
pub use messages::{
    CatalogItem, CatalogMessage, ModalitySpec, ModelMessage, RoundMessage, UpdateMessage,
};
