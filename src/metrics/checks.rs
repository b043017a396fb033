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
    /// `warden_check_expected_lower` and `_upper`: the band an `anomaly`
    /// check judged its last value against; no series without one.
    pub expected: Option<(f64, f64)>,
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
    CheckGauge {
        name: "warden_check_expected_lower",
        help: "Lower end of the range an anomaly check expected on its last run.",
        value: |c| c.expected.map(|(lower, _)| lower),
    },
    CheckGauge {
        name: "warden_check_expected_upper",
        help: "Upper end of the range an anomaly check expected on its last run.",
        value: |c| c.expected.map(|(_, upper)| upper),
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

/// Every dataset's state, shared by the collectors of its families.
#[derive(Clone, Default)]
pub(super) struct CheckSeries(Arc<Mutex<BTreeMap<String, DatasetState>>>);

impl CheckSeries {
    /// The state, to read or change.
    pub fn state(&self) -> MutexGuard<'_, BTreeMap<String, DatasetState>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A collector per family the state feeds, to register.
    pub fn collectors(&self) -> Vec<CheckFamily> {
        let mut families = vec![
            (
                Family::Outcome,
                desc(OUTCOME, &["dataset", "check", "outcome"]),
            ),
            (Family::Runs, desc(RUNS, &["dataset", "check", "outcome"])),
        ];
        families.extend(CHECK_GAUGES.iter().enumerate().map(|(i, g)| {
            (
                Family::CheckGauge(i),
                desc((g.name, g.help), &["dataset", "check"]),
            )
        }));
        families.push((Family::RowCount, desc(ROW_COUNT, &["dataset"])));
        families.push((Family::FreshnessLag, desc(FRESHNESS_LAG, &["dataset"])));
        families.push((Family::NullRatio, desc(NULL_RATIO, &["dataset", "column"])));
        families
            .into_iter()
            .map(|(family, desc)| CheckFamily {
                family,
                desc,
                series: self.clone(),
            })
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Family {
    Outcome,
    Runs,
    /// An entry of [`CHECK_GAUGES`].
    CheckGauge(usize),
    RowCount,
    FreshnessLag,
    NullRatio,
}

/// The collector of one family, read from the state at scrape time: one
/// family at a time is built, written out and dropped.
#[derive(Clone)]
pub(super) struct CheckFamily {
    family: Family,
    desc: Desc,
    series: CheckSeries,
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

/// Orders a family's series by their label values, as the registry's
/// `gather` does.
pub(super) fn sort_series(metrics: &mut [Metric]) {
    metrics.sort_by(|a, b| {
        a.get_label()
            .iter()
            .map(LabelPair::value)
            .cmp(b.get_label().iter().map(LabelPair::value))
    });
}

impl Collector for CheckFamily {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let state = self.series.state();
        let checks = || {
            state.iter().flat_map(|(dataset, ds)| {
                ds.checks.iter().map(move |(check, c)| (dataset, check, c))
            })
        };
        // Labels in name order: check, column, dataset, outcome.
        let pairs =
            |dataset: &str, check: &str| vec![label("check", check), label("dataset", dataset)];
        let with_outcome = |dataset: &str, check: &str, o: Outcome| {
            let mut labels = pairs(dataset, check);
            labels.push(label("outcome", o.as_str()));
            labels
        };
        let per_dataset = |value: fn(&DatasetState) -> Option<f64>| -> Vec<Metric> {
            state
                .iter()
                .filter_map(|(dataset, ds)| {
                    Some(gauge(vec![label("dataset", dataset)], value(ds)?))
                })
                .collect()
        };
        let (kind, mut metrics) = match self.family {
            Family::Outcome => (
                MetricType::GAUGE,
                checks()
                    .map(|(dataset, check, c)| gauge(with_outcome(dataset, check, c.outcome), 1.0))
                    .collect::<Vec<_>>(),
            ),
            Family::Runs => (
                MetricType::COUNTER,
                checks()
                    .flat_map(|(dataset, check, c)| {
                        Outcome::ALL
                            .into_iter()
                            .zip(c.runs)
                            .filter(|(_, n)| *n > 0)
                            .map(move |(o, n)| counter(with_outcome(dataset, check, o), n as f64))
                    })
                    .collect(),
            ),
            Family::CheckGauge(i) => {
                let value = CHECK_GAUGES[i].value;
                (
                    MetricType::GAUGE,
                    checks()
                        .filter_map(|(dataset, check, c)| {
                            Some(gauge(pairs(dataset, check), value(c)?))
                        })
                        .collect(),
                )
            }
            Family::RowCount => (MetricType::GAUGE, per_dataset(|ds| ds.row_count)),
            Family::FreshnessLag => (MetricType::GAUGE, per_dataset(|ds| ds.freshness_lag)),
            Family::NullRatio => (
                MetricType::GAUGE,
                state
                    .iter()
                    .flat_map(|(dataset, ds)| {
                        ds.null_ratio.iter().map(move |(column, v)| {
                            gauge(vec![label("column", column), label("dataset", dataset)], *v)
                        })
                    })
                    .collect(),
            ),
        };
        drop(state);
        sort_series(&mut metrics);
        let mut mf = MetricFamily::default();
        mf.set_name(self.desc.fq_name.clone());
        mf.set_help(self.desc.help.clone());
        mf.set_field_type(kind);
        mf.set_metric(metrics);
        vec![mf]
    }
}
