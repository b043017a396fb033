//! The per-check and per-dataset series, kept as warden's own state and
//! written out as text only when `/metrics` is scraped.
//!
//! With 10,000 checks a labelled gauge per series would hold about 46,000
//! children of the `prometheus` crate, each with its label pairs and
//! descriptor, for values that only a scrape reads; and building the
//! crate's `MetricFamily` messages at scrape time costs several allocations
//! a series. Here a check is one small [`CheckState`] and a dataset one
//! [`DatasetState`], and a scrape writes their series straight into the
//! exposition, in the order and format the crate's text encoder uses. A
//! series exists exactly while the state it is read from does, so removing
//! a check or a dataset from the state removes its series.
//!
//! [`CHECK_GAUGES`] lists the gauges with one series per check, labelled
//! `{dataset, check}`: a new one is a field of [`CheckState`], set where
//! results are recorded, and a row there.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use std::fmt::Write as _;

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

/// Every dataset's state, shared by the writers of its families.
#[derive(Clone, Default)]
pub(super) struct CheckSeries(Arc<Mutex<BTreeMap<String, DatasetState>>>);

impl CheckSeries {
    /// The state, to read or change.
    pub fn state(&self) -> MutexGuard<'_, BTreeMap<String, DatasetState>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every family the state feeds, to write at scrape time.
    pub fn families(&self) -> Vec<CheckFamily> {
        let mut families = vec![
            (Family::Outcome, OUTCOME, "gauge"),
            (Family::Runs, RUNS, "counter"),
        ];
        families.extend(
            CHECK_GAUGES
                .iter()
                .enumerate()
                .map(|(i, g)| (Family::CheckGauge(i), (g.name, g.help), "gauge")),
        );
        families.push((Family::RowCount, ROW_COUNT, "untyped"));
        families.push((Family::FreshnessLag, FRESHNESS_LAG, "gauge"));
        families.push((Family::NullRatio, NULL_RATIO, "gauge"));
        families
            .into_iter()
            .map(|(family, (name, help), kind)| CheckFamily {
                family,
                name,
                help,
                kind,
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

/// One family, read from the state at scrape time and written as text.
#[derive(Clone)]
pub(super) struct CheckFamily {
    family: Family,
    name: &'static str,
    help: &'static str,
    /// Its `# TYPE`. `warden_dataset_row_count` is exposed untyped: DESIGN
    /// names it so, a `_count` suffix is reserved for histograms and
    /// summaries, and `promtool check metrics` flags it on a gauge; PromQL
    /// treats it the same.
    kind: &'static str,
    series: CheckSeries,
}

/// One series: its label values, in the order of its label names (which
/// are sorted), and its value.
type Series<'a> = (Vec<&'a str>, f64);

impl CheckFamily {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Appends the family to `out` as the Prometheus text format, as the
    /// `prometheus` crate's encoder writes it: `# HELP`, `# TYPE`, then the
    /// series ordered by their label values. Nothing when it has none.
    pub fn write(&self, out: &mut String) {
        let state = self.series.state();
        let checks = || {
            state.iter().flat_map(|(dataset, ds)| {
                ds.checks
                    .iter()
                    .map(move |(check, c)| (dataset.as_str(), check.as_str(), c))
            })
        };
        let per_dataset = |value: fn(&DatasetState) -> Option<f64>| -> Vec<Series<'_>> {
            state
                .iter()
                .filter_map(|(dataset, ds)| Some((vec![dataset.as_str()], value(ds)?)))
                .collect()
        };
        // Label names in order: check, column, dataset, outcome.
        let (labels, mut series): (&[&str], Vec<Series<'_>>) = match self.family {
            Family::Outcome => (
                &["check", "dataset", "outcome"],
                checks()
                    .map(|(dataset, check, c)| (vec![check, dataset, c.outcome.as_str()], 1.0))
                    .collect(),
            ),
            Family::Runs => (
                &["check", "dataset", "outcome"],
                checks()
                    .flat_map(|(dataset, check, c)| {
                        Outcome::ALL
                            .into_iter()
                            .zip(c.runs)
                            .filter(|(_, n)| *n > 0)
                            .map(move |(o, n)| (vec![check, dataset, o.as_str()], n as f64))
                    })
                    .collect(),
            ),
            Family::CheckGauge(i) => {
                let value = CHECK_GAUGES[i].value;
                (
                    &["check", "dataset"],
                    checks()
                        .filter_map(|(dataset, check, c)| Some((vec![check, dataset], value(c)?)))
                        .collect(),
                )
            }
            Family::RowCount => (&["dataset"], per_dataset(|ds| ds.row_count)),
            Family::FreshnessLag => (&["dataset"], per_dataset(|ds| ds.freshness_lag)),
            Family::NullRatio => (
                &["column", "dataset"],
                state
                    .iter()
                    .flat_map(|(dataset, ds)| {
                        ds.null_ratio
                            .iter()
                            .map(move |(column, v)| (vec![column.as_str(), dataset.as_str()], *v))
                    })
                    .collect(),
            ),
        };
        if series.is_empty() {
            return;
        }
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = writeln!(out, "# HELP {} {}", self.name, escape(self.help, false));
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (values, value) in &series {
            out.push_str(self.name);
            for (i, (label, v)) in labels.iter().zip(values).enumerate() {
                out.push(if i == 0 { '{' } else { ',' });
                out.push_str(label);
                out.push_str("=\"");
                out.push_str(&escape(v, true));
                out.push('"');
            }
            let _ = writeln!(out, "}} {value}");
        }
    }
}

/// Escapes `\` and newlines (and `"` in label values), as the text format
/// requires.
fn escape(v: &str, quote: bool) -> std::borrow::Cow<'_, str> {
    let special = |c: char| c == '\\' || c == '\n' || (quote && c == '"');
    if !v.contains(special) {
        return v.into();
    }
    let mut escaped = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '"' if quote => escaped.push_str("\\\""),
            c => escaped.push(c),
        }
    }
    escaped.into()
}
