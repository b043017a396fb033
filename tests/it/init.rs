//! `warden init` run for real against each engine: a schema of realistic
//! tables (keys, nullable columns, timestamps, a date-partitioned table)
//! becomes a configuration that validates and whose checks pass when
//! `warden check` runs them; the catalog is read once and each table
//! profiled in one statement; files are never overwritten without
//! `--force`; a password never reaches a file or the output; `--tables`
//! filters; a warehouse that cannot be reached says what to check.

use chrono::{Duration, Utc};
use serde_json::Value;

use crate::support::agent::{Project, free_port};
use crate::support::db::{Backend, TestDb, env_url};

/// `n` rows of `(...)` tuples joined for one INSERT.
fn values(rows: impl Iterator<Item = String>) -> String {
    rows.collect::<Vec<_>>().join(",\n")
}

/// A UTC timestamp `minutes` ago, as a literal for `{TIMESTAMP}` columns.
fn ago(minutes: i64) -> String {
    (Utc::now() - Duration::minutes(minutes))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The date `days` ago (UTC).
fn day(days: i64) -> String {
    (Utc::now() - Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// The shop: `customers` (a key, a unique email, a phone missing for one
/// in four), `orders` (a two-column key, a coupon on one order in three,
/// updated a minute ago at the latest) and `daily_sales` (15 rows a day
/// for the last six days, partitioned by day where the engine can).
async fn shop(db: &TestDb) {
    let customers = values((1..=120).map(|i| {
        let phone = if i % 4 == 0 {
            "NULL".to_owned()
        } else {
            format!("'+33 6 {i:08}'")
        };
        format!(
            "({i}, 'c{i}@example.com', {phone}, '{}')",
            ago(60 * 24 * 30 - i)
        )
    }));
    let orders = values((1..=200).map(|i| {
        let coupon = if i % 3 == 0 { "'WELCOME'" } else { "NULL" };
        format!(
            "({}, {}, {}, {}.50, {coupon}, '{} +00:00')",
            1000 + i / 2,
            i % 2,
            1 + i % 120,
            10 + i % 90,
            ago(201 - i)
        )
    }));
    let sales = values((0..6).flat_map(|d| {
        (0..15).map(move |i| format!("('{}', 'region{}', {})", day(d), i % 5, 100 + i))
    }));
    let partitioned = match db.backend {
        Backend::Postgres => "PARTITION BY RANGE (sale_date)",
        Backend::MySql => {
            "PARTITION BY RANGE COLUMNS (sale_date) \
             (PARTITION p_old VALUES LESS THAN ('2000-01-01'), PARTITION p_now VALUES LESS THAN (MAXVALUE))"
        }
        Backend::Sqlite => "",
        Backend::ClickHouse => unreachable!("runs on the SQL engines"),
    };
    db.exec(&format!(
        "CREATE TABLE {{s}}.customers (customer_id INTEGER PRIMARY KEY, email VARCHAR(200) NOT NULL,
             phone VARCHAR(40), created_at {{TIMESTAMP}});
         CREATE TABLE {{s}}.orders (order_id BIGINT NOT NULL, line INTEGER NOT NULL, customer_id INTEGER,
             amount NUMERIC(10,2), coupon VARCHAR(20), updated_at {{TIMESTAMPTZ}},
             PRIMARY KEY (order_id, line));
         CREATE TABLE {{s}}.daily_sales (sale_date DATE NOT NULL, region VARCHAR(20), amount NUMERIC(10,2))
             {partitioned};
         INSERT INTO {{s}}.customers VALUES {customers};
         INSERT INTO {{s}}.orders VALUES {orders};"
    ))
    .await;
    if db.backend == Backend::Postgres {
        db.exec("CREATE TABLE {s}.daily_sales_all PARTITION OF {s}.daily_sales DEFAULT;")
            .await;
    }
    db.exec(&format!("INSERT INTO {{s}}.daily_sales VALUES {sales};"))
        .await;
}

/// The dataset entry of `name` in a check file: its lines up to the next entry.
fn dataset_entry<'a>(checks: &'a str, name: &str) -> &'a str {
    let start = checks
        .find(&format!("  - name: {name}\n"))
        .unwrap_or_else(|| panic!("no dataset {name} in\n{checks}"));
    let rest = &checks[start + 1..];
    let end = rest.find("\n  - name: ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

/// The line of `entry` that starts (after indentation) with `yaml`.
#[track_caller]
fn line<'a>(entry: &'a str, yaml: &str) -> &'a str {
    entry
        .lines()
        .find(|l| l.trim_start().starts_with(yaml))
        .unwrap_or_else(|| panic!("no line `{yaml}` in\n{entry}"))
}

/// The comment beside a line.
fn why(line: &str) -> &str {
    line.rsplit_once("  # ").map_or("", |(_, why)| why)
}

async fn a_schema_becomes_checks_that_pass(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    shop(&db).await;
    let project = Project::empty();
    let run = project.warden(&["init", "--warehouse", db.url(), "--schema", &db.schema]);
    run.assert_code(0);
    // One catalog statement, one profile per table.
    assert!(
        run.stdout.starts_with(&format!(
            "Read the catalog of schema {} and profiled 3 tables (4 statements in all).\n",
            db.schema
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("./warden.yaml: configuration is valid\n"),
        "{}",
        run.stdout
    );
    let next = run.stdout.split("\nNext:\n").nth(1).expect("next steps");
    let commands: Vec<&str> = next
        .lines()
        .filter_map(|l| l.split("  #").next())
        .map(str::trim)
        .collect();
    assert_eq!(commands, ["warden check", "warden run"], "{next}");

    let checks = std::fs::read_to_string(project.path(&format!("checks/{}.yaml", db.schema)))
        .expect("the check file");
    let table = |name: &str| match backend {
        Backend::Sqlite => name.to_owned(),
        _ => format!("{}.{name}", db.schema),
    };

    let orders = dataset_entry(&checks, "orders");
    assert!(
        orders.contains(&format!("\n    table: {}\n", table("orders"))),
        "{orders}"
    );
    assert_eq!(
        why(line(orders, "- row_count: { min: 1 }")),
        "200 rows today"
    );
    let fresh = line(orders, "- freshness:");
    // Updated a minute ago: twice that plus an hour, rounded up.
    assert!(
        fresh.contains("{ column: updated_at, max_lag: 2h }"),
        "{fresh}"
    );
    assert!(why(fresh).starts_with("newest updated_at is "), "{fresh}");
    let complete = line(orders, "- null_rate: { columns: [");
    assert!(
        complete.contains("[order_id, line, customer_id, amount, updated_at], max: 0 }"),
        "{complete}"
    );
    assert_eq!(why(complete), "0 NULLs in 200 rows");
    let coupon = line(orders, "- null_rate: { column: coupon,");
    assert!(coupon.contains("max: 84%, severity: warn }"), "{coupon}");
    assert_eq!(why(coupon), "67% NULL in 200 rows; the limit adds a margin");
    let key = line(orders, "- unique: { columns: [order_id, line] }");
    assert_eq!(why(key), "the primary key");
    assert!(
        orders.contains("{ name: order_id, type: bigint }"),
        "{orders}"
    );
    assert!(orders.contains("{ name: line, type: integer }"), "{orders}");
    assert!(
        orders.contains("      # - anomaly: { metric: row_count }"),
        "{orders}"
    );
    assert!(!orders.contains("partition:"), "{orders}");

    let customers = dataset_entry(&checks, "customers");
    assert_eq!(
        why(line(customers, "- unique: { columns: [customer_id] }")),
        "the primary key"
    );
    assert_eq!(
        why(line(customers, "- unique: { columns: [email] }")),
        "120 distinct values in 120 non-NULL rows"
    );
    let phone = line(customers, "- null_rate: { column: phone,");
    assert!(phone.contains("max: 32%, severity: warn }"), "{phone}");
    assert_eq!(
        why(line(customers, "- freshness:"))
            .split_once(" is ")
            .map(|(c, _)| c),
        Some("newest created_at")
    );

    let sales = dataset_entry(&checks, "daily_sales");
    let partition = line(sales, "partition: { column: sale_date, granularity: day }");
    let reason = match backend {
        Backend::Sqlite => "15 rows per day on average over 6 days",
        Backend::ClickHouse => unreachable!("runs on the SQL engines"),
        _ => "the table is partitioned by sale_date",
    };
    assert_eq!(why(partition), reason);
    assert_eq!(
        why(line(sales, "- row_count: { min: 1 }")),
        "90 rows today; each run counts one day's partition"
    );
    // The partitions of a PostgreSQL table are not tables of their own.
    assert!(!checks.contains("daily_sales_all"), "{checks}");

    let routes = std::fs::read_to_string(project.path("alerts/routes.yaml")).expect("routes");
    assert!(routes.contains("console: { log: {} }"), "{routes}");

    // The real binary runs the proposed checks, and they hold.
    let run = project.warden(&["check", "--format", "json"]);
    run.assert_code(0);
    let doc = run.json();
    let results = doc["results"].as_array().expect("results");
    assert!(results.len() >= 20, "{doc:#}");
    for r in results {
        assert!(r["outcome"] == "pass", "{r:#}");
    }
    let partitioned: Vec<&Value> = results
        .iter()
        .filter(|r| r["dataset"] == "daily_sales" && r["kind"] == "row_count")
        .collect();
    assert_eq!(partitioned.len(), 1);
    assert!(partitioned[0]["partition"].is_string(), "{doc:#}");
    db.cleanup().await;
}

on_every_engine!(sql: a_schema_becomes_checks_that_pass);

/// A project with the shop in its SQLite warehouse, `warehouse.db`.
async fn sqlite_shop() -> (Project, TestDb) {
    let db = TestDb::new(Backend::Sqlite)
        .await
        .expect("SQLite needs no URL");
    shop(&db).await;
    (Project::empty(), db)
}

#[tokio::test]
async fn existing_files_are_kept_unless_forced() {
    let (project, db) = sqlite_shop().await;
    project
        .warden(&["init", "--warehouse", db.url()])
        .assert_code(0);
    let files = ["warden.yaml", "checks/main.yaml", "alerts/routes.yaml"];
    for f in files {
        project.write(f, &format!("# my own {f}\n"));
    }
    let run = project.warden(&["init", "--warehouse", db.url()]);
    run.assert_code(2);
    assert_eq!(
        run.errors(),
        [
            "error: ./warden.yaml, ./alerts/routes.yaml already exist; warden init does not \
          overwrite (pass --force to replace them)"
        ]
    );
    assert_eq!(run.stdout, "");
    // Only the check file: refused once the schema is known, nothing written.
    std::fs::remove_file(project.path("warden.yaml")).unwrap();
    std::fs::remove_file(project.path("alerts/routes.yaml")).unwrap();
    let run = project.warden(&["init", "--warehouse", db.url()]);
    run.assert_code(2);
    assert_eq!(
        run.errors(),
        [
            "error: ./checks/main.yaml already exists; warden init does not overwrite \
          (pass --force to replace it)"
        ]
    );
    assert!(!project.path("warden.yaml").exists());
    assert!(!project.path("alerts/routes.yaml").exists());
    assert_eq!(
        std::fs::read_to_string(project.path("checks/main.yaml")).unwrap(),
        "# my own checks/main.yaml\n"
    );

    project.write("warden.yaml", "# my own warden.yaml\n");
    let run = project.warden(&["init", "--warehouse", db.url(), "--force"]);
    run.assert_code(0);
    for f in files {
        let text = std::fs::read_to_string(project.path(f)).unwrap();
        assert!(!text.starts_with("# my own"), "{f} was not replaced");
    }
    project.warden(&["validate"]).assert_code(0);
}

#[tokio::test]
async fn tables_filters_by_glob() {
    let (project, db) = sqlite_shop().await;
    let run = project.warden(&["init", "--warehouse", db.url(), "--tables", "ord*"]);
    run.assert_code(0);
    assert!(
        run.stdout.starts_with(
            "Read the catalog of schema main and profiled 1 table (2 statements in all)."
        ),
        "{}",
        run.stdout
    );
    let checks = std::fs::read_to_string(project.path("checks/main.yaml")).unwrap();
    let names: Vec<&str> = checks
        .lines()
        .filter_map(|l| l.strip_prefix("  - name: "))
        .collect();
    assert_eq!(names, ["orders"]);

    let other = Project::empty();
    let run = other.warden(&["init", "--warehouse", db.url(), "--tables", "fct_*"]);
    run.assert_code(2);
    assert_eq!(
        run.errors(),
        [
            "error: no table of the default schema (name one with --schema) matches --tables \
          `fct_*` (there are: customers, daily_sales, orders)"
        ]
    );
    assert!(!other.path("warden.yaml").exists());
}

#[tokio::test]
async fn the_url_can_come_from_the_environment() {
    let (project, db) = sqlite_shop().await;
    let run = project.warden(&["init"]);
    run.assert_code(2);
    assert!(run.stderr.contains("--warehouse <URL>"), "{}", run.stderr);
    let run = project.warden_env(
        &["init", "--tables", "customers"],
        &[("WAREHOUSE_URL", db.url())],
    );
    run.assert_code(0);
    let config = std::fs::read_to_string(project.config()).unwrap();
    assert!(
        config.contains(&format!("    url: {}\n", db.url())),
        "{config}"
    );
}

#[tokio::test]
async fn a_sample_bounds_the_counts_not_the_row_count() {
    let (project, db) = sqlite_shop().await;
    let run = project.warden(&["init", "--warehouse", db.url(), "--sample", "50"]);
    run.assert_code(0);
    let checks = std::fs::read_to_string(project.path("checks/main.yaml")).unwrap();
    let orders = dataset_entry(&checks, "orders");
    assert_eq!(
        why(line(orders, "- row_count: { min: 1 }")),
        "200 rows today"
    );
    assert_eq!(
        why(line(orders, "- null_rate: { columns: [")),
        "0 NULLs in 50 sampled rows (of 200)"
    );
    // Fewer rows than a share needs: no limit is proposed on it.
    assert!(!orders.contains("column: coupon"), "{orders}");
    project
        .warden(&["init", "--warehouse", db.url(), "--sample", "0"])
        .assert_code(2);
}

/// The URL of `WARDEN_TEST_POSTGRES_URL` with `password` as its password
/// (the test server trusts local connections, so any password works).
fn postgres_url_with_password(password: &str) -> Option<String> {
    let mut url = url::Url::parse(&env_url("WARDEN_TEST_POSTGRES_URL")?).expect("a URL");
    url.set_password(Some(password)).expect("a URL with a user");
    Some(url.to_string())
}

#[tokio::test]
async fn a_password_is_written_as_a_variable_and_never_shown() {
    const SECRET: &str = "s3cret-Pa55";
    let Some(url) = postgres_url_with_password(SECRET) else {
        return;
    };
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    shop(&db).await;
    let project = Project::empty();
    let run = project.warden(&["init", "--warehouse", &url, "--schema", &db.schema]);
    run.assert_code(0);
    assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET));
    // Validated with the password it knows, so the file is valid as written.
    assert!(
        run.stdout.contains("configuration is valid"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("\n  export WAREHOUSE_PASSWORD=...   # "),
        "{}",
        run.stdout
    );
    let config = std::fs::read_to_string(project.config()).unwrap();
    assert!(config.contains(":${WAREHOUSE_PASSWORD}@"), "{config}");
    for f in [
        "warden.yaml",
        &format!("checks/{}.yaml", db.schema),
        "alerts/routes.yaml",
    ] {
        let text = std::fs::read_to_string(project.path(f)).unwrap();
        assert!(!text.contains(SECRET), "{f} holds the password");
    }

    // Without the variable, the configuration says which one is missing.
    let run = project.warden(&["validate"]);
    run.assert_code(2);
    assert!(run.stderr.contains("WAREHOUSE_PASSWORD"), "{}", run.stderr);
    let run = project.warden_env(
        &["check", "--format", "json"],
        &[("WAREHOUSE_PASSWORD", SECRET)],
    );
    run.assert_code(0);
    assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET));
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_a_relation_that_cannot_be_read_is_left_out() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    db.exec(
        "CREATE TABLE {s}.t (a INTEGER NOT NULL); INSERT INTO {s}.t VALUES (1);
         CREATE VIEW {s}.boom AS SELECT a, 1 / (a - a) AS ratio FROM {s}.t;",
    )
    .await;
    let project = Project::empty();
    let run = project.warden(&["init", "--warehouse", db.url(), "--schema", &db.schema]);
    run.assert_code(0);
    assert!(
        run.stdout
            .contains("Left out `boom`: cannot profile it: query failed: division by zero\n"),
        "{}",
        run.stdout
    );
    let checks =
        std::fs::read_to_string(project.path(&format!("checks/{}.yaml", db.schema))).unwrap();
    assert!(
        checks.contains("# Left out: `boom`: cannot profile it: query failed: division by zero\n"),
        "{checks}"
    );
    let names: Vec<&str> = checks
        .lines()
        .filter_map(|l| l.strip_prefix("  - name: "))
        .collect();
    assert_eq!(names, ["t"]);
    project.warden(&["check"]).assert_code(0);
    db.cleanup().await;
}

#[test]
fn an_unreachable_warehouse_says_what_to_check_and_writes_nothing() {
    let project = Project::empty();
    let port = free_port();
    let url = format!("postgres://warden:hunter2@127.0.0.1:{port}/shop");
    let run = project.warden(&["init", "--warehouse", &url]);
    run.assert_code(2);
    assert_eq!(
        run.errors(),
        [format!(
            "error: cannot read the catalog of the default schema: warehouse `main` unavailable: \
             connection refused by 127.0.0.1:{port} (postgres://warden:***@127.0.0.1:{port}/shop); \
             check that the server runs and listens on that host and port"
        )]
    );
    assert!(!run.stderr.contains("hunter2"));
    assert!(!project.path("warden.yaml").exists());

    let run = project.warden(&["init", "--warehouse", "sqlite://missing.db"]);
    run.assert_code(2);
    let error = run.errors().join("\n");
    assert!(error.contains("no database file at missing.db"), "{error}");
    assert!(!project.path("missing.db").exists());
    assert!(!project.path("warden.yaml").exists());

    let run = project.warden(&["init", "--warehouse", "oracle://u:hunter2@db/x"]);
    run.assert_code(2);
    assert_eq!(
        run.errors(),
        [
            "error: --warehouse: unsupported scheme `oracle` (expected postgres://, mysql://, sqlite:// or clickhouse://)"
        ]
    );
}
