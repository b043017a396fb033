//! ClickHouse beyond the cases every engine runs (`engine::clickhouse::*`):
//! a `Distributed` table over two shards, a server that is down, refused
//! credentials and databases, read-only sessions, timeouts the server
//! enforces, and a hostile partition given to the real binary.
//!
//! The servers come from `tests/clickhouse/start`, which prints
//! `WARDEN_TEST_CLICKHOUSE_URL` (the first server), and
//! `WARDEN_TEST_CLICKHOUSE_SHARD2_URL` with `WARDEN_TEST_CLICKHOUSE_CLUSTER`
//! (the second server and the cluster of both). A case whose variable is
//! unset is skipped with a note; one whose server cannot be reached fails.

use std::time::{Duration, Instant};

use chrono::Utc;
use chrono_tz::Tz;
use warden::check::kind::{CheckKind, RowCount, Sql};
use warden::check::{Baselines, CheckResult, CheckSpec, EvalContext, Outcome, Scope, run_dataset};
use warden::domain::{Granularity, TableRef};
use warden::warehouse::{Warehouse, WarehouseError};

use crate::support::agent::Project;
use crate::support::db::{
    Backend, ClickHouseAdmin, TestDb, assert_error, check, dataset, env_url, result,
    warehouse_config,
};

const UTC: Tz = chrono_tz::UTC;

fn row_count() -> CheckSpec {
    check(
        "row_count",
        CheckKind::RowCount(RowCount {
            min: Some(1),
            max: None,
        }),
    )
}

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

/// `url` with its user info replaced by `userinfo` (`user:password`).
fn with_userinfo(url: &str, userinfo: &str) -> String {
    let rest = url
        .strip_prefix("clickhouse://")
        .expect("a clickhouse:// URL");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("clickhouse://{userinfo}@{host}")
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    format!("{base}/{database}")
}

#[tokio::test]
async fn a_distributed_table_counts_the_rows_of_both_shards() {
    let Some(first) = TestDb::new(Backend::ClickHouse).await else {
        return;
    };
    let (Some(second_url), Some(cluster)) = (
        env_url("WARDEN_TEST_CLICKHOUSE_SHARD2_URL"),
        env_url("WARDEN_TEST_CLICKHOUSE_CLUSTER"),
    ) else {
        first.cleanup().await;
        return;
    };
    let second = ClickHouseAdmin::new(&second_url);
    second.ping().await;
    let schema = &first.schema;
    // The same local table on both shards, different rows in each.
    let local = "CREATE TABLE {s}.events_local (id INTEGER, day DATE)";
    first.exec(local).await;
    first
        .exec(
            "INSERT INTO {s}.events_local VALUES (1, '2026-11-19'), (2, '2026-11-20'), (3, '2026-11-20')",
        )
        .await;
    second.run(&format!("CREATE DATABASE `{schema}`")).await;
    second
        .run(&crate::support::db::clickhouse_ddl(
            &local.replace("{s}", &format!("`{schema}`")),
        ))
        .await;
    second
        .run(&format!(
            "INSERT INTO `{schema}`.events_local VALUES (4, '2026-11-20'), (5, '2026-11-20'), \
             (6, '2026-11-21'), (7, '2026-11-21')"
        ))
        .await;
    first
        .exec(&format!(
            "CREATE TABLE {{s}}.events AS {{s}}.events_local \
             ENGINE = Distributed({cluster}, '{schema}', 'events_local')"
        ))
        .await;
    let shard_counts = (first.count("events_local").await, {
        let text = second
            .run(&format!(
                "SELECT count() FROM `{schema}`.events_local FORMAT TabSeparated"
            ))
            .await;
        text.trim().parse::<i64>().expect("a count")
    });
    assert_eq!(shard_counts, (3, 4));

    let wh = first.warehouse(UTC);
    let results = run(&wh, first.table("events"), vec![row_count()]).await;
    let r = result(&results, "row_count");
    assert_eq!(
        (r.outcome, r.observed),
        (Outcome::Pass, Some(7.0)),
        "{r:#?}"
    );

    // One day's partition, across both shards.
    let ds = dataset(
        first.table("events"),
        Some(("day", Granularity::Day)),
        vec![row_count()],
    );
    let day = warden::domain::PartitionKey::parse("2026-11-20", Granularity::Day).unwrap();
    let ctx = EvalContext {
        now: Utc::now(),
        tz: UTC,
    };
    let results = run_dataset(
        &ds,
        &wh,
        &Scope::Partition(day),
        &ctx,
        &Baselines::default(),
    )
    .await;
    let r = result(&results, "row_count");
    assert_eq!(
        (r.outcome, r.observed),
        (Outcome::Pass, Some(4.0)),
        "{r:#?}"
    );

    second.run(&format!("DROP DATABASE `{schema}`")).await;
    first.cleanup().await;
}

#[tokio::test]
async fn a_down_server_is_an_error_within_two_seconds() {
    // A port nothing listens on: bound, then released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address").port()
    };
    let url = format!("clickhouse://default@127.0.0.1:{port}/default");
    let wh = Warehouse::connect(&warehouse_config(&url, Duration::from_secs(30)), UTC)
        .expect("warehouse");
    let started = Instant::now();
    let results = run(
        &wh,
        TableRef::parse("default.orders").unwrap(),
        vec![row_count()],
    )
    .await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert_error(
        &results,
        "row_count",
        &format!("connection refused by 127.0.0.1:{port}"),
    );
    let err = wh.reachable().await.expect_err("nothing listens");
    assert!(matches!(err, WarehouseError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("check that the server runs"),
        "{err}"
    );
}

#[tokio::test]
async fn refused_credentials_and_databases_say_what_to_check() {
    let Some(url) = env_url("WARDEN_TEST_CLICKHOUSE_URL") else {
        return;
    };
    ClickHouseAdmin::new(&url).ping().await;
    let reason = |url: String| async move {
        let wh = Warehouse::connect(&warehouse_config(&url, Duration::from_secs(10)), UTC)
            .expect("warehouse");
        match wh.ping().await {
            Err(WarehouseError::Unavailable { reason, .. }) => reason,
            other => panic!("{url}: {other:?}"),
        }
    };
    let wrong = reason(with_userinfo(&url, "reader:not-the-password")).await;
    assert!(
        wrong.starts_with("authentication failed for user `reader`"),
        "{wrong}"
    );
    assert!(
        wrong.contains("check the user name and the password"),
        "{wrong}"
    );
    assert!(!wrong.contains("not-the-password"), "{wrong}");
    let unknown = reason(with_userinfo(&url, "nobody")).await;
    assert!(
        unknown.starts_with("authentication failed for user `nobody`"),
        "{unknown}"
    );
    let missing = reason(with_database(&url, "no_such_database")).await;
    assert!(
        missing.starts_with("database `no_such_database` does not exist"),
        "{missing}"
    );

    // The right password is let in.
    let wh = Warehouse::connect(
        &warehouse_config(
            &with_userinfo(&url, "reader:reader-secret"),
            Duration::from_secs(10),
        ),
        UTC,
    )
    .expect("warehouse");
    wh.ping().await.expect("reader signs in");
}

#[tokio::test]
async fn sessions_are_read_only() {
    let Some(db) = TestDb::new(Backend::ClickHouse).await else {
        return;
    };
    db.exec("CREATE TABLE {s}.orders (order_id INTEGER); INSERT INTO {s}.orders VALUES (1), (2);")
        .await;
    let wh = db.warehouse_with_slots(UTC, 1, Duration::from_secs(30));
    let results = run(
        &wh,
        db.table("orders"),
        vec![
            sql_check(
                "inserts",
                "INSERT INTO {{ table }} (order_id) VALUES (3), (4)",
            ),
            sql_check("deletes", "ALTER TABLE {{ table }} DELETE WHERE 1 = 1"),
            sql_check("drops", "DROP TABLE {{ table }}"),
            sql_check("creates", "CREATE DATABASE warden_never_created"),
            sql_check("reads", "SELECT count() FROM {{ table }}"),
        ],
    )
    .await;
    for name in ["inserts", "deletes", "drops", "creates"] {
        assert_error(&results, name, "readonly mode");
    }
    let reads = result(&results, "reads");
    assert_eq!((reads.outcome, reads.observed), (Outcome::Pass, Some(2.0)));

    // A statement cannot lift the setting for the next one.
    let lift = wh.fetch_all("SET readonly = 0", &[]).await;
    assert!(lift.is_err(), "{lift:?}");
    let insert = format!("INSERT INTO {}.orders VALUES (9)", db.quoted_schema());
    let err = wh.fetch_all(&insert, &[]).await.expect_err("refused");
    assert!(matches!(err, WarehouseError::Query { .. }), "{err:?}");
    assert!(err.to_string().contains("readonly mode"), "{err}");
    assert_eq!(db.count("orders").await, 2, "the table is unchanged");
    db.cleanup().await;
}

/// A user whose profile is read-only already (`monitor`, see
/// `tests/clickhouse/start`) may change no setting: statements still run,
/// bounded by the client's timeout, and still cannot write.
#[tokio::test]
async fn a_user_with_a_read_only_profile_reads_and_cannot_write() {
    let Some(db) = TestDb::new(Backend::ClickHouse).await else {
        return;
    };
    db.exec("CREATE TABLE {s}.orders (order_id INTEGER, day DATE); INSERT INTO {s}.orders VALUES (1, '2026-11-20'), (2, '2026-11-21');")
        .await;
    let url = with_userinfo(db.url(), "monitor");
    let wh = Warehouse::connect(&warehouse_config(&url, Duration::from_secs(10)), UTC)
        .expect("warehouse");
    let ds = dataset(
        db.table("orders"),
        Some(("day", Granularity::Day)),
        vec![
            row_count(),
            sql_check("inserts", "INSERT INTO {{ table }} (order_id) VALUES (3)"),
        ],
    );
    let day = warden::domain::PartitionKey::parse("2026-11-20", Granularity::Day).unwrap();
    let ctx = EvalContext {
        now: Utc::now(),
        tz: UTC,
    };
    for _ in 0..2 {
        let results = run_dataset(
            &ds,
            &wh,
            &Scope::Partition(day),
            &ctx,
            &Baselines::default(),
        )
        .await;
        let r = result(&results, "row_count");
        assert_eq!(
            (r.outcome, r.observed),
            (Outcome::Pass, Some(1.0)),
            "{r:#?}"
        );
        assert_error(&results, "inserts", "readonly mode");
    }
    assert_eq!(db.count("orders").await, 2, "the table is unchanged");
    db.cleanup().await;
}

#[tokio::test]
async fn the_server_stops_a_statement_at_the_query_timeout() {
    let Some(db) = TestDb::new(Backend::ClickHouse).await else {
        return;
    };
    let wh = db.warehouse_with_timeout(UTC, Duration::from_secs(1));
    let started = Instant::now();
    // Billions of rows: far more than a second's work (table functions
    // such as `numbers()` are refused in read-only sessions).
    let err = wh
        .fetch_all(
            "SELECT count() FROM (SELECT number FROM system.numbers LIMIT 100000000000) \
             WHERE sipHash64(number) = 0",
            &[],
        )
        .await
        .expect_err("too slow");
    assert!(matches!(err, WarehouseError::Timeout { .. }), "{err:?}");
    assert_eq!(err.to_string(), "query timed out after 1s");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The warehouse still answers afterwards.
    wh.ping().await.expect("up");
    db.cleanup().await;
}

#[test]
fn a_hostile_partition_is_refused_before_any_statement() {
    let Some(url) = env_url("WARDEN_TEST_CLICKHOUSE_URL") else {
        return;
    };
    crate::support::cli::block_on(async {
        let Some(db) = TestDb::new(Backend::ClickHouse).await else {
            return;
        };
        db.exec(
            "CREATE TABLE {s}.orders (order_id INTEGER, order_date DATE);
             INSERT INTO {s}.orders VALUES (1, '2026-11-19'), (2, '2026-11-20'), (3, '2026-11-20');",
        )
        .await;
        let project = Project::empty();
        project.write(
            "warden.yaml",
            &format!(
                "agent:\n  registry: sqlite://warden.db\n  timezone: UTC\n\
                 warehouses:\n  main:\n    url: {url}\n    query_timeout: 10s\n\
                 checks: [checks/*.yaml]\n"
            ),
        );
        project.write(
            "checks/daily.yaml",
            &format!(
                "datasets:\n  - name: daily\n    warehouse: main\n    table: {}.orders\n\
                 \x20   schedule: \"@daily\"\n    partition: {{ column: order_date, granularity: day }}\n\
                 \x20   checks:\n      - row_count: {{ min: 1 }}\n",
                db.schema
            ),
        );
        let hostile = "2026-11-20'; DROP TABLE orders; --";
        let run = project.warden(&["check", "--dataset", "daily", "--partition", hostile]);
        run.assert_code(2);
        assert_eq!(
            run.stderr_lines(),
            [format!(
                "error: invalid partition `{hostile}`: expected a day like 2026-11-20"
            )]
        );
        assert_eq!(db.count("orders").await, 3, "the table is intact");

        let run = project.warden(&[
            "check",
            "--dataset",
            "daily",
            "--partition",
            "2026-11-20",
            "--format",
            "json",
        ]);
        run.assert_code(0);
        let doc = run.json();
        assert_eq!(doc["results"][0]["observed"], serde_json::json!(2.0));
        db.cleanup().await;
    });
}

#[test]
fn init_proposes_checks_that_pass() {
    crate::support::cli::block_on(async {
        let Some(db) = TestDb::new(Backend::ClickHouse).await else {
            return;
        };
        db.exec(
            "CREATE TABLE {s}.events (event_id BIGINT, user_id INTEGER, kind VARCHAR(10), day DATE, at {TIMESTAMPTZ});
             INSERT INTO {s}.events VALUES
                (1, 10, 'view', '2026-11-19', '2026-11-19 10:00:00'),
                (2, NULL, 'cart', '2026-11-20', '2026-11-20 10:00:00'),
                (3, 11, 'view', '2026-11-20', '2026-11-20 11:00:00');
             CREATE TABLE {s}.users (user_id INTEGER, email VARCHAR(50));
             INSERT INTO {s}.users VALUES (10, 'a@example.com'), (11, 'b@example.com');",
        )
        .await;
        let project = Project::empty();
        let run = project.warden(&["init", "--warehouse", db.url(), "--schema", &db.schema]);
        run.assert_code(0);
        assert!(
            run.stdout.starts_with(&format!(
                "Read the catalog of schema {} and profiled 2 tables (3 statements in all).\n",
                db.schema
            )),
            "{}",
            run.stdout
        );
        let checks = std::fs::read_to_string(project.path(&format!("checks/{}.yaml", db.schema)))
            .expect("the check file");
        for expected in [
            "{ name: event_id, type: bigint }",
            "{ name: user_id, type: integer }",
            "{ name: kind, type: text }",
            "{ name: day, type: date }",
            "{ name: at, type: timestamptz }",
            "- null_rate: { columns: [user_id, email], max: 0 }",
        ] {
            assert!(checks.contains(expected), "{expected} not in\n{checks}");
        }
        // The proposals hold on the data they were read from.
        let run = project.warden(&["check", "--format", "json"]);
        let doc = run.json();
        let results = doc["results"].as_array().expect("results");
        assert!(!results.is_empty());
        for r in results {
            assert_ne!(r["outcome"], "error", "{r:#}");
            assert_ne!(r["outcome"], "fail", "{r:#}");
        }
        db.cleanup().await;
    });
}
