//! `fedmr-server init`: creates a federation's store (or restores a backup).
//! `fedmr-server serve`: the aggregation server.
//! `fedmr-server backup`: an online copy of the store.
//! `fedmr-server issue-token <client>`: prints a new bearer token for a client.
//! `fedmr-server catalog build`: encodes item content into a catalog file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fedmr_core::aggregate::Combine;
use fedmr_core::aggregate::ServerStep;
use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::model::{Backbone, FusionMode, ModelConfig};
use fedmr_core::privacy::Protection;
use fedmr_core::train::TrainConfig;
use fedmr_data::mmrec;
use fedmr_server::{Durability, NormPolicy, ServerConfig, ServerCore, genesis_from_dataset};

#[derive(Parser)]
#[command(name = "fedmr-server", about = "FedMR aggregation server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new federation's store (catalog, first model), or restore one
    /// from a backup. Refuses to touch an existing store unless --replace.
    Init(InitArgs),
    /// Serve the catalog and model and aggregate rounds.
    Serve(ServeArgs),
    /// Copy the store with SQLite's online backup (the server may be running);
    /// the copy is integrity-checked. Restore it with `init --from-backup`.
    Backup {
        #[arg(long, default_value = "fedmr-server-data")]
        data_dir: PathBuf,
        /// The new file to write.
        #[arg(long)]
        out: PathBuf,
    },
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

/// What a new federation starts from (used by `init` and `serve --init`).
#[derive(Args)]
struct GenesisArgs {
    /// "synthetic" or an MMRec folder whose features become the catalog.
    #[arg(long, default_value = "synthetic")]
    dataset: String,
    /// A catalog file from `catalog build` (instead of --dataset).
    #[arg(long)]
    catalog: Option<PathBuf>,
    #[arg(long, default_value = "fedavg")]
    backbone: Backbone,
    /// How items' views fuse ID and content: mffm (the paper's form), id
    /// (ID only), residual@<fusion lr>[/<ID dropout>] (the ID-only view plus
    /// MFFM's correction, starting at zero: README "Fusion that earns its
    /// place"; KU's validation chose residual@0.003 with --lr 1), evidence@…,
    /// or one expert: sum, mlp, gate.
    #[arg(long, default_value = "mffm", value_parser = parse_fusion)]
    fusion: FusionMode,
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
}

#[derive(Args)]
struct InitArgs {
    #[arg(long, default_value = "fedmr-server-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    genesis: GenesisArgs,
    /// Restore this backup (from `fedmr-server backup`) instead.
    #[arg(long)]
    from_backup: Option<PathBuf>,
    /// Move an existing (for example damaged) store aside, as
    /// server.sqlite.replaced-<unix ms>, and create the new one.
    #[arg(long)]
    replace: bool,
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8750")]
    bind: SocketAddr,
    #[arg(long, default_value = "fedmr-server-data")]
    data_dir: PathBuf,
    /// Create the store first if there is none (as `init` would). Without
    /// it, a missing store is an error: a mistyped --data-dir must not
    /// start an empty federation.
    #[arg(long)]
    init: bool,
    /// The new federation's settings, used only with --init on a new store.
    #[command(flatten)]
    genesis: GenesisArgs,
    /// normal: an acknowledged update survives the server being killed;
    /// full: also an OS crash or power loss (one fsync per update).
    #[arg(long, default_value = "normal")]
    durability: String,
    /// How a round's updates are combined: mean, median, or
    /// trimmed-mean:<share per side> (robust rules need each update, so not
    /// with --protection secure).
    #[arg(long, default_value = "mean")]
    aggregation: String,
    /// Clip each update's change of any one item row to this multiple of
    /// the round's median row change (against poisoning; holds the round's
    /// updates in memory, so not with --protection secure).
    #[arg(long)]
    row_clip: Option<f32>,
    #[arg(long, default_value_t = 100)]
    min_updates: u32,
    #[arg(long, default_value_t = 1)]
    min_floor: u32,
    /// Seconds a round stays open before its deadline.
    #[arg(long, default_value_t = 3600)]
    round_seconds: u64,
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: usize,
    /// Updates above this L2 norm are clipped (or refused, --norm-policy);
    /// the default is derived from honest updates' measured norms.
    #[arg(long, default_value_t = fedmr_core::update::DEFAULT_NORM_BOUND)]
    norm_bound: f32,
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
    #[arg(long, default_value = "clip")]
    norm_policy: String,
    /// Lines "<client-id> <token>" registered at start.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// The admin token; defaults to the FEDMR_ADMIN_TOKEN environment variable.
    #[arg(long, env = "FEDMR_ADMIN_TOKEN")]
    admin_token: String,
}

/// `--fusion`, checked while the arguments are parsed (nothing created yet).
fn parse_fusion(name: &str) -> Result<FusionMode, String> {
    FusionMode::parse(name, false)
}

/// The first model and catalog of a new federation.
fn genesis(args: &GenesisArgs) -> Result<fedmr_server::Genesis, fedmr_server::ServerError> {
    let model = ModelConfig {
        backbone: args.backbone,
        fusion: args.fusion.clone(),
        ..ModelConfig::default()
    };
    let train = TrainConfig {
        lr: args.lr,
        item_lr: Some(args.item_lr),
        protection: Protection::preset(&args.protection, args.dp_clip)?,
        ..TrainConfig::default()
    };
    if let Some(path) = &args.catalog {
        let bytes = std::fs::read(path)
            .map_err(|e| fedmr_server::ServerError::NotFound(format!("{}: {e}", path.display())))?;
        let (catalog, _) = fedmr_core::wire::CatalogMessage::decode(&bytes)?;
        return fedmr_server::genesis_from_catalog(catalog, &model, &train, 0);
    }
    let dataset = if args.dataset == "synthetic" {
        generate(&SyntheticConfig::default())
    } else {
        mmrec::load_mmrec(std::path::Path::new(&args.dataset))?
    };
    genesis_from_dataset(&dataset, &model, &train, 0)
}

fn init(args: &InitArgs) -> Result<(), String> {
    let config = ServerConfig::new(&args.data_dir, "");
    let path = config.db_path();
    if path.exists() {
        if !args.replace {
            return Err(format!(
                "{} exists: a federation is already here (--replace moves it aside)",
                path.display()
            ));
        }
        let aside = path.with_extension(format!("sqlite.replaced-{}", now_ms()));
        // The round files (`server.sqlite-rounds`) go with their store.
        for suffix in ["", "-wal", "-shm", "-rounds"] {
            let from = PathBuf::from(format!("{}{suffix}", path.display()));
            if from.exists() {
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                std::fs::rename(&from, &to).map_err(|e| format!("{}: {e}", from.display()))?;
            }
        }
        let _ = std::fs::remove_file(fedmr_server::seal::path(&path));
        eprintln!("fedmr-server: moved the old store to {}", aside.display());
    }
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    let core = match &args.from_backup {
        Some(backup) => {
            std::fs::copy(backup, &path).map_err(|e| format!("{}: {e}", backup.display()))?;
            // Opening checks the copy page by page, decodes its model and
            // seals its version; a bad copy is removed again.
            ServerCore::open(config, unreachable_genesis).inspect_err(|_| {
                fedmr_server::seal::remove_store(&path);
            })
        }
        None => ServerCore::open(config, || genesis(&args.genesis)),
    }
    .map_err(|e| e.to_string())?;
    eprintln!(
        "fedmr-server: {} holds model version {}",
        path.display(),
        core.snapshot().version
    );
    Ok(())
}

fn unreachable_genesis() -> Result<fedmr_server::Genesis, fedmr_server::ServerError> {
    Err(fedmr_server::ServerError::NotFound(
        "no server store here: create one with `fedmr-server init`".into(),
    ))
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn open_core(args: &ServeArgs) -> Result<ServerCore, String> {
    let norm_policy = match args.norm_policy.as_str() {
        "clip" => NormPolicy::Clip,
        "reject" => NormPolicy::Reject,
        other => return Err(format!("--norm-policy must be clip or reject, got {other}")),
    };
    if !(args.norm_bound > 0.0 && args.norm_bound.is_finite()) {
        return Err(format!(
            "--norm-bound must be positive, got {}",
            args.norm_bound
        ));
    }
    let config = ServerConfig {
        min_updates: args.min_updates,
        min_floor: args.min_floor,
        round_duration: Duration::from_secs(args.round_seconds),
        max_body_bytes: args.max_body_bytes,
        norm_bound: Some(args.norm_bound),
        norm_policy,
        max_samples: args.max_samples,
        max_connections: args.max_connections,
        idle_timeout: std::time::Duration::from_secs(args.idle_seconds.max(1)),
        body_timeout: std::time::Duration::from_secs(args.body_seconds.max(1)),
        server_step: ServerStep::Plain { lr: 1.0 },
        durability: Durability::parse(&args.durability)?,
        combine: Combine::parse(&args.aggregation)?,
        row_clip: match args.row_clip {
            Some(k) if !(k > 0.0 && k.is_finite()) => {
                return Err(format!("--row-clip must be positive, got {k}"));
            }
            other => other,
        },
        ..ServerConfig::new(&args.data_dir, &args.admin_token)
    };
    if !args.init && !config.db_path().exists() {
        return Err(format!(
            "no federation at {}: create it with `fedmr-server init --data-dir {}` \
             (or start with `serve --init`)",
            config.db_path().display(),
            args.data_dir.display()
        ));
    }
    let core = ServerCore::open(config, || genesis(&args.genesis)).map_err(|e| e.to_string())?;
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
        Command::Init(args) => init(&args),
        Command::Backup { data_dir, out } => {
            let from = ServerConfig::new(&data_dir, "").db_path();
            fedmr_server::db::ServerDb::backup(&from, &out)
                .map(|()| {
                    eprintln!(
                        "fedmr-server: {} is a checked copy of {}",
                        out.display(),
                        from.display()
                    )
                })
                .map_err(|e| e.to_string())
        }
        Command::Catalog(CatalogCommand::Build(args)) => build_catalog(&args),
        Command::IssueToken {
            data_dir,
            client_id,
        } => {
            let config = ServerConfig::new(&data_dir, "");
            ServerCore::open(config, unreachable_genesis)
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
