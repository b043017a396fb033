//! `freshness`: the age of the newest row (`max_lag`), or a daily deadline
//! by which a given day's data must have arrived (`by` with `expect`).
//! Freshness describes the whole relation, never one partition.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::json;
use serde_saphyr::Spanned;

use super::{CheckKind, Common, DatasetGauge, Judge, Kind, Settings, Shown, Thresholds, mismatch};
use crate::check::evaluate::{EvalContext, Verdict};
use crate::check::local_to_utc;
use crate::check::observation::{ObserveError, Observed};
use crate::check::planner::{Expr, PlanCx, Read};
use crate::domain::Identifier;
use crate::format::duration;
use crate::source::values::{parse_duration, parse_time_of_day};
use crate::source::{Problems, SourcePos};
use crate::warehouse::Value;

/// `freshness:` settings: `max_lag`, or `by` with `expect`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// Timestamp or date column whose maximum is the newest data (required).
    pub column: Option<Spanned<String>>,
    /// Largest accepted age of the newest row, as a duration like `6h`.
    pub max_lag: Option<Spanned<String>>,
    /// Local time of day (`"08:00"`) by which the data must have arrived.
    pub by: Option<Spanned<String>>,
    /// Which day's data must be there by then: `today` or `yesterday`.
    pub expect: Option<Spanned<String>>,
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

/// How new the newest value of `column` must be.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    pub column: Identifier,
    pub rule: FreshnessRule,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FreshnessRule {
    /// now − MAX(column) must not exceed this.
    MaxLag(Duration),
    /// By `by` (local time) each day, MAX(column) must have reached `expect`.
    Deadline { by: NaiveTime, expect: Expect },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Today,
    Yesterday,
}

impl Expect {
    fn as_str(self) -> &'static str {
        match self {
            Self::Today => "today",
            Self::Yesterday => "yesterday",
        }
    }
}

impl Freshness {
    pub const NAME: &'static str = "freshness";

    /// The observed lag is the dataset's freshness lag.
    pub(crate) const GAUGE: Option<DatasetGauge> = Some(DatasetGauge::FreshnessLag);

    /// Lags as durations, observed and limit.
    pub(crate) const SHOWN: Shown = Shown {
        observed: duration,
        threshold: |key, v| (key == "max_lag_seconds").then(|| duration(v)),
    };
}

impl Settings for Raw {
    fn name(&self) -> &'static str {
        Freshness::NAME
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
        let column = p
            .required(&self.column, "column", at)
            .and_then(|col| p.parse(col, "column", |s| Identifier::parse(s.trim())));
        let rule = match (&self.max_lag, &self.by, &self.expect) {
            (Some(lag), None, None) => p
                .parse(lag, "max_lag", |s| parse_duration(s))
                .map(FreshnessRule::MaxLag),
            (Some(lag), _, _) => {
                p.at(
                    lag,
                    "`max_lag` cannot be combined with `by`/`expect`; use one form or the other",
                );
                None
            }
            (None, Some(by), Some(expect)) => {
                let by = p.parse(by, "by", |s| parse_time_of_day(s));
                let expect = p.parse(expect, "expect", |s| match s.trim() {
                    "today" => Ok(Expect::Today),
                    "yesterday" => Ok(Expect::Yesterday),
                    other => Err(format!("`{other}` is not `today` or `yesterday`")),
                });
                match (by, expect) {
                    (Some(by), Some(expect)) => Some(FreshnessRule::Deadline { by, expect }),
                    _ => None,
                }
            }
            (None, Some(_), None) => {
                p.at_pos(
                    at,
                    "`expect` (`today` or `yesterday`) is required with `by`",
                );
                None
            }
            (None, None, Some(expect)) => {
                p.at(
                    expect,
                    "`by` (a time like \"08:00\") is required with `expect`",
                );
                None
            }
            (None, None, None) => {
                p.at_pos(at, "`max_lag`, or `by` with `expect`, is required");
                None
            }
        };
        let (Some(column), Some(rule)) = (column, rule) else {
            return Vec::new();
        };
        vec![(
            Some(column.as_str().to_owned()),
            CheckKind::Freshness(Freshness { column, rule }),
        )]
    }
}

impl Kind for Freshness {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn column(&self) -> Option<&Identifier> {
        Some(&self.column)
    }

    fn is_partition_scoped(&self) -> bool {
        false
    }

    fn plan(&self, cx: &mut PlanCx<'_>) -> Result<Read, ObserveError> {
        cx.require(&self.column)?;
        let (statement, [column]) = cx.join([Expr::Max(self.column.clone())])?;
        Ok(Read::Latest { statement, column })
    }

    fn thresholds(&self, t: &mut Thresholds) {
        match &self.rule {
            FreshnessRule::MaxLag(lag) => {
                t.insert("max_lag_seconds".into(), json!(lag.as_secs_f64()));
            }
            FreshnessRule::Deadline { by, expect } => {
                t.insert("by".into(), json!(by.format("%H:%M").to_string()));
                t.insert("expect".into(), json!(expect.as_str()));
            }
        }
    }

    fn judge(&self, observed: &Observed, cx: &Judge<'_>, t: &mut Thresholds) -> Verdict {
        match observed {
            Observed::Latest { value } => {
                let (verdict, expected) =
                    freshness(self.column.as_str(), value, &self.rule, cx.ctx);
                if let Some(date) = expected {
                    t.insert("expected_date".to_owned(), json!(date.to_string()));
                }
                verdict
            }
            other => mismatch(Self::NAME, other),
        }
    }
}

/// The verdict, and for the deadline form the date the data must have reached.
fn freshness(
    column: &str,
    latest: &Value,
    rule: &FreshnessRule,
    ctx: &EvalContext,
) -> (Verdict, Option<NaiveDate>) {
    if latest.is_null() {
        return (
            Verdict::new(
                true,
                None,
                format!("no value: {column} is NULL in every row, or there are no rows"),
            ),
            None,
        );
    }
    let instant = match latest_instant(latest, ctx.tz) {
        Ok(t) => t,
        Err(e) => {
            return (
                Verdict::error(format!("cannot read the latest {column}: {e}")),
                None,
            );
        }
    };
    let lag = (ctx.now - instant).num_milliseconds() as f64 / 1000.0;
    let age = if lag >= 0.0 {
        format!("{} old", duration(lag))
    } else {
        format!("{} in the future", duration(-lag))
    };
    match rule {
        FreshnessRule::MaxLag(max) => {
            let max_s = max.as_secs_f64();
            let message = format!("latest {column} is {age} (max {})", duration(max_s));
            (Verdict::new(lag > max_s, Some(lag), message), None)
        }
        FreshnessRule::Deadline { by, expect } => {
            let local_now = ctx.now.with_timezone(&ctx.tz);
            let today = local_now.date_naive();
            let due = match expect {
                Expect::Today => today,
                Expect::Yesterday => today - chrono::Days::new(1),
            };
            let before_deadline = local_now.time() < *by;
            let required = if before_deadline {
                due - chrono::Days::new(1)
            } else {
                due
            };
            let reached = instant.with_timezone(&ctx.tz).date_naive();
            let by_text = format!("{} ({})", by.format("%H:%M"), ctx.tz.name());
            let when = if before_deadline {
                format!("until {by_text}, when {due} becomes due")
            } else {
                format!("since {by_text}")
            };
            let message = if reached >= required {
                format!(
                    "latest {column} is {reached}, at or after the expected {required} ({when}); {age}"
                )
            } else {
                format!(
                    "latest {column} is {reached}, before the expected {required} ({when}); {age}"
                )
            };
            (
                Verdict::new(reached < required, Some(lag), message),
                Some(required),
            )
        }
    }
}

/// The instant a MAX(column) value stands for. Values without a zone
/// (PostgreSQL `timestamp`, MySQL `DATETIME`, SQLite text) are read in `tz`;
/// a date is the start of that day in `tz`; a number is Unix seconds.
pub fn latest_instant(value: &Value, tz: Tz) -> Result<DateTime<Utc>, String> {
    match value {
        Value::TimestampTz(t) => Ok(*t),
        Value::Timestamp(t) => Ok(local_to_utc(*t, tz)),
        Value::Date(d) => Ok(local_to_utc(d.and_time(NaiveTime::MIN), tz)),
        Value::Int(secs) => {
            DateTime::from_timestamp(*secs, 0).ok_or_else(|| format!("{secs} is out of range"))
        }
        Value::Float(secs) => DateTime::from_timestamp_millis((secs * 1000.0) as i64)
            .ok_or_else(|| format!("{secs} is out of range")),
        Value::Text(s) => parse_text_time(s.trim(), tz).ok_or_else(|| {
            format!("`{s}` is not a date or timestamp (expected e.g. 2026-11-20 13:45:00)")
        }),
        Value::Null => Err("no value".to_owned()),
    }
}

fn parse_text_time(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let zoned = s
        .strip_suffix('Z')
        .map(|rest| format!("{rest}+00:00"))
        .unwrap_or_else(|| s.to_owned());
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f %#z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(&zoned, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(local_to_utc(t, tz));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| local_to_utc(d.and_time(NaiveTime::MIN), tz))
}
