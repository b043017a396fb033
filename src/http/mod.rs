//! The HTTP app on `agent.listen`: `/metrics`, `/healthz`, `/readyz`, the
//! status page at `/`, and the JSON API under `/api/v1` (DESIGN §4).
//!
//! [`router`] is a plain function of the shared [`AppState`], so handler
//! tests call it with `oneshot` and no socket. Every error is JSON
//! (`error.rs`); when `agent.api_tokens` is set, `/api/v1` and the status
//! page need a token with the scope each route names (`auth.rs`).

pub mod api;
pub mod auth;
pub mod error;
pub mod gates;
pub mod page;
pub mod partitions;
pub mod server;
pub mod silences;
pub mod status;
pub mod view;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, Router, middleware};
use serde_json::json;
use tower_http::trace::TraceLayer;

pub use auth::Need;
pub use error::ApiError;

use crate::app::AppState;

/// The largest request body accepted (gate and silence requests are small).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long `/readyz` waits for the registry.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The whole HTTP app. Each guarded route says which scopes open it (see
/// `auth.rs`); `/metrics`, `/healthz` and `/readyz` are open.
pub fn router(state: AppState) -> Router {
    use crate::domain::Scope::{Admin, Gate, Publish, Read};
    let need = |need: Need, route: MethodRouter<AppState>| {
        route.route_layer(middleware::from_fn_with_state(
            (state.clone(), need),
            auth::require,
        ))
    };
    let read = |route| need(Need::api(Read), route);
    let api = Router::new()
        .route("/status", read(get(status::summary)))
        .route("/datasets", read(get(api::datasets)))
        .route("/datasets/{dataset}", read(get(api::dataset)))
        .route("/checks/{id}/history", read(get(api::history)))
        .route("/gates", need(Need::api(Gate), post(gates::submit)))
        .route(
            "/gates/{gate_id}",
            need(Need::api_any(&[Gate, Read]), get(gates::get)),
        )
        .route(
            "/datasets/{dataset}/published",
            read(get(partitions::published)),
        )
        .route(
            "/datasets/{dataset}/partitions/{partition}",
            read(get(partitions::partition)),
        )
        .route(
            "/datasets/{dataset}/partitions/{partition}/publish",
            need(Need::api(Publish), post(partitions::publish)),
        )
        .route(
            "/datasets/{dataset}/partitions/{partition}/override",
            need(Need::api(Admin), post(partitions::override_)),
        )
        .route("/silences", read(get(silences::list)))
        .route("/silences", need(Need::api(Admin), post(silences::create)))
        .route(
            "/silences/{id}",
            need(Need::api(Admin), delete(silences::expire)),
        )
        .route("/alerts", read(get(silences::firing)))
        .route("/notifications/dead", read(get(silences::dead)));
    Router::new()
        .route("/", need(Need::page(), get(status::page)))
        .route(
            "/datasets/{dataset}",
            need(Need::page(), get(status::dataset_page)),
        )
        .route("/checks/{id}", need(Need::page(), get(status::check_page)))
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
