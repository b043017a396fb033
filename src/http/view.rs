//! What the API and the status page show of datasets and checks, built
//! from the configuration, the latest recorded results and the circuits.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::app::AppState;
use crate::app::schedule::next_tick;
use crate::check::kind::DatasetGauge;
use crate::check::{CheckKind, Dataset, Severity};
use crate::check::{CheckResult, Outcome, Summary};
use crate::config::Config;
use crate::registry::{RegistryError, StoredResult};

/// A dataset with its current status (`GET /api/v1/datasets`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatasetView {
    pub name: String,
    pub warehouse: String,
    pub table: String,
    pub tier: u8,
    pub owner: Option<String>,
    pub runbook: Option<String>,
    /// The cron expression; `null` for a dataset run only on demand.
    pub schedule: Option<String>,
    pub partition: Option<PartitionView>,
    /// The worst outcome among the checks' latest results; `unknown` before the first run.
    pub status: String,
    pub summary: Summary,
    /// When the latest result was recorded.
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    /// From the dataset's freshness check, in seconds.
    pub freshness_lag_seconds: Option<f64>,
    pub warehouse_up: bool,
    /// For a dataset found by `discover:`, the group it belongs to:
    /// `<warehouse>.<schema>`; `null` for one written by hand.
    pub discovered: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Partitioning)]
pub struct PartitionView {
    pub column: String,
    pub granularity: String,
}

/// One check and its latest result (`GET /api/v1/datasets/{d}`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    pub check: String,
    pub name: String,
    pub kind: String,
    pub column: Option<String>,
    pub severity: Severity,
    pub blocking: bool,
    pub last_result: Option<ResultView>,
}

/// A recorded result: the JSON of `warden check` plus when it ran.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResultView {
    #[serde(flatten)]
    pub result: CheckResult,
    pub scheduled_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

impl From<StoredResult> for ResultView {
    fn from(s: StoredResult) -> Self {
        Self {
            result: s.result,
            scheduled_at: s.scheduled_at,
            recorded_at: s.recorded_at,
        }
    }
}

/// The datasets `discover:` entries of `config` found, as the registry
/// recorded them at their last runs (a dropped table until it is
/// forgotten), grouped by entry and in name order.
pub async fn discovered_datasets(
    state: &AppState,
    config: &Config,
) -> Result<Vec<Dataset>, RegistryError> {
    if config.discover.is_empty() {
        return Ok(Vec::new());
    }
    let records = state.registry().reads().discovered_all().await?;
    let mut out = Vec::new();
    for spec in &config.discover {
        out.extend(
            records
                .iter()
                .filter(|r| r.warehouse == spec.warehouse && r.schema_name == spec.schema.as_str())
                .filter(|r| spec.matches(&r.table_name))
                .filter(|r| {
                    !config
                        .datasets
                        .iter()
                        .any(|ds| spec.written_by_hand(ds, &r.table_name))
                })
                .filter_map(|r| spec.dataset(&r.table_name)),
        );
    }
    Ok(out)
}

/// Every dataset: those written by hand, then the discovered ones.
pub async fn all_datasets(
    state: &AppState,
    config: &Config,
) -> Result<Vec<Dataset>, RegistryError> {
    let mut all = config.datasets.clone();
    all.extend(discovered_datasets(state, config).await?);
    Ok(all)
}

/// Whether `result` is one that dataset `ds` reports: one of its
/// configured checks, or any monitor of a discovered dataset.
pub fn reports(ds: &Dataset, result: &CheckResult) -> bool {
    if ds.discovered.is_some() {
        result.dataset == ds.name.as_str()
    } else {
        ds.checks.iter().any(|c| c.id.as_str() == result.check)
    }
}

/// The latest result of each check still configured (or of a discovered
/// dataset's monitors), by dataset.
/// `all` is what [`all_datasets`] read, so the discovered tables are read
/// once per call.
pub async fn latest_by_dataset(
    state: &AppState,
    config: &Config,
    all: &[Dataset],
) -> Result<HashMap<String, Vec<StoredResult>>, RegistryError> {
    let configured = config.check_ids();
    let discovered: std::collections::HashSet<&str> = all
        .iter()
        .filter(|d| d.discovered.is_some())
        .map(|d| d.name.as_str())
        .collect();
    let mut by_dataset: HashMap<String, Vec<StoredResult>> = HashMap::new();
    for s in state.registry().reads().latest_results_all().await? {
        if configured.contains(s.result.check.as_str())
            || discovered.contains(s.result.dataset.as_str())
        {
            by_dataset
                .entry(s.result.dataset.clone())
                .or_default()
                .push(s);
        }
    }
    Ok(by_dataset)
}

pub fn dataset_view(
    state: &AppState,
    config: &Config,
    ds: &Dataset,
    latest: &[StoredResult],
    now: DateTime<Utc>,
) -> DatasetView {
    let summary = Summary::of(latest.iter().map(|s| &s.result));
    let status = latest
        .iter()
        .map(|s| s.result.outcome)
        .max_by_key(|o| severity_rank(*o))
        .map_or("unknown", Outcome::as_str)
        .to_owned();
    let freshness_lag_seconds = latest
        .iter()
        .filter(|s| CheckKind::gauge_of(&s.result.kind) == Some(DatasetGauge::FreshnessLag))
        .filter_map(|s| s.result.observed)
        .reduce(f64::max);
    DatasetView {
        name: ds.name.to_string(),
        warehouse: ds.warehouse.clone(),
        table: ds.table.to_string(),
        tier: ds.tier,
        owner: ds.owner.clone(),
        runbook: ds.runbook.clone(),
        schedule: ds.schedule.as_ref().map(|s| s.expr.clone()),
        partition: ds.partition.as_ref().map(|p| PartitionView {
            column: p.column.to_string(),
            granularity: p.granularity.as_str().to_owned(),
        }),
        status,
        summary,
        last_run_at: latest.iter().map(|s| s.recorded_at).max(),
        next_run_at: ds
            .schedule
            .as_ref()
            .and_then(|s| next_tick(s, now, config.agent.timezone)),
        freshness_lag_seconds,
        warehouse_up: state.circuit(&ds.warehouse).is_none_or(|c| !c.is_open()),
        discovered: ds.discovered.clone(),
    }
}

/// Pass < warn < error < fail: a failing check is the headline even when
/// another one errored.
pub fn severity_rank(o: Outcome) -> u8 {
    match o {
        Outcome::Pass => 0,
        Outcome::Warn => 1,
        Outcome::Error => 2,
        Outcome::Fail => 3,
    }
}

pub fn check_views(ds: &Dataset, latest: Vec<StoredResult>) -> Vec<CheckView> {
    if ds.discovered.is_some() {
        // A discovered dataset's monitors are what its last runs reported.
        let mut views: Vec<CheckView> = latest
            .into_iter()
            .filter(|s| s.result.dataset == ds.name.as_str())
            .map(|s| CheckView {
                check: s.result.check.clone(),
                name: s.result.kind.clone(),
                kind: s.result.kind.clone(),
                column: None,
                severity: Severity::Fail,
                blocking: false,
                last_result: Some(ResultView::from(s)),
            })
            .collect();
        views.sort_by(|a, b| a.check.cmp(&b.check));
        return views;
    }
    let mut latest: HashMap<String, StoredResult> = latest
        .into_iter()
        .map(|s| (s.result.check.clone(), s))
        .collect();
    ds.checks
        .iter()
        .map(|spec| CheckView {
            check: spec.id.to_string(),
            name: spec.name.clone(),
            kind: spec.kind.name().to_owned(),
            column: spec.kind.column().map(ToString::to_string),
            severity: spec.severity,
            blocking: spec.blocking,
            last_result: latest.remove(spec.id.as_str()).map(ResultView::from),
        })
        .collect()
}
