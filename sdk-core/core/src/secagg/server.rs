//! The server's side of one secure round: collects each phase's messages,
//! checks them, forwards shares, sums masked inputs as they arrive
//! (O(vector) memory whatever the cohort) and removes the masks. When a
//! phase ends is the caller's decision (`close_*`): the server crate closes
//! a phase when everyone expected has answered or its deadline passes.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::crypto::{self, KeyStream};
use super::messages::{
    KeyAdvert, MaskedInput, Roster, RosterEntry, SealedShare, ShareBatch, UnmaskRequest,
    UnmaskResponse,
};
use super::shamir::{self, Share};
use super::{MIN_COHORT, SecureAggregation, graph};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The largest sealed share a client may send (the plaintext is ~110 bytes).
const MAX_SEALED_SHARE_BYTES: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Collecting key adverts.
    Keys,
    /// Roster published; collecting sealed shares.
    Shares,
    /// Shares forwarded; collecting masked inputs.
    Masked,
    /// Unmask request published; collecting shares of secrets.
    Unmask,
    /// The sum is out.
    Done,
}

fn refuse<T>(why: impl Into<String>) -> Result<T> {
    Err(Error::InvalidMessage(format!(
        "secure aggregation: {}",
        why.into()
    )))
}

pub struct ServerRound {
    round: u64,
    config: SecureAggregation,
    vector_len: usize,
    phase: Phase,
    adverts: Vec<(String, KeyAdvert)>,
    /// The whole roster (`members[i]` is index i); clients get their part.
    roster: Option<Roster>,
    /// Participant ids by roster index.
    ids: Vec<String>,
    /// Sealed shares by sender: who shared (U2).
    shared: BTreeMap<u32, Vec<SealedShare>>,
    /// The same shares by recipient, built when sharing ends.
    inboxes: BTreeMap<u32, Vec<SealedShare>>,
    pub(super) masked_sum: Vec<u32>,
    /// Who sent a masked input (U3).
    masked: BTreeSet<u32>,
    request: Option<UnmaskRequest>,
    /// Revealed shares by owner.
    self_mask_shares: BTreeMap<u32, Vec<Share>>,
    mask_key_shares: BTreeMap<u32, Vec<Share>>,
    answered: BTreeSet<u32>,
}

impl ServerRound {
    pub fn new(round: u64, config: SecureAggregation, vector_len: usize) -> Result<Self> {
        config.validate()?;
        Ok(ServerRound {
            round,
            config,
            vector_len,
            phase: Phase::Keys,
            adverts: Vec::new(),
            roster: None,
            ids: Vec::new(),
            shared: BTreeMap::new(),
            inboxes: BTreeMap::new(),
            masked_sum: vec![0; vector_len],
            masked: BTreeSet::new(),
            request: None,
            self_mask_shares: BTreeMap::new(),
            mask_key_shares: BTreeMap::new(),
            answered: BTreeSet::new(),
        })
    }

    pub fn round(&self) -> u64 {
        self.round
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    fn expect(&self, phase: Phase) -> Result<()> {
        if self.phase != phase {
            return refuse(format!("the round is at {:?}, not {phase:?}", self.phase));
        }
        Ok(())
    }

    /// Adverts in, then (after the roster) shares, masked inputs and unmask
    /// answers in: how many of the current phase's messages have arrived.
    pub fn arrived(&self) -> usize {
        match self.phase {
            Phase::Keys => self.adverts.len(),
            Phase::Shares => self.shared.len(),
            Phase::Masked => self.masked.len(),
            Phase::Unmask | Phase::Done => self.answered.len(),
        }
    }

    /// How many the current phase can expect at most.
    pub fn expected(&self) -> usize {
        match self.phase {
            Phase::Keys => self.config.max_clients as usize,
            Phase::Shares => self.ids.len(),
            Phase::Masked => self.shared.len(),
            Phase::Unmask | Phase::Done => self.masked.len(),
        }
    }

    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.ids.iter().position(|i| i == id).map(|i| i as u32)
    }

    /// Whether `id` takes part: advertised keys (before the roster) or is
    /// in the roster.
    pub fn knows(&self, id: &str) -> bool {
        self.adverts.iter().any(|(i, _)| i == id) || self.index_of(id).is_some()
    }

    fn member(&self, id: &str) -> Result<u32> {
        self.index_of(id)
            .map_or_else(|| refuse("the client is not in this round's roster"), Ok)
    }

    /// Step 1. A repeat of the same advert is accepted (a retry).
    pub fn advertise(&mut self, id: &str, advert: KeyAdvert) -> Result<()> {
        self.expect(Phase::Keys)?;
        if advert.round != self.round {
            return refuse(format!("keys for round {}", advert.round));
        }
        if let Some((_, known)) = self.adverts.iter().find(|(i, _)| i == id) {
            return if *known == advert {
                Ok(())
            } else {
                refuse("the client advertised other keys already")
            };
        }
        if self.adverts.len() >= self.config.max_clients as usize {
            return refuse("the cohort is full");
        }
        if self
            .adverts
            .iter()
            .any(|(_, a)| a.mask_key == advert.mask_key || a.share_key == advert.share_key)
        {
            return refuse("these public keys are another client's");
        }
        self.adverts.push((id.to_string(), advert));
        Ok(())
    }

    /// Ends step 1: numbers the clients (in an order drawn from `seed`); each
    /// then gets its part of the roster (`roster_for`).
    pub fn close_keys(&mut self, seed: u64) -> Result<()> {
        self.expect(Phase::Keys)?;
        let n = self.adverts.len() as u32;
        if n < MIN_COHORT {
            return refuse(format!(
                "{n} clients advertised keys (at least {MIN_COHORT})"
            ));
        }
        let mut adverts = std::mem::take(&mut self.adverts);
        Rng::new(seed).shuffle(&mut adverts);
        let degree = graph::degree(n, self.config.neighbours);
        self.ids = adverts.iter().map(|(id, _)| id.clone()).collect();
        self.roster = Some(Roster {
            round: self.round,
            cohort: n,
            degree,
            threshold: graph::threshold(degree),
            vector_len: self.vector_len as u64,
            members: adverts
                .into_iter()
                .enumerate()
                .map(|(i, (_, a))| {
                    let entry = RosterEntry {
                        share_key: a.share_key,
                        mask_key: a.mask_key,
                        self_mask_commitment: a.self_mask_commitment,
                    };
                    (i as u32, entry)
                })
                .collect(),
        });
        self.phase = Phase::Shares;
        Ok(())
    }

    /// `id`'s part of the roster: its entry and its neighbours', once the
    /// cohort is closed (`None` before).
    pub fn roster_for(&self, id: &str) -> Result<Option<Roster>> {
        let Some(full) = &self.roster else {
            return Ok(None);
        };
        let me = self.member(id)?;
        let mut wanted = graph::neighbours(full.cohort, full.degree, me);
        wanted.push(me);
        wanted.sort_unstable();
        Ok(Some(Roster {
            round: full.round,
            cohort: full.cohort,
            degree: full.degree,
            threshold: full.threshold,
            vector_len: full.vector_len,
            members: wanted
                .into_iter()
                .map(|i| full.members[i as usize].clone())
                .collect(),
        }))
    }

    fn roster_ref(&self) -> &Roster {
        self.roster
            .as_ref()
            .expect("phases after Keys have a roster")
    }

    /// Step 2: one sealed share from the client to each of its neighbours.
    pub fn add_shares(&mut self, id: &str, batch: ShareBatch) -> Result<()> {
        self.expect(Phase::Shares)?;
        let me = self.member(id)?;
        if batch.round != self.round {
            return refuse(format!("shares for round {}", batch.round));
        }
        if let Some(known) = self.shared.get(&me) {
            return if *known == batch.shares {
                Ok(())
            } else {
                refuse("the client sent other shares already")
            };
        }
        let roster = self.roster_ref();
        let expected = graph::neighbours(roster.cohort, roster.degree, me);
        let mut to: Vec<u32> = batch.shares.iter().map(|s| s.to).collect();
        to.sort_unstable();
        if to != expected
            || batch
                .shares
                .iter()
                .any(|s| s.from != me || s.ciphertext.len() > MAX_SEALED_SHARE_BYTES)
        {
            return refuse("shares must go from the client to each of its neighbours once");
        }
        self.shared.insert(me, batch.shares);
        Ok(())
    }

    /// Ends step 2: who shared is fixed.
    pub fn close_shares(&mut self) -> Result<()> {
        self.expect(Phase::Shares)?;
        if (self.shared.len() as u32) < MIN_COHORT {
            return refuse(format!(
                "{} clients shared (at least {MIN_COHORT})",
                self.shared.len()
            ));
        }
        for share in self.shared.values().flatten() {
            self.inboxes
                .entry(share.to)
                .or_default()
                .push(share.clone());
        }
        self.phase = Phase::Masked;
        Ok(())
    }

    /// The shares sealed for `id` by the clients that shared.
    pub fn inbox(&self, id: &str) -> Result<ShareBatch> {
        if matches!(self.phase, Phase::Keys | Phase::Shares) {
            return refuse("shares are forwarded once everyone has shared");
        }
        let me = self.member(id)?;
        if !self.shared.contains_key(&me) {
            return refuse("the client did not share in time");
        }
        let shares = self.inboxes.get(&me).cloned().unwrap_or_default();
        Ok(ShareBatch {
            round: self.round,
            shares,
        })
    }

    /// Step 3: a masked input joins the running sum (a repeat is ignored).
    pub fn add_masked(&mut self, id: &str, input: &MaskedInput) -> Result<()> {
        self.expect(Phase::Masked)?;
        let me = self.member(id)?;
        if input.round != self.round || input.from != me {
            return refuse("the input's round or sender is not this client's");
        }
        if !self.shared.contains_key(&me) {
            return refuse("the client did not share in time");
        }
        if self.masked.contains(&me) {
            return Ok(());
        }
        let Some(values) = input.words().filter(|v| v.len() == self.vector_len) else {
            return refuse(format!("an input of {} bytes", input.values.len()));
        };
        for (s, v) in self.masked_sum.iter_mut().zip(values) {
            *s = s.wrapping_add(v);
        }
        self.masked.insert(me);
        Ok(())
    }

    /// Ends step 3: the unmask request.
    pub fn close_masked(&mut self) -> Result<&UnmaskRequest> {
        self.expect(Phase::Masked)?;
        let threshold = self.roster_ref().threshold as usize;
        if self.masked.len() < threshold.max(MIN_COHORT as usize) {
            return refuse(format!(
                "{} masked inputs, fewer than the threshold {threshold}",
                self.masked.len()
            ));
        }
        self.request = Some(UnmaskRequest {
            round: self.round,
            survivors: self.masked.iter().copied().collect(),
            dropped: self
                .shared
                .keys()
                .filter(|i| !self.masked.contains(i))
                .copied()
                .collect(),
        });
        self.phase = Phase::Unmask;
        Ok(self.request.as_ref().expect("just set"))
    }

    pub fn unmask_request(&self) -> Option<&UnmaskRequest> {
        self.request.as_ref()
    }

    /// Step 4: a survivor's shares; only shares it may hold are kept.
    pub fn add_unmask(&mut self, id: &str, response: UnmaskResponse) -> Result<()> {
        self.expect(Phase::Unmask)?;
        let me = self.member(id)?;
        let request = self
            .request
            .as_ref()
            .expect("the Unmask phase has a request");
        if response.round != self.round || response.from != me {
            return refuse("the answer's round or sender is not this client's");
        }
        if request.survivors.binary_search(&me).is_err() {
            return refuse("only survivors answer the unmask request");
        }
        if !self.answered.insert(me) {
            return Ok(());
        }
        let roster = self.roster.as_ref().expect("after Keys");
        let n = roster.cohort;
        let fits = |owner: u32, share: &Share, set: &[u32]| {
            share.x == me + 1
                && graph::adjacent(n, roster.degree, me, owner)
                && set.binary_search(&owner).is_ok()
        };
        for (owner, share) in response.self_mask_shares {
            if fits(owner, &share, &request.survivors) {
                self.self_mask_shares.entry(owner).or_default().push(share);
            }
        }
        for (owner, share) in response.mask_key_shares {
            if fits(owner, &share, &request.dropped) {
                self.mask_key_shares.entry(owner).or_default().push(share);
            }
        }
        Ok(())
    }

    /// Whether every secret needed is recoverable from the shares in.
    pub fn can_finish(&self) -> bool {
        let Some(request) = &self.request else {
            return false;
        };
        let t = self.roster_ref().threshold as usize;
        let enough = |shares: &BTreeMap<u32, Vec<Share>>, owner: &u32| {
            shares.get(owner).is_some_and(|s| s.len() >= t)
        };
        self.phase == Phase::Unmask
            && request
                .survivors
                .iter()
                .all(|o| enough(&self.self_mask_shares, o))
            && request
                .dropped
                .iter()
                .all(|o| enough(&self.mask_key_shares, o))
    }

    /// Removes every mask: the sum of the survivors' quantised inputs, and
    /// how many they are.
    pub fn finish(&mut self) -> Result<(Vec<u32>, usize)> {
        if !self.can_finish() {
            return refuse("not enough shares to unmask the sum");
        }
        let request = self.request.clone().expect("checked");
        let roster = self.roster_ref().clone();
        let (n, t) = (roster.cohort, roster.threshold as usize);
        // Every secret first: a failure leaves the masked sum as it was.
        let mut masks: Vec<([u8; 32], bool)> = Vec::new();
        for &owner in &request.survivors {
            let commitment = roster.members[owner as usize].1.self_mask_commitment;
            let seed = recover(&self.self_mask_shares[&owner], t, |s| {
                <[u8; 32]>::from(Sha256::digest(s)) == commitment
            })?;
            masks.push((crypto::derive(&seed, "self mask", self.round), false));
        }
        for &dropped in &request.dropped {
            let public = roster.members[dropped as usize].1.mask_key;
            let secret = recover(&self.mask_key_shares[&dropped], t, |s| {
                crypto::public_key(s) == public
            })?;
            // Survivor j added +mask when j < dropped, -mask otherwise.
            for j in graph::neighbours(n, roster.degree, dropped) {
                if request.survivors.binary_search(&j).is_ok() {
                    let theirs = &roster.members[j as usize].1.mask_key;
                    let key = crypto::agree(&secret, theirs, "pairwise mask", self.round)?;
                    masks.push((key, j > dropped));
                }
            }
        }
        let mut sum = std::mem::take(&mut self.masked_sum);
        for (key, add) in masks {
            KeyStream::new(&key).apply_mask(&mut sum, add);
        }
        self.phase = Phase::Done;
        Ok((sum, request.survivors.len()))
    }
}

/// Rebuilds a secret from `t` of `shares`, trying windows of them until one
/// passes `check` (a wrong share from one client does not sink the round).
fn recover(shares: &[Share], t: usize, check: impl Fn(&[u8; 32]) -> bool) -> Result<[u8; 32]> {
    for start in 0..=shares.len().saturating_sub(t) {
        if let Ok(secret) = shamir::combine(&shares[start..start + t])
            && check(&secret)
        {
            return Ok(secret);
        }
    }
    refuse("the revealed shares do not rebuild the committed secret")
}
