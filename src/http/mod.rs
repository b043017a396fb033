//! The HTTP app on `agent.listen`: `/metrics`, `/healthz`, `/readyz`, the
//! status page at `/`, and the JSON API under `/api/v1` (DESIGN §4).
//!
//! [`router`] is a plain function of the shared [`AppState`], so handler
//! tests call it with `oneshot` and no socket. Every error is JSON
//! (`error.rs`); `/api/v1` needs a bearer token when `agent.api_tokens` is
//! set (`auth.rs`).

pub mod api;
pub mod auth;
pub mod error;
pub mod gates;
pub mod partitions;
pub mod silences;
pub mod status;
pub mod view;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router, middleware};
use serde_json::json;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::app::AppState;

/// The largest request body accepted (gate and silence requests are small).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long `/readyz` waits for the registry.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The whole HTTP app.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/datasets", get(api::datasets))
        .route("/datasets/{dataset}", get(api::dataset))
        .route("/checks/{id}/history", get(api::history))
        .route("/gates", post(gates::submit))
        .route("/gates/{gate_id}", get(gates::get))
        .route("/datasets/{dataset}/published", get(partitions::published))
        .route(
            "/datasets/{dataset}/partitions/{partition}",
            get(partitions::partition),
        )
        .route(
            "/datasets/{dataset}/partitions/{partition}/publish",
            post(partitions::publish),
        )
        .route(
            "/datasets/{dataset}/partitions/{partition}/override",
            post(partitions::override_),
        )
        .route("/silences", get(silences::list).post(silences::create))
        .route("/silences/{id}", delete(silences::expire))
        .route("/alerts", get(silences::firing))
        .route("/notifications/dead", get(silences::dead))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/", get(status::page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest("/api/v1", api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `GET /metrics`: the Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> Response {
    let generation = state.generation();
    state.metrics().set_queue_depth("run", generation.queued());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
        .into_response()
}

/// `GET /healthz`: the process answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the configuration is loaded and the registry answers.
async fn readyz(State(state): State<AppState>) -> Response {
    if !state.is_ready() {
        return ApiError::unavailable("the agent is starting or shutting down").into_response();
    }
    match tokio::time::timeout(READY_TIMEOUT, state.registry().ping()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "configuration": state.generation().number,
                "datasets": state.config().datasets.len(),
            })),
        )
            .into_response(),
        Ok(Err(e)) => ApiError::unavailable(e.to_string()).into_response(),
        Err(_) => ApiError::unavailable(format!(
            "registry {} did not answer within {READY_TIMEOUT:?}",
            state.registry().url()
        ))
        .into_response(),
    }
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}
