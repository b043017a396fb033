//! The monitors of a discovered table, as pure rules: what the catalog says
//! now and what the registry kept of the last run become results and the
//! record the next run compares against. No database here.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Discover;
use crate::check::kind::drift_from_baseline;
use crate::check::{CheckResult, Outcome, Status, Verdict};
use crate::detect::{self, Band, Direction, Point, PointOutcome, Seasonality};
use crate::domain::DatasetName;
use crate::format;
use crate::registry::{DiscoveredRecord, StoredColumn};
use crate::warehouse::SchemaTable;

/// The `kind` of each monitor's results.
pub const FRESHNESS: &str = "freshness";
pub const VOLUME: &str = "volume";
pub const SCHEMA: &str = "schema";

/// What one table's monitors decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub results: Vec<CheckResult>,
    /// What the registry keeps for the next run; `None`: forget the table.
    pub record: Option<DiscoveredRecord>,
    /// The schema to store as the table's baseline (the first one seen).
    pub new_baseline: Option<Vec<StoredColumn>>,
}

/// How many change times a table keeps: 60 intervals between them.
pub const KEPT_CHANGES: usize = 61;
/// Intervals between changes needed before a learned limit is used.
pub const LEARN_FROM: usize = 14;
/// A change later than usual by less than this share of the usual interval
/// never fails, however regular the table.
pub const MIN_LATE: f64 = 0.2;

/// The freshness limit of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// `freshness.max_lag`, when it is set.
    Fixed(Duration),
    /// Learned from the table's rhythm: the expected interval between its
    /// changes; the limit is the band's upper bound, in seconds.
    Learned { band: Band, intervals: usize },
    /// Too few intervals seen yet: `have` of `need`.
    Learning { have: usize, need: usize },
}

/// The detector's settings for the intervals between a table's changes:
/// only a longer one alerts, no seasonality (60 intervals are too few to
/// tell one), the whole kept list trains it.
pub fn rhythm_settings() -> detect::Settings {
    detect::Settings {
        direction: Direction::Spike,
        seasonality: Seasonality::None,
        training: chrono::Duration::weeks(52 * 20),
        min_training: LEARN_FROM,
        min_change: MIN_LATE,
        ..detect::Settings::default()
    }
}

/// The freshness limit of a table whose last changes were at `changes`
/// (oldest first), judged at `now`: `freshness.max_lag` when it is set,
/// else the upper bound of the band the anomaly detector draws around the
/// intervals between those changes.
pub fn freshness_limit(spec: &Discover, changes: &[DateTime<Utc>], now: DateTime<Utc>) -> Limit {
    if let Some(max) = spec.max_lag {
        return Limit::Fixed(max);
    }
    let points: Vec<Point> = changes
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| Point {
            at: w[1].naive_utc(),
            value: seconds(w[1] - w[0]),
            outcome: PointOutcome::Normal,
        })
        .collect();
    let lag = changes.last().map_or(0.0, |last| seconds(now - *last));
    match detect::detect(&points, now.naive_utc(), lag, &rhythm_settings()) {
        detect::Verdict::Learning { have, need } => Limit::Learning { have, need },
        detect::Verdict::Judged(j) => Limit::Learned {
            band: j.expected,
            intervals: j.trained_on,
        },
    }
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds().max(0) as f64 / 1000.0
}

/// `times` with `at` appended when it is a change after the last one kept,
/// the oldest dropped past [`KEPT_CHANGES`].
fn with_change(times: &[DateTime<Utc>], at: Option<DateTime<Utc>>) -> Vec<DateTime<Utc>> {
    let mut out = times.to_vec();
    if let Some(at) = at
        && out.last().is_none_or(|last| at > *last)
    {
        out.push(at);
    }
    let extra = out.len().saturating_sub(KEPT_CHANGES);
    out.drain(..extra);
    out
}

/// Judges a table the catalog lists.
pub fn judge_present(
    spec: &Discover,
    dataset: &DatasetName,
    table: &SchemaTable,
    record: Option<&DiscoveredRecord>,
    baseline: Option<&[StoredColumn]>,
    now: DateTime<Utc>,
) -> Judged {
    let mark = table.change_mark();
    // Reappearing after a drop counts as a change.
    let moved = match record {
        None => false,
        Some(r) => r.dropped_at.is_some() || (mark.is_some() && r.change_mark != mark),
    };
    let changed_at = table
        .changed_at
        .or(moved.then_some(now))
        .or(record.and_then(|r| r.changed_at));
    let change_times = with_change(record.map_or(&[][..], |r| &r.change_times), changed_at);
    let mut results = Vec::new();
    let mut row_estimate = table.rows.map(|r| r as i64);

    if spec.monitors.freshness && mark.is_some() {
        let limit = freshness_limit(spec, &change_times, now);
        results.push(freshness(dataset, changed_at, record, limit, now));
    }
    if spec.monitors.volume
        && let Some(rows) = table.rows
    {
        let previous = record.and_then(|r| r.row_estimate).map(|p| p.max(0) as u64);
        let (result, keep) = volume(dataset, rows, previous, spec.max_drop);
        // A table emptied stays failing against the rows it had until it
        // fills again: its baseline is not lowered to 0.
        if !keep {
            row_estimate = previous.map(|p| p as i64);
        }
        results.push(result);
    }
    let mut new_baseline = None;
    if spec.monitors.schema {
        let verdict = match baseline {
            Some(stored) => drift_from_baseline(stored, &table.columns),
            None => {
                new_baseline = Some(
                    table
                        .columns
                        .iter()
                        .map(crate::check::stored_column)
                        .collect(),
                );
                Verdict::new(
                    false,
                    Some(0.0),
                    format!(
                        "no baseline yet; the current schema ({} columns) becomes the baseline",
                        table.columns.len()
                    ),
                )
            }
        };
        let mut t = BTreeMap::new();
        t.insert("on_added".into(), json!("warn"));
        t.insert("on_removed".into(), json!("fail"));
        t.insert("on_type_changed".into(), json!("fail"));
        results.push(result(dataset, SCHEMA, verdict, t));
    }
    let record = DiscoveredRecord {
        warehouse: spec.warehouse.clone(),
        schema_name: spec.schema.to_string(),
        table_name: table.name.clone(),
        dataset: dataset.to_string(),
        first_seen: record.map_or(now, |r| r.first_seen),
        last_seen: now,
        changed_at,
        change_mark: mark,
        row_estimate,
        dropped_at: None,
        change_times,
    };
    Judged {
        results,
        record: Some(record),
        new_baseline,
    }
}

/// Judges a table the registry remembers and the catalog no longer lists:
/// its schema monitor fails once ("table dropped"); after that it yields
/// nothing until `forget_after` has passed, when it is forgotten.
pub fn judge_missing(spec: &Discover, record: &DiscoveredRecord, now: DateTime<Utc>) -> Judged {
    match record.dropped_at {
        None => {
            let verdict = Verdict::new(
                true,
                None,
                format!(
                    "table dropped: `{}` is no longer in the catalog of `{}` (last seen {})",
                    record.table_name,
                    spec.group(),
                    record.last_seen.format("%Y-%m-%d %H:%M:%S UTC")
                ),
            );
            let mut t = BTreeMap::new();
            t.insert("on_removed".into(), json!("fail"));
            Judged {
                results: vec![result_named(&record.dataset, SCHEMA, verdict, t)],
                record: Some(DiscoveredRecord {
                    dropped_at: Some(now),
                    ..record.clone()
                }),
                new_baseline: None,
            }
        }
        Some(dropped) => {
            let gone_for = (now - dropped).to_std().unwrap_or_default();
            Judged {
                results: Vec::new(),
                record: (gone_for < spec.forget_after).then(|| record.clone()),
                new_baseline: None,
            }
        }
    }
}

fn freshness(
    dataset: &DatasetName,
    changed_at: Option<DateTime<Utc>>,
    record: Option<&DiscoveredRecord>,
    limit: Limit,
    now: DateTime<Utc>,
) -> CheckResult {
    let (since, what) = match (changed_at, record) {
        (Some(at), _) => (at, "last changed"),
        (None, Some(r)) => (r.first_seen, "no change seen since warden began watching"),
        (None, None) => (now, "no change seen since warden began watching"),
    };
    let lag = (now - since).num_milliseconds().max(0) as f64 / 1000.0;
    let ago = format::duration(lag);
    let mut t = BTreeMap::new();
    let verdict = match limit {
        Limit::Fixed(limit) => {
            let max = limit.as_secs_f64();
            t.insert("max_lag_seconds".into(), json!(max));
            Verdict::new(
                lag > max,
                Some(lag),
                format!("{what} {ago} ago (max {})", format::duration(max)),
            )
        }
        Limit::Learned { band, intervals } => {
            let max = band.upper;
            t.insert("max_lag_seconds".into(), json!(max));
            t.insert("learned".into(), json!(true));
            let mut v = Verdict::new(
                lag > max,
                Some(lag),
                format!(
                    "{what} {ago} ago (max {}, learned from {intervals} changes about {} apart)",
                    format::duration(max),
                    format::duration(band.center)
                ),
            );
            v.expected = Some(crate::domain::Expected {
                lower: band.lower,
                center: band.center,
                upper: band.upper,
            });
            v
        }
        Limit::Learning { have, need } => Verdict::new(
            false,
            Some(lag),
            format!("{what} {ago} ago; learning: {have} of {need} changes"),
        ),
    };
    result(dataset, FRESHNESS, verdict, t)
}

/// The volume verdict, and whether `rows` becomes the next baseline.
fn volume(
    dataset: &DatasetName,
    rows: u64,
    previous: Option<u64>,
    max_drop: f64,
) -> (CheckResult, bool) {
    let mut t = BTreeMap::new();
    t.insert("max_drop".into(), json!(max_drop));
    let estimate = format::count(rows);
    let (verdict, keep) = match previous {
        None => (
            Verdict::new(
                false,
                Some(rows as f64),
                format!("about {estimate} rows; later runs compare against this estimate"),
            ),
            true,
        ),
        Some(before) if rows == 0 && before > 0 => (
            Verdict::new(
                true,
                Some(0.0),
                format!(
                    "the row estimate dropped to 0 from about {}",
                    format::count(before)
                ),
            ),
            false,
        ),
        Some(before) if before > 0 && rows < before => {
            let drop = (before - rows) as f64 / before as f64;
            let breach = drop > max_drop;
            (
                Verdict::new(
                    breach,
                    Some(rows as f64),
                    format!(
                        "the row estimate dropped {} to about {estimate} from about {} (max drop {})",
                        format::percent(drop),
                        format::count(before),
                        format::percent(max_drop)
                    ),
                ),
                true,
            )
        }
        Some(before) => (
            Verdict::new(
                false,
                Some(rows as f64),
                format!(
                    "about {estimate} rows (about {} at the last run)",
                    format::count(before)
                ),
            ),
            true,
        ),
    };
    (result(dataset, VOLUME, verdict, t), keep)
}

fn result(
    dataset: &DatasetName,
    kind: &str,
    verdict: Verdict,
    threshold: BTreeMap<String, serde_json::Value>,
) -> CheckResult {
    result_named(dataset.as_str(), kind, verdict, threshold)
}

fn result_named(
    dataset: &str,
    kind: &str,
    verdict: Verdict,
    threshold: BTreeMap<String, serde_json::Value>,
) -> CheckResult {
    let outcome = match verdict.status {
        Status::Pass => Outcome::Pass,
        Status::Warn => Outcome::Warn,
        Status::Breach => Outcome::Fail,
        Status::Error => Outcome::Error,
    };
    CheckResult {
        check: format!("{dataset}.{kind}"),
        dataset: dataset.to_owned(),
        kind: kind.to_owned(),
        column: None,
        partition: None,
        outcome,
        observed: verdict.observed,
        threshold,
        message: verdict.message,
        duration_ms: 0,
        expected: verdict.expected,
        score: verdict.score,
    }
}

/// Every monitor of a dataset as an `error` with `message` (the catalog
/// could not be read).
pub fn all_error(spec: &Discover, record: &DiscoveredRecord, message: &str) -> Vec<CheckResult> {
    let kinds = [
        (spec.monitors.freshness, FRESHNESS),
        (spec.monitors.volume, VOLUME),
        (spec.monitors.schema, SCHEMA),
    ];
    kinds
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, kind)| {
            result_named(
                &record.dataset,
                kind,
                Verdict::error(message.to_owned()),
                BTreeMap::new(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::Monitors;
    use crate::domain::Identifier;
    use crate::source::SourcePos;

    const HOUR: Duration = Duration::from_secs(3600);

    fn spec() -> Discover {
        Discover {
            warehouse: "main".into(),
            schema: Identifier::parse("analytics").unwrap(),
            include: vec![glob::Pattern::new("*").unwrap()],
            exclude: vec![glob::Pattern::new("tmp_*").unwrap()],
            tier: 3,
            owner: None,
            schedule: None,
            monitors: Monitors::ALL,
            max_lag: Some(26 * HOUR),
            max_drop: 0.5,
            forget_after: 7 * 24 * HOUR,
            pos: SourcePos {
                file: "checks.yaml".into(),
                line: 1,
                column: 1,
            },
        }
    }

    fn table(rows: u64, counter: u64) -> SchemaTable {
        SchemaTable {
            name: "orders".into(),
            columns: vec![crate::warehouse::CatalogColumn::new("id", "bigint")],
            rows: Some(rows),
            changed_at: None,
            counter: Some(counter),
        }
    }

    fn outcome(j: &Judged, kind: &str) -> Outcome {
        j.results.iter().find(|r| r.kind == kind).unwrap().outcome
    }

    #[test]
    fn volume_fails_past_max_drop_and_stays_failing_at_zero() {
        let spec = spec();
        let name = DatasetName::discovered("main", "analytics", "orders").unwrap();
        let now = Utc::now();
        let first = judge_present(&spec, &name, &table(1000, 1), None, None, now);
        assert_eq!(outcome(&first, VOLUME), Outcome::Pass);
        let rec = first.record.unwrap();
        // 30% down passes, and becomes the baseline.
        let j = judge_present(&spec, &name, &table(700, 2), Some(&rec), None, now);
        assert_eq!(outcome(&j, VOLUME), Outcome::Pass);
        let rec = j.record.unwrap();
        assert_eq!(rec.row_estimate, Some(700));
        // 60% down fails.
        let j = judge_present(&spec, &name, &table(280, 3), Some(&rec), None, now);
        assert_eq!(outcome(&j, VOLUME), Outcome::Fail);
        // To 0 fails, and the baseline stays at the rows it had.
        let j = judge_present(&spec, &name, &table(0, 4), Some(&rec), None, now);
        assert_eq!(outcome(&j, VOLUME), Outcome::Fail);
        assert_eq!(j.record.unwrap().row_estimate, Some(700));
    }

    #[test]
    fn a_moving_counter_is_a_change_seen_at_the_run() {
        let spec = spec();
        let name = DatasetName::discovered("main", "analytics", "orders").unwrap();
        let t0 = Utc::now();
        let rec = judge_present(&spec, &name, &table(10, 1), None, None, t0)
            .record
            .unwrap();
        assert_eq!(rec.changed_at, None);
        let later = t0 + chrono::Duration::hours(30);
        let stale = judge_present(&spec, &name, &table(10, 1), Some(&rec), None, later);
        assert_eq!(outcome(&stale, FRESHNESS), Outcome::Fail);
        let moved = judge_present(&spec, &name, &table(10, 2), Some(&rec), None, later);
        assert_eq!(outcome(&moved, FRESHNESS), Outcome::Pass);
        assert_eq!(moved.record.unwrap().changed_at, Some(later));
    }

    #[test]
    fn a_dropped_table_fails_once_then_is_forgotten() {
        let spec = spec();
        let name = DatasetName::discovered("main", "analytics", "orders").unwrap();
        let t0 = Utc::now();
        let rec = judge_present(&spec, &name, &table(10, 1), None, None, t0)
            .record
            .unwrap();
        let gone = judge_missing(&spec, &rec, t0);
        assert_eq!(outcome(&gone, SCHEMA), Outcome::Fail);
        let rec = gone.record.unwrap();
        let quiet = judge_missing(&spec, &rec, t0 + chrono::Duration::days(1));
        assert!(quiet.results.is_empty());
        assert!(quiet.record.is_some());
        let forgotten = judge_missing(&spec, &rec, t0 + chrono::Duration::days(7));
        assert!(forgotten.record.is_none());
    }

    /// Change times `every` apart, the `i`th shifted by `jitter(i)` seconds.
    fn rhythm(n: usize, every: i64, jitter: impl Fn(usize) -> i64) -> Vec<DateTime<Utc>> {
        let t0 = DateTime::parse_from_rfc3339("2026-11-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        (0..n)
            .map(|i| t0 + chrono::Duration::seconds(every * i as i64 + jitter(i)))
            .collect()
    }

    #[test]
    fn max_lag_is_the_limit_when_set() {
        let changes = rhythm(30, 600, |_| 0);
        let now = *changes.last().unwrap();
        assert_eq!(
            freshness_limit(&spec(), &changes, now),
            Limit::Fixed(26 * HOUR)
        );
    }

    #[test]
    fn the_limit_is_learning_until_enough_intervals() {
        let spec = Discover {
            max_lag: None,
            ..spec()
        };
        assert_eq!(
            freshness_limit(&spec, &[], Utc::now()),
            Limit::Learning {
                have: 0,
                need: LEARN_FROM
            }
        );
        // 10 changes: 9 intervals, judged after the last.
        let changes = rhythm(10, 3600, |_| 0);
        let now = *changes.last().unwrap() + chrono::Duration::minutes(5);
        assert_eq!(
            freshness_limit(&spec, &changes, now),
            Limit::Learning {
                have: 9,
                need: LEARN_FROM
            }
        );
    }

    #[test]
    fn the_learned_limit_is_the_upper_bound_of_the_intervals() {
        let spec = Discover {
            max_lag: None,
            ..spec()
        };
        // Hourly, a minute or two early or late.
        let changes = rhythm(40, 3600, |i| [0, 60, -60, 120, -30][i % 5]);
        let now = *changes.last().unwrap() + chrono::Duration::minutes(1);
        let Limit::Learned { band, intervals } = freshness_limit(&spec, &changes, now) else {
            panic!("learned");
        };
        assert_eq!(intervals, 39);
        assert!((3300.0..3900.0).contains(&band.center), "{band:?}");
        assert!(band.upper >= 3600.0 * (1.0 + MIN_LATE) - 1.0, "{band:?}");
        assert!(band.upper < 2.0 * 3600.0, "{band:?}");
        // A steadier table gets a tighter limit: the floor of `MIN_LATE`.
        let steady = rhythm(40, 3600, |_| 0);
        let now = *steady.last().unwrap();
        let Limit::Learned { band: tight, .. } = freshness_limit(&spec, &steady, now) else {
            panic!("learned");
        };
        assert!(
            (tight.upper - 3600.0 * (1.0 + MIN_LATE)).abs() < 1.0,
            "{tight:?}"
        );
        assert!(tight.upper <= band.upper, "{tight:?} {band:?}");
    }

    #[test]
    fn a_table_learns_its_rhythm_then_fails_a_late_change() {
        let spec = Discover {
            max_lag: None,
            ..spec()
        };
        let name = DatasetName::discovered("main", "analytics", "orders").unwrap();
        let changes = rhythm(20, 600, |_| 0);
        let mut rec = judge_present(&spec, &name, &table(10, 0), None, None, changes[0])
            .record
            .unwrap();
        for (i, at) in changes.iter().enumerate() {
            let j = judge_present(
                &spec,
                &name,
                &table(10, i as u64 + 1),
                Some(&rec),
                None,
                *at,
            );
            assert_eq!(outcome(&j, FRESHNESS), Outcome::Pass, "{j:#?}");
            rec = j.record.unwrap();
        }
        assert_eq!(rec.change_times, changes);
        let last = *changes.last().unwrap();
        let still = table(10, changes.len() as u64);
        let on_time = judge_present(
            &spec,
            &name,
            &still,
            Some(&rec),
            None,
            last + chrono::Duration::minutes(11),
        );
        assert_eq!(outcome(&on_time, FRESHNESS), Outcome::Pass, "{on_time:#?}");
        let late = judge_present(
            &spec,
            &name,
            &still,
            Some(&rec),
            None,
            last + chrono::Duration::minutes(30),
        );
        let result = late.results.iter().find(|r| r.kind == FRESHNESS).unwrap();
        assert_eq!(result.outcome, Outcome::Fail, "{result:#?}");
        assert!(
            result.message.contains("learned from 19 changes"),
            "{}",
            result.message
        );
    }

    #[test]
    fn the_kept_changes_are_bounded() {
        let changes = rhythm(KEPT_CHANGES, 60, |_| 0);
        let next = *changes.last().unwrap() + chrono::Duration::minutes(1);
        let kept = with_change(&changes, Some(next));
        assert_eq!(kept.len(), KEPT_CHANGES);
        assert_eq!(kept[0], changes[1]);
        assert_eq!(*kept.last().unwrap(), next);
        // The same change seen again, or an older one, is not a new one.
        assert_eq!(with_change(&kept, Some(next)), kept);
        assert_eq!(with_change(&kept, Some(changes[0])), kept);
        assert_eq!(with_change(&kept, None), kept);
    }
}
