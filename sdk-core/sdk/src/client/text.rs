//! Ranking items the server has not processed: their text goes through the
//! sentence encoder the catalog's `text` modality was built with, on the
//! device, and the user's own model scores them (feature `encoder`).
//!
//! Such an item has no trained ID row and no other content: it gets the
//! mean item-table row and each other modality's catalog mean, so only its
//! text tells it apart, and its score is comparable with catalog items'.

use ndarray::{Array1, Array2, Axis};

use super::Client;
use super::installed::{InstalledCatalog, decode_rows};
use super::private::load_state;
use super::ranking::{self, History};
use super::types::Recommendation;
use crate::store::Store;
use crate::{Error, Result};
use fedmr_core::model::stack::{item_view, mix};
use fedmr_core::model::{Catalog, Fusion};
use fedmr_encoder::TextEncoder;

/// An item only the app knows: a key and its text (say, title and genres).
#[derive(Clone, Debug, PartialEq)]
pub struct LocalItem {
    pub key: String,
    pub text: String,
}

/// Items per call: the encoder runs on the caller's thread.
const MAX_LOCAL_ITEMS: usize = 10_000;

impl Client {
    /// The best `k` of `items` for this user, best first. `encoder` must be
    /// the model that built the catalog's `text` modality (same width).
    pub fn recommend_for_text(
        &self,
        encoder: &TextEncoder,
        items: &[LocalItem],
        k: usize,
    ) -> Result<Vec<Recommendation>> {
        if items.len() > MAX_LOCAL_ITEMS {
            return Err(Error::InvalidArgument(format!(
                "{} items in one call (at most {MAX_LOCAL_ITEMS})",
                items.len()
            )));
        }
        if let Some(i) = items.iter().position(|i| i.key.trim().is_empty()) {
            return Err(Error::InvalidArgument(format!("item {i} has an empty key")));
        }
        let installed = self.installed();
        let (catalog, model) = installed.ready(&self.store)?;
        let model = &*model;
        let global = &model.global;
        let Fusion::Mffm(mffm) = global.fusion() else {
            return Err(Error::Incompatible(
                "an ID-only model cannot score items outside the catalog".into(),
            ));
        };
        let text_index = catalog
            .meta
            .modalities
            .iter()
            .position(|m| m.name == "text")
            .ok_or_else(|| Error::Incompatible("the catalog has no `text` modality".into()))?;
        let dims = catalog.modality_dims();
        if encoder.dim() != dims[text_index] {
            return Err(Error::Incompatible(format!(
                "the encoder gives {}-d text features, the catalog's are {}-d",
                encoder.dim(),
                dims[text_index]
            )));
        }
        if items.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
        let encoded = encoder.encode(&texts)?;

        let means = modality_means(&self.store, catalog)?;
        let features: Vec<Array2<f32>> = means
            .iter()
            .enumerate()
            .map(|(m, mean)| {
                if m == text_index {
                    encoded.clone()
                } else {
                    mean.broadcast((items.len(), mean.len()))
                        .expect("one row")
                        .to_owned()
                }
            })
            .collect();
        let mean_row = global
            .items
            .0
            .0
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(global.dim()));
        let id_rows = mean_row
            .broadcast((items.len(), global.dim()))
            .expect("one row")
            .to_owned();

        let state = load_state(self.private_record()?.as_ref(), model, self.init_seed())?;
        let history = History::load(&self.store)?;
        let weights =
            ranking::router_weights(&self.store, catalog, model, &state, &history.positives)?;
        let local = Catalog {
            n_items: items.len(),
            features,
        };
        let views = global.fusion().views(&id_rows.view(), &local);
        debug_assert_eq!(views.len(), mffm.experts.len());
        let view = item_view(
            &global.dense,
            mix(&views, &weights.view()),
            &id_rows.view(),
            None,
        );
        let scores = state
            .model
            .0
            .head
            .score(global.ncf(), &view.view())
            .to_vec();
        Ok(ranking::top_k(&scores, 0..items.len() as u32, k)
            .into_iter()
            .map(|i| Recommendation {
                item_key: items[i as usize].key.clone(),
                score: scores[i as usize],
            })
            .collect())
    }
}

/// Each modality's mean feature row over the catalog, in one scan.
fn modality_means(store: &Store, catalog: &InstalledCatalog) -> Result<Vec<Array1<f32>>> {
    let dims = catalog.modality_dims();
    let mut sums: Vec<Array1<f64>> = dims.iter().map(|&d| Array1::zeros(d)).collect();
    let mut count = 0usize;
    store.for_each_feature_chunk(ranking::CHUNK, |_, rows| {
        for (sum, m) in sums.iter_mut().zip(decode_rows(rows, &dims)?) {
            *sum += &m.sum_axis(Axis(0)).mapv(f64::from);
        }
        count += rows.len();
        Ok(())
    })?;
    let n = count.max(1) as f64;
    Ok(sums
        .into_iter()
        .map(|s| s.mapv(|v| (v / n) as f32))
        .collect())
}
