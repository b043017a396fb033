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

/// The freshness limit of a table: `freshness.max_lag` when it is set.
/// This is where a limit learned from the table's own rhythm plugs in;
/// until then `max_lag` is required whenever the freshness monitor is on.
pub fn freshness_limit(spec: &Discover, _record: Option<&DiscoveredRecord>) -> Option<Duration> {
    spec.max_lag
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
    let mut results = Vec::new();
    let mut row_estimate = table.rows.map(|r| r as i64);

    if spec.monitors.freshness && mark.is_some() {
        let limit = freshness_limit(spec, record);
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
    limit: Option<Duration>,
    now: DateTime<Utc>,
) -> CheckResult {
    let (since, what) = match (changed_at, record) {
        (Some(at), _) => (at, "last changed"),
        (None, Some(r)) => (r.first_seen, "no change seen since warden began watching"),
        (None, None) => (now, "no change seen since warden began watching"),
    };
    let lag = (now - since).num_milliseconds().max(0) as f64 / 1000.0;
    let mut t = BTreeMap::new();
    let verdict = match limit {
        Some(limit) => {
            let max = limit.as_secs_f64();
            t.insert("max_lag_seconds".into(), json!(max));
            Verdict::new(
                lag > max,
                Some(lag),
                format!(
                    "{what} {} ago (max {})",
                    format::duration(lag),
                    format::duration(max)
                ),
            )
        }
        None => Verdict::error(
            "no freshness limit: set `freshness.max_lag` on the discover entry".to_owned(),
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
        expected: None,
        score: None,
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
}
