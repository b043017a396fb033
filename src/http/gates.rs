//! The gate API (`/api/v1/gates`): a pipeline asks whether a staged
//! partition may be published, and reads the decision.
//!
//! `POST /api/v1/gates {"dataset","partition","run_id"}` answers 202 with
//! the queued gate; with `?wait=300s` it answers 200 with the decision once
//! there is one (202 with the gate as it stands if the wait ran out first).
//! `GET /api/v1/gates/{id}` reads a gate, and accepts `?wait=` too. An
//! `Idempotency-Key` header makes a retried request find its first gate.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::extract::{Path, Query};
use crate::app::AppState;
use crate::gate::{DECISION_MARGIN, Gate, GateError, GateRequest, MAX_WAIT, MIN_WAIT, check_wait};

/// The `Idempotency-Key` request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    wait: Option<String>,
}

impl WaitQuery {
    /// `?wait=300s` as a duration of 1 s to 5 min; `None` when absent.
    fn duration(&self) -> Result<Option<Duration>, ApiError> {
        let Some(text) = self.wait.as_deref() else {
            return Ok(None);
        };
        match parse_wait(text) {
            Some(d) => Ok(Some(d)),
            None => Err(ApiError::bad_request(format!(
                "wait: expected a duration like `300s` or `5m` from {} to {}, not `{text}`",
                humantime::format_duration(MIN_WAIT),
                humantime::format_duration(MAX_WAIT)
            ))),
        }
    }
}

/// A `?wait=` value (`300s`, `5m` or seconds) within 1 s to 5 min.
pub(crate) fn parse_wait(text: &str) -> Option<Duration> {
    humantime::parse_duration(text)
        .ok()
        .or_else(|| text.parse::<u64>().ok().map(Duration::from_secs))
        .and_then(|d| check_wait(d).ok())
}

/// `POST /api/v1/gates`.
#[utoipa::path(
    post,
    path = "/api/v1/gates",
    tag = "gates",
    description = "Asks whether a staged partition may be published. Answers 202 with the queued gate, or with `?wait=` 200 with the decision once there is one (202 with the gate as it stands if the wait ran out). A repeat with the same `run_id` or `Idempotency-Key` answers the recorded gate. Scope: `gate`.",
    params(
        ("wait" = Option<String>, Query, description = "Wait up to this long (`300s`, `5m`; 1 s to 5 min) for the decision"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request find its first gate"),
    ),
    request_body = GateRequest,
    responses(
        (status = 200, description = "The decided gate", body = Gate),
        (status = 202, description = "The gate, not decided yet", body = Gate),
        (status = 400, description = "A malformed request; `detail` names the field", body = ApiError),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `gate`", body = ApiError),
        (status = 404, description = "No such dataset", body = ApiError),
        (status = 413, description = "The body is larger than 64 KiB", body = ApiError),
        (status = 422, description = "The idempotency key was used with another body", body = ApiError),
        (status = 503, description = "The registry is unavailable: the gate denies (fail closed)", body = ApiError),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    Query(query): Query<WaitQuery>,
    headers: HeaderMap,
    body: Result<Json<GateRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let wait = query.duration()?;
    let Json(req) = json_body(body)?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| {
                    ApiError::bad_request("Idempotency-Key: must be printable ASCII".to_owned())
                })?
                .to_owned(),
        ),
    };
    let gates = state.gates();
    let (config, runner) = (state.config(), state.runner());
    let gate = match wait {
        None => gates.submit(config, runner, req, key).await?,
        Some(wait) => {
            // The gate decides by its deadline; the margin lets the decision
            // be recorded and reach us (as `GateService::decide_within`).
            let gate = gates.submit_within(config, runner, req, key, wait).await?;
            wait_for(&state, &gate.gate_id, wait + DECISION_MARGIN).await?
        }
    };
    Ok(gate_response(gate))
}

/// `GET /api/v1/gates/{gate_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/gates/{gate_id}",
    tag = "gates",
    description = "A gate, decided or not; with `?wait=`, once decided or when the wait runs out. Scope: `gate` or `read`.",
    params(
        ("gate_id" = String, Path, description = "The gate's id"),
        ("wait" = Option<String>, Query, description = "Wait up to this long (`300s`, `5m`; 1 s to 5 min) for the decision"),
    ),
    responses(
        (status = 200, description = "The decided gate", body = Gate),
        (status = 202, description = "The gate, not decided yet", body = Gate),
        (status = 400, description = "A malformed request; `detail` names the field", body = ApiError),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `gate` and `read`", body = ApiError),
        (status = 404, description = "No such gate", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(gate_id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let gate = match query.duration()? {
        None => state.gates().get(&gate_id).await?,
        Some(wait) => wait_for(&state, &gate_id, wait).await?,
    };
    Ok(gate_response(gate))
}

/// A long-poll: waits up to `wait` for the gate's decision, and answers
/// with the gate as it stands as soon as the agent begins to shut down, so
/// that no caller holds the server open (the caller asks again elsewhere).
async fn wait_for(state: &AppState, gate_id: &str, wait: Duration) -> Result<Gate, GateError> {
    tokio::select! {
        gate = state.gates().wait(gate_id, wait) => gate,
        () = state.shutdown().cancelled() => state.gates().get(gate_id).await,
    }
}

/// 200 with a decided gate, 202 with one still under way; `Location` names
/// the gate either way.
fn gate_response(gate: Gate) -> Response {
    let status = if gate.is_decided() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let location = HeaderValue::from_str(&format!("/api/v1/gates/{}", gate.gate_id)).ok();
    let mut response = (status, Json(gate)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A JSON body, or the error a client can act on: 413 when too large, 400
/// naming what is wrong (a missing or unknown field, a wrong type).
pub(super) fn json_body<T: DeserializeOwned>(
    body: Result<Json<T>, JsonRejection>,
) -> Result<Json<T>, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(format!(
            "the request body is larger than {} bytes",
            super::MAX_BODY_BYTES
        )),
        _ => ApiError::bad_request(rejection.body_text()),
    })
}

impl From<GateError> for ApiError {
    fn from(e: GateError) -> Self {
        let detail = e.to_string();
        match e.status() {
            400 => Self::bad_request(detail),
            404 => Self::not_found(detail),
            409 => Self::conflict(detail),
            422 => Self::unprocessable(detail),
            503 => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "registry unavailable",
                format!("{detail} (the gate denies: fail closed)"),
            ),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", detail),
        }
    }
}
