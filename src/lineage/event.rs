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
