//! The protocol's messages, as values; `wire::secagg` frames them.

use serde::{Deserialize, Serialize};

use super::shamir::Share;

/// Step 1, client -> server: this round's public keys and a commitment to
/// the self-mask seed (sha256 of it; lets the server check what it rebuilds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAdvert {
    pub round: u64,
    pub share_key: [u8; 32],
    pub mask_key: [u8; 32],
    pub self_mask_commitment: [u8; 32],
}

/// One roster member: an advert without its round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    pub share_key: [u8; 32],
    pub mask_key: [u8; 32],
    pub self_mask_commitment: [u8; 32],
}

/// Server -> one client: the cohort's shape, and the keys of this client
/// and its neighbours (SecAgg+: a client never needs the others', so the
/// roster it downloads grows with its degree, not with the cohort).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub round: u64,
    /// Clients in the round (indices 0..cohort).
    pub cohort: u32,
    /// Neighbours per client (the graph's degree for this cohort).
    pub degree: u32,
    /// Shares that recover a secret.
    pub threshold: u32,
    /// Values in every masked vector.
    pub vector_len: u64,
    /// The client's own entry and its neighbours', by roster index, ascending.
    pub members: Vec<(u32, RosterEntry)>,
}

impl Roster {
    /// The entry of roster index `index`, if this roster lists it.
    pub fn entry(&self, index: u32) -> Option<&RosterEntry> {
        self.members
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .map(|k| &self.members[k].1)
    }
}

/// A Shamir share sealed by `from` for `to` (ChaCha20-Poly1305).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedShare {
    pub from: u32,
    pub to: u32,
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// Step 2: a client's sealed shares (client -> server, all from it), or
/// those addressed to one client (server -> client, all to it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareBatch {
    pub round: u64,
    pub shares: Vec<SealedShare>,
}

/// Step 3, client -> server: the masked, quantised update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedInput {
    pub round: u64,
    pub from: u32,
    /// Little-endian u32 values (masked values are uniform: a varint would
    /// spend five bytes on most).
    #[serde(with = "serde_bytes")]
    pub values: Vec<u8>,
}

impl MaskedInput {
    pub fn new(round: u64, from: u32, values: &[u32]) -> Self {
        MaskedInput {
            round,
            from,
            values: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// The values, or `None` when the byte count is not a multiple of 4.
    pub fn words(&self) -> Option<Vec<u32>> {
        self.values.len().is_multiple_of(4).then(|| {
            self.values
                .chunks_exact(4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                .collect()
        })
    }
}

/// Step 4, server -> survivors: whose inputs are in the sum, and who shared
/// but sent no input. Both ascending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmaskRequest {
    pub round: u64,
    pub survivors: Vec<u32>,
    pub dropped: Vec<u32>,
}

/// Step 4, survivor -> server: the shares it holds, by owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmaskResponse {
    pub round: u64,
    pub from: u32,
    /// Shares of survivors' self-mask seeds.
    pub self_mask_shares: Vec<(u32, Share)>,
    /// Shares of dropped clients' mask keys.
    pub mask_key_shares: Vec<(u32, Share)>,
}
