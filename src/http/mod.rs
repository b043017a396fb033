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
pub mod extract;
pub mod gates;
pub mod openapi;
pub mod page;
pub mod partitions;
pub mod server;
pub mod silences;
pub mod status;
pub mod view;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get, on};
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
    let (api, _) = api_routes(state.clone());
    Router::new()
        .route("/", page(&state, get(status::page)))
        .route(
            "/datasets/{dataset}",
            page(&state, get(status::dataset_page)),
        )
        .route("/checks/{id}", page(&state, get(status::check_page)))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest(API_PREFIX, api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Where the JSON API is mounted.
pub const API_PREFIX: &str = "/api/v1";

/// One route of `/api/v1`, as registered: its method and its path below
/// [`API_PREFIX`], with parameters as `{name}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiRoute {
    pub method: Method,
    pub path: &'static str,
}

impl ApiRoute {
    /// The method, lowercase, as OpenAPI names operations.
    pub fn method_name(&self) -> String {
        self.method.as_str().to_ascii_lowercase()
    }
}

/// The routes of `/api/v1` and the record of what was registered: every
/// route goes through [`ApiRoutes::add`], so the record is the router's.
struct ApiRoutes {
    state: AppState,
    router: Router<AppState>,
    routes: Vec<ApiRoute>,
}

impl ApiRoutes {
    fn add<H, T>(mut self, method: Method, path: &'static str, need: Need, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
        self.router = self
            .router
            .route(path, guard(&self.state, need, on(filter, handler)));
        self.routes.push(ApiRoute { method, path });
        self
    }
}

/// The `/api/v1` router (to be nested at [`API_PREFIX`]) and every route
/// it has. The OpenAPI document (`openapi.rs`) must list exactly these.
pub fn api_routes(state: AppState) -> (Router<AppState>, Vec<ApiRoute>) {
    use crate::domain::Scope::{Admin, Gate, Publish, Read};
    let read = Need::api(Read);
    let api = ApiRoutes {
        state,
        router: Router::new(),
        routes: Vec::new(),
    }
    .add(Method::GET, "/openapi.json", read, openapi::document)
    .add(Method::GET, "/status", read, status::summary)
    .add(Method::GET, "/datasets", read, api::datasets)
    .add(Method::GET, "/datasets/{dataset}", read, api::dataset)
    .add(Method::GET, "/checks/{id}/history", read, api::history)
    .add(Method::POST, "/gates", Need::api(Gate), gates::submit)
    .add(
        Method::GET,
        "/gates/{gate_id}",
        Need::api_any(&[Gate, Read]),
        gates::get,
    )
    .add(
        Method::GET,
        "/datasets/{dataset}/published",
        read,
        partitions::published,
    )
    .add(
        Method::GET,
        "/datasets/{dataset}/partitions/{partition}",
        read,
        partitions::partition,
    )
    .add(
        Method::POST,
        "/datasets/{dataset}/partitions/{partition}/publish",
        Need::api(Publish),
        partitions::publish,
    )
    .add(
        Method::POST,
        "/datasets/{dataset}/partitions/{partition}/override",
        Need::api(Admin),
        partitions::override_,
    )
    .add(Method::GET, "/silences", read, silences::list)
    .add(
        Method::POST,
        "/silences",
        Need::api(Admin),
        silences::create,
    )
    .add(
        Method::DELETE,
        "/silences/{id}",
        Need::api(Admin),
        silences::expire,
    )
    .add(Method::GET, "/alerts", read, silences::firing)
    .add(Method::GET, "/notifications/dead", read, silences::dead);
    (api.router, api.routes)
}

/// `route` behind the guard that lets `need` through.
fn guard(state: &AppState, need: Need, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.route_layer(middleware::from_fn_with_state(
        (state.clone(), need),
        auth::require,
    ))
}

/// An HTML page: behind the guard, then served within the page budget
/// (`AppState::page_turn`), so that a flood of page loads waits instead of
/// taking the CPU gates and checks need.
fn page(state: &AppState, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    let budgeted = route.route_layer(middleware::from_fn_with_state(
        state.clone(),
        |State(state): State<AppState>, request: Request, next: Next| async move {
            state.page_turn().await;
            next.run(request).await
        },
    ));
    guard(state, Need::page(), budgeted)
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

/// A method the path has no route for: the JSON error (axum adds `Allow`).
async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        format!("{} does not answer {method}", uri.path()),
    )
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}
