//! `fedmr-server init --fusion`: an operator picks the published model's
//! fusion form (issue 17), and a bad one is refused with nothing created.

use std::process::Command;

use fedmr_core::model::FusionMode;
use fedmr_core::wire::ModelMessage;
use fedmr_server::Durability;
use fedmr_server::db::ServerDb;
use fedmr_test_support::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_fedmr-server");

fn init(data: &std::path::Path, fusion: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["init", "--protection", "hidden-count", "--fusion", fusion])
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn init_publishes_the_chosen_fusion_and_refuses_a_bad_one() {
    let dir = TempDir::new("init-fusion");
    let data = dir.0.join("data");
    let bad = init(&data, "residual@0");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--fusion") && err.contains("learning rate"),
        "{err}"
    );
    assert!(!data.join("server.sqlite").exists(), "nothing was created");

    let ok = init(&data, "residual@0.003/0.2");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let db = ServerDb::open(&data.join("server.sqlite"), Durability::Normal).unwrap();
    let model = db.latest_model().unwrap().unwrap();
    let (message, _) = ModelMessage::decode(&model.bytes).unwrap();
    assert_eq!(
        Ok(message.config.fusion),
        FusionMode::parse("residual@0.003/0.2", false)
    );
}
