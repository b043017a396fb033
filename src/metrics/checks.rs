//! The per-check and per-dataset series, kept as warden's own state and
//! turned into metric families only when `/metrics` is scraped.
//!
//! With 10,000 checks a labelled gauge per series would hold about 46,000
//! children of the `prometheus` crate, each with its label pairs and
//! descriptor, for values that only a scrape reads. Here a check is one
//! small [`CheckState`] and a dataset one [`DatasetState`]; a series exists
//! exactly while the state it is read from does, so removing a check or a
//! dataset from the state removes its series.
//!
//! [`CHECK_GAUGES`] lists the gauges with one series per check, labelled
//! `{dataset, check}`: a new one is a field of [`CheckState`], set where
//! results are recorded, and a row there.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

use crate::check::Outcome;

/// What is exported of one check.
#[derive(Debug, Clone)]
pub(super) struct CheckState {
    /// The outcome of its last run: `warden_check_outcome` is 1 for it.
    pub outcome: Outcome,
    /// `warden_check_observed_value`: NaN when the run had no value (an error).
    pub observed: f64,
    /// `warden_check_last_run_timestamp_seconds`.
    pub last_run: f64,
    /// `warden_check_runs_total` per outcome, in [`Outcome::ALL`] order,
    /// since this agent started; an outcome never seen has no series.
    pub runs: [u64; 4],
}

/// What is exported of one dataset: its checks and the gauges its kinds feed.
#[derive(Debug, Default)]
pub(super) struct DatasetState {
    pub checks: BTreeMap<String, CheckState>,
    /// `warden_dataset_row_count`.
    pub row_count: Option<f64>,
    /// `warden_dataset_freshness_lag_seconds`.
    pub freshness_lag: Option<f64>,
    /// `warden_column_null_ratio`, by column.
    pub null_ratio: BTreeMap<String, f64>,
}

/// A gauge with one series per check, labelled `{dataset, check}`.
struct CheckGauge {
    name: &'static str,
    help: &'static str,
    /// Its value for a check; `None` leaves the check out of the family.
    value: fn(&CheckState) -> Option<f64>,
}

/// Every per-check gauge: the one place to add one.
const CHECK_GAUGES: &[CheckGauge] = &[
    CheckGauge {
        name: "warden_check_observed_value",
        help: "The value the check observed on its last run.",
        value: |c| Some(c.observed),
    },
    CheckGauge {
        name: "warden_check_last_run_timestamp_seconds",
        help: "Unix time of the check's last completed run.",
        value: |c| Some(c.last_run),
    },
];

const OUTCOME: (&str, &str) = (
    "warden_check_outcome",
    "The check's current outcome (one series per check, at 1).",
);
const RUNS: (&str, &str) = ("warden_check_runs_total", "Check runs by outcome.");
pub(super) const ROW_COUNT: (&str, &str) = (
    "warden_dataset_row_count",
    "Rows the dataset's row_count check last counted.",
);
const FRESHNESS_LAG: (&str, &str) = (
    "warden_dataset_freshness_lag_seconds",
    "Seconds since the newest row, from the dataset's freshness check.",
);
const NULL_RATIO: (&str, &str) = (
    "warden_column_null_ratio",
    "Share of NULLs in the column on the last run, in [0, 1].",
);

/// The collector over every dataset's state, registered once in the
/// metrics registry; its clones share the state.
#[derive(Clone)]
pub(super) struct CheckCollector(Arc<Inner>);

struct Inner {
    descs: Vec<Desc>,
    state: Mutex<BTreeMap<String, DatasetState>>,
}

fn desc((name, help): (&str, &str), labels: &[&str]) -> Desc {
    Desc::new(
        name.to_owned(),
        help.to_owned(),
        labels.iter().map(|l| (*l).to_owned()).collect(),
        std::collections::HashMap::new(),
    )
    .expect("valid metric")
}

impl CheckCollector {
    pub fn new() -> Self {
        let mut descs = vec![
            desc(OUTCOME, &["dataset", "check", "outcome"]),
            desc(RUNS, &["dataset", "check", "outcome"]),
        ];
        descs.extend(
            CHECK_GAUGES
                .iter()
                .map(|g| desc((g.name, g.help), &["dataset", "check"])),
        );
        descs.push(desc(ROW_COUNT, &["dataset"]));
        descs.push(desc(FRESHNESS_LAG, &["dataset"]));
        descs.push(desc(NULL_RATIO, &["dataset", "column"]));
        Self(Arc::new(Inner {
            descs,
            state: Mutex::new(BTreeMap::new()),
        }))
    }

    /// The state, to read or change.
    pub fn state(&self) -> MutexGuard<'_, BTreeMap<String, DatasetState>> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A label pair; the text encoder writes them in the order given, which
/// must be by name, as the `prometheus` crate's own vectors write them.
fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

fn gauge(labels: Vec<LabelPair>, value: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::from_gauge(g);
    m.set_label(labels);
    m
}

fn counter(labels: Vec<LabelPair>, value: f64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value);
    let mut m = Metric::default();
    m.set_counter(c);
    m.set_label(labels);
    m
}

fn family((name, help): (&str, &str), kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut mf = MetricFamily::default();
    mf.set_name(name.to_owned());
    mf.set_help(help.to_owned());
    mf.set_field_type(kind);
    mf.set_metric(metrics);
    mf
}

impl Collector for CheckCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let state = self.state();
        let checks: usize = state.values().map(|d| d.checks.len()).sum();
        let mut outcome = Vec::with_capacity(checks);
        let mut runs = Vec::with_capacity(checks);
        let mut per_check: Vec<Vec<Metric>> = CHECK_GAUGES
            .iter()
            .map(|_| Vec::with_capacity(checks))
            .collect();
        let mut row_count = Vec::new();
        let mut freshness_lag = Vec::new();
        let mut null_ratio = Vec::new();
        // Labels in name order: check, column, dataset, outcome.
        for (dataset, ds) in state.iter() {
            for (check, c) in &ds.checks {
                let pairs = || vec![label("check", check), label("dataset", dataset)];
                let with_outcome = |o: Outcome| {
                    let mut labels = pairs();
                    labels.push(label("outcome", o.as_str()));
                    labels
                };
                outcome.push(gauge(with_outcome(c.outcome), 1.0));
                for (o, n) in Outcome::ALL.into_iter().zip(c.runs) {
                    if n > 0 {
                        runs.push(counter(with_outcome(o), n as f64));
                    }
                }
                for (g, series) in CHECK_GAUGES.iter().zip(per_check.iter_mut()) {
                    if let Some(v) = (g.value)(c) {
                        series.push(gauge(pairs(), v));
                    }
                }
            }
            if let Some(v) = ds.row_count {
                row_count.push(gauge(vec![label("dataset", dataset)], v));
            }
            if let Some(v) = ds.freshness_lag {
                freshness_lag.push(gauge(vec![label("dataset", dataset)], v));
            }
            for (column, v) in &ds.null_ratio {
                null_ratio.push(gauge(
                    vec![label("column", column), label("dataset", dataset)],
                    *v,
                ));
            }
        }
        drop(state);
        let mut families = vec![
            family(OUTCOME, MetricType::GAUGE, outcome),
            family(RUNS, MetricType::COUNTER, runs),
        ];
        families.extend(
            CHECK_GAUGES
                .iter()
                .zip(per_check)
                .map(|(g, series)| family((g.name, g.help), MetricType::GAUGE, series)),
        );
        families.push(family(ROW_COUNT, MetricType::GAUGE, row_count));
        families.push(family(FRESHNESS_LAG, MetricType::GAUGE, freshness_lag));
        families.push(family(NULL_RATIO, MetricType::GAUGE, null_ratio));
        families
    }
}
