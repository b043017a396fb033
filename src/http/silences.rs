//! Alerting over the API (`/api/v1`): silences (`GET/POST/DELETE
//! /api/v1/silences`), the firing alerts (`GET /api/v1/alerts`) and the
//! outbox's dead-letter list (`GET /api/v1/notifications/dead`).
//!
//! A silence is created with
//! `{"matchers": {"dataset": "events"}, "ends_at": "…" | "duration": "2h",
//! "starts_at": "…", "created_by": "ana", "comment": "…"}`; every problem is
//! answered 400 with the field it concerns (`matchers.tier: …`). The
//! silence records the caller's token as its creator (`created_by` of the
//! request is kept as a note), and the token that ends one early.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{Path, Query};
use crate::alert::{FiringAlert, SilenceError};
use crate::app::AppState;
use crate::config::routes::Silence;
use crate::domain::Caller;

/// Dead letters returned unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

impl From<SilenceError> for ApiError {
    fn from(e: SilenceError) -> Self {
        match e {
            SilenceError::Invalid(_) => Self::bad_request(e.to_string()),
            SilenceError::NotFound(_) => Self::not_found(e.to_string()),
            SilenceError::InConfig(_) => Self::conflict(e.to_string()),
            SilenceError::Registry(e) => e.into(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SilencesBody {
    pub silences: Vec<Silence>,
}

#[utoipa::path(
    get,
    path = "/api/v1/silences",
    tag = "alerts",
    description = "Silences active now or still to come, those of the routes file first. Scope: `read`.",
    responses(
        (status = 200, description = "The silences", body = SilencesBody),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `read`", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
/// `GET /api/v1/silences`: silences active now or still to come, those of
/// the routes file first.
pub async fn list(State(state): State<AppState>) -> Result<Json<SilencesBody>, ApiError> {
    let silences = state.alerts().silences(Utc::now()).await?;
    Ok(Json(SilencesBody { silences }))
}

/// `POST /api/v1/silences`: 201 with the new silence.
#[utoipa::path(
    post,
    path = "/api/v1/silences",
    tag = "alerts",
    description = "Creates a silence. Its creator is the token's name; the request's `created_by` is kept as a note. Scope: `admin`.",
    request_body = SilenceRequest,
    responses(
        (status = 201, description = "The new silence", body = Silence),
        (status = 400, description = "A malformed request; `detail` names the field", body = ApiError),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `admin`", body = ApiError),
        (status = 413, description = "The body is larger than 64 KiB", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("body: not valid JSON: {e}")))?;
    let silence = state
        .alerts()
        .create_silence(&body, Utc::now(), &caller)
        .await?;
    Ok((StatusCode::CREATED, Json(silence)))
}

/// `DELETE /api/v1/silences/{id}`: ends the silence now and answers it.
#[utoipa::path(
    delete,
    path = "/api/v1/silences/{id}",
    tag = "alerts",
    description = "Ends a silence made through the API now. Scope: `admin`.",
    params(
        ("id" = String, Path, description = "The silence's id"),
    ),
    responses(
        (status = 200, description = "The silence, ended", body = Silence),
        (status = 400, description = "A malformed request; `detail` names the field", body = ApiError),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `admin`", body = ApiError),
        (status = 404, description = "No such silence", body = ApiError),
        (status = 409, description = "The silence is in the routes file", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
pub async fn expire(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Silence>, ApiError> {
    Ok(Json(
        state
            .alerts()
            .expire_silence(&id, Utc::now(), &caller)
            .await?,
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertsBody {
    pub alerts: Vec<FiringAlert>,
}

/// `GET /api/v1/alerts`: every firing alert, silenced or not.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    description = "Every firing alert, silenced or not. Scope: `read`.",
    responses(
        (status = 200, description = "The firing alerts", body = AlertsBody),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `read`", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
pub async fn firing(State(state): State<AppState>) -> Result<Json<AlertsBody>, ApiError> {
    let alerts = state.alerts().firing(Utc::now()).await?;
    Ok(Json(AlertsBody { alerts }))
}

#[derive(Deserialize)]
pub struct LimitQuery {
    limit: Option<String>,
}

/// One notification given up on.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: i64,
    pub receiver: String,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub error: Option<String>,
    pub payload: serde_json::Value,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeadLettersBody {
    pub notifications: Vec<DeadLetter>,
}

/// `GET /api/v1/notifications/dead?limit=N`: the dead-letter list, newest
/// first.
#[utoipa::path(
    get,
    path = "/api/v1/notifications/dead",
    tag = "alerts",
    description = "Notifications given up on (the dead-letter list), newest first. Scope: `read`.",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many, newest first (default 100)"),
    ),
    responses(
        (status = 200, description = "The dead letters", body = DeadLettersBody),
        (status = 400, description = "A malformed request; `detail` names the field", body = ApiError),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `read`", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
pub async fn dead(
    State(state): State<AppState>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<DeadLettersBody>, ApiError> {
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit: `{s}` is not a whole number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let notifications = state
        .alerts()
        .dead_letters(limit)
        .await?
        .into_iter()
        .map(|e| DeadLetter {
            id: e.id,
            receiver: e.receiver,
            attempts: e.attempts,
            created_at: e.created_at,
            error: e.last_error,
            payload: e.payload,
        })
        .collect();
    Ok(Json(DeadLettersBody { notifications }))
}

/// The body of `POST /api/v1/silences` (read field by field, so that each
/// problem names its field).
#[derive(utoipa::ToSchema)]
pub struct SilenceRequest {
    /// Labels to match, each a value or a list of accepted values: `tier`,
    /// `owner`, `dataset`, `severity`, `kind`, `check`, `partition`,
    /// `warehouse`.
    #[schema(value_type = Object)]
    pub matchers: serde_json::Value,
    /// When it starts (RFC 3339); default now.
    pub starts_at: Option<DateTime<Utc>>,
    /// When it ends (RFC 3339); or give `duration`.
    pub ends_at: Option<DateTime<Utc>>,
    /// How long it lasts from `starts_at` (`2h`, `1d`); or give `ends_at`.
    pub duration: Option<String>,
    /// Who asks; kept as a note beside the token's name.
    pub created_by: Option<String>,
    pub comment: Option<String>,
}
