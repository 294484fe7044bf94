//! A store that exists but is damaged or incomplete is refused at start
//! with a clear message, never silently replaced by a new federation or
//! served without the rounds it lost; `init`, `backup` and `init
//! --from-backup` are the operator's tools (README, "Durability").

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use fedmr_core::train::TrainConfig;
use fedmr_server::db::ServerDb;
use fedmr_server::{Durability, ServerConfig, ServerCore, ServerError, genesis_from_dataset};

const BIN: &str = env!("CARGO_BIN_EXE_fedmr-server");

fn config(dir: &Path) -> ServerConfig {
    let mut c = ServerConfig::new(dir, ADMIN);
    c.min_updates = 2;
    c
}

/// Opens (or creates) a store; `called` says whether a new federation was made.
fn open(dir: &Path, called: &AtomicBool) -> Result<ServerCore, ServerError> {
    ServerCore::open(config(dir), || {
        called.store(true, Ordering::SeqCst);
        genesis_from_dataset(&dataset(), &model_config(), &TrainConfig::default(), 1)
    })
}

/// Two closed rounds (version 3), a token (returned), one update pending.
fn populate(core: &ServerCore) -> String {
    let token = core.issue_token("phone-a").unwrap();
    let mut n = 0;
    for _ in 0..2 {
        for _ in 0..2 {
            n += 1;
            let body = update_for(core, &format!("k{n}")).encode();
            core.submit(&format!("c{n}"), &body).unwrap();
        }
    }
    let body = update_for(core, "pending").encode();
    core.submit("late", &body).unwrap();
    assert_eq!(core.snapshot().version, 3);
    token
}

fn damaged(result: Result<ServerCore, ServerError>) -> String {
    match result {
        Err(ServerError::Damaged(m)) => m,
        Err(e) => panic!("expected a damaged-store error, got {e}"),
        Ok(_) => panic!("a damaged store was opened"),
    }
}

/// `fedmr-server <args> <dir> <more> <file>`.
fn run(args: &[&str], dir: &Path, more: &[&str], file: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg(dir)
        .args(more)
        .arg(file)
        .output()
        .unwrap()
}

fn db(dir: &Path) -> PathBuf {
    dir.join("server.sqlite")
}

#[test]
fn an_existing_store_without_a_model_is_refused_not_made_new() {
    // A zero-length file (a first start killed at once, or everything was
    // still in a WAL that is gone) and a file with the schema only.
    for with_schema in [false, true] {
        let dir = TempDir::new("damaged-empty");
        if with_schema {
            drop(ServerDb::open(&db(&dir.0), Durability::Normal).unwrap());
        } else {
            std::fs::write(db(&dir.0), b"").unwrap();
        }
        // The round files of the rounds the lost WAL held are left too.
        let rounds = dir.0.join("server.sqlite-rounds");
        std::fs::create_dir_all(&rounds).unwrap();
        std::fs::write(rounds.join("round-4.updates"), b"payloads").unwrap();
        let before = std::fs::read(db(&dir.0)).unwrap();
        let called = AtomicBool::new(false);
        let message = damaged(open(&dir.0, &called));
        assert!(message.contains("no published model"), "{message}");
        assert!(!called.load(Ordering::SeqCst), "a new federation was made");
        assert_eq!(
            std::fs::read(db(&dir.0)).unwrap(),
            before,
            "the file changed"
        );
        assert!(
            rounds.join("round-4.updates").exists(),
            "a refused store's round files were removed"
        );
    }
}

#[test]
fn a_truncated_store_is_refused_and_left_as_it_is() {
    let dir = TempDir::new("damaged-truncated");
    let called = AtomicBool::new(false);
    let _ = populate(&open(&dir.0, &called).unwrap());
    // Closed cleanly: the WAL is checkpointed into the main file.
    let bytes = std::fs::read(db(&dir.0)).unwrap();
    assert!(bytes.len() > 8192, "{}", bytes.len());
    std::fs::write(db(&dir.0), &bytes[..bytes.len() / 2]).unwrap();
    called.store(false, Ordering::SeqCst);
    let message = damaged(open(&dir.0, &called));
    assert!(message.contains("--from-backup"), "{message}");
    assert!(!called.load(Ordering::SeqCst));
    assert_eq!(
        std::fs::read(db(&dir.0)).unwrap().len(),
        bytes.len() / 2,
        "a refused store is not modified"
    );
}

#[test]
fn a_lost_wal_is_caught_by_the_published_version_seal() {
    let dir = TempDir::new("damaged-wal");
    let called = AtomicBool::new(false);
    let core = open(&dir.0, &called).unwrap();
    let _ = populate(&core);
    // While the server runs its newest commits live in the WAL: copy the
    // main file and the seal only, as a crash that lost the WAL leaves them.
    let lost = TempDir::new("damaged-wal-copy");
    std::fs::copy(db(&dir.0), db(&lost.0)).unwrap();
    let seal = fedmr_server::seal::path(&db(&dir.0));
    std::fs::copy(&seal, fedmr_server::seal::path(&db(&lost.0))).unwrap();
    // The round files survive such a crash: they are copied too.
    let rounds = |d: &Path| d.join("server.sqlite-rounds");
    std::fs::create_dir_all(rounds(&lost.0)).unwrap();
    let files: Vec<_> = std::fs::read_dir(rounds(&dir.0))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!files.is_empty());
    for name in &files {
        std::fs::copy(rounds(&dir.0).join(name), rounds(&lost.0).join(name)).unwrap();
    }
    drop(core);
    called.store(false, Ordering::SeqCst);
    let message = damaged(open(&lost.0, &called));
    assert!(
        message.contains("version 3 was published") || message.contains("no published model"),
        "{message}"
    );
    assert!(!called.load(Ordering::SeqCst));
    for name in &files {
        assert!(
            rounds(&lost.0).join(name).exists(),
            "a refused store's round files are left as they were"
        );
    }
    // The original, closed cleanly, opens with everything.
    let core = open(&dir.0, &called).unwrap();
    assert_eq!(core.snapshot().version, 3);
    assert_eq!(core.round_message().accepted, 1);
}

#[test]
fn backup_while_serving_then_restore_with_init() {
    let dir = TempDir::new("backup-live");
    let called = AtomicBool::new(false);
    let core = open(&dir.0, &called).unwrap();
    let token = populate(&core);
    let etag = core.snapshot().model.etag.clone();
    let copy = dir.0.join("copy.sqlite");
    let backup = || run(&["backup", "--data-dir"], &dir.0, &["--out"], &copy);
    let out = backup();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server goes on after the copy (this update closes round 3).
    let body = update_for(&core, "after-backup").encode();
    core.submit("later", &body).unwrap();
    assert_eq!(core.snapshot().version, 4);
    let again = backup();
    assert!(
        !again.status.success(),
        "an existing file is not overwritten"
    );

    let restored = TempDir::new("backup-restored");
    let init = run(
        &["init", "--data-dir"],
        &restored.0,
        &["--from-backup"],
        &copy,
    );
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let back = open(&restored.0, &called).unwrap();
    assert_eq!(back.snapshot().version, 3);
    assert_eq!(
        back.round_message().accepted,
        1,
        "the pending update came along"
    );
    assert_eq!(back.snapshot().model.etag, etag);
    let header = format!("Bearer {token}");
    assert_eq!(
        back.tokens.client_for(Some(&header)).as_deref(),
        Some("phone-a")
    );
}

#[test]
fn serve_refuses_a_missing_store_and_init_makes_one_once() {
    let dir = TempDir::new("cli-init");
    let data = dir.0.join("data");
    let serve = Command::new(BIN)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--admin-token",
            "a",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!serve.status.success());
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(
        err.contains("no federation") && err.contains("init"),
        "{err}"
    );
    assert!(!db(&data).exists(), "nothing was created");
    let init = || {
        Command::new(BIN)
            .args(["init", "--protection", "hidden-count", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap()
    };
    let first = init();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = init();
    assert!(
        !second.status.success(),
        "init does not overwrite a federation"
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("--replace"));
    // A damaged store can be moved aside and replaced, on request only.
    std::fs::write(db(&data), b"not a database at all, just junk bytes......").unwrap();
    let replace = Command::new(BIN)
        .args(["init", "--replace", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        replace.status.success(),
        "{}",
        String::from_utf8_lossy(&replace.stderr)
    );
    let aside = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains("replaced-"));
    assert!(aside, "the old store was kept");
    let bad = Command::new(BIN)
        .args([
            "serve",
            "--durability",
            "fast",
            "--admin-token",
            "a",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("durability"));
}

/// `init --replace` moves the whole old store aside, its round files too:
/// put back, it still holds its pending update.
#[test]
fn a_replaced_store_keeps_its_pending_updates() {
    let dir = TempDir::new("replace-rounds");
    let called = AtomicBool::new(false);
    let core = open(&dir.0, &called).unwrap();
    let _ = populate(&core);
    drop(core);
    let out = Command::new(BIN)
        .args(["init", "--replace", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let aside = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.contains("replaced-")
                && p.is_file()
                && !name.ends_with("-wal")
                && !name.ends_with("-shm")
        })
        .expect("the old store was kept");
    let back = TempDir::new("replace-rounds-back");
    std::fs::rename(&aside, db(&back.0)).unwrap();
    let mut rounds = aside.into_os_string();
    rounds.push("-rounds");
    let mut to = db(&back.0).into_os_string();
    to.push("-rounds");
    std::fs::rename(&rounds, &to).expect("the round files were moved with the store");
    let restored = open(&back.0, &called).unwrap();
    assert_eq!(restored.snapshot().version, 3);
    assert_eq!(
        restored.round_message().accepted,
        1,
        "the pending update is there"
    );
}

#[test]
fn full_durability_syncs_every_commit() {
    let dir = TempDir::new("durability");
    let full = ServerDb::open(&db(&dir.0), Durability::Full).unwrap();
    assert_eq!(full.synchronous().unwrap(), 2);
    drop(full);
    let normal = ServerDb::open(&db(&dir.0), Durability::Normal).unwrap();
    assert_eq!(normal.synchronous().unwrap(), 1);
}
