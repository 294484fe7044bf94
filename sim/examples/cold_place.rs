//! Where a model puts the items nobody trained on (issue 17's "what is that
//! place"): trains one federation in process for a fixed number of rounds,
//! then reports, per bucket of training popularity, the items' mean ID-row
//! norm and the mean percentile of their rank among each user's candidates
//! (0 = top of the list, 50 = the middle).
//!
//!   cargo run --release -p fedmr-sim --example cold_place -- ../shared/data/ku id 1 3 80
//!   (arguments: dataset, fusion, lr, item lr, rounds, and for residual/evidence
//!   the fusion lr and the ID dropout)

use fedmr_core::model::{Expert, FusionMode, ModelConfig};
use fedmr_core::rank::{ItemViews, score_all};
use fedmr_core::train::TrainConfig;
use fedmr_sim::coordinator::Coordinator;
use fedmr_sim::dataset;
use fedmr_sim::federation::{Federation, SimConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or(default.into());
    let (path, fusion) = (arg(0, "synthetic"), arg(1, "id"));
    let (lr, item_lr): (f32, f32) = (arg(2, "1").parse()?, arg(3, "3").parse()?);
    let rounds: usize = arg(4, "80").parse()?;
    let fusion = match fusion.as_str() {
        "id" => FusionMode::IdOnly,
        "mffm" => FusionMode::full(),
        "residual" | "evidence" => FusionMode::Residual {
            experts: Expert::ALL.to_vec(),
            evidence: fusion == "evidence",
            fusion_lr: args.get(5).map(|v| v.parse::<f32>()).transpose()?,
            id_dropout: args.get(6).map_or(Ok(0.0), |v| v.parse::<f32>())?,
        },
        other => return Err(format!("unknown fusion {other}").into()),
    };
    let ds = dataset::load(&path, 0)?;
    let catalog = dataset::catalog(&ds, &[])?;
    let config = SimConfig {
        model: ModelConfig {
            fusion,
            ..ModelConfig::default()
        },
        train: TrainConfig {
            lr,
            item_lr: Some(item_lr),
            ..TrainConfig::default()
        },
        ..SimConfig::default()
    };
    let mut federation = Federation::in_process(&ds, catalog.clone(), config)?;
    for round in 0..rounds {
        federation.round(round)?;
    }
    let global = federation.coordinator.global();
    let counts = ds.train_counts();
    let bucket = |c: u32| match c {
        0 => 0,
        1..=2 => 1,
        3..=9 => 2,
        _ => 3,
    };
    let names = ["0 (cold)", "1-2", "3-9", "10+"];
    let mut items = [0usize; 4];
    let mut norm = [0f64; 4];
    for (row, &c) in global.items.0.0.rows().into_iter().zip(&counts) {
        items[bucket(c)] += 1;
        norm[bucket(c)] += row.dot(&row).sqrt() as f64;
    }
    let views = ItemViews::compute(global, &catalog);
    let (mut pct, mut seen) = ([0f64; 4], [0usize; 4]);
    for phone in &federation.phones {
        let scores = score_all(global, &catalog, &views, &phone.state, &phone.data.train);
        let mut candidates: Vec<usize> = (0..scores.len())
            .filter(|i| !phone.data.train.contains(&(*i as u32)))
            .collect();
        candidates.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let n = candidates.len().max(2) as f64 - 1.0;
        for (rank, &i) in candidates.iter().enumerate() {
            pct[bucket(counts[i])] += 100.0 * rank as f64 / n;
            seen[bucket(counts[i])] += 1;
        }
    }
    println!("{}: after {rounds} rounds", ds.summary());
    println!("| training users of the item | items | mean ID-row norm | mean rank percentile |");
    println!("|---|---:|---:|---:|");
    for b in 0..4 {
        println!(
            "| {} | {} | {:.3} | {:.1} |",
            names[b],
            items[b],
            norm[b] / items[b].max(1) as f64,
            pct[b] / seen[b].max(1) as f64
        );
    }
    Ok(())
}
