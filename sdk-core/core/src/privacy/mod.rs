//! What an upload may reveal about its user, as the server configures it for
//! every client of a round (`TrainConfig::protection`, on the wire in the
//! model and round messages) and each client obeys.
//!
//! Undefended, an upload names the rows a user touched (their items and
//! sampled negatives), each row's change and the sample count; a curious
//! server recovers the user's items from them (README, "What the server
//! learns"). The defences here are chosen per round: `shape` turns a
//! trained update into the upload the configuration allows, and
//! `accountant` reports the (epsilon, delta) local DP has spent.

mod accountant;
mod shape;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::secagg::SecureAggregation;

pub use accountant::{RDP_ORDERS, RdpAccountant};
pub(crate) use shape::{fixed_negatives_seed, protect};

/// The defences of one round's uploads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Protection {
    /// Which item rows an upload carries.
    pub rows: UploadRows,
    /// Draw a user's negatives from a stream fixed by their history, so the
    /// same items are sampled every round: positives no longer stand out as
    /// the rows that recur.
    pub fixed_negatives: bool,
    /// Every upload declares one sample: the server no longer learns the
    /// history length (and weights every client alike).
    pub hide_sample_count: bool,
    /// Local differential privacy: each upload's L2 norm clipped, then
    /// Gaussian noise on every value it carries.
    pub local_dp: Option<LocalDp>,
    /// Uploads are masked so that the server learns only the round's sum
    /// (`crate::secagg`); the sample count then travels masked too.
    pub secure_aggregation: Option<SecureAggregation>,
}

/// The item rows of an upload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadRows {
    /// The rows the round trained: the user's items and sampled negatives.
    #[default]
    Touched,
    /// Every row of the item table, whether trained or not (zero change
    /// when untouched, before noise): the row set says nothing about the
    /// user. Costs n_items x d values per upload.
    Catalog,
}

/// The Gaussian mechanism on a whole upload.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalDp {
    /// The L2 norm every upload (item rows and dense values together) is clipped to.
    pub clip_norm: f32,
    /// Noise standard deviation as a multiple of `clip_norm`.
    pub noise_multiplier: f32,
}

impl LocalDp {
    /// The noise standard deviation over the mechanism's sensitivity. Local
    /// DP protects a user's whole data, so two neighbouring inputs may give
    /// any two clipped uploads: they differ by up to 2 x `clip_norm`.
    pub fn noise_to_sensitivity(&self) -> f64 {
        f64::from(self.noise_multiplier) / 2.0
    }
}

impl Protection {
    /// No defence: what uploads were before this configuration existed.
    pub fn none() -> Self {
        Protection::default()
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(secure) = &self.secure_aggregation {
            secure.validate()?;
            // Under secure aggregation the weight is masked; a declared count
            // of 1 would only shrink every weight towards the rounding error.
            if self.hide_sample_count {
                return Err(Error::InvalidConfig(
                    "secure aggregation masks the sample count already: \
                     do not also hide it"
                        .into(),
                ));
            }
        }
        if let Some(dp) = &self.local_dp {
            if !(dp.clip_norm.is_finite() && dp.clip_norm > 0.0) {
                return Err(Error::InvalidConfig(format!(
                    "local DP clip norm must be positive, got {}",
                    dp.clip_norm
                )));
            }
            if !(dp.noise_multiplier.is_finite() && dp.noise_multiplier >= 0.0) {
                return Err(Error::InvalidConfig(format!(
                    "local DP noise multiplier must be non-negative, got {}",
                    dp.noise_multiplier
                )));
            }
            // Noise on the touched rows alone would leave which rows they
            // are in the clear: no guarantee would hold.
            if self.rows != UploadRows::Catalog {
                return Err(Error::InvalidConfig(
                    "local DP needs uploads of every catalog row".into(),
                ));
            }
        }
        Ok(())
    }

    /// The named configurations that `fedmr-server serve --protection` and
    /// `fedmr-sim privacy --defences` take: `undefended`, `fixed-negatives`,
    /// `hidden-count`, `combined` (those two together) and `dp-<noise
    /// multiplier>` (combined + every catalog row + local DP clipped at
    /// `dp_clip`), `secure` (secure aggregation with its default
    /// parameters) and `secure-fixed-negatives`. Catalog rows are no preset
    /// of their own: without noise their zero rows show the same touched set.
    pub fn preset(name: &str, dp_clip: f32) -> Result<Self> {
        let combined = Protection {
            rows: UploadRows::Touched,
            fixed_negatives: true,
            hide_sample_count: true,
            local_dp: None,
            secure_aggregation: None,
        };
        let secure = Protection {
            secure_aggregation: Some(SecureAggregation::default()),
            ..Protection::none()
        };
        let protection = match name {
            "undefended" => Protection::none(),
            "fixed-negatives" => Protection {
                fixed_negatives: true,
                ..Protection::none()
            },
            "hidden-count" => Protection {
                hide_sample_count: true,
                ..Protection::none()
            },
            "combined" => combined,
            "secure" => secure,
            "secure-fixed-negatives" => Protection {
                fixed_negatives: true,
                ..secure
            },
            other => {
                let noise = other
                    .strip_prefix("dp-")
                    .and_then(|z| z.parse::<f32>().ok())
                    .ok_or_else(|| {
                        Error::InvalidConfig(format!(
                            "unknown protection {other:?} (undefended, fixed-negatives, \
                             hidden-count, combined, dp-<noise>, secure or secure-fixed-negatives)"
                        ))
                    })?;
                Protection {
                    rows: UploadRows::Catalog,
                    local_dp: Some(LocalDp {
                        clip_norm: dp_clip,
                        noise_multiplier: noise,
                    }),
                    ..combined
                }
            }
        };
        protection.validate()?;
        Ok(protection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_by_name_and_bad_ones_refused() {
        assert_eq!(
            Protection::preset("undefended", 1.0).unwrap(),
            Protection::none()
        );
        let dp = Protection::preset("dp-2.5", 0.5).unwrap();
        assert_eq!(dp.rows, UploadRows::Catalog);
        assert!(dp.fixed_negatives && dp.hide_sample_count);
        assert_eq!(dp.local_dp.unwrap().noise_multiplier, 2.5);
        for bad in ["nope", "dp-", "dp-x", "dp--1", "dp-inf"] {
            assert!(
                matches!(Protection::preset(bad, 1.0), Err(Error::InvalidConfig(_))),
                "{bad}"
            );
        }
        assert!(
            Protection::preset("dp-1", 0.0).is_err(),
            "clip must be positive"
        );
        // DP on the touched rows alone would leave the row set in the clear.
        let leaky = Protection {
            local_dp: dp.local_dp,
            ..Protection::none()
        };
        assert!(leaky.validate().is_err());
        let secure = Protection::preset("secure", 1.0).unwrap();
        assert!(secure.secure_aggregation.is_some() && !secure.hide_sample_count);
        let hidden_twice = Protection {
            hide_sample_count: true,
            ..secure
        };
        assert!(hidden_twice.validate().is_err());
    }
}
