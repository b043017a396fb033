//! Shared harness for the integration tests: a fresh database per test on
//! each engine, and small builders for typed config values.
//!
//! PostgreSQL and MariaDB cases read `WARDEN_TEST_POSTGRES_URL` and
//! `WARDEN_TEST_MYSQL_URL`. When a URL is unset the case is skipped with a
//! note on stderr; when it is set and the server cannot be reached, the case
//! fails. Each case gets its own schema (PostgreSQL), database (MariaDB) or
//! file (SQLite), so cases can run in parallel.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono_tz::Tz;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use warden::check::{CheckKind, CheckSpec, Dataset, PartitionSpec, Schedule, Severity};
use warden::domain::{CheckId, DatasetName, Granularity, Identifier, Ratio, TableRef};
use warden::source::SourcePos;
use warden::warehouse::{Engine, Settings, Warehouse};

/// The engines every case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

enum Admin {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// A database of its own for one test.
pub struct TestDb {
    pub backend: Backend,
    /// Schema (PostgreSQL), database (MariaDB) or attached name (`main`, SQLite) holding the test's tables.
    pub schema: String,
    url: String,
    admin: Admin,
    _dir: Option<tempfile::TempDir>,
}

/// A name no other test (in this or another process) uses.
pub(super) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The URL in `var`, or `None` with a note when it is unset or empty.
pub(super) fn env_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("note: {var} is not set; skipping this case");
            None
        }
    }
}

impl TestDb {
    /// A fresh database on `backend`, or `None` (with a note) when its URL is unset.
    pub async fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("warehouse.db");
                // Under a loaded machine the agent's own connections can
                // hold the file longer than sqlx's default 5 s busy wait: a
                // gate's deliberately slow query (seconds when idle) holds
                // its read lock for a minute or more.
                let opts = SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .busy_timeout(Duration::from_secs(120));
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await
                    .expect("open sqlite");
                Some(Self {
                    backend,
                    schema: "main".into(),
                    url: format!("sqlite://{}", path.display()),
                    admin: Admin::Sqlite(pool),
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let url = env_url("WARDEN_TEST_POSTGRES_URL")?;
                let opts = PgConnectOptions::from_str(&url).expect("WARDEN_TEST_POSTGRES_URL");
                let pool = PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("WARDEN_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
                    });
                let schema = unique_name("t");
                sqlx::raw_sql(&format!("CREATE SCHEMA \"{schema}\""))
                    .execute(&pool)
                    .await
                    .expect("create schema");
                Some(Self {
                    backend,
                    schema,
                    url,
                    admin: Admin::Postgres(pool),
                    _dir: None,
                })
            }
            Backend::MySql => {
                let url = env_url("WARDEN_TEST_MYSQL_URL")?;
                let opts = MySqlConnectOptions::from_str(&url).expect("WARDEN_TEST_MYSQL_URL");
                let pool = MySqlPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("WARDEN_TEST_MYSQL_URL is set but MariaDB/MySQL is unreachable: {e}")
                    });
                let schema = unique_name("t");
                sqlx::raw_sql(&format!("CREATE DATABASE `{schema}`"))
                    .execute(&pool)
                    .await
                    .expect("create database");
                Some(Self {
                    backend,
                    schema,
                    url,
                    admin: Admin::MySql(pool),
                    _dir: None,
                })
            }
        }
    }

    /// The URL a warehouse entry of `warden.yaml` uses to reach this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn engine(&self) -> Engine {
        match self.backend {
            Backend::Sqlite => Engine::Sqlite,
            Backend::Postgres => Engine::Postgres,
            Backend::MySql => Engine::MySql,
        }
    }

    /// Runs portable SQL (several statements allowed) after replacing:
    /// `{s}` with the test's quoted schema, `{TIMESTAMP}` with a timestamp
    /// without zone, `{TIMESTAMPTZ}` with a zoned one. Literals for zoned
    /// columns are written `'… +00:00'` (UTC), which MariaDB, whose test
    /// sessions run in UTC, takes without the offset.
    pub async fn exec(&self, sql: &str) {
        let (ts, tstz) = match self.backend {
            Backend::Postgres => ("TIMESTAMP", "TIMESTAMPTZ"),
            Backend::MySql => ("DATETIME", "TIMESTAMP NULL DEFAULT NULL"),
            Backend::Sqlite => ("TIMESTAMP", "TIMESTAMPTZ"),
        };
        let schema = self
            .engine()
            .dialect()
            .quote(&Identifier::parse(&self.schema).expect("schema name"));
        let mut sql = sql
            .replace("{s}", &schema)
            .replace("{TIMESTAMPTZ}", tstz)
            .replace("{TIMESTAMP}", ts);
        if self.backend == Backend::MySql {
            sql = sql.replace("+00:00'", "'");
        }
        let result = match &self.admin {
            Admin::Postgres(p) => sqlx::raw_sql(&sql).execute(p).await.map(drop),
            Admin::MySql(p) => sqlx::raw_sql(&sql).execute(p).await.map(drop),
            Admin::Sqlite(p) => sqlx::raw_sql(&sql).execute(p).await.map(drop),
        };
        result.unwrap_or_else(|e| panic!("fixture SQL failed on {:?}: {e}\n{sql}", self.backend));
    }

    /// `name` qualified with the test's schema.
    pub fn table(&self, name: &str) -> TableRef {
        TableRef::parse(&format!("{}.{name}", self.schema)).expect("table name")
    }

    /// The warehouse under test, with a 30s query timeout.
    pub fn warehouse(&self, tz: Tz) -> Warehouse {
        self.warehouse_with_timeout(tz, Duration::from_secs(30))
    }

    pub fn warehouse_with_timeout(&self, tz: Tz, query_timeout: Duration) -> Warehouse {
        Warehouse::connect(&warehouse_config(&self.url, query_timeout), tz).expect("warehouse")
    }

    /// Drops the test's schema or database.
    pub async fn cleanup(self) {
        match &self.admin {
            Admin::Postgres(p) => {
                let sql = format!("DROP SCHEMA \"{}\" CASCADE", self.schema);
                sqlx::raw_sql(&sql).execute(p).await.expect("drop schema");
            }
            Admin::MySql(p) => {
                let sql = format!("DROP DATABASE `{}`", self.schema);
                sqlx::raw_sql(&sql).execute(p).await.expect("drop database");
            }
            Admin::Sqlite(_) => {}
        }
    }
}

pub fn warehouse_config(url: &str, query_timeout: Duration) -> Settings {
    Settings {
        name: "main".into(),
        url: url.into(),
        max_connections: 4,
        query_timeout,
    }
}

// ---- builders for typed config ----

pub fn ident(s: &str) -> Identifier {
    Identifier::parse(s).expect("identifier")
}

pub fn ratio(x: f64) -> Ratio {
    Ratio::from_f64(x, false).expect("ratio")
}

fn pos() -> SourcePos {
    SourcePos {
        file: PathBuf::from("checks/orders.yaml"),
        line: 1,
        column: 1,
    }
}

/// A check of dataset `orders`, fail severity, blocking, unfiltered.
pub fn check(name: &str, kind: CheckKind) -> CheckSpec {
    let dataset = DatasetName::parse("orders").expect("dataset name");
    CheckSpec {
        id: CheckId::new(&dataset, name).expect("check name"),
        name: name.into(),
        kind,
        severity: Severity::Fail,
        blocking: true,
        filter: None,
        pos: pos(),
    }
}

/// Dataset `orders` on `table`, optionally partitioned.
pub fn dataset(
    table: TableRef,
    partition: Option<(&str, Granularity)>,
    checks: Vec<CheckSpec>,
) -> Dataset {
    Dataset {
        name: DatasetName::parse("orders").expect("dataset name"),
        warehouse: "main".into(),
        gate_table: table.clone(),
        gate_allow_empty: false,
        table,
        tier: 1,
        owner: None,
        runbook: None,
        schedule: Some(Schedule {
            expr: "*/15 * * * *".into(),
            cron: "*/15 * * * *".parse().expect("cron"),
        }),
        partition: partition.map(|(column, granularity)| PartitionSpec {
            column: ident(column),
            granularity,
        }),
        checks,
        pos: pos(),
    }
}

/// Runs `$case(Backend)` as one test per engine: `sqlite::case`,
/// `postgres::case`, `mysql::case`.
#[macro_export]
macro_rules! on_every_engine {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $case() { super::$case($crate::support::db::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $case() { super::$case($crate::support::db::Backend::Postgres).await } )*
        }
        mod mysql {
            $( #[tokio::test] async fn $case() { super::$case($crate::support::db::Backend::MySql).await } )*
        }
    };
}
