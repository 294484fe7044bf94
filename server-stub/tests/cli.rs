//! The `fedmr-server` binary as an operator runs it: `serve` on a port,
//! `issue-token` against its data folder, a tokens file, bad arguments.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_fedmr-server");

fn temp(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fedmr-server-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn serve_issue_token_and_tokens_file() {
    let dir = temp("serve");
    let data = dir.join("data");
    let tokens = dir.join("tokens.txt");
    std::fs::write(&tokens, "# client token\nphone-7 file-token-123\n").unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--admin-token", "adm"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--tokens")
        .arg(&tokens)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("serving line")
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::new();
    assert_eq!(
        http.get(format!("{url}/healthz")).send().unwrap().status(),
        200
    );
    let model = http
        .get(format!("{url}/v1/model"))
        .bearer_auth("file-token-123")
        .send()
        .unwrap();
    assert_eq!(model.status(), 200, "token from the tokens file");
    assert!(fedmr_core::wire::ModelMessage::decode(&model.bytes().unwrap()).is_ok());
    child.kill().unwrap();
    child.wait().unwrap();

    // issue-token writes to the same database; the token works after a restart.
    let out = Command::new(BIN)
        .arg("issue-token")
        .arg("--data-dir")
        .arg(&data)
        .arg("phone-8")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.len(), 64);

    let bad = Command::new(BIN)
        .args(["serve", "--norm-policy", "maybe", "--admin-token", "a"])
        .arg("--data-dir")
        .arg(dir.join("other"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--norm-policy"));
    let missing = Command::new(BIN)
        .arg("issue-token")
        .arg("--data-dir")
        .arg(dir.join("nothing"))
        .arg("x")
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let _ = std::fs::remove_dir_all(dir);
}
