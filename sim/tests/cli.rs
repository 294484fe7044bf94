//! The `fedmr-sim` binary as a user runs it: output files, the final table,
//! and clear failures for bad arguments.

use std::path::PathBuf;
use std::process::Command;

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fedmr-sim-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_short_run_writes_rounds_csv_result_json_and_prints_the_table() {
    let out = out_dir("run");
    let output = Command::new(env!("CARGO_BIN_EXE_fedmr-sim"))
        .args(["--rounds", "3", "--dim", "16", "--seeds", "0,1", "--out"])
        .arg(&out)
        .output()
        .expect("run fedmr-sim");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for row in [
        "| random |",
        "| popularity |",
        "| cold-first |",
        "| fedavg + mffm |",
    ] {
        assert!(stdout.contains(row), "missing {row} in:\n{stdout}");
    }
    for seed in ["seed0", "seed1"] {
        let csv = std::fs::read_to_string(out.join(seed).join("rounds.csv")).expect("rounds.csv");
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4, "header + 3 rounds");
        assert!(lines[0].starts_with("round,clients,train_loss"));
        // Over HTTP (the default) the updates go to the server: their norms
        // are unknown here and left empty, not printed as 0.
        for line in &lines[1..] {
            let columns: Vec<&str> = line.split(',').collect();
            assert_eq!(columns[4..7], ["", "", ""], "{line}");
        }
        let json =
            std::fs::read_to_string(out.join(seed).join("result.json")).expect("result.json");
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(value["rounds"].as_array().map(Vec::len), Some(3));
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_new_item_split_prints_new_items_beside_the_baselines_that_can_rank_them() {
    let out = out_dir("new-items");
    let output = Command::new(env!("CARGO_BIN_EXE_fedmr-sim"))
        .args(["--rounds", "2", "--dim", "16", "--seeds", "0"])
        .args(["--split", "new-items", "--new-share", "0.2"])
        .args(["--fusion", "residual", "--transport", "in-process", "--out"])
        .arg(&out)
        .output()
        .expect("run fedmr-sim");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // The synthetic data's 490 items with interactions: the newest 98 held out.
    assert!(
        stderr.contains("98 new items held out (402 old)"),
        "{stderr}"
    );
    for row in [
        "among the 98 new items",
        "| random |",
        "| popularity (ties by id) |",
        "| content-kNN (k = 10) |",
        "| fedavg + residual |",
    ] {
        assert!(stdout.contains(row), "missing {row} in:\n{stdout}");
    }
    let json = std::fs::read_to_string(out.join("seed0").join("result.json")).expect("result.json");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let users = &value["rounds"][0]["new_items"]["test"]["among_new"]["users"];
    assert!(users.as_u64().is_some_and(|n| n > 0), "{users}");
    let csv = std::fs::read_to_string(out.join("seed0").join("rounds.csv")).expect("rounds.csv");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = header
        .iter()
        .position(|c| *c == "new_valid_among_new_hr50")
        .expect("new-item columns in rounds.csv");
    for line in csv.lines().skip(1) {
        let value: f64 = line.split(',').nth(column).unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&value), "{line}");
    }
    // Over HTTP the split is refused rather than silently ignored.
    let http = Command::new(env!("CARGO_BIN_EXE_fedmr-sim"))
        .args(["--rounds", "1", "--split", "new-items", "--out"])
        .arg(&out)
        .output()
        .expect("run fedmr-sim");
    assert!(!http.status.success());
    assert!(String::from_utf8_lossy(&http.stderr).contains("in process"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_arguments_fail_with_a_message_and_no_output() {
    let out = out_dir("bad");
    for args in [
        vec!["--fusion", "nonsense"],
        vec!["--lr", "-1"],
        vec!["--dataset", "/no/such/folder"],
        vec!["--modalities", "audio"],
        vec!["--split", "sideways"],
        vec!["--fusion", "residual@-1"],
        vec!["--fusion", "residual@0.1/1.5"],
        vec!["--fusion", "residual", "--no-id"],
        vec!["--split", "new-items", "--new-share", "1.5"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_fedmr-sim"))
            .args(&args)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run fedmr-sim");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} wrote output");
    }
}
