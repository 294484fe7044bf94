//! MovieLens-100k as `scripts/fetch-ml100k` extracts it from the pinned
//! recbole wheel: skipped with a notice when absent, a failure under CI=true.

use fedmr_core::data::SplitLabel;
use fedmr_data::recbole::{load_recbole, shared_ml100k_dir};

#[test]
fn ml100k_loads_with_a_leave_one_out_split_by_time() {
    let Some(dir) = shared_ml100k_dir() else {
        return;
    };
    let r = load_recbole(&dir, "ml-100k").unwrap();
    let d = &r.dataset;
    println!("{}", d.summary());
    assert_eq!(
        (d.n_users, d.n_items, d.interactions.len()),
        (943, 1682, 100_000)
    );
    assert_eq!((r.item_keys.len(), r.item_texts.len()), (1682, 1682));
    assert_eq!(
        (r.item_keys[0].as_str(), r.user_keys[0].as_str()),
        ("1", "196")
    );
    assert_eq!(
        r.item_texts[0],
        "Toy Story (1995). Genres: Animation, Children's, Comedy"
    );

    // The test row is each user's latest; among equal timestamps the last
    // in the file (415 users' last two ratings share a second).
    let mut latest: Vec<Option<usize>> = vec![None; d.n_users];
    for (row, it) in d.interactions.iter().enumerate() {
        let slot = &mut latest[it.user as usize];
        if slot.is_none_or(|l| d.interactions[l].timestamp <= it.timestamp) {
            *slot = Some(row);
        }
    }
    let users = d.users();
    for (u, data) in users.iter().enumerate() {
        let row = latest[u].expect("every user has interactions");
        assert_eq!(d.interactions[row].split, SplitLabel::Test, "user {u}");
        assert_eq!(data.test, Some(d.interactions[row].item), "user {u}");
        assert!(data.valid.is_some(), "user {u} has no validation item");
    }

    // Cold-start, as in KU's analysis: test items nobody trained on.
    let cold = d.cold_items();
    let cold_test = users
        .iter()
        .filter(|u| u.test.is_some_and(|t| cold[t as usize]))
        .count();
    println!("users whose test item is cold: {cold_test}");
    assert_eq!(cold.iter().filter(|&&c| c).count(), 4);
    assert_eq!(cold_test, 3);
    assert_eq!(
        d.summary(),
        "ml-100k: 943 users, 1682 items, 100000 interactions (98114 train / 943 valid / 943 test), 4 cold items, modalities: none"
    );
}
