//! Turning observations into results: pure functions of the check, what was
//! observed, any stored baseline, and the clock.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::kind::Judge;
use super::observation::{DatasetObservations, Observation};
use super::spec::{CheckSpec, Dataset, Severity};
use super::{CheckResult, Outcome};
use crate::domain::CheckId;
use crate::warehouse::CatalogColumn;

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
    /// Per `anomaly` check: its history and where the value judged stands.
    pub anomaly: HashMap<CheckId, crate::check::kind::AnomalyHistory>,
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
    let kind = spec.kind.get();
    let mut threshold = BTreeMap::new();
    kind.thresholds(&mut threshold);
    let verdict = match &obs.value {
        Err(e) => Verdict::error(e.to_string()),
        Ok(observed) => {
            let cx = Judge {
                id: &spec.id,
                partitioned: obs.partition.is_some(),
                baselines,
                ctx,
            };
            kind.judge(observed, &cx, &mut threshold)
        }
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
        expected: verdict.expected.filter(|_| outcome != Outcome::Error),
        score: verdict.score.filter(|_| outcome != Outcome::Error),
    }
}

/// A check's verdict before severity is applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    pub status: Status,
    pub observed: Option<f64>,
    pub message: String,
    /// The band an `anomaly` check judged against.
    pub expected: Option<crate::domain::Expected>,
    pub score: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Pass,
    /// A difference the config asks to warn about whatever the severity.
    Warn,
    /// Outside the limits: `fail`, or `warn` under `severity: warn`.
    Breach,
    Error,
}

impl Verdict {
    pub(crate) fn new(breach: bool, observed: Option<f64>, message: String) -> Self {
        Self {
            status: if breach { Status::Breach } else { Status::Pass },
            observed,
            message,
            expected: None,
            score: None,
        }
    }

    pub(crate) fn error(message: String) -> Self {
        Self {
            status: Status::Error,
            observed: None,
            message,
            expected: None,
            score: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use chrono::{NaiveDateTime, NaiveTime};
    use serde_json::json;

    use super::*;
    use crate::check::Observation;
    use crate::check::kind::{
        CheckKind, Expect, Freshness, FreshnessRule, NullRate, RowCount, Sql, Unique,
    };
    use crate::check::observation::Observed;
    use crate::check::spec::Schedule;
    use crate::domain::{DatasetName, Identifier, Ratio, TableRef};
    use crate::source::SourcePos;
    use crate::warehouse::Value;

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
            schedule: Some(Schedule {
                expr: "@daily".into(),
                cron: "0 0 * * *".parse().unwrap(),
            }),
            partition: None,
            gate_table: TableRef::parse("orders").unwrap(),
            gate_allow_empty: false,
            discovered: None,
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
        let kind = || {
            CheckKind::RowCount(RowCount {
                min: Some(10),
                max: None,
            })
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
            CheckKind::RowCount(RowCount {
                min: Some(1),
                max: Some(5),
            }),
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
            CheckKind::RowCount(RowCount {
                min: None,
                max: None,
            }),
            Severity::Warn,
        );
        let r = evaluate(&dataset(), &s, &obs, &Baselines::default(), &ctx);
        assert_eq!((r.outcome, r.observed), (Outcome::Error, None));
        assert_eq!(r.message, "query timed out after 60s");
    }

    #[test]
    fn null_rates_report_percentages() {
        let kind = || {
            CheckKind::NullRate(NullRate {
                column: Identifier::parse("customer_id").unwrap(),
                max: Ratio::parse("1%", true).unwrap(),
            })
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
    fn freshness_reads_values_in_the_agent_zone() {
        let lag = |v: Value| {
            let r = eval(
                CheckKind::Freshness(Freshness {
                    column: Identifier::parse("t").unwrap(),
                    rule: FreshnessRule::MaxLag(Duration::from_secs(3 * 3600)),
                }),
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
            CheckKind::Freshness(Freshness {
                column: Identifier::parse("updated_at").unwrap(),
                rule: FreshnessRule::MaxLag(Duration::from_secs(6 * 3600)),
            }),
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
        let kind = |expect| {
            CheckKind::Freshness(Freshness {
                column: Identifier::parse("order_date").unwrap(),
                rule: FreshnessRule::Deadline {
                    by: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                    expect,
                },
            })
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
        let kind = || {
            CheckKind::Sql(Sql {
                query: String::new(),
                min: Some(1.0),
                max: Some(10.0),
            })
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
        let kind = CheckKind::Unique(Unique {
            columns: vec![Identifier::parse("id").unwrap()],
            max: 2,
        });
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
}
