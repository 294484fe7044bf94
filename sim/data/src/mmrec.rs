//! The MMRec dataset folder format, read as is.
//!
//! MMRec is the common toolkit of multimodal recommendation research, and the
//! FedMR paper's KU data ships in its layout: `inter.csv` (one interaction per
//! line with a precomputed leave-one-out `split_label`) next to one
//! `<modality>_features.npy` per modality whose row i describes item i. Reading
//! that layout directly lets the SDK be compared with published numbers on the
//! very same split.

use std::path::{Path, PathBuf};

use crate::npy::read_npy_f32;
use fedmr_core::data::{Dataset, Interaction, Modality, SplitLabel};
use fedmr_core::{Error, Result};

const FEATURES_SUFFIX: &str = "_features.npy";

/// Loads `dir/inter.csv` and every `dir/*_features.npy` (modalities sorted by
/// name). The `rating` column is ignored: the protocol treats every
/// interaction as a positive.
pub fn load_mmrec(dir: &Path) -> Result<Dataset> {
    let inter_path = dir.join("inter.csv");
    let text = std::fs::read_to_string(&inter_path).map_err(|source| Error::Io {
        path: inter_path.clone(),
        source,
    })?;
    let rows = parse_inter(&text, &inter_path)?;
    let modalities = read_modalities(dir)?;

    let max_user = rows.iter().map(|r| r.interaction.user).max();
    let max_item = rows.iter().map(|r| r.interaction.item).max();
    let (Some(max_user), Some(max_item)) = (max_user, max_item) else {
        return Err(format_err(&inter_path, "no interaction rows".into()));
    };
    let n_users = max_user as usize + 1;
    let n_items = match modalities.first() {
        None => max_item as usize + 1,
        Some(first) => {
            let feature_rows = first.features.nrows();
            if let Some(bad) = rows
                .iter()
                .find(|r| r.interaction.item as usize >= feature_rows)
            {
                return Err(format_err(
                    &inter_path,
                    format!(
                        "line {}: itemID {} is out of range of the features ({}{FEATURES_SUFFIX} has {feature_rows} rows)",
                        bad.line, bad.interaction.item, first.name
                    ),
                ));
            }
            feature_rows
        }
    };

    // `dir` may be "." or end in "..": then the real folder names the data.
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .or_else(|| {
            Some(
                dir.canonicalize()
                    .ok()?
                    .file_name()?
                    .to_string_lossy()
                    .into_owned(),
            )
        })
        .unwrap_or_else(|| dir.display().to_string());
    let dataset = Dataset {
        name,
        n_users,
        n_items,
        interactions: rows.into_iter().map(|r| r.interaction).collect(),
        modalities,
    };
    dataset.validate()?;
    Ok(dataset)
}

/// The KU dataset in the shared data folder next to the workspace, for tests
/// and tools that need real data. Returns `None` (after printing a skip
/// notice) when it is absent.
///
/// # Panics
/// When it is absent and the environment variable `CI` is `"true"`: CI must
/// run the tests that use it, not skip them silently.
pub fn shared_ku_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ku");
    if dir.join("inter.csv").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "KU dataset not found at {} (inter.csv missing); it is required when CI=true",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: KU dataset not found at {}; this test needs ../shared/data/ku next to the workspace",
        dir.display()
    );
    None
}

struct Row {
    line: usize,
    interaction: Interaction,
}

fn format_err(path: &Path, message: String) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        message,
    }
}

fn parse_inter(text: &str, path: &Path) -> Result<Vec<Row>> {
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, h)| h.trim_start_matches('\u{feff}'))
        .ok_or_else(|| format_err(path, "empty file: no header line".into()))?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let column = |wanted: &str| {
        names.iter().position(|n| *n == wanted).ok_or_else(|| {
            format_err(
                path,
                format!(
                    "line 1: missing column '{wanted}' in header (found: {})",
                    names.join(", ")
                ),
            )
        })
    };
    let (c_user, c_item) = (column("userID")?, column("itemID")?);
    let (c_time, c_split) = (column("timestamp")?, column("split_label")?);
    let needed = c_user.max(c_item).max(c_time).max(c_split) + 1;

    let mut rows = Vec::new();
    for (index, raw) in lines {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.split(',').map(str::trim).collect();
        if fields.len() < needed {
            return Err(format_err(
                path,
                format!(
                    "line {line}: expected at least {needed} fields, found {}",
                    fields.len()
                ),
            ));
        }
        let bad = |what: &str, why: &str| format_err(path, format!("line {line}: {what} {why}"));
        let id = |col: usize, what: &str| -> Result<u32> {
            let field = fields[col];
            let v = parse_integer(field)
                .ok_or_else(|| bad(what, &format!("'{field}' is not an integer")))?;
            if v < 0 {
                return Err(bad(what, &format!("{v} is negative")));
            }
            u32::try_from(v).map_err(|_| bad(what, &format!("{v} is too large")))
        };
        let user = id(c_user, "userID")?;
        let item = id(c_item, "itemID")?;
        let time_field = fields[c_time];
        let timestamp = parse_integer(time_field)
            .or_else(|| {
                // Fractional timestamps keep their order up to the whole unit.
                let t: f64 = time_field.parse().ok()?;
                (t.is_finite() && t.abs() < 9.0e18).then_some(t.floor() as i64)
            })
            .ok_or_else(|| bad("timestamp", &format!("'{time_field}' is not a number")))?;
        let split_field = fields[c_split];
        let split = match parse_integer(split_field) {
            Some(0) => SplitLabel::Train,
            Some(1) => SplitLabel::Valid,
            Some(2) => SplitLabel::Test,
            _ => {
                return Err(bad(
                    "split_label",
                    &format!("'{split_field}' is not 0 (train), 1 (valid) or 2 (test)"),
                ));
            }
        };
        rows.push(Row {
            line,
            interaction: Interaction {
                user,
                item,
                timestamp,
                split,
            },
        });
    }
    Ok(rows)
}

/// An integer, also when written as a float with no fraction ("3.0"), as
/// pandas does for columns that once held a missing value.
fn parse_integer(field: &str) -> Option<i64> {
    if let Ok(v) = field.parse::<i64>() {
        return Some(v);
    }
    let f: f64 = field.parse().ok()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e18).then_some(f as i64)
}

fn read_modalities(dir: &Path) -> Result<Vec<Modality>> {
    let io_err = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(stem) = file_name.strip_suffix(FEATURES_SUFFIX) {
            if stem.is_empty() {
                return Err(format_err(&path, "modality name is empty".into()));
            }
            found.push((stem.to_string(), path.clone()));
        }
    }
    found.sort();

    let mut modalities: Vec<Modality> = Vec::with_capacity(found.len());
    for (name, path) in found {
        let features = read_npy_f32(&path)?;
        let first = modalities.first();
        if let Some(first) = first.filter(|f| f.features.nrows() != features.nrows()) {
            return Err(format_err(
                &path,
                format!(
                    "ragged features: {} rows, but {}{FEATURES_SUFFIX} has {} rows",
                    features.nrows(),
                    first.name,
                    first.features.nrows()
                ),
            ));
        }
        modalities.push(Modality { name, features });
    }
    Ok(modalities)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::write_npy_f32;
    use fedmr_test_support::TempDir;
    use ndarray::Array2;

    fn write(dir: &TempDir, name: &str, text: &str) {
        std::fs::write(dir.0.join(name), text).unwrap();
    }

    fn features(dir: &TempDir, name: &str, rows: usize, cols: usize) {
        let a = Array2::from_shape_fn((rows, cols), |(r, c)| (r * cols + c) as f32 * 0.1);
        write_npy_f32(&dir.0.join(format!("{name}_features.npy")), &a).unwrap();
    }

    const GOOD: &str = "userID,itemID,rating,timestamp,split_label\n\
                        0,0,1.0,10,0\n0,1,1.0,20,1\n0,2,1.0,30,2\n\
                        2,3,1.0,5,0\n2,1,1.0,6,1\n2,0,1.0,7,2\n";

    fn message(r: Result<Dataset>) -> String {
        match r {
            Err(e @ Error::Format { .. }) => e.to_string(),
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn loads_interactions_and_sorted_modalities() {
        let s = TempDir::new("mmrec-good");
        write(&s, "inter.csv", GOOD);
        features(&s, "text", 6, 3);
        features(&s, "image", 6, 4);
        write(&s, "u_id_mapping.csv", "ignored\n");
        let d = load_mmrec(&s.0).unwrap();
        assert_eq!(
            Some(d.name.as_str()),
            s.0.file_name().and_then(|n| n.to_str())
        );
        assert_eq!(
            (d.n_users, d.n_items),
            (3, 6),
            "items come from feature rows"
        );
        assert_eq!(d.interactions.len(), 6);
        assert_eq!(
            d.interactions[1],
            Interaction {
                user: 0,
                item: 1,
                timestamp: 20,
                split: SplitLabel::Valid
            }
        );
        let names: Vec<&str> = d.modalities.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["image", "text"]);
        assert_eq!(d.modality_dims(), [4, 3]);
        assert!((d.modalities[1].features[[1, 2]] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn columns_are_found_by_name_and_floats_and_crlf_accepted() {
        let s = TempDir::new("mmrec-order");
        write(
            &s,
            "inter.csv",
            "\u{feff}split_label,timestamp,itemID,userID\r\n2,1.5e3,4,1\r\n0,7.0,2.0,0\r\n\r\n",
        );
        let d = load_mmrec(&s.0).unwrap();
        assert_eq!(
            (d.n_users, d.n_items),
            (2, 5),
            "no features: items = max id + 1"
        );
        assert!(d.modalities.is_empty());
        assert_eq!(
            d.interactions,
            [
                Interaction {
                    user: 1,
                    item: 4,
                    timestamp: 1500,
                    split: SplitLabel::Test
                },
                Interaction {
                    user: 0,
                    item: 2,
                    timestamp: 7,
                    split: SplitLabel::Train
                },
            ]
        );
    }

    #[test]
    fn missing_inter_csv_is_an_io_error_naming_it() {
        let s = TempDir::new("mmrec-empty");
        match load_mmrec(&s.0) {
            Err(Error::Io { path, .. }) => assert!(path.ends_with("inter.csv")),
            other => panic!("expected Io error, got {other:?}"),
        }
    }

    #[test]
    fn missing_column_is_named() {
        let s = TempDir::new("mmrec-nocol");
        write(
            &s,
            "inter.csv",
            "userID,itemID,rating,split_label\n0,0,1,0\n",
        );
        let m = message(load_mmrec(&s.0));
        assert!(
            m.contains("inter.csv") && m.contains("missing column 'timestamp'"),
            "{m}"
        );
    }

    #[test]
    fn bad_fields_name_file_and_line() {
        let cases = [
            ("0,x,1,0", "line 3: itemID 'x' is not an integer"),
            ("-1,0,1,0", "line 3: userID -1 is negative"),
            ("0,0,1,3", "line 3: split_label '3' is not 0"),
            ("0,0,soon,0", "line 3: timestamp 'soon' is not a number"),
            ("0,0", "line 3: expected at least 4 fields, found 2"),
            (
                "0,99999999999,1,0",
                "line 3: itemID 99999999999 is too large",
            ),
        ];
        for (line, needle) in cases {
            let s = TempDir::new("mmrec-bad");
            write(
                &s,
                "inter.csv",
                &format!("userID,itemID,timestamp,split_label\n0,0,1,0\n{line}\n"),
            );
            let m = message(load_mmrec(&s.0));
            assert!(m.contains("inter.csv") && m.contains(needle), "{line}: {m}");
        }
    }

    #[test]
    fn header_only_is_refused() {
        let s = TempDir::new("mmrec-hdr");
        write(&s, "inter.csv", "userID,itemID,timestamp,split_label\n");
        assert!(message(load_mmrec(&s.0)).contains("no interaction rows"));
    }

    #[test]
    fn ragged_features_are_refused() {
        let s = TempDir::new("mmrec-ragged");
        write(&s, "inter.csv", GOOD);
        features(&s, "image", 6, 2);
        features(&s, "text", 7, 2);
        let m = message(load_mmrec(&s.0));
        assert!(
            m.contains("text_features.npy") && m.contains("ragged") && m.contains("image"),
            "{m}"
        );
    }

    #[test]
    fn item_ids_beyond_the_features_are_refused() {
        let s = TempDir::new("mmrec-range");
        write(&s, "inter.csv", GOOD);
        features(&s, "text", 3, 2);
        let m = message(load_mmrec(&s.0));
        assert!(
            m.contains("line 5: itemID 3 is out of range") && m.contains("3 rows"),
            "{m}"
        );
    }

    #[test]
    fn broken_feature_file_is_reported() {
        let s = TempDir::new("mmrec-broken");
        write(&s, "inter.csv", GOOD);
        write(&s, "text_features.npy", "not numpy");
        let m = message(load_mmrec(&s.0));
        assert!(
            m.contains("text_features.npy") && m.contains("bad magic"),
            "{m}"
        );
    }

    #[test]
    fn ku_loads_when_present() {
        let Some(dir) = shared_ku_dir() else { return };
        let d = load_mmrec(&dir).unwrap();
        eprintln!("{}", d.summary());
        assert_eq!(d.name, "ku");
        assert_eq!((d.n_users, d.n_items), (204, 560));
        assert_eq!(d.interactions.len(), 3489);
        assert_eq!(d.modalities.len(), 2);
        assert_eq!(d.modality_dims(), [512, 512]);
        let users = d.users();
        assert!(users.iter().all(|u| u.valid.is_some() && u.test.is_some()));
        assert_eq!(d.cold_items().iter().filter(|&&c| c).count(), 16);
    }
}
