//! The partition registry API (`/api/v1/datasets/{d}/...`): what consumers
//! read (`published`), a partition's state and history, the pipeline's
//! publication after an allow, and a person's override of a quarantine;
//! both changes are recorded with the caller's token as their actor.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;

use super::error::ApiError;
use super::extract::Path;
use super::gates::json_body;
use crate::app::AppState;
use crate::domain::Caller;
use crate::gate::{OverrideRequest, PartitionView, PublishRequest};
use crate::registry::PublishedPartition;

/// `GET /api/v1/datasets/{d}/published`: the newest published partition.
#[utoipa::path(
    get,
    path = "/api/v1/datasets/{dataset}/published",
    tag = "partitions",
    description = "The newest published partition of a dataset: what consumers read. Scope: `read`.",
    params(
        ("dataset" = String, Path, description = "A configured dataset"),
    ),
    responses(
        (status = 200, description = "The newest published partition", body = PublishedPartition),
        (status = 400, description = "A malformed request; `detail` names the field", body = ApiError),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `read`", body = ApiError),
        (status = 404, description = "No such dataset, or nothing published yet", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
pub async fn published(
    State(state): State<AppState>,
    Path(dataset): Path<String>,
) -> Result<Json<PublishedPartition>, ApiError> {
    Ok(Json(
        state.gates().published(&state.config(), &dataset).await?,
    ))
}

/// `GET /api/v1/datasets/{d}/partitions/{p}`: state, history, latest gates.
#[utoipa::path(
    get,
    path = "/api/v1/datasets/{dataset}/partitions/{partition}",
    tag = "partitions",
    description = "A partition's registry state, its history and its latest gates. Scope: `read`.",
    params(
        ("dataset" = String, Path, description = "A configured dataset"),
        ("partition" = String, Path, description = "A partition value (`2026-11-20`, `2026-11-20T13`) or an unpartitioned batch label"),
    ),
    responses(
        (status = 200, description = "The partition", body = PartitionView),
        (status = 400, description = "A malformed request; `detail` names the field", body = ApiError),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `read`", body = ApiError),
        (status = 404, description = "No such dataset or partition", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
pub async fn partition(
    State(state): State<AppState>,
    Path((dataset, partition)): Path<(String, String)>,
) -> Result<Json<PartitionView>, ApiError> {
    Ok(Json(
        state
            .gates()
            .partition(&state.config(), &dataset, &partition)
            .await?,
    ))
}

/// `POST /api/v1/datasets/{d}/partitions/{p}/publish {"gate_id"}`.
#[utoipa::path(
    post,
    path = "/api/v1/datasets/{dataset}/partitions/{partition}/publish",
    tag = "partitions",
    description = "Records that the pipeline published the partition, after the gate allowed it. The actor recorded is the token's name. Scope: `publish`.",
    params(
        ("dataset" = String, Path, description = "A configured dataset"),
        ("partition" = String, Path, description = "A partition value (`2026-11-20`, `2026-11-20T13`) or an unpartitioned batch label"),
    ),
    request_body = PublishRequest,
    responses(
        (status = 200, description = "The partition, now published", body = PartitionView),
        (status = 400, description = "A malformed request; `detail` names the field", body = ApiError),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `publish`", body = ApiError),
        (status = 404, description = "No such dataset, partition or gate", body = ApiError),
        (status = 409, description = "The gate did not allow this partition, or no longer stands behind it", body = ApiError),
        (status = 413, description = "The body is larger than 64 KiB", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path((dataset, partition)): Path<(String, String)>,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<Json<PartitionView>, ApiError> {
    let Json(req) = json_body(body)?;
    Ok(Json(
        state
            .gates()
            .publish(&state.config(), &dataset, &partition, req, &caller)
            .await?,
    ))
}

/// `POST /api/v1/datasets/{d}/partitions/{p}/override {"decision","reason","by"}`.
#[utoipa::path(
    post,
    path = "/api/v1/datasets/{dataset}/partitions/{partition}/override",
    tag = "partitions",
    description = "A person's review of a quarantined partition: `allow` lets it pass. The actor recorded is the token's name. Scope: `admin`.",
    params(
        ("dataset" = String, Path, description = "A configured dataset"),
        ("partition" = String, Path, description = "A partition value (`2026-11-20`, `2026-11-20T13`) or an unpartitioned batch label"),
    ),
    request_body = OverrideRequest,
    responses(
        (status = 200, description = "The partition after the override", body = PartitionView),
        (status = 400, description = "A malformed request; `detail` names the field", body = ApiError),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `admin`", body = ApiError),
        (status = 404, description = "No such dataset or partition", body = ApiError),
        (status = 409, description = "The partition is not quarantined", body = ApiError),
        (status = 413, description = "The body is larger than 64 KiB", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
pub async fn override_(
    State(state): State<AppState>,
    caller: Caller,
    Path((dataset, partition)): Path<(String, String)>,
    body: Result<Json<OverrideRequest>, JsonRejection>,
) -> Result<Json<PartitionView>, ApiError> {
    let Json(req) = json_body(body)?;
    Ok(Json(
        state
            .gates()
            .override_(&state.config(), &dataset, &partition, req, &caller)
            .await?,
    ))
}
