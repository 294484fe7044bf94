//! Crash safety: a child process runs `train` (or `record_batch`) in a loop
//! and is killed with SIGKILL at a random moment; the database must reopen
//! with `integrity_check` ok and hold exactly the last committed state.
//!
//! The child is this same test binary, re-run on the `crash_child` test
//! with an environment variable saying what to do; it prints a line after
//! every commit, so the parent knows the last state that must be there.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::client::*;
use common::small_dataset;
use fedmr_core::model::Backbone;
use fedmr_core::rng::Rng;
use fedmr_sdk::{Client, ClientConfig, RecommendOptions, TrainOptions};

const CHILD_ENV: &str = "FEDMR_CRASH_CHILD";
const DB_ENV: &str = "FEDMR_CRASH_DB";
const BATCH: usize = 500;

/// The child's loop; a no-op in a normal test run.
#[test]
fn crash_child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = std::env::var(DB_ENV).expect("database path");
    // A cap the run cannot reach, so every committed batch stays countable.
    let client = Client::open(ClientConfig {
        retention_cap: 100_000_000,
        ..ClientConfig::new(db)
    })
    .unwrap();
    let mut n = 0u64;
    loop {
        match mode.as_str() {
            "train" => {
                let report = client.train(&TrainOptions::default()).unwrap();
                println!("COMMITTED {} {}", n + 1, report.idempotency_key);
            }
            "record" => {
                let batch: Vec<_> = (0..BATCH)
                    .map(|j| like(j as u32 % 80, (n as usize * BATCH + j) as i64))
                    .collect();
                client.record_batch(&batch).unwrap();
                println!("COMMITTED {}", n + 1);
            }
            "apply" => {
                // Model versions 2, 3, …: each install writes a model file
                // and references it; the kill lands anywhere in between.
                let ds = small_dataset();
                let cfg = model_config(Backbone::FedAvg);
                let version = n + 2;
                let bytes = model_message(&ds, &cfg, version, 1).encode();
                client.apply_model(&bytes).unwrap();
                println!("COMMITTED {} {version}", n + 1);
            }
            other => panic!("unknown child mode {other}"),
        }
        std::io::stdout().flush().unwrap();
        n += 1;
    }
}

/// This test binary, run again; under an emulator (scripts/test-aarch64 runs
/// the suite in qemu-user, which cannot exec a foreign binary by itself)
/// through the runner named in `FEDMR_CHILD_RUNNER`.
fn child_command() -> Command {
    let exe = std::env::current_exe().unwrap();
    match std::env::var("FEDMR_CHILD_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut parts = runner.split_whitespace();
            let mut command = Command::new(parts.next().unwrap());
            command.args(parts).arg(exe);
            command
        }
        _ => Command::new(exe),
    }
}

/// Runs the child until a kill `delay` after its first commit (or after its
/// start, for odd attempts, so that start-up is covered too: timing from the
/// first commit keeps the kill points inside the loop however slow the
/// machine, e.g. under qemu); returns the commit lines it printed.
fn run_and_kill(mode: &str, dir: &TempDir, delay: Duration, attempt: usize) -> Vec<String> {
    let mut child = child_command()
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .env(DB_ENV, dir.db())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test crash_child ... " before the first line.
            if let Some(at) = line.find("COMMITTED") {
                let _ = tx.send(line[at..].to_string());
            }
        }
    });
    let mut lines = Vec::new();
    if attempt.is_multiple_of(2) {
        let first = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the child committed nothing within 120 s");
        lines.push(first);
    }
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL on Unix: no destructors, no flush.
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the child must have been killed, not exited"
    );
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}

/// Kill delays spread over the child's start-up and its loop.
fn delays(seed: u64) -> Vec<Duration> {
    let mut rng = Rng::new(seed);
    (0..6)
        .map(|_| Duration::from_millis(rng.below(300)))
        .collect()
}

/// A reopened client carries on: it trains and recommends.
fn trains_and_ranks(client: &Client) {
    client.train(&TrainOptions::default()).unwrap();
    let top = client.recommend(5, &RecommendOptions::default()).unwrap();
    assert_eq!(top.len(), 5);
}

#[test]
fn killed_during_train_keeps_state_and_outbox_in_step() {
    let ds = small_dataset();
    let mut commits_seen = 0;
    for (attempt, delay) in delays(11).into_iter().enumerate() {
        let dir = TempDir::new("crash-train");
        {
            let client = ready_client(&dir, &ds, Backbone::PFedRec);
            let history: Vec<_> = (0..30).map(|i| like(i * 2, i as i64)).collect();
            client.record_batch(&history).unwrap();
        }
        let lines = run_and_kill("train", &dir, delay, attempt);
        commits_seen += lines.len();

        let client = Client::open(ClientConfig::new(dir.db())).unwrap();
        assert!(client.integrity_check().unwrap(), "attempt {attempt}");
        let stats = client.stats().unwrap();
        let printed = lines.len() as u64;
        eprintln!(
            "train attempt {attempt}: killed at {delay:?}, {printed} reported, {} on disk",
            stats.rounds_trained
        );
        // The kill may land after a commit but before its line was printed.
        assert!(
            stats.rounds_trained == printed || stats.rounds_trained == printed + 1,
            "attempt {attempt}: {} rounds on disk, {printed} reported",
            stats.rounds_trained
        );
        // State and update land together; every round trains on the same
        // model version, so the outbox holds one update: the newest round's.
        assert_eq!(
            stats.pending_uploads as u64,
            stats.rounds_trained.min(1),
            "attempt {attempt}: private state and outbox out of step"
        );
        if stats.rounds_trained == printed
            && let Some(last) = lines.last()
        {
            let key = last.split_whitespace().nth(2).unwrap();
            let newest = client.pending_uploads().unwrap().pop().unwrap();
            assert_eq!(newest.idempotency_key, key, "attempt {attempt}");
        }
        // And the client carries on from there.
        trains_and_ranks(&client);
    }
    assert!(
        commits_seen > 0,
        "no kill landed after a commit: delays too short"
    );
}

/// A model install killed at any point: the model on disk is the last one
/// installed (or the one being installed), readable, and exactly one model
/// file is left beside the database.
#[test]
fn killed_during_apply_model_keeps_one_readable_model() {
    let ds = small_dataset();
    let mut commits_seen = 0;
    for (attempt, delay) in delays(13).into_iter().enumerate() {
        let dir = TempDir::new("crash-apply");
        ready_client(&dir, &ds, Backbone::FedAvg)
            .record_batch(&[like(3, 1), like(8, 2)])
            .unwrap();
        let lines = run_and_kill("apply", &dir, delay, attempt);
        commits_seen += lines.len();

        let client = Client::open(ClientConfig::new(dir.db())).unwrap();
        assert!(client.integrity_check().unwrap(), "attempt {attempt}");
        let printed = lines
            .last()
            .map_or(1, |l| l.split_whitespace().nth(2).unwrap().parse().unwrap());
        let version = client.stats().unwrap().model_version.unwrap();
        eprintln!(
            "apply attempt {attempt}: killed at {delay:?}, v{printed} reported, v{version} on disk"
        );
        assert!(
            version == printed || version == printed + 1,
            "attempt {attempt}: model v{version} on disk, v{printed} reported"
        );
        let files: Vec<String> = std::fs::read_dir(&dir.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".model-"))
            .collect();
        assert_eq!(files.len(), 1, "attempt {attempt}: {files:?}");
        // The model reads (training decodes it) and ranks.
        trains_and_ranks(&client);
    }
    assert!(
        commits_seen > 0,
        "no kill landed after a commit: delays too short"
    );
}

#[test]
fn killed_during_record_batch_keeps_whole_batches() {
    let mut commits_seen = 0;
    for (attempt, delay) in delays(12).into_iter().enumerate() {
        let dir = TempDir::new("crash-record");
        let lines = run_and_kill("record", &dir, delay, attempt);
        commits_seen += lines.len();

        let client = Client::open(ClientConfig::new(dir.db())).unwrap();
        assert!(client.integrity_check().unwrap(), "attempt {attempt}");
        let stored = client.stats().unwrap().interactions;
        let printed = lines.len() * BATCH;
        eprintln!(
            "record attempt {attempt}: killed at {delay:?}, {printed} reported, {stored} on disk"
        );
        assert!(
            stored == printed || stored == printed + BATCH,
            "attempt {attempt}: {stored} interactions on disk, {printed} reported"
        );
        // Whole batches, in order: the newest timestamp is the count - 1.
        let export: serde_json::Value = serde_json::from_str(&client.export().unwrap()).unwrap();
        if let Some(last) = export["interactions"].as_array().unwrap().last() {
            assert_eq!(last["timestamp_ms"], stored as i64 - 1, "attempt {attempt}");
        }
    }
    assert!(
        commits_seen > 0,
        "no kill landed after a commit: delays too short"
    );
}
