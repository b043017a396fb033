//! Shared harness for the integration tests: a fresh database per test on
//! each engine (with an administrator's read-write connection to set it up
//! and look at it), small builders for typed config values, and lookups in
//! a run's results.
//!
//! PostgreSQL, MariaDB and ClickHouse cases read `WARDEN_TEST_POSTGRES_URL`,
//! `WARDEN_TEST_MYSQL_URL` and `WARDEN_TEST_CLICKHOUSE_URL`. When a URL is
//! unset the case is skipped with a note on stderr; when it is set and the
//! server cannot be reached, the case fails. Each case gets its own schema
//! (PostgreSQL), database (MariaDB, ClickHouse) or file (SQLite), so cases
//! can run in parallel.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono_tz::Tz;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Connection, PgConnection};
use warden::check::{
    CheckKind, CheckResult, CheckSpec, Dataset, Outcome, PartitionSpec, Schedule, Severity,
};
use warden::domain::{CheckId, DatasetName, Granularity, Identifier, Ratio, TableRef};
use warden::source::SourcePos;
use warden::warehouse::{Engine, Settings, Warehouse};

/// The engines every case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
    ClickHouse,
}

enum Admin {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
    ClickHouse(ClickHouseAdmin),
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
pub fn unique_name(prefix: &str) -> String {
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
pub fn env_url(var: &str) -> Option<String> {
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
        Self::open(backend, None).await
    }

    /// A fresh SQLite file in WAL mode (the demo keeps its warehouse so),
    /// the administrator's connection its writer.
    pub async fn sqlite_wal() -> Self {
        Self::open(Backend::Sqlite, Some(SqliteJournalMode::Wal))
            .await
            .expect("SQLite needs no URL")
    }

    /// Like [`new`](Self::new); a SQLite file gets `journal`.
    async fn open(backend: Backend, journal: Option<SqliteJournalMode>) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("warehouse.db");
                // Under a loaded machine the agent's own connections can
                // hold the file longer than sqlx's default 5 s busy wait:
                // a gate's deliberately slow query holds its read lock until
                // its query timeout interrupts it.
                let mut opts = SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .busy_timeout(Duration::from_secs(120));
                if let Some(mode) = journal {
                    opts = opts.journal_mode(mode);
                }
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
            Backend::ClickHouse => {
                let url = env_url("WARDEN_TEST_CLICKHOUSE_URL")?;
                let admin = ClickHouseAdmin::new(&url);
                admin.ping().await;
                let schema = unique_name("t");
                admin.run(&format!("CREATE DATABASE `{schema}`")).await;
                Some(Self {
                    backend,
                    schema,
                    url,
                    admin: Admin::ClickHouse(admin),
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
            Backend::ClickHouse => Engine::ClickHouse,
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
            Backend::ClickHouse => ("DateTime", "DateTime('UTC')"),
        };
        let mut sql = sql
            .replace("{s}", &self.quoted_schema())
            .replace("{TIMESTAMPTZ}", tstz)
            .replace("{TIMESTAMP}", ts);
        if matches!(self.backend, Backend::MySql | Backend::ClickHouse) {
            sql = sql.replace("+00:00'", "'");
        }
        if let Admin::ClickHouse(admin) = &self.admin {
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                admin.run(&clickhouse_ddl(statement)).await;
            }
            return;
        }
        let result = match &self.admin {
            Admin::Postgres(p) => sqlx::raw_sql(&sql).execute(p).await.map(drop),
            Admin::MySql(p) => sqlx::raw_sql(&sql).execute(p).await.map(drop),
            Admin::Sqlite(p) => sqlx::raw_sql(&sql).execute(p).await.map(drop),
            Admin::ClickHouse(_) => unreachable!("ran above"),
        };
        result.unwrap_or_else(|e| panic!("fixture SQL failed on {:?}: {e}\n{sql}", self.backend));
    }

    /// The test's schema, quoted for its engine.
    pub fn quoted_schema(&self) -> String {
        self.engine()
            .dialect()
            .quote(&Identifier::parse(&self.schema).expect("schema name"))
    }

    /// Rows of `table` in the test's schema, counted by the administrator.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {}.{table}", self.quoted_schema());
        match &self.admin {
            Admin::Postgres(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
            Admin::MySql(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
            Admin::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
            Admin::ClickHouse(admin) => {
                let text = admin.run(&format!("{sql} FORMAT TabSeparated")).await;
                return text.trim().parse().expect("a count");
            }
        }
        .unwrap_or_else(|e| panic!("count {table} on {:?}: {e}", self.backend))
    }

    /// Closes the administrator's connections (on SQLite, the file's writer
    /// goes away); [`exec`](Self::exec) and [`count`](Self::count) cannot
    /// be used after.
    pub async fn close_admin(&self) {
        match &self.admin {
            Admin::Postgres(p) => p.close().await,
            Admin::MySql(p) => p.close().await,
            Admin::Sqlite(p) => p.close().await,
            Admin::ClickHouse(_) => {}
        }
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

    /// The warehouse under test with `max_connections` slots.
    pub fn warehouse_with_slots(
        &self,
        tz: Tz,
        max_connections: u32,
        query_timeout: Duration,
    ) -> Warehouse {
        let settings = Settings {
            max_connections,
            ..warehouse_config(&self.url, query_timeout)
        };
        Warehouse::connect(&settings, tz).expect("warehouse")
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
            Admin::ClickHouse(admin) => {
                admin.run(&format!("DROP DATABASE `{}`", self.schema)).await;
            }
            Admin::Sqlite(_) => {}
        }
    }
}

/// The administrator of a ClickHouse server: statements POSTed to its HTTP
/// interface as the URL's user, read-write.
pub struct ClickHouseAdmin {
    client: reqwest::Client,
    /// `http://host:port/?database=…`
    base: url::Url,
    user: String,
    password: Option<String>,
}

impl ClickHouseAdmin {
    /// The administrator of the server `url` (`clickhouse://user@host:port/db`) names.
    pub fn new(url: &str) -> Self {
        let parsed = url::Url::parse(url).expect("a ClickHouse URL");
        let mut base = url::Url::parse(&format!(
            "http://{}:{}/",
            parsed.host_str().expect("a host"),
            parsed.port().unwrap_or(8123)
        ))
        .expect("an HTTP URL");
        let database = parsed.path().trim_matches('/');
        if !database.is_empty() {
            base.query_pairs_mut().append_pair("database", database);
        }
        Self {
            client: reqwest::Client::new(),
            base,
            user: match parsed.username() {
                "" => "default".to_owned(),
                user => user.to_owned(),
            },
            password: parsed.password().map(str::to_owned),
        }
    }

    /// Fails the test unless the server answers.
    pub async fn ping(&self) {
        let mut url = self.base.clone();
        url.set_path("/ping");
        url.set_query(None);
        let answer = self.client.get(url).send().await;
        if let Err(e) = answer.and_then(|a| a.error_for_status()) {
            panic!("WARDEN_TEST_CLICKHOUSE_URL is set but ClickHouse is unreachable: {e}");
        }
    }

    /// Runs one statement; its output as text.
    pub async fn run(&self, sql: &str) -> String {
        let answer = self
            .client
            .post(self.base.clone())
            .basic_auth(&self.user, self.password.as_deref())
            .body(sql.to_owned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ClickHouse is unreachable: {e}"));
        let ok = answer.status().is_success();
        let text = answer.text().await.expect("ClickHouse's answer");
        assert!(ok, "fixture SQL failed on ClickHouse: {text}\n{sql}");
        text
    }
}

/// The portable fixture SQL in ClickHouse's words: every column of a
/// `CREATE TABLE` or an added column `Nullable` of the matching type, and
/// the table a `MergeTree` ordered by nothing. Other statements, and a
/// table that names its engine, as written.
pub fn clickhouse_ddl(statement: &str) -> String {
    let upper = statement.to_ascii_uppercase();
    if upper.contains(" ENGINE ") {
        return statement.to_owned();
    }
    if upper.starts_with("ALTER TABLE")
        && let Some(at) = upper.find(" ADD COLUMN ")
    {
        let (head, column) = statement.split_at(at + " ADD COLUMN ".len());
        return format!("{head}{}", clickhouse_column(column));
    }
    if !upper.starts_with("CREATE TABLE") {
        return statement.to_owned();
    }
    let (Some(open), Some(close)) = (statement.find('('), statement.rfind(')')) else {
        return statement.to_owned();
    };
    let mut columns = Vec::new();
    let (mut depth, mut start) = (0, open + 1);
    for (i, c) in statement[..close].char_indices().skip(open + 1) {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                columns.push(&statement[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    columns.push(&statement[start..close]);
    let columns: Vec<String> = columns.into_iter().map(clickhouse_column).collect();
    format!(
        "{}({}){} ENGINE = MergeTree ORDER BY tuple()",
        &statement[..open],
        columns.join(", "),
        &statement[close + 1..]
    )
}

/// `name TYPE` as a nullable ClickHouse column.
fn clickhouse_column(definition: &str) -> String {
    let definition = definition.trim();
    let (name, sql_type) = definition.split_once(' ').unwrap_or((definition, ""));
    let sql_type = sql_type.trim();
    let upper = sql_type.to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or_default().trim();
    let ch_type = match base {
        "BIGINT" => "Int64".to_owned(),
        "INTEGER" | "INT" => "Int32".to_owned(),
        "SMALLINT" => "Int16".to_owned(),
        "NUMERIC" | "DECIMAL" => format!("Decimal{}", &sql_type[base.len()..]),
        "VARCHAR" | "TEXT" => "String".to_owned(),
        "DATE" => "Date".to_owned(),
        _ => sql_type.to_owned(),
    };
    format!("{name} Nullable({ch_type})")
}

/// A PostgreSQL database of its own on the server `WARDEN_TEST_POSTGRES_URL`
/// names, for what needs a whole database (schemas of its own, a registry):
/// dropped, with its connections, when the value goes, also when the test
/// panics.
pub struct PgDatabase {
    /// The URL that reaches it.
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// A new database named after `prefix`; `None` (with a note) when
    /// `WARDEN_TEST_POSTGRES_URL` is unset, a panic when it is set but the
    /// server cannot be used.
    pub async fn create(prefix: &str) -> Option<Self> {
        let admin_url = env_url("WARDEN_TEST_POSTGRES_URL")?;
        let name = unique_name(prefix);
        let mut admin = pg_connect(&admin_url).await;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        Some(Self {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
        })
    }

    /// A connection of its own to the database.
    pub async fn connect(&self) -> PgConnection {
        pg_connect(&self.url).await
    }

    /// Runs SQL (several statements allowed) on one connection.
    pub async fn exec(&self, sql: &str) {
        let mut conn = self.connect().await;
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{sql}"));
        let _ = conn.close().await;
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop may run inside the test's runtime, which it cannot block: the
        // clean-up gets a thread and a runtime of its own. Best-effort: a
        // leftover database is only clutter.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::raw_sql(&sql).execute(&mut admin).await.ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("note: could not drop the test database {}", self.name);
        }
    }
}

/// A connection to `url`, or a panic saying PostgreSQL cannot be used.
async fn pg_connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!("WARDEN_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
    })
}

/// `url` with its database (the path) replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[test]
fn database_names_replace_the_path() {
    assert_eq!(
        with_database("postgres://u@h:5432/test", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/test?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}

pub fn warehouse_config(url: &str, query_timeout: Duration) -> Settings {
    warden::config::warehouse_settings("main", url, 4, query_timeout)
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
        discovered: None,
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

// ---- lookups in a run's results ----

/// The result of check `orders.<name>`.
#[track_caller]
pub fn result<'a>(results: &'a [CheckResult], name: &str) -> &'a CheckResult {
    let id = format!("orders.{name}");
    results
        .iter()
        .find(|r| r.check == id)
        .unwrap_or_else(|| panic!("no result for {id} in {results:#?}"))
}

/// Asserts that check `orders.<name>` is an `error` whose message contains `cause`.
#[track_caller]
pub fn assert_error(results: &[CheckResult], name: &str, cause: &str) {
    let r = result(results, name);
    assert_eq!(r.outcome, Outcome::Error, "{name}: {r:#?}");
    assert!(
        r.message.contains(cause),
        "{name}: `{}` does not name `{cause}`",
        r.message
    );
}

/// Runs `$case(Backend)` as one test per engine: `sqlite::case`,
/// `postgres::case`, `mysql::case`, `clickhouse::case`; after `sql:`, on
/// the three SQL engines only (cases whose fixture is built on keys,
/// transactions or functions ClickHouse has not).
#[macro_export]
macro_rules! on_every_engine {
    (sql: $($case:ident),* $(,)?) => {
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
    ($($case:ident),* $(,)?) => {
        on_every_engine!(sql: $($case),*);
        mod clickhouse {
            $( #[tokio::test] async fn $case() { super::$case($crate::support::db::Backend::ClickHouse).await } )*
        }
    };
}
