//! The synthetic generator against its planted truth, judged with the
//! evaluation protocol (which lives here, on the research side).

use fedmr_core::Error;
use fedmr_core::data::synthetic::*;
use fedmr_core::data::{Dataset, SplitLabel};
use fedmr_core::rng::Rng;
use fedmr_data::eval::{Target, evaluate, rank_of};

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
