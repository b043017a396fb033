//! The contract of `/api/v1`: an OpenAPI 3.1 document generated from the
//! handlers' `#[utoipa::path]` attributes and the types they take and
//! answer with (`ToSchema`), served at `GET /api/v1/openapi.json`.
//!
//! Every operation documents the JSON error shape ([`ApiError`]) for its
//! error statuses and the bearer token scheme of `agent.api_tokens`. The
//! router registers each `/api/v1` route through [`super::ApiRoutes`],
//! which records it, and the tests hold that record and this document to
//! each other so that neither can drift.

use axum::Json;
use axum::extract::State;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ApiError;
use super::{api, gates, partitions, silences, status};
use crate::app::AppState;

/// The name of the bearer scheme in the document.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "warden",
        description = "The HTTP API of warden, a data-quality and freshness agent: datasets and \
            their checks, the publication gate, the partition registry, silences and alerts.\n\n\
            When `agent.api_tokens` is set, every operation needs `Authorization: Bearer <token>` \
            with the scope the operation names (`read`, `gate`, `publish` or `admin`): 401 \
            without a known token, 403 naming the missing scope. Every error is \
            `{\"error\": \"...\", \"detail\": \"...\"}`."
    ),
    paths(
        status::summary,
        api::datasets,
        api::dataset,
        api::history,
        gates::submit,
        gates::get,
        partitions::published,
        partitions::partition,
        partitions::publish,
        partitions::override_,
        silences::list,
        silences::create,
        silences::expire,
        silences::firing,
        silences::dead,
        document,
    ),
    components(schemas(ApiError)),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    tags(
        (name = "datasets", description = "Datasets, their checks and results"),
        (name = "gates", description = "The publication gate"),
        (name = "partitions", description = "The partition registry: what consumers read"),
        (name = "alerts", description = "Silences, firing alerts and dead letters"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme the `security` requirement names.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token of `agent.api_tokens`, with the scope the operation names",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document, as served.
pub fn document_json() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises")
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    description = "The OpenAPI 3.1 document of `/api/v1`. Scope: `read`.",
    responses(
        (status = 200, description = "The document", body = Object, content_type = "application/json"),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `read`", body = ApiError),
    )
)]
pub async fn document(State(_): State<AppState>) -> Json<serde_json::Value> {
    Json(document_json())
}
