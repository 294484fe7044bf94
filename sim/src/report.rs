//! Tables and files: what a run prints and writes.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use fedmr_data::eval::{EvalReport, Metrics};

use crate::federation::RunResult;

/// The metrics every table shows, as (label, getter).
type Getter = fn(&Metrics) -> f64;

pub const COLUMNS: [(&str, Getter); 4] = [
    ("HR@10", |m| m.hr_at(10).unwrap_or(f64::NAN)),
    ("HR@20", |m| m.hr_at(20).unwrap_or(f64::NAN)),
    ("HR@50", |m| m.hr_at(50).unwrap_or(f64::NAN)),
    ("NDCG@50", |m| m.ndcg_at(50).unwrap_or(f64::NAN)),
];

/// "mean ± std (min–max)" of fractions, in percent (sample std over runs;
/// just the value for one run).
pub fn mean_std(values: &[f64]) -> String {
    mean_std_scaled(values, 100.0)
}

fn mean_std_scaled(values: &[f64], scale: f64) -> String {
    let n = values.len() as f64;
    // + 0.0: an empty float sum is -0.0, which would print as "-0.00".
    let mean = values.iter().sum::<f64>() / n + 0.0;
    if values.len() < 2 {
        return format!("{:.2}", scale * mean);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min) + 0.0;
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 0.0;
    format!(
        "{:.2} ± {:.2} ({:.2}–{:.2})",
        scale * mean,
        scale * var.sqrt(),
        scale * min,
        scale * max
    )
}

/// One Markdown row: every column for all users, then HR@50 / NDCG@50 for
/// cold-target and warm-target users.
pub fn table_row(name: &str, detail: &str, reports: &[EvalReport]) -> String {
    let mut row = format!("| {name} | {detail} |");
    for (_, get) in COLUMNS {
        let v: Vec<f64> = reports.iter().map(|r| get(&r.all)).collect();
        write!(row, " {} |", mean_std(&v)).unwrap();
    }
    for group in [
        |r: &EvalReport| r.cold.clone(),
        |r: &EvalReport| r.warm.clone(),
    ] {
        let hr: Vec<f64> = reports
            .iter()
            .map(|r| group(r).hr_at(50).unwrap_or(f64::NAN))
            .collect();
        let nd: Vec<f64> = reports
            .iter()
            .map(|r| group(r).ndcg_at(50).unwrap_or(f64::NAN))
            .collect();
        write!(row, " {} / {} |", mean_std(&hr), mean_std(&nd)).unwrap();
    }
    let ties: Vec<f64> = reports.iter().map(|r| r.all.mean_ties).collect();
    write!(row, " {} |", mean_std_scaled(&ties, 1.0)).unwrap();
    row
}

pub fn table_header(first: &EvalReport) -> String {
    let cols: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    format!(
        "| model | setting | {} | cold users ({}) HR@50 / NDCG@50 | warm users ({}) HR@50 / NDCG@50 | ties |\n|{}",
        cols.join(" | "),
        first.cold.users,
        first.warm.users,
        "---|".repeat(cols.len() + 5)
    )
}

/// rounds.csv and result.json in `dir`.
pub fn write_run(dir: &Path, result: &RunResult) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut csv = String::from(
        "round,clients,train_loss,seconds,update_norm_p50,update_norm_p99,update_norm_max",
    );
    for split in ["valid", "test"] {
        for group in ["all", "cold", "warm"] {
            for (label, _) in COLUMNS {
                write!(
                    csv,
                    ",{split}_{group}_{}",
                    label.to_lowercase().replace('@', "")
                )
                .unwrap();
            }
        }
    }
    // Under the new-item split: how the held-out new items rank each round
    // (validation half first: what a choice among settings may look at).
    let new_items = result.rounds.iter().any(|r| r.new_items.is_some());
    if new_items {
        for half in ["valid", "test"] {
            for among in ["all", "new"] {
                write!(
                    csv,
                    ",new_{half}_among_{among}_hr50,new_{half}_among_{among}_ndcg50"
                )
                .unwrap();
            }
        }
    }
    csv.push('\n');
    for r in &result.rounds {
        // Norms the federation did not see are left empty, not written as 0.
        let norms = r.update_norms.map_or_else(
            || ",,".to_string(),
            |[p50, p99, max]| format!("{p50:.6},{p99:.6},{max:.6}"),
        );
        write!(
            csv,
            "{},{},{:.6},{:.3},{norms}",
            r.round, r.clients, r.train_loss, r.seconds,
        )
        .unwrap();
        for report in [&r.valid, &r.test] {
            for m in [&report.all, &report.cold, &report.warm] {
                for (_, get) in COLUMNS {
                    write!(csv, ",{:.6}", get(m)).unwrap();
                }
            }
        }
        if new_items {
            let e = r.new_items.clone().unwrap_or_default();
            for m in [
                &e.valid.among_all,
                &e.valid.among_new,
                &e.test.among_all,
                &e.test.among_new,
            ] {
                let (hr, ndcg) = (m.hr_at(50), m.ndcg_at(50));
                write!(
                    csv,
                    ",{:.6},{:.6}",
                    hr.unwrap_or(f64::NAN),
                    ndcg.unwrap_or(f64::NAN)
                )
                .unwrap();
            }
        }
        csv.push('\n');
    }
    fs::write(dir.join("rounds.csv"), csv)?;
    fs::write(
        dir.join("result.json"),
        serde_json::to_string_pretty(result).map_err(std::io::Error::other)?,
    )
}

/// Writes `router_weights.csv` and `router_weights.png` (each user's router
/// weights after training) for a run whose model has a router, and returns
/// the spread of the weights across users as a markdown table and a line.
pub fn write_router_view(
    dir: &Path,
    result: &RunResult,
    title: &str,
) -> Result<Option<String>, String> {
    use crate::router_plot::{
        RouterWeights, spread, spread_markdown, summary, write_csv, write_png,
    };
    use fedmr_core::model::FusionMode;
    let experts = match &result.config.model.fusion {
        FusionMode::Mffm { experts, .. } | FusionMode::Residual { experts, .. } => experts,
        FusionMode::IdOnly => return Ok(None),
    };
    if experts.len() < 2 || result.router_weights.is_empty() {
        return Ok(None);
    }
    let weights = RouterWeights {
        experts: experts
            .iter()
            .map(|e| format!("{e:?}").to_lowercase())
            .collect(),
        users: result.router_weights.clone(),
    };
    let err = |e: crate::router_plot::RouterPlotError| e.to_string();
    write_csv(&weights, &dir.join("router_weights.csv")).map_err(err)?;
    write_png(&weights, &dir.join("router_weights.png"), title).map_err(err)?;
    let table = spread_markdown(&spread(&weights).map_err(err)?);
    Ok(Some(format!(
        "{table}\n{}",
        summary(&weights).map_err(err)?
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_users_prints_zero_not_minus_zero() {
        assert_eq!(
            mean_std(&[Metrics::from_ranks(&[]).hr_at(50).unwrap()]),
            "0.00"
        );
    }

    #[test]
    fn several_runs_print_mean_std_min_and_max() {
        assert_eq!(mean_std(&[0.1, 0.3]), "20.00 ± 14.14 (10.00–30.00)");
        assert_eq!(mean_std(&[0.25]), "25.00");
    }
}
