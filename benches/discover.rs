//! `cargo bench --bench discover`: 2,000 PostgreSQL tables discovered and
//! checked in one run.
//!
//! Needs `WARDEN_TEST_POSTGRES_URL` (a server where the user may create a
//! database): the bench creates a database of its own there, with a schema
//! of 2,000 tables of a few rows each, and drops it at the end. The
//! registry is a SQLite file in a temporary directory, as `warden run`
//! keeps it by default.
//!
//! The configuration is loaded from real files (`warden.yaml` and a check
//! file with one `discover:` entry) and each run is the agent's own
//! (`warden::discover::discover` on the runner the agent builds). It
//! prints, for the first run (every table new: baselines stored) and a
//! second one (steady state):
//! 1. the statements sent to the warehouse (target: at most 3, however
//!    many tables; the design is one);
//! 2. the wall time of the run, catalog read, judging and registry writes
//!    of 6,000 results included (target: under 10 s);
//! 3. the process's resident set after the runs and at its peak (VmRSS,
//!    VmHWM; target: peak under 200 MiB).

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;

use common::{BenchDatabase, mib, proc_status_kb, verdict};
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::{Connection, Executor};

const TABLES: usize = 2_000;
const STATEMENT_TARGET: u64 = 3;
const WALL_TARGET: Duration = Duration::from_secs(10);
const PEAK_TARGET_MIB: f64 = 200.0;

fn main() {
    let Ok(admin_url) = std::env::var("WARDEN_TEST_POSTGRES_URL") else {
        println!("discover: WARDEN_TEST_POSTGRES_URL is not set; nothing to measure");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(run(&admin_url));
}

async fn run(admin_url: &str) {
    let db = match BenchDatabase::create(admin_url, "warden_discover_bench").await {
        Ok(db) => db,
        Err(e) => panic!("WARDEN_TEST_POSTGRES_URL is set but PostgreSQL cannot be used: {e}"),
    };
    let built = Instant::now();
    build_schema(&db.url).await;
    println!(
        "discover: {TABLES} tables in schema `analytics` built in {:.1} s",
        built.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join("warden.yaml"),
        format!(
            "agent:\n  registry: sqlite://warden.db\nwarehouses:\n  main:\n    url: {}\n\
             checks: [checks.yaml]\n",
            db.url
        ),
    )
    .expect("write warden.yaml");
    std::fs::write(
        dir.path().join("checks.yaml"),
        "discover:\n  - warehouse: main\n    schema: analytics\n    exclude: [\"tmp_*\"]\n    \
         tier: 3\n    schedule: \"*/30 * * * *\"\n    freshness: { max_lag: 26h }\n",
    )
    .expect("write checks.yaml");
    let loaded = warden::config::load(&dir.path().join("warden.yaml")).expect("load the config");
    assert!(
        loaded.diagnostics.is_empty(),
        "config problems: {:?}",
        loaded.diagnostics
    );
    let config = loaded.config;
    let registry = warden::registry::Registry::open(&config.agent.registry)
        .await
        .expect("open the registry");
    let runner = warden::app::runner(&config, Some(registry));
    let spec = &config.discover[0];

    let mut all_met = true;
    for label in ["first run (every table new)", "second run (steady state)"] {
        let before = runner.statement_count();
        let started = Instant::now();
        let run =
            warden::discover::discover(&runner, spec, &config.datasets, Utc::now(), true).await;
        let wall = started.elapsed();
        let statements = runner.statement_count() - before;
        assert!(run.catalog_error.is_none(), "{:?}", run.catalog_error);
        assert!(run.record_error.is_none(), "{:?}", run.record_error);
        assert_eq!(run.datasets.len(), TABLES, "every table discovered");
        assert_eq!(run.results.len(), 3 * TABLES, "three monitors a table");
        let failing = run
            .results
            .iter()
            .filter(|r| r.outcome != warden::check::Outcome::Pass)
            .count();
        let statements_met = statements <= STATEMENT_TARGET;
        let wall_met = wall <= WALL_TARGET;
        all_met &= statements_met && wall_met;
        println!("discover: {label}");
        println!(
            "  tables discovered: {}, results: {} ({failing} not passing)",
            run.datasets.len(),
            run.results.len()
        );
        println!(
            "  statements to the warehouse: {statements} (target <= {STATEMENT_TARGET}): {}",
            verdict(statements_met)
        );
        println!(
            "  wall time: {:.2} s (target < {} s): {}",
            wall.as_secs_f64(),
            WALL_TARGET.as_secs(),
            verdict(wall_met)
        );
    }
    let pid = std::process::id();
    let rss = mib(proc_status_kb(pid, "VmRSS"));
    let peak = mib(proc_status_kb(pid, "VmHWM"));
    let peak_met = peak <= PEAK_TARGET_MIB;
    all_met &= peak_met;
    println!(
        "discover: agent memory: {rss:.1} MiB resident after the runs, {peak:.1} MiB at peak \
         (target < {PEAK_TARGET_MIB} MiB): {}",
        verdict(peak_met)
    );
    println!(
        "discover: {}",
        if all_met {
            "every target met"
        } else {
            "a target was MISSED"
        }
    );
    db.drop_it().await;
}

/// `TABLES` tables in schema `analytics` (plus one `tmp_` table the entry
/// excludes), each with a few rows, and the statistics flushed so the
/// catalog counts them.
async fn build_schema(url: &str) {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the bench database");
    conn.execute(
        format!(
            "CREATE SCHEMA analytics; \
             DO $$ BEGIN FOR i IN 1..{TABLES} LOOP \
               EXECUTE format('CREATE TABLE analytics.t_%s (id bigint, name text, amount numeric, \
                 updated_at timestamptz)', i); \
               EXECUTE format('INSERT INTO analytics.t_%s SELECT g, ''n'' || g, g * 1.5, now() \
                 FROM generate_series(1, %s) g', i, i % 20 + 1); \
             END LOOP; END $$; \
             CREATE TABLE analytics.tmp_scratch (id bigint); \
             SELECT pg_stat_force_next_flush()"
        )
        .as_str(),
    )
    .await
    .expect("build the schema");
    conn.close().await.expect("close");
}
