//! The client's ranking state — every item's scores and the history's
//! context (router weights, seen items) — at three levels:
//!
//! 1. in memory, keyed by this client's generations (nothing read);
//! 2. in the store, tagged with the model digest, the private state and
//!    the history version they came from, so the first `recommend` after an
//!    app start reads them instead of decoding the model and scoring the
//!    catalog;
//! 3. computed, then kept at both levels above.
//!
//! `train` and `apply_model` end by computing them (the background job pays,
//! not the first screen). A model install also keeps the global expert views
//! in memory, so the next training's rescoring (only private parameters
//! changed) does not run the experts over the catalog again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::Array1;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::installed::{Installed, InstalledCatalog, ModelSlot};
use super::private::{PrivateRecord, load_state};
use super::ranking::{self, GlobalViews, History, ItemScores, ViewSource};
use super::{Client, lock};
use crate::Result;
use crate::store::RankingTags;
use fedmr_core::codec;

/// The history-dependent part of ranking, valid for one history and state.
pub(super) struct RankingContext {
    pub history: History,
    pub weights: Array1<f32>,
}

/// `RankingContext` as the store keeps it.
#[derive(Serialize, Deserialize)]
struct StoredContext {
    history: History,
    weights: Vec<f32>,
}

#[derive(Default)]
pub(super) struct Caches {
    /// Keyed by (state generation, history generation); the history part
    /// is ignored for scores that do not depend on the router weights.
    scores: Option<((u64, u64), Arc<ItemScores>)>,
    /// ((state generation, history generation), context)
    context: Option<((u64, u64), Arc<RankingContext>)>,
    /// The global expert views of the model with this digest, kept from its
    /// install to the next training.
    views: Option<([u8; 32], Arc<GlobalViews>, ViewsReservation)>,
}

/// At most this many bytes of global views are kept, over all clients of
/// the process (at 100,000 items, three experts and d = 64 one client's
/// take 77 MB, held only from a model install to the next training; a
/// simulation's thousand clients keep none beyond the budget).
const MAX_KEPT_VIEW_BYTES: usize = 96 << 20;

/// Bytes of global views kept by every client of this process.
static KEPT_VIEW_BYTES: AtomicUsize = AtomicUsize::new(0);

/// A share of the process's budget for kept views, returned when dropped.
pub(super) struct ViewsReservation(usize);

impl ViewsReservation {
    fn try_new(bytes: usize) -> Option<Self> {
        KEPT_VIEW_BYTES
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |kept| {
                kept.checked_add(bytes)
                    .filter(|&total| total <= MAX_KEPT_VIEW_BYTES)
            })
            .ok()
            .map(|_| ViewsReservation(bytes))
    }
}

impl Drop for ViewsReservation {
    fn drop(&mut self) {
        KEPT_VIEW_BYTES.fetch_sub(self.0, Ordering::SeqCst);
    }
}

/// What a (re)computation does with the global expert views.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Views {
    /// Use kept views if there are any for this model.
    UseKept,
    /// A model was just installed: compute and keep them.
    Keep,
    /// Training just committed: use kept views, then drop them.
    UseAndDrop,
}

impl Client {
    /// Every item's score under the installed snapshot, from the caches
    /// (memory, then store; rebuilt if neither holds), with the snapshot
    /// and the context.
    pub(super) fn current_scores(
        &self,
        views: Views,
    ) -> Result<(Arc<Installed>, Vec<f32>, Arc<RankingContext>)> {
        // Generations first: anything that changes after this read bumps
        // them again, so a stale cache entry is never reused.
        let generation = self.state_generation.load(Ordering::SeqCst);
        let history_generation = self.history_generation.load(Ordering::SeqCst);
        let installed = self.installed();
        let (catalog, slot) = installed.parts()?;
        let key = (generation, history_generation);
        let mut caches = lock(&self.caches);
        let context = caches
            .context
            .as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, c)| c.clone());
        let scores = caches
            .scores
            .as_ref()
            .filter(|(k, s)| k.0 == key.0 && (k.1 == key.1 || s.independent_of_weights()))
            .map(|(_, s)| s.clone());
        let found = match (context, scores) {
            (Some(context), Some(scores)) => Ok((context, scores)),
            (context, scores) => self
                .load_or_compute(&mut caches, catalog, slot, context, scores, views)
                .inspect(|(context, scores)| {
                    caches.context = Some((key, context.clone()));
                    caches.scores = Some((key, scores.clone()));
                }),
        };
        // Kept for one training: dropped after it whatever happened.
        if views == Views::UseAndDrop {
            caches.views = None;
        }
        drop(caches);
        let (context, scores) = found?;
        let combined = scores.combine(&context.weights);
        Ok((installed, combined, context))
    }

    /// Drops the kept global views (their model is being replaced).
    pub(super) fn drop_kept_views(&self) {
        lock(&self.caches).views = None;
    }

    /// Recomputes (or finds stored) and stores the ranking of the state
    /// just committed, at the end of `train` and `apply_model`, unless the
    /// configuration leaves it to the first `recommend`. Best effort: what
    /// fails here the next `recommend` computes.
    pub(super) fn refresh_ranking(&self, views: Views) {
        if self.config.store_ranking {
            let _ = self.current_scores(views);
        }
    }

    /// The parts the memory caches lack: read from the store when their
    /// tags hold, else computed and stored.
    fn load_or_compute(
        &self,
        caches: &mut Caches,
        catalog: &InstalledCatalog,
        slot: &ModelSlot,
        context: Option<Arc<RankingContext>>,
        scores: Option<Arc<ItemScores>>,
        views: Views,
    ) -> Result<(Arc<RankingContext>, Arc<ItemScores>)> {
        // Tags before the data they describe: a write after these reads
        // moves the tags on, so nothing is ever stored under tags that
        // describe newer data than it was computed from.
        let history_version = self.store.history_version()?;
        let state_bytes = self.store.private_state()?;
        let tags = RankingTags {
            model_digest: slot.digest,
            state_tag: state_tag(state_bytes.as_deref(), self.init_seed()),
            history_version,
        };
        let n_items = catalog.n_items();
        let context = context.or_else(|| self.stored_context(&tags, n_items));
        let scores = scores.or_else(|| {
            let experts = context.as_ref().map(|c| c.weights.len());
            self.stored_scores(&tags, n_items, experts)
        });
        if let (Some(context), Some(scores)) = (&context, &scores) {
            return Ok((context.clone(), scores.clone()));
        }

        let model = slot.model(&self.store, catalog)?;
        let record = state_bytes
            .as_deref()
            .map(PrivateRecord::decode)
            .transpose()?;
        let state = load_state(record.as_ref(), &model, self.init_seed())?;
        let context = match context {
            Some(context) => context,
            None => {
                let history = History::load(&self.store)?;
                let weights = ranking::router_weights(
                    &self.store,
                    catalog,
                    &model,
                    &state,
                    &history.positives,
                )?;
                let stored = StoredContext {
                    history,
                    weights: weights.to_vec(),
                };
                if self.config.store_ranking {
                    let _ = self
                        .store
                        .put_ranking_context(&tags, &codec::encode(&stored));
                }
                Arc::new(RankingContext {
                    history: stored.history,
                    weights,
                })
            }
        };
        let scores = match scores {
            Some(scores) => scores,
            None => {
                let kept = caches
                    .views
                    .as_ref()
                    .filter(|(digest, _, _)| *digest == slot.digest)
                    .map(|(_, v, _)| v.clone());
                // A new model's views replace the old ones' reservation.
                caches.views = caches.views.take().filter(|_| kept.is_some());
                let reservation = match (&kept, views) {
                    (None, Views::Keep) => views_bytes(&model).and_then(ViewsReservation::try_new),
                    _ => None,
                };
                let source = match (&kept, &reservation) {
                    (Some(kept), _) => ViewSource::Kept(kept),
                    (None, Some(_)) => ViewSource::ComputeAndKeep,
                    (None, None) => ViewSource::Compute,
                };
                let (scores, computed_views) = ranking::item_scores(
                    &self.store,
                    catalog,
                    &model,
                    &state,
                    &context.weights,
                    ranking::CHUNK,
                    source,
                )?;
                if let (Some(computed), Some(reservation)) = (computed_views, reservation) {
                    caches.views = Some((slot.digest, Arc::new(computed), reservation));
                }
                if self.config.store_ranking {
                    let _ = self.store.put_ranking_scores(
                        &tags,
                        !scores.independent_of_weights(),
                        &codec::encode(&scores),
                    );
                }
                Arc::new(scores)
            }
        };
        Ok((context, scores))
    }

    /// The stored context under `tags`, if it decodes and fits the catalog.
    fn stored_context(&self, tags: &RankingTags, n_items: usize) -> Option<Arc<RankingContext>> {
        let bytes = self.store.ranking_context(tags).ok()??;
        let stored: StoredContext = codec::decode(&bytes, "stored ranking context").ok()?;
        let ids_fit = |ids: &[u32]| ids.iter().all(|&id| (id as usize) < n_items);
        let fits = ids_fit(&stored.history.positives)
            && ids_fit(&stored.history.seen)
            && !stored.weights.is_empty()
            && stored.weights.iter().all(|w| w.is_finite());
        fits.then(|| {
            Arc::new(RankingContext {
                history: stored.history,
                weights: Array1::from(stored.weights),
            })
        })
    }

    /// The stored scores under `tags`, if they decode and fit the catalog
    /// (and, for per-expert scores, the context's expert count).
    fn stored_scores(
        &self,
        tags: &RankingTags,
        n_items: usize,
        experts: Option<usize>,
    ) -> Option<Arc<ItemScores>> {
        let bytes = self.store.ranking_scores(tags).ok()??;
        let scores: ItemScores = codec::decode(&bytes, "stored ranking scores").ok()?;
        let fits = match &scores {
            ItemScores::Final(s) => s.len() == n_items,
            ItemScores::PerExpert { per_expert, .. } => {
                !per_expert.is_empty()
                    && per_expert.iter().all(|c| c.len() == n_items)
                    && experts.is_none_or(|e| e == per_expert.len())
            }
        };
        fits.then(|| Arc::new(scores))
    }
}

/// The bytes of the model's global views, if it has any worth keeping
/// (an ID-only model's views are its item table).
fn views_bytes(model: &super::installed::InstalledModel) -> Option<usize> {
    let global = &model.global;
    let mffm = !matches!(global.fusion(), fedmr_core::model::Fusion::IdOnly);
    mffm.then(|| global.n_items() * global.dim() * global.fusion().experts() * 4)
}

/// What identifies the private state ranking starts from: its stored bytes,
/// or, before the first training, the seed a fresh state is drawn from.
fn state_tag(stored: Option<&[u8]>, init_seed: u64) -> [u8; 32] {
    let mut hash = Sha256::new();
    match stored {
        Some(bytes) => {
            hash.update(b"stored state\0");
            hash.update(bytes);
        }
        None => {
            hash.update(b"fresh state\0");
            hash.update(init_seed.to_le_bytes());
        }
    }
    hash.finalize().into()
}
