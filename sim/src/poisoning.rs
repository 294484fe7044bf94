//! Poisoning: malicious clients that push one target item into everyone's
//! top-k, and how far it gets (its exposure).
//!
//! The attack follows PipAttack's explicit promotion (Zhang et al., WSDM
//! 2022) with the popularity knowledge it assumes public: each malicious
//! client is a fake user whose history is the most popular items plus the
//! target, trains on it honestly (so its dense change looks like anyone's),
//! then replaces its change of the target's row with a step that moves the
//! row to the centre of the popular items' rows — the direction most users
//! score highly — amplified by `boost`, and declares the largest sample
//! count the server counts (FedAvg weight). Malicious clients read the
//! global model every round, as any client does; they never see users'
//! private state.

use serde::{Deserialize, Serialize};

use fedmr_core::aggregate::DEFAULT_SAMPLE_CAP;
use fedmr_core::model::{Backbone, Catalog, GlobalModel, ModelConfig, PrivateState};
use fedmr_core::rng::Rng;
use fedmr_core::train::{TrainConfig, train_local};
use fedmr_core::update::ModelUpdate;
use fedmr_core::{Error, Result};

/// A poisoning attack's settings, part of a simulation's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackConfig {
    /// Malicious clients as a share of the honest ones (0.01: one per 100
    /// users, rounded up; 0: none, but the target's exposure is measured).
    pub share: f64,
    /// How far past the popular centre the target's row is pushed per round.
    pub boost: f32,
    /// Popular items in a fake user's history (and in the centre).
    pub popular: usize,
}

impl Default for AttackConfig {
    fn default() -> Self {
        AttackConfig {
            share: 0.01,
            boost: 10.0,
            popular: 20,
        }
    }
}

/// The target of one run: an unpopular item (trained by at most the median
/// count of interactions), chosen from the seed.
pub fn pick_target(train_counts: &[u32], seed: u64) -> u32 {
    let mut sorted = train_counts.to_vec();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    let unpopular: Vec<u32> = (0..train_counts.len() as u32)
        .filter(|&i| train_counts[i as usize] <= median)
        .collect();
    let mut rng = Rng::derive(seed, &[0xa77ac]);
    unpopular[rng.below(unpopular.len() as u64) as usize]
}

/// The `n` most trained items, most first (ties by id).
pub fn most_popular(train_counts: &[u32], n: usize) -> Vec<u32> {
    let mut items: Vec<u32> = (0..train_counts.len() as u32).collect();
    items.sort_by_key(|&i| (std::cmp::Reverse(train_counts[i as usize]), i));
    items.truncate(n);
    items
}

struct Attacker {
    state: PrivateState,
    seed: u64,
}

/// The malicious clients of one federation.
pub struct Poisoning {
    pub config: AttackConfig,
    pub target: u32,
    popular: Vec<u32>,
    /// A fake user's history: the popular items and the target, ascending.
    profile: Vec<u32>,
    attackers: Vec<Attacker>,
}

impl Poisoning {
    pub fn new(
        config: AttackConfig,
        train_counts: &[u32],
        honest_clients: usize,
        model: &ModelConfig,
        global: &GlobalModel,
        seed: u64,
    ) -> Result<Self> {
        if !(config.share >= 0.0 && config.share < 1.0) || config.popular == 0 {
            return Err(Error::InvalidConfig(
                "attack share must be in [0, 1) and popular at least 1".into(),
            ));
        }
        let target = pick_target(train_counts, seed);
        let popular: Vec<u32> = most_popular(train_counts, config.popular + 1)
            .into_iter()
            .filter(|&i| i != target)
            .take(config.popular)
            .collect();
        let mut profile = popular.clone();
        profile.push(target);
        let count = (config.share * honest_clients as f64).ceil() as usize;
        let attackers = (0..count)
            .map(|k| {
                let seed = Rng::derive_seed(seed, &[0xbad, k as u64]);
                Attacker {
                    state: PrivateState::new(model, global, seed),
                    seed,
                }
            })
            .collect();
        Ok(Poisoning {
            config,
            target,
            popular,
            profile,
            attackers,
        })
    }

    pub fn attackers(&self) -> usize {
        self.attackers.len()
    }

    /// The malicious updates of one round. `participation` is the share of
    /// honest clients that train this round; each attacker joins with that
    /// probability (all of them when everyone trains).
    pub fn updates(
        &mut self,
        global: &GlobalModel,
        catalog: &Catalog,
        backbone: Backbone,
        train: &TrainConfig,
        round: usize,
        participation: f64,
    ) -> Result<Vec<ModelUpdate>> {
        let table = &global.items.0.0;
        let mut centre = ndarray::Array1::<f32>::zeros(global.dim());
        for &i in &self.popular {
            centre += &table.row(i as usize);
        }
        centre /= self.popular.len() as f32;
        let wanted = &centre - &table.row(self.target as usize);
        let mut updates = Vec::new();
        for attacker in &mut self.attackers {
            let mut rng = Rng::derive(attacker.seed, &[round as u64]);
            if participation < 1.0 && rng.uniform() >= participation {
                continue;
            }
            let (mut update, _) = train_local(
                global,
                catalog,
                backbone,
                &mut attacker.state,
                &self.profile,
                train,
                &mut rng,
            )?;
            update.samples = DEFAULT_SAMPLE_CAP;
            let rows = &mut update.item_rows;
            let step = &wanted * self.config.boost;
            match rows.ids.binary_search(&self.target) {
                Ok(r) => rows.values.row_mut(r).assign(&step),
                Err(r) => {
                    let mut ids = rows.ids.clone();
                    ids.insert(r, self.target);
                    let mut values = ndarray::Array2::zeros((ids.len(), global.dim()));
                    for (k, mut row) in values.rows_mut().into_iter().enumerate() {
                        match k.cmp(&r) {
                            std::cmp::Ordering::Less => row.assign(&rows.values.row(k)),
                            std::cmp::Ordering::Equal => row.assign(&step),
                            std::cmp::Ordering::Greater => row.assign(&rows.values.row(k - 1)),
                        }
                    }
                    *rows = fedmr_core::update::SparseRows { ids, values };
                }
            }
            // Keep within what the server accepts (values bounded).
            let bound = fedmr_core::update::MAX_UPDATE_VALUE * 0.5;
            rows.values.mapv_inplace(|v| v.clamp(-bound, bound));
            updates.push(update);
        }
        Ok(updates)
    }
}

/// Share of users (those without the target in their history) whose top
/// `k` holds the target, given each user's scores and history.
pub fn exposure(
    target: u32,
    k: usize,
    users: usize,
    mut scores_and_history: impl FnMut(usize) -> (Vec<f32>, Vec<u32>),
) -> f64 {
    let (mut counted, mut exposed) = (0usize, 0usize);
    for u in 0..users {
        let (scores, history) = scores_and_history(u);
        if history.contains(&target) {
            continue;
        }
        counted += 1;
        let t = scores[target as usize];
        let mut seen = vec![false; scores.len()];
        history.iter().for_each(|&i| seen[i as usize] = true);
        // Rank = items (not in the history) scoring at or above the target:
        // ties count against it, as in evaluation.
        let above = scores
            .iter()
            .zip(&seen)
            .enumerate()
            .filter(|&(i, (&s, &h))| i as u32 != target && !h && s >= t)
            .count();
        if above < k {
            exposed += 1;
        }
    }
    if counted == 0 {
        0.0
    } else {
        exposed as f64 / counted as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_is_unpopular_and_popular_items_are_the_most_trained() {
        let counts = [5, 0, 9, 1, 1, 7, 2];
        for seed in 0..20 {
            let t = pick_target(&counts, seed);
            assert!(counts[t as usize] <= 2, "seed {seed}: {t}");
        }
        assert_eq!(most_popular(&counts, 3), vec![2, 5, 0]);
    }

    #[test]
    fn exposure_counts_users_with_the_target_in_their_top_k() {
        // Target 0. User 0: best of 3 -> exposed at k = 1. User 1: second.
        // User 2 has the target in its history: not counted.
        let scores = [
            vec![0.9, 0.1, 0.2],
            vec![0.5, 0.9, 0.1],
            vec![0.9, 0.1, 0.2],
        ];
        let histories = [vec![], vec![], vec![0]];
        let e = |k| exposure(0, k, 3, |u| (scores[u].clone(), histories[u].clone()));
        assert_eq!(e(1), 0.5);
        assert_eq!(e(2), 1.0);
        // An item in the history does not push the target down.
        let e1 = exposure(0, 1, 1, |_| (vec![0.5, 0.9, 0.1], vec![1]));
        assert_eq!(e1, 1.0);
    }
}
