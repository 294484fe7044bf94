//! Choosing a dataset from the command line: the built-in synthetic one, or
//! an MMRec folder (KU).

use std::path::Path;

use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::data::{Dataset, mmrec::load_mmrec};
use fedmr_core::model::Catalog;
use fedmr_core::{Error, Result};

/// `synthetic` (seeded by `seed`) or a path to an MMRec folder.
pub fn load(spec: &str, seed: u64) -> Result<Dataset> {
    if spec == "synthetic" {
        return Ok(generate(&SyntheticConfig {
            seed,
            ..SyntheticConfig::default()
        }));
    }
    let dataset = load_mmrec(Path::new(spec))?;
    dataset.validate()?;
    Ok(dataset)
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
    let features = dataset
        .modalities
        .iter()
        .filter(|m| names.is_empty() || names.contains(&m.name))
        .map(|m| m.features.clone())
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
