//! The new-item protocol's table: how held-out new items rank (among all
//! items and among the new ones), with the same model's figures on the old
//! items beside them, and the non-learned baselines that can rank new items.

use std::fmt::Write as _;

use fedmr_data::baselines;
use fedmr_data::eval::{EvalReport, Metrics, Target, evaluate};

use crate::new_items::{NewItemEval, NewItemSplit};
use crate::report::mean_std;

/// Neighbours content-kNN sums over.
pub const KNN_NEIGHBOURS: usize = 10;

pub fn header(split: &NewItemSplit) -> String {
    format!(
        "| model | setting | new items among all: HR@10 | HR@50 | NDCG@50 | among the {} new items: HR@10 | HR@50 | NDCG@50 | old items (leave-one-out test): HR@50 | NDCG@50 |\n|{}",
        split.n_new(),
        "---|".repeat(10)
    )
}

/// One row: the test half of the new items, then the old items' test.
pub fn row(name: &str, detail: &str, new: &[NewItemEval], old: &[EvalReport]) -> String {
    let mut row = format!("| {name} | {detail} |");
    let groups: [fn(&NewItemEval) -> &Metrics; 2] = [|e| &e.test.among_all, |e| &e.test.among_new];
    for get in groups {
        for (k, hr) in [(10, true), (50, true), (50, false)] {
            let v: Vec<f64> = new
                .iter()
                .map(|e| {
                    if hr {
                        get(e).hr_at(k)
                    } else {
                        get(e).ndcg_at(k)
                    }
                    .unwrap_or(f64::NAN)
                })
                .collect();
            write!(row, " {} |", mean_std(&v)).unwrap();
        }
    }
    let old_hr: Vec<f64> = old
        .iter()
        .map(|r| r.all.hr_at(50).unwrap_or(f64::NAN))
        .collect();
    let old_ndcg: Vec<f64> = old
        .iter()
        .map(|r| r.all.ndcg_at(50).unwrap_or(f64::NAN))
        .collect();
    write!(row, " {} | {} |", mean_std(&old_hr), mean_std(&old_ndcg)).unwrap();
    row
}

/// Random (one per seed), popularity (ties by id: new items have no count,
/// so among them it is the id order) and content-kNN, each on the new items
/// and on the old items' test targets.
pub fn baselines(
    split: &NewItemSplit,
    seeds: &[u64],
) -> Vec<(String, Vec<NewItemEval>, Vec<EvalReport>)> {
    let users = split.training.users();
    let cold = split.training.cold_items();
    let n = split.full_catalog.n_items;
    let history = |u: usize| users[u].train.clone();
    let mut counts = split.training.train_counts();
    counts.resize(n, 0);
    let histories: Vec<Vec<u32>> = users.iter().map(|u| u.train.clone()).collect();

    let old = |scorer: &mut dyn FnMut(usize) -> Vec<f32>| {
        // The old items' evaluation sees the old catalog only.
        evaluate(&users, &cold, Target::Test, |u| {
            let mut s = scorer(u);
            s.truncate(split.n_old);
            s
        })
    };
    let mut rows = Vec::new();
    let (mut new_random, mut old_random) = (Vec::new(), Vec::new());
    for &seed in seeds {
        let mut random = baselines::random(n, seed);
        new_random.push(split.evaluate(|u| Some(random(u)), history));
        old_random.push(old(&mut random));
    }
    rows.push(("random".to_string(), new_random, old_random));

    let mut popularity = baselines::popularity_by_id(&counts);
    let new_pop = split.evaluate(|u| Some(popularity(u)), history);
    rows.push((
        "popularity (ties by id)".to_string(),
        vec![new_pop],
        vec![old(&mut popularity)],
    ));

    let mut knn = baselines::content_knn(&split.full_catalog.features, histories, KNN_NEIGHBOURS);
    let new_knn = split.evaluate(|u| Some(knn(u)), history);
    rows.push((
        format!("content-kNN (k = {KNN_NEIGHBOURS})"),
        vec![new_knn],
        vec![old(&mut knn)],
    ));
    rows
}
