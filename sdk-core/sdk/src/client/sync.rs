//! `Client::sync` and `Client::upload`: the device side of the HTTP
//! protocol (fedmr-server's `http.rs` is the other side).
//!
//! Downloads are conditional (If-None-Match with the installed version's
//! digest), so an unchanged catalog or model costs one round trip. Uploads
//! flush the outbox oldest first; an update leaves the outbox only when the
//! server acknowledged it or refused it for good, so when the server is down
//! updates wait and are delivered once, later (the server deduplicates
//! retries by idempotency key).

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, IF_NONE_MATCH};
use serde::Serialize;

use super::secure::SecureOutcome;
use super::{Client, SameVersion, random_u64};
use crate::{Error, Result};
use fedmr_core::rng::Rng;
use fedmr_core::wire::{ModelEncoding, digest_hex};

/// Where and as whom a client syncs.
#[derive(Clone, Debug, PartialEq)]
pub struct Remote {
    /// e.g. `https://fedmr.example.com` (no trailing slash needed).
    pub base_url: String,
    pub token: String,
    /// Per request, connection included.
    pub timeout: Duration,
    /// Tries per request before giving up (network errors, 5xx).
    pub max_attempts: u32,
    /// First retry delay; doubles per retry up to `max_backoff`, each delay
    /// drawn uniformly from its upper half (jitter), so that many phones
    /// failing together do not retry together.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How the model is downloaded (default int8): f32 as the server holds
    /// it, or f16, int8, int6, int4 in 0.50, 0.26, 0.20, 0.13 of its bytes
    /// (README, "Compressed model downloads", has what each costs in
    /// ranking quality). A server that does not offer it sends f32, installed too.
    pub model_encoding: ModelEncoding,
}

impl Remote {
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Remote {
            base_url: base_url.into(),
            token: token.into(),
            timeout: Duration::from_secs(30),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            // A quarter of the bytes for a ranking within 0.3% of f32's
            // (README, "Compressed model downloads").
            model_encoding: ModelEncoding::Int8,
        }
    }

    /// The server address must be an http(s) URL with a host: a malformed
    /// one is the app's error, reported at once, not retried as a network
    /// failure.
    pub(crate) fn check(&self) -> Result<()> {
        let url = reqwest::Url::parse(self.base_url.trim())
            .map_err(|e| Error::InvalidArgument(format!("server URL {:?}: {e}", self.base_url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(Error::InvalidArgument(format!(
                "server URL {:?}: expected http(s)://host[:port]",
                self.base_url
            )));
        }
        Ok(())
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SyncReport {
    pub catalog_updated: bool,
    pub model_updated: bool,
    /// Response body bytes received (0 when both were unchanged).
    pub bytes_downloaded: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UploadReport {
    /// Accepted by the server (202).
    pub delivered: usize,
    /// The server already had them (a retry after a lost acknowledgement).
    pub duplicates: usize,
    /// Refused for good (stale round, malformed, too large): dropped.
    pub dropped: usize,
    /// Still in the outbox because the server could not be reached.
    pub remaining: usize,
    pub bytes_uploaded: u64,
    /// Updates of a secure-aggregation round that wait for other clients
    /// (still queued; a later `upload` takes the next step).
    pub waiting: usize,
    /// Why `remaining` is not zero, if it is not.
    pub last_error: Option<String>,
}

/// One request's outcome as the retry loop sees it.
pub(crate) enum Attempt<T> {
    Done(T),
    Retry(String),
}

pub(crate) fn http() -> Result<&'static Http> {
    static HTTP: OnceLock<std::result::Result<Http, String>> = OnceLock::new();
    HTTP.get_or_init(|| {
        // reqwest is built without a default crypto provider: use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Http::builder()
            .user_agent(concat!("fedmr-core/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::Network(format!("cannot build the HTTP client: {e}")))
}

/// Runs `request` with retries on network errors and 5xx answers.
pub(crate) fn with_retries<T>(
    remote: &Remote,
    mut request: impl FnMut() -> Result<Attempt<T>>,
) -> Result<T> {
    let mut rng = Rng::new(random_u64());
    let mut delay = remote.initial_backoff;
    let attempts = remote.max_attempts.max(1);
    let mut last = String::new();
    for attempt in 0..attempts {
        match request()? {
            Attempt::Done(value) => return Ok(value),
            Attempt::Retry(why) => last = why,
        }
        if attempt + 1 < attempts {
            let jittered = delay.mul_f64(0.5 + 0.5 * rng.uniform());
            std::thread::sleep(jittered);
            delay = (delay * 2).min(remote.max_backoff);
        }
    }
    Err(Error::Network(format!(
        "{last} (after {attempts} attempts)"
    )))
}

/// Sends a request; network failures and 5xx become `Retry`.
pub(crate) fn send(build: impl Fn() -> RequestBuilder) -> Result<Attempt<Response>> {
    match build().send() {
        Ok(r) if r.status().is_server_error() => {
            Ok(Attempt::Retry(format!("server answered {}", r.status())))
        }
        Ok(r) => Ok(Attempt::Done(r)),
        Err(e) => Ok(Attempt::Retry(format!("request failed: {e}"))),
    }
}

/// The server's error message of a refusal, for the error we return.
pub(crate) fn refusal(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or(text);
    (status, message)
}

impl Client {
    /// Downloads the catalog and the model if they changed, and installs them.
    pub fn sync(&self, remote: &Remote) -> Result<SyncReport> {
        remote.check()?;
        let mut report = SyncReport::default();
        let installed = self.installed();
        let catalog_tag = installed
            .catalog
            .as_ref()
            .map(|c| digest_hex(&c.meta.sha256));
        if let Some(bytes) = self.download(remote, "/v1/catalog", catalog_tag)? {
            report.bytes_downloaded += bytes.len() as u64;
            report.catalog_updated = self.apply_catalog(&bytes)?;
        }
        let installed = self.installed();
        let model_tag = installed.model.as_ref().map(|m| digest_hex(&m.digest));
        let model_path = match remote.model_encoding {
            ModelEncoding::F32 => "/v1/model".to_string(),
            other => format!("/v1/model?encoding={}", other.name()),
        };
        if let Some(bytes) = self.download(remote, &model_path, model_tag)? {
            report.bytes_downloaded += bytes.len() as u64;
            report.model_updated = self.install_model(&bytes, SameVersion::Keep)?;
        }
        Ok(report)
    }

    /// GET `path`; `None` when the server says our version is current.
    fn download(
        &self,
        remote: &Remote,
        path: &str,
        etag: Option<String>,
    ) -> Result<Option<Vec<u8>>> {
        let http = http()?;
        let url = remote.url(path);
        with_retries(remote, || {
            let attempt = send(|| {
                let mut request = http
                    .get(&url)
                    .timeout(remote.timeout)
                    .header(AUTHORIZATION, format!("Bearer {}", remote.token));
                if let Some(tag) = &etag {
                    request = request.header(IF_NONE_MATCH, format!("\"{tag}\""));
                }
                request
            })?;
            let response = match attempt {
                Attempt::Done(r) => r,
                Attempt::Retry(why) => return Ok(Attempt::Retry(why)),
            };
            match response.status() {
                StatusCode::NOT_MODIFIED => Ok(Attempt::Done(None)),
                StatusCode::OK => match response.bytes() {
                    Ok(body) => Ok(Attempt::Done(Some(body.to_vec()))),
                    Err(e) => Ok(Attempt::Retry(format!("download of {path} broke off: {e}"))),
                },
                StatusCode::UNAUTHORIZED => Err(Error::Unauthorized(refusal(response).1)),
                _ => {
                    let (status, message) = refusal(response);
                    Err(Error::Refused { status, message })
                }
            }
        })
    }

    /// Sends every pending update, oldest first. Stops early (keeping the
    /// rest) when the server stays unreachable; a refused token is an error.
    /// Under secure aggregation an update goes through the protocol's
    /// phases, as far as the server allows in this call (`waiting`).
    pub fn upload(&self, remote: &Remote) -> Result<UploadReport> {
        remote.check()?;
        let http = http()?;
        let url = remote.url("/v1/updates");
        let mut report = UploadReport::default();
        let installed = self.installed();
        let model = match installed.parts() {
            Ok(_) => Some(installed.ready(&self.store)?.1),
            Err(_) => None,
        };
        let secure = model
            .as_ref()
            .and_then(|m| Some((&**m, m.train.protection.secure_aggregation?)));
        if let Some((model, config)) = secure {
            let mut rounds = std::collections::HashSet::new();
            for (index, update) in self.store.pending_updates()?.iter().enumerate() {
                // One update per client takes part in a secure round (the
                // server knows the client by its keys): a later one trained
                // for the same round is superseded by the one already in.
                let outcome = if !rounds.insert(update.base_version) {
                    Ok(SecureOutcome::Dropped(format!(
                        "an earlier update takes part in secure round {}",
                        update.base_version
                    )))
                } else {
                    self.secure_upload(remote, update, model, config)
                };
                let outcome = match outcome {
                    Err(Error::Network(why)) => {
                        report.remaining = self.store.pending_updates()?.len() - index;
                        report.last_error = Some(why);
                        return Ok(report);
                    }
                    // The server's messages do not fit this update's state
                    // (a roster without its keys, a share that does not
                    // open): it cannot take part in this round.
                    Err(Error::InvalidMessage(why)) => Ok(SecureOutcome::Dropped(why)),
                    other => other,
                }?;
                match outcome {
                    SecureOutcome::Delivered { bytes } => {
                        report.delivered += 1;
                        report.bytes_uploaded += bytes;
                        self.acknowledge_upload(&update.idempotency_key)?;
                    }
                    SecureOutcome::Waiting { phase, bytes } => {
                        report.waiting += 1;
                        report.bytes_uploaded += bytes;
                        report.last_error = Some(format!("secure round: waiting at {phase}"));
                    }
                    SecureOutcome::Dropped(why) => {
                        report.dropped += 1;
                        report.last_error = Some(why);
                        self.acknowledge_upload(&update.idempotency_key)?;
                    }
                }
            }
            return Ok(report);
        }
        let pending = self.pending_uploads()?;
        for (index, update) in pending.iter().enumerate() {
            let sent = with_retries(remote, || {
                send(|| {
                    http.post(&url)
                        .timeout(remote.timeout)
                        .header(AUTHORIZATION, format!("Bearer {}", remote.token))
                        .body(update.bytes.clone())
                })
            });
            let response = match sent {
                Ok(r) => r,
                Err(Error::Network(why)) => {
                    report.remaining = pending.len() - index;
                    report.last_error = Some(why);
                    return Ok(report);
                }
                Err(e) => return Err(e),
            };
            let status = response.status();
            match status {
                StatusCode::ACCEPTED => report.delivered += 1,
                StatusCode::OK => report.duplicates += 1,
                StatusCode::UNAUTHORIZED => {
                    return Err(Error::Unauthorized(refusal(response).1));
                }
                // A stale round, a duplicate round, a malformed or oversized
                // body: retrying cannot succeed, so it leaves the outbox.
                s if s.is_client_error() => {
                    report.dropped += 1;
                    report.last_error = Some(format!("{}: {}", s.as_u16(), refusal(response).1));
                }
                s => {
                    report.remaining = pending.len() - index;
                    report.last_error = Some(format!("unexpected answer {s}"));
                    return Ok(report);
                }
            }
            report.bytes_uploaded += update.bytes.len() as u64;
            self.acknowledge_upload(&update.idempotency_key)?;
        }
        Ok(report)
    }
}
