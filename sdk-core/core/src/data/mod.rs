//! Datasets in memory: the form every loader (`fedmr-data`) and the
//! synthetic generator produce, and the per-user view
//! (chronological training items, one validation item, one test item) that
//! training and evaluation consume.

pub mod synthetic;

use std::collections::HashSet;

use ndarray::Array2;

use crate::{Error, Result};

/// Which part of the leave-one-out split an interaction belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SplitLabel {
    Train,
    Valid,
    Test,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interaction {
    pub user: u32,
    pub item: u32,
    pub timestamp: i64,
    pub split: SplitLabel,
}

/// One content modality: a dense feature row per item (row index = item id).
#[derive(Clone, Debug)]
pub struct Modality {
    pub name: String,
    pub features: Array2<f32>,
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub n_users: usize,
    pub n_items: usize,
    pub interactions: Vec<Interaction>,
    pub modalities: Vec<Modality>,
}

/// A user's items in the evaluation protocol's terms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserData {
    /// Training items, oldest first, without duplicates.
    pub train: Vec<u32>,
    pub valid: Option<u32>,
    pub test: Option<u32>,
}

impl Dataset {
    /// Every user's view in the protocol's terms (index = user id). Training
    /// items are ordered by time, ties kept in file order, repeats dropped;
    /// if a user has several validation (or test) rows, the latest wins.
    /// Rows whose user is out of range are ignored: call [`Dataset::validate`]
    /// to reject them.
    pub fn users(&self) -> Vec<UserData> {
        let mut rows: Vec<Vec<&Interaction>> = vec![Vec::new(); self.n_users];
        for it in &self.interactions {
            if let Some(user_rows) = rows.get_mut(it.user as usize) {
                user_rows.push(it);
            }
        }
        rows.into_iter()
            .map(|mut user_rows| {
                // Stable: equal timestamps stay in file order.
                user_rows.sort_by_key(|it| it.timestamp);
                let mut data = UserData::default();
                let mut seen = HashSet::new();
                for it in user_rows {
                    match it.split {
                        SplitLabel::Train => {
                            if seen.insert(it.item) {
                                data.train.push(it.item);
                            }
                        }
                        SplitLabel::Valid => data.valid = Some(it.item),
                        SplitLabel::Test => data.test = Some(it.item),
                    }
                }
                data
            })
            .collect()
    }

    /// Checks what every consumer relies on: ids within `n_users`/`n_items`,
    /// one feature row per item, finite features.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidDataset(format!("{}: {m}", self.name)));
        for (row, it) in self.interactions.iter().enumerate() {
            if it.user as usize >= self.n_users {
                return bad(format!(
                    "interaction {row}: user {} >= n_users {}",
                    it.user, self.n_users
                ));
            }
            if it.item as usize >= self.n_items {
                return bad(format!(
                    "interaction {row}: item {} >= n_items {}",
                    it.item, self.n_items
                ));
            }
        }
        for m in &self.modalities {
            if m.features.nrows() != self.n_items {
                return bad(format!(
                    "modality '{}' has {} rows, expected one per item ({})",
                    m.name,
                    m.features.nrows(),
                    self.n_items
                ));
            }
            if let Some(pos) = m.features.iter().position(|v| !v.is_finite()) {
                let cols = m.features.ncols().max(1);
                return bad(format!(
                    "modality '{}' has a non-finite value at row {}, column {}",
                    m.name,
                    pos / cols,
                    pos % cols
                ));
            }
        }
        Ok(())
    }

    pub fn modality_dims(&self) -> Vec<usize> {
        self.modalities.iter().map(|m| m.features.ncols()).collect()
    }

    /// How many distinct users have each item in training: the popularity a
    /// server could know, and the test of whether an item is cold.
    pub fn train_counts(&self) -> Vec<u32> {
        let mut pairs: Vec<(u32, u32)> = self
            .interactions
            .iter()
            .filter(|it| it.split == SplitLabel::Train)
            .map(|it| (it.item, it.user))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut counts = vec![0u32; self.n_items];
        for (item, _) in pairs {
            if let Some(c) = counts.get_mut(item as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Items nobody interacted with in training: only content can score them.
    pub fn cold_items(&self) -> Vec<bool> {
        self.train_counts().iter().map(|&c| c == 0).collect()
    }

    /// One line for logs, e.g.
    /// `ku: 204 users, 560 items, 3489 interactions (3081 train / 204 valid / 204 test), 16 cold items, modalities: image 512, text 512`.
    pub fn summary(&self) -> String {
        let count = |s: SplitLabel| self.interactions.iter().filter(|it| it.split == s).count();
        let cold = self.cold_items().iter().filter(|&&c| c).count();
        let modalities = if self.modalities.is_empty() {
            "none".to_string()
        } else {
            self.modalities
                .iter()
                .map(|m| format!("{} {}", m.name, m.features.ncols()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{}: {} users, {} items, {} interactions ({} train / {} valid / {} test), {cold} cold items, modalities: {modalities}",
            self.name,
            self.n_users,
            self.n_items,
            self.interactions.len(),
            count(SplitLabel::Train),
            count(SplitLabel::Valid),
            count(SplitLabel::Test),
        )
    }
}

/// (Re)labels a leave-one-out split by time: per user, the last interaction is
/// Test, the one before Valid, the rest Train. Equal timestamps keep slice
/// order. Users with fewer than 3 interactions stay all Train, since a user
/// with nothing to train on cannot be evaluated meaningfully.
pub fn leave_one_out_by_time(interactions: &mut [Interaction]) {
    let mut order: Vec<usize> = (0..interactions.len()).collect();
    order.sort_by_key(|&i| (interactions[i].user, interactions[i].timestamp, i));
    let users: Vec<u32> = order.iter().map(|&i| interactions[i].user).collect();
    let mut start = 0;
    for run in users.chunk_by(|a, b| a == b) {
        let group = &order[start..start + run.len()];
        start += run.len();
        let n = group.len();
        for (pos, &i) in group.iter().enumerate() {
            interactions[i].split = if n < 3 || pos + 2 < n {
                SplitLabel::Train
            } else if pos + 2 == n {
                SplitLabel::Valid
            } else {
                SplitLabel::Test
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn it(user: u32, item: u32, timestamp: i64, split: SplitLabel) -> Interaction {
        Interaction {
            user,
            item,
            timestamp,
            split,
        }
    }

    fn tiny() -> Dataset {
        use SplitLabel::*;
        Dataset {
            name: "tiny".into(),
            n_users: 3,
            n_items: 5,
            interactions: vec![
                it(0, 3, 30, Train),
                it(0, 1, 10, Train),
                it(0, 2, 30, Train), // same time as item 3: file order keeps 3 first
                it(0, 1, 40, Train), // repeat: dropped
                it(0, 4, 50, Valid),
                it(0, 0, 60, Test),
                it(1, 1, 5, Train),
                it(1, 2, 7, Valid),
                it(1, 3, 9, Valid), // the later validation row wins
            ],
            modalities: vec![Modality {
                name: "text".into(),
                features: array![
                    [0.0f32, 1.0],
                    [1.0, 0.0],
                    [0.5, 0.5],
                    [1.0, 1.0],
                    [2.0, 0.0]
                ],
            }],
        }
    }

    #[test]
    fn users_are_chronological_deduplicated_and_latest_labelled_wins() {
        let users = tiny().users();
        assert_eq!(users.len(), 3);
        assert_eq!(
            users[0],
            UserData {
                train: vec![1, 3, 2],
                valid: Some(4),
                test: Some(0)
            }
        );
        assert_eq!(
            users[1],
            UserData {
                train: vec![1],
                valid: Some(3),
                test: None
            }
        );
        assert_eq!(users[2], UserData::default());
    }

    #[test]
    fn counts_distinct_users_and_cold_items() {
        let d = tiny();
        assert_eq!(d.train_counts(), [0, 2, 1, 1, 0]);
        assert_eq!(d.cold_items(), [true, false, false, false, true]);
        assert_eq!(d.modality_dims(), [2]);
    }

    #[test]
    fn validate_accepts_good_and_names_each_problem() {
        assert!(tiny().validate().is_ok());
        let expect = |d: Dataset, needle: &str| match d.validate() {
            Err(Error::InvalidDataset(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("expected InvalidDataset, got {other:?}"),
        };
        let mut d = tiny();
        d.interactions[2].user = 3;
        expect(d, "interaction 2: user 3 >= n_users 3");
        let mut d = tiny();
        d.interactions[4].item = 5;
        expect(d, "interaction 4: item 5 >= n_items 5");
        let mut d = tiny();
        d.n_items = 6;
        expect(d, "has 5 rows, expected one per item (6)");
        let mut d = tiny();
        d.modalities[0].features[[3, 1]] = f32::INFINITY;
        expect(d, "non-finite value at row 3, column 1");
    }

    #[test]
    fn leave_one_out_labels_last_two_by_time() {
        use SplitLabel::*;
        let mut xs = vec![
            it(1, 0, 5, Test),
            it(0, 0, 3, Test),
            it(0, 1, 1, Test),
            it(1, 1, 9, Test),
            it(0, 2, 2, Test),
            it(0, 3, 3, Test), // ties with item 0: later in the slice, so later in time
            it(2, 4, 1, Test),
            it(1, 2, 7, Test),
        ];
        leave_one_out_by_time(&mut xs);
        let splits: Vec<SplitLabel> = xs.iter().map(|i| i.split).collect();
        assert_eq!(
            splits,
            [Train, Valid, Train, Test, Train, Test, Train, Valid]
        );
    }

    #[test]
    fn summary_is_one_line_with_counts() {
        let s = tiny().summary();
        assert_eq!(
            s,
            "tiny: 3 users, 5 items, 9 interactions (5 train / 3 valid / 1 test), 2 cold items, modalities: text 2"
        );
    }
}
