//! The partition registry API (`/api/v1/datasets/{d}/...`): what consumers
//! read (`published`), a partition's state and history, the pipeline's
//! publication after an allow, and a person's override of a quarantine;
//! both changes are recorded with the caller's token as their actor.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};

use super::error::ApiError;
use super::gates::json_body;
use crate::app::AppState;
use crate::domain::Caller;
use crate::gate::{OverrideRequest, PartitionView, PublishRequest};
use crate::registry::PublishedPartition;

/// `GET /api/v1/datasets/{d}/published`: the newest published partition.
pub async fn published(
    State(state): State<AppState>,
    Path(dataset): Path<String>,
) -> Result<Json<PublishedPartition>, ApiError> {
    Ok(Json(
        state.gates().published(&state.config(), &dataset).await?,
    ))
}

/// `GET /api/v1/datasets/{d}/partitions/{p}`: state, history, latest gates.
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
