//! fedmr-server: the aggregation server. It publishes the catalog and the
//! global model, collects client updates over HTTP, and aggregates each
//! round with the core's streaming aggregator. The model, wire and
//! aggregation code are `fedmr-core`'s; nothing here duplicates them.

pub mod auth;
#[cfg(feature = "encoder")]
pub mod catalog_build;
mod checkpoint;
pub mod config;
pub mod db;
mod downloads;
pub mod error;
mod group_commit;
pub mod http;
pub mod items_file;
mod limits;
pub mod metrics;
pub mod observer;
mod round_log;
pub mod rounds;
pub mod seal;
mod secure;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use fedmr_core::data::Dataset;
use fedmr_core::model::{GlobalModel, ModelConfig};
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::CatalogMessage;

pub use config::{NormPolicy, ServerConfig};
pub use db::Durability;
pub use error::ServerError;
pub use observer::UploadObserver;
pub use rounds::{Genesis, ServerCore};

/// Serves `core` on `listener` until `shutdown` resolves; also runs the
/// round-deadline checker.
pub async fn serve(
    core: Arc<ServerCore>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    refuse_empty_admin_token(&core)?;
    let ticker = {
        let core = core.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(rounds::TICK).await;
                let core = core.clone();
                let _ = tokio::task::spawn_blocking(move || core.tick()).await;
            }
        })
    };
    use axum::serve::ListenerExt;
    // Small request/response exchanges: do not let Nagle's algorithm hold
    // the last segment back waiting for an ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let listener = limits::CappedListener::new(
        listener,
        core.config.max_connections,
        core.config.idle_timeout,
    );
    let result = axum::serve(listener, http::router(core))
        .with_graceful_shutdown(shutdown)
        .await;
    ticker.abort();
    result
}

/// A server on its own runtime thread, for the simulator and tests; stops
/// when dropped.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub core: Arc<ServerCore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Binds `addr` (use port 0 for any free port) and serves `core`.
    pub fn start(core: ServerCore, addr: SocketAddr) -> std::io::Result<RunningServer> {
        refuse_empty_admin_token(&core)?;
        let core = Arc::new(core);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = core.clone();
        let thread = std::thread::Builder::new()
            .name("fedmr-server".into())
            .spawn(move || {
                runtime.block_on(serve(served, listener, async {
                    let _ = stopped.await;
                }))
            })?;
        Ok(RunningServer {
            addr,
            core,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The initial server data for a dataset: its content features as the
/// catalog (item keys `item-<id>`), and a fresh global model.
pub fn genesis_from_dataset(
    dataset: &Dataset,
    config: &ModelConfig,
    train: &TrainConfig,
    seed: u64,
) -> Result<Genesis, ServerError> {
    let keys = (0..dataset.n_items).map(item_key).collect();
    let modalities: Vec<(&str, _)> = dataset
        .modalities
        .iter()
        .map(|m| (m.name.as_str(), &m.features))
        .collect();
    let catalog = CatalogMessage::from_features(1, keys, &modalities)?;
    genesis_from_catalog(catalog, config, train, seed)
}

/// The first catalog and model from a built catalog file (`catalog build`).
pub fn genesis_from_catalog(
    catalog: CatalogMessage,
    config: &ModelConfig,
    train: &TrainConfig,
    seed: u64,
) -> Result<Genesis, ServerError> {
    let shape = catalog.to_catalog()?;
    let global = GlobalModel::new(config, &shape, seed)?;
    Ok(Genesis {
        catalog,
        config: config.clone(),
        train: train.clone(),
        global,
    })
}

/// The catalog key of a dataset's item id.
pub fn item_key(id: usize) -> String {
    format!("item-{id}")
}

/// Serving with an empty admin token would let anyone issue client tokens
/// (`is_admin` never matches one either; this says so at start).
fn refuse_empty_admin_token(core: &ServerCore) -> std::io::Result<()> {
    if core.config.admin_token.trim().is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the admin token is empty: anyone could issue tokens",
        ));
    }
    Ok(())
}
