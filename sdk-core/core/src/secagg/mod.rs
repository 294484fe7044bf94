//! Secure aggregation: the server learns only the sum of a round's updates
//! (Bonawitz et al., CCS 2017, with SecAgg+'s sparse neighbour graph of Bell
//! et al., CCS 2020). Sans-I/O: `ClientRound` and `ServerRound` are state
//! machines that take and give the protocol's messages; the SDK and the
//! server move the messages over HTTP and keep the states in SQLite / memory.
//!
//! A round, for a cohort of `n` clients each with `k` neighbours:
//! 1. **Keys.** Each client draws two X25519 key pairs (one to encrypt shares,
//!    one to agree masks) and a self-mask seed `b`, and advertises the public
//!    keys and a commitment to `b`. The server numbers the clients: the roster.
//! 2. **Shares.** Each client Shamir-shares its mask key and `b` among its
//!    neighbours (threshold: more than half of them) and seals each share to
//!    its holder (X25519 + HKDF + ChaCha20-Poly1305); the server forwards them.
//! 3. **Masked input.** Each client quantises its update (`quantize`) and adds
//!    the self mask (ChaCha20 of `b`) and, for every neighbour that shared,
//!    the pairwise mask (ChaCha20 of their agreed key; + when its index is
//!    lower, - when higher), all modulo 2^32. Pairwise masks cancel in a sum.
//! 4. **Unmasking.** The server names who sent masked inputs (survivors) and
//!    who shared but did not (dropped). Each survivor reveals the `b` shares
//!    it holds of survivors and the mask-key shares of the dropped — never
//!    both of one client. With a threshold of each, the server removes the
//!    self masks and the dropped clients' uncancelled pairwise masks.

mod client;
mod crypto;
mod graph;
mod messages;
mod quantize;
mod server;
mod shamir;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use client::ClientRound;
pub use graph::{degree, neighbours, threshold};
pub use messages::{
    KeyAdvert, MaskedInput, Roster, RosterEntry, SealedShare, ShareBatch, UnmaskRequest,
    UnmaskResponse,
};
pub use quantize::{
    FixedPoint, Layout, Quantized, UnmaskedSums, dequantize, normalised_weight, quantize,
};
pub use server::{Phase, ServerRound};
pub use shamir::Share;

/// The smallest cohort a secure round runs with: with two clients each
/// would learn the other's update from the sum.
pub const MIN_COHORT: u32 = 3;

/// Secure aggregation's parameters, part of the round's `Protection`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecureAggregation {
    /// Neighbours each client masks with and shares its secrets among
    /// (SecAgg+'s `k`; the whole cohort when it is smaller). A client's
    /// secrets are recovered from more than half of its neighbours, so a
    /// round survives as long as fewer than half of any client's neighbours
    /// drop out after sharing.
    pub neighbours: u32,
    /// Every weighted value is clamped to `±clip` before it is quantised.
    pub clip: f32,
    /// The largest cohort; the fixed-point scale leaves room for this many
    /// values in one sum without wrap-around.
    pub max_clients: u32,
    /// A client's weight counts at most this many samples.
    pub sample_cap: u64,
}

impl Default for SecureAggregation {
    fn default() -> Self {
        SecureAggregation {
            // With a threshold of 65 of 128, a round of 1,000 in which 30%
            // vanish after uploading unmasks with probability 0.999 (each
            // survivor needs 65 of its neighbours to answer; binomial,
            // README "Secure aggregation").
            neighbours: 128,
            clip: 1.0,
            max_clients: 1024,
            sample_cap: 1024,
        }
    }
}

impl SecureAggregation {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(format!("secure aggregation: {m}")));
        if self.neighbours < MIN_COHORT - 1 {
            return bad(format!("{} neighbours (at least 2)", self.neighbours));
        }
        // Weights in (0, 1] travel through the same code as the values.
        if !(self.clip.is_finite() && self.clip >= 1.0) {
            return bad(format!("clip {} (at least 1)", self.clip));
        }
        if self.max_clients < MIN_COHORT || self.max_clients > 1 << 20 {
            return bad(format!("max clients {} (3 to 2^20)", self.max_clients));
        }
        if self.sample_cap == 0 {
            return bad("a sample cap of 0".into());
        }
        Ok(())
    }

    pub fn fixed_point(&self) -> FixedPoint {
        FixedPoint::new(self.clip, self.max_clients)
    }
}

#[cfg(test)]
mod tests;
