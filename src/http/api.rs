//! Read-only API over datasets, checks and their history (`/api/v1`).

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{Path, Query};
use super::view::{self, CheckView, DatasetView, ResultView};
use crate::app::AppState;
use crate::domain::CheckId;

/// Results `history` returns unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct DatasetsBody {
    pub datasets: Vec<DatasetView>,
}

/// `GET /api/v1/datasets`: every dataset with its current status.
#[utoipa::path(
    get,
    path = "/api/v1/datasets",
    tag = "datasets",
    description = "Every configured dataset with its current status. Scope: `read`.",
    responses(
        (status = 200, description = "The datasets", body = DatasetsBody),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `read`", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
pub async fn datasets(State(state): State<AppState>) -> Result<Json<DatasetsBody>, ApiError> {
    let config = state.config();
    let all = view::all_datasets(&state, &config).await?;
    let mut latest = view::latest_by_dataset(&state, &config, &all).await?;
    let now = Utc::now();
    let datasets = all
        .iter()
        .map(|ds| {
            let results = latest.remove(ds.name.as_str()).unwrap_or_default();
            view::dataset_view(&state, &config, ds, &results, now)
        })
        .collect();
    Ok(Json(DatasetsBody { datasets }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DatasetBody {
    #[serde(flatten)]
    pub dataset: DatasetView,
    pub checks: Vec<CheckView>,
}

/// `GET /api/v1/datasets/{d}`: the dataset and its checks with their last results.
#[utoipa::path(
    get,
    path = "/api/v1/datasets/{dataset}",
    tag = "datasets",
    description = "A dataset and its checks with their latest results. Scope: `read`.",
    params(
        ("dataset" = String, Path, description = "A configured dataset"),
    ),
    responses(
        (status = 200, description = "The dataset", body = DatasetBody),
        (status = 400, description = "A malformed request; `detail` names the field", body = ApiError),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `read`", body = ApiError),
        (status = 404, description = "No such dataset", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
pub async fn dataset(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DatasetBody>, ApiError> {
    let config = state.config();
    let ds = match config.dataset(&name) {
        Some(ds) => ds.clone(),
        None => view::discovered_datasets(&state, &config)
            .await?
            .into_iter()
            .find(|d| d.name.as_str() == name)
            .ok_or_else(|| ApiError::not_found(format!("no dataset `{name}` is configured")))?,
    };
    let latest = state.registry().reads().latest_results(&ds.name).await?;
    let latest: Vec<_> = latest
        .into_iter()
        .filter(|s| view::reports(&ds, &s.result))
        .collect();
    let dataset = view::dataset_view(&state, &config, &ds, &latest, Utc::now());
    Ok(Json(DatasetBody {
        dataset,
        checks: view::check_views(&ds, latest),
    }))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    limit: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryBody {
    pub check: String,
    pub results: Vec<ResultView>,
}

/// `GET /api/v1/checks/{id}/history?limit=N`: past results, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/checks/{id}/history",
    tag = "datasets",
    description = "A check's recorded results, newest first. Scope: `read`.",
    params(
        ("id" = String, Path, description = "A check id, `<dataset>.<name>`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many, newest first (default 100)"),
    ),
    responses(
        (status = 200, description = "The results", body = HistoryBody),
        (status = 400, description = "A malformed request; `detail` names the field", body = ApiError),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `read`", body = ApiError),
        (status = 404, description = "No such check configured or recorded", body = ApiError),
        (status = 503, description = "The registry is unavailable", body = ApiError),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<HistoryBody>, ApiError> {
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "`limit` must be a whole number from 1 to {MAX_LIMIT}, not `{s}`"
                )));
            }
        },
    };
    let config = state.config();
    let known = config
        .datasets
        .iter()
        .flat_map(|d| &d.checks)
        .any(|c| c.id.as_str() == id);
    let not_found = || ApiError::not_found(format!("no check `{id}` is configured or recorded"));
    let check_id = CheckId::parse(&id).map_err(|_| not_found())?;
    let results = state.registry().reads().history(&check_id, limit).await?;
    // A check removed from the configuration keeps its recorded history.
    if results.is_empty() && !known {
        return Err(not_found());
    }
    Ok(Json(HistoryBody {
        check: id,
        results: results.into_iter().map(ResultView::from).collect(),
    }))
}
