//! The HTTP API (axum). Handlers translate between HTTP and `ServerCore`;
//! the decisions are in `rounds.rs`.
//!
//! | route | auth | |
//! |---|---|---|
//! | `GET /healthz` | none | liveness |
//! | `GET /metrics` | none | Prometheus text |
//! | `GET /v1/catalog`, `GET /v1/model` | client | framed messages; ETag / If-None-Match -> 304 |
//! | `GET /v1/model?encoding=f16\|int8\|int6\|int4` | client | the model in fewer bytes (its own ETag) |
//! | `GET /v1/round` | client | framed `RoundMessage` |
//! | `POST /v1/updates` | client | framed `UpdateMessage`: 202 new, 200 duplicate, 400 / 401 / 409 / 413 / 422 |
//! | `POST /v1/secagg/keys`, `/shares`, `/masked`, `/unmask` | client | secure aggregation's uploads (framed): 202, 409 `secagg_restart` when the round went on without the client |
//! | `GET /v1/secagg/roster`, `/inbox`, `/unmask` | client | what the next step needs (framed), 204 while it is not ready |
//! | `POST /v1/admin/clients` | admin | body = client id; returns a new token |
//! | `POST /v1/admin/secagg/advance` | admin | ends the secure round's current phase now (dropouts) |

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fedmr_core::wire::ModelEncoding;

use crate::auth::is_admin;
use crate::error::ServerError;
use crate::rounds::{Accepted, Published, ServerCore};

type Core = State<Arc<ServerCore>>;

pub fn router(core: Arc<ServerCore>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/catalog", get(catalog))
        .route("/v1/model", get(model))
        .route("/v1/round", get(round))
        .route("/v1/updates", post(updates))
        .route("/v1/secagg/keys", post(secagg_keys))
        .route("/v1/secagg/roster", get(secagg_roster))
        .route("/v1/secagg/shares", post(secagg_shares))
        .route("/v1/secagg/inbox", get(secagg_inbox))
        .route("/v1/secagg/masked", post(secagg_masked))
        .route(
            "/v1/secagg/unmask",
            get(secagg_unmask_request).post(secagg_unmask),
        )
        .route("/v1/admin/clients", post(issue_client))
        .route("/v1/admin/secagg/advance", post(secagg_advance))
        // Bodies are read with our own limit, so a 413 is counted by reason.
        .layer(DefaultBodyLimit::disable())
        .with_state(core)
}

fn error_response(e: &ServerError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "error": e.reason(), "message": e.to_string() });
    (status, axum::Json(body)).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()
}

fn client_of(core: &ServerCore, headers: &HeaderMap) -> Result<String, ServerError> {
    core.tokens
        .client_for(bearer(headers))
        .ok_or(ServerError::Unauthorized)
}

async fn metrics(State(core): Core) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        core.metrics.render(),
    )
}

/// Whether the request's If-None-Match names none of `published`'s tags
/// (or there is none).
fn asks_for_another_tag(headers: &HeaderMap, published: &Published) -> bool {
    let etag = format!("\"{}\"", published.etag);
    !headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// 304 when the client already has this version, the bytes otherwise.
fn conditional(headers: &HeaderMap, published: &Published) -> Response {
    let etag = format!("\"{}\"", published.etag);
    let etag_header = HeaderValue::from_str(&etag).expect("hex is a valid header value");
    if !asks_for_another_tag(headers, published) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (header::ETAG, etag_header),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
        ],
        published.bytes.clone(),
    )
        .into_response()
}

async fn catalog(State(core): Core, headers: HeaderMap) -> Response {
    match client_of(&core, &headers) {
        Ok(_) => conditional(&headers, &core.snapshot().catalog),
        Err(e) => error_response(&e),
    }
}

async fn model(State(core): Core, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let encoding = match client_of(&core, &headers).and_then(|_| encoding_of(query.as_deref())) {
        Ok(encoding) => encoding,
        Err(e) => return error_response(&e),
    };
    let snapshot = core.snapshot();
    let tagged = headers.contains_key(header::IF_NONE_MATCH);
    if encoding == ModelEncoding::F32
        && !(tagged && asks_for_another_tag(&headers, &snapshot.model))
    {
        return conditional(&headers, &snapshot.model);
    }
    // The first request of a round for an encoding encodes the model (tens
    // of ms at 100,000 items): off the async workers.
    match tokio::task::spawn_blocking(move || {
        // A phone holding this version in another encoding (it changed its
        // setting) has this version: 304, not the same version again.
        let held = snapshot
            .made_downloads()
            .filter(|_| tagged)
            .find(|p| !asks_for_another_tag(&headers, p));
        conditional(&headers, held.unwrap_or(snapshot.model_download(encoding)))
    })
    .await
    {
        Ok(response) => response,
        Err(e) => error_response(&ServerError::Internal(format!("encoding the model: {e}"))),
    }
}

/// `encoding=<name>` from the query; none means f32.
fn encoding_of(query: Option<&str>) -> Result<ModelEncoding, ServerError> {
    let mut encoding = ModelEncoding::F32;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("encoding", name)) => {
                encoding = ModelEncoding::parse(name)
                    .map_err(|e| ServerError::BadRequest(e.to_string()))?;
            }
            _ => {
                return Err(ServerError::BadRequest(format!(
                    "unknown query parameter {pair:?} (expected encoding=f32|f16|int8|int6|int4)"
                )));
            }
        }
    }
    Ok(encoding)
}

async fn round(State(core): Core, headers: HeaderMap) -> Response {
    match client_of(&core, &headers) {
        Ok(_) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            core.round_message().encode(),
        )
            .into_response(),
        Err(e) => error_response(&e),
    }
}

/// Most bytes drained from a refused body so that the client still gets
/// its answer (a server that stops reading makes the client see a broken
/// connection instead of the 401 or 413, and retry forever).
const DRAIN_CAP: usize = 256 << 20;

/// Reads a body up to `limit` bytes. A larger one is a 413, answered after
/// draining the rest (up to `DRAIN_CAP`).
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ServerError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ServerError::BadRequest(format!("reading the body: {e}")))?;
        seen += chunk.len();
        if seen <= limit {
            kept.extend_from_slice(&chunk);
        } else if seen > DRAIN_CAP {
            break;
        }
    }
    if seen > limit {
        return Err(ServerError::TooLarge(limit + 1));
    }
    Ok(kept.into())
}

/// Reads the body of a caller `who` has accepted, within the body timeout.
/// A refused caller's body is drained unread, so that it still gets its
/// answer (a 401, not a connection cut mid-upload) and the server never
/// holds the bytes of someone without a token.
async fn checked_body<T>(
    core: &ServerCore,
    who: Result<T, ServerError>,
    body: Body,
    limit: usize,
) -> Result<(T, Bytes), ServerError> {
    let timeout = core.config.body_timeout;
    let who = match who {
        Ok(who) => who,
        Err(e) => {
            let _ = tokio::time::timeout(timeout, read_body(body, 0)).await;
            return Err(e);
        }
    };
    let bytes = tokio::time::timeout(timeout, read_body(body, limit))
        .await
        .map_err(|_| ServerError::Timeout(timeout))??;
    Ok((who, bytes))
}

fn admin(core: &ServerCore, headers: &HeaderMap) -> Result<(), ServerError> {
    if is_admin(bearer(headers), &core.config.admin_token) {
        Ok(())
    } else {
        Err(ServerError::Unauthorized)
    }
}

async fn updates(State(core): Core, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let who = client_of(&core, &headers);
        let (client, bytes) = checked_body(&core, who, body, core.config.max_body_bytes).await?;
        let len = bytes.len();
        let worker = core.clone();
        // SQLite and aggregation are blocking work.
        let outcome = tokio::task::spawn_blocking(move || worker.submit(&client, &bytes))
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?;
        Ok::<_, ServerError>((outcome, len))
    }
    .await;
    match result {
        Ok((Ok(Accepted::New { round_closed }), len)) => {
            core.metrics.accepted(len, false);
            let body = serde_json::json!({ "status": "accepted", "round_closed": round_closed });
            (StatusCode::ACCEPTED, axum::Json(body)).into_response()
        }
        Ok((Ok(Accepted::Duplicate), len)) => {
            core.metrics.accepted(len, true);
            let body = serde_json::json!({ "status": "duplicate" });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Ok((Err(e), len)) => {
            core.metrics.rejected(e.reason(), len);
            error_response(&e)
        }
        Err(e) => {
            core.metrics.rejected(e.reason(), 0);
            error_response(&e)
        }
    }
}

async fn issue_client(State(core): Core, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let who = admin(&core, &headers);
        let ((), bytes) = checked_body(&core, who, body, 1024).await?;
        let id = std::str::from_utf8(&bytes)
            .map_err(|_| ServerError::BadRequest("client id must be UTF-8".into()))?
            .to_string();
        let worker = core.clone();
        tokio::task::spawn_blocking(move || worker.issue_token(&id))
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?
    }
    .await;
    match result {
        Ok(token) => (StatusCode::CREATED, token).into_response(),
        Err(e) => error_response(&e),
    }
}

/// A secure-aggregation upload: body read, client checked, the step run on
/// a blocking thread; 202 with `{"status": "accepted", "round_closed": …}`.
async fn secagg_post(
    core: Arc<ServerCore>,
    headers: HeaderMap,
    body: Body,
    step: fn(&ServerCore, &str, &[u8]) -> Result<bool, ServerError>,
) -> Response {
    let result = async {
        let who = client_of(&core, &headers);
        let (client, bytes) = checked_body(&core, who, body, core.config.max_body_bytes).await?;
        let len = bytes.len();
        let worker = core.clone();
        let closed = tokio::task::spawn_blocking(move || step(&worker, &client, &bytes))
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))??;
        Ok::<_, ServerError>((closed, len))
    }
    .await;
    match result {
        Ok((round_closed, len)) => {
            core.metrics.accepted(len, false);
            let body = serde_json::json!({ "status": "accepted", "round_closed": round_closed });
            (StatusCode::ACCEPTED, axum::Json(body)).into_response()
        }
        Err(e) => {
            core.metrics.rejected(e.reason(), 0);
            error_response(&e)
        }
    }
}

/// What a secure-aggregation download step gives: the framed message, or
/// `None` while the step it belongs to has not begun.
type DownloadStep = fn(&ServerCore, &str) -> Result<Option<Vec<u8>>, ServerError>;

/// A secure-aggregation download: the framed message, or 204.
async fn secagg_get(core: Arc<ServerCore>, headers: HeaderMap, step: DownloadStep) -> Response {
    let result = async {
        let client = client_of(&core, &headers)?;
        let worker = core.clone();
        tokio::task::spawn_blocking(move || step(&worker, &client))
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?
    }
    .await;
    match result {
        Ok(Some(bytes)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(&e),
    }
}

async fn secagg_keys(State(core): Core, headers: HeaderMap, body: Body) -> Response {
    secagg_post(core, headers, body, |c, id, b| {
        c.secagg_keys(id, b).map(|_| false)
    })
    .await
}

async fn secagg_shares(State(core): Core, headers: HeaderMap, body: Body) -> Response {
    secagg_post(core, headers, body, |c, id, b| {
        c.secagg_shares(id, b).map(|_| false)
    })
    .await
}

async fn secagg_masked(State(core): Core, headers: HeaderMap, body: Body) -> Response {
    secagg_post(core, headers, body, |c, id, b| {
        c.secagg_masked(id, b).map(|_| false)
    })
    .await
}

async fn secagg_unmask(State(core): Core, headers: HeaderMap, body: Body) -> Response {
    secagg_post(core, headers, body, ServerCore::secagg_unmask).await
}

async fn secagg_roster(State(core): Core, headers: HeaderMap) -> Response {
    secagg_get(core, headers, ServerCore::secagg_roster).await
}

async fn secagg_inbox(State(core): Core, headers: HeaderMap) -> Response {
    secagg_get(core, headers, ServerCore::secagg_inbox).await
}

async fn secagg_unmask_request(State(core): Core, headers: HeaderMap) -> Response {
    secagg_get(core, headers, ServerCore::secagg_unmask_request).await
}

async fn secagg_advance(State(core): Core, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let who = admin(&core, &headers);
        checked_body(&core, who, body, 1024).await?;
        let worker = core.clone();
        tokio::task::spawn_blocking(move || worker.secagg_advance())
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?
    }
    .await;
    match result {
        Ok(phase) => axum::Json(serde_json::json!({ "phase": phase })).into_response(),
        Err(e) => error_response(&e),
    }
}
