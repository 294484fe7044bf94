//! The published model in the encodings a phone may ask for
//! (`GET /v1/model?encoding=f16|int8|int6|int4`). Each is made from the
//! snapshot's f32 model on its first request and kept with the snapshot, so
//! a version is encoded at most once per encoding however many phones
//! download it.

use std::sync::OnceLock;

use fedmr_core::wire::{ModelEncoding, ModelMessage};

use crate::rounds::{Published, Snapshot};

/// One slot per encoding but f32 (`ModelEncoding::ALL[1..]`).
#[derive(Default)]
pub struct CompactDownloads([OnceLock<Option<Published>>; ModelEncoding::ALL.len() - 1]);

impl Snapshot {
    /// The model download in `encoding`. A model with a value the encoding
    /// cannot carry is sent as f32 (a phone accepts either).
    pub fn model_download(&self, encoding: ModelEncoding) -> &Published {
        let slot = match ModelEncoding::ALL.iter().position(|&e| e == encoding) {
            Some(0) | None => return &self.model,
            Some(i) => &self.downloads.0[i - 1],
        };
        let made = slot.get_or_init(|| {
            let header = ModelMessage::header(
                self.version,
                (self.catalog_version, self.catalog_digest),
                &self.config,
                &self.train,
                &self.global,
            );
            match header.encode_as(&self.global, encoding) {
                Ok(bytes) => Some(Published::new(bytes)),
                Err(e) => {
                    eprintln!(
                        "fedmr-server: model {} sent as f32 instead of {}: {e}",
                        self.version,
                        encoding.name()
                    );
                    None
                }
            }
        });
        made.as_ref().unwrap_or(&self.model)
    }

    /// The downloads of this version made so far (f32 always): the tags a
    /// phone holding this version can send.
    pub fn made_downloads(&self) -> impl Iterator<Item = &Published> {
        std::iter::once(&self.model).chain(
            self.downloads
                .0
                .iter()
                .filter_map(|slot| slot.get().and_then(Option::as_ref)),
        )
    }
}
