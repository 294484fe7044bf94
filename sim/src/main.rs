//! The `fedmr-sim` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use fedmr_core::aggregate::ServerStep;
use fedmr_core::data::Dataset;
use fedmr_core::model::{Backbone, Catalog, FusionMode, ModelConfig};
use fedmr_core::privacy::Protection;
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::ModelEncoding;
use fedmr_sim::experiment::{StepSizes, baseline_reports, run_once, search_step_sizes};
use fedmr_sim::federation::{
    Federation, RoundRecord, Rounds, RunResult, SimConfig, run_rounds, select_clients,
};
use fedmr_sim::http::HttpFederation;
use fedmr_sim::new_item_report;
use fedmr_sim::new_items::NewItemSplit;
use fedmr_sim::report::{table_header, table_row, write_router_view, write_run};
use fedmr_sim::{ablation, dataset, privacy, secagg_cost};

/// Federated simulation of FedMR: N phones train locally, a server aggregates,
/// every user is evaluated with the paper's protocol (full ranking, HR@K, NDCG@K).
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// One federation (the default): per-round metrics to CSV/JSON and a final table.
    Run(RunArgs),
    /// The comparison table: baselines, then each backbone x fusion with the
    /// learning rate chosen on validation, over several seeds.
    Table(TableArgs),
    /// The ablation table for one backbone and step sizes: the full MFFM,
    /// each single expert, each input dropped, and ID only.
    Ablation(AblationArgs),
    /// What a curious server learns: a federation over HTTP whose server
    /// keeps every upload, then each attack on them beside guessing.
    Privacy(PrivacyArgs),
    /// Poisoning: malicious clients promote a target item; each defence
    /// (robust aggregation) against each share of them, in process.
    Poisoning(PoisoningArgs),
    /// What secure aggregation costs per client and for the server, beside
    /// plain aggregation, at several cohort sizes (in one process).
    SecaggCost(SecaggCostArgs),
}

#[derive(Args)]
struct SecaggCostArgs {
    /// Cohort sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "50,200,1000")]
    clients: Vec<usize>,
    /// Values per vector (about KU's FedAvg + MFFM update; the Flower bench uses the same).
    #[arg(long, default_value_t = 160_000)]
    values: usize,
    /// Neighbours per client (SecAgg+'s k).
    #[arg(long, default_value_t = fedmr_core::secagg::SecureAggregation::default().neighbours)]
    neighbours: u32,
    /// Share of clients that vanish after sending their masked input.
    #[arg(long, default_value_t = 0.0)]
    dropout: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The report (secagg_cost.md, secagg_cost.json) goes here.
    #[arg(long, default_value = "runs/secagg-cost")]
    out: PathBuf,
}

#[derive(Args)]
struct PoisoningArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    setting: Setting,
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// Malicious clients as shares of the honest ones, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,0.01,0.05")]
    malicious: Vec<f64>,
    /// Defences, comma-separated: none, clip (norm bound), equal (equal
    /// weights), trimmed-mean[:share], median, or several joined by +
    /// (clip+median).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "none,clip,equal,trimmed-mean:0.1,median"
    )]
    defences: Vec<String>,
    /// The L2 bound of `clip` (default: the server's default norm bound).
    #[arg(long, default_value_t = fedmr_core::update::DEFAULT_NORM_BOUND)]
    clip_bound: f32,
    /// How far past the popular centre a malicious client pushes the target's row.
    #[arg(long, default_value_t = fedmr_sim::poisoning::AttackConfig::default().boost)]
    boost: f32,
    /// The report (poisoning.md, poisoning.json) goes here.
    #[arg(long, default_value = "runs/poisoning")]
    out: PathBuf,
}

#[derive(Args)]
struct PrivacyArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    setting: Setting,
    /// One run per seed and defence.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    seeds: Vec<u64>,
    /// Rounds the server observes.
    #[arg(long, default_value_t = 5)]
    observed_rounds: usize,
    /// Defences, comma-separated: undefended, fixed-negatives, hidden-count,
    /// combined (both), dp-<noise multiplier> (combined + every catalog row +
    /// local DP).
    #[arg(long, value_delimiter = ',', default_value = "undefended")]
    defences: Vec<String>,
    /// The L2 bound every upload is clipped to under local DP.
    #[arg(long, default_value_t = 1.0)]
    dp_clip: f32,
    /// Train each federation on to its end and report test quality.
    #[arg(long)]
    quality: bool,
    /// The report (privacy.md, privacy.json) goes here.
    #[arg(long, default_value = "runs/privacy")]
    out: PathBuf,
}

#[derive(Args, Clone)]
struct Common {
    /// `synthetic` (built in, no download) or a path to an MMRec folder (e.g. ../shared/data/ku).
    #[arg(long, default_value = "synthetic")]
    dataset: String,
    /// Content modalities to use, comma-separated (default: all the dataset has).
    #[arg(long, value_delimiter = ',')]
    modalities: Vec<String>,
    /// Latent size d.
    #[arg(long, default_value_t = 64)]
    dim: usize,
    /// Local epochs per round.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Negatives sampled per positive.
    #[arg(long, default_value_t = 1)]
    negatives: usize,
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// Early stopping: rounds without a better validation HR@50.
    #[arg(long, default_value_t = 20)]
    patience: usize,
    /// Clients sampled per round (default: all).
    #[arg(long)]
    clients_per_round: Option<usize>,
    /// Apply averaged fusion changes with server-side Adam at this learning rate
    /// (default: plain averaging).
    #[arg(long)]
    server_adam: Option<f32>,
    /// Apply them with server-side FedYogi at this learning rate instead.
    #[arg(long, conflicts_with = "server_adam")]
    server_yogi: Option<f32>,
    /// Standard deviation of initial item embeddings and user heads.
    #[arg(long, default_value_t = 0.1)]
    init_std: f32,
    /// Training threads (results are identical for any number).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// `leave-one-out` (the paper's protocol), or `new-items`: the newest
    /// --new-share of the items leave training and are ranked as new items
    /// (item cold start, as CLCRec; in process only).
    #[arg(long, default_value = "leave-one-out")]
    split: String,
    /// Under --split new-items: the share of items held out as new.
    #[arg(long, default_value_t = 0.2)]
    new_share: f64,
    /// How phones download the model: f32, f16, or int8 / int6 / int4 (one
    /// scale per item row); they train and rank from what they received.
    #[arg(long, default_value = "f32", value_parser = parse_encoding)]
    download: ModelEncoding,
}

fn parse_encoding(name: &str) -> Result<ModelEncoding, String> {
    ModelEncoding::parse(name).map_err(|e| e.to_string())
}

impl Common {
    /// The new-item split of `ds` when --split asks for it.
    fn new_item_split(&self, ds: &Dataset) -> Result<Option<NewItemSplit>, String> {
        match self.split.as_str() {
            "leave-one-out" => Ok(None),
            "new-items" => NewItemSplit::new(ds, self.new_share, |d| {
                dataset::catalog(d, &self.modalities)
            })
            .map(Some)
            .map_err(|e| e.to_string()),
            other => Err(format!(
                "unknown --split '{other}' (expected leave-one-out or new-items)"
            )),
        }
    }
}

/// One model setting: backbone, fusion and step sizes.
#[derive(Args, Clone)]
struct Setting {
    /// fedavg, fcf, fedncf, pfedrec or fedrap.
    #[arg(long, default_value = "fedavg")]
    backbone: Backbone,
    /// id (ID only), mffm (all three experts, the paper's form), residual
    /// (the ID-only view plus MFFM's correction, starting at zero), evidence
    /// (residual, each item's correction scaled by its row's norm), or one
    /// expert: sum, mlp, gate. `residual@0.01`: MFFM's parameters step at
    /// 0.01 on the clients (default: --lr); `residual@0.01/0.5`: and each
    /// item's ID row is hidden in half of the training epochs (ID dropout).
    #[arg(long, default_value = "mffm")]
    fusion: String,
    /// Drop the item-ID embedding from MFFM's inputs (content only).
    #[arg(long)]
    no_id: bool,
    /// Client learning rate (plain SGD).
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// Learning rate of the item-ID rows (the default was chosen on validation
    /// on KU and on the synthetic data; pass the --lr value for one step size).
    #[arg(long, default_value = "3")]
    item_lr: Option<f32>,
}

impl Setting {
    fn config(&self, common: &Common, seed: u64) -> Result<SimConfig, String> {
        Ok(sim_config(
            common,
            self.backbone,
            fusion_mode(&self.fusion, self.no_id)?,
            self.lr,
            self.item_lr,
            seed,
        ))
    }
}

#[derive(Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    setting: Setting,
    /// Seeds; metrics are reported as mean ± std over them.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    seeds: Vec<u64>,
    /// Where rounds.csv and result.json go (one folder per seed).
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// `http`: a fedmr-server on 127.0.0.1 and one real SQLite-backed client
    /// per phone; `in-process`: the same computation without either (faster;
    /// gives identical metrics).
    #[arg(long, default_value = "http")]
    transport: String,
}

#[derive(Args)]
struct TableArgs {
    #[command(flatten)]
    common: Common,
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fedavg,fcf,fedncf,pfedrec,fedrap"
    )]
    backbones: Vec<Backbone>,
    #[arg(long, value_delimiter = ',', default_value = "id,mffm")]
    fusions: Vec<String>,
    /// Learning rates searched on validation (seed of the first --seeds entry).
    #[arg(long, value_delimiter = ',', default_value = "1,0.1,0.01,0.001,0.0001")]
    lrs: Vec<f32>,
    /// Item-table learning rates searched jointly with --lrs; `lr` means the
    /// same as the dense one.
    #[arg(long, value_delimiter = ',', default_value = "lr")]
    item_lrs: Vec<String>,
    /// Five by default: three are too few for a spread (min and max are printed too).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4")]
    seeds: Vec<u64>,
    /// Markdown table and JSON results go here.
    #[arg(long, default_value = "runs/table")]
    out: PathBuf,
}

#[derive(Args)]
struct AblationArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value = "fedavg")]
    backbone: Backbone,
    /// The full model's form: mffm (the paper's) or residual@<fusion lr>[/<ID dropout>].
    #[arg(long, default_value = "mffm")]
    fusion: String,
    /// Client learning rate, for every variant (choose it with `table`).
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    #[arg(long, default_value = "3")]
    item_lr: Option<f32>,
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4")]
    seeds: Vec<u64>,
    /// Markdown table goes here.
    #[arg(long, default_value = "runs/ablation")]
    out: PathBuf,
}

fn fusion_mode(name: &str, no_id: bool) -> Result<FusionMode, String> {
    FusionMode::parse(name, no_id).map_err(|e| e.replace("dropping the ID input", "--no-id"))
}

fn sim_config(
    c: &Common,
    backbone: Backbone,
    fusion: FusionMode,
    lr: f32,
    item_lr: Option<f32>,
    seed: u64,
) -> SimConfig {
    SimConfig {
        model: ModelConfig {
            backbone,
            fusion,
            dim: c.dim,
            init_std: c.init_std,
        },
        train: TrainConfig {
            lr,
            item_lr,
            epochs: c.epochs,
            negatives: c.negatives,
            ..TrainConfig::default()
        },
        server_step: match (c.server_adam, c.server_yogi) {
            (Some(lr), _) => ServerStep::Adam { lr },
            (None, Some(lr)) => ServerStep::Yogi { lr },
            (None, None) => ServerStep::Plain { lr: 1.0 },
        },
        rounds: c.rounds,
        patience: c.patience,
        clients_per_round: c.clients_per_round,
        seed,
        threads: c.threads,
        download: c.download,
        ..SimConfig::default()
    }
}

fn progress(len: usize, label: String) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} rounds {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label);
    bar
}

fn on_round(bar: &ProgressBar) -> impl FnMut(&RoundRecord) + '_ {
    move |r| {
        bar.inc(1);
        bar.set_message(format!(
            "loss {:.4}, valid HR@50 {:.2}%",
            r.train_loss,
            100.0 * r.valid.all.hr_at(50).unwrap_or(f64::NAN)
        ));
    }
}

fn describe(result: &RunResult) -> String {
    let best = result.best_round();
    format!(
        "best round {} of {} ({:.1}s): valid HR@50 {:.2}%, test HR@50 {:.2}% NDCG@50 {:.2}%",
        best.round + 1,
        result.rounds.len(),
        result.seconds,
        100.0 * best.valid.all.hr_at(50).unwrap_or(f64::NAN),
        100.0 * best.test.all.hr_at(50).unwrap_or(f64::NAN),
        100.0 * best.test.all.ndcg_at(50).unwrap_or(f64::NAN)
    )
}

fn run(args: RunArgs) -> Result<(), String> {
    let setting = &args.setting;
    let first_seed = *args
        .seeds
        .first()
        .ok_or("--seeds needs at least one seed")?;
    // One dataset for every seed (the synthetic one is generated from the
    // first): seeds vary the model, so runs and baselines share the same data.
    let mut ds = dataset::load(&args.common.dataset, first_seed).map_err(|e| e.to_string())?;
    eprintln!("dataset {}", ds.summary());
    let split = args.common.new_item_split(&ds)?;
    if let Some(split) = &split {
        eprintln!("{}", split.summary());
        ds = split.training.clone();
        if args.transport != "in-process" {
            return Err("--split new-items runs in process (--transport in-process)".into());
        }
    }
    let catalog = dataset::catalog(&ds, &args.common.modalities).map_err(|e| e.to_string())?;
    let mut tests = Vec::new();
    let mut new_item_tests = Vec::new();
    for &seed in &args.seeds {
        let config = setting.config(&args.common, seed)?;
        let bar = progress(
            config.rounds,
            format!("{} {} seed {seed}", setting.backbone, setting.fusion),
        );
        let dir = args.out.join(format!("seed{seed}"));
        let result = match args.transport.as_str() {
            "in-process" => match &split {
                None => run_once(&ds, &catalog, config, on_round(&bar)),
                Some(split) => Federation::in_process(&ds, catalog.clone(), config)
                    .and_then(|f| f.with_new_items(split.clone()))
                    .and_then(|mut f| f.run(on_round(&bar))),
            },
            "http" => {
                let names = dataset::modality_names(&ds, &args.common.modalities);
                let mut federation =
                    HttpFederation::new(&ds, &catalog, &names, config, &dir.join("work"))
                        .map_err(|e| e.to_string())?;
                let written = fedmr_sim::disk_writes::bytes_written();
                let result = run_rounds(&mut federation, on_round(&bar));
                if result.is_ok() {
                    bar.finish_and_clear();
                    eprintln!("seed {seed}: {}", traffic_line(&federation));
                    let written = fedmr_sim::disk_writes::bytes_written()
                        .zip(written)
                        .map(|(after, before)| after - before);
                    if let Some(line) = written.map(|w| writes_line(&federation, w)) {
                        eprintln!("seed {seed}: {line}");
                    }
                }
                drop(federation);
                let _ = std::fs::remove_dir_all(dir.join("work"));
                result
            }
            other => {
                return Err(format!(
                    "unknown --transport '{other}' (expected http or in-process)"
                ));
            }
        }
        .map_err(|e| e.to_string())?;
        bar.finish_and_clear();
        eprintln!("seed {seed}: {}", describe(&result));
        write_run(&dir, &result).map_err(|e| format!("writing {}: {e}", dir.display()))?;
        let title = format!(
            "Router weights per user: {} + {}, {}, seed {seed}",
            setting.backbone, setting.fusion, ds.name
        );
        if let Some(spread) = write_router_view(&dir, &result, &title)? {
            eprintln!(
                "seed {seed}: router weights across users ({}/router_weights.png):\n{spread}",
                dir.display()
            );
        }
        tests.push(result.best_round().test.clone());
        new_item_tests.extend(result.best_round().new_items.clone());
    }
    let seeds = args.seeds.clone();
    println!("\nTest metrics (%) at the round of best validation HR@50, over seeds {seeds:?}:\n");
    println!("{}", table_header(&tests[0]));
    for (name, reports) in baseline_reports(&ds, &seeds) {
        println!("{}", table_row(&name, "-", &reports));
    }
    let steps = steps_label((setting.lr, setting.item_lr));
    println!(
        "{}",
        table_row(
            &format!("{} + {}", setting.backbone, setting.fusion),
            &steps,
            &tests
        )
    );
    if let Some(split) = &split {
        println!(
            "\nNew items ({}): test half, at the same rounds (%), over seeds {seeds:?}:\n",
            split.summary()
        );
        println!("{}", new_item_report::header(split));
        for (name, new, old) in new_item_report::baselines(split, &seeds) {
            println!("{}", new_item_report::row(&name, "-", &new, &old));
        }
        println!(
            "{}",
            new_item_report::row(
                &format!("{} + {}", setting.backbone, setting.fusion),
                &steps,
                &new_item_tests,
                &tests
            )
        );
    }
    println!(
        "\nPer-round metrics: {}/seed*/rounds.csv",
        args.out.display()
    );
    Ok(())
}

/// Mean bytes per phone per round over HTTP.
fn traffic_line(federation: &HttpFederation) -> String {
    let rounds = federation.traffic.len().max(1) as f64;
    let phones = federation.phones() as f64;
    let clients = federation
        .config()
        .clients_per_round
        .map_or(phones, |n| (n as f64).min(phones));
    let up: u64 = federation.traffic.iter().map(|t| t.uploaded).sum();
    let down: u64 = federation.traffic.iter().map(|t| t.downloaded).sum();
    let mean = |f: fn(&fedmr_sim::http::PhaseSeconds) -> f64| {
        federation
            .traffic
            .iter()
            .map(|t| f(&t.seconds))
            .sum::<f64>()
            / rounds
    };
    format!(
        "HTTP traffic per round: upload {:.1} KB per training phone, download {:.1} KB per phone \
         (model sync for training and evaluation); seconds per round: sync {:.3}, train {:.3}, \
         upload {:.3} (in phone order, closing the round), evaluation {:.3}",
        up as f64 / rounds / clients / 1e3,
        down as f64 / rounds / phones / 1e3,
        mean(|s| s.sync),
        mean(|s| s.train),
        mean(|s| s.upload),
        mean(|s| s.evaluate),
    )
}

/// Bytes written during the rounds (phones and server: one process)
/// against the bytes sent and received, per phone per round.
fn writes_line(federation: &HttpFederation, written: u64) -> String {
    let rounds = federation.traffic.len().max(1) as f64;
    let phones = federation.phones() as f64;
    let payload: u64 = federation
        .traffic
        .iter()
        .map(|t| t.uploaded + t.downloaded)
        .sum();
    format!(
        "bytes written to storage during the rounds (phones and server, one process): \
         {:.1} KB per phone per round, {:.2}x the bytes uploaded and downloaded \
         ({:.1} KB per phone per round)",
        written as f64 / rounds / phones / 1e3,
        written as f64 / payload.max(1) as f64,
        payload as f64 / rounds / phones / 1e3
    )
}

fn steps_label((lr, item_lr): StepSizes) -> String {
    match item_lr {
        Some(i) => format!("lr {lr}, item lr {i}"),
        None => format!("lr {lr}"),
    }
}

/// Every (lr, item lr) pair; an item lr of `lr` means the same as the dense one.
fn step_size_grid(lrs: &[f32], item_lrs: &[String]) -> Result<Vec<StepSizes>, String> {
    let items = item_lrs
        .iter()
        .map(|s| match s.as_str() {
            "lr" => Ok(None),
            v => v
                .parse::<f32>()
                .map(Some)
                .map_err(|_| format!("bad item learning rate '{v}'")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lrs
        .iter()
        .flat_map(|&lr| items.iter().map(move |&i| (lr, i)))
        .collect())
}

fn table(args: TableArgs) -> Result<(), String> {
    if args.seeds.is_empty() || args.lrs.is_empty() {
        return Err("--seeds and --lrs need at least one value".into());
    }
    let ds = dataset::load(&args.common.dataset, args.seeds[0]).map_err(|e| e.to_string())?;
    eprintln!("dataset {}", ds.summary());
    let catalog = dataset::catalog(&ds, &args.common.modalities).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    let mut all_results = Vec::new();
    for &backbone in &args.backbones {
        for fusion_name in &args.fusions {
            let (line, results) = table_setting(&ds, &catalog, &args, backbone, fusion_name)?;
            lines.push(line);
            all_results.extend(results);
        }
    }
    write_table(&args, &ds, &lines, &all_results)
}

/// One row of the table: step sizes searched on validation (seed 0), then
/// the best setting that trains on every seed, run on every seed.
fn table_setting(
    ds: &Dataset,
    catalog: &Catalog,
    args: &TableArgs,
    backbone: Backbone,
    fusion_name: &str,
) -> Result<(String, Vec<RunResult>), String> {
    let fusion = fusion_mode(fusion_name, false)?;
    let base = sim_config(
        &args.common,
        backbone,
        fusion.clone(),
        0.0,
        None,
        args.seeds[0],
    );
    let candidates = step_size_grid(&args.lrs, &args.item_lrs)?;
    let bar = progress(
        base.rounds * candidates.len(),
        format!("{backbone} {fusion_name} step-size search"),
    );
    let ranked = search_step_sizes(
        ds,
        catalog,
        &base,
        &candidates,
        |s, r| {
            let outcome = match r {
                Ok(r) => describe(r),
                Err(e) => format!("skipped: {e}"),
            };
            eprintln!("  {backbone} {fusion_name} {}: {outcome}", steps_label(s));
        },
        on_round(&bar),
    )
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    // The best step sizes that train on every seed: one that diverges on
    // some seed is not a usable setting.
    let (label, results) = ranked
        .into_iter()
        .find_map(|steps| {
            let label = steps_label(steps);
            match seeds_runs(ds, catalog, args, backbone, fusion_name, &fusion, steps) {
                Ok(results) => Some((label, results)),
                Err(e) => {
                    eprintln!("  {backbone} {fusion_name} {label}: {e}; next setting");
                    None
                }
            }
        })
        .ok_or_else(|| format!("{backbone} {fusion_name}: every setting diverged"))?;
    let tests: Vec<_> = results
        .iter()
        .map(|r| r.best_round().test.clone())
        .collect();
    // In seed order.
    let best_rounds: Vec<String> = results.iter().map(|r| (r.best + 1).to_string()).collect();
    let line = table_row(
        &format!("{backbone} + {fusion_name}"),
        &format!("{label}, best rounds {}", best_rounds.join("/")),
        &tests,
    );
    Ok((line, results))
}

/// Prints the table beside the baselines and writes `table.md` and `runs.json`.
fn write_table(
    args: &TableArgs,
    ds: &Dataset,
    lines: &[String],
    all_results: &[RunResult],
) -> Result<(), String> {
    let baselines = baseline_reports(ds, &args.seeds);
    let mut md = format!(
        "Test metrics (%), mean ± std over seeds {:?}, at the round of best validation HR@50; dataset {}\n\n{}\n",
        args.seeds,
        ds.summary(),
        table_header(&baselines[0].1[0])
    );
    for (name, reports) in &baselines {
        md.push_str(&table_row(name, "-", reports));
        md.push('\n');
    }
    for l in lines {
        md.push_str(l);
        md.push('\n');
    }
    println!("\n{md}");
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("table.md"), &md).map_err(|e| e.to_string())?;
    let json = serde_json::to_string(&all_results).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("runs.json"), json).map_err(|e| e.to_string())?;
    Ok(())
}

fn poisoning(args: PoisoningArgs) -> Result<(), String> {
    use fedmr_sim::poisoning::AttackConfig;
    use fedmr_sim::poisoning_report::{PoisoningRun, parse_defence, table};
    let defences = args
        .defences
        .iter()
        .map(|d| Ok((d.clone(), parse_defence(d, args.clip_bound)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let mut runs = Vec::new();
    let mut name = String::new();
    for &seed in &args.seeds {
        let ds = dataset::load(&args.common.dataset, seed).map_err(|e| e.to_string())?;
        name = ds.name.clone();
        let catalog = dataset::catalog(&ds, &args.common.modalities).map_err(|e| e.to_string())?;
        for &share in &args.malicious {
            for (defence, d) in &defences {
                let mut config = args.setting.config(&args.common, seed)?;
                config.aggregation = d.rule;
                config.sample_cap = d.sample_cap;
                config.attack = Some(AttackConfig {
                    share,
                    boost: args.boost,
                    ..AttackConfig::default()
                });
                let label = format!("{defence}, {:.0}% malicious, seed {seed}", share * 100.0);
                let mut federation =
                    fedmr_sim::federation::Federation::in_process(&ds, catalog.clone(), config)
                        .map_err(|e| e.to_string())?;
                let poisoning = federation.poisoning.as_ref().expect("attack configured");
                let (attackers, target) = (poisoning.attackers(), poisoning.target);
                let result = federation
                    .run(|r| {
                        eprint!(
                            "\r{label}: round {} exposure {:.3}  ",
                            r.round + 1,
                            r.exposure.unwrap_or(0.0)
                        )
                    })
                    .map_err(|e| e.to_string())?;
                eprintln!();
                runs.push(PoisoningRun {
                    defence: defence.clone(),
                    share,
                    attackers,
                    seed,
                    target,
                    result,
                });
            }
        }
    }
    let md = format!(
        "Poisoning: {} + {}, {name}, seeds {:?}, boost {}, clip bound {}; test metrics and the target's \
         exposure@10 (%) at the round of best validation HR@50, mean ± std (min–max)\n\n{}",
        args.setting.backbone,
        args.setting.fusion,
        args.seeds,
        args.boost,
        args.clip_bound,
        table(&runs)
    );
    println!("{md}");
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("poisoning.md"), &md).map_err(|e| e.to_string())?;
    let json = serde_json::to_string(&runs).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("poisoning.json"), json).map_err(|e| e.to_string())?;
    Ok(())
}

fn privacy(args: PrivacyArgs) -> Result<(), String> {
    let defences: Vec<(String, Protection)> = args
        .defences
        .iter()
        .map(|d| Ok((d.clone(), privacy::parse_defence(d, args.dp_clip)?)))
        .collect::<Result<_, String>>()?;
    let mut runs = Vec::new();
    let mut name = String::new();
    for &seed in &args.seeds {
        let ds = dataset::load(&args.common.dataset, seed).map_err(|e| e.to_string())?;
        eprintln!("dataset {}", ds.summary());
        name = ds.name.clone();
        let catalog = dataset::catalog(&ds, &args.common.modalities).map_err(|e| e.to_string())?;
        let names = dataset::modality_names(&ds, &args.common.modalities);
        for (defence, protection) in &defences {
            let mut config = args.setting.config(&args.common, seed)?;
            config.train.protection = protection.clone();
            let run = privacy_run(&args, &ds, &catalog, &names, config, seed, defence)?;
            eprintln!("{defence}, seed {seed}:\n{}", run.report);
            runs.push(run);
        }
    }
    let md = format!(
        "What the server learns: {} + {}, {name}, seeds {:?}, {} observed rounds{}\n\n{}",
        args.setting.backbone,
        args.setting.fusion,
        args.seeds,
        args.observed_rounds,
        if args.quality {
            ", quality at the best validation round"
        } else {
            ""
        },
        privacy::table(&runs)
    );
    println!("{md}");
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("privacy.md"), &md).map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&runs).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("privacy.json"), json).map_err(|e| e.to_string())?;
    Ok(())
}

/// One federation over HTTP under one defence: the attacks on its observed
/// rounds, then (with `--quality`) its test quality.
fn privacy_run(
    args: &PrivacyArgs,
    ds: &Dataset,
    catalog: &Catalog,
    names: &[String],
    config: SimConfig,
    seed: u64,
    defence: &str,
) -> Result<privacy::DefenceRun, String> {
    let protection = config.train.protection.clone();
    let work = args.out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    let mut federation = HttpFederation::new(ds, catalog, names, config.clone(), &work)
        .map_err(|e| e.to_string())?;
    let users = ds.users();
    let report = privacy::measure(&mut federation, &users, ds.n_items, args.observed_rounds)
        .map_err(|e| e.to_string())?;
    drop(federation);
    let _ = std::fs::remove_dir_all(&work);
    // Quality from the same configuration and seed in process: the same
    // computation as over HTTP, bit for bit (sim/tests/http.rs), in a
    // fraction of the time.
    let run = if args.quality {
        let run = run_once(ds, catalog, config.clone(), |r| {
            eprint!("\r{defence}, seed {seed}: round {}  ", r.round + 1)
        })
        .map_err(|e| e.to_string())?;
        eprintln!();
        Some(run)
    } else {
        None
    };
    let rounds_run = run.as_ref().map_or(args.observed_rounds, |r| {
        r.rounds.last().map_or(0, |l| l.round + 1)
    });
    let rounds_taken_part = (0..users.len())
        .map(|u| {
            (0..rounds_run)
                .filter(|&round| select_clients(&config, users.len(), round).contains(&u))
                .count() as u64
        })
        .max()
        .unwrap_or(0);
    let delta = 1.0 / users.len().max(1) as f64;
    let best = run.as_ref().map(|r| &r.best_round().test.all);
    Ok(privacy::DefenceRun {
        defence: defence.to_string(),
        seed,
        report,
        rounds_taken_part,
        epsilon: privacy::epsilon(&protection, rounds_taken_part, delta),
        delta,
        test_hr50: best.and_then(|t| t.hr_at(50)).map(|v| 100.0 * v),
        test_ndcg50: best.and_then(|t| t.ndcg_at(50)).map(|v| 100.0 * v),
    })
}

fn ablation(args: AblationArgs) -> Result<(), String> {
    if args.seeds.is_empty() {
        return Err("--seeds needs at least one seed".into());
    }
    let ds = dataset::load(&args.common.dataset, args.seeds[0]).map_err(|e| e.to_string())?;
    eprintln!("dataset {}", ds.summary());
    let all_modalities = dataset::modality_names(&ds, &args.common.modalities);
    let label = steps_label((args.lr, args.item_lr));
    let mut rows = Vec::new();
    let mut header = None;
    let base = fusion_mode(&args.fusion, false)?;
    if base == FusionMode::IdOnly {
        return Err("--fusion id has nothing to ablate (mffm or residual@…)".into());
    }
    for variant in ablation::variants(&all_modalities, &base) {
        let kept = if variant.modalities.is_empty() {
            all_modalities.clone()
        } else {
            variant.modalities.clone()
        };
        let catalog = dataset::catalog(&ds, &kept).map_err(|e| e.to_string())?;
        let mut tests = Vec::new();
        for &seed in &args.seeds {
            let config = sim_config(
                &args.common,
                args.backbone,
                variant.fusion.clone(),
                args.lr,
                args.item_lr,
                seed,
            );
            let bar = progress(config.rounds, format!("{} seed {seed}", variant.name));
            let result =
                run_once(&ds, &catalog, config, on_round(&bar)).map_err(|e| e.to_string())?;
            bar.finish_and_clear();
            eprintln!("  {} seed {seed}: {}", variant.name, describe(&result));
            tests.push(result.best_round().test.clone());
        }
        header.get_or_insert_with(|| table_header(&tests[0]));
        rows.push(table_row(
            &format!("{} + {}", args.backbone, variant.name),
            &label,
            &tests,
        ));
    }
    let md = format!(
        "Ablation of {}, test metrics (%), mean ± std (min–max) over seeds {:?}, at the round of best validation HR@50; dataset {}\n\n{}\n{}\n",
        args.fusion,
        args.seeds,
        ds.summary(),
        header.unwrap_or_default(),
        rows.join("\n")
    );
    println!("\n{md}");
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("ablation.md"), &md).map_err(|e| e.to_string())?;
    Ok(())
}

/// One run per seed at fixed step sizes; an error if any seed fails.
fn seeds_runs(
    ds: &Dataset,
    catalog: &Catalog,
    args: &TableArgs,
    backbone: Backbone,
    fusion_name: &str,
    fusion: &FusionMode,
    (lr, item_lr): StepSizes,
) -> Result<Vec<RunResult>, String> {
    let label = steps_label((lr, item_lr));
    let mut results = Vec::new();
    for &seed in &args.seeds {
        let config = sim_config(&args.common, backbone, fusion.clone(), lr, item_lr, seed);
        let bar = progress(
            config.rounds,
            format!("{backbone} {fusion_name} {label} seed {seed}"),
        );
        let result = run_once(ds, catalog, config, on_round(&bar));
        bar.finish_and_clear();
        let result = result.map_err(|e| format!("seed {seed}: {e}"))?;
        eprintln!(
            "  {backbone} {fusion_name} {label} seed {seed}: {}",
            describe(&result)
        );
        results.push(result);
    }
    Ok(results)
}

fn secagg_cost(args: SecaggCostArgs) -> Result<(), String> {
    let config = fedmr_core::secagg::SecureAggregation {
        neighbours: args.neighbours,
        max_clients: args.clients.iter().copied().max().unwrap_or(3).max(1024) as u32,
        ..Default::default()
    };
    let mut reports = Vec::new();
    for &clients in &args.clients {
        let started = std::time::Instant::now();
        let report = secagg_cost::measure(clients, args.values, config, args.dropout, args.seed)
            .map_err(|e| format!("{clients} clients: {e}"))?;
        eprintln!(
            "  {clients} clients: {:.1} s wall, client {:.3} s, server {:.3} s",
            started.elapsed().as_secs_f64(),
            report.client.seconds,
            report.server.seconds
        );
        reports.push(report);
    }
    let md = secagg_cost::table(&reports);
    println!("{md}");
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("secagg_cost.md"), &md).map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("secagg_cost.json"), json).map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Run(args)) => run(args),
        Some(Command::Table(args)) => table(args),
        Some(Command::Ablation(args)) => ablation(args),
        Some(Command::Privacy(args)) => privacy(args),
        Some(Command::SecaggCost(args)) => secagg_cost(args),
        Some(Command::Poisoning(args)) => poisoning(args),
        None => run(cli.run),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
