//! Warehouses: one sqlx pool type per engine, chosen by URL.
//!
//! sqlx's `Any` driver cannot decode NUMERIC, dates or timestamps, so a
//! [`Warehouse`] holds one of three concrete pools and every statement goes
//! through [`Warehouse::fetch_all`], which binds parameters, decodes rows into
//! engine-independent [`Value`]s, applies `query_timeout` and counts
//! statements.

mod catalog;
mod error;
mod value;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono_tz::Tz;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

use crate::config::WarehouseConfig;

pub use catalog::CatalogColumn;
pub use error::WarehouseError;
pub use value::Value;

pub mod types;

/// The SQL dialect of a warehouse or registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    MySql,
    Sqlite,
}

impl Engine {
    /// The engine a connection URL names, from its scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0;
        match scheme {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }
}

/// A connection pool of one engine.
#[derive(Debug, Clone)]
pub enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// How long to wait for a pooled connection before asking why none came.
/// A refused connection is retried by the pool until this runs out, so it
/// bounds how long a down warehouse takes to be reported.
const MAX_ACQUIRE_WAIT: Duration = Duration::from_secs(10);

/// Why [`Warehouse::fetch_inner`] returned no rows.
enum Failure {
    /// The statement ran longer than `query_timeout`.
    TimedOut,
    /// No connection, or the statement failed.
    Sqlx(sqlx::Error),
}

/// A warehouse from `warehouses:`, connected lazily.
#[derive(Debug)]
pub struct Warehouse {
    name: String,
    engine: Engine,
    pool: Pool,
    query_timeout: Duration,
    statements: AtomicU64,
}

impl Warehouse {
    /// Creates the pool for `cfg` without connecting yet (must be called
    /// inside a Tokio runtime). PostgreSQL sessions use `tz` as their time
    /// zone, so dates compare with `timestamptz` columns in local days, and
    /// get a server-side `statement_timeout` of `query_timeout`; MariaDB and
    /// MySQL sessions get `max_statement_time`/`max_execution_time`.
    pub fn connect(cfg: &WarehouseConfig, tz: Tz) -> Result<Self, WarehouseError> {
        let invalid = |reason: String| WarehouseError::InvalidUrl {
            warehouse: cfg.name.clone(),
            reason,
        };
        let engine = Engine::from_url(&cfg.url).ok_or_else(|| {
            invalid("expected a url starting with postgres://, mysql:// or sqlite://".to_owned())
        })?;
        let timeout = cfg.query_timeout;
        let acquire = timeout.min(MAX_ACQUIRE_WAIT);
        let max = cfg.max_connections.max(1);
        let pool = match engine {
            Engine::Postgres => {
                let opts = PgConnectOptions::from_str(&cfg.url)
                    .map_err(|e| invalid(e.to_string()))?
                    .options([("statement_timeout", timeout.as_millis().to_string())]);
                // sqlx sends `TimeZone=UTC` at startup, which would override a
                // startup option; set the zone once the session is up instead.
                let set_zone = format!("SET TIME ZONE '{}'", tz.name().replace('\'', "''"));
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(acquire)
                        .after_connect(move |conn, _| {
                            let set_zone = set_zone.clone();
                            Box::pin(async move { conn.execute(set_zone.as_str()).await.map(drop) })
                        })
                        .connect_lazy_with(opts),
                )
            }
            Engine::MySql => {
                let opts =
                    MySqlConnectOptions::from_str(&cfg.url).map_err(|e| invalid(e.to_string()))?;
                let secs = timeout.as_secs_f64();
                let millis = timeout.as_millis();
                Pool::MySql(
                    MySqlPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(acquire)
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                // MariaDB and MySQL name their statement timeouts
                                // differently; whichever the server lacks fails harmlessly.
                                let mariadb = format!("SET SESSION max_statement_time = {secs}");
                                if conn.execute(mariadb.as_str()).await.is_err() {
                                    let mysql =
                                        format!("SET SESSION max_execution_time = {millis}");
                                    let _ = conn.execute(mysql.as_str()).await;
                                }
                                Ok(())
                            })
                        })
                        .connect_lazy_with(opts),
                )
            }
            Engine::Sqlite => {
                let opts =
                    SqliteConnectOptions::from_str(&cfg.url).map_err(|e| invalid(e.to_string()))?;
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(acquire)
                        .connect_lazy_with(opts),
                )
            }
        };
        Ok(Self {
            name: cfg.name.clone(),
            engine,
            pool,
            query_timeout: timeout,
            statements: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    /// How many statements this warehouse has been sent, successful or not.
    pub fn statement_count(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Runs one statement with `params` bound in order (`$1…` on PostgreSQL,
    /// `?` elsewhere) and returns every row. Counts the statement, and gives
    /// up when the statement has run for `query_timeout` (the wait for a
    /// connection is bounded apart): the server cancels it too on PostgreSQL and
    /// MariaDB/MySQL; SQLite has no way to interrupt it, so its worker
    /// thread finishes the statement in the background.
    pub async fn fetch_all(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Vec<Value>>, WarehouseError> {
        self.statements.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let rows = match self.fetch_inner(sql, params).await {
            Err(Failure::TimedOut) => Err(WarehouseError::Timeout {
                timeout: self.query_timeout,
            }),
            Err(Failure::Sqlx(sqlx::Error::PoolTimedOut)) => Err(self.diagnose().await),
            Err(Failure::Sqlx(e)) => Err(WarehouseError::from_sqlx(
                &self.name,
                self.engine,
                self.query_timeout,
                e,
            )),
            Ok(rows) => Ok(rows),
        };
        tracing::debug!(
            warehouse = %self.name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            ok = rows.is_ok(),
            "ran a statement"
        );
        rows?.into_iter().collect()
    }

    /// Runs `SELECT 1`: whether the warehouse answers.
    pub async fn ping(&self) -> Result<(), WarehouseError> {
        self.fetch_all("SELECT 1", &[]).await.map(drop)
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(p) => p.close().await,
            Pool::MySql(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }

    /// Waits for a connection (bounded by the pool's acquire timeout), then
    /// runs the statement within `query_timeout`. Timing the two apart keeps
    /// a refused connection from being reported as a slow query: with one
    /// timer over both, it raced the pool's own acquire timeout.
    async fn fetch_inner(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Result<Vec<Value>, WarehouseError>>, Failure> {
        macro_rules! bind_all {
            ($query:expr) => {{
                let mut q = $query;
                for p in params {
                    q = match p {
                        Value::Null => q.bind(None::<String>),
                        Value::Int(i) => q.bind(*i),
                        Value::Float(f) => q.bind(*f),
                        Value::Text(s) => q.bind(s.clone()),
                        Value::Date(d) => q.bind(*d),
                        Value::Timestamp(t) => q.bind(*t),
                        Value::TimestampTz(t) => q.bind(*t),
                    };
                }
                q
            }};
        }
        macro_rules! run {
            ($pool:expr) => {{
                let mut conn = $pool.acquire().await.map_err(Failure::Sqlx)?;
                let query = bind_all!(sqlx::query(sql));
                tokio::time::timeout(self.query_timeout, query.fetch_all(&mut *conn))
                    .await
                    .map_err(|_| Failure::TimedOut)?
                    .map_err(Failure::Sqlx)?
            }};
        }
        Ok(match &self.pool {
            Pool::Postgres(pool) => run!(pool).iter().map(value::decode_pg_row).collect(),
            Pool::MySql(pool) => run!(pool).iter().map(value::decode_mysql_row).collect(),
            Pool::Sqlite(pool) => run!(pool).iter().map(value::decode_sqlite_row).collect(),
        })
    }

    /// The pool gave up waiting for a connection: either the warehouse
    /// refuses connections (the pool retries those silently) or every
    /// connection is busy. One direct attempt tells which, and why.
    async fn diagnose(&self) -> WarehouseError {
        let wait = MAX_ACQUIRE_WAIT.min(self.query_timeout);
        let attempt = async {
            match &self.pool {
                Pool::Postgres(p) => p.connect_options().connect().await?.close().await,
                Pool::MySql(p) => p.connect_options().connect().await?.close().await,
                Pool::Sqlite(p) => p.connect_options().connect().await?.close().await,
            }
        };
        let reason = match tokio::time::timeout(wait, attempt).await {
            Err(_) => format!("no connection within {}", error::format_timeout(wait)),
            Ok(Err(e)) => {
                match WarehouseError::from_sqlx(&self.name, self.engine, self.query_timeout, e) {
                    WarehouseError::Unavailable { reason, .. } => reason,
                    other => other.to_string(),
                }
            }
            Ok(Ok(())) => format!(
                "all {} connections stayed busy for {}",
                self.max_connections(),
                error::format_timeout(wait)
            ),
        };
        WarehouseError::Unavailable {
            warehouse: self.name.clone(),
            reason,
        }
    }

    fn max_connections(&self) -> u32 {
        match &self.pool {
            Pool::Postgres(p) => p.options().get_max_connections(),
            Pool::MySql(p) => p.options().get_max_connections(),
            Pool::Sqlite(p) => p.options().get_max_connections(),
        }
    }
}
