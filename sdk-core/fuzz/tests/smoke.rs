//! The fuzz targets on stable Rust, as CI runs them: every seed (valid
//! messages and files) and every saved regression first, then seeded
//! mutations of them (bit flips, truncations, splices, inserted bytes) for
//! `FEDMR_FUZZ_SECONDS` per target (default 2). A panic fails the test and
//! prints the input as hex, to be saved under `regressions/<target>/`.
//! Coverage-guided runs: `libfuzzer/` (README, "Fuzzing").

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fedmr_core::rng::Rng;
use fedmr_fuzz::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Files of `dir` (recursively one level: `dir/<target>/*`).
fn files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let mut all = files(&fuzz_dir().join("seeds").join(target));
    all.extend(files(&fuzz_dir().join("regressions").join(target)));
    all.push(Vec::new());
    all
}

fn mutate(rng: &mut Rng, pool: &[Vec<u8>]) -> Vec<u8> {
    let mut data = pool[rng.below(pool.len() as u64) as usize].clone();
    for _ in 0..=rng.below(4) {
        let len = data.len() as u64;
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len) as usize;
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => data.truncate(rng.below(len) as usize),
            2 => {
                let i = rng.below(len + 1) as usize;
                let byte = [0, 0xff, 0x7f, 0x80, b'\t', b'\n', b','][rng.below(7) as usize];
                data.insert(i, byte);
            }
            3 if len > 0 => {
                let i = rng.below(len) as usize;
                data[i] = rng.next_u64() as u8;
            }
            4 => {
                let other = &pool[rng.below(pool.len() as u64) as usize];
                let at = rng.below(other.len() as u64 + 1) as usize;
                data.extend_from_slice(&other[at..]);
            }
            _ if len >= 8 => {
                // An interesting width in a length field: 0, max, huge.
                let i = rng.below(len - 7) as usize;
                let v: u64 = [0, u64::MAX, u32::MAX as u64, 1 << 40][rng.below(4) as usize];
                data[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }
    data
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn run(target: &str, f: fn(&[u8]), data: &[u8]) {
    let result = std::panic::catch_unwind(|| f(data));
    assert!(
        result.is_ok(),
        "fuzz target {target} panicked on input {} (save it as regressions/{target}/<name>)",
        hex(data)
    );
}

#[test]
fn every_target_survives_its_seeds_regressions_and_mutations() {
    let budget = std::env::var("FEDMR_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    for (target, f) in TARGETS {
        let pool = inputs(target);
        assert!(
            pool.len() > 1,
            "no seeds for {target}: run `cargo test -p fedmr-fuzz --test seeds` with FEDMR_WRITE_SEEDS=1"
        );
        for data in &pool {
            run(target, *f, data);
        }
        let mut rng = Rng::new(0xf022 ^ target.len() as u64);
        let start = Instant::now();
        let mut executions = pool.len();
        while start.elapsed() < Duration::from_secs_f64(budget) {
            let data = mutate(&mut rng, &pool);
            run(target, *f, &data);
            executions += 1;
        }
        eprintln!("{target}: {executions} inputs, no panic");
    }
}
