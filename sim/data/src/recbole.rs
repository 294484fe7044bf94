//! RecBole atomic files, the format RecBole ships its example datasets in
//! (MovieLens-100k among them; `scripts/fetch-ml100k` fetches it).
//!
//! `<name>.inter` and `<name>.item` are tab-separated with a `name:type`
//! header (`user_id:token  item_id:token  rating:float  timestamp:float`).
//! Tokens become dense ids: items in `.item` order, so ids do not depend on
//! who rated what, then items only seen in `.inter`; users in order of first
//! appearance. Every rating counts as a positive, and the split is
//! [`leave_one_out_by_time`]: equal timestamps keep `.inter` order, as
//! RecBole's stable sort does. Users with fewer than 3 interactions are kept
//! with everything in training: they still train, they are just not
//! evaluated (MovieLens-100k has none: every user rated at least 20 movies).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fedmr_core::data::{Dataset, Interaction, SplitLabel, leave_one_out_by_time};
use fedmr_core::{Error, Result};

/// A loaded dataset with what ids mean: index = dense id.
#[derive(Clone, Debug)]
pub struct RecboleData {
    /// Interactions split leave-one-out by time; no modalities.
    pub dataset: Dataset,
    pub user_keys: Vec<String>,
    pub item_keys: Vec<String>,
    /// E.g. "Toy Story (1995). Genres: Animation, Children's, Comedy"; just
    /// the key for items `.item` does not describe.
    pub item_texts: Vec<String>,
}

/// Loads `dir/<name>.inter` and, if present, `dir/<name>.item`. The
/// `.inter` file needs `user_id`, `item_id` and `timestamp` columns; a
/// `rating` column is checked to be a number, then ignored.
pub fn load_recbole(dir: &Path, name: &str) -> Result<RecboleData> {
    let mut items = Ids::default();
    let mut item_texts = Vec::new();
    let item_path = dir.join(format!("{name}.item"));
    // Optional, as in RecBole: without it items are numbered as they come.
    if let Some(text) = read(&item_path, true)? {
        let t = Table::parse(&item_path, &text)?;
        let c_id = t.require("item_id")?;
        let col = |n| t.column(n);
        let (c_title, c_year, c_genres) = (col("movie_title"), col("release_year"), col("class"));
        for (line, f) in &t.rows {
            let key = t.key(*line, f[c_id], "item_id")?;
            if items.get(key).is_some() {
                return Err(t.err(*line, format!("item_id '{key}' appears twice")));
            }
            items.add(key);
            let get = |c: Option<usize>| c.map_or("", |c| f[c]);
            item_texts.push(item_text(key, get(c_title), get(c_year), get(c_genres)));
        }
    }

    let inter_path = dir.join(format!("{name}.inter"));
    let text = read(&inter_path, false)?.unwrap_or_default();
    let t = Table::parse(&inter_path, &text)?;
    let (c_user, c_item) = (t.require("user_id")?, t.require("item_id")?);
    let (c_time, c_rating) = (t.require("timestamp")?, t.column("rating"));
    let mut users = Ids::default();
    let mut interactions = Vec::with_capacity(t.rows.len());
    for (line, f) in &t.rows {
        let user = users.get_or_add(t.key(*line, f[c_user], "user_id")?);
        let item_key = t.key(*line, f[c_item], "item_id")?;
        let item = items.get(item_key).unwrap_or_else(|| {
            item_texts.push(item_key.to_string());
            items.add(item_key)
        });
        let timestamp = parse_time(f[c_time])
            .ok_or_else(|| t.err(*line, format!("timestamp '{}' is not a number", f[c_time])))?;
        if let Some(c) = c_rating.filter(|&c| !f[c].parse::<f64>().is_ok_and(f64::is_finite)) {
            return Err(t.err(*line, format!("rating '{}' is not a number", f[c])));
        }
        interactions.push(Interaction {
            user,
            item,
            timestamp,
            split: SplitLabel::Train,
        });
    }
    if interactions.is_empty() {
        return Err(t.err(1, "no interactions after the header".into()));
    }
    leave_one_out_by_time(&mut interactions);

    let dataset = Dataset {
        name: name.to_string(),
        n_users: users.keys.len(),
        n_items: items.keys.len(),
        interactions,
        modalities: Vec::new(),
    };
    dataset.validate()?;
    Ok(RecboleData {
        dataset,
        user_keys: users.keys,
        item_keys: items.keys,
        item_texts,
    })
}

/// Where scripts/fetch-ml100k puts MovieLens-100k: `$FEDMR_DATA/ml-100k`
/// (relative paths from the repository root), or target/data/ml-100k.
pub fn ml100k_dir() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = match std::env::var_os("FEDMR_DATA").filter(|d| !d.is_empty()) {
        Some(d) => repo.join(d),
        None => repo.join("target/data"),
    };
    data.join("ml-100k")
}

/// For tests: the fetched MovieLens-100k, or `None` after a SKIPPED line.
/// Under `CI=true` missing data is a failure (a panic), not a skip.
pub fn shared_ml100k_dir() -> Option<PathBuf> {
    let dir = ml100k_dir();
    if ["ml-100k.inter", "ml-100k.item"]
        .iter()
        .all(|f| dir.join(f).is_file())
    {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "MovieLens-100k not found at {}; it is required when CI=true (run scripts/fetch-ml100k)",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: MovieLens-100k not found at {}; run scripts/fetch-ml100k to fetch it",
        dir.display()
    );
    None
}

/// Dense ids for tokens, in order of first `add`.
#[derive(Default)]
struct Ids {
    index: HashMap<String, u32>,
    keys: Vec<String>,
}

impl Ids {
    fn get(&self, key: &str) -> Option<u32> {
        self.index.get(key).copied()
    }

    fn add(&mut self, key: &str) -> u32 {
        let id = self.keys.len() as u32;
        self.index.insert(key.to_string(), id);
        self.keys.push(key.to_string());
        id
    }

    fn get_or_add(&mut self, key: &str) -> u32 {
        self.get(key).unwrap_or_else(|| self.add(key))
    }
}

/// One atomic file: column names from the header, then each non-blank line's
/// fields with its 1-based line number.
struct Table<'a> {
    path: &'a Path,
    columns: Vec<&'a str>,
    rows: Vec<(usize, Vec<&'a str>)>,
}

impl<'a> Table<'a> {
    fn parse(path: &'a Path, text: &'a str) -> Result<Self> {
        let mut t = Table {
            path,
            columns: Vec::new(),
            rows: Vec::new(),
        };
        let mut lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
        let header = lines.next().unwrap_or("").trim_start_matches('\u{feff}');
        if header.trim().is_empty() {
            return Err(t.err(1, "empty file: no header line".into()));
        }
        for field in header.split('\t') {
            let Some((name, ty)) = field.split_once(':') else {
                return Err(t.err(1, format!("column '{field}' is not name:type")));
            };
            if !["token", "token_seq", "float", "float_seq"].contains(&ty) {
                return Err(t.err(1, format!("column '{name}' has unknown type '{ty}'")));
            }
            if t.columns.contains(&name) {
                return Err(t.err(1, format!("column '{name}' appears twice")));
            }
            t.columns.push(name);
        }
        for (index, raw) in lines.enumerate() {
            let line = index + 2;
            if raw.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = raw.split('\t').collect();
            if fields.len() != t.columns.len() {
                return Err(t.err(
                    line,
                    format!(
                        "expected {} tab-separated fields, found {}",
                        t.columns.len(),
                        fields.len()
                    ),
                ));
            }
            t.rows.push((line, fields));
        }
        Ok(t)
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| *c == name)
    }

    fn require(&self, name: &str) -> Result<usize> {
        self.column(name).ok_or_else(|| {
            let found = self.columns.join(", ");
            self.err(1, format!("missing column '{name}' (found: {found})"))
        })
    }

    fn key<'f>(&self, line: usize, field: &'f str, what: &str) -> Result<&'f str> {
        if field.is_empty() {
            return Err(self.err(line, format!("empty {what}")));
        }
        Ok(field)
    }

    fn err(&self, line: usize, message: String) -> Error {
        Error::Format {
            path: self.path.to_path_buf(),
            message: format!("line {line}: {message}"),
        }
    }
}

/// The file's text; `None` if it is optional and does not exist.
fn read(path: &Path, optional: bool) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Whole seconds; RecBole types timestamps as float, and a fraction is
/// dropped (rows then tie and keep file order).
fn parse_time(field: &str) -> Option<i64> {
    field.parse::<i64>().ok().or_else(|| {
        let t: f64 = field.parse().ok()?;
        (t.is_finite() && t.abs() < 9.0e18).then_some(t.floor() as i64)
    })
}

/// "Title (year). Genres: a, b". `token_seq` fields are space-separated
/// tokens; a year that is not a number (ML-100k writes "unkonwn") is left out.
fn item_text(key: &str, title: &str, year: &str, genres: &str) -> String {
    let words = |s: &str, sep: &str| {
        s.split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(sep)
    };
    let mut text = words(title, " ");
    if text.is_empty() {
        text = key.to_string();
    }
    if !year.is_empty() && year.bytes().all(|b| b.is_ascii_digit()) {
        text += &format!(" ({year})");
    }
    let genres = words(genres, ", ");
    if !genres.is_empty() {
        text += &format!(". Genres: {genres}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedmr_core::data::UserData;
    use fedmr_test_support::TempDir;

    /// A scratch folder holding `files`, removed on drop.
    fn scratch(files: &[(&str, &str)]) -> TempDir {
        let dir = TempDir::new("recbole");
        for (name, text) in files {
            std::fs::write(dir.0.join(name), text).unwrap();
        }
        dir
    }

    const INTER: &str = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
                         u7\t2\t3\t100\n\
                         u7\t1\t5\t300\n\
                         u3\t9\t1\t50\n\
                         u7\t3\t4\t200\n\
                         u3\t1\t2\t50\n\
                         u3\t2\t2\t60.9\n\
                         u7\t2\t4\t300\n";
    const ITEM: &str = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n\
                        1\tToy Story\t1995\tAnimation Children's Comedy\n\
                        2\tSeven (Se7en)\t1995\tCrime  Thriller\n\
                        3\tunkonwn\tunkonwn\t\n";

    fn load(files: &[(&str, &str)]) -> Result<RecboleData> {
        let s = scratch(files);
        load_recbole(&s.0, "toy")
    }

    #[test]
    fn maps_ids_builds_texts_and_splits_by_time() {
        let r = load(&[("toy.inter", INTER), ("toy.item", ITEM)]).unwrap();
        let d = &r.dataset;
        assert_eq!((d.name.as_str(), d.n_users, d.n_items), ("toy", 2, 4));
        assert_eq!(r.user_keys, ["u7", "u3"]);
        // .item order first, then "9", which only .inter knows.
        assert_eq!(r.item_keys, ["1", "2", "3", "9"]);
        assert_eq!(
            r.item_texts,
            [
                "Toy Story (1995). Genres: Animation, Children's, Comedy",
                "Seven (Se7en) (1995). Genres: Crime, Thriller",
                "unkonwn",
                "9",
            ]
        );
        assert!(d.modalities.is_empty());
        let times: Vec<i64> = d.interactions.iter().map(|i| i.timestamp).collect();
        assert_eq!(times, [100, 300, 50, 200, 50, 60, 300]);
        let users = d.users();
        // u7: items 1 and 2 tie at 300; the later line (item 2) is the test.
        assert_eq!(
            users[0],
            UserData {
                train: vec![1, 2],
                valid: Some(0),
                test: Some(1)
            }
        );
        // u3: 9 and 1 tie at 50; file order puts 9 first.
        assert_eq!(
            users[1],
            UserData {
                train: vec![3],
                valid: Some(0),
                test: Some(1)
            }
        );
    }

    #[test]
    fn item_file_is_optional_and_short_histories_stay_in_training() {
        let inter = "timestamp:float\titem_id:token\tuser_id:token\n5\ta\tx\n6\tb\tx\n\n7\tc\ty\n";
        let r = load(&[("toy.inter", inter)]).unwrap();
        assert_eq!(r.item_keys, ["a", "b", "c"]);
        assert_eq!(r.item_texts, r.item_keys);
        assert!(
            r.dataset
                .interactions
                .iter()
                .all(|i| i.split == SplitLabel::Train)
        );
        let crlf = "user_id:token\titem_id:token\ttimestamp:float\r\n1\t1\t1\r\n";
        assert_eq!(load(&[("toy.inter", crlf)]).unwrap().item_keys, ["1"]);
    }

    fn error(files: &[(&str, &str)]) -> String {
        match load(files) {
            Err(e @ (Error::Format { .. } | Error::Io { .. })) => e.to_string(),
            other => panic!("expected a format or I/O error, got {other:?}"),
        }
    }

    #[test]
    fn each_malformed_input_is_named_with_file_and_line() {
        let head = "user_id:token\titem_id:token\ttimestamp:float\n";
        let cases: [(&str, String, &str); 11] = [
            ("toy.inter", String::new(), "toy.inter: line 1: empty file"),
            ("toy.inter", head.into(), "line 1: no interactions"),
            (
                "toy.inter",
                "user_id:token\titem_id:token\n1\t2\n".into(),
                "line 1: missing column 'timestamp' (found: user_id, item_id)",
            ),
            (
                "toy.inter",
                "user_id\titem_id:token\n".into(),
                "'user_id' is not name:type",
            ),
            (
                "toy.inter",
                "user_id:int\n".into(),
                "'user_id' has unknown type 'int'",
            ),
            (
                "toy.inter",
                "a:token\ta:float\n".into(),
                "column 'a' appears twice",
            ),
            (
                "toy.inter",
                format!("{head}1\t2\t3\n1\t2\n"),
                "line 3: expected 3 tab-separated fields, found 2",
            ),
            (
                "toy.inter",
                format!("{head}1\t2\tnoon\n"),
                "line 2: timestamp 'noon' is not a number",
            ),
            (
                "toy.inter",
                format!("{head}1\t2\tNaN\n"),
                "timestamp 'NaN' is not a number",
            ),
            (
                "toy.inter",
                format!("{head}1\t\t3\n"),
                "line 2: empty item_id",
            ),
            (
                "toy.inter",
                "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\tfive\t3\n"
                    .into(),
                "line 2: rating 'five' is not a number",
            ),
        ];
        for (file, text, needle) in &cases {
            let m = error(&[(*file, text.as_str())]);
            assert!(m.contains(needle), "{needle:?} not in {m:?}");
        }
        let good = format!("{head}1\t2\t3\n");
        let m = error(&[
            ("toy.inter", &good),
            ("toy.item", "item_id:token\n7\n8\n7\n"),
        ]);
        assert!(
            m.contains("toy.item: line 4: item_id '7' appears twice"),
            "{m}"
        );
        let m = error(&[("toy.inter", &good), ("toy.item", "title:token\nx\n")]);
        assert!(
            m.contains("toy.item: line 1: missing column 'item_id'"),
            "{m}"
        );
        let m = error(&[("toy.item", "item_id:token\n")]);
        assert!(
            m.starts_with("cannot read ") && m.contains("toy.inter"),
            "{m}"
        );
        let s = scratch(&[]);
        std::fs::write(s.0.join("toy.inter"), b"user_id:token\n\xff\n").unwrap();
        assert!(matches!(load_recbole(&s.0, "toy"), Err(Error::Io { .. })));
    }
}
