//! The kinds of check, one file each. A kind's file holds its settings as
//! written (a serde struct with spans) and their validation into typed
//! settings with `file:line:col` errors, its part of the plan (the aggregate
//! expressions it joins to a scan, or a statement of its own), its
//! evaluation (observation + limits + baseline → verdict and message), and
//! how its observed value and limits are shown.
//!
//! [`CheckKind`] and [`RawCheck`] name the kinds; everything else reaches a
//! kind through the [`Kind`] and [`Settings`] traits, dispatched once here.

mod anomaly;
mod freshness;
mod null_rate;
mod row_count;
mod row_count_change;
mod schema;
mod sql;
mod unique;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::evaluate::{Baselines, EvalContext, Verdict};
use super::observation::{ObserveError, Observed};
use super::planner::{PlanCx, Read};
use crate::domain::{CheckId, DatasetName, Identifier, PartitionKey};
use crate::registry::Registry;
use crate::source::{Problems, SourcePos};

pub(crate) use anomaly::number_of;
pub use anomaly::{Anomaly, AnomalyHistory, Metric};
pub use freshness::{Expect, Freshness, FreshnessRule, latest_instant};
pub use null_rate::NullRate;
pub use row_count::RowCount;
pub use row_count_change::{ChangeBaseline, RowCountChange};
pub(crate) use schema::drift_from_baseline;
pub use schema::{DriftAction, ExpectedColumn, Schema};
pub use sql::Sql;
pub use unique::Unique;

/// What a check measures and the limits it is held to: one variant per
/// kind, each wrapping its kind's settings.
#[derive(Debug, Clone)]
pub enum CheckKind {
    RowCount(RowCount),
    RowCountChange(RowCountChange),
    NullRate(NullRate),
    Freshness(Freshness),
    Schema(Schema),
    Unique(Unique),
    Sql(Sql),
    Anomaly(Anomaly),
}

/// One check as written: the map's single key is the kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawCheck {
    /// `count(*)` within `min` and `max`.
    RowCount(row_count::Raw),
    /// Change of `count(*)` against a baseline.
    RowCountChange(row_count_change::Raw),
    /// Share of NULLs in a column.
    NullRate(null_rate::Raw),
    /// Age of the newest row.
    Freshness(freshness::Raw),
    /// Columns and types against expected ones or a baseline.
    Schema(schema::Raw),
    /// Duplicate keys.
    Unique(unique::Raw),
    /// A custom query returning one number.
    Sql(sql::Raw),
    /// A metric judged against its own history.
    Anomaly(Box<anomaly::Raw>),
}

impl CheckKind {
    /// Every kind as written in YAML and shown in JSON, metrics and alerts,
    /// in the order of [`RawCheck`].
    pub const NAMES: [&'static str; 8] = [
        RowCount::NAME,
        RowCountChange::NAME,
        NullRate::NAME,
        Freshness::NAME,
        Schema::NAME,
        Unique::NAME,
        Sql::NAME,
        Anomaly::NAME,
    ];

    /// The kind's settings, behind the trait every kind implements.
    pub(crate) fn get(&self) -> &dyn Kind {
        match self {
            Self::RowCount(k) => k,
            Self::RowCountChange(k) => k,
            Self::NullRate(k) => k,
            Self::Freshness(k) => k,
            Self::Schema(k) => k,
            Self::Unique(k) => k,
            Self::Sql(k) => k,
            Self::Anomaly(k) => k,
        }
    }

    /// The `kind` string used in JSON, metrics and alerts.
    pub fn name(&self) -> &'static str {
        self.get().name()
    }

    /// The column the check is about, when it is about one.
    pub fn column(&self) -> Option<&Identifier> {
        self.get().column()
    }

    /// Whether the check looks at one partition when the dataset is
    /// partitioned (freshness and schema describe the whole relation).
    pub fn is_partition_scoped(&self) -> bool {
        self.get().is_partition_scoped()
    }

    /// The dataset gauge the checks of this kind set.
    pub fn gauge(&self) -> Option<DatasetGauge> {
        Self::gauge_of(self.name())
    }

    /// The dataset gauge a result of kind `kind` sets with its observed value.
    pub fn gauge_of(kind: &str) -> Option<DatasetGauge> {
        match kind {
            RowCount::NAME => RowCount::GAUGE,
            // A discovered table's row estimate.
            "volume" => Some(DatasetGauge::RowCount),
            Freshness::NAME => Freshness::GAUGE,
            NullRate::NAME => NullRate::GAUGE,
            _ => None,
        }
    }

    /// An observed value of a result of kind `kind`, in the kind's unit.
    pub fn show_observed(kind: &str, value: f64) -> String {
        (shown(kind).observed)(value)
    }

    /// The limits of a result of kind `kind`: `max 1.20%, min 3`.
    pub fn show_thresholds(kind: &str, thresholds: &BTreeMap<String, serde_json::Value>) -> String {
        let shown = shown(kind);
        thresholds
            .iter()
            .map(|(key, v)| {
                let text = match v.as_f64() {
                    Some(x) => (shown.threshold)(key, x).unwrap_or_else(|| plain(x)),
                    None => v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                };
                format!("{} {text}", key.trim_end_matches("_seconds"))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl RawCheck {
    /// The settings as written, behind the trait every kind implements.
    pub(crate) fn get(&self) -> &dyn Settings {
        match self {
            Self::RowCount(s) => s,
            Self::RowCountChange(s) => s,
            Self::NullRate(s) => s,
            Self::Freshness(s) => s,
            Self::Schema(s) => s,
            Self::Unique(s) => s,
            Self::Sql(s) => s,
            Self::Anomaly(s) => &**s,
        }
    }
}

/// A per-dataset metric that a kind's observed value sets, besides the
/// per-check ones every kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetGauge {
    /// `warden_dataset_row_count`.
    RowCount,
    /// `warden_dataset_freshness_lag_seconds`.
    FreshnessLag,
    /// `warden_column_null_ratio`, per column.
    NullRatio,
}

/// How a kind's values read on the status page.
#[derive(Clone, Copy)]
pub(crate) struct Shown {
    /// The observed value.
    pub observed: fn(f64) -> String,
    /// A numeric limit under its key, when the kind shows it its own way.
    pub threshold: fn(&str, f64) -> Option<String>,
}

impl Shown {
    /// A plain number, limits likewise.
    pub const PLAIN: Self = Self {
        observed: plain,
        threshold: |_, _| None,
    };
}

/// A number with no unit.
fn plain(v: f64) -> String {
    crate::format::number(v)
}

/// How results of the kind named `kind` are shown.
fn shown(kind: &str) -> Shown {
    match kind {
        NullRate::NAME => NullRate::SHOWN,
        Freshness::NAME => Freshness::SHOWN,
        RowCountChange::NAME => RowCountChange::SHOWN,
        _ => Shown::PLAIN,
    }
}

/// The limits of a result, as reported in its `threshold`.
pub(crate) type Thresholds = BTreeMap<String, serde_json::Value>;

/// What a kind's evaluation may use besides the observation.
pub(crate) struct Judge<'a> {
    pub id: &'a CheckId,
    /// The observation is one partition's.
    pub partitioned: bool,
    pub baselines: &'a Baselines,
    pub ctx: &'a EvalContext,
}

/// Where a kind finds and keeps its baseline in the registry.
#[derive(Clone, Copy)]
pub(crate) struct BaselineCx<'a> {
    pub registry: &'a Registry,
    pub dataset: &'a DatasetName,
    pub id: &'a CheckId,
    /// The partition observed, for a partitioned dataset.
    pub partition: Option<&'a PartitionKey>,
    pub scheduled_at: DateTime<Utc>,
}

/// A kind's typed settings: what it plans, how it judges.
pub(crate) trait Kind: std::fmt::Debug {
    /// The `kind` string used in YAML, JSON, metrics and alerts.
    fn name(&self) -> &'static str;

    /// The column the check is about, when it is about one.
    fn column(&self) -> Option<&Identifier> {
        None
    }

    /// Whether the check looks at one partition of a partitioned dataset.
    fn is_partition_scoped(&self) -> bool {
        true
    }

    /// Places the check: joins its aggregates to the scan of `cx`, or adds a
    /// statement of its own.
    fn plan(&self, cx: &mut PlanCx<'_>) -> Result<Read, ObserveError>;

    /// The limits as reported in a result's `threshold`.
    fn thresholds(&self, t: &mut Thresholds);

    /// The verdict on `observed`; may add to the reported limits.
    fn judge(&self, observed: &Observed, cx: &Judge<'_>, t: &mut Thresholds) -> Verdict;

    /// Reads from the registry what the check compares against into `out`;
    /// the error is the message that makes the check `error`. `None` for
    /// the kinds (or settings) that use no stored baseline.
    fn fetch_baseline<'a>(
        &'a self,
        _cx: BaselineCx<'a>,
        _out: &'a mut Baselines,
    ) -> Option<BoxFuture<'a, Result<(), String>>> {
        None
    }

    /// After a run, stores the baseline later runs compare against when
    /// there is none yet; `None` when there is nothing to store.
    fn store_baseline<'a>(
        &'a self,
        _cx: BaselineCx<'a>,
        _observed: &'a Observed,
        _baselines: &'a Baselines,
    ) -> Option<BoxFuture<'a, ()>> {
        None
    }

    /// The row count recorded with the check's result, which later runs
    /// read back as their baseline.
    fn recorded_rows(&self, _observed: &Observed) -> Option<u64> {
        None
    }
}

/// The keys every check kind accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Common<'a> {
    pub name: Option<&'a Spanned<String>>,
    pub severity: Option<&'a Spanned<String>>,
    pub blocking: Option<&'a Spanned<bool>>,
    pub filter: Option<&'a Spanned<String>>,
}

/// A kind's settings as written.
pub(crate) trait Settings {
    /// The kind as written in YAML.
    fn name(&self) -> &'static str;

    /// The keys shared by every kind.
    fn common(&self) -> Common<'_>;

    /// The typed settings: one, or one per column (with the name suffix the
    /// column gives), or none when there are problems (reported in `p`).
    /// `at` is where the check was written; `named` whether it has a `name`.
    fn validate(
        &self,
        at: &SourcePos,
        named: bool,
        p: &mut Problems<'_>,
    ) -> Vec<(Option<String>, CheckKind)>;
}

/// A verdict for an observation the kind cannot use (a planning bug).
pub(crate) fn mismatch(kind: &str, observed: &Observed) -> Verdict {
    Verdict::error(format!(
        "internal error: a {kind} check cannot use {observed:?}"
    ))
}

/// A list of column names, each a plain identifier, none twice.
pub(crate) fn identifiers(
    cols: &Spanned<Vec<Spanned<String>>>,
    key: &str,
    p: &mut Problems<'_>,
) -> Vec<Identifier> {
    let mut out: Vec<Identifier> = Vec::new();
    for col in &cols.value {
        if let Some(id) = p.parse(col, key, |s| Identifier::parse(s.trim())) {
            if out.contains(&id) {
                p.at(col, format!("`{key}`: column `{id}` is listed twice"));
            } else {
                out.push(id);
            }
        }
    }
    out
}
