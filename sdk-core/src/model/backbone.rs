//! The ID-based federated recommenders FedMR plugs into (FEDMR.md,
//! "Backbones"). What differs between them is here; the shared math is in
//! `stack.rs`. FedNCF and FedRAP add their own user-side models through this
//! same enum.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backbone {
    /// Item table + private linear head; server averages weighted by samples.
    FedAvg,
    /// Same model as FedAvg; every client counts equally.
    Fcf,
    /// Also fine-tunes the item table locally and scores with that personal copy.
    PFedRec,
}

impl Backbone {
    pub const ALL: [Backbone; 3] = [Backbone::FedAvg, Backbone::Fcf, Backbone::PFedRec];

    /// The weight of a client's update in the server's average.
    pub fn aggregation_weight(self, samples: u64) -> f64 {
        match self {
            Backbone::Fcf => 1.0,
            Backbone::FedAvg | Backbone::PFedRec => samples as f64,
        }
    }

    /// Whether the client keeps its locally trained item rows for scoring.
    pub fn keeps_personal_items(self) -> bool {
        matches!(self, Backbone::PFedRec)
    }

    pub fn name(self) -> &'static str {
        match self {
            Backbone::FedAvg => "fedavg",
            Backbone::Fcf => "fcf",
            Backbone::PFedRec => "pfedrec",
        }
    }
}

impl fmt::Display for Backbone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backbone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Backbone::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown backbone '{s}' (expected fedavg, fcf or pfedrec)"))
    }
}
