//! A seeded synthetic multimodal dataset with known ground truth.
//!
//! Real benchmarks are small and odd (KU's test targets are mostly cold
//! items), so the SDK also needs data where we know what a multimodal,
//! personalised model should find. The generator plants exactly that:
//!
//! * **Items.** Item i has a latent vector v_i ~ N(0, I_L) (L = `latent_dim`)
//!   and a popularity b_i ~ N(0, `popularity_scale`²).
//! * **Modalities.** Latent dimension d is *owned* by modality d mod M
//!   (M = `n_modalities`). Modality m sees the latent through its own random
//!   linear map A_m (`modality_dim` x L, entries N(0, 1/L)) after scaling
//!   each dimension by r_m,d = 1 if m owns d, else `weak_reveal`:
//!   x_i^m = normalise(A_m (r_m ⊙ v_i) + `feature_noise` · ε), ε ~ N(0, I),
//!   rows L2-normalised like CLIP features. So each modality reveals its own
//!   part of the latent strongly and the rest weakly. Names are "text",
//!   "image", then "m2", "m3", ...
//! * **Users.** User u has a taste t_u ~ N(0, I_L) and a modality preference
//!   π_u ~ Dirichlet(1, ..., 1) over the M modalities. The affinity is
//!   a_u,i = (1/√L) Σ_d M·π_u,owner(d) · t_u,d · v_i,d + b_i,
//!   so users differ in which modality's content predicts their taste.
//! * **Interactions.** Each user draws `interactions_per_user` distinct items
//!   (capped at `n_items`) from softmax(a_u,· / `temperature`) without
//!   replacement (Gumbel top-k); the draw order is the time order, with
//!   timestamps increasing by 1 minute to 1 day. The split is then
//!   [`leave_one_out_by_time`](super::leave_one_out_by_time): last draw test,
//!   the one before validation. Cold items (no training interaction) arise
//!   naturally among unpopular items; none are forced.
//!
//! Every part draws from its own stream derived from `seed`, so, for example,
//! the item content does not change when only `n_users` does.

use ndarray::Array2;

use super::{Dataset, Interaction, Modality, SplitLabel, leave_one_out_by_time};
use crate::rng::Rng;
use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SyntheticConfig {
    pub n_users: usize,
    pub n_items: usize,
    pub n_modalities: usize,
    pub modality_dim: usize,
    pub latent_dim: usize,
    pub interactions_per_user: usize,
    /// Softmax temperature of the interaction draw: lower is more predictable.
    pub temperature: f64,
    /// Standard deviation of the item popularity term.
    pub popularity_scale: f64,
    /// Standard deviation of the per-feature noise before normalisation.
    pub feature_noise: f64,
    /// How strongly a modality sees latent dimensions it does not own.
    pub weak_reveal: f64,
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            n_users: 300,
            n_items: 500,
            n_modalities: 2,
            modality_dim: 32,
            latent_dim: 8,
            interactions_per_user: 20,
            temperature: 0.6,
            popularity_scale: 0.5,
            feature_noise: 0.5,
            weak_reveal: 0.2,
            seed: 0,
        }
    }
}

impl SyntheticConfig {
    /// Rejects values [`generate`] would have to clamp.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(format!("synthetic data: {m}")));
        if self.n_users == 0 || self.n_items < 3 {
            return bad(format!(
                "need at least 1 user and 3 items, got {} and {}",
                self.n_users, self.n_items
            ));
        }
        if !(3..=self.n_items).contains(&self.interactions_per_user) {
            return bad(format!(
                "interactions_per_user must be in 3..={} (train + valid + test), got {}",
                self.n_items, self.interactions_per_user
            ));
        }
        if self.latent_dim == 0 || self.modality_dim == 0 {
            return bad("latent_dim and modality_dim must be positive".into());
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad(format!(
                "temperature must be positive, got {}",
                self.temperature
            ));
        }
        for (name, v) in [
            ("popularity_scale", self.popularity_scale),
            ("feature_noise", self.feature_noise),
            ("weak_reveal", self.weak_reveal),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be finite and >= 0, got {v}"));
            }
        }
        Ok(())
    }
}

/// What the generator planted, for tests that ask whether a model found it.
#[derive(Clone, Debug)]
pub struct Truth {
    /// n_items x latent_dim.
    pub item_latent: Array2<f32>,
    pub popularity: Vec<f32>,
    /// n_users x latent_dim.
    pub user_taste: Array2<f32>,
    /// n_users x n_modalities, rows sum to 1.
    pub modality_preference: Array2<f32>,
}

impl Truth {
    /// The modality that owns latent dimension `d` (None without modalities).
    pub fn owner(&self, d: usize) -> Option<usize> {
        let m = self.modality_preference.ncols();
        (m > 0).then(|| d % m)
    }

    /// a_u,i from the module docs, for every item.
    pub fn affinities(&self, user: usize) -> Vec<f32> {
        let l = self.item_latent.ncols();
        let m = self.modality_preference.ncols();
        let weights: Vec<f32> = (0..l)
            .map(|d| match self.owner(d) {
                Some(o) => m as f32 * self.modality_preference[[user, o]],
                None => 1.0,
            })
            .collect();
        let taste = self.user_taste.row(user);
        let scale = 1.0 / (l as f32).sqrt();
        self.item_latent
            .rows()
            .into_iter()
            .zip(&self.popularity)
            .map(|(v, b)| {
                let dot: f32 = (0..l).map(|d| weights[d] * taste[d] * v[d]).sum();
                dot * scale + b
            })
            .collect()
    }
}

pub fn generate(cfg: &SyntheticConfig) -> Dataset {
    generate_with_truth(cfg).0
}

// Stream labels, one per part of the process.
const ITEMS: u64 = 1;
const POPULARITY: u64 = 2;
const MAPS: u64 = 3;
const NOISE: u64 = 4;
const USERS: u64 = 5;
const DRAWS: u64 = 6;

/// [`generate`], also returning the planted truth. Out-of-range settings
/// are clamped (see [`SyntheticConfig::check`] to reject them instead).
pub fn generate_with_truth(cfg: &SyntheticConfig) -> (Dataset, Truth) {
    let l = cfg.latent_dim.max(1);
    let mut r = Rng::derive(cfg.seed, &[ITEMS]);
    let item_latent = Array2::from_shape_simple_fn((cfg.n_items, l), || r.normal() as f32);
    let mut r = Rng::derive(cfg.seed, &[POPULARITY]);
    let popularity: Vec<f32> = (0..cfg.n_items)
        .map(|_| (r.normal() * cfg.popularity_scale) as f32)
        .collect();
    let modalities = (0..cfg.n_modalities)
        .map(|m| content_modality(cfg, &item_latent, m))
        .collect();
    let (user_taste, modality_preference) = users(cfg, l);
    let truth = Truth {
        item_latent,
        popularity,
        user_taste,
        modality_preference,
    };
    let mut interactions = draw_interactions(cfg, &truth);
    leave_one_out_by_time(&mut interactions);
    let dataset = Dataset {
        name: "synthetic".into(),
        n_users: cfg.n_users,
        n_items: cfg.n_items,
        interactions,
        modalities,
    };
    (dataset, truth)
}

/// Modality `m`'s features: each latent dimension is owned by one modality,
/// which reveals it fully (the others weakly), through the modality's own
/// random linear map plus noise, L2-normalised like CLIP features.
fn content_modality(cfg: &SyntheticConfig, item_latent: &Array2<f32>, m: usize) -> Modality {
    let (n_items, l) = item_latent.dim();
    let m_count = cfg.n_modalities;
    let dim = cfg.modality_dim.max(1);
    let mut r = Rng::derive(cfg.seed, &[MAPS, m as u64]);
    let map_scale = 1.0 / (l as f64).sqrt();
    let map = Array2::from_shape_simple_fn((dim, l), || r.normal() * map_scale);
    let reveal: Vec<f64> = (0..l)
        .map(|d| {
            if d % m_count == m {
                1.0
            } else {
                cfg.weak_reveal
            }
        })
        .collect();
    let mut noise = Rng::derive(cfg.seed, &[NOISE, m as u64]);
    let mut features = Array2::<f32>::zeros((n_items, dim));
    for (i, mut row) in features.rows_mut().into_iter().enumerate() {
        let seen: Vec<f64> = (0..l)
            .map(|d| reveal[d] * item_latent[[i, d]] as f64)
            .collect();
        let x: Vec<f64> = (0..dim)
            .map(|j| {
                let signal: f64 = (0..l).map(|d| map[[j, d]] * seen[d]).sum();
                signal + cfg.feature_noise * noise.normal()
            })
            .collect();
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        for (out, v) in row.iter_mut().zip(&x) {
            *out = (v / norm) as f32;
        }
    }
    Modality {
        name: modality_name(m),
        features,
    }
}

/// Each user's taste vector and Dirichlet(1, ..., 1) preference over the
/// modalities.
fn users(cfg: &SyntheticConfig, l: usize) -> (Array2<f32>, Array2<f32>) {
    let m_count = cfg.n_modalities;
    let mut user_taste = Array2::<f32>::zeros((cfg.n_users, l));
    let mut modality_preference = Array2::<f32>::zeros((cfg.n_users, m_count));
    for u in 0..cfg.n_users {
        let mut r = Rng::derive(cfg.seed, &[USERS, u as u64]);
        for d in 0..l {
            user_taste[[u, d]] = r.normal() as f32;
        }
        // Dirichlet(1, ..., 1) as normalised Exp(1) draws.
        let e: Vec<f64> = (0..m_count).map(|_| -(1.0 - r.uniform()).ln()).collect();
        let total: f64 = e.iter().sum::<f64>().max(1e-300);
        for (m, x) in e.iter().enumerate() {
            modality_preference[[u, m]] = (x / total) as f32;
        }
    }
    (user_taste, modality_preference)
}

/// Each user's distinct items, drawn from a softmax of affinity +
/// popularity; the draw order is time.
fn draw_interactions(cfg: &SyntheticConfig, truth: &Truth) -> Vec<Interaction> {
    let k = cfg.interactions_per_user.min(cfg.n_items);
    let temperature = if cfg.temperature > 0.0 {
        cfg.temperature
    } else {
        1e-3
    };
    let mut interactions = Vec::with_capacity(cfg.n_users * k);
    for u in 0..cfg.n_users {
        let mut r = Rng::derive(cfg.seed, &[DRAWS, u as u64]);
        // Gumbel top-k: sorting logit + Gumbel noise is sequential sampling
        // from the softmax without replacement, in draw order.
        let mut keys: Vec<(f64, u32)> = truth
            .affinities(u)
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let uni = r.uniform().max(f64::MIN_POSITIVE);
                (a as f64 / temperature - (-uni.ln()).ln(), i as u32)
            })
            .collect();
        keys.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut t = 1_600_000_000 + r.below(10_000_000) as i64;
        for &(_, item) in keys.iter().take(k) {
            interactions.push(Interaction {
                user: u as u32,
                item,
                timestamp: t,
                split: SplitLabel::Train,
            });
            t += 60 + r.below(86_400) as i64;
        }
    }
    interactions
}

fn modality_name(m: usize) -> String {
    match m {
        0 => "text".into(),
        1 => "image".into(),
        _ => format!("m{m}"),
    }
}
