//! `cargo bench --bench scan`: warden's batched checks against the minimal
//! hand-written aggregate SQL for the same numbers, on PostgreSQL.
//!
//! Builds (once, then reuses) four tables of 200k–1M rows in the schema
//! `warden_bench`, then times, over several rounds, (a) warden checking every
//! dataset through its planner and executor and (b) one hand-written
//! `SELECT` per table computing the same aggregates. Prints both medians, the
//! ratio and the statement counts. Target: ratio ≤ 1.10, and one statement per
//! relation/filter group plus one catalog read per dataset.

use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool, Row};
use warden::check::{Outcome, Runner, Scope};
use warden::config::Config;

const ROUNDS: usize = 7;

struct Table {
    name: &'static str,
    rows: i64,
    create: &'static str,
    /// The hand-written aggregate for the same numbers warden computes.
    handwritten: &'static str,
    /// The dataset's checks, as a user would write them.
    checks: &'static str,
}

const TABLES: &[Table] = &[
    Table {
        name: "orders",
        rows: 1_000_000,
        create: "CREATE TABLE warden_bench.orders AS
            SELECT g AS order_id,
                   CASE WHEN g % 100 = 0 THEN NULL ELSE g % 50000 END AS customer_id,
                   (g % 1000)::numeric / 10 AS amount,
                   CASE WHEN g % 5 < 3 THEN NULL ELSE 'C' || (g % 17) END AS coupon,
                   DATE '2026-01-01' + (g % 320) AS order_date,
                   TIMESTAMPTZ '2026-11-20 00:00:00+00' - (g || ' seconds')::interval AS updated_at
            FROM generate_series(1, 1000000) AS g",
        handwritten: "SELECT count(*), count(customer_id), count(coupon), max(updated_at),
                             count(order_id) - count(DISTINCT order_id)
                      FROM warden_bench.orders",
        checks: r#"
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 2% }
      - null_rate: { column: coupon, max: 70% }
      - freshness: { column: updated_at, max_lag: 3650d }
      - unique: { columns: [order_id] }"#,
    },
    Table {
        name: "events",
        rows: 600_000,
        create: "CREATE TABLE warden_bench.events AS
            SELECT g AS event_id,
                   CASE WHEN g % 33 = 0 THEN NULL ELSE g % 70000 END AS user_id,
                   (ARRAY['view','cart','checkout'])[1 + g % 3] AS kind,
                   TIMESTAMP '2026-11-20 00:00:00' - (g || ' seconds')::interval AS event_time
            FROM generate_series(1, 600000) AS g",
        handwritten: "SELECT count(*), count(user_id), count(kind), max(event_time)
                      FROM warden_bench.events",
        checks: r#"
      - row_count: { min: 1 }
      - null_rate: { columns: [user_id, kind], max: 5% }
      - freshness: { column: event_time, max_lag: 3650d }"#,
    },
    Table {
        name: "customers",
        rows: 200_000,
        create: "CREATE TABLE warden_bench.customers AS
            SELECT g AS customer_id,
                   CASE WHEN g % 50 = 0 THEN NULL ELSE 'u' || g || '@example.com' END AS email,
                   (ARRAY['de','fr','us','jp'])[1 + g % 4] AS country,
                   DATE '2020-01-01' + (g % 2000) AS created_on
            FROM generate_series(1, 200000) AS g",
        handwritten: "SELECT count(*), count(email), max(created_on),
                             count(email) - count(DISTINCT email)
                      FROM warden_bench.customers",
        checks: r#"
      - row_count: { min: 1000 }
      - null_rate: { column: email, max: 5% }
      - freshness: { column: created_on, max_lag: 3650d }
      - unique: { columns: [email] }"#,
    },
    Table {
        name: "payments",
        rows: 400_000,
        create: "CREATE TABLE warden_bench.payments AS
            SELECT g AS payment_id, g % 300000 AS order_id,
                   CASE WHEN g % 250 = 0 THEN NULL ELSE (g % 900)::numeric END AS amount,
                   TIMESTAMPTZ '2026-11-19 12:00:00+00' - (g || ' seconds')::interval AS paid_at
            FROM generate_series(1, 400000) AS g",
        handwritten: "SELECT count(*), count(amount), max(paid_at),
                             count(payment_id) - count(DISTINCT payment_id)
                      FROM warden_bench.payments",
        checks: r#"
      - row_count: { min: 1 }
      - null_rate: { column: amount, max: 1% }
      - freshness: { column: paid_at, max_lag: 3650d }
      - unique: { columns: [payment_id] }"#,
    },
];

async fn build_workload(pool: &PgPool) -> Result<(), sqlx::Error> {
    pool.execute("CREATE SCHEMA IF NOT EXISTS warden_bench")
        .await?;
    for t in TABLES {
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(format!("warden_bench.{}", t.name))
            .fetch_one(pool)
            .await?;
        let have: Option<i64> = match exists {
            Some(_) => Some(
                sqlx::query_scalar(
                    format!("SELECT count(*) FROM warden_bench.{}", t.name).as_str(),
                )
                .fetch_one(pool)
                .await?,
            ),
            None => None,
        };
        if have == Some(t.rows) {
            continue;
        }
        eprintln!("building warden_bench.{} ({} rows)", t.name, t.rows);
        pool.execute(format!("DROP TABLE IF EXISTS warden_bench.{}", t.name).as_str())
            .await?;
        pool.execute(t.create).await?;
        pool.execute(format!("ANALYZE warden_bench.{}", t.name).as_str())
            .await?;
    }
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn handwritten_round(pool: &PgPool) -> Result<(Duration, u64), sqlx::Error> {
    let started = Instant::now();
    let mut statements = 0;
    for t in TABLES {
        let row = sqlx::query(t.handwritten).fetch_one(pool).await?;
        let rows: i64 = row.try_get(0)?;
        assert_eq!(rows, t.rows);
        statements += 1;
    }
    Ok((started.elapsed(), statements))
}

/// Every dataset checked once, one after the other (like the hand-written
/// statements), through the same runner `warden check` uses.
async fn warden_round(config: &Config, runner: &Runner) -> (Duration, u64) {
    let before = runner.statement_count();
    let started = Instant::now();
    for ds in &config.datasets {
        let results = runner
            .run(ds, &Scope::Whole, Utc::now(), false)
            .await
            .expect("run");
        for r in &results {
            assert_ne!(r.outcome, Outcome::Error, "{}: {}", r.check, r.message);
        }
    }
    (started.elapsed(), runner.statement_count() - before)
}

fn config_dir(url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("warden.yaml"),
        format!(
            "agent:\n  registry: sqlite://warden.db\nwarehouses:\n  bench:\n    url: {url}\n    max_connections: 1\n    query_timeout: 300s\nchecks: [checks.yaml]\n"
        ),
    )
    .expect("write warden.yaml");
    let mut checks = String::from("datasets:\n");
    for t in TABLES {
        checks.push_str(&format!(
            "  - name: {0}\n    warehouse: bench\n    table: warden_bench.{0}\n    schedule: \"@hourly\"\n    checks:{1}\n",
            t.name, t.checks
        ));
    }
    std::fs::write(dir.path().join("checks.yaml"), checks).expect("write checks.yaml");
    dir
}

fn main() {
    let url = std::env::var("WARDEN_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let pool = PgPoolOptions::new().max_connections(1).connect(&url).await.expect("connect to PostgreSQL");
        build_workload(&pool).await.expect("build workload");
        let dir = config_dir(&url);
        let config = warden::config::load(&dir.path().join("warden.yaml")).expect("load bench config").config;
        let checks: usize = config.datasets.iter().map(|d| d.checks.len()).sum();

        // Warm both paths once so the buffer cache is in the same state.
        handwritten_round(&pool).await.expect("hand-written SQL");
        let runner = warden::app::runner(&config, None);
        warden_round(&config, &runner).await;

        let mut hand = Vec::new();
        let mut ours = Vec::new();
        let mut hand_statements = 0;
        let mut our_statements = 0;
        for _ in 0..ROUNDS {
            let (d, n) = handwritten_round(&pool).await.expect("hand-written SQL");
            hand.push(d);
            hand_statements = n;
            let (d, n) = warden_round(&config, &runner).await;
            ours.push(d);
            our_statements = n;
        }
        let (hand, ours) = (median(hand), median(ours));
        let ratio = ours.as_secs_f64() / hand.as_secs_f64();
        let rows: i64 = TABLES.iter().map(|t| t.rows).sum();
        println!("scan benchmark: {} tables, {rows} rows, {checks} checks, median of {ROUNDS} rounds", TABLES.len());
        println!("  hand-written SQL : {:>9.1} ms  {hand_statements} statements", hand.as_secs_f64() * 1e3);
        println!(
            "  warden check     : {:>9.1} ms  {our_statements} statements ({} scans + {} catalog reads)",
            ours.as_secs_f64() * 1e3,
            our_statements - TABLES.len() as u64,
            TABLES.len()
        );
        println!("  ratio            : {ratio:.3}x (target <= 1.10x)");
        println!(
            "  statements/table : {:.1} (target: 1 scan + 1 catalog read)",
            our_statements as f64 / TABLES.len() as f64
        );
    });
}
