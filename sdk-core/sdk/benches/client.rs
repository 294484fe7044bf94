//! The on-device SDK's costs on a 100,000-item catalog with two 512-d
//! modalities (KU's CLIP sizes), d = 64, full MFFM:
//!
//! - `record_batch` throughput, against plain SQLite inserts of the same rows;
//! - opening a client, against opening the same file with plain rusqlite;
//! - `recommend` top-50, cold and warm, against one 100k x 64 matrix-vector
//!   product (the least work any scorer over this catalog does);
//! - peak RSS of one `train` (child process), against the same child that
//!   only opens the client.
//!
//! Everything runs in one command so the ratios share the machine's load.
//! Run: cargo bench -p fedmr-core --bench client

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use fedmr_core::model::{Backbone, Catalog, FusionMode, GlobalModel, ModelConfig};
use fedmr_core::rng::Rng;
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::{CatalogMessage, ModelEncoding, ModelMessage, UpdateMessage};
use fedmr_sdk::{
    Client, ClientConfig, Interaction, InteractionKind, RecommendOptions, TrainOptions,
};
use fedmr_test_support::median_secs;
use ndarray::{Array1, Array2};

const ITEMS: usize = 100_000;
const FEATURE_DIM: usize = 512;
const DIM: usize = 64;
const RECORDS: usize = 100_000;
const BATCH: usize = 1_000;
const HISTORY: usize = 200;

fn key(i: usize) -> String {
    format!("item-{i:06}")
}

fn interactions(n: usize, offset: usize) -> Vec<Interaction> {
    (0..n)
        .map(|j| Interaction {
            item_key: key((offset + j) * 7919 % ITEMS),
            kind: InteractionKind::View,
            timestamp_ms: (offset + j) as i64,
        })
        .collect()
}

fn fresh_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fedmr-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bench_record_batch() {
    let dir = fresh_dir("record");
    let batches: Vec<Vec<Interaction>> = (0..RECORDS / BATCH)
        .map(|b| interactions(BATCH, b * BATCH))
        .collect();

    let client = Client::open(ClientConfig {
        retention_cap: 2 * RECORDS,
        ..ClientConfig::new(dir.join("client.sqlite"))
    })
    .unwrap();
    let start = Instant::now();
    for batch in &batches {
        client.record_batch(batch).unwrap();
    }
    let sdk = start.elapsed().as_secs_f64();

    // Steady state on a full log: every batch also trims the oldest rows.
    let start = Instant::now();
    let capped = Client::open(ClientConfig {
        retention_cap: RECORDS / 2,
        ..ClientConfig::new(dir.join("capped.sqlite"))
    })
    .unwrap();
    for batch in &batches {
        capped.record_batch(batch).unwrap();
    }
    let trimmed = start.elapsed().as_secs_f64();

    // Baseline: the same rows, same pragmas, plain prepared inserts.
    let conn = rusqlite::Connection::open(dir.join("plain.sqlite")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, item_key TEXT, kind TEXT, weight REAL, ts INTEGER);
         CREATE INDEX t_ts ON t (ts); CREATE INDEX t_key ON t (item_key);",
    )
    .unwrap();
    let start = Instant::now();
    for batch in &batches {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut stmt = conn
            .prepare_cached("INSERT INTO t (item_key, kind, weight, ts) VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        for i in batch {
            stmt.execute(rusqlite::params![
                i.item_key,
                "view",
                1.0f64,
                i.timestamp_ms
            ])
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    let plain = start.elapsed().as_secs_f64();
    let rate = |secs: f64| RECORDS as f64 / secs;
    println!(
        "record_batch: {:.0} interactions/s ({RECORDS} in batches of {BATCH}); \
         with the retention cap trimming every batch: {:.0}/s; plain SQLite inserts: {:.0}/s; \
         SDK = {:.2}x plain time",
        rate(sdk),
        rate(trimmed),
        rate(plain),
        sdk / plain
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A populated client database: the catalog, a model, a history.
fn build_database(path: &Path) {
    let mut rng = Rng::new(1);
    let features: Vec<Array2<f32>> = (0..2)
        .map(|_| Array2::from_shape_simple_fn((ITEMS, FEATURE_DIM), || rng.normal() as f32))
        .collect();
    let keys = (0..ITEMS).map(key).collect();
    let catalog =
        CatalogMessage::from_features(1, keys, &[("image", &features[0]), ("text", &features[1])])
            .unwrap();
    let (catalog_bytes, catalog_digest) = catalog.encode();
    drop(catalog);
    let config = ModelConfig {
        backbone: Backbone::FedAvg,
        fusion: FusionMode::full(),
        dim: DIM,
        init_std: 0.1,
    };
    let shape = Catalog {
        n_items: ITEMS,
        features,
    };
    let global = GlobalModel::new(&config, &shape, 1).unwrap();
    drop(shape);
    let model_bytes = ModelMessage::from_model(
        1,
        (1, catalog_digest),
        &config,
        &TrainConfig::default(),
        &global,
    )
    .encode();

    let client = Client::open(ClientConfig::new(path)).unwrap();
    let t = Instant::now();
    client.apply_catalog(&catalog_bytes).unwrap();
    let catalog_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    client.apply_model(&model_bytes).unwrap();
    let model_secs = t.elapsed().as_secs_f64();
    client.record_batch(&interactions(HISTORY, 0)).unwrap();
    println!(
        "apply_catalog: {:.2} s for {:.0} MB; apply_model: {:.3} s for {:.1} MB",
        catalog_secs,
        catalog_bytes.len() as f64 / 1e6,
        model_secs,
        model_bytes.len() as f64 / 1e6
    );
}

/// Seconds of `f` on a client freshly opened on `path` (an app start), the
/// median of `runs`; the open itself is not timed.
fn after_open(path: &Path, runs: usize, mut f: impl FnMut(&Client)) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let client = Client::open(ClientConfig::new(path)).unwrap();
            let t = Instant::now();
            f(&client);
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

/// Deletes the ranking the client keeps between app starts: the state of a
/// store before it kept one (and after a change nothing ranked yet).
fn forget_stored_ranking(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("DELETE FROM ranking_scores; DELETE FROM ranking_context;")
        .unwrap();
}

fn bench_open_and_recommend(path: &Path) {
    // The model as a blob, where the store kept it before it became a file
    // (for the "as open did before" baseline).
    {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_model_blob (bytes BLOB NOT NULL)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO bench_model_blob (bytes) VALUES (?1)",
            [stored_model(path)],
        )
        .unwrap();
    }
    let open = median_secs(5, || {
        black_box(Client::open(ClientConfig::new(path)).unwrap());
    });
    let plain_open = median_secs(5, || {
        let conn = rusqlite::Connection::open(path).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM interactions", [], |r| r.get(0))
            .unwrap();
        black_box(n);
    });
    // What `open` did before it read headers only: every catalog key (from
    // the key index) and the decoded model.
    let eager = median_secs(5, || {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, item_key FROM catalog_items ORDER BY item_key")
            .unwrap();
        let keys: Vec<(i64, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let payload: Vec<u8> = conn
            .query_row("SELECT bytes FROM bench_model_blob", [], |r| r.get(0))
            .unwrap();
        black_box((keys, ModelMessage::decode(&payload).unwrap()));
    });
    println!(
        "open: {:.2} ms (headers only); plain rusqlite open + one query: {:.2} ms, ratio {:.1}x; \
         reading every key and decoding the model, as open did before: {:.1} ms",
        open * 1e3,
        plain_open * 1e3,
        open / plain_open,
        eager * 1e3
    );

    let options = RecommendOptions::default();
    let top50 = |c: &Client| {
        black_box(c.recommend(50, &options).unwrap());
    };
    // The first recommend of an app start, with the ranking the last
    // install/training stored; then the same with nothing stored (what
    // every app start paid before), and after a new interaction (the
    // router's context is recomputed, the item scores are reused).
    let first_stored = after_open(path, 9, top50);
    forget_stored_ranking(path);
    let first_unstored = after_open(path, 1, |c| {
        forget_stored_ranking(path);
        top50(c)
    });
    let mut t = 0i64;
    let first_after_record = after_open(path, 5, |c| {
        t += 1;
        c.record(Interaction {
            item_key: key(t as usize),
            kind: InteractionKind::Like,
            timestamp_ms: 10_000_000 + t,
        })
        .unwrap();
        top50(c)
    });
    let client = Client::open(ClientConfig::new(path)).unwrap();
    let warm = median_secs(200, || top50(&client));
    let mut rng = Rng::new(2);
    let table = Array2::from_shape_simple_fn((ITEMS, DIM), || rng.normal() as f32);
    let theta = Array1::from_shape_simple_fn(DIM, || rng.normal() as f32);
    let matvec = median_secs(200, || {
        black_box(table.dot(&theta));
    });
    println!(
        "recommend top-50 of {ITEMS}: first call after an app start {:.2} ms (median of 9; \
         the stored ranking); with nothing stored {:.0} ms (scores every item through MFFM: \
         ratio {:.4}x); first call after a new interaction {:.0} ms (median of 5); \
         warm {:.3} ms (median of 200); one {ITEMS}x{DIM} mat-vec: {:.3} ms; warm = {:.2}x mat-vec",
        first_stored * 1e3,
        first_unstored * 1e3,
        first_stored / first_unstored,
        first_after_record * 1e3,
        warm * 1e3,
        matvec * 1e3,
        warm / matvec
    );

    // Training's rescoring: from the global views the model install kept
    // (same client), against a client opened afterwards (an app start:
    // nothing kept, the experts run over the catalog again).
    let model_bytes = stored_model(path);
    let fresh = fresh_dir("train");
    let db = copy_database(path, &fresh);
    let client = Client::open(ClientConfig::new(&db)).unwrap();
    let newer = bump_model_version(&model_bytes);
    let written = written_bytes();
    let t = Instant::now();
    client.apply_model(&newer).unwrap();
    let apply = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = client.train(&TrainOptions::default()).unwrap();
    let train_kept = t.elapsed().as_secs_f64();
    let training_only = report.duration_ms as f64 / 1e3;
    let key = report.idempotency_key.clone();
    client.acknowledge_upload(&key).unwrap();
    drop(client);
    let round_written = written_bytes().since(written);
    let payload = newer.len() + report.update_bytes;
    let blob = model_as_blob_written(&fresh, &newer);
    println!(
        "bytes written by one round (install the next model, train, acknowledge the upload, \
         close): {:.1} MB by write() calls, {:.1} MB reported to storage, for {:.1} MB of \
         payload (model {:.1} MB + update {:.2} MB): {:.2}x; the model alone written as a \
         SQLite blob (WAL, then checkpoint), as the store did before: {:.1} MB, {:.2}x the model",
        round_written.calls as f64 / 1e6,
        round_written.storage as f64 / 1e6,
        payload as f64 / 1e6,
        newer.len() as f64 / 1e6,
        report.update_bytes as f64 / 1e6,
        round_written.calls as f64 / payload as f64,
        blob as f64 / 1e6,
        blob as f64 / newer.len() as f64
    );
    let client = Client::open(ClientConfig::new(&db)).unwrap();
    let newer = bump_model_version(&newer);
    client.apply_model(&newer).unwrap();
    drop(client);
    let reopened = Client::open(ClientConfig::new(&db)).unwrap();
    let t = Instant::now();
    let report = reopened.train(&TrainOptions::default()).unwrap();
    let train_reopened = t.elapsed().as_secs_f64();
    let reopened_training = report.duration_ms as f64 / 1e3;
    println!(
        "apply_model with the ranking computed and stored: {:.2} s; train + rescoring from \
         kept views: {:.3} s (of which training {:.3} s); train + rescoring on a reopened \
         client (experts over the catalog again): {:.3} s (of which training, model decode \
         included, {:.3} s); rescoring {:.3} s vs {:.3} s",
        apply,
        train_kept,
        training_only,
        train_reopened,
        reopened_training,
        train_kept - training_only,
        train_reopened - reopened_training
    );
    drop(reopened);
    let _ = std::fs::remove_dir_all(fresh);

    // What one round sends, against the paper's design, which ships the
    // whole item table every round.
    let report = client_for_upload(path);
    let table = (ITEMS * DIM * 4) as f64;
    println!(
        "bytes per client per round: upload {:.1} KB (a sparse update: {} touched rows + {} dense \
         values); the paper's design uploads the whole {ITEMS}x{DIM} table, {:.1} MB: {:.0}x more. \
         Download: the whole model, {:.1} MB, as in the paper's design",
        report.0 as f64 / 1e3,
        report.1,
        report.2,
        table / 1e6,
        table / report.0 as f64,
        model_bytes.len() as f64 / 1e6
    );
}

/// Copies the client database at `path` (with its model file) into `dir`.
fn copy_database(path: &Path, dir: &Path) -> PathBuf {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    for entry in std::fs::read_dir(path.parent().unwrap()).unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file == name || file.starts_with(&format!("{name}.model-")) {
            std::fs::copy(entry.path(), dir.join(&file)).unwrap();
        }
    }
    dir.join(name)
}

/// This process's written bytes: by write() calls, and as reported to the
/// storage layer (/proc/self/io `wchar`, `write_bytes`).
#[derive(Clone, Copy)]
struct Written {
    calls: u64,
    storage: u64,
}

impl Written {
    fn since(self, before: Written) -> Written {
        Written {
            calls: self.calls - before.calls,
            storage: self.storage.saturating_sub(before.storage),
        }
    }
}

fn written_bytes() -> Written {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Written {
        calls: field("wchar:"),
        storage: field("write_bytes:"),
    }
}

/// Bytes written to store `model` as a blob in a WAL database and
/// checkpoint it into the main file (what a model install cost before).
fn model_as_blob_written(dir: &Path, model: &[u8]) -> u64 {
    let conn = rusqlite::Connection::open(dir.join("blob.sqlite")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE m (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);",
    )
    .unwrap();
    let before = written_bytes();
    conn.execute(
        "INSERT OR REPLACE INTO m (id, payload) VALUES (1, ?1)",
        [model],
    )
    .unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    written_bytes().since(before).calls
}

/// Trains once on `path`: (update bytes, touched rows, dense values).
fn client_for_upload(path: &Path) -> (usize, usize, usize) {
    let client = Client::open(ClientConfig::new(path)).unwrap();
    let report = client.train(&TrainOptions::default()).unwrap();
    let pending = client.pending_uploads().unwrap();
    let update = UpdateMessage::decode(&pending.last().unwrap().bytes).unwrap();
    (
        report.update_bytes,
        update.item_ids.len(),
        update.dense.len(),
    )
}

/// The installed model message of the client database at `path` (a file
/// beside it).
fn stored_model(path: &Path) -> Vec<u8> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let file = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .find(|e| {
            let f = e.file_name().to_string_lossy().into_owned();
            f.starts_with(&format!("{name}.model-")) && !f.ends_with(".tmp")
        })
        .expect("the installed model file");
    std::fs::read(file.path()).unwrap()
}

/// The same model published as the next version.
fn bump_model_version(bytes: &[u8]) -> Vec<u8> {
    let (m, global) = ModelMessage::decode(bytes).unwrap();
    let catalog = (m.catalog_version, m.catalog_digest);
    ModelMessage::from_model(m.version + 1, catalog, &m.config, &m.train, &global).encode()
}

/// Issue 16, item 5: the model download in each encoding, against f32 in
/// the same run: bytes, the server's encoding time (once per round) and
/// the phone's decode time (checks included).
fn bench_model_downloads(path: &Path) {
    let (header, global) = ModelMessage::decode(&stored_model(path)).unwrap();
    let header = ModelMessage::header(
        header.version,
        (header.catalog_version, header.catalog_digest),
        &header.config,
        &header.train,
        &global,
    );
    let f32_bytes = header.encode_as(&global, ModelEncoding::F32).unwrap().len();
    for encoding in ModelEncoding::ALL {
        let bytes = header.encode_as(&global, encoding).unwrap();
        let encode = median_secs(5, || {
            black_box(header.encode_as(&global, encoding).unwrap());
        });
        let decode = median_secs(5, || {
            black_box(ModelMessage::decode(&bytes).unwrap());
        });
        println!(
            "model download {}: {:.2} MB ({:.3} of f32), server encodes in {:.1} ms, phone decodes in {:.1} ms",
            encoding.name(),
            bytes.len() as f64 / 1e6,
            bytes.len() as f64 / f32_bytes as f64,
            encode * 1e3,
            decode * 1e3
        );
    }
}

/// Peak RSS (VmHWM) of this process in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Child: open, then per `mode` train once, or install the next model
/// version (keeping its global views) and train; print the peak RSS.
fn child(path: &str, mode: &str) {
    let client = Client::open(ClientConfig::new(path)).unwrap();
    if mode == "--apply-train-child" {
        let newer = bump_model_version(&stored_model(Path::new(path)));
        client.apply_model(&newer).unwrap();
    }
    if mode != "--open-child" {
        black_box(client.train(&TrainOptions::default()).unwrap());
    }
    println!("{:.1}", peak_rss_mb());
}

fn child_peak(path: &Path, mode: &str) -> f64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([mode, path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let modes = ["--train-child", "--open-child", "--apply-train-child"];
    if args.len() == 3 && modes.contains(&args[1].as_str()) {
        child(&args[2], &args[1]);
        return;
    }
    bench_record_batch();
    let dir = fresh_dir("catalog");
    let db = dir.join("client.sqlite");
    build_database(&db);
    let open_only = child_peak(&db, "--open-child");
    let train = child_peak(&db, "--train-child");
    let copy_dir = fresh_dir("rss");
    let copy = copy_database(&db, &copy_dir);
    let apply_train = child_peak(&copy, "--apply-train-child");
    let _ = std::fs::remove_dir_all(copy_dir);
    println!(
        "peak RSS: train on {ITEMS} items ({HISTORY} interactions, 5 epochs): {train:.1} MB; \
         the same process only opening the client: {open_only:.1} MB; train adds {:.1} MB; \
         install the next model (global views kept) and train: {apply_train:.1} MB",
        train - open_only
    );
    bench_open_and_recommend(&db);
    bench_model_downloads(&db);
    let _ = std::fs::remove_dir_all(dir);
}
