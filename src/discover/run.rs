//! One run of a `discover:` entry: the one catalog statement, what the
//! registry kept of the last run, the monitors judged, and the results,
//! records and first-seen baselines written back.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Timelike, Utc};

use super::Discover;
use super::monitor::{self, Judged};
use crate::check::{CheckResult, Dataset, Runner};
use crate::registry::{DiscoveredRecord, RegistryError, RunRecord};

/// Who a first-seen schema of a discovered table is accepted by.
const FIRST_SEEN: &str = "warden (first seen schema, discovered)";

/// What a run of a `discover:` entry produced.
#[derive(Debug)]
pub struct DiscoverRun {
    /// Every monitor's result, for every table watched.
    pub results: Vec<CheckResult>,
    /// The datasets the results belong to (a dropped table's included),
    /// for the alerts they raise.
    pub datasets: Vec<Dataset>,
    /// Why the catalog could not be read, when it could not: the known
    /// tables' monitors are then `error`.
    pub catalog_error: Option<String>,
    /// Why the results or records could not be written, when they could not.
    pub record_error: Option<RegistryError>,
}

/// Runs `spec` once at `now` on `runner`'s warehouse and registry. Tables
/// that `hand_written` datasets watch are left to them. With `record`, the
/// results, the tables' records and first-seen baselines are written.
pub async fn discover(
    runner: &Runner,
    spec: &Discover,
    hand_written: &[Dataset],
    now: DateTime<Utc>,
    record: bool,
) -> DiscoverRun {
    let now = now.with_nanosecond(0).unwrap_or(now);
    let started = Instant::now();
    let registry = runner.registry();
    let group_prefix = format!("{}.", spec.group());
    let (known, baselines) = match registry {
        Some(r) => {
            let known = r
                .discovered_tables(&spec.warehouse, spec.schema.as_str())
                .await;
            let baselines = r.schema_baselines_with_prefix(&group_prefix).await;
            match (known, baselines) {
                (Ok(k), Ok(b)) => (k, b),
                (Err(e), _) | (_, Err(e)) => {
                    return DiscoverRun {
                        results: Vec::new(),
                        datasets: Vec::new(),
                        catalog_error: None,
                        record_error: Some(e),
                    };
                }
            }
        }
        None => (Vec::new(), HashMap::new()),
    };

    let watched = |name: &str| {
        spec.matches(name) && !hand_written.iter().any(|ds| spec.written_by_hand(ds, name))
    };
    let catalog = match runner.warehouse_named(&spec.warehouse) {
        Some(wh) => wh
            .discover_tables(&spec.schema)
            .await
            .map_err(|e| e.to_string()),
        None => Err(format!(
            "warehouse `{}` cannot be used (see its connection error)",
            spec.warehouse
        )),
    };
    let tables = match catalog {
        Ok(tables) => tables,
        Err(message) => {
            let message = format!(
                "the catalog of `{}` could not be read: {message}",
                spec.group()
            );
            let mut results = Vec::new();
            let mut datasets = Vec::new();
            for r in known
                .iter()
                .filter(|r| r.dropped_at.is_none() && watched(&r.table_name))
            {
                if let Some(ds) = spec.dataset(&r.table_name) {
                    results.extend(monitor::all_error(spec, r, &message));
                    datasets.push(ds);
                }
            }
            let record_error = match registry.filter(|_| record) {
                Some(reg) => reg.record_run(&records(&results, now)).await.err(),
                None => None,
            };
            return DiscoverRun {
                results,
                datasets,
                catalog_error: Some(message),
                record_error,
            };
        }
    };

    let known: HashMap<&str, &DiscoveredRecord> =
        known.iter().map(|r| (r.table_name.as_str(), r)).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut results = Vec::new();
    let mut datasets = Vec::new();
    let mut keep = Vec::new();
    let mut forget = Vec::new();
    let mut new_baselines = Vec::new();
    for table in &tables {
        if !watched(&table.name) {
            continue;
        }
        let Some(ds) = spec.dataset(&table.name) else {
            tracing::warn!(
                table = %table.name,
                group = %spec.group(),
                "a table whose name is not a plain identifier is not discovered"
            );
            continue;
        };
        seen.insert(table.name.as_str());
        let previous = known.get(table.name.as_str()).copied();
        let baseline = baselines.get(ds.name.as_str()).map(Vec::as_slice);
        let Judged {
            results: judged,
            record: kept,
            new_baseline,
        } = monitor::judge_present(spec, &ds.name, table, previous, baseline, now);
        results.extend(judged);
        keep.extend(kept);
        if let Some(columns) = new_baseline {
            new_baselines.push((ds.name.to_string(), columns));
        }
        datasets.push(ds);
    }
    for (name, r) in &known {
        if seen.contains(name) {
            continue;
        }
        // A table the entry no longer includes (or that a hand-written
        // dataset now watches) is forgotten without an alert.
        if !watched(name) {
            forget.push((*r).clone());
            continue;
        }
        let judged = monitor::judge_missing(spec, r, now);
        if !judged.results.is_empty()
            && let Some(ds) = spec.dataset(name)
        {
            datasets.push(ds);
        }
        results.extend(judged.results);
        match judged.record {
            Some(kept) => keep.push(kept),
            None => forget.push((*r).clone()),
        }
    }
    let elapsed = started.elapsed().as_millis() as u64;
    let per_table = elapsed / (datasets.len().max(1) as u64);
    for r in &mut results {
        r.duration_ms = per_table;
    }

    let mut record_error = None;
    if let Some(reg) = registry.filter(|_| record) {
        // Results first: a run whose results were not kept leaves the
        // records as they were, so the next run judges the same changes.
        let saved = async {
            reg.record_run(&records(&results, now)).await?;
            reg.save_discovered(&keep, &forget).await?;
            reg.set_schema_baselines(&new_baselines, FIRST_SEEN).await
        };
        record_error = saved.await.err();
    }
    DiscoverRun {
        results,
        datasets,
        catalog_error: None,
        record_error,
    }
}

/// The results as registry rows; a volume result keeps its row estimate.
fn records(results: &[CheckResult], at: DateTime<Utc>) -> Vec<RunRecord> {
    results
        .iter()
        .map(|r| {
            let mut rec = RunRecord::new(r.clone(), at);
            if r.kind == monitor::VOLUME {
                rec.row_count = r.observed.map(|v| v as u64);
            }
            rec
        })
        .collect()
}
