//! The new-item protocol (`fedmr-sim --split new-items`): item cold start as
//! CLCRec (Wei et al., "Contrastive Learning for Cold-Start Recommendation",
//! MM 2021) sets it up. The newest share of items by first interaction are
//! *new*: every interaction with them leaves training, and the federation
//! trains on the other items only, with the usual leave-one-out split. At
//! evaluation the new items join the catalog as a deployment adds them: with
//! their content features and an ID row of zeros (no evidence yet: a random
//! row would rank a new item by noise), never trained.
//! Each (user, new item) interaction is then one target, ranked among all
//! items and among the new items only; the new items are split in two
//! halves (alternating by first interaction) for validation and test, as
//! CLCRec splits its cold items.

use ndarray::{Array2, concatenate, s};

use fedmr_core::data::{Dataset, Interaction, Modality};
use fedmr_core::model::{Catalog, GlobalModel, ItemTable};
use fedmr_core::{Error, Result};
use fedmr_data::eval::{Metrics, rank_of};

/// Which half of the new items a target belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    Valid,
    Test,
}

/// One user's interaction with a new item (ids in the evaluation numbering:
/// old items first, then new).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewTarget {
    pub user: usize,
    pub item: u32,
    pub half: Half,
}

/// How new-item targets rank: among every item and among the new ones.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct NewItemReport {
    pub among_all: Metrics,
    pub among_new: Metrics,
}

/// Validation and test halves.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct NewItemEval {
    pub valid: NewItemReport,
    pub test: NewItemReport,
}

#[derive(Clone)]
pub struct NewItemSplit {
    /// Old items only (ids `0..n_old`), their interactions with their
    /// original split labels: what the federation trains and validates on.
    pub training: Dataset,
    /// Every item's features, old items first: the catalog at evaluation.
    pub full_catalog: Catalog,
    pub n_old: usize,
    pub targets: Vec<NewTarget>,
    /// Each user's new items (evaluation ids, sorted): the other ones are
    /// the user's too and do not count against a target.
    pub user_new_items: Vec<Vec<u32>>,
    /// Evaluation id -> id in the original dataset.
    pub original_ids: Vec<u32>,
}

impl NewItemSplit {
    /// The newest `share` of the items that have interactions become new.
    /// `catalog` makes the catalog of a dataset (features selected and
    /// rounded as the federation's own catalog is); it is given every item,
    /// old ones first.
    pub fn new(
        dataset: &Dataset,
        share: f64,
        catalog: impl Fn(&Dataset) -> Result<Catalog>,
    ) -> Result<Self> {
        if !(share > 0.0 && share < 1.0) {
            return Err(Error::InvalidConfig(format!(
                "the share of new items must be in (0, 1), got {share}"
            )));
        }
        let mut first_seen: Vec<Option<i64>> = vec![None; dataset.n_items];
        for it in &dataset.interactions {
            let t = &mut first_seen[it.item as usize];
            *t = Some(t.map_or(it.timestamp, |t| t.min(it.timestamp)));
        }
        let mut by_age: Vec<(i64, u32)> = first_seen
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (t, i as u32)))
            .collect();
        by_age.sort_unstable();
        let n_new = ((by_age.len() as f64 * share).round() as usize).max(2);
        if n_new >= by_age.len() {
            return Err(Error::InvalidDataset(format!(
                "{}: {} items with interactions, too few to hold {n_new} out as new",
                dataset.name,
                by_age.len()
            )));
        }
        let newest: Vec<u32> = by_age[by_age.len() - n_new..]
            .iter()
            .map(|&(_, i)| i)
            .collect();
        let mut is_new = vec![false; dataset.n_items];
        newest.iter().for_each(|&i| is_new[i as usize] = true);
        // Old items keep their relative order; new ones follow, oldest first.
        let mut original_ids: Vec<u32> = (0..dataset.n_items as u32)
            .filter(|&i| !is_new[i as usize])
            .collect();
        let n_old = original_ids.len();
        original_ids.extend(&newest);
        let mut eval_id = vec![0u32; dataset.n_items];
        for (e, &o) in original_ids.iter().enumerate() {
            eval_id[o as usize] = e as u32;
        }
        let half = |eval: u32| {
            if (eval as usize - n_old).is_multiple_of(2) {
                Half::Valid
            } else {
                Half::Test
            }
        };

        let mut training_rows = Vec::new();
        let mut targets = Vec::new();
        let mut user_new_items = vec![Vec::new(); dataset.n_users];
        for it in &dataset.interactions {
            let item = eval_id[it.item as usize];
            if is_new[it.item as usize] {
                let mine: &mut Vec<u32> = &mut user_new_items[it.user as usize];
                if !mine.contains(&item) {
                    mine.push(item);
                    targets.push(NewTarget {
                        user: it.user as usize,
                        item,
                        half: half(item),
                    });
                }
            } else {
                training_rows.push(Interaction { item, ..*it });
            }
        }
        user_new_items.iter_mut().for_each(|v| v.sort_unstable());
        let reorder = |features: &Array2<f32>| {
            let rows: Vec<_> = original_ids
                .iter()
                .map(|&o| features.slice(s![o as usize..o as usize + 1, ..]))
                .collect();
            concatenate(ndarray::Axis(0), &rows).expect("rows of one width")
        };
        let full: Vec<Array2<f32>> = dataset
            .modalities
            .iter()
            .map(|m| reorder(&m.features))
            .collect();
        let all_items = Dataset {
            name: dataset.name.clone(),
            n_users: dataset.n_users,
            n_items: dataset.n_items,
            interactions: training_rows.clone(),
            modalities: dataset
                .modalities
                .iter()
                .zip(full)
                .map(|(m, features)| Modality {
                    name: m.name.clone(),
                    features,
                })
                .collect(),
        };
        let training = Dataset {
            name: format!("{} (new-item split)", dataset.name),
            n_items: n_old,
            interactions: training_rows,
            modalities: all_items
                .modalities
                .iter()
                .map(|m| Modality {
                    name: m.name.clone(),
                    features: m.features.slice(s![..n_old, ..]).to_owned(),
                })
                .collect(),
            ..all_items.clone()
        };
        Ok(NewItemSplit {
            training,
            full_catalog: catalog(&all_items)?,
            n_old,
            targets,
            user_new_items,
            original_ids,
        })
    }

    pub fn n_new(&self) -> usize {
        self.original_ids.len() - self.n_old
    }

    /// One line for logs.
    pub fn summary(&self) -> String {
        let count = |h: Half| self.targets.iter().filter(|t| t.half == h).count();
        format!(
            "{} new items held out ({} old), {} validation and {} test interactions with them",
            self.n_new(),
            self.n_old,
            count(Half::Valid),
            count(Half::Test)
        )
    }

    /// The trained model as a deployment would serve it once the new items
    /// arrive: their ID rows zero, never trained.
    pub fn with_new_rows(&self, global: &GlobalModel) -> GlobalModel {
        let fresh = Array2::zeros((self.n_new(), global.dim()));
        let items = concatenate(ndarray::Axis(0), &[global.items.0.0.view(), fresh.view()])
            .expect("one width");
        let mut extended = global.clone();
        extended.items.0 = ItemTable(items);
        extended
    }

    /// Ranks every target whose user `score(user)` can score (`None`: the
    /// user is not in the federation, e.g. no old item to train on).
    /// `history(user)`: the user's training items (evaluation ids).
    pub fn evaluate(
        &self,
        mut score: impl FnMut(usize) -> Option<Vec<f32>>,
        history: impl Fn(usize) -> Vec<u32>,
    ) -> NewItemEval {
        let mut ranks: [[Vec<_>; 2]; 2] = Default::default();
        let mut user_scores: Option<(usize, Option<Vec<f32>>)> = None;
        let mut targets = self.targets.clone();
        targets.sort_by_key(|t| t.user);
        for t in &targets {
            if user_scores.as_ref().is_none_or(|(u, _)| *u != t.user) {
                user_scores = Some((t.user, score(t.user)));
            }
            let Some(scores) = user_scores.as_ref().and_then(|(_, s)| s.as_ref()) else {
                continue;
            };
            let mut excluded = history(t.user);
            excluded.extend(&self.user_new_items[t.user]);
            let half = usize::from(t.half == Half::Test);
            ranks[half][0].push(rank_of(scores, t.item, &excluded));
            // Among new items only: the old ones are left out too.
            excluded.extend(0..self.n_old as u32);
            ranks[half][1].push(rank_of(scores, t.item, &excluded));
        }
        let report = |r: &[Vec<_>; 2]| NewItemReport {
            among_all: Metrics::from_ranks(&r[0]),
            among_new: Metrics::from_ranks(&r[1]),
        };
        NewItemEval {
            valid: report(&ranks[0]),
            test: report(&ranks[1]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedmr_core::data::SplitLabel;

    fn dataset() -> Dataset {
        // Items 0..6; item i first appears at time 10 * i, except item 1,
        // which appears last (time 100): the newest two are 1 and 5.
        let mut interactions = Vec::new();
        let mut push = |user: u32, item: u32, timestamp: i64, split| {
            interactions.push(Interaction {
                user,
                item,
                timestamp,
                split,
            })
        };
        push(0, 0, 0, SplitLabel::Train);
        push(0, 2, 20, SplitLabel::Train);
        push(0, 5, 50, SplitLabel::Valid);
        push(0, 1, 100, SplitLabel::Test);
        push(1, 3, 30, SplitLabel::Train);
        push(1, 4, 40, SplitLabel::Train);
        push(1, 2, 41, SplitLabel::Test);
        push(1, 1, 101, SplitLabel::Train);
        let features = Array2::from_shape_fn((6, 2), |(i, j)| (10 * i + j) as f32);
        Dataset {
            name: "tiny".into(),
            n_users: 2,
            n_items: 6,
            interactions,
            modalities: vec![Modality {
                name: "text".into(),
                features,
            }],
        }
    }

    fn split(share: f64) -> Result<NewItemSplit> {
        NewItemSplit::new(&dataset(), share, |d| {
            Ok(Catalog {
                n_items: d.n_items,
                features: d.modalities.iter().map(|m| m.features.clone()).collect(),
            })
        })
    }

    #[test]
    fn the_newest_items_leave_training_and_become_targets() {
        let split = split(0.34).unwrap();
        assert_eq!(split.n_old, 4);
        assert_eq!(split.original_ids, [0, 2, 3, 4, 5, 1]);
        // No interaction with items 5 or 1 is left in training.
        assert!(split.training.interactions.iter().all(|it| it.item < 4));
        assert_eq!(split.training.interactions.len(), 5);
        assert_eq!(split.training.n_items, 4);
        // Features follow the new numbering: evaluation id 1 is item 2.
        assert_eq!(split.training.modalities[0].features.row(1)[0], 20.0);
        assert_eq!(split.full_catalog.features[0].row(5)[0], 10.0);
        // Targets: user 0 with item 5 (eval 4, first new: valid) and item 1
        // (eval 5: test); user 1 with item 1 (test).
        let mut t = split.targets.clone();
        t.sort_by_key(|t| (t.user, t.item));
        assert_eq!(
            t,
            [
                NewTarget {
                    user: 0,
                    item: 4,
                    half: Half::Valid
                },
                NewTarget {
                    user: 0,
                    item: 5,
                    half: Half::Test
                },
                NewTarget {
                    user: 1,
                    item: 5,
                    half: Half::Test
                },
            ]
        );
        assert_eq!(split.user_new_items[0], [4, 5]);
    }

    #[test]
    fn targets_rank_among_all_items_and_among_new_ones() {
        let split = split(0.34).unwrap();
        // User 0 scores old items high, and the test item above the other new one.
        let scores = vec![9.0, 8.0, 7.0, 6.0, 1.0, 2.0];
        let eval = split.evaluate(
            |u| (u == 0).then(|| scores.clone()),
            |_| vec![0, 1], // the user's history: evaluation ids 0 and 1
        );
        // Test: item 5 among all: old items 2 and 3 score higher (0, 1 are
        // history; 4 is the user's own) -> rank 2. Among new: rank 0.
        assert_eq!(eval.test.among_all.users, 1, "user 1 is not scored");
        assert_eq!(eval.test.among_all.hr_at(10), Some(1.0));
        assert_eq!(eval.test.among_new.ndcg_at(10), Some(1.0));
        let third = 1.0 / 4f64.log2();
        assert!((eval.test.among_all.ndcg_at(10).unwrap() - third).abs() < 1e-12);
        // Valid: item 4 likewise (item 5 is the user's own and left out).
        assert!((eval.valid.among_all.ndcg_at(10).unwrap() - third).abs() < 1e-12);
        assert_eq!(eval.valid.among_new.ndcg_at(10), Some(1.0));
    }

    #[test]
    fn new_rows_are_appended_as_zeros() {
        let split = split(0.34).unwrap();
        let config = fedmr_core::model::ModelConfig {
            fusion: fedmr_core::model::FusionMode::IdOnly,
            dim: 3,
            ..Default::default()
        };
        let catalog = Catalog {
            n_items: 4,
            features: vec![],
        };
        let global = GlobalModel::new(&config, &catalog, 1).unwrap();
        let extended = split.with_new_rows(&global);
        assert_eq!(extended.n_items(), 6);
        assert_eq!(
            extended.items.0.0.slice(s![..4, ..]),
            global.items.0.0.view()
        );
        assert!(
            extended
                .items
                .0
                .0
                .slice(s![4.., ..])
                .iter()
                .all(|&v| v == 0.0)
        );
    }

    #[test]
    fn a_share_outside_zero_one_is_refused() {
        assert!(split(0.0).is_err());
        assert!(split(1.0).is_err());
        assert!(split(0.99).is_err());
    }
}
