//! One local round (FEDMR.md, "Training") for a heavy user: 200 positives +
//! 200 negatives per epoch, a 10,000-item catalog with two 512-d modalities,
//! d = 64, 5 epochs, one thread.
//!
//! The machine is shared and noisy, so besides the times it prints ratios
//! against baselines measured in the same process: the ID-only round on the
//! same data, and one 400x512 · 512x64 matrix product (the size of one
//! modality projection of the batch) through the GEMM the layers use
//! (`layers::matmul`) and through ndarray's `dot` (what they used before).
//! By FLOPs the round is about 46 such products (forward and backward of
//! every layer, 5 epochs), so 46 / the ratio is the share of the GEMM's
//! rate the whole round reaches.
//!
//! Run: cargo bench -p fedmr-core --bench local_round
//! Against JAX and PyTorch in the same window: scripts/bench-local-round-vs-peers

use std::hint::black_box;

use fedmr_core::model::layers::matmul::matmul;
use fedmr_core::model::{Backbone, Catalog, FusionMode, GlobalModel, ModelConfig, PrivateState};
use fedmr_core::rng::Rng;
use fedmr_core::train::{TrainConfig, train_local};
use fedmr_test_support::median_secs;
use ndarray::Array2;

const ITEMS: usize = 10_000;
const POSITIVES: usize = 200;
const FEATURE_DIM: usize = 512;

fn round_secs(fusion: FusionMode, catalog: &Catalog, positives: &[u32]) -> f64 {
    let config = ModelConfig {
        backbone: Backbone::FedAvg,
        fusion,
        dim: 64,
        init_std: 0.1,
    };
    let global = GlobalModel::new(&config, catalog, 1).expect("valid model");
    let train = TrainConfig {
        lr: 0.05,
        epochs: 5,
        negatives: 1,
        item_lr: None,
        ..TrainConfig::default()
    };
    let mut round = 0u64;
    median_secs(15, || {
        let mut state = PrivateState::new(&config, &global, 3);
        round += 1;
        let out = train_local(
            &global,
            catalog,
            config.backbone,
            &mut state,
            positives,
            &train,
            &mut Rng::new(round),
        );
        black_box(out.expect("training succeeds"));
    })
}

fn main() {
    let mut rng = Rng::new(42);
    let features = (0..2)
        .map(|_| Array2::from_shape_simple_fn((ITEMS, FEATURE_DIM), || rng.normal() as f32))
        .collect();
    let catalog = Catalog {
        n_items: ITEMS,
        features,
    };
    let mut ids: Vec<u32> = (0..ITEMS as u32).collect();
    rng.shuffle(&mut ids);
    let mut positives = ids[..POSITIVES].to_vec();
    positives.sort_unstable();

    let a = Array2::from_shape_simple_fn((2 * POSITIVES, FEATURE_DIM), || rng.normal() as f32);
    let b = Array2::from_shape_simple_fn((FEATURE_DIM, 64), || rng.normal() as f32);
    let product = median_secs(200, || {
        black_box(matmul(&a.view(), &b.view()));
    });
    let ndarray_product = median_secs(200, || {
        black_box(a.dot(&b));
    });
    let id_only = round_secs(FusionMode::IdOnly, &catalog, &positives);
    let mffm = round_secs(FusionMode::full(), &catalog, &positives);

    println!(
        "local round, {} positives + {} negatives, {ITEMS} items, 2 x {FEATURE_DIM}-d features, d = 64, 5 epochs, 1 thread",
        positives.len(),
        positives.len()
    );
    println!("  FedAvg + MFFM round : {:8.2} ms", mffm * 1e3);
    println!("  FedAvg ID-only round: {:8.2} ms", id_only * 1e3);
    println!("  400x512·512x64 matmul: {:7.3} ms", product * 1e3);
    println!("  the same, ndarray dot: {:7.3} ms", ndarray_product * 1e3);
    println!("  ratio MFFM / ID-only       : {:6.1}x", mffm / id_only);
    println!("  ratio MFFM / one projection: {:6.1}x", mffm / product);
    println!(
        "  share of the GEMM's rate   : {:6.1}% (46 products' FLOPs)",
        100.0 * 46.0 * product / mffm
    );
}
