//! What a curious server learns from the uploads it receives, measured on
//! exactly what a real server was sent: `ledger` keeps every upload of a
//! federation over HTTP, `attacks` run on them, `metrics` score each
//! attack against each user's real training items beside what guessing
//! scores for the same user.
//!
//! Measured today (undefended): one upload's rows split into positives and
//! negatives (attack 1), the rows that recur across a user's rounds
//! (attack 2), and the history length in the declared sample count
//! (attack 3), and the private router's MLP-vs-Gate balance from the size
//! of each expert's change in the dense update (attack 4). Not yet: Yuan et
//! al.'s interaction-level membership inference.

mod attacks;
mod defences;
mod ledger;
mod metrics;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use std::ops::Range;

use fedmr_core::Result;
use fedmr_core::data::UserData;
use fedmr_core::model::{Expert, Fusion};
use fedmr_core::secagg::Layout;

pub use attacks::{
    direction_scores, history_length, mean_direction_scores, mlp_share_estimate, recurrence_scores,
};
pub use defences::{DefenceRun, epsilon, parse_defence, table};
pub use ledger::{Ledger, Observed};
pub use metrics::{SetScores, Spread, auc};

use crate::federation::Rounds;
use crate::http::HttpFederation;

/// Each attack's figures over the users (or uploads) it applies to.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PrivacyReport {
    pub users: usize,
    pub uploads: usize,
    /// Attack 1: AUC of positive vs sampled negative among one upload's
    /// rows, per upload (guessing: 0.5).
    pub one_upload_auc: Spread,
    /// Attack 2: AUC over the whole catalog of the share of a user's
    /// uploads that touched an item, per user with two uploads or more
    /// (guessing: 0.5).
    pub across_rounds_auc: Spread,
    /// Attack 2: the items in every one of a user's uploads, taken as their
    /// positives: precision, recall and F1 per user...
    pub across_rounds_precision: Spread,
    pub across_rounds_recall: Spread,
    pub across_rounds_f1: Spread,
    /// ...and what guessing as many items scores in expectation.
    pub across_rounds_guess_f1: Spread,
    /// Attack 2 by direction: AUC over the whole catalog of attack 1's
    /// score averaged over the user's uploads (guessing: 0.5).
    pub across_rounds_direction_auc: Spread,
    /// Attack 3: share of uploads whose sample count gives the user's
    /// history length exactly...
    pub history_exact: f64,
    /// ...and of uploads whose user has the mean history length (what a
    /// server that knows only the population guesses).
    pub history_guess_exact: f64,
    /// Attack 4: Pearson correlation, over users, between the MLP expert's
    /// share of (MLP + Gate) in the user's router and its estimate from the
    /// user's last upload (guessing: 0); `None` without both experts.
    pub router_correlation: Option<f64>,
    /// Mean number of values (f32) an upload carries: item rows and dense.
    pub upload_values: f64,
    /// Mean number of item rows an upload carries.
    pub upload_rows: f64,
    /// Mean framed size of an upload.
    pub upload_bytes: f64,
    /// L2 norm of the uploads (what a DP clip bound is set against).
    pub upload_norm: Spread,
}

/// Runs `rounds` rounds of `federation` with the server's uploads kept,
/// then every attack on them.
pub fn measure(
    federation: &mut HttpFederation,
    users: &[UserData],
    n_items: usize,
    rounds: usize,
) -> Result<PrivacyReport> {
    let ledger = Arc::new(
        match federation.config().train.protection.secure_aggregation {
            Some(config) => {
                Ledger::reading_masked(Layout::of(&federation.published_global()), config)
            }
            None => Ledger::default(),
        },
    );
    federation.observe_uploads(ledger.clone());
    for round in 0..rounds {
        federation.round(round)?;
    }
    ledger.close();
    let negatives = federation.config().train.negatives;
    let uploads = ledger.uploads();
    let mut report = analyse(&uploads, users, n_items, negatives);
    if let Fusion::Mffm(mffm) = federation.published_global().fusion() {
        let weights = federation.router_weights()?;
        let truth: HashMap<usize, Vec<f32>> =
            federation.phone_users().into_iter().zip(weights).collect();
        report.router_correlation =
            router_correlation(&uploads, &mffm.experts, &mffm.expert_ranges(), &truth);
    }
    Ok(report)
}

/// Attack 4 over every user's last upload against their router now.
fn router_correlation(
    uploads: &[Observed],
    experts: &[Expert],
    ranges: &[(Expert, Range<usize>)],
    truth: &HashMap<usize, Vec<f32>>,
) -> Option<f64> {
    let position = |e: Expert| experts.iter().position(|&x| x == e);
    let range = |e: Expert| ranges.iter().find(|(x, _)| *x == e).map(|(_, r)| r.clone());
    let (mlp, gate) = (position(Expert::Mlp)?, position(Expert::Gate)?);
    let (mlp_range, gate_range) = (range(Expert::Mlp)?, range(Expert::Gate)?);
    let mut last: HashMap<usize, &Observed> = HashMap::new();
    for o in uploads {
        if let Some(u) = user_of(&o.client) {
            last.insert(u, o);
        }
    }
    let (mut estimated, mut actual) = (Vec::new(), Vec::new());
    for (u, o) in last {
        let Some(w) = truth.get(&u) else { continue };
        let total = f64::from(w[mlp] + w[gate]);
        if total > 0.0 {
            estimated.push(mlp_share_estimate(
                &o.message.dense,
                &mlp_range,
                &gate_range,
            ));
            actual.push(f64::from(w[mlp]) / total);
        }
    }
    pearson(&estimated, &actual)
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    if x.len() < 3 {
        return None;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    (vx > 0.0 && vy > 0.0).then(|| cov / (vx * vy).sqrt())
}

/// The phone's user index from its client id (`phone-<user>`).
fn user_of(client: &str) -> Option<usize> {
    client.strip_prefix("phone-")?.parse().ok()
}

/// Every attack on `uploads`, scored against `users[u].train`.
pub fn analyse(
    uploads: &[Observed],
    users: &[UserData],
    n_items: usize,
    negatives: usize,
) -> PrivacyReport {
    let truth: Vec<HashSet<u32>> = users
        .iter()
        .map(|u| u.train.iter().copied().collect())
        .collect();
    let mut by_user: HashMap<usize, Vec<&Observed>> = HashMap::new();
    for o in uploads {
        if let Some(u) = user_of(&o.client).filter(|&u| u < users.len()) {
            by_user.entry(u).or_default().push(o);
        }
    }

    let mut one_upload = Vec::new();
    for (&u, list) in &by_user {
        for o in list {
            let labels: Vec<bool> = o
                .message
                .item_ids
                .iter()
                .map(|i| truth[u].contains(i))
                .collect();
            one_upload.extend(auc(&direction_scores(&o.message), &labels));
        }
    }

    let mut across = AcrossRounds::default();
    for (&u, list) in &by_user {
        if list.len() >= 2 {
            across.add(list, &truth[u], n_items);
        }
    }

    let mean_length =
        truth.iter().map(HashSet::len).sum::<usize>() as f64 / truth.len().max(1) as f64;
    let (mut exact, mut guess_exact, mut total) = (0usize, 0usize, 0usize);
    for (&u, list) in &by_user {
        let length = truth[u].len() as f64;
        for o in list {
            total += 1;
            exact +=
                usize::from((history_length(o.message.samples, negatives) - length).abs() < 0.5);
            guess_exact += usize::from((mean_length.round() - length).abs() < 0.5);
        }
    }
    let values: usize = uploads
        .iter()
        .map(|o| o.message.item_rows.len() + o.message.dense.len())
        .sum();
    let bytes: usize = uploads.iter().map(|o| o.bytes).sum();
    let norms: Vec<f64> = uploads.iter().map(|o| l2_norm(&o.message)).collect();

    PrivacyReport {
        users: by_user.len(),
        uploads: uploads.len(),
        one_upload_auc: Spread::of(&one_upload),
        across_rounds_auc: Spread::of(&across.auc),
        across_rounds_precision: Spread::of(&across.precision),
        across_rounds_recall: Spread::of(&across.recall),
        across_rounds_f1: Spread::of(&across.f1),
        across_rounds_guess_f1: Spread::of(&across.guess_f1),
        across_rounds_direction_auc: Spread::of(&across.direction_auc),
        history_exact: exact as f64 / total.max(1) as f64,
        history_guess_exact: guess_exact as f64 / total.max(1) as f64,
        router_correlation: None,
        upload_values: values as f64 / uploads.len().max(1) as f64,
        upload_rows: uploads
            .iter()
            .map(|o| o.message.item_ids.len() as f64)
            .sum::<f64>()
            / uploads.len().max(1) as f64,
        upload_bytes: bytes as f64 / uploads.len().max(1) as f64,
        upload_norm: Spread::of(&norms),
    }
}

fn l2_norm(message: &fedmr_core::wire::UpdateMessage) -> f64 {
    message
        .item_rows
        .iter()
        .chain(&message.dense)
        .map(|&v| f64::from(v).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Attack 2's per-user figures.
#[derive(Default)]
struct AcrossRounds {
    auc: Vec<f64>,
    precision: Vec<f64>,
    recall: Vec<f64>,
    f1: Vec<f64>,
    guess_f1: Vec<f64>,
    direction_auc: Vec<f64>,
}

impl AcrossRounds {
    fn add(&mut self, list: &[&Observed], truth: &HashSet<u32>, n_items: usize) {
        let messages: Vec<_> = list.iter().map(|o| &o.message).collect();
        let scores = recurrence_scores(&messages, n_items);
        let labels: Vec<bool> = (0..n_items as u32).map(|i| truth.contains(&i)).collect();
        if let Some(a) = auc(&scores, &labels) {
            self.auc.push(a);
        }
        if let Some(a) = auc(&mean_direction_scores(&messages, n_items), &labels) {
            self.direction_auc.push(a);
        }
        let guessed: HashSet<u32> = (0..n_items as u32)
            .filter(|&i| scores[i as usize] >= 1.0)
            .collect();
        let s = SetScores::of(&guessed, truth);
        self.precision.push(s.precision);
        self.recall.push(s.recall);
        self.f1.push(s.f1);
        self.guess_f1
            .push(SetScores::guessing(guessed.len(), truth.len(), n_items).f1);
    }
}

impl std::fmt::Display for PrivacyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} users, {} uploads ({:.0} values, {:.0} bytes each; L2 norm {})",
            self.users, self.uploads, self.upload_values, self.upload_bytes, self.upload_norm
        )?;
        writeln!(f, "| attack | figure (mean ± std [min, max]) | guessing |")?;
        writeln!(f, "|---|---|---|")?;
        writeln!(
            f,
            "| 1. one upload: positives vs negatives | AUC {} | 0.500 |",
            self.one_upload_auc
        )?;
        writeln!(
            f,
            "| 2. across rounds: item recurrence | AUC {} | 0.500 |",
            self.across_rounds_auc
        )?;
        writeln!(
            f,
            "| 2. across rounds: in every upload = positive | precision {}, recall {}, F1 {} | F1 {} |",
            self.across_rounds_precision,
            self.across_rounds_recall,
            self.across_rounds_f1,
            self.across_rounds_guess_f1
        )?;
        writeln!(
            f,
            "| 2. across rounds: mean direction score | AUC {} | 0.500 |",
            self.across_rounds_direction_auc
        )?;
        writeln!(
            f,
            "| 3. sample count: history length exact | {:.3} of uploads | {:.3} |",
            self.history_exact, self.history_guess_exact
        )?;
        match self.router_correlation {
            Some(r) => write!(
                f,
                "| 4. router: MLP vs Gate share from the dense change | correlation {r:.3} | 0 |"
            ),
            None => write!(
                f,
                "| 4. router | not applicable (needs the MLP and Gate experts) | |"
            ),
        }
    }
}
