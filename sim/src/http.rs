//! The federation over real HTTP: an in-process `fedmr-server` on
//! 127.0.0.1, and one real `fedmr_sdk::Client` per simulated phone, each
//! with its own SQLite file, syncing, training and uploading as an app
//! would. Given the same seed it computes exactly what the in-process
//! federation computes: the same private-state seeds and per-round random
//! streams, uploads in phone order (so the server's running sums add in the
//! same order), and evaluation from each client's own `scores()`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fedmr_core::data::{Dataset, UserData};
use fedmr_core::model::{Catalog, GlobalModel};
use fedmr_core::wire::CatalogMessage;
use fedmr_core::{Error, Result};
use fedmr_data::eval::{EvalReport, Target, evaluate};
use fedmr_sdk::Remote;
use fedmr_sdk::{Client, ClientConfig, Interaction, InteractionKind, TrainOptions};
use fedmr_server::{Genesis, RunningServer, ServerConfig, ServerCore, item_key};

use crate::federation::{Rounds, SimConfig, phone_seed, round_seed, select_clients};

/// Bytes that crossed the wire in one round, summed over phones, and the
/// seconds each phase of the round took (wall clock).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    pub uploaded: u64,
    pub downloaded: u64,
    pub seconds: PhaseSeconds,
}

/// Where an HTTP round's time goes: the chosen phones' sync (model
/// install), their training (in parallel), their uploads (in phone order;
/// the last closes the round), and the evaluation (every phone syncs the
/// new model and scores the catalog).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseSeconds {
    pub sync: f64,
    pub train: f64,
    pub upload: f64,
    pub evaluate: f64,
}

struct HttpPhone {
    data: UserData,
    user: usize,
    client: Client,
    remote: Remote,
}

pub struct HttpFederation {
    config: SimConfig,
    server: RunningServer,
    phones: Vec<HttpPhone>,
    cold_items: Vec<bool>,
    /// Traffic of each round so far.
    pub traffic: Vec<Traffic>,
}

fn to_error(e: fedmr_server::ServerError) -> Error {
    Error::InvalidConfig(format!("server: {e}"))
}

/// A phone's SDK error in the simulation's terms: divergence stays
/// divergence (the experiment falls through to the next step size on it).
fn phone_error(e: fedmr_sdk::Error) -> Error {
    match e {
        fedmr_sdk::Error::Diverged { lr } => Error::Diverged { lr },
        other => Error::InvalidConfig(format!("phone: {other}")),
    }
}

impl HttpFederation {
    /// Starts the server (fresh state in `work_dir/server`) and opens one
    /// client per user with training data (`work_dir/phones/<user>.sqlite`),
    /// recording each user's training items as likes in time order.
    pub fn new(
        dataset: &Dataset,
        catalog: &Catalog,
        modality_names: &[String],
        config: SimConfig,
        work_dir: &Path,
    ) -> Result<Self> {
        config.train.validate()?;
        let _ = std::fs::remove_dir_all(work_dir);
        let phones_dir = work_dir.join("phones");
        std::fs::create_dir_all(&phones_dir).map_err(|e| Error::Io {
            path: phones_dir.clone(),
            source: e,
        })?;
        let users: Vec<(usize, UserData)> = dataset
            .users()
            .into_iter()
            .enumerate()
            .filter(|(_, d)| !d.train.is_empty())
            .collect();
        let per_round = config
            .clients_per_round
            .map_or(users.len(), |n| n.min(users.len())) as u32;

        let keys = (0..dataset.n_items).map(item_key).collect();
        let modalities: Vec<(&str, _)> = modality_names
            .iter()
            .map(String::as_str)
            .zip(&catalog.features)
            .collect();
        let genesis = Genesis {
            catalog: CatalogMessage::from_features(1, keys, &modalities)?,
            config: config.model.clone(),
            train: config.train.clone(),
            global: GlobalModel::new(&config.model, catalog, config.seed)?,
        };
        let server_config = ServerConfig {
            // Every selected phone uploads, and the last one closes the round.
            min_updates: per_round,
            min_floor: per_round,
            round_duration: Duration::from_secs(24 * 3600),
            max_body_bytes: 256 << 20,
            server_step: config.server_step.clone(),
            ..ServerConfig::new(work_dir.join("server"), "sim-admin")
        };
        let core = ServerCore::open(server_config, || Ok(genesis)).map_err(to_error)?;
        let server =
            RunningServer::start(core, "127.0.0.1:0".parse().expect("address")).map_err(|e| {
                Error::Io {
                    path: PathBuf::from("127.0.0.1:0"),
                    source: e,
                }
            })?;

        let mut phones = Vec::with_capacity(users.len());
        for (user, data) in users {
            let token = server
                .core
                .issue_token(&format!("phone-{user}"))
                .map_err(to_error)?;
            let client = Client::open(ClientConfig {
                db_path: phones_dir.join(format!("{user}.sqlite")),
                retention_cap: 1_000_000,
                seed: Some(phone_seed(&config, user)),
                // Every phone is scored after every round anyway: storing
                // the ranking would add flash writes and, after installs and
                // trainings, double the scoring.
                store_ranking: false,
            })
            .map_err(phone_error)?;
            let history: Vec<Interaction> = data
                .train
                .iter()
                .enumerate()
                .map(|(t, &item)| Interaction {
                    item_key: item_key(item as usize),
                    kind: InteractionKind::Like,
                    timestamp_ms: t as i64,
                })
                .collect();
            client.record_batch(&history).map_err(phone_error)?;
            phones.push(HttpPhone {
                data,
                user,
                client,
                remote: Remote {
                    model_encoding: config.download,
                    ..Remote::new(server.url(), token)
                },
            });
        }
        Ok(HttpFederation {
            config,
            server,
            phones,
            cold_items: dataset.cold_items(),
            traffic: Vec::new(),
        })
    }

    /// Shows every upload the server receives to `observer` (privacy
    /// evaluations: what a curious server would keep).
    pub fn observe_uploads(&self, observer: std::sync::Arc<dyn fedmr_server::UploadObserver>) {
        self.server.core.observe(observer);
    }

    /// The user index of each phone, in phone order (`router_weights` order).
    pub fn phone_users(&self) -> Vec<usize> {
        self.phones.iter().map(|p| p.user).collect()
    }

    /// The global model the server publishes now.
    pub fn published_global(&self) -> GlobalModel {
        self.server.core.snapshot().global.clone()
    }

    pub fn server_url(&self) -> String {
        self.server.url()
    }

    /// Phones in the federation (users with training data).
    pub fn phones(&self) -> usize {
        self.phones.len()
    }

    /// Downloads the current catalog/model on every phone (conditional).
    fn sync_all(&self, phones: &[&HttpPhone]) -> Result<u64> {
        let bytes = self.on_phones(phones, |p| {
            Ok(p.client
                .sync(&p.remote)
                .map_err(phone_error)?
                .bytes_downloaded)
        })?;
        Ok(bytes.into_iter().sum())
    }

    /// `f` on each phone, spread over the configured threads, results in
    /// phone order.
    fn on_phones<T: Send>(
        &self,
        phones: &[&HttpPhone],
        f: impl Fn(&HttpPhone) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        let per_thread = phones.len().div_ceil(self.config.threads.max(1)).max(1);
        let f = &f;
        let results: Vec<Result<T>> = std::thread::scope(|scope| {
            let handles: Vec<_> = phones
                .chunks(per_thread)
                .map(|part| scope.spawn(move || part.iter().map(|p| f(p)).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("phone thread panicked"))
                .collect()
        });
        results.into_iter().collect()
    }
}

impl HttpFederation {
    /// Each phone's update, once, in phone order.
    fn plain_uploads(&self, chosen: &[&HttpPhone]) -> Result<u64> {
        let mut uploaded = 0;
        for p in chosen {
            let report = p.client.upload(&p.remote).map_err(phone_error)?;
            if report.delivered != 1 || report.remaining != 0 || report.dropped != 0 {
                return Err(Error::InvalidConfig(format!(
                    "phone {}: upload not delivered: {report:?}",
                    p.user
                )));
            }
            uploaded += report.bytes_uploaded;
        }
        Ok(uploaded)
    }

    /// Secure aggregation's phases: every phone calls `upload` in turn (as
    /// its background job would) until each has taken its part; the last
    /// answer to the unmask request closes the round.
    fn secure_uploads(&self, chosen: &[&HttpPhone]) -> Result<u64> {
        let mut uploaded = 0;
        let mut done = vec![false; chosen.len()];
        for _pass in 0..8 {
            for (k, p) in chosen.iter().enumerate() {
                if done[k] {
                    continue;
                }
                let report = p.client.upload(&p.remote).map_err(phone_error)?;
                if report.dropped != 0 || report.remaining != 0 {
                    return Err(Error::InvalidConfig(format!(
                        "phone {}: secure upload failed: {report:?}",
                        p.user
                    )));
                }
                uploaded += report.bytes_uploaded;
                done[k] = report.delivered == 1;
            }
            if done.iter().all(|&d| d) {
                return Ok(uploaded);
            }
        }
        Err(Error::InvalidConfig(
            "the secure round did not complete in 8 passes".into(),
        ))
    }
}

impl Rounds for HttpFederation {
    fn config(&self) -> &SimConfig {
        &self.config
    }

    fn round(&mut self, round: usize) -> Result<(usize, f64)> {
        let selected = select_clients(&self.config, self.phones.len(), round);
        let chosen: Vec<&HttpPhone> = selected.iter().map(|&i| &self.phones[i]).collect();
        let mut clock = Instant::now();
        let mut lap = || {
            let now = Instant::now();
            (now - std::mem::replace(&mut clock, now)).as_secs_f64()
        };
        let downloaded = self.sync_all(&chosen)?;
        let sync = lap();
        let config = &self.config;
        // Local training in parallel...
        let losses = self.on_phones(&chosen, |p| {
            let report = p
                .client
                .train(&TrainOptions {
                    config: Some(config.train.clone()),
                    rng_seed: Some(round_seed(config, p.user, round)),
                    ..TrainOptions::default()
                })
                .map_err(phone_error)?;
            Ok(f64::from(*report.losses.last().unwrap_or(&f32::NAN)))
        })?;
        let loss_sum: f64 = losses.iter().sum();
        let train = lap();
        // ...then uploads in phone order, so the server's running sums are
        // added in the order the in-process federation adds them.
        let uploaded = if config.train.protection.secure_aggregation.is_some() {
            self.secure_uploads(&chosen)?
        } else {
            self.plain_uploads(&chosen)?
        };
        let upload = lap();
        let expected = round as u64 + 2;
        let version = self.server.core.snapshot().version;
        if version != expected {
            return Err(Error::InvalidConfig(format!(
                "round {round} did not close: server at model version {version}"
            )));
        }
        self.traffic.push(Traffic {
            uploaded,
            downloaded,
            seconds: PhaseSeconds {
                sync,
                train,
                upload,
                evaluate: 0.0,
            },
        });
        Ok((chosen.len(), loss_sum / chosen.len().max(1) as f64))
    }

    fn evaluate_targets(&mut self, targets: &[Target]) -> Result<Vec<EvalReport>> {
        let start = Instant::now();
        let everyone: Vec<&HttpPhone> = self.phones.iter().collect();
        let downloaded = self.sync_all(&everyone)?;
        let scores = self.on_phones(&everyone, |p| p.client.scores().map_err(phone_error))?;
        if let Some(t) = self.traffic.last_mut() {
            t.downloaded += downloaded;
            t.seconds.evaluate += start.elapsed().as_secs_f64();
        }
        let users: Vec<UserData> = self.phones.iter().map(|p| p.data.clone()).collect();
        Ok(targets
            .iter()
            .map(|&target| evaluate(&users, &self.cold_items, target, |k| scores[k].clone()))
            .collect())
    }

    fn router_weights(&mut self) -> Result<Vec<Vec<f32>>> {
        let everyone: Vec<&HttpPhone> = self.phones.iter().collect();
        self.on_phones(&everyone, |p| {
            Ok(p.client
                .preferences()
                .map_err(phone_error)?
                .experts
                .iter()
                .map(|e| e.weight)
                .collect())
        })
    }
}
