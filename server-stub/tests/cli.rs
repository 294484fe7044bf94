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
    let (mut child, url) = serve(&data, &["--tokens".as_ref(), tokens.as_os_str()]);

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
    let (header, _) = fedmr_core::wire::ModelMessage::decode(&model.bytes().unwrap()).unwrap();
    // The shipped default: secure aggregation (README, "What the server
    // learns").
    assert_eq!(
        header.train.protection,
        fedmr_core::privacy::Protection::preset("secure", 1.0).unwrap()
    );
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

/// Starts `serve` with `extra` arguments; returns the child and its URL.
fn serve(data: &std::path::Path, extra: &[&std::ffi::OsStr]) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--init",
            "--bind",
            "127.0.0.1:0",
            "--admin-token",
            "adm",
        ])
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (child, url)
}

/// `catalog build` from an items file and precomputed features, then a
/// server whose first catalog is that file.
#[test]
fn catalog_build_from_npy_then_serve_it() {
    let dir = temp("catalog");
    let items = dir.join("items.tsv");
    std::fs::write(&items, "key\ttitle\nm-1\tHeat\nm-2\tAlien\nm-3\tUp\n").unwrap();
    let npy = dir.join("image.npy");
    let features = ndarray::Array2::from_shape_fn((3, 5), |(i, j)| (i + j) as f32 / 7.0);
    fedmr_data::npy::write_npy_f32(&npy, &features).unwrap();
    let out = dir.join("catalog.fdmr");
    let status = Command::new(BIN)
        .args(["catalog", "build", "--items"])
        .arg(&items)
        .arg("--npy")
        .arg(format!("image={}", npy.display()))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let (catalog, _) =
        fedmr_core::wire::CatalogMessage::decode(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(catalog.items[2].key, "m-3");
    assert_eq!(catalog.modalities[0].name, "image");

    let (mut child, url) = serve(&dir.join("data"), &["--catalog".as_ref(), out.as_os_str()]);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::new();
    let token = http
        .post(format!("{url}/v1/admin/clients"))
        .bearer_auth("adm")
        .body("phone")
        .send()
        .unwrap()
        .text()
        .unwrap();
    let served = http
        .get(format!("{url}/v1/catalog"))
        .bearer_auth(token.trim())
        .send()
        .unwrap();
    assert_eq!(served.status(), 200);
    let (got, _) = fedmr_core::wire::CatalogMessage::decode(&served.bytes().unwrap()).unwrap();
    assert_eq!(got, catalog, "the server publishes the built catalog");
    child.kill().unwrap();
    child.wait().unwrap();

    // Bad inputs: a wrong row count, nothing to build, a missing file.
    let short = dir.join("short.npy");
    fedmr_data::npy::write_npy_f32(&short, &features.slice(ndarray::s![..2, ..]).to_owned())
        .unwrap();
    for args in [
        vec!["--npy".to_string(), format!("image={}", short.display())],
        vec![],
        vec!["--npy".to_string(), "image=/nonexistent.npy".to_string()],
    ] {
        let output = Command::new(BIN)
            .args(["catalog", "build", "--items"])
            .arg(&items)
            .args(&args)
            .arg("--out")
            .arg(dir.join("bad.fdmr"))
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        assert!(!String::from_utf8_lossy(&output.stderr).is_empty());
    }
}

/// `catalog build` with the sentence encoder (scripts/fetch-models).
#[test]
fn catalog_build_encodes_text() {
    let models = fedmr_test_support::models_dir();
    let model = models.join("paraphrase-minilm-l3");
    if !model.join("model.onnx").is_file() {
        let message = format!("{} not found: run scripts/fetch-models", model.display());
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("SKIPPED: {message}");
        return;
    }
    let dir = temp("catalog-text");
    let items = dir.join("items.tsv");
    std::fs::write(
        &items,
        "key\ttitle\tgenres\nm-1\tToy Story (1995)\tAnimation\nm-2\tHeat (1995)\tCrime\n",
    )
    .unwrap();
    let out = dir.join("catalog.fdmr");
    let status = Command::new(BIN)
        .args(["catalog", "build", "--items"])
        .arg(&items)
        .arg("--text-model")
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let (catalog, _) =
        fedmr_core::wire::CatalogMessage::decode(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(catalog.modalities[0].name, "text");
    assert_eq!(catalog.modalities[0].dim, 384);
    assert_eq!(catalog.items.len(), 2);
}

/// A robust aggregation rule needs each update; secure aggregation (the
/// default protection) hides them: the server refuses the pair at start.
#[test]
fn robust_aggregation_with_secure_aggregation_is_refused_at_start() {
    let dir = temp("robust-secure");
    for extra in [["--aggregation", "median"], ["--row-clip", "10"]] {
        let out = Command::new(BIN)
            .args([
                "serve",
                "--init",
                "--bind",
                "127.0.0.1:0",
                "--admin-token",
                "adm",
            ])
            .args(extra)
            .arg("--data-dir")
            .arg(dir.join(extra[0].trim_start_matches('-')))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("needs each update"), "{err}");
        let store = dir
            .join(extra[0].trim_start_matches('-'))
            .join("server.sqlite");
        assert!(!store.exists(), "a refused start leaves no store behind");
    }
    let bad = Command::new(BIN)
        .args([
            "serve",
            "--init",
            "--aggregation",
            "krum",
            "--admin-token",
            "adm",
            "--data-dir",
        ])
        .arg(dir.join("krum"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("krum"));
    let _ = std::fs::remove_dir_all(dir);
}
