//! Check history: one row per (check, partition, scheduled time), so reruns
//! and backfills overwrite instead of piling up duplicates.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::sql::{Arg, query};
use super::{Registry, RegistryError, now, stored};
use crate::domain::{CheckId, CheckResult, DatasetName, Expected, Outcome};

/// One result of a run, with the scheduled time that (with the check and
/// partition) identifies the run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub result: CheckResult,
    /// The time the run was scheduled for (not when it ran), so a rerun of
    /// the same slot replaces the earlier result.
    pub scheduled_at: DateTime<Utc>,
    /// The row count a `row_count_change` result was computed from: the
    /// baseline later runs compare with.
    pub row_count: Option<u64>,
}

impl RunRecord {
    pub fn new(result: CheckResult, scheduled_at: DateTime<Utc>) -> Self {
        Self {
            result,
            scheduled_at,
            row_count: None,
        }
    }
}

/// A result as read back from the registry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredResult {
    #[serde(flatten)]
    pub result: CheckResult,
    pub scheduled_at: DateTime<Utc>,
    /// When this version of the result was written.
    pub recorded_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ResultRow {
    check_id: String,
    dataset: String,
    kind: String,
    column_name: Option<String>,
    partition_key: String,
    scheduled_at: DateTime<Utc>,
    outcome: String,
    observed: Option<f64>,
    threshold: Json<BTreeMap<String, serde_json::Value>>,
    message: String,
    duration_ms: i64,
    recorded_at: DateTime<Utc>,
    expected_lower: Option<f64>,
    expected_center: Option<f64>,
    expected_upper: Option<f64>,
    score: Option<f64>,
}

impl ResultRow {
    fn into_stored(self) -> Result<StoredResult, RegistryError> {
        let outcome = Outcome::parse(&self.outcome).ok_or_else(|| RegistryError::Corrupt {
            what: format!("outcome `{}` of check {}", self.outcome, self.check_id),
        })?;
        Ok(StoredResult {
            result: CheckResult {
                check: self.check_id,
                dataset: self.dataset,
                kind: self.kind,
                column: self.column_name,
                partition: partition_from_db(self.partition_key),
                outcome,
                observed: self.observed,
                threshold: self.threshold.0,
                message: self.message,
                duration_ms: u64::try_from(self.duration_ms).unwrap_or(0),
                expected: match (
                    self.expected_lower,
                    self.expected_center,
                    self.expected_upper,
                ) {
                    (Some(lower), Some(center), Some(upper)) => Some(Expected {
                        lower,
                        center,
                        upper,
                    }),
                    _ => None,
                },
                score: self.score,
            },
            scheduled_at: self.scheduled_at,
            recorded_at: self.recorded_at,
        })
    }
}

/// A number both engines store as written: NaN and infinities as NULL.
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// One past value of an `anomaly` check, for its detector.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyPoint {
    pub check_id: String,
    /// The partition, `None` for the whole relation.
    pub partition: Option<String>,
    pub scheduled_at: DateTime<Utc>,
    pub outcome: Outcome,
    pub observed: Option<f64>,
}

#[derive(sqlx::FromRow)]
struct AnomalyRow {
    check_id: String,
    partition_key: String,
    scheduled_at: DateTime<Utc>,
    outcome: String,
    observed: Option<f64>,
}

fn into_stored(rows: Vec<ResultRow>) -> Result<Vec<StoredResult>, RegistryError> {
    rows.into_iter().map(ResultRow::into_stored).collect()
}

/// Whole-relation results are stored under the partition `''` so that the
/// unique key (check, partition, scheduled time) holds for them too.
fn partition_to_db(partition: Option<&str>) -> &str {
    partition.unwrap_or("")
}

fn partition_from_db(partition: String) -> Option<String> {
    (!partition.is_empty()).then_some(partition)
}

const COLUMNS: &str = "check_id, dataset, kind, column_name, partition_key, scheduled_at, outcome, \
                       observed, threshold, message, duration_ms, recorded_at, expected_lower, \
                       expected_center, expected_upper, score";

const UPSERT: &str = "INSERT INTO check_results (check_id, dataset, kind, column_name, partition_key, \
     scheduled_at, outcome, observed, threshold, message, duration_ms, recorded_at, row_count, \
     expected_lower, expected_center, expected_upper, score) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
     ON CONFLICT (check_id, partition_key, scheduled_at) DO UPDATE SET \
     dataset = excluded.dataset, kind = excluded.kind, column_name = excluded.column_name, \
     outcome = excluded.outcome, observed = excluded.observed, threshold = excluded.threshold, \
     message = excluded.message, duration_ms = excluded.duration_ms, recorded_at = excluded.recorded_at, \
     row_count = excluded.row_count, expected_lower = excluded.expected_lower, \
     expected_center = excluded.expected_center, expected_upper = excluded.expected_upper, \
     score = excluded.score";

/// The value a later run compares with: the row count where one was
/// recorded (`row_count_change`), else the observed value.
const BASELINE: &str = "CAST(COALESCE(row_count, observed) AS DOUBLE PRECISION) AS observed";

/// Values usable as a baseline: evaluated (not `error`) and present.
const USABLE: &str = "outcome <> 'error' AND COALESCE(row_count, observed) IS NOT NULL";

#[derive(sqlx::FromRow)]
struct ObservedRow {
    observed: f64,
    scheduled_at: DateTime<Utc>,
}

impl Registry {
    /// Stores every result of one run in one transaction: all or nothing. A
    /// result for a (check, partition, scheduled time) already stored is
    /// replaced.
    pub async fn record_run(&self, records: &[RunRecord]) -> Result<(), RegistryError> {
        const OP: &str = "record run";
        if records.is_empty() {
            return Ok(());
        }
        let recorded_at = now();
        let mut tx = self.begin(OP).await?;
        for record in records {
            let r = &record.result;
            // SQLite cannot store NaN (it becomes NULL); keep both engines alike.
            let observed = r.observed.filter(|v| !v.is_nan());
            query(UPSERT)
                .bind(&r.check)
                .bind(&r.dataset)
                .bind(&r.kind)
                .bind(r.column.as_deref())
                .bind(partition_to_db(r.partition.as_deref()))
                .bind(stored(record.scheduled_at))
                .bind(r.outcome.as_str())
                .bind(observed)
                .bind(Arg::json(&r.threshold))
                .bind(&r.message)
                .bind(i64::try_from(r.duration_ms).unwrap_or(i64::MAX))
                .bind(recorded_at)
                .bind(record.row_count.and_then(|n| i64::try_from(n).ok()))
                .bind(finite(r.expected.map(|e| e.lower)))
                .bind(finite(r.expected.map(|e| e.center)))
                .bind(finite(r.expected.map(|e| e.upper)))
                .bind(finite(r.score))
                .execute(&mut tx, OP)
                .await?;
        }
        tx.commit(OP).await?;
        Ok(())
    }

    /// Every result of the `anomaly` checks of a dataset scheduled at or
    /// after `since`, oldest first: the history their detector learns from,
    /// in one statement per dataset and run.
    pub async fn anomaly_history(
        &self,
        dataset: &DatasetName,
        since: DateTime<Utc>,
    ) -> Result<Vec<AnomalyPoint>, RegistryError> {
        let rows: Vec<AnomalyRow> = query(
            "SELECT check_id, partition_key, scheduled_at, outcome, observed FROM check_results \
             WHERE dataset = $1 AND kind = 'anomaly' AND scheduled_at >= $2 \
             ORDER BY check_id, scheduled_at",
        )
        .bind(dataset.as_str())
        .bind(stored(since))
        .fetch_all(self, "anomaly history")
        .await?;
        rows.into_iter()
            .map(|r| {
                let outcome = Outcome::parse(&r.outcome).ok_or_else(|| RegistryError::Corrupt {
                    what: format!("outcome `{}` of check {}", r.outcome, r.check_id),
                })?;
                Ok(AnomalyPoint {
                    check_id: r.check_id,
                    partition: partition_from_db(r.partition_key),
                    scheduled_at: r.scheduled_at,
                    outcome,
                    observed: r.observed,
                })
            })
            .collect()
    }

    /// The last `limit` results of a check over all its partitions, newest
    /// scheduled time first.
    pub async fn history(
        &self,
        check_id: &CheckId,
        limit: u32,
    ) -> Result<Vec<StoredResult>, RegistryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM check_results WHERE check_id = $1 \
             ORDER BY scheduled_at DESC, partition_key DESC LIMIT $2"
        );
        let rows: Vec<ResultRow> = query(&sql)
            .bind(check_id.as_str())
            .bind(i64::from(limit))
            .fetch_all(self, "history")
            .await?;
        into_stored(rows)
    }

    /// The latest result of each check of a dataset (by scheduled time, then
    /// by when it was written), ordered by check id.
    pub async fn latest_results(
        &self,
        dataset: &DatasetName,
    ) -> Result<Vec<StoredResult>, RegistryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM (SELECT {COLUMNS}, ROW_NUMBER() OVER (PARTITION BY check_id \
             ORDER BY scheduled_at DESC, recorded_at DESC, partition_key DESC) AS newest \
             FROM check_results WHERE dataset = $1) latest WHERE newest = 1 ORDER BY check_id"
        );
        let rows: Vec<ResultRow> = query(&sql)
            .bind(dataset.as_str())
            .fetch_all(self, "latest results")
            .await?;
        into_stored(rows)
    }

    /// The latest result of every check of every dataset, ordered by check
    /// id: one statement for the status page and the API.
    pub async fn latest_results_all(&self) -> Result<Vec<StoredResult>, RegistryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM (SELECT {COLUMNS}, ROW_NUMBER() OVER (PARTITION BY check_id \
             ORDER BY scheduled_at DESC, recorded_at DESC, partition_key DESC) AS newest \
             FROM check_results) latest WHERE newest = 1 ORDER BY check_id"
        );
        let rows: Vec<ResultRow> = query(&sql).fetch_all(self, "latest results").await?;
        into_stored(rows)
    }

    /// The last `per_check` results with an observed value of every check,
    /// by check id, oldest first: the sparklines of the status page, in one
    /// statement.
    pub async fn recent_results_all(
        &self,
        per_check: u32,
    ) -> Result<Vec<StoredResult>, RegistryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM (SELECT {COLUMNS}, ROW_NUMBER() OVER (PARTITION BY check_id \
             ORDER BY scheduled_at DESC, partition_key DESC) AS newest \
             FROM check_results WHERE observed IS NOT NULL) recent WHERE newest <= $1 \
             ORDER BY check_id, scheduled_at, partition_key"
        );
        let rows: Vec<ResultRow> = query(&sql)
            .bind(i64::from(per_check))
            .fetch_all(self, "recent results")
            .await?;
        into_stored(rows)
    }

    /// The results of a check scheduled at or after `since`, newest first,
    /// at most `limit`: a check page's chart, timeline and table.
    pub async fn results_since(
        &self,
        check_id: &CheckId,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StoredResult>, RegistryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM check_results WHERE check_id = $1 AND scheduled_at >= $2 \
             ORDER BY scheduled_at DESC, partition_key DESC LIMIT $3"
        );
        let rows: Vec<ResultRow> = query(&sql)
            .bind(check_id.as_str())
            .bind(stored(since))
            .bind(i64::from(limit))
            .fetch_all(self, "results since")
            .await?;
        into_stored(rows)
    }

    /// Every stored run of a check on one partition (`None`: the whole
    /// relation), newest scheduled time first.
    pub async fn results_for(
        &self,
        check_id: &CheckId,
        partition: Option<&str>,
    ) -> Result<Vec<StoredResult>, RegistryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM check_results WHERE check_id = $1 AND partition_key = $2 \
             ORDER BY scheduled_at DESC"
        );
        let rows: Vec<ResultRow> = query(&sql)
            .bind(check_id.as_str())
            .bind(partition_to_db(partition))
            .fetch_all(self, "results")
            .await?;
        into_stored(rows)
    }

    /// The latest usable observed value (not an error, not null) of a check on
    /// a partition scheduled strictly before `before`, with its scheduled
    /// time: the baseline of `vs: previous`.
    pub async fn prior_observed(
        &self,
        check_id: &CheckId,
        partition: Option<&str>,
        before: DateTime<Utc>,
    ) -> Result<Option<(f64, DateTime<Utc>)>, RegistryError> {
        let sql = format!(
            "SELECT {BASELINE}, scheduled_at FROM check_results \
             WHERE check_id = $1 AND partition_key = $2 AND scheduled_at < $3 AND {USABLE} \
             ORDER BY scheduled_at DESC LIMIT 1"
        );
        let row: Option<ObservedRow> = query(&sql)
            .bind(check_id.as_str())
            .bind(partition_to_db(partition))
            .bind(stored(before))
            .fetch_optional(self, "prior observed value")
            .await?;
        Ok(row.map(|r| (r.observed, r.scheduled_at)))
    }

    /// The latest usable observed value of a whole-relation check scheduled
    /// at or before `at`: the baseline of `vs: 1d` / `vs: 7d` on an
    /// unpartitioned dataset (`at` = scheduled time minus 1 or 7 days).
    pub async fn observed_at_or_before(
        &self,
        check_id: &CheckId,
        at: DateTime<Utc>,
    ) -> Result<Option<(f64, DateTime<Utc>)>, RegistryError> {
        let sql = format!(
            "SELECT {BASELINE}, scheduled_at FROM check_results \
             WHERE check_id = $1 AND partition_key = '' AND scheduled_at <= $2 AND {USABLE} \
             ORDER BY scheduled_at DESC LIMIT 1"
        );
        let row: Option<ObservedRow> = query(&sql)
            .bind(check_id.as_str())
            .bind(stored(at))
            .fetch_optional(self, "observed value at a time")
            .await?;
        Ok(row.map(|r| (r.observed, r.scheduled_at)))
    }

    /// The latest usable observed value of a check on one partition: the
    /// baseline of a partitioned `vs: 1d` / `vs: 7d` (P against P-1d, P-7d).
    pub async fn observed_for_partition(
        &self,
        check_id: &CheckId,
        partition: &str,
    ) -> Result<Option<(f64, DateTime<Utc>)>, RegistryError> {
        let sql = format!(
            "SELECT {BASELINE}, scheduled_at FROM check_results \
             WHERE check_id = $1 AND partition_key = $2 AND {USABLE} \
             ORDER BY scheduled_at DESC LIMIT 1"
        );
        let row: Option<ObservedRow> = query(&sql)
            .bind(check_id.as_str())
            .bind(partition)
            .fetch_optional(self, "observed value of a partition")
            .await?;
        Ok(row.map(|r| (r.observed, r.scheduled_at)))
    }
}
