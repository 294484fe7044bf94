//! Robust ways to combine the clients' changes of one value, for a server
//! that expects some clients to lie (poisoning): a coordinate-wise trimmed
//! mean or median instead of the weighted mean. They look at every update,
//! so they cannot run under secure aggregation, and every update counts
//! alike: a declared sample count buys no extra say.

use serde::{Deserialize, Serialize};

/// How the changes clients sent for one value become the round's change.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// The backbone's weighted mean (FedAvg: by samples; FCF: equal).
    Mean,
    /// Coordinate-wise: drop the `trim` share of the lowest and of the
    /// highest values, average the rest (Yin et al., ICML 2018).
    TrimmedMean { trim: f32 },
    /// Coordinate-wise median.
    Median,
}

impl Combine {
    pub fn is_mean(self) -> bool {
        matches!(self, Combine::Mean)
    }

    /// Parses `mean`, `median` or `trimmed-mean:<share per side>` (e.g. 0.1).
    pub fn parse(s: &str) -> Result<Combine, String> {
        match s {
            "mean" => Ok(Combine::Mean),
            "median" => Ok(Combine::Median),
            _ => {
                let share = s.strip_prefix("trimmed-mean").ok_or_else(|| {
                    format!("unknown aggregation {s:?}: mean, median or trimmed-mean:<share>")
                })?;
                let share = share.strip_prefix(':').unwrap_or("0.1");
                let trim: f32 = share
                    .parse()
                    .map_err(|_| format!("trimmed-mean share {share:?} is not a number"))?;
                if !(0.0..0.5).contains(&trim) {
                    return Err(format!("trimmed-mean share {trim} must be in [0, 0.5)"));
                }
                Ok(Combine::TrimmedMean { trim })
            }
        }
    }

    /// The combined value of `values` (reordered in place); 0 when empty.
    pub fn of(self, values: &mut [f32]) -> f32 {
        let n = values.len();
        if n == 0 {
            return 0.0;
        }
        match self {
            Combine::Mean => values.iter().map(|&v| f64::from(v)).sum::<f64>() as f32 / n as f32,
            Combine::Median => median(values),
            Combine::TrimmedMean { trim } => {
                let cut = ((trim as f64) * n as f64).floor() as usize;
                if n <= 2 * cut {
                    return median(values);
                }
                values.sort_unstable_by(f32::total_cmp);
                let kept = &values[cut..n - cut];
                (kept.iter().map(|&v| f64::from(v)).sum::<f64>() / kept.len() as f64) as f32
            }
        }
    }
}

impl std::fmt::Display for Combine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Combine::Mean => write!(f, "mean"),
            Combine::Median => write!(f, "median"),
            Combine::TrimmedMean { trim } => write!(f, "trimmed-mean:{trim}"),
        }
    }
}

fn median(values: &mut [f32]) -> f32 {
    let n = values.len();
    let mid = n / 2;
    let (low, &mut upper, _) = values.select_nth_unstable_by(mid, f32::total_cmp);
    if n % 2 == 1 {
        upper
    } else {
        let lower = low.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        ((f64::from(lower) + f64::from(upper)) / 2.0) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_trimmed_mean_ignore_a_minority_of_outliers() {
        let mut v = [1.0, 2.0, 3.0, 1e6];
        assert_eq!(Combine::Median.of(&mut v), 2.5);
        let mut v = [5.0, 1.0, 1e6, 3.0, -1e6];
        assert_eq!(Combine::Median.of(&mut v), 3.0);
        let mut v = [1.0, 2.0, 3.0, 4.0, 1e6, 2.0, 3.0, -1e6, 2.0, 3.0];
        // 10 values, 10% per side: the two extremes go, the mean of the rest.
        let t = Combine::TrimmedMean { trim: 0.1 }.of(&mut v);
        assert!((t - 20.0 / 8.0).abs() < 1e-6, "{t}");
        let mut v = [1.0, 3.0];
        assert_eq!(Combine::Mean.of(&mut v), 2.0);
        assert_eq!(Combine::Median.of(&mut []), 0.0);
        // Too few values to trim: the median.
        let mut v = [1.0, 100.0];
        assert_eq!(Combine::TrimmedMean { trim: 0.49 }.of(&mut v), 50.5);
    }

    #[test]
    fn parse_names_every_rule_and_refuses_others() {
        assert_eq!(Combine::parse("mean"), Ok(Combine::Mean));
        assert_eq!(Combine::parse("median"), Ok(Combine::Median));
        assert_eq!(
            Combine::parse("trimmed-mean"),
            Ok(Combine::TrimmedMean { trim: 0.1 })
        );
        assert_eq!(
            Combine::parse("trimmed-mean:0.2"),
            Ok(Combine::TrimmedMean { trim: 0.2 })
        );
        assert!(Combine::parse("trimmed-mean:0.5").is_err());
        assert!(Combine::parse("krum").is_err());
        for c in [
            Combine::Mean,
            Combine::Median,
            Combine::TrimmedMean { trim: 0.2 },
        ] {
            assert_eq!(Combine::parse(&c.to_string()), Ok(c));
        }
    }
}
