//! The OpenLineage `RunEvent`s warden sends: a START and then a COMPLETE or
//! FAIL per dataset run (job `warden.<dataset>`) and per gate decision (job
//! `warden.gate.<dataset>`). The input is the table checked, with the
//! `dataQualityAssertions` facet (one assertion per check) and, where
//! warden observed them, the `dataQualityMetrics` facet (row count, NULLs
//! per column).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::naming::DatasetId;
use crate::check::Dataset;
use crate::domain::{CheckResult, Outcome};

/// Who wrote the events.
pub const PRODUCER: &str = concat!("urn:warden:", env!("CARGO_PKG_VERSION"));
/// The version of the specification the events follow.
pub const RUN_EVENT_SCHEMA_URL: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
pub const ASSERTIONS_SCHEMA_URL: &str = "https://openlineage.io/spec/facets/1-0-1/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet";
pub const METRICS_SCHEMA_URL: &str = "https://openlineage.io/spec/facets/1-0-3/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Complete,
    Fail,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "COMPLETE",
            Self::Fail => "FAIL",
        }
    }

    /// A dataset run fails when a check failed or could not run; warnings
    /// complete it (their assertions say `success: false`).
    pub fn of_run(results: &[CheckResult]) -> Self {
        if results
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Fail | Outcome::Error))
        {
            Self::Fail
        } else {
            Self::Complete
        }
    }
}

/// One run to describe.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    pub run_id: Uuid,
    /// The job's namespace (`agent.openlineage.namespace`).
    pub namespace: &'a str,
    /// `warden.<dataset>` or `warden.gate.<dataset>`.
    pub job: String,
    pub input: DatasetId,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub ending: Ending,
    pub results: &'a [CheckResult],
    /// The dataset as configured, when it still is: which checks carry a
    /// `where` filter (their counts do not describe the whole input).
    pub dataset: Option<&'a Dataset>,
}

/// The job of a dataset's runs.
pub fn run_job(dataset: &str) -> String {
    format!("warden.{dataset}")
}

/// The job of a dataset's gates.
pub fn gate_job(dataset: &str) -> String {
    format!("warden.gate.{dataset}")
}

impl Run<'_> {
    /// The START event, then the COMPLETE or FAIL event with the facets.
    pub fn events(&self) -> [Value; 2] {
        let start = self.event(
            "START",
            self.started_at,
            json!({ "namespace": self.input.namespace, "name": self.input.name }),
        );
        let mut input = Map::new();
        input.insert("namespace".into(), self.input.namespace.clone().into());
        input.insert("name".into(), self.input.name.clone().into());
        let mut facets = Map::new();
        facets.insert("dataQualityAssertions".into(), self.assertions());
        if let Some(metrics) = self.metrics() {
            facets.insert("dataQualityMetrics".into(), metrics);
        }
        input.insert("inputFacets".into(), Value::Object(facets));
        let end = self.event(self.ending.as_str(), self.ended_at, Value::Object(input));
        [start, end]
    }

    fn event(&self, kind: &str, at: DateTime<Utc>, input: Value) -> Value {
        json!({
            "eventType": kind,
            "eventTime": at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "run": { "runId": self.run_id.to_string() },
            "job": { "namespace": self.namespace, "name": self.job },
            "inputs": [input],
            "outputs": [],
            "producer": PRODUCER,
            "schemaURL": RUN_EVENT_SCHEMA_URL,
        })
    }

    /// One assertion per check: its name, whether it held, its column.
    fn assertions(&self) -> Value {
        let assertions: Vec<Value> = self
            .results
            .iter()
            .map(|r| {
                let mut a = Map::new();
                a.insert("assertion".into(), check_name(r).into());
                a.insert("success".into(), (r.outcome == Outcome::Pass).into());
                if let Some(column) = &r.column {
                    a.insert("column".into(), column.clone().into());
                }
                Value::Object(a)
            })
            .collect();
        json!({
            "_producer": PRODUCER,
            "_schemaURL": ASSERTIONS_SCHEMA_URL,
            "assertions": assertions,
        })
    }

    /// The row count a `row_count` check observed and the NULLs per column
    /// its `null_rate` checks observed, on the same rows (no `where`);
    /// `None` when warden observed neither.
    fn metrics(&self) -> Option<Value> {
        let filtered: HashMap<&str, bool> = self
            .dataset
            .map(|ds| {
                ds.checks
                    .iter()
                    .map(|c| (c.id.as_str(), c.filter.is_some()))
                    .collect()
            })
            .unwrap_or_default();
        // A check no longer configured cannot say it had no filter.
        let whole = |r: &CheckResult| filtered.get(r.check.as_str()) == Some(&false);
        let rows = self
            .results
            .iter()
            .filter(|r| r.kind == "row_count" && whole(r))
            .find_map(|r| r.observed)
            .filter(|n| *n >= 0.0 && n.fract() == 0.0)
            .map(|n| n as u64);
        let mut columns: BTreeMap<&str, Value> = BTreeMap::new();
        if let Some(rows) = rows {
            for r in self
                .results
                .iter()
                .filter(|r| r.kind == "null_rate" && whole(r))
            {
                if let (Some(column), Some(rate)) = (&r.column, r.observed) {
                    let nulls = (rate * rows as f64).round() as u64;
                    columns.insert(column, json!({ "nullCount": nulls }));
                }
            }
        }
        let rows = rows?;
        Some(json!({
            "_producer": PRODUCER,
            "_schemaURL": METRICS_SCHEMA_URL,
            "rowCount": rows,
            "columnMetrics": columns,
        }))
    }
}

/// The check's name without its dataset.
fn check_name(r: &CheckResult) -> &str {
    r.check
        .strip_prefix(r.dataset.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(&r.check)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::check::kind::{CheckKind, NullRate, RowCount};
    use crate::check::spec::{CheckSpec, Severity};
    use crate::domain::{CheckId, DatasetName, Identifier, Ratio, TableRef};
    use crate::source::SourcePos;

    fn dataset(filters: &[(&str, Option<&str>)]) -> Dataset {
        let name = DatasetName::parse("orders").unwrap();
        let pos = SourcePos {
            file: PathBuf::from("checks/orders.yaml"),
            line: 1,
            column: 1,
        };
        let kind = |n: &str| {
            if n == "row_count" {
                CheckKind::RowCount(RowCount {
                    min: Some(1),
                    max: None,
                })
            } else {
                CheckKind::NullRate(NullRate {
                    column: Identifier::parse("customer_id").unwrap(),
                    max: Ratio::from_f64(0.5, true).unwrap(),
                })
            }
        };
        Dataset {
            table: TableRef::parse("shop.orders").unwrap(),
            warehouse: "main".into(),
            tier: 1,
            owner: None,
            runbook: None,
            schedule: None,
            partition: None,
            gate_table: TableRef::parse("shop.orders").unwrap(),
            gate_allow_empty: false,
            discovered: None,
            checks: filters
                .iter()
                .map(|(n, filter)| CheckSpec {
                    id: CheckId::new(&name, n).unwrap(),
                    name: (*n).into(),
                    kind: kind(n),
                    severity: Severity::Fail,
                    blocking: true,
                    filter: filter.map(str::to_owned),
                    pos: pos.clone(),
                })
                .collect(),
            name,
            pos,
        }
    }

    fn result(check: &str, kind: &str, outcome: Outcome, observed: f64) -> CheckResult {
        CheckResult {
            check: format!("orders.{check}"),
            dataset: "orders".into(),
            kind: kind.into(),
            column: (kind == "null_rate").then(|| "customer_id".to_owned()),
            partition: None,
            outcome,
            observed: Some(observed),
            threshold: BTreeMap::new(),
            message: String::new(),
            duration_ms: 1,
            expected: None,
            score: None,
        }
    }

    fn events(ds: &Dataset, results: &[CheckResult]) -> [Value; 2] {
        let at: DateTime<Utc> = "2026-11-30T07:00:00Z".parse().unwrap();
        Run {
            run_id: Uuid::nil(),
            namespace: "warden",
            job: run_job("orders"),
            input: DatasetId {
                namespace: "postgres://db:5432".into(),
                name: "shop.shop.orders".into(),
            },
            started_at: at,
            ended_at: at + chrono::Duration::seconds(2),
            ending: Ending::of_run(results),
            results,
            dataset: Some(ds),
        }
        .events()
    }

    #[test]
    fn a_warning_completes_the_run_and_a_failure_or_an_error_fails_it() {
        let ok = [result("row_count", "row_count", Outcome::Pass, 3.0)];
        let warned = [result("row_count", "row_count", Outcome::Warn, 0.0)];
        let failed = [result("row_count", "row_count", Outcome::Fail, 0.0)];
        let errored = [result("row_count", "row_count", Outcome::Error, 0.0)];
        assert_eq!(Ending::of_run(&ok), Ending::Complete);
        assert_eq!(Ending::of_run(&warned), Ending::Complete);
        assert_eq!(Ending::of_run(&failed), Ending::Fail);
        assert_eq!(Ending::of_run(&errored), Ending::Fail);
        let ds = dataset(&[("row_count", None)]);
        let [start, end] = events(&ds, &warned);
        assert_eq!(start["eventType"], "START");
        assert_eq!(start["eventTime"], "2026-11-30T07:00:00.000Z");
        assert!(start["inputs"][0].get("inputFacets").is_none());
        assert_eq!(end["eventType"], "COMPLETE");
        assert_eq!(end["eventTime"], "2026-11-30T07:00:02.000Z");
        assert_eq!(
            end["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"],
            json!([{"assertion": "row_count", "success": false}])
        );
    }

    #[test]
    fn null_counts_come_from_the_rows_of_the_same_scan_only() {
        let results = [
            result("row_count", "row_count", Outcome::Pass, 40.0),
            result("null_rate_customer_id", "null_rate", Outcome::Pass, 0.25),
        ];
        let whole = dataset(&[("row_count", None), ("null_rate_customer_id", None)]);
        let [_, end] = events(&whole, &results);
        let metrics = &end["inputs"][0]["inputFacets"]["dataQualityMetrics"];
        assert_eq!(metrics["rowCount"], 40);
        assert_eq!(
            metrics["columnMetrics"],
            json!({"customer_id": {"nullCount": 10}})
        );

        // A `where` on the NULL check: its rate is of other rows.
        let filtered = dataset(&[
            ("row_count", None),
            ("null_rate_customer_id", Some("status = 'paid'")),
        ]);
        let [_, end] = events(&filtered, &results);
        let metrics = &end["inputs"][0]["inputFacets"]["dataQualityMetrics"];
        assert_eq!(metrics["rowCount"], 40);
        assert_eq!(metrics["columnMetrics"], json!({}));

        // No row count observed: no metrics facet at all.
        let [_, end] = events(&whole, &results[1..]);
        assert!(
            end["inputs"][0]["inputFacets"]
                .get("dataQualityMetrics")
                .is_none()
        );
    }

    #[test]
    fn jobs_are_named_after_the_dataset() {
        assert_eq!(run_job("orders"), "warden.orders");
        assert_eq!(gate_job("orders"), "warden.gate.orders");
    }
}
