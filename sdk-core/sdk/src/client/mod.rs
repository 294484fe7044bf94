//! The on-device SDK: what an app holds. One `Client` per database file.
//!
//! `Client` is `Send + Sync`: the app can call `recommend` on one thread
//! while `train` runs on another. Writes serialize on the store's writer
//! connection; reads use the reader connection and in-memory snapshots
//! (`Installed`, behind an `Arc`) that an apply swaps atomically.

mod export;
mod installed;
mod private;
mod ranking;
mod scoring;
mod secure;
mod sync;
#[cfg(feature = "encoder")]
mod text;
mod training;
mod types;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

pub use crate::interaction::Interaction;
use crate::store::Store;
use crate::{Error, Result};
use fedmr_core::privacy::RdpAccountant;
use fedmr_core::wire::{CatalogMessage, ModelMessage};
use installed::{Installed, InstalledCatalog, InstalledModel, ModelSlot};
use private::{PrivateRecord, load_state};
use ranking::History;
use scoring::{Caches, Views};
pub use sync::{Remote, SyncReport, UploadReport};
#[cfg(feature = "encoder")]
pub use text::LocalItem;
pub use types::{
    CancelFlag, ClientConfig, ExpertWeight, ModalityShare, PendingUpload, Preferences,
    PrivacySpent, ProgressListener, RecommendOptions, Recommendation, Stats, TrainOptions,
    TrainReport,
};

/// The SDK's entry point: one per user and database file.
///
/// ```
/// use fedmr_sdk::{Client, ClientConfig, Interaction, InteractionKind};
/// use fedmr_sdk::{RecommendOptions, TrainOptions};
///
/// # let dir = std::env::temp_dir().join(format!("fedmr-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let client = Client::open(ClientConfig::new(dir.join("fedmr.sqlite")))?;
///
/// // What the server publishes (here: the built-in sample).
/// let server = fedmr_sdk::demo::sample_server_data(200, 1)?;
/// client.apply_catalog(&server.catalog)?;
/// client.apply_model(&server.model)?;
///
/// // The app records what the user does...
/// for (t, key) in ["item-3", "item-17", "item-42"].into_iter().enumerate() {
///     client.record(Interaction {
///         item_key: key.into(),
///         kind: InteractionKind::Like,
///         timestamp_ms: 1_700_000_000_000 + t as i64,
///     })?;
/// }
/// // ...trains on the device (say, while charging)...
/// let report = client.train(&TrainOptions::default())?;
/// assert_eq!(report.positives, 3);
/// // ...and shows recommendations and what drives them.
/// let top = client.recommend(10, &RecommendOptions::default())?;
/// assert_eq!(top.len(), 10);
/// let prefs = client.preferences()?;
/// assert_eq!(prefs.experts.len(), 3);
/// // The update waits in the outbox for the sync client.
/// assert_eq!(client.pending_uploads()?.len(), 1);
/// # drop(client);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), fedmr_sdk::Error>(())
/// ```
pub struct Client {
    store: Store,
    config: ClientConfig,
    installed: RwLock<Arc<Installed>>,
    /// Bumped after anything that changes scores: catalog, model, private state.
    state_generation: AtomicU64,
    /// Bumped after anything that changes the interaction history.
    history_generation: AtomicU64,
    caches: Mutex<Caches>,
    /// Applies read-check-swap the installed snapshot: one at a time.
    apply_lock: Mutex<()>,
}

impl Client {
    /// Opens (creating if needed) the client's database and reads the
    /// installed catalog's and model's headers; the model is decoded when
    /// first needed (and `recommend` may not need it: see `scoring`).
    pub fn open(config: ClientConfig) -> Result<Client> {
        if config.db_path.as_os_str().is_empty() {
            return Err(Error::InvalidConfig("the database path is empty".into()));
        }
        if config.retention_cap == 0 {
            return Err(Error::InvalidConfig(
                "retention_cap must be at least 1".into(),
            ));
        }
        let store = Store::open(&config.db_path)?;
        let installed = Installed::load(&store)?;
        Ok(Client {
            store,
            config,
            installed: RwLock::new(Arc::new(installed)),
            state_generation: AtomicU64::new(0),
            history_generation: AtomicU64::new(0),
            caches: Mutex::new(Caches::default()),
            apply_lock: Mutex::new(()),
        })
    }

    /// Records one interaction. Items the catalog does not know yet are kept
    /// and count once a catalog has them.
    pub fn record(&self, interaction: Interaction) -> Result<()> {
        self.record_batch(&[interaction]).map(|_| ())
    }

    /// Records a batch in one transaction: all of it, or (on any invalid
    /// entry, reported by index) none of it.
    pub fn record_batch(&self, batch: &[Interaction]) -> Result<usize> {
        let n = self.store.record_batch(batch, self.config.retention_cap)?;
        self.history_generation.fetch_add(1, Ordering::SeqCst);
        Ok(n)
    }

    /// Installs a catalog message (from the server). Returns false when this
    /// exact catalog is already installed. The frame, digest and content are
    /// verified before anything is replaced; an older version is refused.
    /// An installed model for another catalog version is removed with it.
    pub fn apply_catalog(&self, bytes: &[u8]) -> Result<bool> {
        let (message, digest) = CatalogMessage::decode(bytes)?;
        let _serial = lock(&self.apply_lock);
        let current = self.installed();
        if let Some(installed) = &current.catalog {
            let meta = &installed.meta;
            if message.version < meta.version
                || (message.version == meta.version && digest != meta.sha256)
            {
                return Err(Error::Incompatible(format!(
                    "catalog version {} is not newer than the installed version {}",
                    message.version, meta.version
                )));
            }
            if message.version == meta.version {
                return Ok(false);
            }
        }
        // A model fits only the catalog version it was published for, and
        // this one is newer than the installed one.
        let drop_model = current.model.is_some();
        self.store.install_catalog(&message, digest, drop_model)?;
        drop(message);
        let catalog = InstalledCatalog::load(&self.store)?.map(Arc::new);
        let model = if drop_model {
            None
        } else {
            current.model.clone()
        };
        self.swap_installed(Installed { catalog, model });
        self.history_generation.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    /// Installs a global model message. It must be for the installed catalog
    /// (version, item count, modality sizes) and newer than the installed
    /// model; returns false when this exact model is already installed.
    pub fn apply_model(&self, bytes: &[u8]) -> Result<bool> {
        self.install_model(bytes, SameVersion::Refuse)
    }

    /// `apply_model`; `same_version` says what a download of the installed
    /// version with another digest is: an error (a server must not publish
    /// two models under one version), or, for `sync`, the installed version
    /// in another encoding (the app changed `Remote::model_encoding`), kept.
    pub(super) fn install_model(&self, bytes: &[u8], same_version: SameVersion) -> Result<bool> {
        let (message, global) = ModelMessage::decode(bytes)?;
        let digest = fedmr_core::wire::declared_digest(bytes).unwrap_or_default();
        let model = InstalledModel::from_message(message, global, digest);
        let _serial = lock(&self.apply_lock);
        let current = self.installed();
        let catalog = current
            .catalog
            .as_ref()
            .ok_or_else(|| Error::NotReady("install a catalog before a model".into()))?;
        model.check_fits(catalog)?;
        if let Some(installed) = &current.model
            && model.version <= installed.version
        {
            let same = model.version == installed.version;
            if same && (model.digest == installed.digest || same_version == SameVersion::Keep) {
                return Ok(false);
            }
            return Err(Error::Incompatible(format!(
                "model version {} is not newer than the installed version {}",
                model.version, installed.version
            )));
        }
        self.store.put_model(model.version, &model.digest, bytes)?;
        self.swap_installed(Installed {
            catalog: current.catalog.clone(),
            model: Some(Arc::new(ModelSlot::applied(model))),
        });
        self.refresh_ranking(Views::Keep);
        Ok(true)
    }

    /// The top `k` items for the user, best first.
    pub fn recommend(&self, k: usize, options: &RecommendOptions) -> Result<Vec<Recommendation>> {
        // Bad candidates fail before anything is computed (or stored).
        self.installed().parts()?;
        let candidates = options
            .candidates
            .as_deref()
            .map(|keys| ranking::candidate_ids(&self.store, keys))
            .transpose()?;
        let (installed, combined, context) = self.current_scores(Views::UseKept)?;
        let (catalog, _) = installed.parts()?;
        let exclude: &[u32] = if options.exclude_seen {
            &context.history.seen
        } else {
            &[]
        };
        let allowed = ranking::allowed_ids(catalog, candidates, exclude);
        let top = ranking::top_k(&combined, allowed.into_iter(), k);
        let keys = self.store.keys_of(&top)?;
        Ok(top
            .into_iter()
            .zip(keys)
            .map(|(id, item_key)| Recommendation {
                item_key,
                score: combined[id as usize],
            })
            .collect())
    }

    /// The user's score of every catalog item, by catalog position (the
    /// server's item id): what `recommend` ranks, for evaluation and research.
    pub fn scores(&self) -> Result<Vec<f32>> {
        Ok(self.current_scores(Views::UseKept)?.1)
    }

    /// The user's router weights, per expert and (where computable) per modality.
    pub fn preferences(&self) -> Result<Preferences> {
        let installed = self.installed();
        let (catalog, model) = installed.ready(&self.store)?;
        let record = self.private_record()?;
        let state = load_state(record.as_ref(), &model, self.init_seed())?;
        let history = History::load(&self.store)?;
        ranking::preferences(
            &self.store,
            catalog,
            &model,
            &state,
            &history.positives,
            record.is_some(),
        )
    }

    /// Updates waiting for upload, oldest first.
    pub fn pending_uploads(&self) -> Result<Vec<PendingUpload>> {
        Ok(self
            .store
            .pending_updates()?
            .into_iter()
            .map(|u| PendingUpload {
                idempotency_key: u.idempotency_key,
                round: u.round,
                base_version: u.base_version,
                bytes: u.payload,
                created_ms: u.created_ms,
            })
            .collect())
    }

    /// Removes an uploaded update from the outbox; false if it was not there.
    pub fn acknowledge_upload(&self, idempotency_key: &str) -> Result<bool> {
        self.store.remove_update(idempotency_key)
    }

    pub fn stats(&self) -> Result<Stats> {
        let installed = self.installed();
        let (known, unknown) = match &installed.catalog {
            Some(_) => {
                let h = History::load(&self.store)?;
                (h.seen.len(), h.unknown)
            }
            None => (0, self.store.item_weights()?.len()),
        };
        let file_size = |suffix: &str| {
            let mut path = self.config.db_path.clone().into_os_string();
            path.push(suffix);
            std::fs::metadata(path).map_or(0, |m| m.len())
        };
        Ok(Stats {
            interactions: self.store.interaction_count()?,
            known_items: known,
            unknown_items: unknown,
            catalog_version: installed.catalog.as_ref().map(|c| c.meta.version),
            catalog_digest: installed
                .catalog
                .as_ref()
                .map(|c| fedmr_core::wire::digest_hex(&c.meta.sha256)),
            catalog_items: installed.catalog.as_ref().map_or(0, |c| c.n_items()),
            model_version: installed.model.as_ref().map(|m| m.version),
            rounds_trained: self.private_record()?.map_or(0, |r| r.rounds_trained),
            pending_uploads: self.store.pending_updates()?.len(),
            database_bytes: file_size("") + file_size("-wal"),
        })
    }

    /// The (epsilon, `delta`) local DP has spent over every round trained on
    /// this device (Rényi DP of the Gaussian mechanism, composed; checked
    /// against Google's dp-accounting). `delta` must be in (0, 1).
    pub fn privacy_spent(&self, delta: f64) -> Result<PrivacySpent> {
        if !(delta > 0.0 && delta < 1.0) {
            return Err(Error::InvalidArgument(format!(
                "delta must be in (0, 1), got {delta}"
            )));
        }
        let ledger = self.store.privacy_ledger()?;
        let mut accountant = RdpAccountant::default();
        ledger
            .iter()
            .for_each(|&noise| accountant.spend_gaussian(noise));
        Ok(PrivacySpent {
            rounds: ledger.len() as u64,
            rounds_without_dp: ledger.iter().filter(|&&n| n <= 0.0).count() as u64,
            epsilon: accountant.epsilon(delta),
            delta,
        })
    }

    /// Erases everything of the user's: interactions, private state, pending
    /// updates; then compacts the file so nothing lingers in free pages or
    /// the WAL. The server's catalog and model stay.
    pub fn forget_me(&self) -> Result<()> {
        let result = self.store.erase_user_data();
        // Even a failed vacuum has committed the deletes: drop caches anyway.
        self.state_generation.fetch_add(1, Ordering::SeqCst);
        self.history_generation.fetch_add(1, Ordering::SeqCst);
        *lock(&self.caches) = Caches::default();
        result
    }

    /// `PRAGMA integrity_check` of the database.
    pub fn integrity_check(&self) -> Result<bool> {
        self.store.integrity_check()
    }

    fn installed(&self) -> Arc<Installed> {
        match self.installed.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn swap_installed(&self, installed: Installed) {
        let mut guard = match self.installed.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(installed);
        drop(guard);
        self.state_generation.fetch_add(1, Ordering::SeqCst);
        // Views of the model that was installed are of no further use.
        self.drop_kept_views();
    }

    fn private_record(&self) -> Result<Option<PrivateRecord>> {
        self.store
            .private_state()?
            .map(|bytes| PrivateRecord::decode(&bytes))
            .transpose()
    }

    /// Seed of a user's first private state: fixed per configuration, so an
    /// untrained user's ranking does not change from call to call.
    fn init_seed(&self) -> u64 {
        self.config.seed.unwrap_or(0)
    }
}

/// A cache lock; a panic while it was held can only have left a stale cache
/// entry, which the generation check discards.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// 64 random bits from the OS-seeded hasher keys (no extra dependency).
fn random_u64() -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// `Client` must stay shareable across threads.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Client>();
};

/// What `install_model` does with another download of the installed version.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum SameVersion {
    Refuse,
    Keep,
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedmr_core::wire::{ModelEncoding, ModelMessage};
    use fedmr_test_support::TempDir;

    /// The installed version in another encoding: an error from
    /// `apply_model` (one version, two models), kept as is by `sync`.
    #[test]
    fn the_installed_version_in_another_encoding_is_kept_by_sync_only() {
        let data = crate::demo::sample_server_data(40, 2).unwrap();
        let dir = TempDir::new("same-version");
        let client = Client::open(ClientConfig::new(dir.0.join("c.sqlite"))).unwrap();
        client.apply_catalog(&data.catalog).unwrap();
        assert!(client.apply_model(&data.model).unwrap());
        let (m, global) = ModelMessage::decode(&data.model).unwrap();
        let catalog = (m.catalog_version, m.catalog_digest);
        let header = ModelMessage::header(m.version, catalog, &m.config, &m.train, &global);
        let int8 = header.encode_as(&global, ModelEncoding::Int8).unwrap();
        let installed = client.installed().model.as_ref().unwrap().digest;

        let err = client.apply_model(&int8).unwrap_err();
        assert!(matches!(err, Error::Incompatible(_)), "{err}");
        assert!(!client.install_model(&int8, SameVersion::Keep).unwrap());
        assert_eq!(client.installed().model.as_ref().unwrap().digest, installed);
    }
}
