//! What an app records: an item key, what the user did with it, and when.
//! These are the SDK's own types; the store keeps them, the client takes them.

use crate::{Error, Result};

/// What the user did with an item; each kind carries an implicit-feedback weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InteractionKind {
    View,
    Click,
    Like,
    Purchase,
    Dislike,
    /// An app-defined signal with an explicit weight (must be finite).
    Weighted(f32),
}

impl InteractionKind {
    /// The weight training sees for this kind.
    ///
    /// The fixed kinds' weights (1, 2, 4, 8, -4) are a starting point that
    /// doubles with each step of intent, not a tuned result; the weight is
    /// stored per row, so changing them later does not rewrite history.
    pub fn weight(self) -> f32 {
        match self {
            InteractionKind::View => 1.0,
            InteractionKind::Click => 2.0,
            InteractionKind::Like => 4.0,
            InteractionKind::Purchase => 8.0,
            InteractionKind::Dislike => -4.0,
            InteractionKind::Weighted(w) => w,
        }
    }

    /// The name stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            InteractionKind::View => "view",
            InteractionKind::Click => "click",
            InteractionKind::Like => "like",
            InteractionKind::Purchase => "purchase",
            InteractionKind::Dislike => "dislike",
            InteractionKind::Weighted(_) => "weighted",
        }
    }

    /// A fixed kind by name, for callers that hold kinds as strings (an app's
    /// event log, a binding). `weighted` needs a weight: use `Weighted(w)`.
    pub fn from_name(name: &str) -> Result<InteractionKind> {
        match name {
            "weighted" => Err(Error::InvalidArgument(
                "kind \"weighted\" needs a weight: use InteractionKind::Weighted".into(),
            )),
            _ => Self::parse(name, 0.0).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown interaction kind {name:?} (view, click, like, purchase, dislike)"
                ))
            }),
        }
    }

    /// Inverse of `as_str`; `weight` is only used by `Weighted`, whose value
    /// lives in the row's weight column.
    pub fn parse(name: &str, weight: f32) -> Option<InteractionKind> {
        Some(match name {
            "view" => InteractionKind::View,
            "click" => InteractionKind::Click,
            "like" => InteractionKind::Like,
            "purchase" => InteractionKind::Purchase,
            "dislike" => InteractionKind::Dislike,
            "weighted" => InteractionKind::Weighted(weight),
            _ => return None,
        })
    }
}

/// An interaction to record: what the app tells [`crate::Client::record`].
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub item_key: String,
    pub kind: InteractionKind,
    pub timestamp_ms: i64,
}
