//! The ID-based federated recommenders FedMR plugs into (FEDMR.md,
//! "Backbones"). What differs between them is here; the shared math is in
//! `stack.rs`, NeuMF in `ncf.rs`, FedRAP's regularisers in `rap.rs`.

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
    /// NeuMF: GMF and MLP towers (global) over private user embeddings.
    FedNcf,
    /// Item view = private personal rows P_u + global common rows Q, with
    /// FedRAP's regularisers.
    FedRap,
}

/// What a client does with the item rows it trained locally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PersonalItems {
    /// Nothing: only their change is uploaded.
    None,
    /// Keeps them and scores with them in place of the global rows (PFedRec).
    Replace,
    /// Keeps a separate personal part added to the global rows (FedRAP's P_u).
    Add,
}

impl Backbone {
    pub const ALL: [Backbone; 5] = [
        Backbone::FedAvg,
        Backbone::Fcf,
        Backbone::FedNcf,
        Backbone::PFedRec,
        Backbone::FedRap,
    ];

    /// The weight of a client's update in the server's average.
    pub fn aggregation_weight(self, samples: u64) -> f64 {
        match self {
            Backbone::Fcf => 1.0,
            Backbone::FedAvg | Backbone::PFedRec | Backbone::FedNcf | Backbone::FedRap => {
                samples as f64
            }
        }
    }

    pub fn personal_items(self) -> PersonalItems {
        match self {
            Backbone::PFedRec => PersonalItems::Replace,
            Backbone::FedRap => PersonalItems::Add,
            Backbone::FedAvg | Backbone::Fcf | Backbone::FedNcf => PersonalItems::None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backbone::FedAvg => "fedavg",
            Backbone::Fcf => "fcf",
            Backbone::PFedRec => "pfedrec",
            Backbone::FedNcf => "fedncf",
            Backbone::FedRap => "fedrap",
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
            .ok_or_else(|| {
                format!("unknown backbone '{s}' (expected fedavg, fcf, fedncf, pfedrec or fedrap)")
            })
    }
}
