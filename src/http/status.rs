//! The status pages' handlers: `/` (served from the state's snapshot of
//! what it shows, read again at most every
//! [`STATUS_PAGE_MAX_AGE`](crate::app::STATUS_PAGE_MAX_AGE)), `/datasets/{d}`,
//! `/checks/{id}`, and `/api/v1/status` (the same summary as JSON, what
//! `warden status` prints). The HTML is rendered by `page`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::page::chart::SPARK_POINTS;
use super::page::{self, CheckEntry, DatasetEntry, StatusSnapshot, WarehouseView};
use super::view;
use crate::alert::FiringAlert;
use crate::app::{AppState, StatusData};
use crate::domain::CheckId;
use crate::gate::Gate;
use crate::registry::StoredResult;

/// Gates shown at the bottom of `/`.
const RECENT_GATES: u32 = 10;
/// Gates and partitions shown on a dataset's page.
const DATASET_GATES: u32 = 20;
const DATASET_PARTITIONS: u32 = 30;

/// The snapshot for the current configuration and load report: the one
/// already read while it is young, else read now (once, however many ask).
pub async fn snapshot(state: &AppState) -> Arc<StatusData> {
    // A new configuration, or a new load report (a reload that failed),
    // shows at once.
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        state.generation().number.hash(&mut h);
        Arc::as_ptr(&state.config_report()).hash(&mut h);
        h.finish()
    };
    state
        .status_page()
        .get(key, || async {
            Box::new(Taken {
                snapshot: read(state).await,
                first_page: std::sync::OnceLock::new(),
            }) as StatusData
        })
        .await
}

/// A snapshot, and the first page of `/` once rendered from it: the page
/// most loads ask for is rendered once per snapshot, not once per load.
struct Taken {
    snapshot: StatusSnapshot,
    first_page: std::sync::OnceLock<axum::body::Bytes>,
}

/// The snapshot as the type it is.
fn taken(data: &StatusData) -> &Taken {
    data.downcast_ref::<Taken>()
        .expect("the status snapshot holds a StatusSnapshot")
}

fn view_of(data: &StatusData) -> &StatusSnapshot {
    &taken(data).snapshot
}

/// Reads what `/` shows (on the registry's read pool): the latest result
/// and the last [`SPARK_POINTS`] values of every check in two statements,
/// the firing alerts, silences and recent gates. The page still renders
/// when the registry is down; `registry_error` says so.
pub async fn read(state: &AppState) -> StatusSnapshot {
    let config = state.config();
    let now = Utc::now();
    let reads = state.registry().reads();
    // The datasets written by hand, then those `discover:` found.
    let (all, mut registry_error) = match view::all_datasets(state, &config).await {
        Ok(all) => (all, None),
        Err(e) => (config.datasets.clone(), Some(e.to_string())),
    };
    let mut latest = match view::latest_by_dataset(state, &config, &all).await {
        Ok(l) => l,
        Err(e) => {
            registry_error.get_or_insert(e.to_string());
            Default::default()
        }
    };
    let mut recent: HashMap<String, Vec<StoredResult>> = HashMap::new();
    if registry_error.is_none() {
        match reads.recent_results_all(SPARK_POINTS as u32).await {
            Ok(rows) => {
                for r in rows {
                    recent.entry(r.result.check.clone()).or_default().push(r);
                }
            }
            Err(e) => registry_error = Some(e.to_string()),
        }
    }
    let mut datasets = Vec::with_capacity(all.len());
    for ds in &all {
        let results = latest.remove(ds.name.as_str()).unwrap_or_default();
        let dataset = view::dataset_view(state, &config, ds, &results, now);
        let checks = view::check_views(ds, results)
            .into_iter()
            .map(|check| CheckEntry {
                recent: recent
                    .get(&check.check)
                    .map(|r| page::points(r))
                    .unwrap_or_default(),
                check,
            })
            .collect();
        datasets.push(DatasetEntry { dataset, checks });
    }
    let generation = state.generation();
    let mut warehouses: Vec<WarehouseView> = generation
        .lanes
        .iter()
        .map(|(name, lane)| {
            let s = lane.circuit.status();
            WarehouseView {
                name: name.clone(),
                up: s.up,
                reason: s.reason,
            }
        })
        .collect();
    warehouses.sort_by(|a, b| a.name.cmp(&b.name));
    StatusSnapshot {
        taken_at: now,
        started_at: state.started_at(),
        generation: generation.number,
        registry: state.registry().url().to_owned(),
        registry_error,
        config_report: state.config_report(),
        warehouses,
        datasets,
        firing: state.alerts().firing(now).await.unwrap_or_default(),
        silences: state.alerts().silences(now).await.unwrap_or_default(),
        gates: state.gates().recent(RECENT_GATES).await.unwrap_or_default(),
    }
}

fn html(body: impl Into<axum::body::Body>) -> Response {
    let body: axum::body::Body = body.into();
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct HomeParams {
    page: Option<String>,
}

/// `GET /?page=N`: the status page.
pub async fn page(
    State(state): State<AppState>,
    Query(params): Query<HomeParams>,
) -> Result<Response, ApiError> {
    let query =
        page::home::HomeQuery::parse(params.page.as_deref()).map_err(ApiError::bad_request)?;
    let data = snapshot(&state).await;
    let taken = taken(&data);
    if query != page::home::HomeQuery::default() {
        return Ok(html(page::home::render(&taken.snapshot, &query)));
    }
    let body = match taken.first_page.get() {
        Some(body) => body.clone(),
        None => {
            // Loads that meet an unrendered page may each render it; the
            // first to finish is kept.
            let body = page::home::render(&taken.snapshot, &query).into();
            taken.first_page.get_or_init(|| body).clone()
        }
    };
    Ok(html(body))
}

/// `GET /datasets/{d}`: its checks (from the snapshot), partitions and gates.
pub async fn dataset_page(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let data = snapshot(&state).await;
    let s = view_of(&data);
    let entry = s
        .datasets
        .iter()
        .find(|d| d.dataset.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no dataset `{name}` is configured")))?;
    let reads = state.registry().reads();
    let partitions = reads.dataset_partitions(&name, DATASET_PARTITIONS).await?;
    let gates = state.gates().recent_of(&name, DATASET_GATES).await?;
    Ok(html(page::dataset::render(&page::dataset::DatasetPage {
        now: Utc::now(),
        entry,
        partitions,
        gates,
    })))
}

#[derive(Deserialize)]
pub struct CheckParams {
    range: Option<String>,
}

/// `GET /checks/{id}?range=7d|30d|90d`: its history over the range (one
/// registry read) and its alert.
pub async fn check_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<CheckParams>,
) -> Result<Response, ApiError> {
    let range =
        page::check::Range::parse(params.range.as_deref()).map_err(ApiError::bad_request)?;
    let config = state.config();
    let not_found = || ApiError::not_found(format!("no check `{id}` is configured or recorded"));
    let check_id = CheckId::parse(&id).map_err(|_| not_found())?;
    let configured = config.datasets.iter().find_map(|ds| {
        ds.checks
            .iter()
            .position(|c| c.id.as_str() == id)
            .map(|i| (ds, i))
    });
    let now = Utc::now();
    let reads = state.registry().reads();
    let results = reads
        .results_since(&check_id, now - range.duration(), page::check::MAX_RESULTS)
        .await?;
    let (dataset, check) = match configured {
        Some((ds, i)) => (
            ds.name.to_string(),
            view::check_views(ds, Vec::new()).into_iter().nth(i),
        ),
        None => {
            // A check removed from the configuration keeps its recorded history.
            let recorded = match results.first() {
                Some(r) => Some(r.clone()),
                None => reads.history(&check_id, 1).await?.into_iter().next(),
            };
            (recorded.ok_or_else(not_found)?.result.dataset, None)
        }
    };
    let alert = reads.alert(&id, None).await?;
    Ok(html(page::check::render(&page::check::CheckPage {
        now,
        dataset,
        check,
        id,
        range,
        results,
        alert,
    })))
}

/// The body of `GET /api/v1/status`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatusBody<'a> {
    pub generated_at: chrono::DateTime<Utc>,
    pub version: &'static str,
    pub configuration: u64,
    pub registry_error: Option<&'a str>,
    /// Problems of the latest configuration load, `file:line:col: message`.
    pub config_errors: Vec<String>,
    pub warehouses: &'a [WarehouseView],
    pub datasets: Vec<&'a DatasetEntry>,
    pub firing_alerts: &'a [FiringAlert],
    pub recent_gates: &'a [Gate],
}

/// `GET /api/v1/status`: what `/` shows, as JSON (datasets in the page's
/// order, each check with its last values).
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "datasets",
    description = "What the status page shows: warehouses, datasets with their checks and last values, firing alerts, recent gates. Scope: `read`.",
    responses(
        (status = 200, description = "The status summary", body = StatusBody),
        (status = 401, description = "No known token", body = ApiError),
        (status = 403, description = "The token lacks `read`", body = ApiError),
    )
)]
pub async fn summary(State(state): State<AppState>) -> Response {
    let data = snapshot(&state).await;
    let s = view_of(&data);
    Json(StatusBody {
        generated_at: s.taken_at,
        version: env!("CARGO_PKG_VERSION"),
        configuration: s.generation,
        registry_error: s.registry_error.as_deref(),
        config_errors: s
            .config_report
            .problems
            .iter()
            .map(ToString::to_string)
            .collect(),
        warehouses: &s.warehouses,
        datasets: page::home::order(&s.datasets),
        firing_alerts: &s.firing,
        recent_gates: &s.gates,
    })
    .into_response()
}
