//! `cargo bench --bench page`: `/` with 1,000 datasets renders from its
//! snapshot in under 200 ms.
//!
//! The snapshot is what the agent reads at most every 5 s: 1,000 datasets
//! (50 written by hand, 950 discovered in 10 schemas), 6 checks each, every
//! check with its latest result and its last 30 values (some failing, some
//! with an expected band). It renders the first page of `/` (what one load
//! renders: the whole list ordered, one page drawn), and each page of the
//! list as its own load, many times, and prints the median and p99 of each
//! against the target.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use serde_json::json;
use warden::check::{CheckResult, Outcome, Severity, Summary};
use warden::http::page::chart::{Band, Point, SPARK_POINTS};
use warden::http::page::home::{self, HomeQuery, PAGE_SIZE};
use warden::http::page::{CheckEntry, DatasetEntry, StatusSnapshot, WarehouseView};
use warden::http::view::{CheckView, DatasetView, ResultView};

const DATASETS: usize = 1_000;
const CHECKS: usize = 6;
const ROUNDS: usize = 60;
const TARGET: Duration = Duration::from_millis(200);

fn outcome(i: usize) -> Outcome {
    match i % 23 {
        0 => Outcome::Fail,
        7 => Outcome::Warn,
        13 => Outcome::Error,
        _ => Outcome::Pass,
    }
}

fn snapshot() -> StatusSnapshot {
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let kinds = [
        "row_count",
        "null_rate",
        "freshness",
        "unique",
        "row_count_change",
        "sql",
    ];
    let datasets = (0..DATASETS)
        .map(|d| {
            let group = (d >= 50).then(|| format!("main.schema_{}", d % 10));
            let name = match &group {
                Some(g) => format!("{g}.table_{d}"),
                None => format!("dataset_{d}"),
            };
            let checks: Vec<CheckEntry> = (0..CHECKS)
                .map(|c| {
                    let kind = kinds[c];
                    let id = format!("{name}.{kind}");
                    let recent: Vec<Point> = (0..SPARK_POINTS)
                        .map(|i| Point {
                            at: now - chrono::Duration::minutes((SPARK_POINTS - i) as i64 * 15),
                            partition: None,
                            value: 1000.0 + ((d * 7 + c * 3 + i * 11) % 97) as f64,
                            outcome: outcome(d + c + i),
                            band: (c == 5).then_some(Band {
                                lower: 990.0,
                                upper: 1090.0,
                            }),
                        })
                        .collect();
                    let last = recent.last().expect("points");
                    let result = CheckResult {
                        check: id.clone(),
                        dataset: name.clone(),
                        kind: kind.to_owned(),
                        column: None,
                        partition: None,
                        outcome: last.outcome,
                        observed: Some(last.value),
                        threshold: BTreeMap::from([("max".to_owned(), json!(1080.0))]),
                        message: format!("{} rows, at most 1080", last.value),
                        duration_ms: 12,
                        expected: None,
                        score: None,
                    };
                    CheckEntry {
                        check: CheckView {
                            check: id,
                            name: kind.to_owned(),
                            kind: kind.to_owned(),
                            column: None,
                            severity: Severity::Fail,
                            blocking: true,
                            last_result: Some(ResultView {
                                result,
                                scheduled_at: last.at,
                                recorded_at: last.at,
                            }),
                        },
                        recent,
                    }
                })
                .collect();
            let summary = Summary::of(
                checks
                    .iter()
                    .filter_map(|c| c.check.last_result.as_ref().map(|r| &r.result)),
            );
            let status = checks
                .iter()
                .filter_map(|c| c.check.last_result.as_ref().map(|r| r.result.outcome))
                .max_by_key(|o| warden::http::view::severity_rank(*o))
                .map_or("unknown", Outcome::as_str)
                .to_owned();
            DatasetEntry {
                dataset: DatasetView {
                    table: format!("analytics.table_{d}"),
                    name,
                    warehouse: "main".into(),
                    tier: (d % 3 + 1) as u8,
                    owner: Some("data-platform".into()),
                    runbook: None,
                    schedule: Some("*/15 * * * *".into()),
                    partition: None,
                    status,
                    summary,
                    last_run_at: Some(now - chrono::Duration::minutes(3)),
                    next_run_at: Some(now + chrono::Duration::minutes(12)),
                    freshness_lag_seconds: Some(1800.0),
                    warehouse_up: true,
                    discovered: group,
                },
                checks,
            }
        })
        .collect();
    StatusSnapshot {
        taken_at: now,
        started_at: now - chrono::Duration::hours(5),
        generation: 1,
        registry: "sqlite://warden.db".into(),
        registry_error: None,
        config_report: Arc::new(Default::default()),
        warehouses: vec![WarehouseView {
            name: "main".into(),
            up: true,
            reason: None,
        }],
        datasets,
        firing: Vec::new(),
        silences: Vec::new(),
        gates: Vec::new(),
    }
}

fn measure(rounds: usize, mut f: impl FnMut() -> usize) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        bytes = f();
        times.push(started.elapsed());
    }
    times.sort();
    (times, bytes)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, times: &[Duration], bytes: usize) -> bool {
    let p50 = pct(times, 0.5);
    let p99 = pct(times, 0.99);
    let met = p99 < TARGET;
    println!(
        "{what}: median {:.1} ms, p99 {:.1} ms, {:.0} KiB of HTML; target p99 < {} ms: {}",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        bytes as f64 / 1024.0,
        TARGET.as_millis(),
        if met { "met" } else { "MISSED" }
    );
    met
}

fn main() {
    let snapshot = snapshot();
    let pages = DATASETS.div_ceil(PAGE_SIZE);
    println!(
        "status page: {DATASETS} datasets × {CHECKS} checks × {SPARK_POINTS} values, {pages} pages of {PAGE_SIZE}, {ROUNDS} rounds"
    );
    // Warm up.
    let _ = home::render(&snapshot, &HomeQuery::default());
    let (first, bytes) = measure(ROUNDS, || {
        home::render(&snapshot, &HomeQuery::default()).len()
    });
    let html = home::render(&snapshot, &HomeQuery::default());
    assert_eq!(
        html.matches("<svg class=\"spark\"").count(),
        PAGE_SIZE * CHECKS,
        "every check of the page has its sparkline"
    );
    let a = report("`/` (one load: 1,000 ordered, page 1 drawn)", &first, bytes);
    // Every page of the list, each load timed on its own: any page a
    // reader opens is one load, held to the same target.
    let mut all = Vec::new();
    let mut bytes = 0;
    for page in 1..=pages {
        let (times, page_bytes) = measure(ROUNDS / 4, || {
            home::render(&snapshot, &HomeQuery { page }).len()
        });
        all.extend(times);
        bytes = bytes.max(page_bytes);
    }
    all.sort();
    let b = report(
        &format!("any page `/?page=1..{pages}` (one load each; largest page's HTML)"),
        &all,
        bytes,
    );
    println!(
        "overall: {}",
        if a && b {
            "targets met"
        } else {
            "a target was MISSED"
        }
    );
}
