//! `cargo bench --bench agent`: what the long-running agent costs at the
//! scale of 1,000 datasets with 10 checks each (10,000 checks).
//!
//! 1. `/metrics`: the time to render the exposition from [`Metrics`] with
//!    10,000 series (target: median under 50 ms), then with a result for
//!    every check; then a GET through the HTTP router (`oneshot`, no socket)
//!    of an agent started in-process, and a GET over a socket against the
//!    real `warden run`.
//! 2. Memory: the resident set of `warden run` with those 10,000 checks
//!    loaded and idle, its schedules set not to fire: first on a fresh
//!    registry (the configuration alone), then with every check's last
//!    result restored from the registry into its metrics. Target: under
//!    50 MB. Each time SIGTERM must end it with exit status 0.
//!
//! Everything lives in a temporary directory: a SQLite warehouse, the
//! SQLite registry holding one run of every check, `warden.yaml` and ten
//! check files of 100 datasets each.

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;

use common::{free_port, mib, proc_status_kb, verdict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use tower::ServiceExt;
use warden::agent::{Agent, Options};
use warden::check::{CheckKind, Dataset};
use warden::check::{CheckResult, Outcome};
use warden::config::Config;
use warden::metrics::Metrics;
use warden::registry::{Registry, RunRecord};

const DATASETS: usize = 1_000;
const CHECK_FILES: usize = 10;
const TABLES: usize = 10;
/// Renders and GETs timed per figure.
const ROUNDS: usize = 50;
/// How long the agent sits idle before its memory is read.
const IDLE: Duration = Duration::from_secs(5);
const RENDER_TARGET_MS: f64 = 50.0;
/// Datasets whose results make a little over 10,000 series.
const SERIES_TARGET_DATASETS: usize = 230;
const RSS_TARGET_MB: f64 = 50.0;

/// Ten checks per dataset, as a user would write them. The schedule is
/// once a year at new year, so nothing runs while the agent is measured.
const CHECKS: &str = r#"
    schedule: "0 0 1 1 *"
    checks:
      - row_count: { min: 1 }
      - row_count_change: { vs: 7d, max_drop: 30%, max_growth: 200% }
      - null_rate: { column: customer_id, max: 0 }
      - null_rate: { columns: [coupon, referrer], max: 35%, severity: warn }
      - freshness: { column: updated_at, max_lag: 6h }
      - freshness: { column: order_date, by: "08:00", expect: yesterday }
      - schema:
          columns: [{ name: order_id, type: bigint }, { name: amount, type: numeric }]
      - unique: { columns: [order_id] }
      - sql:
          name: negative_amounts
          query: "SELECT count(*) FROM {{ table }} WHERE amount < 0"
          max: 0
"#;

/// Writes the project and returns the path of its `warden.yaml`.
async fn write_project(dir: &Path, port: u16) -> PathBuf {
    let mut warehouse = SqliteConnectOptions::new()
        .filename(dir.join("warehouse.db"))
        .create_if_missing(true)
        .connect()
        .await
        .expect("create the SQLite warehouse");
    for t in 0..TABLES {
        warehouse
            .execute(
                format!(
                    "CREATE TABLE orders_{t} (order_id INTEGER, customer_id INTEGER, \
                     coupon TEXT, referrer TEXT, amount NUMERIC, order_date DATE, updated_at TEXT)"
                )
                .as_str(),
            )
            .await
            .expect("create a table");
    }
    warehouse.close().await.expect("close the warehouse");

    let config = dir.join("warden.yaml");
    std::fs::write(
        &config,
        format!(
            "agent:\n  listen: 127.0.0.1:{port}\n  registry: sqlite://warden.db\n  timezone: UTC\n\
             warehouses:\n  main:\n    url: sqlite://warehouse.db\n    max_connections: 2\n\
             checks: [checks/*.yaml]\n"
        ),
    )
    .expect("write warden.yaml");
    std::fs::create_dir_all(dir.join("checks")).expect("create checks/");
    let per_file = DATASETS / CHECK_FILES;
    for f in 0..CHECK_FILES {
        let mut text = String::from("datasets:\n");
        for d in f * per_file..(f + 1) * per_file {
            text.push_str(&format!(
                "  - name: orders_{d:04}\n    warehouse: main\n    table: orders_{}\n    tier: {}\n    owner: team-{}\n{}",
                d % TABLES,
                1 + d % 3,
                d % 20,
                CHECKS.trim_start_matches('\n'),
            ));
        }
        std::fs::write(dir.join(format!("checks/orders_{f}.yaml")), text)
            .expect("write a check file");
    }
    config
}

/// A plausible result for every check of `ds`: mostly passes, some warnings,
/// a failure every 50 checks and an error every 97.
fn results(ds: &Dataset, index: usize) -> Vec<CheckResult> {
    ds.checks
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let n = index * ds.checks.len() + j;
            let (observed, threshold) = match &c.kind {
                CheckKind::RowCount { .. } => (10_000.0 + index as f64 * 13.0, json!({"min": 1})),
                CheckKind::RowCountChange { .. } => (
                    0.02 * (j as f64 - 4.0),
                    json!({"max_drop": 0.3, "max_growth": 2.0}),
                ),
                CheckKind::NullRate { .. } => (0.001 * (n % 40) as f64, json!({"max": 0.35})),
                CheckKind::Freshness { .. } => {
                    (600.0 + (n % 7200) as f64, json!({"max_lag": 21600}))
                }
                CheckKind::Schema { .. } => (0.0, json!({})),
                CheckKind::Unique { .. } | CheckKind::Sql { .. } => (0.0, json!({"max": 0})),
                CheckKind::Anomaly { .. } => (
                    10_000.0 + index as f64 * 7.0,
                    json!({"sensitivity": 3.0, "min_change": 0.05}),
                ),
            };
            let outcome = if n.is_multiple_of(97) {
                Outcome::Error
            } else if n.is_multiple_of(50) {
                Outcome::Fail
            } else if n.is_multiple_of(23) {
                Outcome::Warn
            } else {
                Outcome::Pass
            };
            let threshold: BTreeMap<String, serde_json::Value> =
                serde_json::from_value(threshold).expect("a threshold map");
            CheckResult {
                check: c.id.as_str().to_owned(),
                dataset: ds.name.as_str().to_owned(),
                kind: c.kind.name().to_owned(),
                column: c.kind.column().map(|col| col.to_string()),
                partition: None,
                outcome,
                observed: (outcome != Outcome::Error).then_some(observed),
                threshold,
                message: match outcome {
                    Outcome::Error => "statement timed out after 60s".to_owned(),
                    _ => format!("observed {observed}"),
                },
                duration_ms: 5 + (n % 40) as u64,
                expected: None,
                score: None,
            }
        })
        .collect()
}

/// Stores one run of every check, so that an agent started on the project
/// restores 10,000 results into its metrics.
async fn fill_registry(config: &Config) -> usize {
    let registry = Registry::open(&config.agent.registry)
        .await
        .expect("open the registry");
    let at = Utc::now() - chrono::Duration::hours(1);
    let records: Vec<RunRecord> = config
        .datasets
        .iter()
        .enumerate()
        .flat_map(|(i, ds)| results(ds, i))
        .map(|r| RunRecord::new(r, at))
        .collect();
    registry.record_run(&records).await.expect("record results");
    registry.close().await;
    records.len()
}

struct Timings {
    median: Duration,
    p99: Duration,
}

impl Timings {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let p99 = (samples.len() * 99).div_ceil(100).max(1) - 1;
        Self {
            median: samples[samples.len() / 2],
            p99: samples[p99],
        }
    }

    fn row(&self, label: &str, note: &str) {
        println!(
            "  {label:<22}: median {:>7.1} ms   p99 {:>7.1} ms{note}",
            ms(self.median),
            ms(self.p99)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Series (sample lines) in an exposition, and checks with an outcome.
fn count_series(body: &str) -> (usize, usize) {
    let series = body.lines().filter(|l| !l.starts_with('#')).count();
    let outcomes = body
        .lines()
        .filter(|l| l.starts_with("warden_check_outcome{"))
        .count();
    // One outcome series per check: its current outcome.
    (series, outcomes)
}

/// `Metrics::render()` with the results of the first `datasets` datasets
/// recorded.
fn bench_render(config: &Config, datasets: usize) -> (Timings, usize, usize) {
    let metrics = Metrics::new();
    for (i, ds) in config.datasets.iter().enumerate().take(datasets) {
        metrics.record_run(
            &ds.warehouse,
            Duration::from_millis(40 + (i % 200) as u64),
            &results(ds, i),
            Utc::now().timestamp() as f64,
        );
    }
    metrics.set_warehouse_up("main", true);
    for (i, ds) in config.datasets.iter().enumerate().take(50) {
        let decision = if i % 5 == 0 { "deny" } else { "allow" };
        metrics.record_gate(ds.name.as_str(), decision, Duration::from_millis(900));
    }
    let body = metrics.render();
    let (series, checks) = count_series(&body);
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let body = metrics.render();
        samples.push(started.elapsed());
        std::hint::black_box(body);
    }
    assert_eq!(checks, datasets * 10, "every check is in the exposition");
    (Timings::of(samples), series, body.len())
}

/// `GET /metrics` through the router of an agent started in-process on the
/// project (its metrics restored from the registry).
async fn bench_router(config_path: &Path) -> Timings {
    let options = Options {
        listen: Some("127.0.0.1:0".to_owned()),
        ..Options::default()
    };
    let (agent, warnings) = Agent::start(config_path, options)
        .await
        .expect("start the agent in-process");
    assert!(warnings.is_empty(), "{warnings:?}");
    let app = warden::http::router(agent.state().clone());
    let mut samples = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let started = Instant::now();
        let response = app
            .clone()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("read the body");
        samples.push(started.elapsed());
        if round == 0 {
            let (_, checks) = count_series(std::str::from_utf8(&body).unwrap());
            assert_eq!(checks, DATASETS * 10, "the agent restored every check");
        }
    }
    agent.shutdown().await;
    Timings::of(samples)
}

/// Ends the child if the bench panics before it could stop it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

struct BinaryFigures {
    ready_after: Duration,
    idle_rss_kb: u64,
    idle_hwm_kb: u64,
    scrape: Timings,
    after_scrapes_rss_kb: u64,
    after_scrapes_hwm_kb: u64,
    stopped_after: Duration,
}

/// The real `warden run` on the project: ready, idle, scraped, stopped.
/// `checks` is how many checks its `/metrics` must show (restored results).
async fn bench_binary(dir: &Path, config_path: &Path, port: u16, checks: usize) -> BinaryFigures {
    let log = std::fs::File::create(dir.join("agent.log")).expect("create the log");
    let started = Instant::now();
    let mut agent = Running(
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("run")
            .arg("--config")
            .arg(config_path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start warden run"),
    );
    let pid = agent.0.id();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let log_tail = || std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    loop {
        if let Some(status) = agent.0.try_wait().expect("poll the agent") {
            panic!(
                "warden run exited with {status} before it was ready:\n{}",
                log_tail()
            );
        }
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "warden run was not ready within 2 minutes:\n{}",
            log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_after = started.elapsed();

    tokio::time::sleep(IDLE).await;
    let idle_rss_kb = proc_status_kb(pid, "VmRSS");
    let idle_hwm_kb = proc_status_kb(pid, "VmHWM");

    let mut samples = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let started = Instant::now();
        let response = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let body = response.text().await.expect("read /metrics");
        samples.push(started.elapsed());
        if round == 0 {
            assert_eq!(
                count_series(&body).1,
                checks,
                "warden run restored every check"
            );
        }
    }
    let after_scrapes_rss_kb = proc_status_kb(pid, "VmRSS");
    let after_scrapes_hwm_kb = proc_status_kb(pid, "VmHWM");

    let stopping = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(kill.success(), "kill -TERM {pid} failed");
    let status = loop {
        if let Some(status) = agent.0.try_wait().expect("poll the agent") {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(60),
            "warden run did not stop within 60 s of SIGTERM:\n{}",
            log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stopped_after = stopping.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "warden run exits 0 on SIGTERM:\n{}",
        log_tail()
    );
    BinaryFigures {
        ready_after,
        idle_rss_kb,
        idle_hwm_kb,
        scrape: Timings::of(samples),
        after_scrapes_rss_kb,
        after_scrapes_hwm_kb,
        stopped_after,
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config_path = write_project(dir.path(), port).await;
        let config = warden::config::load(&config_path)
            .expect("load the bench config")
            .config;
        let checks: usize = config.datasets.iter().map(|d| d.checks.len()).sum();
        assert_eq!((config.datasets.len(), checks), (DATASETS, DATASETS * 10));
        // The agent on a fresh registry: the configuration alone.
        let fresh = bench_binary(dir.path(), &config_path, port, 0).await;
        let stored = fill_registry(&config).await;

        // About 10,000 series (the target's scale), then every check.
        let (render_10k, series_10k, bytes_10k) = bench_render(&config, SERIES_TARGET_DATASETS);
        let (render, series, bytes) = bench_render(&config, DATASETS);
        let router = bench_router(&config_path).await;
        let binary = bench_binary(dir.path(), &config_path, port, stored).await;

        println!(
            "agent benchmark: {DATASETS} datasets, {checks} checks ({stored} results restored), {ROUNDS} rounds each"
        );
        println!(
            "  /metrics, {SERIES_TARGET_DATASETS} datasets  : {series_10k} series, {:.1} MiB",
            bytes_10k as f64 / (1024.0 * 1024.0)
        );
        render_10k.row(
            "Metrics::render()",
            &format!(
                "   (target < {RENDER_TARGET_MS} ms at 10,000 series: {})",
                verdict(ms(render_10k.median) < RENDER_TARGET_MS && series_10k >= 10_000)
            ),
        );
        println!(
            "  /metrics, all checks  : {series} series, {:.1} MiB",
            bytes as f64 / (1024.0 * 1024.0)
        );
        render.row("Metrics::render()", "");
        router.row("GET /metrics, router", "   (oneshot, in-process agent)");
        binary
            .scrape
            .row("GET /metrics, socket", "   (warden run, loopback)");
        println!(
            "  warden run ready      : {:>7.2} s after start",
            binary.ready_after.as_secs_f64()
        );
        println!(
            "  memory, config only   : VmRSS {:>6.1} MiB   VmHWM {:>6.1} MiB   (loaded, idle, fresh registry; target < {RSS_TARGET_MB} MB: {})",
            mib(fresh.idle_rss_kb),
            mib(fresh.idle_hwm_kb),
            verdict((fresh.idle_rss_kb as f64 * 1024.0) / 1e6 < RSS_TARGET_MB)
        );
        println!(
            "  memory, with results  : VmRSS {:>6.1} MiB   VmHWM {:>6.1} MiB   (every check's series restored; target < {RSS_TARGET_MB} MB: {})",
            mib(binary.idle_rss_kb),
            mib(binary.idle_hwm_kb),
            verdict((binary.idle_rss_kb as f64 * 1024.0) / 1e6 < RSS_TARGET_MB)
        );
        println!(
            "  memory, after scrapes : VmRSS {:>6.1} MiB   VmHWM {:>6.1} MiB",
            mib(binary.after_scrapes_rss_kb),
            mib(binary.after_scrapes_hwm_kb)
        );
        println!(
            "  SIGTERM to exit 0     : {:>7.2} s   (fresh: {:.2} s)",
            binary.stopped_after.as_secs_f64(),
            fresh.stopped_after.as_secs_f64()
        );
    });
}
