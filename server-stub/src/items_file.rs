//! The items file of `catalog build`: tab-separated, a header row, a `key`
//! column, an optional `image` column with a path relative to the file,
//! every other column is text. Outside bytes: parsed without the encoders
//! (so it is fuzzed and tested without them), errors name the line.

use std::path::{Path, PathBuf};

use fedmr_core::{Error, Result};

/// One catalog item as the items file describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemRow {
    pub key: String,
    /// The text columns joined with ". ", in file order.
    pub text: String,
    pub image: Option<PathBuf>,
}

/// Reads the items file. Errors name the line.
pub fn read_items(path: &Path) -> Result<Vec<ItemRow>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let bad = |line: usize, message: String| Error::Format {
        path: path.to_path_buf(),
        message: format!("line {line}: {message}"),
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| bad(1, "empty file: expected a header row".into()))?;
    let columns: Vec<&str> = header.trim_start_matches('\u{feff}').split('\t').collect();
    let key_col = columns
        .iter()
        .position(|c| c.trim() == "key")
        .ok_or_else(|| bad(1, "no `key` column in the header".into()))?;
    let image_col = columns.iter().position(|c| c.trim() == "image");
    let base = path.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in lines {
        let fields: Vec<&str> = line.trim_end_matches('\r').split('\t').collect();
        if fields.len() != columns.len() {
            return Err(bad(
                n + 1,
                format!("{} fields, the header has {}", fields.len(), columns.len()),
            ));
        }
        let key = fields[key_col].trim();
        if key.is_empty() {
            return Err(bad(n + 1, "empty key".into()));
        }
        if !seen.insert(key.to_string()) {
            return Err(bad(n + 1, format!("key {key:?} appears twice")));
        }
        let text = fields
            .iter()
            .enumerate()
            .filter(|(c, v)| *c != key_col && Some(*c) != image_col && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
            .collect::<Vec<_>>()
            .join(". ");
        let image = image_col
            .map(|c| fields[c].trim())
            .filter(|p| !p.is_empty())
            .map(|p| base.join(p));
        items.push(ItemRow {
            key: key.to_string(),
            text,
            image,
        });
    }
    if items.is_empty() {
        return Err(bad(1, "no items".into()));
    }
    Ok(items)
}
