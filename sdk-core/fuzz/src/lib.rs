//! One function per decoder that takes bytes from outside the process: a
//! peer on the network (the envelope and every message kind), or a file an
//! operator or researcher hands us (npy, MMRec and RecBole folders, the
//! catalog items file). Each must return an error for bad input, never
//! panic, hang or allocate without bound; each also runs what a receiver
//! does next with a message that decodes (an update is checked against a
//! model, a model's shapes are read), since that is outside input too.
//!
//! `libfuzzer/` runs them under cargo-fuzz (coverage-guided); the smoke test
//! (`tests/smoke.rs`) replays the seeds and every regression, then mutates
//! them for a few seconds, on stable Rust in CI.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fedmr_core::model::GlobalModel;
use fedmr_core::secagg::{
    KeyAdvert, MaskedInput, Roster, ShareBatch, UnmaskRequest, UnmaskResponse,
};
use fedmr_core::wire::{
    self, CatalogMessage, MessageKind, ModelMessage, RoundMessage, SecAggMessage, UpdateMessage,
};

/// A fuzz target: takes any bytes, must not panic.
pub type Target = fn(&[u8]);

/// Every target by name, as cargo-fuzz and the smoke test call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("envelope", envelope),
    ("catalog", catalog),
    ("model", model),
    ("update", update),
    ("round", round),
    ("secagg", secagg),
    ("npy", npy),
    ("mmrec", mmrec),
    ("recbole", recbole),
    ("items_file", items_file),
];

/// The envelope alone, under the kind named by the first byte.
pub fn envelope(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let kinds = [
        MessageKind::Catalog,
        MessageKind::Model,
        MessageKind::Update,
        MessageKind::Round,
        MessageKind::SecAggKeys,
        MessageKind::SecAggRoster,
        MessageKind::SecAggShares,
        MessageKind::SecAggMasked,
        MessageKind::SecAggUnmaskRequest,
        MessageKind::SecAggUnmaskResponse,
    ];
    let _ = wire::open(rest, kinds[kind as usize % kinds.len()]);
    let _ = wire::declared_digest(rest);
}

/// The bytes a message decoder sees: `data` as it came (first byte even),
/// or the rest of `data` as the body of a correctly framed message of
/// `kind` (odd). A peer can always frame and digest its bytes correctly, so
/// the body decoders behind the digest check are fuzzed too.
fn framed(data: &[u8], kind: MessageKind) -> Vec<u8> {
    match data.split_first() {
        Some((&b, rest)) if b & 1 == 1 => wire::seal(kind, rest).0,
        Some((_, rest)) => rest.to_vec(),
        None => Vec::new(),
    }
}

pub fn catalog(data: &[u8]) {
    if let Ok((catalog, _)) = CatalogMessage::decode(&framed(data, MessageKind::Catalog)) {
        let _ = catalog.to_catalog();
    }
}

/// A model download, plain or compact (bit 1 of the first byte frames a
/// body as a compact one).
pub fn model(data: &[u8]) {
    let kind = match data.first() {
        Some(b) if b & 2 == 2 => MessageKind::CompactModel,
        _ => MessageKind::Model,
    };
    if let Ok((header, global)) = ModelMessage::decode(&framed(data, kind)) {
        let _ = (header.config.dim, global.n_items(), global.is_finite());
    }
}

/// An update as the server takes it: decoded, shaped for the model's
/// dimension, checked against the model.
pub fn update(data: &[u8]) {
    if let Ok(message) = UpdateMessage::decode(&framed(data, MessageKind::Update)) {
        let model = small_model();
        if let Ok(update) = message.to_update(model.dim()) {
            let _ = update.validate(model);
            let _ = update.l2_norm();
        }
    }
}

pub fn round(data: &[u8]) {
    let _ = RoundMessage::decode(&framed(data, MessageKind::Round));
}

/// The six secure-aggregation messages, by the first byte (framing as in
/// [`framed`], by the second).
pub fn secagg(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    fn go<M: SecAggMessage>(rest: &[u8]) {
        let _ = M::decode(&framed(rest, M::KIND));
    }
    match kind % 6 {
        0 => go::<KeyAdvert>(rest),
        1 => go::<Roster>(rest),
        2 => go::<ShareBatch>(rest),
        3 => go::<MaskedInput>(rest),
        4 => go::<UnmaskRequest>(rest),
        _ => go::<UnmaskResponse>(rest),
    }
}

pub fn npy(data: &[u8]) {
    let _ = fedmr_data::npy::parse_npy_f32(data, Path::new("fuzz.npy"));
}

/// An MMRec folder whose `inter.csv` is `data`.
pub fn mmrec(data: &[u8]) {
    let dir = scratch("mmrec");
    if std::fs::write(dir.join("inter.csv"), data).is_ok() {
        let _ = fedmr_data::mmrec::load_mmrec(&dir);
    }
}

/// A RecBole folder: `data` up to the first 0xff byte is `x.item` (absent
/// if there is none), the rest `x.inter`.
pub fn recbole(data: &[u8]) {
    let dir = scratch("recbole");
    let (item, inter) = match data.iter().position(|&b| b == 0xff) {
        Some(at) => (Some(&data[..at]), &data[at + 1..]),
        None => (None, data),
    };
    let item_path = dir.join("x.item");
    let written = match item {
        Some(bytes) => std::fs::write(&item_path, bytes),
        None => std::fs::remove_file(&item_path).or(Ok(())),
    };
    if written.is_ok() && std::fs::write(dir.join("x.inter"), inter).is_ok() {
        let _ = fedmr_data::recbole::load_recbole(&dir, "x");
    }
}

pub fn items_file(data: &[u8]) {
    let path = scratch("items").join("items.tsv");
    if std::fs::write(&path, data).is_ok() {
        let _ = fedmr_server::items_file::read_items(&path);
    }
}

/// A small model that updates are checked against (4 items, d = 4).
fn small_model() -> &'static GlobalModel {
    static MODEL: OnceLock<GlobalModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        use fedmr_core::model::{Catalog, FusionMode, ModelConfig};
        let catalog = Catalog {
            n_items: 4,
            features: Vec::new(),
        };
        let config = ModelConfig {
            fusion: FusionMode::IdOnly,
            dim: 4,
            ..ModelConfig::default()
        };
        GlobalModel::new(&config, &catalog, 0).expect("a small model")
    })
}

/// A folder of this process for file-based targets (reused across runs).
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fedmr-fuzz-{tag}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
