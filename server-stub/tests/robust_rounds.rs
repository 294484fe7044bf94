//! The server's robust aggregation options as a round sees them: under
//! `--aggregation median` one outlying client does not move the model;
//! `--row-clip` bounds how far one client pushes a row; both survive a
//! restart (the open round is replayed into the same rule).

mod common;

use common::*;
use fedmr_core::aggregate::Combine;
use fedmr_server::ServerConfig;

fn row0(core: &fedmr_server::ServerCore) -> f32 {
    core.snapshot().global.items.0.0[(0, 0)]
}

fn round_with_an_outlier(tweak: impl Fn(&mut ServerConfig)) -> f32 {
    let dir = TempDir::new("robust");
    let config = || {
        let mut c = ServerConfig::new(&dir.0, ADMIN);
        c.min_updates = 3;
        tweak(&mut c);
        c
    };
    let core = open_core(config());
    let before = row0(&core);
    for (client, value) in [("a", 0.01f32), ("b", 0.01)] {
        let mut m = update_for(&core, client);
        m.item_rows.iter_mut().for_each(|v| *v = value);
        core.submit(client, &m.encode()).unwrap();
    }
    // A restart before the last update: the round is replayed into the rule.
    drop(core);
    let core = open_core(config());
    let mut m = update_for(&core, "c");
    m.item_rows.iter_mut().for_each(|v| *v = 5.0);
    core.submit("c", &m.encode()).unwrap();
    assert_eq!(core.snapshot().version, 2);
    row0(&core) - before
}

#[test]
fn median_and_row_clipping_hold_back_one_outlier() {
    let mean = round_with_an_outlier(|_| {});
    let median = round_with_an_outlier(|c| c.combine = Combine::Median);
    let clipped = round_with_an_outlier(|c| c.row_clip = Some(2.0));
    assert!(mean > 1.0, "the mean follows the outlier: {mean}");
    assert!((median - 0.01).abs() < 1e-6, "{median}");
    // The outlier's row change is cut to twice the row's median change.
    assert!(clipped < 0.05, "{clipped}");
}
