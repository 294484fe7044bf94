//! The privacy a user has spent under local DP: Rényi DP of the Gaussian
//! mechanism, composed over the rounds the user took part in and converted
//! to (epsilon, delta). The same orders and conversion as Google's
//! `dp-accounting` (`RdpAccountant`), whose values are this module's test
//! fixtures (`tests/fixtures/dp_accounting.json`, made by
//! `scripts/dp-fixtures.py`).
//!
//! No amplification by sampling: the server sees who uploads, so a round a
//! user took part in spends its full cost.

/// dp-accounting's `DEFAULT_RDP_ORDERS`.
pub const RDP_ORDERS: [f64; 156] = rdp_orders();

const fn rdp_orders() -> [f64; 156] {
    let mut orders = [0.0; 156];
    let mut i = 0;
    // 1.1, 1.2, ..., 10.9
    while i < 99 {
        orders[i] = 1.0 + (i as f64 + 1.0) / 10.0;
        i += 1;
    }
    // 11, 12, ..., 63
    while i < 152 {
        orders[i] = (i - 99 + 11) as f64;
        i += 1;
    }
    orders[152] = 128.0;
    orders[153] = 256.0;
    orders[154] = 512.0;
    orders[155] = 1024.0;
    orders
}

/// Rényi divergences spent so far, one per order of `RDP_ORDERS`.
#[derive(Clone, Debug, PartialEq)]
pub struct RdpAccountant {
    rdp: Vec<f64>,
    rounds: u64,
}

impl Default for RdpAccountant {
    fn default() -> Self {
        RdpAccountant {
            rdp: vec![0.0; RDP_ORDERS.len()],
            rounds: 0,
        }
    }
}

impl RdpAccountant {
    /// Adds one release of the Gaussian mechanism whose noise standard
    /// deviation is `noise_to_sensitivity` times its L2 sensitivity. Zero
    /// noise spends an unbounded budget.
    pub fn spend_gaussian(&mut self, noise_to_sensitivity: f64) {
        for (r, &alpha) in self.rdp.iter_mut().zip(RDP_ORDERS.iter()) {
            *r += if noise_to_sensitivity > 0.0 {
                alpha / (2.0 * noise_to_sensitivity * noise_to_sensitivity)
            } else {
                f64::INFINITY
            };
        }
        self.rounds += 1;
    }

    /// Releases accounted so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// The smallest epsilon over the orders for this `delta` (Canonne, Kamath
    /// and Steinke 2020, Prop. 12 — dp-accounting's `compute_epsilon`).
    /// 0 before any release, infinite when `delta` is 0 or a release had no noise.
    pub fn epsilon(&self, delta: f64) -> f64 {
        if self.rdp.iter().all(|&r| r == 0.0) {
            return 0.0;
        }
        if delta <= 0.0 {
            return f64::INFINITY;
        }
        let best = RDP_ORDERS
            .iter()
            .zip(&self.rdp)
            .map(|(&alpha, &r)| {
                if delta * delta + (-r).exp_m1() > 0.0 {
                    0.0
                } else if alpha > 1.01 {
                    r + (-1.0 / alpha).ln_1p() - (delta * alpha).ln() / (alpha - 1.0)
                } else {
                    f64::INFINITY
                }
            })
            .fold(f64::INFINITY, f64::min);
        best.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_match_dp_accounting_defaults() {
        assert_eq!(RDP_ORDERS[0], 1.1);
        assert!((RDP_ORDERS[98] - 10.9).abs() < 1e-12);
        assert_eq!(RDP_ORDERS[99], 11.0);
        assert_eq!(RDP_ORDERS[151], 63.0);
        assert_eq!(RDP_ORDERS[155], 1024.0);
    }

    #[test]
    fn more_rounds_and_less_noise_spend_more() {
        let spent = |noise: f64, rounds: u64| {
            let mut a = RdpAccountant::default();
            (0..rounds).for_each(|_| a.spend_gaussian(noise));
            a.epsilon(1e-5)
        };
        assert_eq!(RdpAccountant::default().epsilon(1e-5), 0.0);
        assert!(spent(1.0, 10) > spent(1.0, 1));
        assert!(spent(0.5, 10) > spent(1.0, 10));
        assert_eq!(spent(0.0, 1), f64::INFINITY);
    }
}
