//! `anomaly`: a metric judged against its own history in the registry by
//! [`crate::detect`], with no threshold written down. The metric joins the
//! dataset's batched scan; its history (one point per partition, or per
//! run of a whole relation) is read once per run for the whole dataset.

use std::time::Duration;

use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::json;
use serde_saphyr::Spanned;

use super::{CheckKind, Common, Judge, Kind, Settings, Thresholds, latest_instant, mismatch};
use crate::check::evaluate::Verdict;
use crate::check::observation::{ObserveError, Observed};
use crate::check::planner::{Expr, PlanCx, Read};
use crate::detect::{self, Cadence, Direction, Point, Seasonality};
use crate::domain::{Identifier, Ratio};
use crate::format::{decimals, duration, number, percent};
use crate::source::values::parse_duration;
use crate::source::{Problems, SourcePos};
use crate::warehouse::Value;

/// `anomaly:` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// `row_count`, `null_rate`, `distinct_count`, `avg`, `sum`, `min`,
    /// `max` or `freshness_lag` (required).
    pub metric: Option<Spanned<String>>,
    /// The column the metric reads; required except for `row_count`.
    pub column: Option<Spanned<String>>,
    /// Robust standard deviations a value must be from the expected one; default 3.
    pub sensitivity: Option<Spanned<String>>,
    /// `both` (default), `spike` or `drop`.
    pub direction: Option<Spanned<String>>,
    /// `auto` (default), `none`, `hour_of_day`, `day_of_week` or `hour_of_week`.
    pub seasonality: Option<Spanned<String>>,
    /// The window of history learned from, as a duration; default `8w`.
    pub training: Option<Spanned<String>>,
    /// Points needed before judging; default 14.
    pub min_training: Option<Spanned<i64>>,
    /// A change smaller than this share of the expected value never
    /// alerts, as `0.05` or `"5%"`; default 5%.
    pub min_change: Option<Spanned<String>>,
    /// Anomalous points in a row after which a lasting shift is the new
    /// normal; default 7.
    pub adapt_after: Option<Spanned<i64>>,
    /// Check name, unique within the dataset; default `kind` or `kind_column`.
    pub name: Option<Spanned<String>>,
    /// `fail` (default) or `warn`.
    pub severity: Option<Spanned<String>>,
    /// Whether a failure can deny the gate; default true.
    pub blocking: Option<Spanned<bool>>,
    /// Extra SQL filter on the relation, written by the config author.
    #[serde(rename = "where")]
    pub filter: Option<Spanned<String>>,
}

/// What the anomaly check measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    RowCount,
    NullRate,
    DistinctCount,
    Avg,
    Sum,
    Min,
    Max,
    FreshnessLag,
}

impl Metric {
    const ALL: [Self; 8] = [
        Self::RowCount,
        Self::NullRate,
        Self::DistinctCount,
        Self::Avg,
        Self::Sum,
        Self::Min,
        Self::Max,
        Self::FreshnessLag,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RowCount => "row_count",
            Self::NullRate => "null_rate",
            Self::DistinctCount => "distinct_count",
            Self::Avg => "avg",
            Self::Sum => "sum",
            Self::Min => "min",
            Self::Max => "max",
            Self::FreshnessLag => "freshness_lag",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|m| m.as_str()).collect();
                format!("`{s}` is not a metric; expected one of: {}", all.join(", "))
            })
    }

    /// A value of the metric as shown in messages.
    fn show(self, v: f64) -> String {
        match self {
            Self::RowCount | Self::DistinctCount => thousands(v),
            Self::NullRate => percent(v),
            Self::FreshnessLag => duration(v),
            Self::Avg | Self::Sum | Self::Min | Self::Max => {
                if v.abs() >= 1000.0 {
                    thousands(v)
                } else {
                    number(decimals(v, 4).parse().unwrap_or(v))
                }
            }
        }
    }
}

/// A count or large number with thousands separators: `1,130`.
fn thousands(v: f64) -> String {
    let rounded = v.round();
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A metric judged against its own history.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub metric: Metric,
    pub column: Option<Identifier>,
    pub sensitivity: f64,
    pub direction: Direction,
    pub seasonality: Seasonality,
    pub training: Duration,
    pub min_training: usize,
    pub min_change: f64,
    pub adapt_after: usize,
}

/// What [`crate::detect`] needs of a check's history, fetched by the
/// runner in one registry read per dataset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnomalyHistory {
    /// Past points, in the agent's local time.
    pub points: Vec<Point>,
    /// The local time the value judged stands for: the partition's start,
    /// or the run's scheduled time.
    pub at: Option<NaiveDateTime>,
    /// The dataset's partition granularity or schedule, when it tells.
    pub cadence: Option<Cadence>,
}

impl Anomaly {
    pub const NAME: &'static str = "anomaly";

    /// The detector's settings.
    pub fn settings(&self, cadence: Option<Cadence>) -> detect::Settings {
        detect::Settings {
            sensitivity: self.sensitivity,
            direction: self.direction,
            seasonality: self.seasonality,
            training: chrono::Duration::from_std(self.training)
                .unwrap_or(chrono::Duration::weeks(8)),
            min_training: self.min_training,
            min_change: self.min_change,
            adapt_after: self.adapt_after,
            cadence,
        }
    }

    /// The metric's value from the observation: `Ok(None)` when there is
    /// nothing to judge (no rows), `Err` with the verdict otherwise.
    fn value(&self, observed: &Observed, cx: &Judge<'_>) -> Result<Option<f64>, Verdict> {
        match (self.metric, observed) {
            (Metric::RowCount, Observed::RowCount { rows }) => Ok(Some(*rows as f64)),
            (Metric::NullRate, Observed::NullCount { rows, non_null }) => {
                Ok((*rows > 0).then(|| rows.saturating_sub(*non_null) as f64 / *rows as f64))
            }
            (
                Metric::DistinctCount | Metric::Avg | Metric::Sum | Metric::Min | Metric::Max,
                Observed::Number { value },
            ) => Ok(*value),
            (Metric::FreshnessLag, Observed::Latest { value }) => {
                if value.is_null() {
                    return Err(Verdict::new(
                        true,
                        None,
                        format!(
                            "no value: {} is NULL in every row, or there are no rows",
                            self.column_name()
                        ),
                    ));
                }
                match latest_instant(value, cx.ctx.tz) {
                    Ok(t) => Ok(Some((cx.ctx.now - t).num_milliseconds() as f64 / 1000.0)),
                    Err(e) => Err(Verdict::error(format!(
                        "cannot read the latest {}: {e}",
                        self.column_name()
                    ))),
                }
            }
            (_, other) => Err(mismatch(Self::NAME, other)),
        }
    }

    fn column_name(&self) -> &str {
        self.column.as_ref().map_or("", |c| c.as_str())
    }

    /// The observed value in words: "412 rows", "1.2% NULL in email".
    fn observed_text(&self, v: f64) -> String {
        let col = self.column_name();
        let shown = self.metric.show(v);
        match self.metric {
            Metric::RowCount => format!("{shown} rows"),
            Metric::NullRate => format!("{shown} NULL in {col}"),
            Metric::DistinctCount => format!("{shown} distinct {col}"),
            Metric::Avg | Metric::Sum | Metric::Min | Metric::Max => {
                format!("{}({col}) {shown}", self.metric.as_str())
            }
            Metric::FreshnessLag => format!("latest {col} {shown} old"),
        }
    }

    /// Judges `value` against the history.
    pub(crate) fn judge_value(
        &self,
        value: f64,
        history: Option<&AnomalyHistory>,
        cx: &Judge<'_>,
    ) -> Verdict {
        let at = history
            .and_then(|h| h.at)
            .unwrap_or_else(|| cx.ctx.now.with_timezone(&cx.ctx.tz).naive_local());
        let points = history.map_or(&[][..], |h| &h.points[..]);
        let settings = self.settings(history.and_then(|h| h.cadence));
        let observed = self.observed_text(value);
        match detect::detect(points, at, value, &settings) {
            detect::Verdict::Learning { have, need } => Verdict::new(
                false,
                Some(value),
                format!("{observed}; learning: {have} of {need} points"),
            ),
            detect::Verdict::Judged(j) => {
                let message = j.describe(value, &observed, |v| self.metric.show(v));
                let mut v = Verdict::new(j.anomalous, Some(value), message);
                v.expected = Some(crate::domain::Expected {
                    lower: j.expected.lower,
                    center: j.expected.center,
                    upper: j.expected.upper,
                });
                v.score = Some(j.score);
                v
            }
        }
    }
}

impl Settings for Raw {
    fn name(&self) -> &'static str {
        Anomaly::NAME
    }

    fn common(&self) -> Common<'_> {
        Common {
            name: self.name.as_ref(),
            severity: self.severity.as_ref(),
            blocking: self.blocking.as_ref(),
            filter: self.filter.as_ref(),
        }
    }

    fn validate(
        &self,
        at: &SourcePos,
        _named: bool,
        p: &mut Problems<'_>,
    ) -> Vec<(Option<String>, CheckKind)> {
        let metric = p
            .required(&self.metric, "metric", at)
            .and_then(|m| p.parse(m, "metric", |s| Metric::parse(s.trim())));
        let column = match (&self.column, metric) {
            (Some(c), Some(Metric::RowCount)) => {
                p.at(c, "`column` does not apply to `metric: row_count`");
                None
            }
            (Some(c), Some(_)) => p
                .parse(c, "column", |s| Identifier::parse(s.trim()))
                .map(Some),
            (None, Some(Metric::RowCount)) => Some(None),
            (None, Some(m)) => {
                p.at_pos(
                    at,
                    format!("`column` is required with `metric: {}`", m.as_str()),
                );
                None
            }
            (_, None) => None,
        };
        let sensitivity = p.parse_or(&self.sensitivity, "sensitivity", 3.0, |s| {
            match s.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 && v <= 100.0 => Ok(v),
                _ => Err(format!(
                    "`{s}` is not a number of deviations between 0 and 100, like 3"
                )),
            }
        });
        let direction = p.parse_or(&self.direction, "direction", Direction::Both, |s| {
            match s.trim() {
                "both" => Ok(Direction::Both),
                "spike" => Ok(Direction::Spike),
                "drop" => Ok(Direction::Drop),
                other => Err(format!(
                    "`{other}` is not a direction; expected `both`, `spike` or `drop`"
                )),
            }
        });
        let seasonality = p.parse_or(&self.seasonality, "seasonality", Seasonality::Auto, |s| {
            Seasonality::parse(s.trim()).ok_or_else(|| {
                format!(
                    "`{s}` is not a seasonality; expected `auto`, `none`, `hour_of_day`, `day_of_week` or `hour_of_week`"
                )
            })
        });
        let training = p.parse_or(
            &self.training,
            "training",
            Duration::from_secs(8 * 7 * 86_400),
            |s| parse_duration(s),
        );
        let min_training = p.parse_or(&self.min_training, "min_training", 14, |&n| {
            if (3..=100_000).contains(&n) {
                Ok(n as usize)
            } else {
                Err(format!("{n} is not between 3 and 100000 points"))
            }
        });
        let min_change = p.parse_or(&self.min_change, "min_change", 0.05, |s| {
            Ratio::parse(s, false)
                .map(|r| r.get())
                .map_err(|e| e.to_string())
        });
        let adapt_after = p.parse_or(&self.adapt_after, "adapt_after", 7, |&n| {
            if (1..=100_000).contains(&n) {
                Ok(n as usize)
            } else {
                Err(format!("{n} is not between 1 and 100000 points"))
            }
        });
        let (
            Some(metric),
            Some(column),
            Some(sensitivity),
            Some(direction),
            Some(seasonality),
            Some(training),
            Some(min_training),
            Some(min_change),
            Some(adapt_after),
        ) = (
            metric,
            column,
            sensitivity,
            direction,
            seasonality,
            training,
            min_training,
            min_change,
            adapt_after,
        )
        else {
            return Vec::new();
        };
        // The default name tells the metrics of one column apart.
        let suffix = match (&column, metric) {
            (None, _) => Some(metric.as_str().to_owned()),
            (Some(c), _) => Some(format!("{}_{c}", metric.as_str())),
        };
        vec![(
            suffix,
            CheckKind::Anomaly(Anomaly {
                metric,
                column,
                sensitivity,
                direction,
                seasonality,
                training,
                min_training,
                min_change,
                adapt_after,
            }),
        )]
    }
}

impl Kind for Anomaly {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn column(&self) -> Option<&Identifier> {
        self.column.as_ref()
    }

    /// Freshness describes the whole relation; every other metric is a
    /// partition's.
    fn is_partition_scoped(&self) -> bool {
        self.metric != Metric::FreshnessLag
    }

    fn plan(&self, cx: &mut PlanCx<'_>) -> Result<Read, ObserveError> {
        if let Some(c) = &self.column {
            cx.require(c)?;
        }
        let col = || {
            self.column
                .clone()
                .expect("validated: the metric has a column")
        };
        Ok(match self.metric {
            Metric::RowCount => {
                let (statement, [rows]) = cx.join([Expr::CountRows])?;
                Read::RowCount { statement, rows }
            }
            Metric::NullRate => {
                let (statement, [rows, non_null]) =
                    cx.join([Expr::CountRows, Expr::CountNonNull(col())])?;
                Read::NullCount {
                    statement,
                    rows,
                    non_null,
                }
            }
            Metric::FreshnessLag => {
                let (statement, [column]) = cx.join([Expr::Max(col())])?;
                Read::Latest { statement, column }
            }
            Metric::DistinctCount => scalar(cx, Expr::CountDistinct(col()))?,
            Metric::Avg => scalar(cx, Expr::Avg(col()))?,
            Metric::Sum => scalar(cx, Expr::Sum(col()))?,
            Metric::Min => scalar(cx, Expr::Min(col()))?,
            Metric::Max => scalar(cx, Expr::Max(col()))?,
        })
    }

    fn thresholds(&self, t: &mut Thresholds) {
        t.insert("sensitivity".into(), json!(self.sensitivity));
        t.insert("min_change".into(), json!(self.min_change));
    }

    fn judge(&self, observed: &Observed, cx: &Judge<'_>, _t: &mut Thresholds) -> Verdict {
        match self.value(observed, cx) {
            Err(verdict) => verdict,
            Ok(None) => Verdict::new(
                false,
                None,
                format!("no rows: no {} to judge", self.metric.as_str()),
            ),
            Ok(Some(v)) if !v.is_finite() => Verdict::error(format!(
                "the {} is not a finite number",
                self.metric.as_str()
            )),
            Ok(Some(v)) => self.judge_value(v, cx.baselines.anomaly.get(cx.id), cx),
        }
    }
}

/// A numeric aggregate joined to the scan.
fn scalar(cx: &mut PlanCx<'_>, expr: Expr) -> Result<Read, ObserveError> {
    let (statement, [column]) = cx.join([expr])?;
    Ok(Read::Number { statement, column })
}

/// A number read from an aggregate's cell: `None` for NULL (no rows).
pub(crate) fn number_of(value: &Value) -> Result<Option<f64>, String> {
    if value.is_null() {
        return Ok(None);
    }
    value
        .as_f64()
        .map(Some)
        .ok_or_else(|| format!("expected a number, got {} `{value}`", value.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_users_write_them() {
        assert_eq!(thousands(1130.0), "1,130");
        assert_eq!(thousands(870.4), "870");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(-4500.0), "-4,500");
        assert_eq!(Metric::NullRate.show(0.012), "1.2%");
        assert_eq!(Metric::Avg.show(12.3456789), "12.3457");
    }
}
