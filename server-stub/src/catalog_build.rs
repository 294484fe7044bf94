//! `fedmr-server catalog build`: the paper's first stage. Item content goes
//! through frozen pre-trained encoders once, on the server, and the features
//! become the catalog every phone downloads.
//!
//! Inputs: an items file (tab-separated, a header row; a `key` column, an
//! optional `image` column with a path relative to the file, every other
//! column is text), the encoders to run, and precomputed MMRec
//! `*_features.npy` matrices to import as they are.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use fedmr_core::wire::CatalogMessage;
use fedmr_core::{Error, Result};
use fedmr_data::npy::read_npy_f32;
use fedmr_encoder::{ImageEncoder, ImageEncoderOptions, TextEncoder, TextEncoderOptions};

pub use crate::items_file::{ItemRow, read_items};

/// The image encoder and how to run it.
pub struct ImageModel {
    pub path: PathBuf,
    pub options: ImageEncoderOptions,
}

/// Precomputed features to import: (modality name, `.npy` file).
pub type NpyFeatures = Vec<(String, PathBuf)>;

/// What goes into a catalog.
pub struct BuildPlan {
    pub version: u64,
    /// Model folder of a sentence encoder (`model.onnx` + `tokenizer.json`).
    pub text_model: Option<(PathBuf, TextEncoderOptions)>,
    pub image_model: Option<ImageModel>,
    /// Precomputed features, one row per item in items-file order.
    pub npy: NpyFeatures,
}

/// Items encoded per step: the progress callback's granularity.
const BATCH: usize = 64;

/// Builds the catalog. `progress(done, total, what)` is called after each batch.
pub fn build(
    items: &[ItemRow],
    plan: &BuildPlan,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<CatalogMessage> {
    let mut modalities: Vec<(String, Array2<f32>)> = Vec::new();
    if let Some((dir, options)) = &plan.text_model {
        let encoder = TextEncoder::load(dir, options.clone())?;
        let mut rows = Array2::zeros((items.len(), encoder.dim()));
        for (b, chunk) in items.chunks(BATCH).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|i| i.text.as_str()).collect();
            let out = encoder.encode(&texts)?;
            let start = b * BATCH;
            rows.slice_mut(ndarray::s![start..start + chunk.len(), ..])
                .assign(&out);
            progress(start + chunk.len(), items.len(), "text");
        }
        modalities.push(("text".into(), rows));
    }
    if let Some(model) = &plan.image_model {
        let encoder = ImageEncoder::load(&model.path, model.options.clone())?;
        let mut rows = Array2::zeros((items.len(), encoder.dim()));
        for (b, chunk) in items.chunks(BATCH).enumerate() {
            let bytes = chunk
                .iter()
                .map(|i| {
                    let path = i.image.as_ref().ok_or_else(|| {
                        Error::InvalidArgument(format!("item {:?} has no image", i.key))
                    })?;
                    std::fs::read(path).map_err(|e| Error::Io {
                        path: path.clone(),
                        source: e,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
            let out = encoder.encode(&refs)?;
            let start = b * BATCH;
            rows.slice_mut(ndarray::s![start..start + chunk.len(), ..])
                .assign(&out);
            progress(start + chunk.len(), items.len(), "image");
        }
        modalities.push(("image".into(), rows));
    }
    for (name, path) in &plan.npy {
        let features = read_npy_f32(path)?;
        if features.nrows() != items.len() {
            return Err(Error::Shape(format!(
                "{}: {} rows for {} items",
                path.display(),
                features.nrows(),
                items.len()
            )));
        }
        if modalities.iter().any(|(n, _)| n == name) {
            return Err(Error::InvalidArgument(format!(
                "modality {name:?} given twice"
            )));
        }
        modalities.push((name.clone(), features));
    }
    if modalities.is_empty() {
        return Err(Error::InvalidArgument(
            "nothing to build: give a text model, an image model or --npy features".into(),
        ));
    }
    let keys = items.iter().map(|i| i.key.clone()).collect();
    let named: Vec<(&str, &Array2<f32>)> =
        modalities.iter().map(|(n, f)| (n.as_str(), f)).collect();
    CatalogMessage::from_features(plan.version, keys, &named)
}

/// An MMRec folder's `<name>_features.npy` files, sorted by name, and as
/// many items as their rows (keys `item-<id>`, as the server names dataset items).
pub fn mmrec_features(dir: &Path) -> Result<(Vec<ItemRow>, NpyFeatures)> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut npy: NpyFeatures = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p
                .file_name()?
                .to_str()?
                .strip_suffix("_features.npy")?
                .to_string();
            Some((name, p))
        })
        .collect();
    npy.sort();
    let Some((_, first)) = npy.first() else {
        return Err(Error::InvalidDataset(format!(
            "{}: no *_features.npy files",
            dir.display()
        )));
    };
    let n = read_npy_f32(first)?.nrows();
    let items = (0..n)
        .map(|i| ItemRow {
            key: crate::item_key(i),
            text: String::new(),
            image: None,
        })
        .collect();
    Ok((items, npy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fedmr-catalog-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("items.tsv");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn items_file_joins_text_columns_and_resolves_images() {
        let path = temp_file(
            "ok",
            "key\ttitle\tgenres\timage\nm1\tToy Story (1995)\tAnimation\tposters/1.png\nm2\tHeat\t\t\n",
        );
        let items = read_items(&path).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].text, "Toy Story (1995). Animation");
        assert_eq!(
            items[0].image,
            Some(path.parent().unwrap().join("posters/1.png"))
        );
        assert_eq!(items[1].text, "Heat");
        assert_eq!(items[1].image, None);
    }

    #[test]
    fn bad_items_files_name_the_line() {
        for (name, text, needle) in [
            ("empty", "", "empty file"),
            ("nokey", "title\nx\n", "no `key` column"),
            ("fields", "key\ttitle\na\tb\tc\n", "line 2"),
            ("dup", "key\ttitle\na\tx\na\ty\n", "appears twice"),
            ("blankkey", "key\ttitle\n \tx\n", "empty key"),
            ("noitems", "key\ttitle\n", "no items"),
        ] {
            let err = read_items(&temp_file(name, text)).unwrap_err().to_string();
            assert!(err.contains(needle), "{name}: {err}");
        }
    }

    #[test]
    fn npy_features_become_a_catalog_and_wrong_row_counts_are_refused() {
        let path = temp_file("npy", "key\ttitle\na\tx\nb\ty\nc\tz\n");
        let items = read_items(&path).unwrap();
        let dir = path.parent().unwrap();
        let good = dir.join("good.npy");
        let features = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f32 / 10.0);
        fedmr_data::npy::write_npy_f32(&good, &features).unwrap();
        let plan = |p: &Path| BuildPlan {
            version: 7,
            text_model: None,
            image_model: None,
            npy: vec![("image".into(), p.to_path_buf())],
        };
        let mut calls = 0;
        let catalog = build(&items, &plan(&good), &mut |_, _, _| calls += 1).unwrap();
        assert_eq!(catalog.version, 7);
        assert_eq!(catalog.items.len(), 3);
        assert_eq!(catalog.items[1].key, "b");
        assert_eq!(catalog.modalities[0].dim, 4);

        let short = dir.join("short.npy");
        fedmr_data::npy::write_npy_f32(&short, &features.slice(ndarray::s![..2, ..]).to_owned())
            .unwrap();
        assert!(build(&items, &plan(&short), &mut |_, _, _| {}).is_err());
        let nothing = BuildPlan {
            npy: vec![],
            ..plan(&good)
        };
        assert!(build(&items, &nothing, &mut |_, _, _| {}).is_err());
    }
}
