//! Warehouses: one file per engine, chosen by URL.
//!
//! Each engine file (`postgres.rs`, `mysql.rs`, `sqlite.rs`) holds how to
//! connect and set up a session, how its rows decode into engine-independent
//! [`Value`]s, how its server's errors read, and its [`Dialect`]: the SQL the
//! planner and the catalog read ask of it. sqlx's `Any` driver cannot decode
//! NUMERIC, dates or timestamps, so the SQL engines share one generic pool
//! (`pooled.rs`) instead. Every statement goes through
//! [`Warehouse::fetch_all`], which waits in line for one of the warehouse's
//! `max_connections` slots, applies `query_timeout` (waiting included) and
//! counts statements. Warehouse sessions are read-only: each engine file
//! opens them so, and a statement cannot turn that off for the next one.

mod backend;
mod catalog;
mod clickhouse;
mod dialect;
mod discover;
mod error;
mod mysql;
mod pooled;
mod postgres;
mod profile;
mod sqlite;
mod value;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono_tz::Tz;
use tokio::sync::{Semaphore, oneshot};

use backend::{Backend, Failure};

use crate::domain::{ENCODE_USERINFO, Scrubber, redact_url, userinfo_needs_encoding};

pub use catalog::CatalogColumn;
pub use dialect::Dialect;
pub use discover::SchemaTable;
pub use error::WarehouseError;
pub use profile::{CatalogTable, ColumnProfile, ProfileColumn, TableProfile};
pub use value::Value;

pub mod types;

/// The SQL dialect of a warehouse or registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    MySql,
    Sqlite,
    ClickHouse,
}

impl Engine {
    /// Every engine, in the order their URL schemes are listed.
    pub const ALL: [Engine; 4] = [Self::Postgres, Self::MySql, Self::Sqlite, Self::ClickHouse];

    /// The engine a connection URL names, from its scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0;
        match scheme {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            "sqlite" => Some(Self::Sqlite),
            "clickhouse" | "clickhouses" => Some(Self::ClickHouse),
            _ => None,
        }
    }

    /// The SQL this engine speaks.
    pub fn dialect(self) -> &'static dyn Dialect {
        match self {
            Self::Postgres => &postgres::PostgresDialect,
            Self::MySql => &mysql::MySqlDialect,
            Self::Sqlite => &sqlite::SqliteDialect,
            Self::ClickHouse => &clickhouse::ClickHouseDialect,
        }
    }

    /// A lazily connected pool for `settings`; `Err` is why its URL is unusable.
    fn connect(self, settings: &Settings, tz: Tz) -> Result<Box<dyn Backend>, String> {
        match self {
            Self::Postgres => postgres::connect(settings, tz),
            Self::MySql => mysql::connect(settings, tz),
            Self::Sqlite => sqlite::connect(settings, tz),
            Self::ClickHouse => clickhouse::connect(settings, tz),
        }
    }
}

/// How to reach one warehouse: its entry of `warehouses:`. `Debug` shows
/// its URL as [`redact_url`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The warehouse's name, in messages.
    pub name: String,
    /// Connection URL; relative SQLite paths already resolved.
    pub url: String,
    /// The URL as messages show it: its password replaced (the
    /// configuration fills it in: `config::warehouse_settings`).
    pub shown_url: String,
    /// The size of the connection pool (at least 1).
    pub max_connections: u32,
    /// How long one statement may run.
    pub query_timeout: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}

/// How long to wait for a pooled connection before asking why none came.
/// A refused connection is retried by the pool until this runs out, so it
/// bounds how long a down warehouse takes to be reported.
const MAX_ACQUIRE_WAIT: Duration = Duration::from_secs(10);

/// Query timeouts past its deadline after which a statement the server
/// did not stop is abandoned (its connection dropped) and its slot freed.
const ABANDON_AFTER: u32 = 2;

/// A warehouse from `warehouses:`, connected lazily.
///
/// Every caller (scheduled runs, gates, `warden check`, probes) goes
/// through one limit on concurrent statements, `max_connections`: a
/// statement waits in line for a slot, and the wait counts against its
/// `query_timeout`. A warehouse whose connections are all busy with our own
/// statements is busy, not down: only a refused or lost connection, an
/// authentication failure or a failed probe is
/// [`WarehouseError::Unavailable`].
#[derive(Debug)]
pub struct Warehouse {
    name: String,
    engine: Engine,
    backend: Arc<dyn Backend>,
    query_timeout: Duration,
    /// The URL's secrets, taken out of what the driver says in errors.
    scrubber: Scrubber,
    /// One permit per connection: statements running or about to.
    slots: Arc<Semaphore>,
    statements: AtomicU64,
}

impl Warehouse {
    /// Creates the pool for `settings` without connecting yet (must be
    /// called inside a Tokio runtime). Sessions are read-only. PostgreSQL
    /// sessions use `tz` as their time zone, so dates compare with
    /// `timestamptz` columns in local days, and get a server-side
    /// `statement_timeout` of `query_timeout`; MariaDB and MySQL sessions get
    /// `max_statement_time`/`max_execution_time`.
    pub fn connect(settings: &Settings, tz: Tz) -> Result<Self, WarehouseError> {
        let scrubber = Scrubber::for_url(&settings.url);
        let invalid = |reason: String| WarehouseError::InvalidUrl {
            warehouse: settings.name.clone(),
            reason: match userinfo_needs_encoding(&settings.url) {
                true => format!("{}; {ENCODE_USERINFO}", scrubber.scrub(&reason)),
                false => scrubber.scrub(&reason),
            },
        };
        let engine = Engine::from_url(&settings.url).ok_or_else(|| {
            invalid(
                "expected a url starting with postgres://, mysql://, sqlite:// or clickhouse://"
                    .to_owned(),
            )
        })?;
        let backend = engine.connect(settings, tz).map_err(invalid)?;
        Ok(Self {
            name: settings.name.clone(),
            engine,
            backend: Arc::from(backend),
            query_timeout: settings.query_timeout,
            scrubber,
            slots: Arc::new(Semaphore::new(settings.max_connections.max(1) as usize)),
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

    /// How many statements may run at once (`max_connections`).
    pub fn max_connections(&self) -> u32 {
        self.backend.max_connections()
    }

    /// How many statements are running (or have a connection coming) now.
    pub fn statements_running(&self) -> usize {
        (self.max_connections() as usize).saturating_sub(self.slots.available_permits())
    }

    /// How many statements this warehouse has been sent, successful or not.
    pub fn statement_count(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Runs one statement with `params` bound in order (`$1…` on PostgreSQL,
    /// `?` elsewhere) and returns every row. Counts the statement, waits in
    /// line for one of the `max_connections` slots, and gives up when
    /// `query_timeout` has passed since it was called (waiting included): a
    /// statement that never got a connection is a [`WarehouseError::Timeout`]
    /// saying so. The statement stops at the timeout too: the server cancels
    /// it on PostgreSQL and MariaDB/MySQL, and SQLite interrupts it.
    pub async fn fetch_all(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Vec<Value>>, WarehouseError> {
        self.statements.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let rows = self.run(sql, params).await;
        tracing::debug!(
            warehouse = %self.name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            ok = rows.is_ok(),
            "ran a statement"
        );
        rows.map_err(|e| e.scrubbed(&self.scrubber))?
            .into_iter()
            .collect()
    }

    /// [`fetch_all`](Self::fetch_all) without the counting and the log.
    ///
    /// The statement runs in a task of its own that holds its slot until
    /// the connection is free again: a caller that gives up at its deadline
    /// leaves the statement to the server's timeout (PostgreSQL, MariaDB,
    /// MySQL) or to its interruption (SQLite) instead of abandoning a connection in
    /// the middle of a statement, so the slots count the connections really
    /// in use. [`ABANDON_AFTER`] query timeouts past the deadline the task
    /// gives up too.
    async fn run(&self, sql: &str, params: &[Value]) -> Result<backend::Rows, WarehouseError> {
        let started = tokio::time::Instant::now();
        let deadline = started + self.query_timeout;
        let slot = match tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned()).await
        {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => {
                return Err(WarehouseError::Unavailable {
                    warehouse: self.name.clone(),
                    reason: "the connection pool is closed".to_owned(),
                });
            }
            Err(_) => {
                tracing::debug!(warehouse = %self.name, "no free connection within the query timeout");
                return Err(self.timed_out(self.query_timeout));
            }
        };
        let in_line = started.elapsed();
        let backend = self.backend.clone();
        let (sql, params) = (sql.to_owned(), params.to_vec());
        let abandon = deadline + self.query_timeout * ABANDON_AFTER;
        let (connected, on_connection) = oneshot::channel();
        let mut statement = tokio::spawn(async move {
            let rows = backend.fetch_all(&sql, &params, abandon, connected).await;
            drop(slot);
            rows
        });
        // The pool bounds its own wait for a connection (a refused one is
        // retried until then, and then diagnosed); once the statement has
        // one, what is left of the query timeout bounds the rest.
        let finished = match on_connection.await {
            Ok(()) => {
                let waited = started.elapsed();
                match tokio::time::timeout_at(deadline, &mut statement).await {
                    Ok(finished) => finished,
                    Err(_) => return Err(self.timed_out(waited.max(in_line))),
                }
            }
            Err(_) => statement.await,
        };
        match finished {
            Err(e) => Err(WarehouseError::Query {
                message: format!("the statement's task failed: {e}"),
            }),
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(Failure::TimedOut { waited })) => Err(self.timed_out(in_line + waited)),
            Ok(Err(Failure::Failed(e))) => Err(e),
            Ok(Err(Failure::NoConnection)) => {
                // Down, or every connection still busy (one just finishing
                // is not back in the pool yet): ask.
                self.diagnose().await?;
                Err(self.timed_out(self.query_timeout))
            }
        }
    }

    /// A timeout after waiting `waited` for a connection.
    fn timed_out(&self, waited: Duration) -> WarehouseError {
        WarehouseError::Timeout {
            timeout: self.query_timeout,
            waited: waited.min(self.query_timeout),
        }
    }

    /// Whether the warehouse answers: runs `SELECT 1`. When every slot stays
    /// busy for the whole query timeout, a connection made outside the pool
    /// answers instead: a warehouse busy with our own statements is up.
    pub async fn ping(&self) -> Result<(), WarehouseError> {
        match self.fetch_all("SELECT 1", &[]).await {
            Err(WarehouseError::Timeout { timeout, waited }) if waited >= timeout => self
                .diagnose()
                .await
                .map_err(|e| e.scrubbed(&self.scrubber)),
            other => other.map(drop),
        }
    }

    /// Whether a connection can be made now, in one attempt outside the
    /// pool (the pool retries a refused connection until its wait runs
    /// out): `Err` says why not, at once.
    pub async fn reachable(&self) -> Result<(), WarehouseError> {
        self.diagnose().await
    }

    /// Closes every pooled connection; statements still waiting in line
    /// fail as unavailable.
    pub async fn close(&self) {
        self.slots.close();
        self.backend.close().await;
    }

    /// The pool gave up waiting for a connection: either the warehouse
    /// refuses connections (the pool retries those silently) or every
    /// connection is busy. One direct attempt tells which: `Err` is why the
    /// warehouse is unavailable, `Ok` that it answers (so it is busy).
    async fn diagnose(&self) -> Result<(), WarehouseError> {
        let wait = MAX_ACQUIRE_WAIT.min(self.query_timeout);
        let attempt = self.backend.connect_once();
        let reason = match tokio::time::timeout(wait, attempt).await {
            Ok(Ok(())) => return Ok(()),
            Err(_) => format!("no connection within {}", error::format_timeout(wait)),
            Ok(Err(WarehouseError::Unavailable { reason, .. })) => reason,
            Ok(Err(other)) => other.to_string(),
        };
        Err(WarehouseError::Unavailable {
            warehouse: self.name.clone(),
            reason,
        })
    }
}
