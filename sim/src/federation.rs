//! The federated round loop: every selected phone downloads the global
//! model, trains locally on its own data with its own private state, and
//! uploads its update; the coordinator aggregates; then every user is
//! evaluated with the new global model and their own private state.

use serde::{Deserialize, Serialize};

use fedmr_core::aggregate::{AggregationRule, ServerStep};
use fedmr_core::data::{Dataset, UserData};
use fedmr_core::model::{Catalog, GlobalModel, ModelConfig, PrivateState};
use fedmr_core::rank::{ItemViews, preference, score_all};
use fedmr_core::rng::Rng;
use fedmr_core::train::{TrainConfig, train_local};
use fedmr_core::update::ModelUpdate;
use fedmr_core::wire::ModelEncoding;
use fedmr_core::{Error, Result};
use fedmr_data::eval::{EvalReport, Target, evaluate};

use crate::coordinator::{Coordinator, InProcess};
use crate::new_items::{NewItemEval, NewItemSplit};
use crate::poisoning::{self, AttackConfig, Poisoning};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub server_step: ServerStep,
    pub rounds: usize,
    /// Stop after this many rounds without a better validation HR@50.
    pub patience: usize,
    /// Clients per round; None = all.
    pub clients_per_round: Option<usize>,
    pub seed: u64,
    /// Worker threads for local training (results do not depend on it).
    pub threads: usize,
    /// How the server combines updates (in process; robust rules hold the round).
    #[serde(default)]
    pub aggregation: AggregationRule,
    /// Malicious clients promoting a target item (in process only).
    #[serde(default)]
    pub attack: Option<AttackConfig>,
    /// The most samples an update's declared count weighs (the server's
    /// `max_samples`; 1: every client alike).
    #[serde(default = "default_sample_cap")]
    pub sample_cap: u64,
    /// How phones download the model (they train and rank from it).
    #[serde(default)]
    pub download: ModelEncoding,
}

fn default_sample_cap() -> u64 {
    fedmr_core::aggregate::DEFAULT_SAMPLE_CAP
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            server_step: ServerStep::Plain { lr: 1.0 },
            rounds: 100,
            patience: 20,
            clients_per_round: None,
            seed: 0,
            threads: 2,
            aggregation: AggregationRule::default(),
            attack: None,
            sample_cap: default_sample_cap(),
            download: ModelEncoding::F32,
        }
    }
}

/// One simulated phone: its data and its private state, which persists
/// across rounds.
pub struct Phone {
    pub user: usize,
    pub data: UserData,
    pub state: PrivateState,
}

#[derive(Clone, Debug, Serialize)]
pub struct RoundRecord {
    pub round: usize,
    pub clients: usize,
    pub train_loss: f64,
    pub valid: EvalReport,
    pub test: EvalReport,
    /// L2 norms of this round's honest updates: median, 99th percentile,
    /// max; `None` where the federation does not see them (over HTTP the
    /// updates go to the server).
    pub update_norms: Option<[f32; 3]>,
    /// Under an attack: the share of users with its target in their top 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure: Option<f64>,
    /// Under the new-item split: how the held-out new items rank.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_items: Option<NewItemEval>,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub config: SimConfig,
    pub rounds: Vec<RoundRecord>,
    /// Index into `rounds` of the best validation HR@50.
    pub best: usize,
    pub seconds: f64,
    /// Each phone's router weights over the experts after the last round
    /// (the user's strategy preference).
    pub router_weights: Vec<Vec<f32>>,
}

impl RunResult {
    pub fn best_round(&self) -> &RoundRecord {
        &self.rounds[self.best]
    }
}

pub struct Federation<C: Coordinator> {
    pub config: SimConfig,
    pub catalog: Catalog,
    pub phones: Vec<Phone>,
    pub coordinator: C,
    cold_items: Vec<bool>,
    pub poisoning: Option<Poisoning>,
    honest_norms: Vec<f32>,
    new_items: Option<NewItemSplit>,
}

impl Federation<InProcess> {
    pub fn in_process(dataset: &Dataset, catalog: Catalog, config: SimConfig) -> Result<Self> {
        let global = GlobalModel::new(&config.model, &catalog, config.seed)?;
        let coordinator = InProcess::new(global, config.model.backbone, &config.server_step)
            .with_rule(config.aggregation, config.sample_cap)
            .with_secure_aggregation(config.train.protection.secure_aggregation)
            .with_download(config.download)?;
        Federation::new(dataset, catalog, config, coordinator)
    }
}

impl<C: Coordinator> Federation<C> {
    pub fn new(
        dataset: &Dataset,
        catalog: Catalog,
        config: SimConfig,
        coordinator: C,
    ) -> Result<Self> {
        config.train.validate()?;
        if config.threads == 0 {
            return Err(Error::InvalidConfig("threads must be at least 1".into()));
        }
        let phones = dataset
            .users()
            .into_iter()
            .enumerate()
            .filter(|(_, d)| !d.train.is_empty())
            .map(|(user, data)| {
                let seed = phone_seed(&config, user);
                Phone {
                    user,
                    data,
                    state: PrivateState::new(&config.model, coordinator.global(), seed),
                }
            })
            .collect::<Vec<Phone>>();
        let poisoning = match &config.attack {
            Some(attack) => Some(Poisoning::new(
                attack.clone(),
                &dataset.train_counts(),
                phones.len(),
                &config.model,
                coordinator.global(),
                config.seed,
            )?),
            None => None,
        };
        Ok(Federation {
            config,
            catalog,
            phones,
            coordinator,
            cold_items: dataset.cold_items(),
            poisoning,
            honest_norms: Vec::new(),
            new_items: None,
        })
    }

    /// Evaluates the held-out new items of `split` every round (the
    /// federation itself must train on `split.training`).
    pub fn with_new_items(mut self, split: NewItemSplit) -> Result<Self> {
        if self.catalog.n_items != split.n_old {
            return Err(Error::InvalidConfig(format!(
                "the federation's catalog has {} items, the split's training {}",
                self.catalog.n_items, split.n_old
            )));
        }
        self.new_items = Some(split);
        Ok(self)
    }

    /// The new items' ranks under the current model, their rows zero.
    pub fn evaluate_new_items(&self) -> Option<NewItemEval> {
        let split = self.new_items.as_ref()?;
        let global = split.with_new_rows(self.coordinator.global());
        let catalog = &split.full_catalog;
        let views = ItemViews::compute(&global, catalog);
        let mut phone_of = vec![None; split.user_new_items.len()];
        self.phones
            .iter()
            .enumerate()
            .for_each(|(k, p)| phone_of[p.user] = Some(k));
        Some(split.evaluate(
            |user| {
                let p = &self.phones[phone_of[user]?];
                Some(score_all(&global, catalog, &views, &p.state, &p.data.train))
            },
            |user| phone_of[user].map_or_else(Vec::new, |k| self.phones[k].data.train.clone()),
        ))
    }

    fn selected(&self, round: usize) -> Vec<usize> {
        select_clients(&self.config, self.phones.len(), round)
    }

    /// One round: local training on the selected phones, aggregation.
    /// Returns the number of clients and their mean final-epoch loss.
    pub fn round(&mut self, round: usize) -> Result<(usize, f64)> {
        let selected = self.selected(round);
        let global = self.coordinator.global().clone();
        let (config, catalog) = (&self.config, &self.catalog);
        // Round r (0-based) trains on model version r + 1, as over HTTP.
        let train = TrainConfig {
            round: round as u64 + 1,
            ..config.train.clone()
        };
        let train = &train;
        let mut chosen = vec![false; self.phones.len()];
        selected.iter().for_each(|&i| chosen[i] = true);
        let mut phones: Vec<&mut Phone> = self
            .phones
            .iter_mut()
            .zip(&chosen)
            .filter(|(_, c)| **c)
            .map(|(p, _)| p)
            .collect();
        // Chunks bound the memory of pending updates; within a chunk phones
        // train in parallel, and updates are submitted in phone order so the
        // result does not depend on the number of threads.
        let mut loss_sum = 0.0;
        self.honest_norms.clear();
        for chunk in phones.chunks_mut(16 * config.threads) {
            let per_thread = chunk.len().div_ceil(config.threads);
            let results: Vec<Result<(ModelUpdate, f32)>> = std::thread::scope(|scope| {
                let handles: Vec<_> = chunk
                    .chunks_mut(per_thread)
                    .map(|part| {
                        let global = &global;
                        scope.spawn(move || {
                            part.iter_mut()
                                .map(|phone| {
                                    let mut rng = Rng::new(round_seed(config, phone.user, round));
                                    let (update, report) = train_local(
                                        global,
                                        catalog,
                                        config.model.backbone,
                                        &mut phone.state,
                                        &phone.data.train,
                                        train,
                                        &mut rng,
                                    )?;
                                    Ok((update, *report.epoch_losses.last().unwrap_or(&f32::NAN)))
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("training thread panicked"))
                    .collect()
            });
            for r in results {
                let (update, loss) = r?;
                self.honest_norms.push(update.l2_norm());
                self.coordinator.submit(&update)?;
                loss_sum += loss as f64;
            }
        }
        if let Some(poisoning) = &mut self.poisoning {
            // Malicious clients train on the round's model, as honest ones do.
            let participation = selected.len() as f64 / self.phones.len().max(1) as f64;
            for update in poisoning.updates(
                &global,
                &self.catalog,
                self.config.model.backbone,
                train,
                round,
                participation,
            )? {
                self.coordinator.submit(&update)?;
            }
        }
        self.coordinator.close_round()?;
        Ok((selected.len(), loss_sum / selected.len().max(1) as f64))
    }

    /// Evaluates every user on `target` with the current global model and
    /// their private state.
    pub fn evaluate(&self, target: Target) -> EvalReport {
        self.evaluate_targets(&[target]).remove(0)
    }

    /// Several targets under one model: the item views are computed once.
    pub fn evaluate_targets(&self, targets: &[Target]) -> Vec<EvalReport> {
        let global = self.coordinator.global();
        let views = ItemViews::compute(global, &self.catalog);
        let users: Vec<UserData> = self.phones.iter().map(|p| p.data.clone()).collect();
        targets
            .iter()
            .map(|&target| {
                evaluate(&users, &self.cold_items, target, |k| {
                    let p = &self.phones[k];
                    score_all(global, &self.catalog, &views, &p.state, &p.data.train)
                })
            })
            .collect()
    }

    /// The attack's target's exposure: the share of users (without it in
    /// their history) who have it in their top 10.
    pub fn target_exposure(&self) -> Option<f64> {
        let target = self.poisoning.as_ref()?.target;
        let global = self.coordinator.global();
        let views = ItemViews::compute(global, &self.catalog);
        Some(poisoning::exposure(target, 10, self.phones.len(), |k| {
            let p = &self.phones[k];
            let scores = score_all(global, &self.catalog, &views, &p.state, &p.data.train);
            // Validation and test items are the user's too, but unseen by
            // the model: only the training history is excluded.
            (scores, p.data.train.clone())
        }))
    }

    /// Each user's router weights over the experts.
    pub fn preferences(&self) -> Vec<Vec<f32>> {
        let global = self.coordinator.global();
        let views = ItemViews::compute(global, &self.catalog);
        self.phones
            .iter()
            .map(|p| preference(global, &self.catalog, &views, &p.state, &p.data.train).to_vec())
            .collect()
    }

    /// Runs rounds with early stopping; `on_round` sees each record (progress).
    pub fn run(&mut self, on_round: impl FnMut(&RoundRecord)) -> Result<RunResult> {
        run_rounds(self, on_round)
    }
}

impl<C: Coordinator> Rounds for Federation<C> {
    fn config(&self) -> &SimConfig {
        &self.config
    }
    fn round(&mut self, round: usize) -> Result<(usize, f64)> {
        Federation::round(self, round)
    }
    fn evaluate_targets(&mut self, targets: &[Target]) -> Result<Vec<EvalReport>> {
        Ok(Federation::evaluate_targets(self, targets))
    }
    fn router_weights(&mut self) -> Result<Vec<Vec<f32>>> {
        Ok(self.preferences())
    }
    fn exposure(&mut self) -> Result<Option<f64>> {
        Ok(self.target_exposure())
    }
    fn new_items(&mut self) -> Result<Option<NewItemEval>> {
        Ok(self.evaluate_new_items())
    }
    fn update_norms(&self) -> Vec<f32> {
        self.honest_norms.clone()
    }
}

/// The phones (by index) that train in `round`: all, or a seeded sample.
pub fn select_clients(config: &SimConfig, phones: usize, round: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..phones).collect();
    if let Some(n) = config.clients_per_round.filter(|&n| n < all.len()) {
        Rng::derive(config.seed, &[0x5e1, round as u64]).shuffle(&mut all);
        all.truncate(n);
        all.sort_unstable();
    }
    all
}

/// The seed of a phone's first private state.
pub fn phone_seed(config: &SimConfig, user: usize) -> u64 {
    Rng::derive(config.seed, &[0x9e, user as u64]).next_u64()
}

/// The seed of a phone's random stream in one round.
pub fn round_seed(config: &SimConfig, user: usize, round: usize) -> u64 {
    Rng::derive_seed(config.seed, &[0x7a, user as u64, round as u64])
}

/// A federation as the round loop sees it, in process or over HTTP.
pub trait Rounds {
    fn config(&self) -> &SimConfig;
    /// Trains the selected phones and aggregates; returns the number of
    /// clients and their mean final-epoch loss.
    fn round(&mut self, round: usize) -> Result<(usize, f64)>;
    fn evaluate_targets(&mut self, targets: &[Target]) -> Result<Vec<EvalReport>>;
    /// Each phone's router weights under its current private state.
    fn router_weights(&mut self) -> Result<Vec<Vec<f32>>>;
    /// Under a poisoning attack, its target's exposure (top 10).
    fn exposure(&mut self) -> Result<Option<f64>> {
        Ok(None)
    }
    /// Under the new-item split, how the held-out new items rank.
    fn new_items(&mut self) -> Result<Option<NewItemEval>> {
        Ok(None)
    }
    /// L2 norms of the last round's honest updates (empty if unknown).
    fn update_norms(&self) -> Vec<f32> {
        Vec::new()
    }
}

/// Median, 99th percentile and maximum (`None` when empty).
pub fn norm_summary(norms: &[f32]) -> Option<[f32; 3]> {
    if norms.is_empty() {
        return None;
    }
    let mut sorted = norms.to_vec();
    sorted.sort_unstable_by(f32::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    Some([at(0.5), at(0.99), sorted[sorted.len() - 1]])
}

/// Runs rounds with early stopping on validation HR@50 (then NDCG@50).
pub fn run_rounds(
    federation: &mut impl Rounds,
    mut on_round: impl FnMut(&RoundRecord),
) -> Result<RunResult> {
    let start = std::time::Instant::now();
    let config = federation.config().clone();
    let mut rounds = Vec::new();
    let mut best = 0usize;
    for round in 0..config.rounds {
        let t = std::time::Instant::now();
        let (clients, train_loss) = federation.round(round)?;
        let mut reports = federation
            .evaluate_targets(&[Target::Valid, Target::Test])?
            .into_iter();
        let record = RoundRecord {
            round,
            clients,
            train_loss,
            valid: reports.next().expect("valid report"),
            test: reports.next().expect("test report"),
            update_norms: norm_summary(&federation.update_norms()),
            exposure: federation.exposure()?,
            new_items: federation.new_items()?,
            seconds: t.elapsed().as_secs_f64(),
        };
        on_round(&record);
        rounds.push(record);
        let key = |r: &RoundRecord| (r.valid.all.hr_at(50), r.valid.all.ndcg_at(50));
        if round == 0 || key(&rounds[round]) > key(&rounds[best]) {
            best = round;
        }
        if round - best >= config.patience {
            break;
        }
    }
    if rounds.is_empty() {
        return Err(Error::InvalidConfig("rounds must be at least 1".into()));
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(RunResult {
        config,
        rounds,
        best,
        seconds,
        router_weights: federation.router_weights()?,
    })
}
