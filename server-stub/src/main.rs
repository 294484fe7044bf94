//! `fedmr-server serve`: the aggregation server.
//! `fedmr-server issue-token <client>`: prints a new bearer token for a client.
//! `fedmr-server catalog build`: encodes item content into a catalog file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fedmr_core::aggregate::ServerStep;
use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::model::{Backbone, FusionMode, ModelConfig};
use fedmr_core::privacy::Protection;
use fedmr_core::train::TrainConfig;
use fedmr_data::mmrec;
use fedmr_server::{NormPolicy, ServerConfig, ServerCore, genesis_from_dataset};

#[derive(Parser)]
#[command(name = "fedmr-server", about = "FedMR aggregation server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the catalog and model and aggregate rounds.
    Serve(ServeArgs),
    /// Issue (or re-issue) a client's bearer token and print it.
    IssueToken {
        #[arg(long, default_value = "fedmr-server-data")]
        data_dir: PathBuf,
        client_id: String,
    },
    /// Catalog files for `serve --catalog`.
    #[command(subcommand)]
    Catalog(CatalogCommand),
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Runs the encoders over every item once and writes the catalog.
    Build(CatalogBuildArgs),
}

#[derive(Args)]
struct CatalogBuildArgs {
    /// Tab-separated items: a header row, a `key` column, an optional
    /// `image` column (paths relative to this file), other columns are text.
    #[arg(long, required_unless_present = "mmrec")]
    items: Option<PathBuf>,
    /// Or: an MMRec folder whose `<name>_features.npy` files become the
    /// modalities as they are (items `item-0`, `item-1`, ...).
    #[arg(long, conflicts_with = "items")]
    mmrec: Option<PathBuf>,
    /// A sentence-encoder folder (model.onnx + tokenizer.json), e.g.
    /// target/models/paraphrase-minilm-l3 from scripts/fetch-models.
    #[arg(long)]
    text_model: Option<PathBuf>,
    /// Pad every sentence to this many tokens (models tract runs only with
    /// fixed dims, such as the int8 all-MiniLM-L6-v2).
    #[arg(long)]
    text_fixed_len: Option<usize>,
    #[arg(long, default_value_t = 128)]
    text_max_len: usize,
    /// An image ONNX model (NCHW float input, ImageNet normalisation).
    #[arg(long)]
    image_model: Option<PathBuf>,
    #[arg(long, default_value_t = 224)]
    image_size: u32,
    #[arg(long, default_value = "pixel_values")]
    image_input: String,
    #[arg(long, default_value = "image_embeds")]
    image_output: String,
    /// Precomputed features `<name>=<file.npy>`, one row per item.
    #[arg(long, value_delimiter = ',')]
    npy: Vec<String>,
    #[arg(long, default_value_t = 1)]
    version: u64,
    #[arg(long)]
    out: PathBuf,
}

#[cfg(not(feature = "encoder"))]
fn build_catalog(_: &CatalogBuildArgs) -> Result<(), String> {
    Err("this fedmr-server was built without the `encoder` feature".into())
}

#[cfg(feature = "encoder")]
fn build_catalog(args: &CatalogBuildArgs) -> Result<(), String> {
    use fedmr_encoder::{ImageEncoderOptions, TextEncoderOptions};
    use fedmr_server::catalog_build::{BuildPlan, ImageModel, build, mmrec_features, read_items};
    let (items, mut npy) = match (&args.items, &args.mmrec) {
        (Some(path), _) => (read_items(path).map_err(|e| e.to_string())?, Vec::new()),
        (None, Some(dir)) => mmrec_features(dir).map_err(|e| e.to_string())?,
        (None, None) => return Err("give --items or --mmrec".into()),
    };
    for spec in &args.npy {
        let (name, path) = spec
            .split_once('=')
            .ok_or_else(|| format!("--npy wants <name>=<file.npy>, got {spec:?}"))?;
        npy.push((name.to_string(), PathBuf::from(path)));
    }
    let plan = BuildPlan {
        version: args.version,
        text_model: args.text_model.clone().map(|dir| {
            (
                dir,
                TextEncoderOptions {
                    max_len: args.text_max_len,
                    fixed_len: args.text_fixed_len,
                },
            )
        }),
        image_model: args.image_model.clone().map(|path| ImageModel {
            path,
            options: ImageEncoderOptions::imagenet(
                (args.image_size, args.image_size),
                &args.image_input,
                &args.image_output,
            ),
        }),
        npy,
    };
    let bar = indicatif::ProgressBar::new(items.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} items ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let catalog = build(&items, &plan, &mut |done, _, what| {
        bar.set_message(format!("encoding {what}"));
        bar.set_position(done as u64);
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let (bytes, digest) = catalog.encode();
    std::fs::write(&args.out, &bytes).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let dims: Vec<String> = catalog
        .modalities
        .iter()
        .map(|m| format!("{} {}", m.name, m.dim))
        .collect();
    eprintln!(
        "fedmr-server: wrote {} ({} items; {}; {} bytes; sha256 {})",
        args.out.display(),
        catalog.items.len(),
        dims.join(", "),
        bytes.len(),
        fedmr_core::wire::digest_hex(&digest)
    );
    Ok(())
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8750")]
    bind: SocketAddr,
    #[arg(long, default_value = "fedmr-server-data")]
    data_dir: PathBuf,
    /// First start only: "synthetic" or an MMRec folder whose features become the catalog.
    #[arg(long, default_value = "synthetic")]
    dataset: String,
    /// First start only: a catalog file from `catalog build` (instead of --dataset).
    #[arg(long)]
    catalog: Option<PathBuf>,
    #[arg(long, default_value = "fedavg")]
    backbone: Backbone,
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    #[arg(long, default_value_t = 3.0)]
    item_lr: f32,
    /// What clients' uploads may reveal (README, "What the server learns"):
    /// undefended, fixed-negatives, hidden-count, combined (both),
    /// dp-<noise multiplier> (combined + every catalog row + local DP),
    /// secure or secure-fixed-negatives (secure aggregation: the server
    /// learns only each round's sum; needs at least 3 clients per round, the
    /// cohort is --min-updates, each phase waits up to --round-seconds). The
    /// default is secure: no single phone's update is ever seen (a test or a
    /// demo with fewer phones per round takes hidden-count).
    #[arg(long, default_value = "secure")]
    protection: String,
    /// The L2 bound of each upload under dp-<noise>.
    #[arg(long, default_value_t = 1.0)]
    dp_clip: f32,
    #[arg(long, default_value_t = 100)]
    min_updates: u32,
    #[arg(long, default_value_t = 1)]
    min_floor: u32,
    /// Seconds a round stays open before its deadline.
    #[arg(long, default_value_t = 3600)]
    round_seconds: u64,
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: usize,
    #[arg(long)]
    norm_bound: Option<f32>,
    /// The most samples an update's declared count weighs in FedAvg's
    /// average (with --protection hidden-count every update weighs one).
    #[arg(long, default_value_t = 10_000)]
    max_samples: u64,
    /// Open connections at most (more wait in the kernel's backlog).
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds without a byte from a client before its connection is closed.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
    /// Seconds a request body may take to arrive (408 after).
    #[arg(long, default_value_t = 120)]
    body_seconds: u64,
    /// clip or reject updates above --norm-bound.
    #[arg(long, default_value = "reject")]
    norm_policy: String,
    /// Lines "<client-id> <token>" registered at start.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// The admin token; defaults to the FEDMR_ADMIN_TOKEN environment variable.
    #[arg(long, env = "FEDMR_ADMIN_TOKEN")]
    admin_token: String,
}

fn open_core(args: &ServeArgs) -> Result<ServerCore, String> {
    let norm_policy = match args.norm_policy.as_str() {
        "clip" => NormPolicy::Clip,
        "reject" => NormPolicy::Reject,
        other => return Err(format!("--norm-policy must be clip or reject, got {other}")),
    };
    let config = ServerConfig {
        min_updates: args.min_updates,
        min_floor: args.min_floor,
        round_duration: Duration::from_secs(args.round_seconds),
        max_body_bytes: args.max_body_bytes,
        norm_bound: args.norm_bound,
        norm_policy,
        max_samples: args.max_samples,
        max_connections: args.max_connections,
        idle_timeout: std::time::Duration::from_secs(args.idle_seconds.max(1)),
        body_timeout: std::time::Duration::from_secs(args.body_seconds.max(1)),
        server_step: ServerStep::Plain { lr: 1.0 },
        ..ServerConfig::new(&args.data_dir, &args.admin_token)
    };
    let core = ServerCore::open(config, || {
        let model = ModelConfig {
            backbone: args.backbone,
            fusion: FusionMode::full(),
            ..ModelConfig::default()
        };
        let train = TrainConfig {
            lr: args.lr,
            item_lr: Some(args.item_lr),
            protection: Protection::preset(&args.protection, args.dp_clip)?,
            ..TrainConfig::default()
        };
        if let Some(path) = &args.catalog {
            let bytes = std::fs::read(path).map_err(|e| {
                fedmr_server::ServerError::NotFound(format!("{}: {e}", path.display()))
            })?;
            let (catalog, _) = fedmr_core::wire::CatalogMessage::decode(&bytes)?;
            return fedmr_server::genesis_from_catalog(catalog, &model, &train, 0);
        }
        let dataset = if args.dataset == "synthetic" {
            generate(&SyntheticConfig::default())
        } else {
            mmrec::load_mmrec(std::path::Path::new(&args.dataset))?
        };
        genesis_from_dataset(&dataset, &model, &train, 0)
    })
    .map_err(|e| e.to_string())?;
    if let Some(path) = &args.tokens {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(client), Some(token), None) => core
                    .register_token(client, token)
                    .map_err(|e| e.to_string())?,
                _ => {
                    return Err(format!(
                        "{}:{}: expected \"<client-id> <token>\"",
                        path.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    Ok(core)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => open_core(&args).and_then(|core| {
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(args.bind)
                    .await
                    .map_err(|e| format!("{}: {e}", args.bind))?;
                eprintln!(
                    "fedmr-server: serving on http://{}",
                    listener.local_addr().map_err(|e| e.to_string())?
                );
                let shutdown = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                fedmr_server::serve(Arc::new(core), listener, shutdown)
                    .await
                    .map_err(|e| e.to_string())
            })
        }),
        Command::Catalog(CatalogCommand::Build(args)) => build_catalog(&args),
        Command::IssueToken {
            data_dir,
            client_id,
        } => {
            let config = ServerConfig::new(&data_dir, "");
            ServerCore::open(config, || {
                Err(fedmr_server::ServerError::NotFound(
                    "no server database here: run `serve` once first".into(),
                ))
            })
            .and_then(|core| core.issue_token(&client_id))
            .map(|token| println!("{token}"))
            .map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fedmr-server: {e}");
            ExitCode::FAILURE
        }
    }
}
