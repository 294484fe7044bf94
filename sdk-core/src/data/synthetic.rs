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
    let n_items = cfg.n_items;
    let l = cfg.latent_dim.max(1);
    let m_count = cfg.n_modalities;
    let dim = cfg.modality_dim.max(1);
    let k = cfg.interactions_per_user.min(n_items);
    let temperature = if cfg.temperature > 0.0 {
        cfg.temperature
    } else {
        1e-3
    };
    let seed = cfg.seed;

    let mut r = Rng::derive(seed, &[ITEMS]);
    let item_latent = Array2::from_shape_simple_fn((n_items, l), || r.normal() as f32);
    let mut r = Rng::derive(seed, &[POPULARITY]);
    let popularity: Vec<f32> = (0..n_items)
        .map(|_| (r.normal() * cfg.popularity_scale) as f32)
        .collect();

    let modalities = (0..m_count)
        .map(|m| {
            let mut r = Rng::derive(seed, &[MAPS, m as u64]);
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
            let mut noise = Rng::derive(seed, &[NOISE, m as u64]);
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
        })
        .collect();

    let mut user_taste = Array2::<f32>::zeros((cfg.n_users, l));
    let mut modality_preference = Array2::<f32>::zeros((cfg.n_users, m_count));
    for u in 0..cfg.n_users {
        let mut r = Rng::derive(seed, &[USERS, u as u64]);
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
    let truth = Truth {
        item_latent,
        popularity,
        user_taste,
        modality_preference,
    };

    let mut interactions = Vec::with_capacity(cfg.n_users * k);
    for u in 0..cfg.n_users {
        let mut r = Rng::derive(seed, &[DRAWS, u as u64]);
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
    leave_one_out_by_time(&mut interactions);

    let dataset = Dataset {
        name: "synthetic".into(),
        n_users: cfg.n_users,
        n_items,
        interactions,
        modalities,
    };
    (dataset, truth)
}

fn modality_name(m: usize) -> String {
    match m {
        0 => "text".into(),
        1 => "image".into(),
        _ => format!("m{m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Target, evaluate, rank_of};

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (*x as f64) * (*y as f64))
            .sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        dot / (na * nb).max(1e-12)
    }

    fn pearson(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
        let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
        cov / (vx * vy).sqrt()
    }

    fn small() -> SyntheticConfig {
        SyntheticConfig {
            n_users: 60,
            n_items: 120,
            seed: 11,
            ..Default::default()
        }
    }

    #[test]
    fn same_seed_same_data_and_other_seed_differs() {
        let (a, b) = (generate(&small()), generate(&small()));
        assert_eq!(a.interactions, b.interactions);
        for (x, y) in a.modalities.iter().zip(&b.modalities) {
            assert_eq!(x.features, y.features);
        }
        let c = generate(&SyntheticConfig {
            seed: 12,
            ..small()
        });
        assert_ne!(a.interactions, c.interactions);
        assert_ne!(a.modalities[0].features, c.modalities[0].features);
    }

    #[test]
    fn item_content_does_not_depend_on_the_user_count() {
        let a = generate(&small());
        let b = generate(&SyntheticConfig {
            n_users: 7,
            ..small()
        });
        assert_eq!(a.modalities[1].features, b.modalities[1].features);
    }

    #[test]
    fn shapes_names_and_validity() {
        let cfg = SyntheticConfig {
            n_modalities: 3,
            modality_dim: 16,
            ..small()
        };
        assert!(cfg.check().is_ok());
        let d = generate(&cfg);
        assert!(d.validate().is_ok());
        assert_eq!((d.n_users, d.n_items), (60, 120));
        assert_eq!(d.interactions.len(), 60 * 20);
        let names: Vec<&str> = d.modalities.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["text", "image", "m2"]);
        assert_eq!(d.modality_dims(), [16, 16, 16]);
        let norm: f32 = d.modalities[2].features.row(5).iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4, "rows are L2-normalised: {norm}");
    }

    #[test]
    fn every_user_has_train_valid_test_in_time_order() {
        let d = generate(&SyntheticConfig::default());
        let users = d.users();
        assert_eq!(users.len(), 300);
        for (u, data) in users.iter().enumerate() {
            assert_eq!(data.train.len(), 18, "user {u}");
            let (v, t) = (data.valid.unwrap(), data.test.unwrap());
            assert!(v != t && !data.train.contains(&v) && !data.train.contains(&t));
        }
        let last_train = |u: u32| {
            d.interactions
                .iter()
                .filter(|i| i.user == u && i.split == SplitLabel::Train)
                .map(|i| i.timestamp)
                .max()
        };
        let test_time = d
            .interactions
            .iter()
            .find(|i| i.user == 0 && i.split == SplitLabel::Test)
            .map(|i| i.timestamp);
        assert!(last_train(0) < test_time);
    }

    #[test]
    fn modality_similarity_tracks_latent_similarity_and_each_sees_its_own_part() {
        let (d, truth) = generate_with_truth(&SyntheticConfig::default());
        let mut r = Rng::new(99);
        let pairs: Vec<(usize, usize)> = (0..3000)
            .map(|_| (r.below(500) as usize, r.below(500) as usize))
            .filter(|(i, j)| i != j)
            .collect();
        let latent = |i: usize, own: Option<usize>| -> Vec<f32> {
            let row = truth.item_latent.row(i);
            (0..row.len())
                .filter(|&dd| own.is_none() || truth.owner(dd) == own)
                .map(|dd| row[dd])
                .collect()
        };
        let sims = |own: Option<usize>| -> Vec<f64> {
            pairs
                .iter()
                .map(|&(i, j)| cosine(&latent(i, own), &latent(j, own)))
                .collect()
        };
        let (full, part0, part1) = (sims(None), sims(Some(0)), sims(Some(1)));
        for (m, modality) in d.modalities.iter().enumerate() {
            let feats: Vec<f64> = pairs
                .iter()
                .map(|&(i, j)| {
                    let f = &modality.features;
                    cosine(f.row(i).as_slice().unwrap(), f.row(j).as_slice().unwrap())
                })
                .collect();
            let (rf, r0, r1) = (
                pearson(&feats, &full),
                pearson(&feats, &part0),
                pearson(&feats, &part1),
            );
            eprintln!("modality {m}: r(full) {rf:.3} r(own0) {r0:.3} r(own1) {r1:.3}");
            assert!(rf > 0.3, "modality {m}: {rf}");
            let (own, other) = if m == 0 { (r0, r1) } else { (r1, r0) };
            assert!(own > other + 0.2, "modality {m}: own {own} other {other}");
        }
    }

    /// A content-only scorer for one modality: similarity to the mean of the
    /// user's training items' features.
    fn content_ranks(d: &Dataset, m: usize) -> Vec<f64> {
        let f = &d.modalities[m].features;
        d.users()
            .iter()
            .map(|data| {
                let mut profile = vec![0.0f32; f.ncols()];
                for &i in &data.train {
                    for (p, x) in profile.iter_mut().zip(f.row(i as usize)) {
                        *p += x;
                    }
                }
                let scores: Vec<f32> = f
                    .rows()
                    .into_iter()
                    .map(|row| row.iter().zip(&profile).map(|(a, b)| a * b).sum())
                    .collect();
                [data.valid, data.test]
                    .iter()
                    .flatten()
                    .map(|&t| rank_of(&scores, t, &data.train).rank as f64)
                    .sum::<f64>()
                    / 2.0
            })
            .collect()
    }

    #[test]
    fn users_differ_in_which_modality_predicts_them() {
        let cfg = SyntheticConfig {
            n_users: 400,
            ..Default::default()
        };
        let (d, truth) = generate_with_truth(&cfg);
        let (text, image) = (content_ranks(&d, 0), content_ranks(&d, 1));
        // Mean advantage (in rank) of text over image content, per user group.
        let advantage = |keep: &dyn Fn(f32) -> bool| {
            let idx: Vec<usize> = (0..cfg.n_users)
                .filter(|&u| keep(truth.modality_preference[[u, 0]]))
                .collect();
            idx.iter().map(|&u| image[u] - text[u]).sum::<f64>() / idx.len() as f64
        };
        let (text_lovers, image_lovers) = (advantage(&|p| p > 0.75), advantage(&|p| p < 0.25));
        eprintln!(
            "text-over-image rank advantage: text lovers {text_lovers:.1}, image lovers {image_lovers:.1}"
        );
        assert!(text_lovers > 5.0 && image_lovers < -5.0);
    }

    #[test]
    fn true_affinity_beats_popularity() {
        let (d, truth) = generate_with_truth(&SyntheticConfig::default());
        let users = d.users();
        let cold = d.cold_items();
        let counts = d.train_counts();
        let oracle = evaluate(&users, &cold, Target::Test, |u| truth.affinities(u));
        let pop = evaluate(&users, &cold, Target::Test, |_| {
            counts.iter().map(|&c| c as f32).collect()
        });
        let (o, p) = (oracle.all.hr_at(10).unwrap(), pop.all.hr_at(10).unwrap());
        eprintln!(
            "HR@10 oracle {o:.3} popularity {p:.3}; cold items {}",
            cold.iter().filter(|&&c| c).count()
        );
        assert!(o > p + 0.1, "oracle {o} popularity {p}");
    }

    #[test]
    fn check_rejects_degenerate_settings_and_generate_clamps() {
        let bad = [
            SyntheticConfig {
                interactions_per_user: 2,
                ..small()
            },
            SyntheticConfig {
                interactions_per_user: 121,
                ..small()
            },
            SyntheticConfig {
                temperature: 0.0,
                ..small()
            },
            SyntheticConfig {
                latent_dim: 0,
                ..small()
            },
            SyntheticConfig {
                feature_noise: f64::NAN,
                ..small()
            },
        ];
        for cfg in &bad {
            assert!(
                matches!(cfg.check(), Err(Error::InvalidConfig(_))),
                "{cfg:?}"
            );
        }
        let d = generate(&SyntheticConfig {
            n_items: 10,
            interactions_per_user: 50,
            latent_dim: 0,
            ..small()
        });
        assert_eq!(d.interactions.len(), 60 * 10);
        assert!(d.validate().is_ok());
    }
}
