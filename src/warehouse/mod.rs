//! Warehouses: one file per engine, chosen by URL.
//!
//! Each engine file (`postgres.rs`, `mysql.rs`, `sqlite.rs`) holds how to
//! connect and set up a session, how its rows decode into engine-independent
//! [`Value`]s, how its server's errors read, and its [`Dialect`]: the SQL the
//! planner and the catalog read ask of it. sqlx's `Any` driver cannot decode
//! NUMERIC, dates or timestamps, so the SQL engines share one generic pool
//! (`pooled.rs`) instead. Every statement goes through
//! [`Warehouse::fetch_all`], which applies `query_timeout` and counts
//! statements.

mod backend;
mod catalog;
mod dialect;
mod error;
mod mysql;
mod pooled;
mod postgres;
mod sqlite;
mod value;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono_tz::Tz;

use backend::{Backend, Failure};

pub use catalog::CatalogColumn;
pub use dialect::Dialect;
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
    /// Every engine, in the order their URL schemes are listed.
    pub const ALL: [Engine; 3] = [Self::Postgres, Self::MySql, Self::Sqlite];

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

    /// The SQL this engine speaks.
    pub fn dialect(self) -> &'static dyn Dialect {
        match self {
            Self::Postgres => &postgres::PostgresDialect,
            Self::MySql => &mysql::MySqlDialect,
            Self::Sqlite => &sqlite::SqliteDialect,
        }
    }

    /// A lazily connected pool for `settings`; `Err` is why its URL is unusable.
    fn connect(self, settings: &Settings, tz: Tz) -> Result<Box<dyn Backend>, String> {
        match self {
            Self::Postgres => postgres::connect(settings, tz),
            Self::MySql => mysql::connect(settings, tz),
            Self::Sqlite => sqlite::connect(settings, tz),
        }
    }
}

/// How to reach one warehouse: its entry of `warehouses:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The warehouse's name, in messages.
    pub name: String,
    /// Connection URL; relative SQLite paths already resolved.
    pub url: String,
    /// The size of the connection pool (at least 1).
    pub max_connections: u32,
    /// How long one statement may run.
    pub query_timeout: Duration,
}

/// How long to wait for a pooled connection before asking why none came.
/// A refused connection is retried by the pool until this runs out, so it
/// bounds how long a down warehouse takes to be reported.
const MAX_ACQUIRE_WAIT: Duration = Duration::from_secs(10);

/// A warehouse from `warehouses:`, connected lazily.
#[derive(Debug)]
pub struct Warehouse {
    name: String,
    engine: Engine,
    backend: Box<dyn Backend>,
    query_timeout: Duration,
    statements: AtomicU64,
}

impl Warehouse {
    /// Creates the pool for `settings` without connecting yet (must be
    /// called inside a Tokio runtime). PostgreSQL sessions use `tz` as their
    /// time zone, so dates compare with `timestamptz` columns in local days,
    /// and get a server-side `statement_timeout` of `query_timeout`; MariaDB
    /// and MySQL sessions get `max_statement_time`/`max_execution_time`.
    pub fn connect(settings: &Settings, tz: Tz) -> Result<Self, WarehouseError> {
        let invalid = |reason: String| WarehouseError::InvalidUrl {
            warehouse: settings.name.clone(),
            reason,
        };
        let engine = Engine::from_url(&settings.url).ok_or_else(|| {
            invalid("expected a url starting with postgres://, mysql:// or sqlite://".to_owned())
        })?;
        let backend = engine.connect(settings, tz).map_err(invalid)?;
        Ok(Self {
            name: settings.name.clone(),
            engine,
            backend,
            query_timeout: settings.query_timeout,
            statements: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The SQL this warehouse speaks.
    pub fn dialect(&self) -> &'static dyn Dialect {
        self.engine.dialect()
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
        let rows = match self
            .backend
            .fetch_all(sql, params, self.query_timeout)
            .await
        {
            Err(Failure::TimedOut) => Err(WarehouseError::Timeout {
                timeout: self.query_timeout,
            }),
            Err(Failure::NoConnection) => Err(self.diagnose().await),
            Err(Failure::Failed(e)) => Err(e),
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
        self.backend.close().await;
    }

    /// The pool gave up waiting for a connection: either the warehouse
    /// refuses connections (the pool retries those silently) or every
    /// connection is busy. One direct attempt tells which, and why.
    async fn diagnose(&self) -> WarehouseError {
        let wait = MAX_ACQUIRE_WAIT.min(self.query_timeout);
        let attempt = self.backend.connect_once();
        let reason = match tokio::time::timeout(wait, attempt).await {
            Err(_) => format!("no connection within {}", error::format_timeout(wait)),
            Ok(Err(WarehouseError::Unavailable { reason, .. })) => reason,
            Ok(Err(other)) => other.to_string(),
            Ok(Ok(())) => format!(
                "all {} connections stayed busy for {}",
                self.backend.max_connections(),
                error::format_timeout(wait)
            ),
        };
        WarehouseError::Unavailable {
            warehouse: self.name.clone(),
            reason,
        }
    }
}
