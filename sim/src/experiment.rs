//! Repeated runs: several seeds, a learning-rate search on validation, and
//! the non-learned baselines evaluated by the same evaluator.

use fedmr_core::data::Dataset;
use fedmr_core::model::Catalog;
use fedmr_core::{Error, Result};
use fedmr_data::baselines;
use fedmr_data::eval::{EvalReport, Target, evaluate};

use crate::federation::{Federation, RoundRecord, RunResult, SimConfig};

/// One federation run. `on_round` is called after every round (progress).
pub fn run_once(
    dataset: &Dataset,
    catalog: &Catalog,
    config: SimConfig,
    on_round: impl FnMut(&RoundRecord),
) -> Result<RunResult> {
    Federation::in_process(dataset, catalog.clone(), config)?.run(on_round)
}

/// Client step sizes: the dense learning rate and the item-table one (None = the same).
pub type StepSizes = (f32, Option<f32>);

/// Ranks the step sizes by validation HR@50 (then NDCG@50), best first; test
/// is never looked at for selection. Settings that diverge are left out.
pub fn search_step_sizes(
    dataset: &Dataset,
    catalog: &Catalog,
    base: &SimConfig,
    candidates: &[StepSizes],
    mut on_run: impl FnMut(StepSizes, Result<&RunResult>),
    mut on_round: impl FnMut(&RoundRecord),
) -> Result<Vec<StepSizes>> {
    let mut ranked: Vec<(StepSizes, (f64, f64))> = Vec::new();
    for &(lr, item_lr) in candidates {
        let mut config = base.clone();
        config.train.lr = lr;
        config.train.item_lr = item_lr;
        let result = match run_once(dataset, catalog, config, &mut on_round) {
            Ok(r) => r,
            Err(e @ Error::Diverged { .. }) => {
                on_run((lr, item_lr), Err(e));
                continue;
            }
            Err(e) => return Err(e),
        };
        on_run((lr, item_lr), Ok(&result));
        let v = &result.best_round().valid.all;
        let key = (v.hr_at(50).unwrap_or(0.0), v.ndcg_at(50).unwrap_or(0.0));
        ranked.push(((lr, item_lr), key));
    }
    if ranked.is_empty() {
        return Err(Error::InvalidConfig("every learning rate diverged".into()));
    }
    // Stable: among equal keys the earlier candidate stays first.
    ranked.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    Ok(ranked.into_iter().map(|(s, _)| s).collect())
}

/// Random (one per seed), popularity (ties against the target, like every
/// learned model, and ties broken by item id, as a deployed list does) and
/// cold-first on the test split.
pub fn baseline_reports(dataset: &Dataset, seeds: &[u64]) -> Vec<(String, Vec<EvalReport>)> {
    let users = dataset.users();
    let cold = dataset.cold_items();
    let counts = dataset.train_counts();
    let random = seeds
        .iter()
        .map(|&s| {
            evaluate(
                &users,
                &cold,
                Target::Test,
                baselines::random(dataset.n_items, s),
            )
        })
        .collect();
    vec![
        ("random".to_string(), random),
        (
            "popularity".to_string(),
            vec![evaluate(
                &users,
                &cold,
                Target::Test,
                baselines::popularity(&counts),
            )],
        ),
        (
            "popularity (ties by id)".to_string(),
            vec![evaluate(
                &users,
                &cold,
                Target::Test,
                baselines::popularity_by_id(&counts),
            )],
        ),
        (
            "cold-first".to_string(),
            vec![evaluate(
                &users,
                &cold,
                Target::Test,
                baselines::cold_first(&counts),
            )],
        ),
    ]
}
