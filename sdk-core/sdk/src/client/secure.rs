//! `Client::upload` for a round under secure aggregation: the device side
//! of the protocol (`fedmr_core::secagg`), one queued update at a time.
//!
//! Each call goes as far as the server lets it and returns: a phase that
//! waits for other clients answers 204, and the update stays queued as
//! "waiting" until a later call (a background job's next run) finds the next
//! phase open. The protocol state is written to the store before anything
//! derived from it is sent, and every message is derived from it
//! deterministically, so an app killed between (or during) phases resends
//! the same bytes on its next run. The state goes with the update when the
//! round is over.

use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;

use super::Client;
use super::installed::InstalledModel;
use super::sync::{Remote, http, refusal, send, with_retries};
use crate::store::PendingUpdate;
use crate::{Error, Result};
use fedmr_core::secagg::{
    ClientRound, Layout, Roster, SecureAggregation, ShareBatch, UnmaskRequest, normalised_weight,
    quantize,
};
use fedmr_core::wire::{RoundMessage, SecAggMessage, UpdateMessage};

/// Where a secure update got to in one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SecureOutcome {
    /// Its share of the unmasking is in: the update is done.
    Delivered { bytes: u64 },
    /// Waiting for other clients (the phase is named).
    Waiting { phase: &'static str, bytes: u64 },
    /// The round went on without it (the cohort closed, the model moved).
    Dropped(String),
}

/// What a GET of a phase's message gave.
enum Fetched<T> {
    Ready(T),
    NotYet,
    /// The server does not know this client in its open secure round.
    Restart,
}

/// What a POST gave.
enum Posted {
    Accepted,
    Restart,
    /// Refused for good (stale round, invalid message): the reason.
    Refused(String),
}

struct Session<'a> {
    client: &'a Client,
    remote: &'a Remote,
    key: String,
    bytes: u64,
}

impl Session<'_> {
    /// A GET of `path` with the client's token (retried like every request).
    fn send_get(&self, path: &str) -> Result<reqwest::blocking::Response> {
        let http = http()?;
        let url = self.remote.url(path);
        with_retries(self.remote, || {
            send(|| {
                http.get(&url)
                    .timeout(self.remote.timeout)
                    .header(AUTHORIZATION, format!("Bearer {}", self.remote.token))
            })
        })
    }

    /// A GET's body when the answer is 200.
    fn get_raw(&mut self, path: &str) -> Result<Option<Vec<u8>>> {
        let response = self.send_get(path)?;
        if response.status() != StatusCode::OK {
            return Ok(None);
        }
        let body = response
            .bytes()
            .map_err(|e| Error::Network(format!("{path}: {e}")))?;
        Ok(Some(body.to_vec()))
    }

    fn get<T: SecAggMessage>(&mut self, path: &str) -> Result<Fetched<T>> {
        let response = self.send_get(path)?;
        match response.status() {
            StatusCode::OK => {
                let body = response
                    .bytes()
                    .map_err(|e| Error::Network(format!("{path}: {e}")))?;
                Ok(Fetched::Ready(T::decode(&body)?))
            }
            StatusCode::NO_CONTENT => Ok(Fetched::NotYet),
            StatusCode::UNAUTHORIZED => Err(Error::Unauthorized(refusal(response).1)),
            // 409: not in the open secure round; 404: no secure round open
            // (it closed): either way this client's attempt is over.
            StatusCode::CONFLICT | StatusCode::NOT_FOUND => Ok(Fetched::Restart),
            _ => {
                let (status, message) = refusal(response);
                Err(Error::Refused { status, message })
            }
        }
    }

    fn post(&mut self, path: &str, body: Vec<u8>) -> Result<Posted> {
        let http = http()?;
        let url = self.remote.url(path);
        let len = body.len() as u64;
        let response = with_retries(self.remote, || {
            send(|| {
                http.post(&url)
                    .timeout(self.remote.timeout)
                    .header(AUTHORIZATION, format!("Bearer {}", self.remote.token))
                    .body(body.clone())
            })
        })?;
        match response.status() {
            StatusCode::ACCEPTED => {
                self.bytes += len;
                Ok(Posted::Accepted)
            }
            StatusCode::UNAUTHORIZED => Err(Error::Unauthorized(refusal(response).1)),
            StatusCode::CONFLICT => {
                let (_, message) = refusal(response);
                if message.starts_with("restart:") {
                    Ok(Posted::Restart)
                } else {
                    Ok(Posted::Refused(message))
                }
            }
            StatusCode::NOT_FOUND => Ok(Posted::Restart),
            s if s.is_client_error() => Ok(Posted::Refused(format!(
                "{}: {}",
                s.as_u16(),
                refusal(response).1
            ))),
            s => Err(Error::Network(format!("unexpected answer {s}"))),
        }
    }

    /// The server's open round (`None` if it cannot say).
    fn open_round(&mut self) -> Result<Option<u64>> {
        match self.get_raw("/v1/round")? {
            Some(bytes) => Ok(RoundMessage::decode(&bytes).ok().map(|r| r.round)),
            None => Ok(None),
        }
    }

    fn save(&self, state: &ClientRound) -> Result<()> {
        self.client
            .store
            .put_secure_round(&self.key, state.round(), &state.encode())
    }
}

impl Client {
    /// Moves one queued update through the secure round of `model` as far
    /// as the server allows now.
    pub(crate) fn secure_upload(
        &self,
        remote: &Remote,
        pending: &PendingUpdate,
        model: &InstalledModel,
        config: SecureAggregation,
    ) -> Result<SecureOutcome> {
        if pending.base_version != model.version {
            return Ok(SecureOutcome::Dropped(format!(
                "the update is for model {}, the open round is on {}",
                pending.base_version, model.version
            )));
        }
        let layout = Layout::of(&model.global);
        // Quantised only by a step that masks it: a call that finds its
        // phase still waiting does not decode the update at all.
        let quantized = || -> Result<Vec<u32>> {
            let update = UpdateMessage::decode(&pending.payload)?.to_update(model.global.dim())?;
            let weight =
                normalised_weight(model.config.backbone, update.samples, config.sample_cap);
            Ok(quantize(&update, weight, &layout, &config.fixed_point())?.values)
        };
        let input = Input {
            len: layout.len(),
            quantized: &quantized,
        };
        let mut session = Session {
            client: self,
            remote,
            key: pending.idempotency_key.clone(),
            bytes: 0,
        };
        let mut state = match self.store.secure_round(&pending.idempotency_key)? {
            Some(bytes) => ClientRound::decode(&bytes)?,
            None => self.fresh_round(&session, model.version)?,
        };
        // Each pass takes one step; a restart begins again with new keys
        // (at most once per call: a second restart waits for the next call).
        let mut restarted = false;
        loop {
            let step = match state.phase() {
                "keys" => session_keys(&mut session, &mut state, &config, layout.len())?,
                "shares" => session_masked(&mut session, &mut state, &input, &config)?,
                "masked" => session_unmask(&mut session, &mut state, &input)?,
                _ => session_unmask_again(&mut session, &mut state)?,
            };
            match step {
                Step::Next => continue,
                Step::Wait => {
                    return Ok(SecureOutcome::Waiting {
                        phase: state.phase(),
                        bytes: session.bytes,
                    });
                }
                Step::Done => {
                    return Ok(SecureOutcome::Delivered {
                        bytes: session.bytes,
                    });
                }
                Step::Drop(why) => return Ok(SecureOutcome::Dropped(why)),
                // Our input was in when the round went on: it closed (our
                // input is in its sum) unless it started over for the same
                // model (then we join the new attempt).
                Step::Restart
                    if state.input_delivered() && session.open_round()? != Some(state.round()) =>
                {
                    return Ok(SecureOutcome::Delivered {
                        bytes: session.bytes,
                    });
                }
                Step::Restart if !restarted => {
                    restarted = true;
                    state = self.fresh_round(&session, model.version)?;
                }
                Step::Restart => {
                    return Ok(SecureOutcome::Waiting {
                        phase: "keys",
                        bytes: session.bytes,
                    });
                }
            }
        }
    }

    /// New secrets from the OS's randomness, stored before use.
    fn fresh_round(&self, session: &Session<'_>, round: u64) -> Result<ClientRound> {
        let mut entropy = [0u8; 32];
        getrandom::fill(&mut entropy)
            .map_err(|e| Error::Store(format!("no randomness for secure aggregation: {e}")))?;
        let state = ClientRound::new(round, &entropy);
        session.save(&state)?;
        Ok(state)
    }
}

/// The update as the round's vector: its length, and the vector on demand.
struct Input<'a> {
    len: usize,
    quantized: &'a dyn Fn() -> Result<Vec<u32>>,
}

enum Step {
    Next,
    Wait,
    Done,
    Restart,
    Drop(String),
}

/// Keys phase: the roster if the cohort is closed; otherwise advertise.
fn session_keys(
    session: &mut Session<'_>,
    state: &mut ClientRound,
    config: &SecureAggregation,
    vector_len: usize,
) -> Result<Step> {
    match session.get::<Roster>("/v1/secagg/roster")? {
        Fetched::Ready(roster) => {
            let batch = state.share(&roster, config, vector_len)?;
            session.save(state)?;
            post_shares(session, batch)
        }
        Fetched::NotYet => Ok(Step::Wait),
        Fetched::Restart => match session.post("/v1/secagg/keys", state.advert().encode())? {
            Posted::Accepted => match session.get::<Roster>("/v1/secagg/roster")? {
                Fetched::Ready(_) => Ok(Step::Next),
                _ => Ok(Step::Wait),
            },
            Posted::Restart => Ok(Step::Restart),
            Posted::Refused(why) => Ok(Step::Drop(why)),
        },
    }
}

fn post_shares(session: &mut Session<'_>, batch: ShareBatch) -> Result<Step> {
    Ok(match session.post("/v1/secagg/shares", batch.encode())? {
        Posted::Accepted => Step::Next,
        Posted::Restart => Step::Restart,
        Posted::Refused(why) => Step::Drop(why),
    })
}

/// Shares phase: once everyone has shared, the inbox, then the masked input.
fn session_masked(
    session: &mut Session<'_>,
    state: &mut ClientRound,
    input: &Input<'_>,
    config: &SecureAggregation,
) -> Result<Step> {
    match session.get::<ShareBatch>("/v1/secagg/inbox")? {
        Fetched::Ready(inbox) => {
            let masked = state.mask(&inbox, &(input.quantized)()?)?;
            session.save(state)?;
            send_masked(session, state, masked.encode(), Step::Next)
        }
        // Our shares may not have reached the server before a restart of
        // the app: sending them again is harmless (the server takes a repeat).
        Fetched::NotYet => {
            let roster = state
                .roster()
                .cloned()
                .expect("the shares phase has a roster");
            let batch = state.share(&roster, config, input.len)?;
            match post_shares(session, batch)? {
                Step::Next => Ok(Step::Wait),
                other => Ok(other),
            }
        }
        Fetched::Restart => Ok(Step::Restart),
    }
}

/// Masked phase: the unmask request, answered; while it is not out, make
/// sure our input is in (resent from the same shares: the same bytes).
fn session_unmask(
    session: &mut Session<'_>,
    state: &mut ClientRound,
    input: &Input<'_>,
) -> Result<Step> {
    match session.get::<UnmaskRequest>("/v1/secagg/unmask")? {
        Fetched::Ready(request) => {
            let response = state.unmask(&request)?;
            session.save(state)?;
            Ok(
                match session.post("/v1/secagg/unmask", response.encode())? {
                    Posted::Accepted => Step::Done,
                    Posted::Restart => Step::Restart,
                    Posted::Refused(why) => Step::Drop(why),
                },
            )
        }
        Fetched::NotYet if state.input_delivered() => Ok(Step::Wait),
        Fetched::NotYet => {
            let Fetched::Ready(inbox) = session.get::<ShareBatch>("/v1/secagg/inbox")? else {
                return Ok(Step::Restart);
            };
            let masked = state.mask(&inbox, &(input.quantized)()?)?;
            send_masked(session, state, masked.encode(), Step::Wait)
        }
        Fetched::Restart => Ok(Step::Restart),
    }
}

/// Sends the masked input; once acknowledged it is not sent again.
fn send_masked(
    session: &mut Session<'_>,
    state: &mut ClientRound,
    masked: Vec<u8>,
    then: Step,
) -> Result<Step> {
    Ok(match session.post("/v1/secagg/masked", masked)? {
        Posted::Accepted => {
            state.mark_input_delivered();
            session.save(state)?;
            then
        }
        Posted::Restart => Step::Restart,
        // The phase moved on while we asked: look again next call.
        Posted::Refused(_) => Step::Wait,
    })
}

/// After answering: resend the answer (the server takes a repeat) in case
/// it was lost; a round that closed meanwhile is done too.
fn session_unmask_again(session: &mut Session<'_>, state: &mut ClientRound) -> Result<Step> {
    let request = state
        .answered()
        .cloned()
        .expect("the unmasked phase has answered");
    let response = state.unmask(&request)?;
    Ok(
        match session.post("/v1/secagg/unmask", response.encode())? {
            Posted::Accepted => Step::Done,
            Posted::Restart => Step::Restart,
            Posted::Refused(_) => Step::Done,
        },
    )
}
