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
use fedmr_core::wire::{CatalogMessage, ModelMessage, UpdateMessage};
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

fn bench_open_and_recommend(path: &Path) {
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
    println!(
        "open: {:.1} ms (loads {ITEMS} keys and the model); plain rusqlite open + one query: \
         {:.2} ms; ratio {:.0}x",
        open * 1e3,
        plain_open * 1e3,
        open / plain_open
    );

    // What `open` spends on the catalog keys: from the key's covering index
    // (what the store does) against the table scan it did before, whose rows
    // carry every item's features.
    let keys = |sql: &str| {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let rows: Vec<(i64, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        black_box(rows);
    };
    let by_index = median_secs(5, || {
        keys("SELECT id, item_key FROM catalog_items ORDER BY item_key")
    });
    let by_table = median_secs(5, || {
        keys("SELECT id, item_key FROM catalog_items ORDER BY id")
    });
    println!(
        "catalog keys: from the key index {:.1} ms; by a table scan (before): {:.1} ms; ratio {:.2}x",
        by_index * 1e3,
        by_table * 1e3,
        by_index / by_table
    );

    let client = Client::open(ClientConfig::new(path)).unwrap();
    let options = RecommendOptions::default();
    let t = Instant::now();
    black_box(client.recommend(50, &options).unwrap());
    let cold = t.elapsed().as_secs_f64();
    let warm = median_secs(200, || {
        black_box(client.recommend(50, &options).unwrap());
    });
    let mut rng = Rng::new(2);
    let table = Array2::from_shape_simple_fn((ITEMS, DIM), || rng.normal() as f32);
    let theta = Array1::from_shape_simple_fn(DIM, || rng.normal() as f32);
    let matvec = median_secs(200, || {
        black_box(table.dot(&theta));
    });
    // What one round sends, against the paper's design, which ships the
    // whole item table every round.
    let report = client.train(&TrainOptions::default()).unwrap();
    let pending = client.pending_uploads().unwrap();
    let update = UpdateMessage::decode(&pending.last().unwrap().bytes).unwrap();
    let table = (ITEMS * DIM * 4) as f64;
    println!(
        "bytes per client per round: upload {:.1} KB (a sparse update: {} touched rows + {} dense \
         values); the paper's design uploads the whole {ITEMS}x{DIM} table, {:.1} MB: {:.0}x more. \
         Download: the whole model, {:.1} MB, as in the paper's design",
        report.update_bytes as f64 / 1e3,
        update.item_ids.len(),
        update.dense.len(),
        table / 1e6,
        table / report.update_bytes as f64,
        model_bytes_len(path) as f64 / 1e6
    );
    println!(
        "recommend top-50 of {ITEMS}: warm {:.3} ms (median of 200), cold {:.0} ms \
         (first call: scores every item through MFFM); one {ITEMS}x{DIM} mat-vec: {:.3} ms; \
         warm = {:.2}x mat-vec",
        warm * 1e3,
        cold * 1e3,
        matvec * 1e3,
        warm / matvec
    );
}

/// Size of the installed model message in the client database.
fn model_bytes_len(path: &Path) -> usize {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT length(payload) FROM model_meta", [], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap() as usize
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

/// Child: open (and with `train`, train once), print the peak RSS.
fn child(path: &str, train: bool) {
    let client = Client::open(ClientConfig::new(path)).unwrap();
    if train {
        let report = client.train(&TrainOptions::default()).unwrap();
        black_box(report);
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
    if args.len() == 3 && (args[1] == "--train-child" || args[1] == "--open-child") {
        child(&args[2], args[1] == "--train-child");
        return;
    }
    bench_record_batch();
    let dir = fresh_dir("catalog");
    let db = dir.join("client.sqlite");
    build_database(&db);
    let open_only = child_peak(&db, "--open-child");
    let train = child_peak(&db, "--train-child");
    println!(
        "peak RSS: train on {ITEMS} items ({HISTORY} interactions, 5 epochs): {train:.1} MB; \
         the same process only opening the client: {open_only:.1} MB; train adds {:.1} MB",
        train - open_only
    );
    bench_open_and_recommend(&db);
    let _ = std::fs::remove_dir_all(dir);
}
