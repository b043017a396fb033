//! One run of a dataset's checks, end to end: observe (one catalog read and
//! the planned statements), fetch the baselines the registry holds, evaluate,
//! record every result in one transaction, then store first-seen schemas.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use super::kind::BaselineCx;
use super::kind::{Anomaly, AnomalyHistory, CheckKind};
use super::spec::{CheckSpec, Dataset};
use super::{
    Baselines, DatasetObservations, EvalContext, Observation, Scope, evaluate_all, observe,
    observe_table,
};
use crate::check::{CheckResult, Outcome};
use crate::detect::{Cadence, Point, PointOutcome};
use crate::domain::{Granularity, PartitionKey, TableRef};
use crate::registry::{Registry, RegistryError, RunRecord, StoredColumn};
use crate::warehouse::{CatalogColumn, Warehouse, WarehouseError};

/// Runs checks against the configured warehouses, with history from the
/// registry when there is one.
pub struct Runner {
    tz: Tz,
    warehouses: BTreeMap<String, Result<Arc<Warehouse>, WarehouseError>>,
    registry: Option<Registry>,
}

/// Why a run's results could not be kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The results were evaluated but could not be written to the registry;
    /// they are kept so that they can still be shown.
    #[error("results could not be recorded")]
    Record {
        results: Vec<CheckResult>,
        /// What was to be written, to try again.
        records: Vec<RunRecord>,
        #[source]
        source: RegistryError,
    },
}

impl RunError {
    /// The results the run evaluated, recorded or not.
    pub fn into_results(self) -> Vec<CheckResult> {
        match self {
            Self::Record { results, .. } => results,
        }
    }

    /// The results and the records that were to be written.
    pub fn into_parts(self) -> (Vec<CheckResult>, Vec<RunRecord>) {
        match self {
            Self::Record {
                results, records, ..
            } => (results, records),
        }
    }
}

/// A run whose statements have executed but whose results are not evaluated yet.
pub struct PendingRun(Pending);

impl PendingRun {
    /// A run that did not touch the warehouse: every check of `ds` in
    /// `scope` is `error` with `message` (a warehouse whose circuit is open).
    pub fn unavailable(ds: &Dataset, scope: &Scope, message: &str) -> Self {
        Self(Pending::Unavailable(all_error(ds, scope, message)))
    }

    /// The first error that trying again later may cure (a refused or lost
    /// connection, a timeout), if the run met one.
    pub fn transient_error(&self) -> Option<&WarehouseError> {
        let Pending::Observed(o) = &self.0 else {
            return None;
        };
        if let Err(e) = &o.catalog {
            return e.is_transient().then_some(e);
        }
        o.observations.iter().find_map(|obs| match &obs.value {
            Err(crate::check::ObserveError::Warehouse(e)) if e.is_transient() => Some(e),
            _ => None,
        })
    }
}

enum Pending {
    Observed(DatasetObservations),
    /// The dataset's warehouse cannot be used: every check is already `error`.
    Unavailable(Vec<CheckResult>),
}

impl Runner {
    /// A runner over `warehouses` by name (each a pool, or why it cannot be
    /// used: its datasets' checks are then `error`, not the whole run), in
    /// the agent's time zone. The app module builds one from a configuration.
    pub fn with_warehouses(
        tz: Tz,
        warehouses: BTreeMap<String, Result<Arc<Warehouse>, WarehouseError>>,
        registry: Option<Registry>,
    ) -> Self {
        Self {
            tz,
            warehouses,
            registry,
        }
    }

    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The warehouse a dataset reads, or why it cannot be used.
    pub fn warehouse(&self, ds: &Dataset) -> Result<&Arc<Warehouse>, String> {
        match self.warehouses.get(&ds.warehouse) {
            Some(Ok(wh)) => Ok(wh),
            Some(Err(e)) => Err(e.to_string()),
            None => Err(format!("warehouse `{}` is not configured", ds.warehouse)),
        }
    }

    /// The pool of the warehouse called `name`, if it is usable.
    pub fn warehouse_named(&self, name: &str) -> Option<Arc<Warehouse>> {
        self.warehouses.get(name)?.as_ref().ok().cloned()
    }

    /// Statements sent to every warehouse so far.
    pub fn statement_count(&self) -> u64 {
        self.warehouses
            .values()
            .filter_map(|w| w.as_ref().ok())
            .map(|w| w.statement_count())
            .sum()
    }

    /// The scheduled time a run of `scope` is recorded under when it is not
    /// driven by the clock: a partition's own end, so that checking the same
    /// partition again (a backfill) overwrites instead of adding a row.
    pub fn scheduled_time(&self, scope: &Scope, now: DateTime<Utc>) -> DateTime<Utc> {
        match scope {
            Scope::Partition(p) => super::local_to_utc(p.end(), self.tz),
            Scope::Whole | Scope::Scheduled(_) => now.with_nanosecond(0).unwrap_or(now),
        }
    }

    /// Runs `ds` in `scope`, evaluates and (if `record`) records the results.
    pub async fn run(
        &self,
        ds: &Dataset,
        scope: &Scope,
        scheduled_at: DateTime<Utc>,
        record: bool,
    ) -> Result<Vec<CheckResult>, RunError> {
        let pending = self.observe(ds, scope).await;
        self.finish(ds, pending, scheduled_at, Utc::now(), record)
            .await
    }

    /// The first half of a run: the warehouse statements.
    pub async fn observe(&self, ds: &Dataset, scope: &Scope) -> PendingRun {
        PendingRun(match self.warehouse(ds) {
            Ok(wh) => Pending::Observed(observe(ds, wh, scope, self.tz).await),
            Err(message) => Pending::Unavailable(all_error(ds, scope, &message)),
        })
    }

    /// Like [`observe`](Self::observe), on another relation than the
    /// dataset's table: the gate checks the staged data (`gate.table`) with
    /// the dataset's checks.
    pub async fn observe_table(&self, ds: &Dataset, table: &TableRef, scope: &Scope) -> PendingRun {
        PendingRun(match self.warehouse(ds) {
            Ok(wh) => Pending::Observed(observe_table(ds, table, wh, scope, self.tz).await),
            Err(message) => Pending::Unavailable(all_error(ds, scope, &message)),
        })
    }

    /// The second half of a run: baselines, evaluation, recording.
    pub async fn finish(
        &self,
        ds: &Dataset,
        pending: PendingRun,
        scheduled_at: DateTime<Utc>,
        now: DateTime<Utc>,
        record: bool,
    ) -> Result<Vec<CheckResult>, RunError> {
        let observations = match pending.0 {
            Pending::Observed(o) => o,
            Pending::Unavailable(results) => {
                self.record(&results, &HashMap::new(), scheduled_at, record)
                    .await?;
                return Ok(results);
            }
        };
        let ctx = EvalContext { now, tz: self.tz };
        let (baselines, baseline_errors) = self.baselines(ds, &observations, scheduled_at).await;
        let mut results = evaluate_all(ds, &observations, &baselines, &ctx);
        for r in &mut results {
            if let Some(message) = baseline_errors.get(&r.check) {
                r.outcome = Outcome::Error;
                r.observed = None;
                r.message = message.clone();
            }
        }
        let row_counts = row_counts(ds, &observations);
        self.record(&results, &row_counts, scheduled_at, record)
            .await?;
        // Only once the results are kept: a run that could not be recorded
        // must leave nothing behind, not even a baseline its results announce.
        if record {
            self.store_first_baselines(ds, &observations, &baselines, scheduled_at)
                .await;
        }
        Ok(results)
    }

    async fn record(
        &self,
        results: &[CheckResult],
        row_counts: &HashMap<String, u64>,
        scheduled_at: DateTime<Utc>,
        record: bool,
    ) -> Result<(), RunError> {
        let Some(registry) = self.registry.as_ref().filter(|_| record) else {
            return Ok(());
        };
        let records: Vec<RunRecord> = results
            .iter()
            .map(|r| {
                let mut rec = RunRecord::new(r.clone(), scheduled_at);
                rec.row_count = row_counts.get(&r.check).copied();
                rec
            })
            .collect();
        match registry.record_run(&records).await {
            Ok(()) => Ok(()),
            Err(source) => Err(RunError::Record {
                results: results.to_vec(),
                records,
                source,
            }),
        }
    }

    /// The stored values the checks compare against (each kind fetches its
    /// own). A lookup that fails makes its check `error`.
    async fn baselines(
        &self,
        ds: &Dataset,
        observations: &DatasetObservations,
        scheduled_at: DateTime<Utc>,
    ) -> (Baselines, HashMap<String, String>) {
        let mut baselines = Baselines::default();
        let mut errors = HashMap::new();
        let Some(registry) = &self.registry else {
            return (baselines, errors);
        };
        if let Err(message) = self
            .anomaly_histories(registry, ds, observations, scheduled_at, &mut baselines)
            .await
        {
            for (spec, _) in observations.iter(ds) {
                if matches!(spec.kind, CheckKind::Anomaly(_)) {
                    errors.insert(spec.id.to_string(), message.clone());
                }
            }
        }
        for (spec, obs) in observations.iter(ds) {
            if obs.value.is_err() {
                continue;
            }
            let cx = baseline_cx(registry, ds, spec, obs, scheduled_at);
            let Some(fetch) = spec.kind.get().fetch_baseline(cx, &mut baselines) else {
                continue;
            };
            if let Err(message) = fetch.await {
                errors.insert(spec.id.to_string(), message);
            }
        }
        (baselines, errors)
    }

    /// The history of every `anomaly` check observed, read in one registry
    /// statement for the dataset: one point per partition (its latest
    /// result) on a partitioned dataset, one per run otherwise, in local
    /// time.
    async fn anomaly_histories(
        &self,
        registry: &Registry,
        ds: &Dataset,
        observations: &DatasetObservations,
        scheduled_at: DateTime<Utc>,
        out: &mut Baselines,
    ) -> Result<(), String> {
        let checks: Vec<(&CheckSpec, &Observation, &Anomaly)> = observations
            .iter(ds)
            .filter(|(_, obs)| obs.value.is_ok())
            .filter_map(|(spec, obs)| match &spec.kind {
                CheckKind::Anomaly(a) => Some((spec, obs, a)),
                _ => None,
            })
            .collect();
        if checks.is_empty() {
            return Ok(());
        }
        let local_now = scheduled_at.with_timezone(&self.tz).naive_local();
        let at_of = |obs: &Observation| obs.partition.map_or(local_now, |p| p.start());
        // The earliest point any check may learn from, a day early for
        // partitions recorded after their end.
        let since = checks
            .iter()
            .map(|(_, obs, a)| {
                let from = at_of(obs) - chrono::Duration::from_std(a.training).unwrap_or_default();
                super::local_to_utc(from, self.tz) - chrono::Duration::days(1)
            })
            .min()
            .unwrap_or(scheduled_at);
        let rows = registry
            .anomaly_history(&ds.name, since)
            .await
            .map_err(|e| format!("history unavailable: {e}"))?;
        for (spec, obs, _) in checks {
            let id = spec.id.as_str();
            let mut by_time: BTreeMap<chrono::NaiveDateTime, Point> = BTreeMap::new();
            for r in rows.iter().filter(|r| r.check_id == id) {
                let Some(value) = r.observed else { continue };
                let at = match (&r.partition, ds.partition.as_ref()) {
                    (Some(p), Some(spec)) => match PartitionKey::parse(p, spec.granularity) {
                        Ok(key) => key.start(),
                        Err(_) => continue,
                    },
                    (None, _) => r.scheduled_at.with_timezone(&self.tz).naive_local(),
                    (Some(_), None) => continue,
                };
                let outcome = match r.outcome {
                    Outcome::Pass => PointOutcome::Normal,
                    Outcome::Warn | Outcome::Fail => PointOutcome::Anomalous,
                    Outcome::Error => PointOutcome::Failed,
                };
                // Rows come oldest first: a later run of a partition wins.
                by_time.insert(at, Point { at, value, outcome });
            }
            let cadence = match (obs.partition, ds.partition.as_ref()) {
                (Some(_), Some(p)) => Some(match p.granularity {
                    Granularity::Day => Cadence::Daily,
                    Granularity::Hour => Cadence::Hourly,
                }),
                _ => None,
            };
            out.anomaly.insert(
                spec.id.clone(),
                AnomalyHistory {
                    points: by_time.into_values().collect(),
                    at: Some(at_of(obs)),
                    cadence,
                },
            );
        }
        Ok(())
    }

    /// Stores the first baseline a check of the dataset keeps when there is
    /// none yet (the first schema seen, for a baseline `schema` check).
    async fn store_first_baselines(
        &self,
        ds: &Dataset,
        observations: &DatasetObservations,
        baselines: &Baselines,
        scheduled_at: DateTime<Utc>,
    ) {
        let Some(registry) = &self.registry else {
            return;
        };
        for (spec, obs) in observations.iter(ds) {
            let Ok(observed) = &obs.value else {
                continue;
            };
            let cx = baseline_cx(registry, ds, spec, obs, scheduled_at);
            if let Some(store) = spec.kind.get().store_baseline(cx, observed, baselines) {
                store.await;
                return;
            }
        }
    }
}

/// Where the kind of `spec` finds and keeps its baseline.
fn baseline_cx<'a>(
    registry: &'a Registry,
    ds: &'a Dataset,
    spec: &'a CheckSpec,
    obs: &'a Observation,
    scheduled_at: DateTime<Utc>,
) -> BaselineCx<'a> {
    BaselineCx {
        registry,
        dataset: &ds.name,
        id: &spec.id,
        partition: obs.partition.as_ref(),
        scheduled_at,
    }
}

/// Every check of `ds` in `scope` as an `error` with `message`.
fn all_error(ds: &Dataset, scope: &Scope, message: &str) -> Vec<CheckResult> {
    ds.checks
        .iter()
        .filter_map(|spec| {
            let target = scope.target(spec)?;
            Some(CheckResult {
                check: spec.id.to_string(),
                dataset: ds.name.to_string(),
                kind: spec.kind.name().to_owned(),
                column: spec.kind.column().map(ToString::to_string),
                partition: target.map(|p| p.to_string()),
                outcome: Outcome::Error,
                observed: None,
                threshold: BTreeMap::new(),
                message: message.to_owned(),
                duration_ms: 0,
                expected: None,
                score: None,
            })
        })
        .collect()
}

/// The row count each check keeps with its result (`row_count_change`'s):
/// the baseline later runs compare against.
fn row_counts(ds: &Dataset, observations: &DatasetObservations) -> HashMap<String, u64> {
    observations
        .iter(ds)
        .filter_map(|(spec, obs)| {
            let rows = spec.kind.get().recorded_rows(obs.value.as_ref().ok()?)?;
            Some((spec.id.to_string(), rows))
        })
        .collect()
}

pub fn stored_column(c: &CatalogColumn) -> StoredColumn {
    StoredColumn {
        name: c.name.clone(),
        data_type: c.data_type.clone(),
    }
}
