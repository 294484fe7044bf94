//! Secure aggregation on the server: the HTTP routes' decisions for a round
//! whose model asks for it (`Protection::secure_aggregation`). The protocol
//! is the core's `secagg::ServerRound`; this file decides when a phase ends
//! and turns the unmasked sum into the next model through the same close as
//! plain rounds.
//!
//! A phase ends as soon as everyone it waits for has answered (the cohort
//! for keys is `min_updates`), or at its deadline (`round_duration`, or an
//! admin's `advance`) with whoever answered. A round that cannot go on (too
//! few clients left) starts over for the same model: clients of the old
//! attempt are told to restart (409 `secagg_restart`) and advertise fresh
//! keys. The state is in memory: a server restart starts the round over the
//! same way (masked inputs are useless without the round's shares anyway).

use std::time::Instant;

use fedmr_core::secagg::{
    KeyAdvert, Layout, MaskedInput, Phase, ServerRound, ShareBatch, UnmaskResponse, dequantize,
};
use fedmr_core::wire::SecAggMessage;

use crate::db::now_ms;
use crate::error::ServerError;
use crate::rounds::{OpenRound, ServerCore, Snapshot, lock, new_aggregator};

/// The open secure round of one model version.
pub(crate) struct SecureState {
    round: ServerRound,
    deadline: Instant,
}

fn malformed(e: fedmr_core::Error) -> ServerError {
    ServerError::Malformed(e.to_string())
}

/// A message the protocol refused: the client's fault (422).
fn refused(e: fedmr_core::Error) -> ServerError {
    ServerError::Invalid(e.to_string())
}

fn restart() -> ServerError {
    ServerError::Restart("this client is not in the open secure round: advertise new keys".into())
}

impl ServerCore {
    /// Runs `step` on the open secure round, opening it first if needed;
    /// then ends whatever phase is complete.
    fn with_secure<T>(
        &self,
        step: impl FnOnce(&mut SecureState, &Snapshot) -> Result<T, ServerError>,
    ) -> Result<T, ServerError> {
        let mut open = lock(&self.round);
        let snap = self.snapshot();
        let Some(config) = snap.train.protection.secure_aggregation else {
            return Err(ServerError::NotFound(
                "this round does not use secure aggregation".into(),
            ));
        };
        if open.secure.is_none() {
            let round = ServerRound::new(snap.version, config, Layout::of(&snap.global).len())?;
            open.secure = Some(SecureState {
                round,
                deadline: Instant::now() + self.config.round_duration,
            });
        }
        let state = open.secure.as_mut().expect("opened above");
        let result = step(state, &snap)?;
        self.advance(&mut open, &snap, false)?;
        Ok(result)
    }

    /// Step 1: a client's key advert.
    pub fn secagg_keys(&self, client: &str, bytes: &[u8]) -> Result<(), ServerError> {
        let advert = KeyAdvert::decode(bytes).map_err(malformed)?;
        self.with_secure(|s, snap| {
            if advert.round != snap.version {
                return Err(ServerError::Stale(format!(
                    "keys for round {}, the open round is {}",
                    advert.round, snap.version
                )));
            }
            if s.round.phase() != Phase::Keys {
                return Err(ServerError::Stale(
                    "the cohort is closed; try again next round".into(),
                ));
            }
            s.round.advertise(client, advert).map_err(refused)
        })
    }

    /// The roster, once the cohort is closed (`None`: not yet).
    pub fn secagg_roster(&self, client: &str) -> Result<Option<Vec<u8>>, ServerError> {
        self.with_secure(|s, _| {
            if !s.round.knows(client) {
                return Err(restart());
            }
            let roster = s.round.roster_for(client).map_err(refused)?;
            Ok(roster.map(|r| r.encode()))
        })
    }

    /// Step 2: a client's sealed shares.
    pub fn secagg_shares(&self, client: &str, bytes: &[u8]) -> Result<(), ServerError> {
        let batch = ShareBatch::decode(bytes).map_err(malformed)?;
        self.with_secure(|s, _| {
            if s.round.index_of(client).is_none() {
                return Err(restart());
            }
            s.round.add_shares(client, batch).map_err(refused)
        })
    }

    /// The shares sealed for a client, once everyone has shared.
    pub fn secagg_inbox(&self, client: &str) -> Result<Option<Vec<u8>>, ServerError> {
        self.with_secure(|s, _| match s.round.phase() {
            _ if s.round.index_of(client).is_none() => Err(restart()),
            Phase::Keys | Phase::Shares => Ok(None),
            _ => s
                .round
                .inbox(client)
                .map(|b| Some(b.encode()))
                .map_err(|_| restart()),
        })
    }

    /// Step 3: a client's masked input.
    pub fn secagg_masked(&self, client: &str, bytes: &[u8]) -> Result<(), ServerError> {
        if let Some(observer) = self.observer() {
            observer.received(client, bytes);
        }
        let input = MaskedInput::decode(bytes).map_err(malformed)?;
        self.with_secure(|s, _| {
            if s.round.index_of(client).is_none() {
                return Err(restart());
            }
            s.round.add_masked(client, &input).map_err(refused)
        })
    }

    /// The unmask request, once the inputs are in (to survivors only).
    pub fn secagg_unmask_request(&self, client: &str) -> Result<Option<Vec<u8>>, ServerError> {
        self.with_secure(|s, _| {
            let Some(me) = s.round.index_of(client) else {
                return Err(restart());
            };
            match s.round.unmask_request() {
                None => Ok(None),
                Some(r) if r.survivors.binary_search(&me).is_ok() => Ok(Some(r.encode())),
                Some(_) => Err(restart()),
            }
        })
    }

    /// Step 4: a survivor's shares. True when they completed the round.
    pub fn secagg_unmask(&self, client: &str, bytes: &[u8]) -> Result<bool, ServerError> {
        let response = UnmaskResponse::decode(bytes).map_err(malformed)?;
        let version = self.snapshot().version;
        self.with_secure(|s, _| {
            if s.round.index_of(client).is_none() {
                return Err(restart());
            }
            s.round.add_unmask(client, response).map_err(refused)
        })?;
        Ok(self.snapshot().version != version)
    }

    /// Ends the open secure round's phase now (an operator's decision, or
    /// the deadline): with whoever answered, or by starting the round over.
    /// Returns the phase reached.
    pub fn secagg_advance(&self) -> Result<String, ServerError> {
        let mut open = lock(&self.round);
        let snap = self.snapshot();
        self.advance(&mut open, &snap, true)?;
        Ok(match &open.secure {
            Some(s) => format!("{:?}", s.round.phase()),
            None => "closed".into(),
        })
    }

    /// Ends each phase that is complete (or, with `force`, the current one
    /// whatever came in); closes the round when the sum is unmasked.
    pub(crate) fn advance(
        &self,
        open: &mut OpenRound,
        snap: &Snapshot,
        force: bool,
    ) -> Result<(), ServerError> {
        let Some(state) = open.secure.as_mut() else {
            return Ok(());
        };
        let cohort = (self.config.min_updates as usize).max(3);
        let forced = force || Instant::now() >= state.deadline;
        let r = &mut state.round;
        let outcome = match r.phase() {
            Phase::Keys if r.arrived() >= cohort || forced => {
                r.close_keys(now_ms() as u64).map(|_| true)
            }
            Phase::Shares if r.arrived() >= r.expected() || forced => {
                r.close_shares().map(|_| true)
            }
            Phase::Masked if r.arrived() >= r.expected() || forced => {
                r.close_masked().map(|_| true)
            }
            Phase::Unmask if r.can_finish() => return self.finish_secure(open, snap),
            Phase::Unmask if forced => Err(fedmr_core::Error::InvalidMessage(
                "too few survivors answered to unmask the sum".into(),
            )),
            _ => Ok(false),
        };
        match outcome {
            Ok(true) => {
                state.deadline = Instant::now() + self.config.round_duration;
                // The next phase may be complete already (everyone answered).
                self.advance(open, snap, false)
            }
            Ok(false) => Ok(()),
            Err(e) if forced => {
                log_note(&format!("secure round {} starts over: {e}", snap.version));
                open.secure = None;
                Ok(())
            }
            Err(e) => Err(refused(e)),
        }
    }

    /// Unmasks the sum, folds it into the round's aggregate and closes the
    /// round as a plain one closes. A sum that cannot be unmasked or used
    /// (a client revealed bad shares, or masked garbage) starts the round
    /// over rather than leaving it stuck.
    fn finish_secure(&self, open: &mut OpenRound, snap: &Snapshot) -> Result<(), ServerError> {
        let config = snap
            .train
            .protection
            .secure_aggregation
            .expect("a secure round's model asks for it");
        let state = open.secure.take().expect("checked by the caller");
        let mut round = state.round;
        let unmasked = round.finish().and_then(|(sum, survivors)| {
            let layout = Layout::of(&snap.global);
            let sums = dequantize(&sum, survivors, &layout, &config.fixed_point())?;
            let mut aggregator = new_aggregator(snap, &self.config);
            aggregator.add_unmasked(&snap.global, &sums)?;
            Ok(aggregator)
        });
        match unmasked {
            Ok(aggregator) => {
                open.aggregator = aggregator;
                self.close(open, snap)
            }
            Err(e) => {
                log_note(&format!("secure round {} starts over: {e}", snap.version));
                Ok(())
            }
        }
    }
}

/// The server logs to stderr; a round that starts over is worth a line.
fn log_note(message: &str) {
    eprintln!("fedmr-server: {message}");
}
