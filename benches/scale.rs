//! `cargo bench --bench scale`: one agent, and two, at the scale of 10,000
//! datasets on a five-minute schedule, on a PostgreSQL registry.
//!
//! Needs `WARDEN_TEST_POSTGRES_URL` (a server where the user may create a
//! database): the bench creates a database of its own there and drops it at
//! the end. Everything else lives in a temporary directory: a SQLite
//! warehouse of 1,000 small tables, `warden.yaml` and the check files.
//!
//! It prints:
//! 1. the scheduler's overhead per tick: one pass over 10,000 datasets due
//!    at once, handing each to its warehouse's run queue (a place per
//!    dataset) or counting it as skipped;
//! 2. the runs per second one `warden run` sustains, then two on the same
//!    registry sharing the tick's runs through their claims, with the ticks
//!    the run queue could not take (`warden_ticks_skipped_total`);
//! 3. the registry's growth per day of results, from
//!    `pg_total_relation_size` before and after the runs;
//! 4. the time retention pruning takes: an hour of results of every dataset
//!    (12 ticks), recorded more than 400 days ago, pruned with the default
//!    `agent.retention` in batches as the agent does, and how long one batch
//!    holds the registry;
//! 5. the resident set (VmRSS) of the agent after its runs;
//! 6. the resident set of an agent with 1,000 datasets of 10 checks each
//!    (10,000 checks) on `* * * * *`, idle after its first tick recorded
//!    every check (target: under 50 MiB), and the median of `/metrics` at
//!    that scale, rendered in-process and fetched from that agent
//!    (target: under 50 ms).
//!
//! `cargo bench --bench scale -- idle` runs the sixth alone (no PostgreSQL
//! needed).
//!
//! A dataset's schedule fires every five minutes, at the minute after the
//! agent starts (`M-59/5 * * * *`), so no phase waits more than a minute.

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;

use common::{BenchDatabase, free_port, mib, proc_status_kb, verdict};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, Row};
use warden::app::circuit::Circuit;
use warden::app::{AppState, Generation, Lane};
use warden::check::{CheckResult, Outcome};
use warden::config::Config;
use warden::metrics::Metrics;
use warden::registry::Registry;

/// Datasets of the scale phases.
const DATASETS: usize = 10_000;
/// Tables of the warehouse; datasets share them in turn.
const TABLES: usize = 1_000;
/// Datasets of the idle-memory phase, with ten checks each.
const IDLE_DATASETS: usize = 1_000;
/// Passes of the scheduler timed.
const PASSES: usize = 20;
/// `/metrics` renders and GETs timed.
const ROUNDS: usize = 50;
const RSS_TARGET_MIB: f64 = 50.0;
const RENDER_TARGET_MS: f64 = 50.0;

/// Three checks per dataset of the scale phases: one scan statement a run.
const SCALE_CHECKS: &str = r#"    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 0 }
      - freshness: { column: updated_at, max_lag: 6h }
"#;

/// Ten checks per dataset, as a user would write them.
const TEN_CHECKS: &str = r#"    checks:
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The SQLite warehouse: `TABLES` tables of five rows.
async fn write_warehouse(dir: &Path) {
    let mut warehouse = SqliteConnectOptions::new()
        .filename(dir.join("warehouse.db"))
        .create_if_missing(true)
        .connect()
        .await
        .expect("create the SQLite warehouse");
    let mut tx = warehouse.begin().await.expect("begin");
    let rows = (1..=5)
        .map(|i| format!("({i}, {i}, NULL, 'web', 10.5, date('now', '-1 day'), datetime('now'))"))
        .collect::<Vec<_>>()
        .join(", ");
    for t in 0..TABLES {
        tx.execute(
            format!(
                "CREATE TABLE orders_{t} (order_id INTEGER, customer_id INTEGER, coupon TEXT, \
                 referrer TEXT, amount NUMERIC, order_date DATE, updated_at TEXT); \
                 INSERT INTO orders_{t} VALUES {rows}"
            )
            .as_str(),
        )
        .await
        .expect("create a table");
    }
    tx.commit().await.expect("commit");
    warehouse.close().await.expect("close the warehouse");
}

/// Writes `warden.yaml` and ten check files of `datasets` datasets into
/// `dir` (which holds the warehouse) and returns the config's path.
fn write_project(
    dir: &Path,
    registry: &str,
    port: u16,
    schedule: &str,
    datasets: usize,
    checks: &str,
) -> PathBuf {
    let config = dir.join("warden.yaml");
    std::fs::write(
        &config,
        format!(
            "agent:\n  listen: 127.0.0.1:{port}\n  registry: \"{registry}\"\n  timezone: UTC\n\
             warehouses:\n  main:\n    url: sqlite://{}\n    max_connections: 4\n\
             checks: [checks/*.yaml]\n",
            dir.join("warehouse.db").display()
        ),
    )
    .expect("write warden.yaml");
    let checks_dir = dir.join("checks");
    let _ = std::fs::remove_dir_all(&checks_dir);
    std::fs::create_dir_all(&checks_dir).expect("create checks/");
    let files = 10;
    let per_file = datasets.div_ceil(files);
    for f in 0..files {
        let mut text = String::from("datasets:\n");
        for d in (f * per_file..(f + 1) * per_file).take_while(|d| *d < datasets) {
            text.push_str(&format!(
                "  - name: orders_{d:05}\n    warehouse: main\n    table: orders_{}\n    owner: team-{}\n    schedule: \"{schedule}\"\n{checks}",
                d % TABLES,
                d % 20,
            ));
        }
        std::fs::write(checks_dir.join(format!("orders_{f}.yaml")), text)
            .expect("write a check file");
    }
    config
}

/// A schedule every five minutes whose next tick is the minute after `at`
/// (at least 20 s away, so the agents are up by then); and that tick.
fn five_minute_schedule(at: DateTime<Utc>) -> (String, DateTime<Utc>) {
    let mut tick =
        at.with_second(0).unwrap().with_nanosecond(0).unwrap() + chrono::Duration::minutes(1);
    if tick - at < chrono::Duration::seconds(20) {
        tick += chrono::Duration::minutes(1);
    }
    (format!("{}-59/5 * * * *", tick.minute() % 5), tick)
}

/// Ends the child if the bench panics before it could stop it.
struct Running(Child);

impl Running {
    fn start(config: &Path, port: u16, log: &Path) -> Self {
        let log = std::fs::File::create(log).expect("create the log");
        Self(
            Command::new(env!("CARGO_BIN_EXE_warden"))
                .arg("run")
                .arg("--config")
                .arg(config)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .env("WARDEN_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start warden run"),
        )
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    async fn wait_ready(&mut self, port: u16, log: &Path) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("poll the agent") {
                panic!(
                    "warden run exited with {status} before it was ready:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            if let Ok(r) = client
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                && r.status() == reqwest::StatusCode::OK
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "warden run was not ready within 3 minutes"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, and the exit status within a minute.
    async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let started = Instant::now();
        while matches!(self.0.try_wait(), Ok(None)) && started.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Bytes of every table of the registry, indexes and TOAST included.
async fn registry_bytes(registry: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname = current_schema()",
    )
    .fetch_one(registry)
    .await
    .expect("read the registry's size")
}

/// Runs recorded for `tick` (claims of the tick that have results), by agent.
async fn runs_of_tick(registry: &sqlx::PgPool, tick: DateTime<Utc>) -> Vec<(String, i64)> {
    sqlx::query(
        "SELECT c.claimed_by, count(*) FROM scheduler_claims c WHERE c.scheduled_at = $1 \
         AND EXISTS (SELECT 1 FROM check_results r WHERE r.dataset = c.dataset \
                     AND r.scheduled_at = c.scheduled_at) \
         GROUP BY c.claimed_by ORDER BY c.claimed_by",
    )
    .bind(tick)
    .fetch_all(registry)
    .await
    .expect("count the tick's runs")
    .into_iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

struct Throughput {
    runs: i64,
    per_agent: Vec<i64>,
    per_second: f64,
    skipped: Vec<(String, f64)>,
    rss_kb: Vec<u64>,
}

/// Starts `agents` agents on the project, waits for their tick and for its
/// runs to be recorded (no new run for 5 s), and measures the rate from the
/// tick to the last run.
async fn throughput(dir: &Path, db: &BenchDatabase, agents: usize) -> Throughput {
    let (schedule, tick) = five_minute_schedule(Utc::now());
    let ports: Vec<u16> = (0..agents).map(|_| free_port()).collect();
    let config = write_project(dir, &db.url, ports[0], &schedule, DATASETS, SCALE_CHECKS);
    let mut running = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let log = dir.join(format!("agent-{agents}-{i}.log"));
        let mut agent = Running::start(&config, *port, &log);
        agent.wait_ready(*port, &log).await;
        running.push(agent);
    }
    let pool = sqlx::PgPool::connect(&db.url).await.expect("the registry");
    let wait = (tick - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    let mut last = (0, Utc::now());
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n: i64 = runs_of_tick(&pool, tick).await.iter().map(|(_, n)| n).sum();
        if n > last.0 {
            last = (n, Utc::now());
        } else if n > 0 && Utc::now() - last.1 > chrono::Duration::seconds(5) {
            break;
        }
        assert!(
            Utc::now() - tick < chrono::Duration::minutes(4),
            "the tick's runs took more than four minutes"
        );
    }
    let by_agent = runs_of_tick(&pool, tick).await;
    let runs: i64 = by_agent.iter().map(|(_, n)| n).sum();
    let first: DateTime<Utc> =
        sqlx::query_scalar("SELECT min(claimed_at) FROM scheduler_claims WHERE scheduled_at = $1")
            .bind(tick)
            .fetch_one(&pool)
            .await
            .expect("the first claim");
    let recorded: DateTime<Utc> =
        sqlx::query_scalar("SELECT max(recorded_at) FROM check_results WHERE scheduled_at = $1")
            .bind(tick)
            .fetch_one(&pool)
            .await
            .expect("the last result");
    let span = (recorded - first)
        .to_std()
        .unwrap_or_default()
        .max(Duration::from_millis(1));
    let client = reqwest::Client::new();
    let mut skipped = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let body = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("read /metrics");
        for line in body
            .lines()
            .filter(|l| l.starts_with("warden_ticks_skipped_total{"))
        {
            let (series, value) = line.rsplit_once(' ').expect("a sample");
            skipped.push((
                format!("agent {i}: {series}"),
                value.parse().unwrap_or(f64::NAN),
            ));
        }
    }
    let rss_kb = running
        .iter()
        .map(|a| proc_status_kb(a.pid(), "VmRSS"))
        .collect();
    for agent in running {
        agent.stop().await;
    }
    pool.close().await;
    Throughput {
        runs,
        per_agent: by_agent.into_iter().map(|(_, n)| n).collect(),
        per_second: runs as f64 / span.as_secs_f64(),
        skipped,
        rss_kb,
    }
}

/// The scheduler's pass at a tick where all `DATASETS` are due, on a run
/// queue emptied between passes (as the worker would), timed `PASSES` times.
async fn scheduler_pass(config: Arc<Config>) -> (Duration, usize, f64) {
    let registry = Registry::open("sqlite::memory:").await.expect("a registry");
    let state = AppState::builder(config.clone(), registry).build();
    let (lane, mut rx) = Lane::new(Arc::new(Circuit::new("main")), config.datasets.len());
    let generation = Generation::new(
        1,
        config.clone(),
        state.runner(),
        [("main".to_owned(), lane)].into(),
    );
    let tz = config.agent.timezone;
    let due_at = Utc::now() + chrono::Duration::minutes(10);
    let mut samples = Vec::with_capacity(PASSES);
    let mut due = 0;
    for _ in 0..PASSES {
        let mut next: Vec<Option<DateTime<Utc>>> = config
            .datasets
            .iter()
            .map(|ds| {
                ds.schedule
                    .as_ref()
                    .and_then(|s| warden::app::schedule::next_tick(s, Utc::now(), tz))
            })
            .collect();
        let started = Instant::now();
        due = warden::agent::scheduler::enqueue_due(&state, &generation, &mut next, due_at);
        samples.push(started.elapsed());
        let lane = &generation.lanes["main"];
        while rx.try_recv().is_ok() {
            lane.depth_counter()
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        lane.busy().lock().unwrap().clear();
    }
    let body = state.metrics().render();
    let skipped: f64 = body
        .lines()
        .filter(|l| l.starts_with("warden_ticks_skipped_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    (median(samples), due, skipped / PASSES as f64)
}

/// Ticks of old results the retention phase prunes: an hour's worth.
const OLD_TICKS: i32 = 12;

struct Prune {
    took: Duration,
    deleted: u64,
    kept: i64,
    /// How long each batch took.
    batches: Vec<Duration>,
}

/// Copies the results of the registry `OLD_TICKS` times, each copy 401 days
/// and a few five-minute ticks older, then prunes them with the default
/// retention as the agent's hourly task does: batches of
/// [`warden::agent::retention::BATCH`] rows with a pause between.
async fn retention_prune(url: &str, pool: &sqlx::PgPool) -> Prune {
    sqlx::query(
        "INSERT INTO check_results (check_id, dataset, kind, column_name, partition_key, \
         scheduled_at, outcome, observed, row_count, threshold, message, duration_ms, recorded_at) \
         SELECT check_id, dataset, kind, column_name, partition_key, \
         scheduled_at - make_interval(days => 401, mins => 5 * g), outcome, observed, row_count, \
         threshold, message, duration_ms, recorded_at - make_interval(days => 401, mins => 5 * g) \
         FROM check_results, generate_series(1, $1) g",
    )
    .bind(OLD_TICKS)
    .execute(pool)
    .await
    .expect("age copies of the results");
    sqlx::query("ANALYZE check_results")
        .execute(pool)
        .await
        .expect("analyze");
    let registry = Registry::open(url).await.expect("open the registry");
    let retention = warden::config::Retention::default();
    let cutoff = Utc::now() - chrono::Duration::from_std(retention.results).unwrap();
    let batch = warden::agent::retention::BATCH;
    let started = Instant::now();
    let mut batches = Vec::new();
    let mut deleted = 0;
    loop {
        let one = Instant::now();
        let n = registry
            .prune(warden::registry::Prunable::Results, cutoff, batch)
            .await
            .expect("prune a batch");
        batches.push(one.elapsed());
        deleted += n;
        if n < u64::from(batch) {
            break;
        }
        tokio::time::sleep(warden::agent::retention::PAUSE).await;
    }
    let took = started.elapsed();
    // The rest of a prune: every other kind, nothing of which is old here.
    warden::agent::retention::prune(&registry, &retention, Utc::now(), batch)
        .await
        .expect("prune");
    registry.close().await;
    let kept = sqlx::query_scalar("SELECT count(*) FROM check_results")
        .fetch_one(pool)
        .await
        .expect("count results");
    Prune {
        took,
        deleted,
        kept,
        batches,
    }
}

/// A plausible result for every check of the first `datasets` datasets.
fn results(config: &Config, datasets: usize) -> Vec<Vec<CheckResult>> {
    config
        .datasets
        .iter()
        .take(datasets)
        .enumerate()
        .map(|(i, ds)| {
            ds.checks
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let n = i * ds.checks.len() + j;
                    let outcome = match n {
                        n if n % 97 == 0 => Outcome::Error,
                        n if n % 50 == 0 => Outcome::Fail,
                        n if n % 23 == 0 => Outcome::Warn,
                        _ => Outcome::Pass,
                    };
                    CheckResult {
                        check: c.id.as_str().to_owned(),
                        dataset: ds.name.as_str().to_owned(),
                        kind: c.kind.name().to_owned(),
                        column: c.kind.column().map(|col| col.to_string()),
                        partition: None,
                        outcome,
                        observed: (outcome != Outcome::Error).then_some(n as f64 * 0.5),
                        threshold: Default::default(),
                        message: String::new(),
                        duration_ms: 5,
                        expected: None,
                        score: None,
                    }
                })
                .collect()
        })
        .collect()
}

/// `Metrics::render` with a result for every check of `config`: its median
/// and the number of series.
fn render(config: &Config) -> (Duration, usize) {
    let metrics = Metrics::new();
    for (i, r) in results(config, config.datasets.len()).iter().enumerate() {
        metrics.record_run("main", Duration::from_millis(40 + i as u64 % 200), r, 1.8e9);
    }
    metrics.set_warehouse_up("main", true);
    let series = metrics
        .render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    let samples = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(metrics.render());
            started.elapsed()
        })
        .collect();
    (median(samples), series)
}

struct Idle {
    rss_kb: u64,
    hwm_kb: u64,
    waited: Duration,
    scrape: Duration,
    series: usize,
    /// Of the resident set: anonymous memory, and pages of files (the
    /// binary and its libraries).
    anon_kb: u64,
    file_kb: u64,
    threads: u64,
}

/// `warden run` with 1,000 datasets of ten checks on `* * * * *` (a SQLite
/// registry): its resident set once its first tick recorded every check,
/// and then `/metrics` fetched over its socket.
async fn idle_agent(dir: &Path) -> Idle {
    let port = free_port();
    let registry = format!("sqlite://{}", dir.join("idle-registry.db").display());
    let config = write_project(dir, &registry, port, "* * * * *", IDLE_DATASETS, TEN_CHECKS);
    let checks = IDLE_DATASETS * 10;
    let log = dir.join("agent-idle.log");
    let started = Instant::now();
    let mut agent = Running::start(&config, port, &log);
    agent.wait_ready(port, &log).await;
    let pool = sqlx::SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(dir.join("idle-registry.db"))
            .read_only(true),
    )
    .await
    .expect("read the registry");
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT DISTINCT check_id FROM check_results)",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        if n as usize >= checks {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the first tick recorded {n} of {checks} checks in 5 minutes"
        );
    }
    let waited = started.elapsed();
    pool.close().await;
    // Idle: the runs recorded, the evaluator and alerting done with them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_kb = proc_status_kb(agent.pid(), "VmRSS");
    let hwm_kb = proc_status_kb(agent.pid(), "VmHWM");
    let anon_kb = proc_status_kb(agent.pid(), "RssAnon");
    let file_kb = proc_status_kb(agent.pid(), "RssFile");
    let threads = proc_status_kb(agent.pid(), "Threads");
    let client = reqwest::Client::new();
    let mut samples = Vec::with_capacity(ROUNDS);
    let mut series = 0;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let body = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("read /metrics");
        samples.push(started.elapsed());
        series = body.lines().filter(|l| !l.starts_with('#')).count();
    }
    agent.stop().await;
    Idle {
        rss_kb,
        hwm_kb,
        anon_kb,
        file_kb,
        threads,
        waited,
        scrape: median(samples),
        series,
    }
}

async fn bench(dir: &Path, db: &BenchDatabase) {
    write_warehouse(dir).await;
    println!("load average at start: {}", common::load_average());
    println!(
        "scale: {DATASETS} datasets of 3 checks on a five-minute schedule, a SQLite warehouse of \
         {TABLES} tables, a PostgreSQL registry"
    );

    // 1. The scheduler's pass.
    let config_path = write_project(
        dir,
        "sqlite::memory:",
        free_port(),
        "*/5 * * * *",
        DATASETS,
        SCALE_CHECKS,
    );
    let config = Arc::new(
        warden::config::load(&config_path)
            .expect("the config")
            .config,
    );
    let (pass, due, skipped) = scheduler_pass(config).await;
    println!(
        "  scheduler, one tick     : {:>8.1} ms for {due} datasets due ({:.2} µs each); \
         {skipped:.0} of them skipped (a place per dataset in the run queue)",
        ms(pass),
        pass.as_secs_f64() * 1e6 / due.max(1) as f64,
    );

    // 2. Runs per second, registry growth and RSS.
    let registry_pool = {
        // The registry's tables, migrated by a first open.
        let registry = Registry::open(&db.url).await.expect("open the registry");
        registry.close().await;
        sqlx::PgPool::connect(&db.url).await.expect("the registry")
    };
    let before = registry_bytes(&registry_pool).await;
    let one = throughput(dir, db, 1).await;
    let after = registry_bytes(&registry_pool).await;
    let results_recorded = one.runs * 3;
    let per_result = (after - before) as f64 / results_recorded.max(1) as f64;
    println!(
        "  one agent               : {:>8.1} runs/s ({} runs of the tick)",
        one.per_second, one.runs
    );
    for (series, n) in &one.skipped {
        println!("    {series} {n}");
    }
    let two = throughput(dir, db, 2).await;
    println!(
        "  two agents              : {:>8.1} runs/s ({} runs of the tick, {:?} by agent)",
        two.per_second, two.runs, two.per_agent
    );
    for (series, n) in &two.skipped {
        println!("    {series} {n}");
    }
    let per_day = DATASETS as f64 * 3.0 * 288.0;
    println!(
        "  registry growth         : {:>8.0} bytes per result ({} bytes for {results_recorded} \
         results): {:.2} GiB a day for {DATASETS} datasets × 3 checks every 5 minutes",
        per_result,
        after - before,
        per_result * per_day / f64::from(1u32 << 30),
    );
    let prune = retention_prune(&db.url, &registry_pool).await;
    println!(
        "  retention prune         : {:>8.1} s for {} results ({:.0} rows/s, {} batches of {} \
         with the agent's pauses); one batch holds the registry p50 {:.1} ms, max {:.1} ms \
         ({} results kept)",
        prune.took.as_secs_f64(),
        prune.deleted,
        prune.deleted as f64 / prune.took.as_secs_f64().max(1e-9),
        prune.batches.len(),
        warden::agent::retention::BATCH,
        ms(median(prune.batches.clone())),
        ms(prune.batches.iter().copied().max().unwrap_or_default()),
        prune.kept,
    );
    println!(
        "  RSS after the tick      : {:>8.1} MiB (one agent); {} (two agents)",
        mib(one.rss_kb[0]),
        two.rss_kb
            .iter()
            .map(|kb| format!("{:.1} MiB", mib(*kb)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    registry_pool.close().await;

    idle_phase(dir).await;
}

/// 3. Idle memory at 10,000 checks, and /metrics.
async fn idle_phase(dir: &Path) {
    let idle = idle_agent(dir).await;
    println!("load average: {}", common::load_average());
    let rss = mib(idle.rss_kb);
    println!(
        "idle: {IDLE_DATASETS} datasets × 10 checks on `* * * * *`, a SQLite registry, \
         after the first tick recorded every check ({:.0} s after start)",
        idle.waited.as_secs_f64()
    );
    println!(
        "  VmRSS                   : {rss:>8.1} MiB (peak {:.1} MiB); target < {RSS_TARGET_MIB} MiB: {}",
        mib(idle.hwm_kb),
        verdict(rss < RSS_TARGET_MIB)
    );
    println!(
        "    of which             : {:>8.1} MiB anonymous, {:.1} MiB of files (the binary); {} threads",
        mib(idle.anon_kb),
        mib(idle.file_kb),
        idle.threads
    );
    let config_path = write_project(
        dir,
        "sqlite::memory:",
        free_port(),
        "* * * * *",
        IDLE_DATASETS,
        TEN_CHECKS,
    );
    let config = warden::config::load(&config_path)
        .expect("the config")
        .config;
    let (rendered, series) = render(&config);
    println!(
        "  /metrics render         : {:>8.1} ms median, {series} series; target < {RENDER_TARGET_MS} ms: {}",
        ms(rendered),
        verdict(ms(rendered) < RENDER_TARGET_MS)
    );
    println!(
        "  GET /metrics (socket)   : {:>8.1} ms median, {} series",
        ms(idle.scrape),
        idle.series
    );
}

fn main() {
    if std::env::args().skip(1).any(|a| a == "idle") {
        // `cargo bench --bench scale -- idle`: the idle phase alone, which
        // needs no PostgreSQL.
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        runtime.block_on(async {
            let dir = tempfile::tempdir().expect("a temporary directory");
            write_warehouse(dir.path()).await;
            println!("load average at start: {}", common::load_average());
            idle_phase(dir.path()).await;
        });
        return;
    }
    let Ok(admin_url) = std::env::var("WARDEN_TEST_POSTGRES_URL") else {
        eprintln!(
            "the scale bench needs WARDEN_TEST_POSTGRES_URL, a PostgreSQL server where it may \
             create a database"
        );
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = BenchDatabase::create(&admin_url, "warden_bench_scale")
            .await
            .expect("WARDEN_TEST_POSTGRES_URL reachable");
        let path = dir.path().to_owned();
        let db = Arc::new(db);
        let run = tokio::spawn({
            let db = db.clone();
            async move { bench(&path, &db).await }
        });
        let outcome = run.await;
        db.drop_it().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    });
}
