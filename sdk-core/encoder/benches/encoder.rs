//! Sentence encoders' throughput on one thread: 200 item titles, for both
//! models scripts/fetch-models brings, encoded in one call (runs of 32) and
//! one title per call. The baseline, in the same run, is tokenising the same
//! titles alone: the ratio says how much of the cost is the network. The int8
//! model runs at a fixed length: 128 (as in the tests) and 32 (enough for titles).
//!
//! Run: scripts/fetch-models && cargo bench -p fedmr-core --features encoder --bench encoder

use std::hint::black_box;
use std::time::Instant;

use fedmr_encoder::{TextEncoder, TextEncoderOptions};
use fedmr_test_support::median_secs;

const TITLES: usize = 200;
const RUNS: usize = 5;

/// Deterministic item titles of typical length (5 to 12 words).
fn titles() -> Vec<String> {
    let brands = [
        "Acme", "Nordlys", "Kumo", "Vireo", "Halden", "Orbit", "Sable",
    ];
    let adjectives = [
        "wireless",
        "organic",
        "waterproof",
        "compact",
        "stainless steel",
        "vintage",
    ];
    let products = [
        "noise cancelling headphones",
        "green tea, 100 bags",
        "hiking boots for men",
        "espresso machine with milk frother",
        "detective novel, paperback",
        "kids' running shoes",
        "USB-C charging cable 2m",
    ];
    let details = [
        "",
        " - black",
        ", size 42",
        " (pack of 3)",
        ", 2024 edition",
        " with free case",
    ];
    (0..TITLES)
        .map(|i| {
            format!(
                "{} {} {}{}",
                brands[i % brands.len()],
                adjectives[(i / 7) % adjectives.len()],
                products[(i / 3) % products.len()],
                details[(i / 5) % details.len()],
            )
        })
        .collect()
}

fn bench_model(name: &str, options: TextEncoderOptions, titles: &[&str]) {
    let dir = fedmr_test_support::models_dir().join(name);
    let start = Instant::now();
    let encoder = match TextEncoder::load(&dir, options.clone()) {
        Ok(encoder) => encoder,
        Err(err) => {
            eprintln!("{name}: {err}\nrun scripts/fetch-models first");
            std::process::exit(1);
        }
    };
    let load = start.elapsed().as_secs_f64();
    let tokens: usize = titles
        .iter()
        .map(|t| encoder.token_ids(t).unwrap().len())
        .sum();

    let tokenise = median_secs(RUNS, || {
        for title in titles {
            black_box(encoder.token_ids(title).unwrap());
        }
    });
    let batched = median_secs(RUNS, || {
        black_box(encoder.encode(titles).unwrap());
    });
    let one_by_one = median_secs(RUNS, || {
        for title in titles {
            black_box(encoder.encode(&[title]).unwrap());
        }
    });
    let n = titles.len() as f64;
    println!(
        "{name} (max_len {}, fixed_len {:?}; {:.1} tokens/title; load {load:.2} s)",
        options.max_len,
        options.fixed_len,
        tokens as f64 / n
    );
    println!("  tokenise only (baseline) {:>10.0} titles/s", n / tokenise);
    println!(
        "  encode, runs of 32       {:>10.1} titles/s  ({:.0}x the tokenise time)",
        n / batched,
        batched / tokenise
    );
    println!(
        "  encode, one per call     {:>10.1} titles/s  ({:.0}x the tokenise time)",
        n / one_by_one,
        one_by_one / tokenise
    );
}

fn main() {
    let titles = titles();
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    println!("{} titles, one thread, median of {RUNS} runs", titles.len());
    bench_model(
        "paraphrase-minilm-l3",
        TextEncoderOptions {
            max_len: 128,
            fixed_len: None,
        },
        &titles,
    );
    bench_model(
        "all-minilm-l6-int8",
        TextEncoderOptions {
            max_len: 128,
            fixed_len: Some(128),
        },
        &titles,
    );
    // Titles fit in 32 tokens: the fixed length, not the model, sets the int8 cost.
    bench_model(
        "all-minilm-l6-int8",
        TextEncoderOptions {
            max_len: 32,
            fixed_len: Some(32),
        },
        &titles,
    );
}
