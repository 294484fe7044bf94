//! The server's state machine, without HTTP: what is published, the open
//! round, accepting an update, closing a round. Aggregation is the core's
//! streaming `Aggregator` (running weighted sums: memory O(model) whatever
//! the number of clients); every accepted update is stored before it is
//! acknowledged (through a group commit, `group_commit.rs`, which also
//! aggregates in the stored order), and a restart replays the open round's
//! updates in that order, so nothing acknowledged is lost and nothing is
//! counted twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use fedmr_core::aggregate::{AggregationRule, Aggregator, ServerOptimizer};
use fedmr_core::codec;
use fedmr_core::model::{GlobalModel, ModelConfig};
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::{
    self, CatalogMessage, MessageKind, ModelMessage, RoundMessage, UpdateMessage,
};

use crate::auth::{Tokens, digest, new_token};
use crate::config::{NormPolicy, ServerConfig};
use crate::db::{ServerDb, StoredModel, now_ms};
use crate::error::ServerError;
use crate::group_commit::GroupCommit;
use crate::metrics::Metrics;
use crate::observer::UploadObserver;
use crate::seal;
use crate::secure::SecureState;

/// A published message with its ETag (the hex sha256 of its body).
pub struct Published {
    /// Cheap to clone into a response body.
    pub bytes: axum::body::Bytes,
    pub etag: String,
}

impl Published {
    /// `bytes` is a framed message; its ETag is the body digest it carries
    /// (verified when it was built or decoded), which is also what a
    /// client keeps as the installed version's identity.
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        let digest = fedmr_core::wire::declared_digest(&bytes).unwrap_or_default();
        let etag = fedmr_core::wire::digest_hex(&digest);
        Published {
            bytes: bytes.into(),
            etag,
        }
    }
}

/// What clients download; replaced as a whole when a round closes.
pub struct Snapshot {
    pub catalog: Arc<Published>,
    pub catalog_version: u64,
    /// The catalog body's sha256, pinned in every model message.
    pub catalog_digest: [u8; 32],
    pub model: Published,
    pub version: u64,
    pub config: ModelConfig,
    pub train: TrainConfig,
    pub global: GlobalModel,
    /// f16 and int8 downloads of `global`, made on first request.
    pub(crate) downloads: crate::downloads::CompactDownloads,
}

pub(crate) struct OpenRound {
    pub(crate) aggregator: Aggregator,
    /// Idempotency key of each client's update in this round.
    submitted: HashMap<String, String>,
    /// Admitted updates waiting for their group commit, client -> (round,
    /// key): they count towards a full round, so no more are admitted than
    /// it takes. A close drops its round's (their commit refuses them).
    pending: HashMap<String, (u64, String)>,
    /// The last closed round and its clients' keys: a retry whose answer
    /// was lost, arriving after the round closed, is told it was counted.
    closed: (u64, HashMap<String, String>),
    deadline: Instant,
    deadline_ms: u64,
    optimizer: ServerOptimizer,
    /// The round's secure aggregation, when its model asks for it.
    pub(crate) secure: Option<SecureState>,
}

/// How a submission went (both are acknowledged to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New {
        round_closed: bool,
    },
    /// The same client and idempotency key were already accepted this round.
    Duplicate,
}

pub struct ServerCore {
    pub config: ServerConfig,
    db: Mutex<ServerDb>,
    snapshot: RwLock<Arc<Snapshot>>,
    pub(crate) round: Mutex<OpenRound>,
    /// Uploads stored and aggregated together (`group_commit.rs`).
    commits: GroupCommit<Admitted, Result<Accepted, ServerError>>,
    pub tokens: Tokens,
    pub metrics: Metrics,
    observer: OnceLock<Arc<dyn UploadObserver>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The initial server data, used only when the database is empty.
pub struct Genesis {
    pub catalog: CatalogMessage,
    pub config: ModelConfig,
    pub train: TrainConfig,
    pub global: GlobalModel,
}

impl ServerCore {
    /// Opens the server's database, initialising it from `genesis` on first
    /// start, and resumes the open round by replaying its stored updates.
    pub fn open(
        config: ServerConfig,
        genesis: impl FnOnce() -> Result<Genesis, ServerError>,
    ) -> Result<ServerCore, ServerError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ServerError::Internal(format!("{}: {e}", config.data_dir.display())))?;
        let path = config.db_path();
        let mut db = ServerDb::open(&path, config.durability)?;
        db.checkpoint_in_background(&path)?;
        if db.latest_model()?.is_none() {
            if !db.fresh {
                return Err(ServerError::Damaged(format!(
                    "{} exists but holds no published model: a first start that was \
                     interrupted, or its WAL was lost. Move it aside and run \
                     `fedmr-server init`, or restore a backup with `fedmr-server init --from-backup`",
                    path.display()
                )));
            }
            if let Err(e) = initialize(&mut db, &config, genesis) {
                drop(db);
                seal::remove_store(&path);
                return Err(e);
            }
        }
        let (catalog_version, catalog_bytes) = db.catalog()?.ok_or_else(|| {
            ServerError::Damaged(format!("{}: a model but no catalog", path.display()))
        })?;
        let stored = db.latest_model()?.expect("initialised above");
        seal::check(&path, stored.version)?;
        let unreadable = |what: &str, e: fedmr_core::Error| {
            ServerError::Damaged(format!(
                "{}: the stored {what} does not decode: {e}",
                path.display()
            ))
        };
        let (header, global) =
            ModelMessage::decode(&stored.bytes).map_err(|e| unreadable("model", e))?;
        let optimizer: ServerOptimizer = codec::decode(&stored.optimizer, "optimizer state")
            .map_err(|e| unreadable("optimizer state", e))?;
        // The frame and the body's digest are checked, not the whole catalog decoded.
        let (_, catalog_digest) = wire::open(&catalog_bytes, MessageKind::Catalog)
            .map_err(|e| unreadable("catalog", e))?;
        let snapshot = Snapshot {
            catalog: Arc::new(Published::new(catalog_bytes)),
            catalog_version,
            catalog_digest,
            model: Published::new(stored.bytes),
            version: stored.version,
            config: header.config,
            train: header.train,
            global,
            downloads: Default::default(),
        };
        if rule_of(&config).holds_updates()
            && snapshot.train.protection.secure_aggregation.is_some()
        {
            if db.fresh {
                // Refused before it ever served: leave nothing behind.
                drop(db);
                seal::remove_store(&path);
            }
            return Err(ServerError::BadRequest(format!(
                "aggregation {}{} needs each update, and this federation's protection \
                 (secure aggregation) hides them: choose one",
                config.combine,
                config
                    .row_clip
                    .map_or(String::new(), |k| format!(" with row clip {k}"))
            )));
        }

        let (aggregator, submitted) = replay_round(&db, &snapshot, &config).map_err(|e| {
            ServerError::Damaged(format!(
                "{}: the open round's stored updates do not replay: {e}",
                path.display()
            ))
        })?;
        // Every check passed: the seal follows the store (a refused start
        // changes nothing).
        seal::write(&path, stored.version)
            .map_err(|e| ServerError::Internal(format!("{}: {e}", seal::path(&path).display())))?;
        let tokens = Tokens::default();
        for (client, d) in db.clients()? {
            tokens.insert(d, client);
        }
        let closed_keys = db.keys_of(snapshot.version.saturating_sub(1))?;
        let round = OpenRound {
            aggregator,
            submitted,
            pending: HashMap::new(),
            closed: (
                snapshot.version.saturating_sub(1),
                closed_keys.into_iter().collect(),
            ),
            deadline: Instant::now() + config.round_duration,
            deadline_ms: now_ms() as u64 + config.round_duration.as_millis() as u64,
            optimizer,
            secure: None,
        };
        let metrics = Metrics::default();
        metrics.set_round(snapshot.version, round.submitted.len());
        Ok(ServerCore {
            config,
            db: Mutex::new(db),
            snapshot: RwLock::new(Arc::new(snapshot)),
            round: Mutex::new(round),
            commits: GroupCommit::default(),
            tokens,
            metrics,
            observer: OnceLock::new(),
        })
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn round_message(&self) -> RoundMessage {
        // Round lock first: a close swaps the snapshot while holding it, so
        // the two cannot disagree.
        let round = lock(&self.round);
        let snap = self.snapshot();
        RoundMessage {
            round: snap.version,
            base_version: snap.version,
            catalog_version: snap.catalog_version,
            train: snap.train.clone(),
            min_updates: self.config.min_updates,
            accepted: round.submitted.len() as u32,
            deadline_ms: round.deadline_ms,
        }
    }

    /// Issues (or re-issues, revoking the old one) a client's token.
    pub fn issue_token(&self, client_id: &str) -> Result<String, ServerError> {
        let client_id = client_id.trim();
        if client_id.is_empty() || client_id.len() > 256 {
            return Err(ServerError::BadRequest(
                "client id must be 1-256 bytes".into(),
            ));
        }
        let token = new_token().map_err(|e| ServerError::Internal(format!("random token: {e}")))?;
        lock(&self.db).put_client(client_id, &digest(&token))?;
        self.tokens.insert(digest(&token), client_id.to_string());
        Ok(token)
    }

    /// Registers a known token for a client (from a tokens file).
    pub fn register_token(&self, client_id: &str, token: &str) -> Result<(), ServerError> {
        lock(&self.db).put_client(client_id, &digest(token))?;
        self.tokens.insert(digest(token), client_id.to_string());
        Ok(())
    }

    /// Shows every update body received from now on to `observer` (once;
    /// false if one is set already).
    pub fn observe(&self, observer: Arc<dyn UploadObserver>) -> bool {
        self.observer.set(observer).is_ok()
    }

    pub(crate) fn observer(&self) -> Option<&Arc<dyn UploadObserver>> {
        self.observer.get()
    }

    /// Accepts `bytes` (a framed `UpdateMessage`) from `client`. On any
    /// error nothing changed: no row stored, nothing aggregated.
    pub fn submit(&self, client: &str, bytes: &[u8]) -> Result<Accepted, ServerError> {
        if let Some(observer) = self.observer.get() {
            observer.received(client, bytes);
        }
        let message =
            UpdateMessage::decode(bytes).map_err(|e| ServerError::Malformed(e.to_string()))?;
        let snap = self.snapshot();
        if snap.train.protection.secure_aggregation.is_some() {
            return Err(ServerError::Invalid(
                "this round takes masked uploads only (secure aggregation)".into(),
            ));
        }
        if message.base_version != snap.version || message.round != snap.version {
            if self.counted_in_closed_round(client, &message) {
                return Ok(Accepted::Duplicate);
            }
            return Err(ServerError::Stale(format!(
                "update for round {} on model {}, the open round is {} on model {}",
                message.round, message.base_version, snap.version, snap.version
            )));
        }
        let mut update = message
            .to_update(snap.global.dim())
            .and_then(|u| u.validate(&snap.global).map(|_| u))
            .map_err(|e| ServerError::Invalid(e.to_string()))?;
        let mut stored_bytes = None;
        if let Some(bound) = self.config.norm_bound {
            let norm = update.l2_norm();
            if norm > bound {
                match self.config.norm_policy {
                    NormPolicy::Reject => return Err(ServerError::NormTooLarge { norm, bound }),
                    NormPolicy::Clip => {
                        update.scale(bound / norm);
                        let clipped = UpdateMessage::new(
                            message.round,
                            message.base_version,
                            message.idempotency_key.clone(),
                            &update,
                        );
                        stored_bytes = Some(clipped.encode());
                    }
                }
            }
        }

        // Admission, under the round lock but without storage: the slot is
        // held as pending until the group commit stores the update.
        {
            let mut round = lock(&self.round);
            // The round may have closed while this request was being checked.
            if self.snapshot().version != snap.version {
                if round.closed.0 == message.round
                    && round.closed.1.get(client) == Some(&message.idempotency_key)
                {
                    return Ok(Accepted::Duplicate);
                }
                return Err(ServerError::Stale(format!(
                    "round {} closed while the update was in flight",
                    snap.version
                )));
            }
            match round.submitted.get(client) {
                Some(key) if *key == message.idempotency_key => return Ok(Accepted::Duplicate),
                Some(_) => return Err(already_submitted(client, snap.version)),
                None => {}
            }
            match round.pending.get(client).map(|(_, key)| key) {
                // A retry of an update still being stored: its answer is
                // the original's, known once the commit before it is done.
                Some(key) if *key == message.idempotency_key => {}
                Some(_) => return Err(already_submitted(client, snap.version)),
                None => {
                    // Refused only when the updates being stored will fill
                    // the round; a full round whose close failed (storage)
                    // takes more, and the next one retries the close.
                    let needed = self.config.min_updates.max(1) as usize;
                    let stored = round.submitted.len();
                    if stored < needed && stored + round.pending.len() >= needed {
                        return Err(ServerError::Stale(format!(
                            "round {} is full; it closes when its last updates are stored",
                            snap.version
                        )));
                    }
                    round.pending.insert(
                        client.to_string(),
                        (snap.version, message.idempotency_key.clone()),
                    );
                }
            }
        }
        let admitted = Admitted {
            version: snap.version,
            client: client.to_string(),
            key: message.idempotency_key,
            payload: match stored_bytes {
                Some(clipped) => clipped,
                None => bytes.to_vec(),
            },
            update,
        };
        self.commits.submit(
            admitted,
            |batch| self.store_batch(batch),
            || Err(ServerError::Internal("storing the update failed".into())),
        )
    }

    /// The group commit's step, in arrival order: stores the batch's new
    /// updates in one transaction, then aggregates them in that order (the
    /// order a restart replays) and closes the round once it is full.
    fn store_batch(&self, batch: Vec<Admitted>) -> Vec<Result<Accepted, ServerError>> {
        let mut round = lock(&self.round);
        let snap = self.snapshot();
        // A deadline may have closed the round since these were admitted.
        let current = |a: &Admitted| a.version == snap.version;
        let first_of_its_key = |i: usize, a: &Admitted| {
            !batch[..i]
                .iter()
                .any(|b| b.client == a.client && b.key == a.key)
        };
        let new: Vec<usize> = (0..batch.len())
            .filter(|&i| {
                let a = &batch[i];
                current(a) && !round.submitted.contains_key(&a.client) && first_of_its_key(i, a)
            })
            .collect();
        let rows: Vec<(&str, &str, &[u8])> = new
            .iter()
            .map(|&i| {
                let a = &batch[i];
                (a.client.as_str(), a.key.as_str(), a.payload.as_slice())
            })
            .collect();
        let stored = if rows.is_empty() {
            Ok(())
        } else {
            lock(&self.db).insert_updates(snap.version, &rows)
        };
        let mut outcomes: Vec<Result<Accepted, ServerError>> = Vec::with_capacity(batch.len());
        let mut closing = None;
        for (i, a) in batch.iter().enumerate() {
            let outcome = if !current(a) {
                release(&mut round.pending, a);
                Err(ServerError::Stale(format!(
                    "round {} closed while the update was in flight",
                    a.version
                )))
            } else if !new.contains(&i) {
                // A retry: the original's outcome decides.
                match round.submitted.get(&a.client) {
                    Some(key) if *key == a.key => Ok(Accepted::Duplicate),
                    _ => Err(ServerError::Stale(format!(
                        "the first attempt of this update in round {} was not stored; send it again",
                        a.version
                    ))),
                }
            } else {
                release(&mut round.pending, a);
                match &stored {
                    Err(e) => Err(ServerError::Internal(format!("storing the update: {e}"))),
                    Ok(()) => match round.aggregator.add(&snap.global, &a.update) {
                        Err(e) => Err(e.into()),
                        Ok(()) => {
                            round.submitted.insert(a.client.clone(), a.key.clone());
                            if closing.is_none()
                                && round.submitted.len() as u32 >= self.config.min_updates
                            {
                                closing = Some(i);
                            }
                            Ok(Accepted::New {
                                round_closed: false,
                            })
                        }
                    },
                }
            };
            outcomes.push(outcome);
        }
        self.metrics.set_round(snap.version, round.submitted.len());
        if let Some(i) = closing {
            // The update that filled the round answers for its close (a
            // failed close stays open and is retried by the ticker).
            outcomes[i] = self
                .close(&mut round, &snap)
                .map(|()| Accepted::New { round_closed: true });
        }
        outcomes
    }

    /// Whether `message` (same client, round and idempotency key) was
    /// counted in the round that closed last.
    fn counted_in_closed_round(&self, client: &str, message: &UpdateMessage) -> bool {
        let round = lock(&self.round);
        message.base_version == message.round
            && round.closed.0 == message.round
            && round.closed.1.get(client) == Some(&message.idempotency_key)
    }

    /// Deadline handling; call periodically. Returns true if a round closed.
    pub fn tick(&self) -> Result<bool, ServerError> {
        let mut round = lock(&self.round);
        if round.secure.is_some() {
            let snap = self.snapshot();
            self.advance(&mut round, &snap, false)?;
            return Ok(self.snapshot().version != snap.version);
        }
        // A full round that is still open: its close failed (and is retried
        // here), or the server restarted after storing the last update but
        // before closing the round.
        if round.submitted.len() >= self.config.min_updates.max(1) as usize {
            let snap = self.snapshot();
            self.close(&mut round, &snap)?;
            return Ok(true);
        }
        if Instant::now() < round.deadline {
            return Ok(false);
        }
        let floor = self.config.min_floor.max(1) as usize;
        if round.submitted.len() >= floor {
            let snap = self.snapshot();
            self.close(&mut round, &snap)?;
            Ok(true)
        } else {
            round.deadline = Instant::now() + self.config.round_duration;
            round.deadline_ms = now_ms() as u64 + self.config.round_duration.as_millis() as u64;
            Ok(false)
        }
    }

    /// Aggregates, stores the next model with the round's updates deleted in
    /// one transaction, then publishes it and opens the next round.
    pub(crate) fn close(&self, round: &mut OpenRound, snap: &Snapshot) -> Result<(), ServerError> {
        let mut global = snap.global.clone();
        let mut optimizer = round.optimizer.clone();
        let fresh = new_aggregator(snap, &self.config);
        let pending = std::mem::replace(&mut round.aggregator, fresh);
        pending.apply(&mut global, &mut optimizer);
        if !global.is_finite() {
            // Never publish or store a model no client (nor this server, on
            // restart) could load: keep the round open on its stored updates.
            let db = lock(&self.db);
            (round.aggregator, round.submitted) = replay_round(&db, snap, &self.config)?;
            return Err(ServerError::Internal(
                "the round's aggregate is not finite; the round stays open".into(),
            ));
        }
        let version = snap.version + 1;
        let message = ModelMessage::from_model(
            version,
            (snap.catalog_version, snap.catalog_digest),
            &snap.config,
            &snap.train,
            &global,
        );
        let bytes = message.encode();
        let stored = StoredModel {
            version,
            bytes,
            optimizer: codec::encode(&optimizer),
        };
        let closed = lock(&self.db).close_round(snap.version, &stored);
        if let Err(e) = closed {
            // Not stored: rebuild the open round from its stored updates,
            // as a restart would, and keep it open.
            let db = lock(&self.db);
            (round.aggregator, round.submitted) = replay_round(&db, snap, &self.config)?;
            return Err(e);
        }
        // Stored: the seal follows. Should it fail, the store is still
        // ahead of it, which a start accepts (and re-seals).
        if let Err(e) = seal::write(&self.config.db_path(), version) {
            eprintln!("fedmr-server: could not update the published-version seal: {e}");
        }
        let next = Snapshot {
            catalog: snap.catalog.clone(),
            catalog_version: snap.catalog_version,
            catalog_digest: snap.catalog_digest,
            model: Published::new(stored.bytes),
            version,
            config: snap.config.clone(),
            train: snap.train.clone(),
            global,
            downloads: Default::default(),
        };
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        round.optimizer = optimizer;
        round.closed = (snap.version, std::mem::take(&mut round.submitted));
        // Uploads of the closed round still waiting for their commit are
        // refused by it; their slots must not hold the next round's.
        round.pending.retain(|_, (v, _)| *v > snap.version);
        round.deadline = Instant::now() + self.config.round_duration;
        round.deadline_ms = now_ms() as u64 + self.config.round_duration.as_millis() as u64;
        self.metrics.round_closed(version);
        Ok(())
    }
}

/// An update admitted to the open round, on its way to storage.
struct Admitted {
    version: u64,
    client: String,
    key: String,
    /// The bytes stored (the upload, or its clipped re-encoding).
    payload: Vec<u8>,
    update: fedmr_core::update::ModelUpdate,
}

/// Frees `a`'s admission slot (if a close has not already).
fn release(pending: &mut HashMap<String, (u64, String)>, a: &Admitted) {
    if pending.get(&a.client).is_some_and(|(v, _)| *v == a.version) {
        pending.remove(&a.client);
    }
}

fn already_submitted(client: &str, round: u64) -> ServerError {
    ServerError::AlreadySubmitted(format!(
        "client {client} already has an update in round {round}"
    ))
}

/// The open round of `snap` rebuilt from its stored updates, in arrival
/// order: the aggregate so far and each client's idempotency key.
fn replay_round(
    db: &ServerDb,
    snap: &Snapshot,
    config: &ServerConfig,
) -> Result<(Aggregator, HashMap<String, String>), ServerError> {
    let mut aggregator = new_aggregator(snap, config);
    let mut submitted = HashMap::new();
    for u in db.updates_of(snap.version)? {
        // Stored after validation (and clipping), so replay cannot fail
        // unless the file was damaged.
        let message = UpdateMessage::decode(&u.payload)?;
        aggregator.add(&snap.global, &message.to_update(snap.global.dim())?)?;
        submitted.insert(u.client, u.idempotency_key);
    }
    Ok((aggregator, submitted))
}

/// An empty aggregate for `snap`'s round. The server, not the client,
/// decides how much an update weighs: one each under the hidden-count
/// defence, else the declared samples up to `max_samples`.
pub(crate) fn new_aggregator(snap: &Snapshot, config: &ServerConfig) -> Aggregator {
    let cap = if snap.train.protection.hide_sample_count {
        1
    } else {
        config.max_samples
    };
    Aggregator::new(&snap.global, snap.config.backbone)
        .with_sample_cap(cap)
        .with_rule(rule_of(config))
}

/// The aggregation rule of `config`. Its norm bound is applied (clip or
/// reject) before an update is stored, so replay sees the clipped update.
fn rule_of(config: &ServerConfig) -> AggregationRule {
    AggregationRule {
        combine: config.combine,
        clip: None,
        row_clip: config.row_clip,
    }
}

/// A new store: the catalog and the first model from `genesis`, then the seal.
fn initialize(
    db: &mut ServerDb,
    config: &ServerConfig,
    genesis: impl FnOnce() -> Result<Genesis, ServerError>,
) -> Result<(), ServerError> {
    let g = genesis()?;
    let (catalog_bytes, catalog_digest) = g.catalog.encode();
    let model = ModelMessage::from_model(
        1,
        (g.catalog.version, catalog_digest),
        &g.config,
        &g.train,
        &g.global,
    );
    let optimizer = ServerOptimizer::new(&config.server_step);
    db.initialize(
        g.catalog.version,
        &catalog_bytes,
        &StoredModel {
            version: 1,
            bytes: model.encode(),
            optimizer: codec::encode(&optimizer),
        },
    )?;
    seal::write(&config.db_path(), 1)
        .map_err(|e| ServerError::Internal(format!("published-version seal: {e}")))
}

/// How long the deadline checker sleeps between ticks.
pub const TICK: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests {
    use super::*;
    use fedmr_core::data::synthetic::{SyntheticConfig, generate};
    use fedmr_core::model::params::Tensors;

    fn open_core(dir: &std::path::Path) -> ServerCore {
        let mut config = ServerConfig::new(dir, "admin");
        config.min_updates = 3;
        let ds = generate(&SyntheticConfig {
            n_users: 8,
            n_items: 30,
            modality_dim: 4,
            seed: 2,
            ..SyntheticConfig::default()
        });
        let model = ModelConfig {
            dim: 4,
            ..ModelConfig::default()
        };
        ServerCore::open(config, || {
            crate::genesis_from_dataset(&ds, &model, &TrainConfig::default(), 1)
        })
        .unwrap()
    }

    fn upload(core: &ServerCore, key: &str) -> UpdateMessage {
        let snap = core.snapshot();
        UpdateMessage {
            round: snap.version,
            base_version: snap.version,
            idempotency_key: key.into(),
            samples: 5,
            item_ids: vec![1, 4],
            item_rows: vec![0.01; 2 * snap.global.dim()],
            dense: vec![0.001; snap.global.dense.num_params()],
        }
    }

    /// A round closed by its deadline while an upload of it waits for its
    /// commit: that upload's slot must not hold its client's upload for
    /// the next round, and its commit, refusing it, must not free the new one.
    #[test]
    fn a_deadline_close_frees_the_slots_of_uploads_still_waiting() {
        let dir = fedmr_test_support::TempDir::new("pending-slots");
        let core = open_core(&dir.0);
        let waiting = upload(&core, "old");
        lock(&core.round)
            .pending
            .insert("a".into(), (1, "old".into()));
        assert_eq!(
            core.submit("b", &upload(&core, "kb").encode()).unwrap(),
            Accepted::New {
                round_closed: false
            }
        );
        lock(&core.round).deadline = Instant::now() - Duration::from_secs(1);
        assert!(core.tick().unwrap(), "the deadline closes round 1");
        assert_eq!(core.snapshot().version, 2);

        let next = core.submit("a", &upload(&core, "new").encode());
        assert_eq!(
            next.unwrap(),
            Accepted::New {
                round_closed: false
            }
        );
        // The round-1 upload's commit comes last and is refused as stale.
        let answers = core.store_batch(vec![Admitted {
            version: 1,
            client: "a".into(),
            key: "old".into(),
            payload: waiting.encode(),
            update: waiting.to_update(core.snapshot().global.dim()).unwrap(),
        }]);
        assert!(
            matches!(answers[0], Err(ServerError::Stale(_))),
            "{answers:?}"
        );
        assert_eq!(core.round_message().accepted, 1);
        // The new upload's retry is still known as the same update.
        assert_eq!(
            core.submit("a", &upload(&core, "new").encode()).unwrap(),
            Accepted::Duplicate
        );
    }
}
