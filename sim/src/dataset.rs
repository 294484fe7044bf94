//! Choosing a dataset from the command line: the built-in synthetic one, an
//! MMRec folder (KU), or RecBole atomic files (MovieLens-100k), whose text
//! modality the sentence encoder builds here, as a server would.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::data::{Dataset, Modality};
use fedmr_core::model::Catalog;
use fedmr_core::wire::round_to_wire_precision;
use fedmr_core::{Error, Result};
use fedmr_data::mmrec::load_mmrec;
use fedmr_data::npy::{read_npy_f32, write_npy_f32};
use fedmr_data::recbole::{load_recbole, ml100k_dir};

/// The sentence encoder of RecBole datasets' text modality (fetched by
/// scripts/fetch-models).
pub const TEXT_MODEL: &str = "paraphrase-minilm-l3";

/// `synthetic` (seeded by `seed`), `ml-100k` (fetched by
/// scripts/fetch-ml100k), a RecBole folder `<dir>/<dir name>.inter`, or an
/// MMRec folder.
pub fn load(spec: &str, seed: u64) -> Result<Dataset> {
    if spec == "synthetic" {
        return Ok(generate(&SyntheticConfig {
            seed,
            ..SyntheticConfig::default()
        }));
    }
    let path = if spec == "ml-100k" {
        ml100k_dir()
    } else {
        PathBuf::from(spec)
    };
    let recbole_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| path.join(format!("{n}.inter")).is_file())
        .map(str::to_string);
    let dataset = match recbole_name {
        Some(name) => recbole_with_text(&path, &name)?,
        None if spec == "ml-100k" => {
            return Err(Error::InvalidDataset(format!(
                "MovieLens-100k not found at {} (run scripts/fetch-ml100k)",
                path.display()
            )));
        }
        None => load_mmrec(&path)?,
    };
    dataset.validate()?;
    Ok(dataset)
}

/// Where scripts/fetch-models puts the encoders: $FEDMR_MODELS, or
/// target/models in the repository.
pub fn models_dir() -> PathBuf {
    std::env::var_os("FEDMR_MODELS")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/models"))
}

fn recbole_with_text(dir: &Path, name: &str) -> Result<Dataset> {
    let data = load_recbole(dir, name)?;
    let features = text_features(dir, &data.item_texts)?;
    let mut dataset = data.dataset;
    dataset.modalities.push(Modality {
        name: "text".into(),
        features,
    });
    Ok(dataset)
}

/// The items' text features, encoded once and kept next to the data.
fn text_features(dir: &Path, texts: &[String]) -> Result<Array2<f32>> {
    let cache = dir.join(format!("text_features-{TEXT_MODEL}.npy"));
    if let Ok(features) = read_npy_f32(&cache)
        && features.nrows() == texts.len()
    {
        return Ok(features);
    }
    let features = encode_texts(texts)?;
    // A cache only: a read-only data folder still works.
    if let Err(e) = write_npy_f32(&cache, &features) {
        eprintln!("note: text features not cached at {}: {e}", cache.display());
    }
    Ok(features)
}

#[cfg(feature = "encoder")]
fn encode_texts(texts: &[String]) -> Result<Array2<f32>> {
    use fedmr_encoder::{TextEncoder, TextEncoderOptions};
    let model = models_dir().join(TEXT_MODEL);
    let encoder = TextEncoder::load(&model, TextEncoderOptions::default()).map_err(|e| {
        Error::InvalidDataset(format!(
            "the text modality needs the {TEXT_MODEL} encoder (run scripts/fetch-models): {e}"
        ))
    })?;
    eprintln!("encoding {} item texts with {TEXT_MODEL}", texts.len());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    encoder.encode(&refs)
}

#[cfg(not(feature = "encoder"))]
fn encode_texts(_: &[String]) -> Result<Array2<f32>> {
    Err(Error::InvalidDataset(
        "the text features are not cached yet: run once with a build that encodes them \
         (cargo run --release -p fedmr-sim --features encoder -- --dataset ml-100k)"
            .into(),
    ))
}

/// The content catalog with the named modalities (all when `names` is empty).
pub fn catalog(dataset: &Dataset, names: &[String]) -> Result<Catalog> {
    for n in names {
        if !dataset.modalities.iter().any(|m| &m.name == n) {
            let known: Vec<_> = dataset.modalities.iter().map(|m| m.name.as_str()).collect();
            return Err(Error::InvalidConfig(format!(
                "no modality '{n}' (dataset has {known:?})"
            )));
        }
    }
    // Rounded to the catalog's f16, as every phone receives them: the
    // in-process federation then computes exactly what the HTTP one does.
    let features = dataset
        .modalities
        .iter()
        .filter(|m| names.is_empty() || names.contains(&m.name))
        .map(|m| {
            let mut features = m.features.clone();
            round_to_wire_precision(&mut features);
            features
        })
        .collect();
    Ok(Catalog {
        n_items: dataset.n_items,
        features,
    })
}

/// The names of the modalities `catalog` keeps, in its order.
pub fn modality_names(dataset: &Dataset, names: &[String]) -> Vec<String> {
    dataset
        .modalities
        .iter()
        .filter(|m| names.is_empty() || names.contains(&m.name))
        .map(|m| m.name.clone())
        .collect()
}
