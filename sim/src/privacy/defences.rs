//! The defences `fedmr-sim privacy` measures, by name, and the table that
//! puts each beside its attacks, its privacy budget and its quality.

use fedmr_core::privacy::{Protection, RdpAccountant};

use super::PrivacyReport;
use super::metrics::Spread;

/// A defence by name (`Protection::preset`).
pub fn parse_defence(name: &str, clip: f32) -> Result<Protection, String> {
    Protection::preset(name, clip).map_err(|e| e.to_string())
}

/// One federation run under one defence.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DefenceRun {
    pub defence: String,
    pub seed: u64,
    pub report: PrivacyReport,
    /// Rounds the most active user uploaded in.
    pub rounds_taken_part: u64,
    /// Local DP's epsilon at `delta` over those rounds (None without DP).
    pub epsilon: Option<f64>,
    pub delta: f64,
    /// Test HR@50 and NDCG@50 (%) at the best validation round, when trained to the end.
    pub test_hr50: Option<f64>,
    pub test_ndcg50: Option<f64>,
}

/// Epsilon spent at `delta` by `rounds` releases under `protection`.
pub fn epsilon(protection: &Protection, rounds: u64, delta: f64) -> Option<f64> {
    let dp = protection.local_dp?;
    let mut accountant = RdpAccountant::default();
    (0..rounds).for_each(|_| accountant.spend_gaussian(dp.noise_to_sensitivity()));
    Some(accountant.epsilon(delta))
}

/// The privacy–utility table: one line per defence, each figure as mean ±
/// std over the seeds (min and max are in the JSON).
pub fn table(runs: &[DefenceRun]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        if !names.contains(&r.defence.as_str()) {
            names.push(&r.defence);
        }
    }
    let mut out = String::from(
        "| defence | seeds | 1. one upload AUC | 2. recurrence AUC | 2. mean direction AUC | 2. F1 (guessing) | 3. history exact (guessing) | 4. router correlation | epsilon (delta) | test HR@50 | test NDCG@50 | bytes / upload |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for name in names {
        let of: Vec<&DefenceRun> = runs.iter().filter(|r| r.defence == name).collect();
        // Mean ± std over the seeds at `digits` decimals ("—" when absent).
        let spread = |digits: usize, f: &dyn Fn(&DefenceRun) -> Option<f64>| {
            let values: Vec<f64> = of.iter().filter_map(|r| f(r)).collect();
            if values.is_empty() {
                "—".to_string()
            } else {
                let s = Spread::of(&values);
                format!("{:.digits$} ± {:.digits$}", s.mean, s.std)
            }
        };
        let col = |f: &dyn Fn(&DefenceRun) -> Option<f64>| spread(3, f);
        let pct = |f: &dyn Fn(&DefenceRun) -> Option<f64>| spread(2, f);
        let epsilon = match of[0].epsilon {
            None => "∞ (no DP)".to_string(),
            Some(_) => {
                let rounds = of.iter().map(|r| r.rounds_taken_part);
                let (lo, hi) = (rounds.clone().min(), rounds.max());
                format!(
                    "{} (delta {:.1e}, {}–{} rounds)",
                    col(&|r| r.epsilon),
                    of[0].delta,
                    lo.unwrap_or(0),
                    hi.unwrap_or(0)
                )
            }
        };
        let bytes: Vec<f64> = of.iter().map(|r| r.report.upload_bytes).collect();
        let bytes = format!("{:.0}", Spread::of(&bytes).mean);
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} ({}) | {} ({}) | {} | {epsilon} | {} | {} | {} |\n",
            of.len(),
            col(&|r| Some(r.report.one_upload_auc.mean)),
            col(&|r| Some(r.report.across_rounds_auc.mean)),
            col(&|r| Some(r.report.across_rounds_direction_auc.mean)),
            col(&|r| Some(r.report.across_rounds_f1.mean)),
            col(&|r| Some(r.report.across_rounds_guess_f1.mean)),
            col(&|r| Some(r.report.history_exact)),
            col(&|r| Some(r.report.history_guess_exact)),
            col(&|r| r.report.router_correlation),
            pct(&|r| r.test_hr50),
            pct(&|r| r.test_ndcg50),
            bytes,
        ));
    }
    out
}
