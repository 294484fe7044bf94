//! `fedmr-server serve`: the aggregation server.
//! `fedmr-server issue-token <client>`: prints a new bearer token for a client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fedmr_core::aggregate::ServerStep;
use fedmr_core::data::mmrec;
use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::model::{Backbone, FusionMode, ModelConfig};
use fedmr_core::train::TrainConfig;
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
    #[arg(long, default_value = "fedavg")]
    backbone: Backbone,
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    #[arg(long, default_value_t = 3.0)]
    item_lr: f32,
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
        server_step: ServerStep::Plain { lr: 1.0 },
        ..ServerConfig::new(&args.data_dir, &args.admin_token)
    };
    let core = ServerCore::open(config, || {
        let dataset = if args.dataset == "synthetic" {
            generate(&SyntheticConfig::default())
        } else {
            mmrec::load_mmrec(std::path::Path::new(&args.dataset))?
        };
        let model = ModelConfig {
            backbone: args.backbone,
            fusion: FusionMode::full(),
            ..ModelConfig::default()
        };
        let train = TrainConfig {
            lr: args.lr,
            item_lr: Some(args.item_lr),
            ..TrainConfig::default()
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
