//! What warden may do to a warehouse, and what a busy one means.
//!
//! - Busy is not down: every statement waits in line for one of the
//!   warehouse's `max_connections` slots, the wait counts against
//!   `query_timeout`, and a statement that never got a connection times out
//!   as a check `error` without opening the circuit, whether it came from a
//!   scheduled run or a gate.
//! - Warehouse sessions are read-only: a `sql` check or a `where:` filter
//!   that tries to write fails as an `error` naming the cause, and the table
//!   is unchanged, on SQLite, PostgreSQL and MariaDB/MySQL.
//!
//! PostgreSQL and MariaDB cases read `WARDEN_TEST_POSTGRES_URL` and
//! `WARDEN_TEST_MYSQL_URL`: a case whose URL is unset is skipped with a note
//! on stderr, and fails when the URL is set but the server is unreachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use chrono_tz::Tz;
use serde_json::{Value as Json, json};
use warden::agent::Options;
use warden::check::kind::{CheckKind, RowCount, Sql};
use warden::check::{Baselines, CheckResult, CheckSpec, EvalContext, Outcome, Scope, run_dataset};
use warden::domain::{DatasetName, TableRef};
use warden::warehouse::{Warehouse, WarehouseError};

use crate::support::agent::{Project, sample, spawn_agent};
use crate::support::db::{Backend, TestDb, assert_error, check, dataset, result};

const UTC: Tz = chrono_tz::UTC;

// ---- typed config for the engine-level cases ----

fn sql_check(name: &str, query: &str) -> CheckSpec {
    check(
        name,
        CheckKind::Sql(Sql {
            query: query.into(),
            min: None,
            max: None,
        }),
    )
}

/// A row count of the rows `filter` keeps.
fn filtered_count(name: &str, filter: &str) -> CheckSpec {
    CheckSpec {
        filter: Some(filter.to_owned()),
        ..check(
            name,
            CheckKind::RowCount(RowCount {
                min: Some(1),
                max: None,
            }),
        )
    }
}

async fn run(wh: &Warehouse, table: TableRef, checks: Vec<CheckSpec>) -> Vec<CheckResult> {
    let ctx = EvalContext {
        now: Utc::now(),
        tz: UTC,
    };
    run_dataset(
        &dataset(table, None, checks),
        wh,
        &Scope::Whole,
        &ctx,
        &Baselines::default(),
    )
    .await
}

on_every_engine!(
    sql: sql_checks_and_filters_cannot_write,
    a_statement_cannot_make_the_next_one_writable,
);

// ---- warehouse sessions are read-only ----

/// The message each engine gives a write in a read-only session.
fn read_only_cause(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "in a read-only transaction",
        Backend::MySql => "READ ONLY transaction",
        Backend::Sqlite => "attempt to write a readonly database",
        Backend::ClickHouse => "readonly mode",
    }
}

async fn sql_checks_and_filters_cannot_write(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    db.exec("CREATE TABLE {s}.orders (order_id INTEGER); INSERT INTO {s}.orders VALUES (1), (2);")
        .await;
    let cause = read_only_cause(backend);
    let mut checks = vec![
        sql_check(
            "inserts",
            "INSERT INTO {{ table }} (order_id) VALUES (3), (4)",
        ),
        sql_check("deletes", "DELETE FROM {{ table }}"),
        sql_check("updates", "UPDATE {{ table }} SET order_id = 0"),
        // A filter that closes its parentheses to append a statement.
        filtered_count(
            "filter_appends_a_delete",
            "1=1); DELETE FROM {{ table }} WHERE (1=1",
        ),
        // Reading still works.
        sql_check("reads", "SELECT count(*) FROM {{ table }}"),
    ];
    // Writes the planner's statement shape cannot stop, only the session:
    // a function with a side effect in a `where:` filter.
    let function_cause = match backend {
        Backend::Postgres => {
            db.exec("CREATE SEQUENCE {s}.seq; CREATE TABLE {s}.log (n INTEGER);")
                .await;
            db.exec(
                "CREATE FUNCTION {s}.bump() RETURNS integer LANGUAGE sql VOLATILE AS \
                 $$ INSERT INTO {s}.log VALUES (1) RETURNING n $$;",
            )
            .await;
            checks.push(filtered_count(
                "filter_calls_nextval",
                &format!("nextval('{}.seq') > 0", db.schema),
            ));
            Some("cannot execute INSERT in a read-only transaction")
        }
        Backend::MySql => {
            db.exec("CREATE TABLE {s}.log (n INTEGER);").await;
            db.exec(
                "CREATE FUNCTION {s}.bump() RETURNS INTEGER MODIFIES SQL DATA \
                 BEGIN INSERT INTO {s}.log VALUES (1); RETURN 1; END",
            )
            .await;
            Some(cause)
        }
        Backend::Sqlite | Backend::ClickHouse => None,
    };
    if function_cause.is_some() {
        checks.push(filtered_count(
            "filter_calls_a_writing_function",
            &format!("{}.bump() > 0", db.quoted_schema()),
        ));
    }
    let wh = db.warehouse_with_slots(UTC, 1, Duration::from_secs(30));
    let results = run(&wh, db.table("orders"), checks).await;

    assert_error(&results, "inserts", cause);
    assert_error(&results, "deletes", cause);
    assert_error(&results, "updates", cause);
    if backend == Backend::Postgres {
        assert_error(
            &results,
            "inserts",
            "cannot execute INSERT in a read-only transaction",
        );
        assert_error(
            &results,
            "deletes",
            "cannot execute DELETE in a read-only transaction",
        );
        assert_error(
            &results,
            "filter_calls_nextval",
            "cannot execute nextval() in a read-only transaction",
        );
    }
    // PostgreSQL's extended protocol refuses two statements in one string,
    // MariaDB's prepared statements too; SQLite runs the second one, which
    // the read-only file refuses.
    let appended = match backend {
        Backend::Postgres => "cannot insert multiple commands into a prepared statement",
        Backend::MySql => "SQL syntax",
        Backend::Sqlite | Backend::ClickHouse => cause,
    };
    assert_error(&results, "filter_appends_a_delete", appended);
    if let Some(function_cause) = function_cause {
        assert_error(&results, "filter_calls_a_writing_function", function_cause);
        assert_eq!(db.count("log").await, 0, "the function wrote nothing");
    }
    let reads = result(&results, "reads");
    assert_eq!(
        (reads.outcome, reads.observed),
        (Outcome::Pass, Some(2.0)),
        "{reads:#?}"
    );
    assert_eq!(db.count("orders").await, 2, "the table is unchanged");
    wh.close().await;
    db.cleanup().await;
}

/// A statement that turns the session's read-only default off does not make
/// the next statement on that connection writable: the pool has one
/// connection, so both run on it.
async fn a_statement_cannot_make_the_next_one_writable(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    db.exec("CREATE TABLE {s}.orders (order_id INTEGER); INSERT INTO {s}.orders VALUES (1);")
        .await;
    let wh = db.warehouse_with_slots(UTC, 1, Duration::from_secs(30));
    let escape = match backend {
        Backend::Postgres => "SELECT set_config('default_transaction_read_only', 'off', false)",
        Backend::MySql => "SET SESSION TRANSACTION READ WRITE",
        Backend::Sqlite => "PRAGMA query_only = 0",
        Backend::ClickHouse => "SET readonly = 0",
    };
    // The statement itself runs (it changes only the session's default)...
    let first = wh.fetch_all(escape, &[]).await;
    if backend == Backend::Postgres {
        assert_eq!(
            first.as_ref().map(|rows| rows[0][0].to_string()).ok(),
            Some("off".to_owned()),
            "{first:?}"
        );
    }
    // ...and the next statement on the same connection still cannot write.
    let insert = format!("INSERT INTO {}.orders VALUES (2)", db.quoted_schema());
    let err = wh
        .fetch_all(&insert, &[])
        .await
        .expect_err("the write is refused");
    assert!(
        matches!(err, WarehouseError::Query { .. }),
        "a refused write is a query error, not a warehouse failure: {err:?}"
    );
    assert!(err.to_string().contains(read_only_cause(backend)), "{err}");
    if backend == Backend::Postgres {
        let rows = wh
            .fetch_all("SHOW default_transaction_read_only", &[])
            .await
            .unwrap();
        assert_eq!(rows[0][0].to_string(), "on");
    }
    assert_eq!(db.count("orders").await, 1, "the table is unchanged");
    wh.close().await;
    db.cleanup().await;
}

/// The demo's feed writes to its SQLite warehouse (WAL mode) through a
/// connection of its own while warden reads it read-only: warden sees each
/// write, and the writer is never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_sqlite_warehouse_sees_its_writer() {
    let db = TestDb::sqlite_wal().await;
    db.exec("CREATE TABLE {s}.orders (order_id INTEGER); INSERT INTO {s}.orders VALUES (1);")
        .await;
    let wh = db.warehouse_with_slots(UTC, 2, Duration::from_secs(30));
    let count = || async {
        let rows = wh
            .fetch_all("SELECT count(*) FROM orders", &[])
            .await
            .unwrap();
        rows[0][0].to_string()
    };
    assert_eq!(count().await, "1");
    db.exec("INSERT INTO {s}.orders VALUES (2);").await;
    assert_eq!(count().await, "2");
    let err = wh
        .fetch_all("INSERT INTO orders VALUES (3)", &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("readonly database"), "{err}");
    db.exec("INSERT INTO {s}.orders VALUES (3);").await;
    assert_eq!(count().await, "3");
    // The writer closes (SQLite removes the WAL files); reads go on.
    db.close_admin().await;
    wh.close().await;
    let wh = db.warehouse_with_slots(UTC, 2, Duration::from_secs(30));
    let rows = wh
        .fetch_all("SELECT count(*) FROM orders", &[])
        .await
        .unwrap();
    assert_eq!(rows[0][0].to_string(), "3");
    wh.close().await;
}

/// SQLite has no statement timeout: a scan still running at the query
/// timeout is interrupted there, so it releases its lock on the file and a
/// writer waiting behind it goes on at once, and the connection serves the
/// next statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_statement_stops_at_the_query_timeout() {
    let db = TestDb::new(Backend::Sqlite)
        .await
        .expect("SQLite needs no URL");
    db.exec("CREATE TABLE {s}.orders (order_id INTEGER); INSERT INTO {s}.orders VALUES (1);")
        .await;
    let timeout = Duration::from_secs(1);
    let wh = Arc::new(db.warehouse_with_slots(UTC, 1, timeout));
    // Minutes of work when nothing stops it, reading `orders` all along.
    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                   WHERE x < 10000000000) SELECT count(*) FROM c, orders";
    let started = Instant::now();
    let err = wh.fetch_all(endless, &[]).await.unwrap_err();
    assert!(
        matches!(err, WarehouseError::Timeout { .. }),
        "expected a timeout, got {err:?}"
    );
    // The writer is not held behind a statement that nobody waits for.
    db.exec("INSERT INTO {s}.orders VALUES (2);").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the write waited {:?}",
        started.elapsed()
    );
    let rows = wh
        .fetch_all("SELECT count(*) FROM orders", &[])
        .await
        .expect("the one connection serves the next statement");
    assert_eq!(rows[0][0].to_string(), "2");
    assert_eq!(wh.statements_running(), 0);
    wh.close().await;
}

// ---- busy is not down: the slots ----

/// Samples how many statements `wh` runs at once until `stop` is set.
fn sample_running(wh: &Arc<Warehouse>, stop: &Arc<AtomicBool>) -> Arc<AtomicUsize> {
    let most = Arc::new(AtomicUsize::new(0));
    let (wh, stop, out) = (wh.clone(), stop.clone(), most.clone());
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            out.fetch_max(wh.statements_running(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    most
}

/// Two slots, three one-second statements: the third waits for a slot and
/// then runs; never more than two run at once, and the server never sees
/// more than two connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_statement_waits_for_a_free_slot() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let wh = Arc::new(db.warehouse_with_slots(UTC, 2, Duration::from_secs(5)));
    assert_eq!(wh.max_connections(), 2);
    let stop = Arc::new(AtomicBool::new(false));
    let most = sample_running(&wh, &stop);
    let started = Instant::now();
    let answers = futures::future::join_all((0..3).map(|i| {
        let wh = wh.clone();
        async move {
            let sql = format!("SELECT {i}, pg_backend_pid() FROM pg_sleep(1)");
            let rows = wh.fetch_all(&sql, &[]).await;
            (rows, started.elapsed())
        }
    }))
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut pids = std::collections::BTreeSet::new();
    let mut done: Vec<Duration> = Vec::new();
    for (rows, at) in &answers {
        let rows = rows.as_ref().expect("every statement runs");
        pids.insert(rows[0][1].to_string());
        done.push(*at);
    }
    done.sort();
    assert!(done[1] < Duration::from_millis(1900), "{done:?}");
    assert!(
        done[2] >= Duration::from_secs(2),
        "the third waited for a slot: {done:?}"
    );
    assert!(pids.len() <= 2, "at most two connections: {pids:?}");
    assert!(most.load(Ordering::Relaxed) <= 2);
    assert_eq!(wh.statements_running(), 0, "every slot is free again");
    wh.close().await;
    db.cleanup().await;
}

/// One slot held past the query timeout: the statement waiting behind it
/// times out *waiting*, as a `Timeout` that says so, not as the warehouse
/// being unavailable; a statement that waited part of its timeout has only
/// the rest to run; the warehouse answers again once the slot is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_slot_counts_against_the_query_timeout() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let timeout = Duration::from_millis(1500);
    let wh = Arc::new(db.warehouse_with_slots(UTC, 1, timeout));
    let started = Instant::now();
    let hog = {
        let wh = wh.clone();
        tokio::spawn(async move { wh.fetch_all("SELECT 1 FROM pg_sleep(1)", &[]).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Gets the slot after ~0.8 s, and has ~0.7 s left for a 1 s statement.
    let second = {
        let wh = wh.clone();
        tokio::spawn(async move { wh.fetch_all("SELECT 2 FROM pg_sleep(1)", &[]).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Waits behind both and never gets the slot in time.
    let third = wh.fetch_all("SELECT 3", &[]).await;
    let third_at = started.elapsed();
    assert!(hog.await.unwrap().is_ok(), "the first statement finishes");
    let second = second.await.unwrap();
    match &second {
        Err(WarehouseError::Timeout { timeout: t, waited }) => {
            assert_eq!(*t, timeout);
            assert!(
                *waited >= Duration::from_millis(600) && *waited < timeout,
                "{waited:?}"
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let message = second.unwrap_err().to_string();
    assert!(
        message.starts_with("query timed out after 1.5s (")
            && message.ends_with("of it waiting for a free connection)"),
        "{message}"
    );
    let err = third.expect_err("no slot came within the query timeout");
    assert_eq!(
        err,
        WarehouseError::Timeout {
            timeout,
            waited: timeout
        }
    );
    assert_eq!(
        err.to_string(),
        "query timed out after 1.5s waiting for a free connection"
    );
    assert!(
        third_at < Duration::from_millis(1500 + 100 + 1000),
        "gave up at its deadline: {third_at:?}"
    );
    // Busy, not down: the warehouse answers a probe and a statement again.
    wh.ping().await.expect("the warehouse answers");
    let rows = wh.fetch_all("SELECT 4", &[]).await.expect("runs again");
    assert_eq!(rows[0][0].to_string(), "4");
    wh.close().await;
    db.cleanup().await;
}

/// A probe while every slot stays busy asks the server directly: a
/// warehouse busy with our own statements answers, so it is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_of_a_busy_warehouse_finds_it_up() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let wh = Arc::new(db.warehouse_with_slots(UTC, 1, Duration::from_secs(1)));
    let hog = {
        let wh = wh.clone();
        tokio::spawn(async move { wh.fetch_all("SELECT 1 FROM pg_sleep(3)", &[]).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    wh.ping().await.expect("busy is not down");
    let hog = hog.await.unwrap().unwrap_err();
    assert!(matches!(hog, WarehouseError::Timeout { .. }), "{hog:?}");
    wh.close().await;
    db.cleanup().await;
}

// ---- busy is not down: the agent ----

/// The case: six slow `sql` checks on a PostgreSQL warehouse with
/// `max_connections: 2`, plus ten concurrent gates on distinct partitions,
/// through the agent. Everything completes or times out as a check `error`,
/// `warden_warehouse_up` stays 1, and no warehouse alert fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn six_slow_checks_and_ten_gates_keep_a_two_connection_warehouse_up() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    db.exec(
        "CREATE TABLE {s}.big (id INTEGER); INSERT INTO {s}.big VALUES (1);
         CREATE TABLE {s}.orders (order_id BIGINT NOT NULL, customer_id BIGINT, order_date DATE NOT NULL);
         CREATE TABLE {s}.orders_staging (order_id BIGINT NOT NULL, customer_id BIGINT, order_date DATE NOT NULL);",
    )
    .await;
    let days: Vec<String> = (1..=10).map(|d| format!("2026-03-{d:02}")).collect();
    let rows: Vec<String> = days
        .iter()
        .enumerate()
        .flat_map(|(i, day)| (0..3).map(move |k| format!("({}, {k}, '{day}')", 10 * i + k)))
        .collect();
    db.exec(&format!(
        "INSERT INTO {{s}}.orders_staging VALUES {};",
        rows.join(", ")
    ))
    .await;

    let project = Project::new();
    project.write(
        "warden.yaml",
        &format!(
            "agent:\n  listen: 127.0.0.1:9464\n  registry: sqlite://warden.db\n  timezone: UTC\n\
             warehouses:\n  main:\n    url: {}\n    max_connections: 2\n    query_timeout: 2s\n\
             checks: [checks/*.yaml]\n",
            db.url()
        ),
    );
    let mut checks = format!(
        "datasets:\n  - name: orders\n    warehouse: main\n    table: {s}.orders\n    \
         schedule: \"0 0 1 1 *\"\n    partition: {{ column: order_date, granularity: day }}\n    \
         gate: {{ table: {s}.orders_staging }}\n    checks:\n      - row_count: {{ min: 1 }}\n      \
         - null_rate: {{ column: customer_id, max: 0 }}\n  - name: slow\n    warehouse: main\n    \
         table: {s}.big\n    schedule: \"0 0 1 1 *\"\n    checks:\n",
        s = db.schema
    );
    for i in 1..=6 {
        checks.push_str(&format!(
            "      - sql: {{ name: slow_{i}, query: \"SELECT count(*) FROM {{{{ table }}}}, pg_sleep(1)\", max: 10 }}\n"
        ));
    }
    project.write("checks/datasets.yaml", &checks);

    let (agent, warnings) = spawn_agent(
        &project.config(),
        Options {
            run_on_start: true,
            ..Options::default()
        },
    )
    .await;
    assert!(warnings.is_empty(), "{warnings:?}");
    let base = format!("http://{}", agent.addr());
    let client = reqwest::Client::new();

    // Watch `warden_warehouse_up` for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let body = client
                    .get(format!("{base}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                samples.push(sample(&body, "warden_warehouse_up{warehouse=\"main\"}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            samples
        })
    };

    let gates = futures::future::join_all(days.iter().map(|day| {
        let client = client.clone();
        let url = format!("{base}/api/v1/gates?wait=60s");
        let body = json!({"dataset": "orders", "partition": day, "run_id": "nightly"});
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Json = r.json().await.unwrap();
            (status, body)
        }
    }))
    .await;

    // The slow dataset's start-up run, retries included.
    let registry = agent.state().registry().clone();
    let slow = DatasetName::parse("slow").unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let results = loop {
        let results = registry.latest_results(&slow).await.unwrap();
        if results.len() == 6 {
            break results;
        }
        assert!(Instant::now() < deadline, "the slow run never finished");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = watcher.await.unwrap();

    // Every check completed or timed out as an error; none saw the
    // warehouse as unavailable.
    for stored in &results {
        let r = &stored.result;
        match r.outcome {
            Outcome::Pass => assert_eq!(r.observed, Some(1.0), "{r:#?}"),
            Outcome::Error => assert!(r.message.starts_with("query timed out after 2s"), "{r:#?}"),
            other => panic!("{other:?}: {r:#?}"),
        }
    }
    // Every gate decided: allowed, or denied for an error (a timeout) since
    // every staged partition is good.
    for ((status, gate), day) in gates.iter().zip(&days) {
        assert_eq!(*status, 200, "{day}: {gate:#}");
        match gate["status"].as_str() {
            Some("allowed") => {}
            Some("denied") => {
                assert_ne!(gate["basis"], "checks", "{day}: {gate:#}");
                let text = gate.to_string();
                assert!(!text.contains("unavailable"), "{day}: {gate:#}");
            }
            _ => panic!("{day}: {gate:#}"),
        }
    }
    assert!(!samples.is_empty());
    assert!(
        samples.iter().all(|s| *s == Some(1.0)),
        "warden_warehouse_up left 1: {samples:?}"
    );
    let circuit = agent.state().circuit("main").expect("a circuit for main");
    assert!(!circuit.is_open(), "the circuit stayed closed");
    assert!(
        registry
            .alert("warehouse:main", None)
            .await
            .unwrap()
            .is_none(),
        "no warehouse alert was ever raised"
    );
    let (status, alerts) = {
        let r = client
            .get(format!("{base}/api/v1/alerts"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Json>().await.unwrap())
    };
    assert_eq!(status, 200, "{alerts:#}");
    assert!(
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["labels"]["kind"] != "warehouse"),
        "{alerts:#}"
    );
    agent.shutdown().await;
    db.cleanup().await;
}
