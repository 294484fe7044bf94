//! A client's side of one secure round, as a state machine that the SDK
//! stores between phases (`codec`-encoded in SQLite), so an app killed
//! between two phases resumes where it stopped. Everything a phase sends is
//! derived from the round's secrets, so resending after a crash sends the
//! same bytes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::crypto::{self, KeyStream};
use super::messages::{
    KeyAdvert, MaskedInput, Roster, SealedShare, ShareBatch, UnmaskRequest, UnmaskResponse,
};
use super::shamir::{self, Share};
use super::{MIN_COHORT, SecureAggregation, graph};
use crate::codec;
use crate::error::{Error, Result};

fn refuse<T>(why: impl Into<String>) -> Result<T> {
    Err(Error::InvalidMessage(format!(
        "secure aggregation: {}",
        why.into()
    )))
}

/// What one Shamir plaintext carries: both shares a holder keeps of one
/// owner, bound to the round and the direction.
#[derive(Serialize, Deserialize)]
struct SharePlaintext {
    round: u64,
    from: u32,
    to: u32,
    mask_key: Share,
    self_mask: Share,
}

/// The shares this client holds of one neighbour that shared with it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Held {
    owner: u32,
    mask_key: Share,
    self_mask: Share,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct ClientRound {
    round: u64,
    share_secret: [u8; 32],
    mask_secret: [u8; 32],
    self_mask_seed: [u8; 32],
    roster: Option<Roster>,
    index: Option<u32>,
    held: Option<Vec<Held>>,
    /// The server acknowledged our masked input.
    input_delivered: bool,
    answered: Option<UnmaskRequest>,
}

impl Drop for ClientRound {
    fn drop(&mut self) {
        self.share_secret.zeroize();
        self.mask_secret.zeroize();
        self.self_mask_seed.zeroize();
    }
}

impl std::fmt::Debug for ClientRound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRound")
            .field("round", &self.round)
            .field("index", &self.index)
            .field("phase", &self.phase())
            .finish_non_exhaustive()
    }
}

impl ClientRound {
    /// A new round's secrets from 32 bytes of the caller's cryptographic
    /// randomness (the SDK reads the OS's; the core does no I/O).
    pub fn new(round: u64, entropy: &[u8; 32]) -> Self {
        ClientRound {
            round,
            share_secret: crypto::derive(entropy, "share secret", round),
            mask_secret: crypto::derive(entropy, "mask secret", round),
            self_mask_seed: crypto::derive(entropy, "self-mask seed", round),
            roster: None,
            index: None,
            held: None,
            input_delivered: false,
            answered: None,
        }
    }

    pub fn round(&self) -> u64 {
        self.round
    }

    /// The last step taken: "keys", "shares", "masked" or "unmasked".
    pub fn phase(&self) -> &'static str {
        match (&self.roster, &self.held, &self.answered) {
            (None, _, _) => "keys",
            (Some(_), None, _) => "shares",
            (Some(_), Some(_), None) => "masked",
            (Some(_), Some(_), Some(_)) => "unmasked",
        }
    }

    /// Records that the server acknowledged the masked input (no resend).
    pub fn mark_input_delivered(&mut self) {
        self.input_delivered = true;
    }

    pub fn input_delivered(&self) -> bool {
        self.input_delivered
    }

    /// The roster, once it is in.
    pub fn roster(&self) -> Option<&Roster> {
        self.roster.as_ref()
    }

    /// The unmask request this client answered, if it did.
    pub fn answered(&self) -> Option<&UnmaskRequest> {
        self.answered.as_ref()
    }

    /// This client's roster index, once the roster is in.
    pub fn index(&self) -> Option<u32> {
        self.index
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        codec::decode(bytes, "secure aggregation state")
    }

    /// Step 1: the public keys to advertise.
    pub fn advert(&self) -> KeyAdvert {
        KeyAdvert {
            round: self.round,
            share_key: crypto::public_key(&self.share_secret),
            mask_key: crypto::public_key(&self.mask_secret),
            self_mask_commitment: Sha256::digest(self.self_mask_seed).into(),
        }
    }

    /// Step 2: checks the roster and seals shares of both secrets for each
    /// neighbour.
    pub fn share(
        &mut self,
        roster: &Roster,
        config: &SecureAggregation,
        vector_len: usize,
    ) -> Result<ShareBatch> {
        let me = self.check_roster(roster, config, vector_len)?;
        let n = roster.cohort;
        let holders = graph::neighbours(n, roster.degree, me);
        let xs: Vec<u32> = holders.iter().map(|&j| j + 1).collect();
        let t = roster.threshold as usize;
        let mut stream = KeyStream::new(&crypto::derive(
            &[self.mask_secret, self.self_mask_seed].concat(),
            "shamir coefficients",
            self.round,
        ));
        let mask_key = shamir::split(&self.mask_secret, &xs, t, &mut stream)?;
        let self_mask = shamir::split(&self.self_mask_seed, &xs, t, &mut stream)?;
        let mut shares = Vec::with_capacity(holders.len());
        for ((&to, mask_key), self_mask) in holders.iter().zip(mask_key).zip(self_mask) {
            let plaintext = codec::encode(&SharePlaintext {
                round: self.round,
                from: me,
                to,
                mask_key,
                self_mask,
            });
            let key = self.share_key_with(roster, to)?;
            shares.push(SealedShare {
                from: me,
                to,
                ciphertext: crypto::seal(&key, me, to, &plaintext),
            });
        }
        self.roster = Some(roster.clone());
        self.index = Some(me);
        Ok(ShareBatch {
            round: self.round,
            shares,
        })
    }

    fn share_key_with(&self, roster: &Roster, other: u32) -> Result<[u8; 32]> {
        let Some(entry) = roster.entry(other) else {
            return refuse(format!("{other} is not in our part of the roster"));
        };
        let theirs = &entry.share_key;
        crypto::agree(&self.share_secret, theirs, "share key", self.round)
    }

    /// Our index in a roster that is well formed for this round.
    fn check_roster(
        &self,
        roster: &Roster,
        config: &SecureAggregation,
        vector_len: usize,
    ) -> Result<u32> {
        if roster.round != self.round {
            return refuse(format!(
                "a roster of round {} in round {}",
                roster.round, self.round
            ));
        }
        let n = roster.cohort;
        if n < MIN_COHORT || n > config.max_clients {
            return refuse(format!("a cohort of {n} (3 to {})", config.max_clients));
        }
        // A smaller degree or threshold than the round's would let the
        // server recover secrets from fewer (possibly its own) clients.
        let degree = graph::degree(n, config.neighbours);
        if roster.degree != degree || roster.threshold != graph::threshold(degree) {
            return refuse(format!(
                "degree {} and threshold {} (the round's are {degree} and {})",
                roster.degree,
                roster.threshold,
                graph::threshold(degree)
            ));
        }
        if roster.vector_len != vector_len as u64 {
            return refuse(format!(
                "vectors of {} values, this model's have {vector_len}",
                roster.vector_len
            ));
        }
        let mut keys: Vec<&[u8; 32]> = roster.members.iter().map(|(_, m)| &m.mask_key).collect();
        keys.extend(roster.members.iter().map(|(_, m)| &m.share_key));
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return refuse("a public key appears twice in the roster");
        }
        let mine = self.advert();
        let Some(&(me, _)) = roster.members.iter().find(|(_, m)| {
            m.share_key == mine.share_key
                && m.mask_key == mine.mask_key
                && m.self_mask_commitment == mine.self_mask_commitment
        }) else {
            return refuse("the roster does not list this client");
        };
        // Exactly our neighbours' keys, so that every share has its holder.
        let mut expected = graph::neighbours(n, degree, me);
        expected.push(me);
        expected.sort_unstable();
        if !roster.members.iter().map(|(i, _)| *i).eq(expected) {
            return refuse("the roster does not list exactly this client's neighbours");
        }
        Ok(me)
    }

    /// Step 3: opens the shares neighbours sealed for us, and masks `input`
    /// (the quantised update) with the self mask and a pairwise mask per
    /// neighbour that shared.
    pub fn mask(&mut self, inbox: &ShareBatch, input: &[u32]) -> Result<MaskedInput> {
        let (Some(roster), Some(me)) = (self.roster.clone(), self.index) else {
            return refuse("masking before the roster");
        };
        if inbox.round != self.round {
            return refuse(format!("shares of round {}", inbox.round));
        }
        if input.len() as u64 != roster.vector_len {
            return refuse(format!("an input of {} values", input.len()));
        }
        let n = roster.cohort;
        let mut held: Vec<Held> = Vec::with_capacity(inbox.shares.len());
        for sealed in &inbox.shares {
            if sealed.to != me || !graph::adjacent(n, roster.degree, me, sealed.from) {
                return refuse(format!("a share from {} to {}", sealed.from, sealed.to));
            }
            if held.iter().any(|h| h.owner == sealed.from) {
                return refuse(format!("two shares from {}", sealed.from));
            }
            let key = self.share_key_with(&roster, sealed.from)?;
            let plaintext = crypto::open(&key, sealed.from, me, &sealed.ciphertext)?;
            let opened: SharePlaintext = codec::decode(&plaintext, "secure aggregation share")?;
            if (opened.round, opened.from, opened.to) != (self.round, sealed.from, me)
                || opened.mask_key.x != me + 1
                || opened.self_mask.x != me + 1
            {
                return refuse(format!("the share from {} is not for us", sealed.from));
            }
            held.push(Held {
                owner: sealed.from,
                mask_key: opened.mask_key,
                self_mask: opened.self_mask,
            });
        }
        held.sort_by_key(|h| h.owner);
        let mut values = input.to_vec();
        KeyStream::new(&crypto::derive(
            &self.self_mask_seed,
            "self mask",
            self.round,
        ))
        .apply_mask(&mut values, true);
        for h in &held {
            let theirs = &roster.entry(h.owner).expect("a neighbour's entry").mask_key;
            let key = crypto::agree(&self.mask_secret, theirs, "pairwise mask", self.round)?;
            KeyStream::new(&key).apply_mask(&mut values, me < h.owner);
        }
        self.held = Some(held);
        Ok(MaskedInput::new(self.round, me, &values))
    }

    /// Step 4: the shares the server needs to remove the masks, if the
    /// request is one an honest client may answer: it never reveals both the
    /// self-mask share and the mask-key share of one client (which would
    /// expose that client's input), so it answers one request per round
    /// (the same one again, for retries) with disjoint survivors and dropped.
    pub fn unmask(&mut self, request: &UnmaskRequest) -> Result<UnmaskResponse> {
        let (Some(roster), Some(me), Some(held)) = (&self.roster, self.index, &self.held) else {
            return refuse("unmasking before masking");
        };
        if request.round != self.round {
            return refuse(format!("an unmask request of round {}", request.round));
        }
        if self.answered.as_ref().is_some_and(|a| a != request) {
            return refuse("a second, different unmask request in one round");
        }
        let n = roster.cohort;
        let ascending =
            |ids: &[u32]| ids.windows(2).all(|w| w[0] < w[1]) && ids.iter().all(|&i| i < n);
        if !ascending(&request.survivors) || !ascending(&request.dropped) {
            return refuse("survivors and dropped must be ascending roster indices");
        }
        if let Some(both) = request
            .survivors
            .iter()
            .find(|i| request.dropped.binary_search(i).is_ok())
        {
            return refuse(format!(
                "client {both} named both survivor and dropped: its input would be exposed"
            ));
        }
        if request.survivors.binary_search(&me).is_err() {
            return refuse("this client's input is not among the survivors");
        }
        if (request.survivors.len() as u32) < roster.threshold {
            return refuse(format!(
                "{} survivors, fewer than the threshold {}",
                request.survivors.len(),
                roster.threshold
            ));
        }
        let mut response = UnmaskResponse {
            round: self.round,
            from: me,
            self_mask_shares: Vec::new(),
            mask_key_shares: Vec::new(),
        };
        for neighbour in graph::neighbours(n, roster.degree, me) {
            let listed = request.survivors.binary_search(&neighbour).is_ok()
                || request.dropped.binary_search(&neighbour).is_ok();
            let Some(h) = held.iter().find(|h| h.owner == neighbour) else {
                // It never shared with us, so it cannot be in the round.
                if listed {
                    return refuse(format!("{neighbour} is listed but never shared"));
                }
                continue;
            };
            if request.survivors.binary_search(&neighbour).is_ok() {
                response
                    .self_mask_shares
                    .push((neighbour, h.self_mask.clone()));
            } else if request.dropped.binary_search(&neighbour).is_ok() {
                response
                    .mask_key_shares
                    .push((neighbour, h.mask_key.clone()));
            } else {
                return refuse(format!(
                    "{neighbour} shared but is neither survivor nor dropped"
                ));
            }
        }
        self.answered = Some(request.clone());
        Ok(response)
    }
}
