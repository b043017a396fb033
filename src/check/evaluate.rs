//! Turning observations into results: pure functions of the check, what was
//! observed, any stored baseline, and the clock.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

use super::observation::{DatasetObservations, Observation, Observed};
use super::{CheckResult, Outcome, local_to_utc};
use crate::config::{
    ChangeBaseline, CheckKind, CheckSpec, Dataset, DriftAction, Expect, FreshnessRule, Severity,
};
use crate::domain::CheckId;
use crate::warehouse::{CatalogColumn, Value, types};

/// The clock and zone results are evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext {
    pub now: DateTime<Utc>,
    /// `agent.timezone`: how timestamps without a zone and dates are read,
    /// and where deadlines fall.
    pub tz: Tz,
}

/// Stored history the checks that compare against the past need, fetched
/// from the registry between observing and evaluating.
#[derive(Debug, Clone, Default)]
pub struct Baselines {
    /// Per `row_count_change` check: the row count to compare with (the
    /// registry picks the run or partition its `vs` names).
    pub row_counts: HashMap<CheckId, f64>,
    /// Per `schema` check without `columns`: the stored schema.
    pub schemas: HashMap<CheckId, Vec<CatalogColumn>>,
}

/// Evaluates every observation of a dataset.
pub fn evaluate_all(
    ds: &Dataset,
    observations: &DatasetObservations,
    baselines: &Baselines,
    ctx: &EvalContext,
) -> Vec<CheckResult> {
    observations
        .iter(ds)
        .map(|(spec, obs)| evaluate(ds, spec, obs, baselines, ctx))
        .collect()
}

/// Evaluates one check.
pub fn evaluate(
    ds: &Dataset,
    spec: &CheckSpec,
    obs: &Observation,
    baselines: &Baselines,
    ctx: &EvalContext,
) -> CheckResult {
    let mut threshold = thresholds(&spec.kind);
    let verdict = match &obs.value {
        Err(e) => Verdict::error(e.to_string()),
        Ok(observed) => judge(
            spec,
            observed,
            obs.partition.is_some(),
            baselines,
            ctx,
            &mut threshold,
        ),
    };
    let outcome = match verdict.status {
        Status::Pass => Outcome::Pass,
        Status::Warn => Outcome::Warn,
        Status::Breach => match spec.severity {
            Severity::Fail => Outcome::Fail,
            Severity::Warn => Outcome::Warn,
        },
        Status::Error => Outcome::Error,
    };
    CheckResult {
        check: spec.id.to_string(),
        dataset: ds.name.to_string(),
        kind: spec.kind.name().to_owned(),
        column: spec.kind.column().map(|c| c.to_string()),
        partition: obs.partition.map(|p| p.to_string()),
        outcome,
        observed: if outcome == Outcome::Error {
            None
        } else {
            verdict.observed
        },
        threshold,
        message: verdict.message,
        duration_ms: u64::try_from(obs.duration.as_millis()).unwrap_or(u64::MAX),
    }
}

/// A check's verdict before severity is applied.
#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    status: Status,
    observed: Option<f64>,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    /// A difference the config asks to warn about whatever the severity.
    Warn,
    /// Outside the limits: `fail`, or `warn` under `severity: warn`.
    Breach,
    Error,
}

impl Verdict {
    fn new(breach: bool, observed: Option<f64>, message: String) -> Self {
        Self {
            status: if breach { Status::Breach } else { Status::Pass },
            observed,
            message,
        }
    }

    fn error(message: String) -> Self {
        Self {
            status: Status::Error,
            observed: None,
            message,
        }
    }
}

/// The limits a check is held to, as reported in `threshold`.
fn thresholds(kind: &CheckKind) -> BTreeMap<String, serde_json::Value> {
    let mut t = BTreeMap::new();
    let mut put = |k: &str, v: serde_json::Value| {
        t.insert(k.to_owned(), v);
    };
    match kind {
        CheckKind::RowCount { min, max } => {
            if let Some(min) = min {
                put("min", json!(*min as f64));
            }
            if let Some(max) = max {
                put("max", json!(*max as f64));
            }
        }
        CheckKind::RowCountChange {
            max_drop,
            max_growth,
            ..
        } => {
            if let Some(d) = max_drop {
                put("max_drop", json!(d.get()));
            }
            if let Some(g) = max_growth {
                put("max_growth", json!(g.get()));
            }
        }
        CheckKind::NullRate { max, .. } => put("max", json!(max.get())),
        CheckKind::Freshness { rule, .. } => match rule {
            FreshnessRule::MaxLag(lag) => put("max_lag_seconds", json!(lag.as_secs_f64())),
            FreshnessRule::Deadline { by, expect } => {
                put("by", json!(by.format("%H:%M").to_string()));
                put("expect", json!(expect_name(*expect)));
            }
        },
        CheckKind::Schema {
            on_added,
            on_removed,
            on_type_changed,
            ..
        } => {
            put("on_added", json!(action_name(*on_added)));
            put("on_removed", json!(action_name(*on_removed)));
            put("on_type_changed", json!(action_name(*on_type_changed)));
        }
        CheckKind::Unique { max, .. } => put("max", json!(*max as f64)),
        CheckKind::Sql { min, max, .. } => {
            if let Some(min) = min {
                put("min", json!(min));
            }
            if let Some(max) = max {
                put("max", json!(max));
            }
        }
    }
    t
}

fn judge(
    spec: &CheckSpec,
    observed: &Observed,
    partitioned: bool,
    baselines: &Baselines,
    ctx: &EvalContext,
    threshold: &mut BTreeMap<String, serde_json::Value>,
) -> Verdict {
    match (&spec.kind, observed) {
        (CheckKind::RowCount { min, max }, Observed::RowCount { rows }) => {
            row_count(*rows, *min, *max)
        }
        (
            CheckKind::RowCountChange {
                vs,
                max_drop,
                max_growth,
            },
            Observed::RowCount { rows },
        ) => row_count_change(
            *rows,
            baselines.row_counts.get(&spec.id).copied(),
            *vs,
            partitioned,
            max_drop.map(|r| r.get()),
            max_growth.map(|r| r.get()),
        ),
        (CheckKind::NullRate { column, max }, Observed::NullCount { rows, non_null }) => {
            null_rate(column.as_str(), *rows, *non_null, max.get())
        }
        (CheckKind::Freshness { column, rule }, Observed::Latest { value }) => {
            let (verdict, expected) = freshness(column.as_str(), value, rule, ctx);
            if let Some(date) = expected {
                threshold.insert("expected_date".to_owned(), json!(date.to_string()));
            }
            verdict
        }
        (
            CheckKind::Unique { columns, max },
            Observed::Keys {
                keyed_rows,
                distinct,
            },
        ) => {
            let names: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
            unique(&names, *keyed_rows, *distinct, *max)
        }
        (CheckKind::Sql { min, max, .. }, Observed::Rows { rows }) => sql(rows, *min, *max),
        (
            CheckKind::Schema {
                columns,
                on_added,
                on_removed,
                on_type_changed,
            },
            Observed::Columns { columns: actual },
        ) => {
            let actions = DriftActions {
                added: *on_added,
                removed: *on_removed,
                type_changed: *on_type_changed,
            };
            match columns {
                Some(expected) => {
                    let expected: Vec<(String, Option<String>)> = expected
                        .iter()
                        .map(|c| (c.name.clone(), c.data_type.clone()))
                        .collect();
                    schema(&expected, actual, actions, "the expected schema")
                }
                None => match baselines.schemas.get(&spec.id) {
                    None => Verdict::new(
                        false,
                        Some(0.0),
                        format!(
                            "no baseline yet; the current schema ({} columns) becomes the baseline",
                            actual.len()
                        ),
                    ),
                    Some(stored) => {
                        let expected: Vec<(String, Option<String>)> = stored
                            .iter()
                            .map(|c| (c.name.clone(), Some(c.data_type.clone())))
                            .collect();
                        schema(&expected, actual, actions, "the baseline")
                    }
                },
            }
        }
        (kind, observed) => Verdict::error(format!(
            "internal error: a {} check cannot use {observed:?}",
            kind.name()
        )),
    }
}

fn row_count(rows: u64, min: Option<u64>, max: Option<u64>) -> Verdict {
    let observed = Some(rows as f64);
    if let Some(min) = min.filter(|m| rows < *m) {
        return Verdict::new(
            true,
            observed,
            format!("{rows} rows, below the minimum of {min}"),
        );
    }
    if let Some(max) = max.filter(|m| rows > *m) {
        return Verdict::new(
            true,
            observed,
            format!("{rows} rows, above the maximum of {max}"),
        );
    }
    let limits = match (min, max) {
        (Some(min), Some(max)) => format!(" (min {min}, max {max})"),
        (Some(min), None) => format!(" (min {min})"),
        (None, Some(max)) => format!(" (max {max})"),
        (None, None) => String::new(),
    };
    Verdict::new(false, observed, format!("{rows} rows{limits}"))
}

/// `partitioned`: the count is one partition's and the baseline an earlier
/// partition's, so `vs: previous` names the previous partition, not the
/// previous run (a backfill or a rerun is not the partition before).
fn row_count_change(
    rows: u64,
    baseline: Option<f64>,
    vs: ChangeBaseline,
    partitioned: bool,
    max_drop: Option<f64>,
    max_growth: Option<f64>,
) -> Verdict {
    let against = match vs {
        ChangeBaseline::Previous if partitioned => "the previous partition",
        ChangeBaseline::Previous => "the previous run",
        ChangeBaseline::Day => "1 day earlier",
        ChangeBaseline::Week => "7 days earlier",
    };
    let Some(base) = baseline else {
        return Verdict::new(
            false,
            None,
            format!("no baseline yet ({against}); {rows} rows recorded"),
        );
    };
    let current = rows as f64;
    if base <= 0.0 {
        let grew = current > 0.0;
        let breach = grew && max_growth.is_some();
        let message = if grew {
            format!(
                "{rows} rows, up from 0 {against}; growth from nothing cannot be measured as a percentage"
            )
        } else {
            format!("0 rows, as {against}")
        };
        return Verdict::new(breach, if grew { None } else { Some(0.0) }, message);
    }
    let change = (current - base) / base;
    let observed = Some(change);
    let summary = format!(
        "{rows} rows, {} vs {} {against}",
        signed_pct(change),
        fmt_number(base)
    );
    if let Some(d) = max_drop.filter(|d| change < -d) {
        return Verdict::new(
            true,
            observed,
            format!("{summary}: dropped more than {}", pct(d)),
        );
    }
    if let Some(g) = max_growth.filter(|g| change > *g) {
        return Verdict::new(
            true,
            observed,
            format!("{summary}: grew more than {}", pct(g)),
        );
    }
    Verdict::new(false, observed, summary)
}

fn null_rate(column: &str, rows: u64, non_null: u64, max: f64) -> Verdict {
    if rows == 0 {
        return Verdict::new(
            false,
            Some(0.0),
            format!("rows=0: no rows, so no NULLs in {column}"),
        );
    }
    let nulls = rows.saturating_sub(non_null);
    let rate = nulls as f64 / rows as f64;
    Verdict::new(
        rate > max,
        Some(rate),
        format!(
            "{} of {rows} rows are NULL in {column} (max {})",
            pct(rate),
            pct(max)
        ),
    )
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
        format!("{} old", human(lag))
    } else {
        format!("{} in the future", human(-lag))
    };
    match rule {
        FreshnessRule::MaxLag(max) => {
            let max_s = max.as_secs_f64();
            let message = format!("latest {column} is {age} (max {})", human(max_s));
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

fn unique(columns: &[&str], keyed_rows: u64, distinct: u64, max: u64) -> Verdict {
    let duplicates = keyed_rows.saturating_sub(distinct);
    let key = columns.join(", ");
    Verdict::new(
        duplicates > max,
        Some(duplicates as f64),
        format!(
            "{duplicates} duplicate rows over ({key}) among {keyed_rows} rows with a non-NULL key (max {max})"
        ),
    )
}

fn sql(rows: &[Vec<Value>], min: Option<f64>, max: Option<f64>) -> Verdict {
    let value = match rows {
        [] => {
            return Verdict::error("the query returned no rows; it must return one row".to_owned());
        }
        [row] => match row.first() {
            None => return Verdict::error("the query returned no columns".to_owned()),
            Some(Value::Null) => {
                return Verdict::error(
                    "the query returned NULL; it must return a number".to_owned(),
                );
            }
            Some(v) => match v.as_f64() {
                Some(x) => x,
                None => {
                    return Verdict::error(format!(
                        "the query returned the {} `{v}`; it must return a number",
                        v.kind()
                    ));
                }
            },
        },
        many => {
            return Verdict::error(format!(
                "the query returned {} rows; it must return one row",
                many.len()
            ));
        }
    };
    let shown = fmt_number(value);
    if let Some(min) = min.filter(|m| value < *m) {
        return Verdict::new(
            true,
            Some(value),
            format!("returned {shown}, below the minimum of {}", fmt_number(min)),
        );
    }
    if let Some(max) = max.filter(|m| value > *m) {
        return Verdict::new(
            true,
            Some(value),
            format!("returned {shown}, above the maximum of {}", fmt_number(max)),
        );
    }
    Verdict::new(false, Some(value), format!("returned {shown}"))
}

#[derive(Debug, Clone, Copy)]
struct DriftActions {
    added: DriftAction,
    removed: DriftAction,
    type_changed: DriftAction,
}

/// Compares the relation's columns with `expected` (name, normalised type or
/// any). Names compare case-insensitively; types after normalisation.
fn schema(
    expected: &[(String, Option<String>)],
    actual: &[CatalogColumn],
    actions: DriftActions,
    against: &str,
) -> Verdict {
    let mut differences: Vec<(DriftAction, String)> = Vec::new();
    for (name, ty) in expected {
        match actual.iter().find(|c| c.name.eq_ignore_ascii_case(name)) {
            None => differences.push((actions.removed, format!("column `{name}` was removed"))),
            Some(column) => {
                if let Some(ty) = ty {
                    let want = types::normalise(ty);
                    if want != column.data_type {
                        differences.push((
                            actions.type_changed,
                            format!(
                                "column `{name}` changed type from {want} to {}",
                                column.data_type
                            ),
                        ));
                    }
                }
            }
        }
    }
    for column in actual {
        if !expected
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(&column.name))
        {
            differences.push((
                actions.added,
                format!("column `{}` ({}) was added", column.name, column.data_type),
            ));
        }
    }
    differences.retain(|(action, _)| *action != DriftAction::Ignore);
    if differences.is_empty() {
        return Verdict::new(
            false,
            Some(0.0),
            format!("{} columns match {against}", actual.len()),
        );
    }
    let status = if differences.iter().any(|(a, _)| *a == DriftAction::Fail) {
        Status::Breach
    } else {
        Status::Warn
    };
    let count = differences.len();
    let list = differences
        .into_iter()
        .map(|(_, d)| d)
        .collect::<Vec<_>>()
        .join("; ");
    let noun = if count == 1 {
        "difference"
    } else {
        "differences"
    };
    Verdict {
        status,
        observed: Some(count as f64),
        message: format!("{count} {noun} from {against}: {list}"),
    }
}

fn expect_name(e: Expect) -> &'static str {
    match e {
        Expect::Today => "today",
        Expect::Yesterday => "yesterday",
    }
}

fn action_name(a: DriftAction) -> &'static str {
    match a {
        DriftAction::Warn => "warn",
        DriftAction::Fail => "fail",
        DriftAction::Ignore => "ignore",
    }
}

/// A fraction as a percentage: `0.012` → `1.2%`, `0.35` → `35%`; tiny
/// non-zero values keep enough digits not to read as 0%.
pub(crate) fn pct(fraction: f64) -> String {
    let v = fraction * 100.0;
    let decimals = if v != 0.0 && v.abs() < 0.01 {
        (-v.abs().log10()).ceil() as usize + 1
    } else {
        2
    };
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    format!("{s}%")
}

fn signed_pct(fraction: f64) -> String {
    if fraction > 0.0 {
        format!("+{}", pct(fraction))
    } else {
        pct(fraction)
    }
}

/// A number without a useless `.0`, with at most 6 decimals.
fn fmt_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{x:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Seconds as `7h 12m`, `45s`, `2d 3h`: whole seconds, two largest units.
fn human(seconds: f64) -> String {
    let total = seconds.round() as u64;
    let units = [
        (total / 86_400, "d"),
        (total % 86_400 / 3_600, "h"),
        (total % 3_600 / 60, "m"),
        (total % 60, "s"),
    ];
    let parts: Vec<String> = units
        .iter()
        .filter(|(n, _)| *n > 0)
        .take(2)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::check::Observation;
    use crate::config::SourcePos;
    use crate::domain::{DatasetName, Identifier, Ratio, TableRef};

    const PARIS: Tz = chrono_tz::Europe::Paris;

    fn spec(kind: CheckKind, severity: Severity) -> CheckSpec {
        let ds = DatasetName::parse("orders").unwrap();
        CheckSpec {
            id: CheckId::new(&ds, "c").unwrap(),
            name: "c".into(),
            kind,
            severity,
            blocking: true,
            filter: None,
            pos: SourcePos {
                file: PathBuf::from("x.yaml"),
                line: 1,
                column: 1,
            },
        }
    }

    fn dataset() -> Dataset {
        Dataset {
            name: DatasetName::parse("orders").unwrap(),
            warehouse: "main".into(),
            table: TableRef::parse("orders").unwrap(),
            tier: 1,
            owner: None,
            runbook: None,
            schedule: crate::config::Schedule {
                expr: "@daily".into(),
                cron: "0 0 * * *".parse().unwrap(),
            },
            partition: None,
            gate_table: TableRef::parse("orders").unwrap(),
            checks: Vec::new(),
            pos: SourcePos {
                file: PathBuf::from("x.yaml"),
                line: 1,
                column: 1,
            },
        }
    }

    fn eval_at(kind: CheckKind, severity: Severity, observed: Observed, now: &str) -> CheckResult {
        let obs = Observation {
            check: 0,
            partition: None,
            duration: Duration::from_millis(12),
            value: Ok(observed),
        };
        let ctx = EvalContext {
            now: now.parse().unwrap(),
            tz: PARIS,
        };
        evaluate(
            &dataset(),
            &spec(kind, severity),
            &obs,
            &Baselines::default(),
            &ctx,
        )
    }

    fn eval(kind: CheckKind, observed: Observed) -> CheckResult {
        eval_at(kind, Severity::Fail, observed, "2026-11-20T13:00:00Z")
    }

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    use std::time::Duration;

    #[test]
    fn severity_warn_turns_a_breach_into_a_warning() {
        let kind = || CheckKind::RowCount {
            min: Some(10),
            max: None,
        };
        let r = eval_at(
            kind(),
            Severity::Warn,
            Observed::RowCount { rows: 3 },
            "2026-11-20T13:00:00Z",
        );
        assert_eq!(r.outcome, Outcome::Warn);
        assert_eq!(r.message, "3 rows, below the minimum of 10");
        assert_eq!(r.duration_ms, 12);
        let r = eval(kind(), Observed::RowCount { rows: 3 });
        assert_eq!(r.outcome, Outcome::Fail);
        let r = eval(
            CheckKind::RowCount {
                min: Some(1),
                max: Some(5),
            },
            Observed::RowCount { rows: 6 },
        );
        assert_eq!(
            (r.outcome, r.message.as_str()),
            (Outcome::Fail, "6 rows, above the maximum of 5")
        );
        assert_eq!(r.threshold["min"], json!(1.0));
    }

    #[test]
    fn errors_are_never_passes_and_carry_no_value() {
        let obs = Observation {
            check: 0,
            partition: None,
            duration: Duration::ZERO,
            value: Err(crate::warehouse::WarehouseError::Timeout {
                timeout: Duration::from_secs(60),
                waited: Duration::ZERO,
            }
            .into()),
        };
        let ctx = EvalContext {
            now: Utc::now(),
            tz: PARIS,
        };
        let s = spec(
            CheckKind::RowCount {
                min: None,
                max: None,
            },
            Severity::Warn,
        );
        let r = evaluate(&dataset(), &s, &obs, &Baselines::default(), &ctx);
        assert_eq!((r.outcome, r.observed), (Outcome::Error, None));
        assert_eq!(r.message, "query timed out after 60s");
    }

    #[test]
    fn null_rates_report_percentages() {
        let kind = || CheckKind::NullRate {
            column: Identifier::parse("customer_id").unwrap(),
            max: Ratio::parse("1%", true).unwrap(),
        };
        let r = eval(
            kind(),
            Observed::NullCount {
                rows: 50_000,
                non_null: 49_400,
            },
        );
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(r.observed, Some(0.012));
        assert_eq!(
            r.message,
            "1.2% of 50000 rows are NULL in customer_id (max 1%)"
        );
        let r = eval(
            kind(),
            Observed::NullCount {
                rows: 100,
                non_null: 99,
            },
        );
        assert_eq!(r.outcome, Outcome::Pass, "the limit itself passes");
        let r = eval(
            kind(),
            Observed::NullCount {
                rows: 0,
                non_null: 0,
            },
        );
        assert_eq!(
            (r.outcome, r.message.as_str()),
            (Outcome::Pass, "rows=0: no rows, so no NULLs in customer_id")
        );
    }

    #[test]
    fn percentages_keep_tiny_values_visible() {
        assert_eq!(pct(0.0), "0%");
        assert_eq!(pct(0.35), "35%");
        assert_eq!(pct(1.0 / 3.0), "33.33%");
        assert_eq!(pct(0.000_000_1), "0.00001%");
        assert_eq!(signed_pct(0.2), "+20%");
        assert_eq!(signed_pct(-0.4), "-40%");
    }

    #[test]
    fn row_count_change_compares_with_the_baseline() {
        let r = row_count_change(70, Some(100.0), ChangeBaseline::Day, false, Some(0.3), None);
        assert_eq!(
            (r.status, r.observed),
            (Status::Pass, Some(-0.3)),
            "exactly the limit passes"
        );
        let r = row_count_change(69, Some(100.0), ChangeBaseline::Day, false, Some(0.3), None);
        assert_eq!(r.status, Status::Breach);
        assert_eq!(
            r.message,
            "69 rows, -31% vs 100 1 day earlier: dropped more than 30%"
        );
        let r = row_count_change(
            400,
            Some(100.0),
            ChangeBaseline::Previous,
            false,
            None,
            Some(2.0),
        );
        assert_eq!(r.status, Status::Breach);
        assert_eq!(
            r.message,
            "400 rows, +300% vs 100 the previous run: grew more than 200%"
        );
        let r = row_count_change(
            50,
            Some(100.0),
            ChangeBaseline::Previous,
            true,
            Some(0.3),
            None,
        );
        assert_eq!(
            r.message,
            "50 rows, -50% vs 100 the previous partition: dropped more than 30%"
        );
        let r = row_count_change(5, None, ChangeBaseline::Week, false, Some(0.3), None);
        assert_eq!((r.status, r.observed), (Status::Pass, None));
        assert_eq!(
            r.message,
            "no baseline yet (7 days earlier); 5 rows recorded"
        );
        let r = row_count_change(5, Some(0.0), ChangeBaseline::Week, false, None, Some(1.0));
        assert_eq!(r.status, Status::Breach);
        let r = row_count_change(0, Some(0.0), ChangeBaseline::Week, false, None, Some(1.0));
        assert_eq!((r.status, r.observed), (Status::Pass, Some(0.0)));
    }

    #[test]
    fn freshness_reads_values_in_the_agent_zone() {
        let lag = |v: Value| {
            let r = eval(
                CheckKind::Freshness {
                    column: Identifier::parse("t").unwrap(),
                    rule: FreshnessRule::MaxLag(Duration::from_secs(3 * 3600)),
                },
                Observed::Latest { value: v },
            );
            (r.outcome, r.observed)
        };
        // now = 13:00 UTC = 14:00 in Paris.
        assert_eq!(
            lag(Value::Timestamp(naive("2026-11-20 12:00:00"))),
            (Outcome::Pass, Some(7200.0))
        );
        assert_eq!(
            lag(Value::TimestampTz("2026-11-20T12:00:00Z".parse().unwrap())),
            (Outcome::Pass, Some(3600.0))
        );
        assert_eq!(
            lag(Value::Date("2026-11-20".parse().unwrap())),
            (Outcome::Fail, Some(50400.0))
        );
        assert_eq!(
            lag(Value::Text("2026-11-20 12:00:00".into())),
            (Outcome::Pass, Some(7200.0))
        );
        assert_eq!(
            lag(Value::Text("2026-11-20T12:00:00.250".into())),
            (Outcome::Pass, Some(7199.75))
        );
        assert_eq!(
            lag(Value::Text("2026-11-20 12:00:00+00:00".into())),
            (Outcome::Pass, Some(3600.0))
        );
        assert_eq!(
            lag(Value::Text("2026-11-20T12:00:00Z".into())),
            (Outcome::Pass, Some(3600.0))
        );
        assert_eq!(
            lag(Value::Text("2026-11-20 12:00:00Z".into())),
            (Outcome::Pass, Some(3600.0))
        );
        assert_eq!(
            lag(Value::Text("2026-11-20".into())),
            (Outcome::Fail, Some(50400.0))
        );
        assert_eq!(lag(Value::Int(1795176000)), (Outcome::Pass, Some(3600.0)));
        assert_eq!(lag(Value::Text("yesterday".into())), (Outcome::Error, None));
        assert_eq!(lag(Value::Null), (Outcome::Fail, None));
        // In the future: a lag below zero passes.
        assert_eq!(
            lag(Value::TimestampTz("2026-11-20T13:05:00Z".parse().unwrap())),
            (Outcome::Pass, Some(-300.0))
        );
    }

    #[test]
    fn freshness_messages_say_how_old() {
        let r = eval(
            CheckKind::Freshness {
                column: Identifier::parse("updated_at").unwrap(),
                rule: FreshnessRule::MaxLag(Duration::from_secs(6 * 3600)),
            },
            Observed::Latest {
                value: Value::TimestampTz("2026-11-20T05:47:57Z".parse().unwrap()),
            },
        );
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(r.message, "latest updated_at is 7h 12m old (max 6h)");
        assert_eq!(r.threshold["max_lag_seconds"], json!(21600.0));
    }

    #[test]
    fn deadlines_move_at_the_local_hour() {
        let kind = |expect| CheckKind::Freshness {
            column: Identifier::parse("order_date").unwrap(),
            rule: FreshnessRule::Deadline {
                by: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                expect,
            },
        };
        let latest = || Observed::Latest {
            value: Value::Date("2026-11-19".parse().unwrap()),
        };
        // 07:59 in Paris on the 21st: until 08:00, the 19th is enough for "yesterday".
        let r = eval_at(
            kind(Expect::Yesterday),
            Severity::Fail,
            latest(),
            "2026-11-21T06:59:00Z",
        );
        assert_eq!(r.outcome, Outcome::Pass, "{}", r.message);
        assert_eq!(
            r.message,
            "latest order_date is 2026-11-19, at or after the expected 2026-11-19 \
             (until 08:00 (Europe/Paris), when 2026-11-20 becomes due); 2d 7h old"
        );
        // 08:00 in Paris: the 20th is due.
        let r = eval_at(
            kind(Expect::Yesterday),
            Severity::Fail,
            latest(),
            "2026-11-21T07:00:00Z",
        );
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(
            r.message,
            "latest order_date is 2026-11-19, before the expected 2026-11-20 (since 08:00 (Europe/Paris)); 2d 8h old"
        );
        assert_eq!(r.threshold["expected_date"], json!("2026-11-20"));
        assert_eq!(r.threshold["by"], json!("08:00"));
        // A timestamp late in the local day counts for that local day.
        let r = eval_at(
            kind(Expect::Today),
            Severity::Fail,
            Observed::Latest {
                value: Value::TimestampTz("2026-11-20T23:30:00Z".parse().unwrap()),
            },
            "2026-11-21T08:00:00Z",
        );
        assert_eq!(
            r.outcome,
            Outcome::Pass,
            "00:30 on the 21st in Paris: {}",
            r.message
        );
    }

    #[test]
    fn sql_needs_one_numeric_value() {
        let kind = || CheckKind::Sql {
            query: String::new(),
            min: Some(1.0),
            max: Some(10.0),
        };
        let rows = |v: Vec<Vec<Value>>| Observed::Rows { rows: v };
        assert_eq!(
            eval(kind(), rows(vec![vec![Value::Float(2.5)]])).outcome,
            Outcome::Pass
        );
        assert_eq!(
            eval(kind(), rows(vec![vec![Value::Text("12".into())]])).message,
            "returned 12, above the maximum of 10"
        );
        assert_eq!(
            eval(kind(), rows(vec![vec![Value::Int(0)]])).message,
            "returned 0, below the minimum of 1"
        );
        let r = eval(kind(), rows(vec![]));
        assert_eq!(
            (r.outcome, r.message.as_str()),
            (
                Outcome::Error,
                "the query returned no rows; it must return one row"
            )
        );
        let r = eval(
            kind(),
            rows(vec![vec![Value::Date("2026-11-20".parse().unwrap())]]),
        );
        assert_eq!(
            r.message,
            "the query returned the date `2026-11-20`; it must return a number"
        );
    }

    #[test]
    fn unique_counts_rows_beyond_the_first_per_key() {
        let kind = CheckKind::Unique {
            columns: vec![Identifier::parse("id").unwrap()],
            max: 2,
        };
        let r = eval(
            kind,
            Observed::Keys {
                keyed_rows: 10,
                distinct: 8,
            },
        );
        assert_eq!((r.outcome, r.observed), (Outcome::Pass, Some(2.0)));
        assert_eq!(
            r.message,
            "2 duplicate rows over (id) among 10 rows with a non-NULL key (max 2)"
        );
    }

    #[test]
    fn schema_drift_follows_each_action() {
        let actual = vec![
            CatalogColumn::new("id", "int8"),
            CatalogColumn::new("note", "varchar(10)"),
        ];
        let expected = vec![
            ("ID".to_owned(), Some("bigint".to_owned())),
            ("gone".to_owned(), None),
        ];
        let all = |a| DriftActions {
            added: a,
            removed: a,
            type_changed: a,
        };
        let v = schema(&expected, &actual, all(DriftAction::Ignore), "x");
        assert_eq!((v.status, v.observed), (Status::Pass, Some(0.0)));
        let v = schema(&expected, &actual, all(DriftAction::Warn), "x");
        assert_eq!(v.status, Status::Warn);
        assert_eq!(
            v.message,
            "2 differences from x: column `gone` was removed; column `note` (text) was added"
        );
        let v = schema(
            &expected,
            &actual,
            DriftActions {
                added: DriftAction::Warn,
                removed: DriftAction::Fail,
                type_changed: DriftAction::Fail,
            },
            "x",
        );
        assert_eq!(v.status, Status::Breach);
        let typed = vec![
            ("id".to_owned(), Some("integer".to_owned())),
            ("note".to_owned(), Some("text".to_owned())),
        ];
        let v = schema(&typed, &actual, all(DriftAction::Fail), "x");
        assert_eq!(
            v.message,
            "1 difference from x: column `id` changed type from integer to bigint"
        );
    }

    #[test]
    fn local_times_in_dst_transitions_resolve() {
        // 2026-03-29 02:30 does not exist in Paris (clocks jump 02:00 → 03:00).
        let gap = crate::check::local_to_utc(naive("2026-03-29 02:30:00"), PARIS);
        assert_eq!(
            gap,
            "2026-03-29T01:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        // 2026-10-25 02:30 happens twice; the earlier one is taken.
        let twice = crate::check::local_to_utc(naive("2026-10-25 02:30:00"), PARIS);
        assert_eq!(
            twice,
            "2026-10-25T00:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(0.0), "0s");
        assert_eq!(human(45.0), "45s");
        assert_eq!(human(25_920.0), "7h 12m");
        assert_eq!(human(183_600.0), "2d 3h");
    }
}
