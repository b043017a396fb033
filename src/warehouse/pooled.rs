//! The sqlx pool the SQL engines share: binding parameters, running a
//! statement under the query timeout, and telling sqlx's errors apart. Each
//! engine file brings its session setup, its row decoding and its reading of
//! the server's error codes.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::error::DatabaseError;
use sqlx::pool::PoolOptions;
use sqlx::{ConnectOptions, Connection, Database, Encode, Executor, IntoArguments, Pool, Type};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::backend::{Backend, Failure, Rows};
use super::error::{Endpoint, Origin, ServerError};
use super::{MAX_ACQUIRE_WAIT, Settings, Value, WarehouseError};

/// Pool options from the settings: its size, and how long to wait for a
/// connection (the query timeout, at most [`MAX_ACQUIRE_WAIT`]).
pub(super) fn options<DB: Database>(settings: &Settings) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(settings.max_connections.max(1))
        .acquire_timeout(settings.query_timeout.min(MAX_ACQUIRE_WAIT))
}

/// Decodes one row of an engine into values.
pub(super) type Decode<DB> = fn(&<DB as Database>::Row) -> Result<Vec<Value>, WarehouseError>;

/// Reads an error the engine's server reported.
pub(super) type Classify = fn(&dyn DatabaseError) -> ServerError;

/// Readies a connection for one statement that must end by the deadline
/// (SQLite interrupts it there; the servers enforce their own timeout).
pub(super) type Prepare<DB> = for<'c> fn(
    &'c mut <DB as Database>::Connection,
    Instant,
) -> BoxFuture<'c, Result<(), sqlx::Error>>;

/// For engines whose server cancels statements at its own timeout.
pub(super) fn nothing_to_prepare<C>(
    _: &mut C,
    _: Instant,
) -> BoxFuture<'_, Result<(), sqlx::Error>> {
    futures::future::ready(Ok(())).boxed()
}

/// A pool of one SQL engine, with what the engine file says about its rows
/// and errors.
pub(super) struct Pooled<DB: Database> {
    pool: Pool<DB>,
    /// The warehouse, as its errors name it.
    origin: Origin,
    decode: Decode<DB>,
    classify: Classify,
    prepare: Prepare<DB>,
}

impl<DB: Database> Pooled<DB> {
    /// The pool of the warehouse of `settings`, reached at `endpoint`.
    pub(super) fn new(
        pool: Pool<DB>,
        settings: &Settings,
        endpoint: Endpoint,
        decode: Decode<DB>,
        classify: Classify,
        prepare: Prepare<DB>,
    ) -> Self {
        Self {
            pool,
            origin: Origin {
                warehouse: settings.name.clone(),
                url: settings.shown_url.clone(),
                endpoint,
                timeout: settings.query_timeout,
            },
            decode,
            classify,
            prepare,
        }
    }

    fn error(&self, err: sqlx::Error) -> WarehouseError {
        classify(&self.origin, self.classify, err)
    }
}

impl<DB: Database> fmt::Debug for Pooled<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("pool", &self.pool)
            .field("warehouse", &self.origin.warehouse)
            .finish_non_exhaustive()
    }
}

impl<DB> Backend for Pooled<DB>
where
    DB: Database,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> NaiveDate: Encode<'q, DB> + Type<DB>,
    for<'q> NaiveDateTime: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
{
    fn fetch_all<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [Value],
        deadline: Instant,
        connected: oneshot::Sender<()>,
    ) -> BoxFuture<'a, Result<Rows, Failure>> {
        async move {
            let asked = Instant::now();
            // Bounded by the pool's acquire timeout; cutting it short could
            // drop a connection in the middle of its set-up.
            let mut conn = self.pool.acquire().await.map_err(|e| match e {
                sqlx::Error::PoolTimedOut => Failure::NoConnection,
                e => Failure::Failed(self.error(e)),
            })?;
            let waited = asked.elapsed();
            // The caller may have stopped listening; the statement runs anyway.
            let _ = connected.send(());
            (self.prepare)(&mut conn, deadline)
                .await
                .map_err(|e| Failure::Failed(self.error(e)))?;
            let mut query = sqlx::query::<DB>(sql);
            for p in params {
                query = match p {
                    Value::Null => query.bind(None::<String>),
                    Value::Int(i) => query.bind(*i),
                    Value::Float(f) => query.bind(*f),
                    Value::Text(s) => query.bind(s.clone()),
                    Value::Date(d) => query.bind(*d),
                    Value::Timestamp(t) => query.bind(*t),
                    Value::TimestampTz(t) => query.bind(*t),
                };
            }
            let rows = tokio::time::timeout_at(deadline, query.fetch_all(&mut *conn))
                .await
                .map_err(|_| Failure::TimedOut { waited })?
                .map_err(|e| Failure::Failed(self.error(e)))?;
            Ok(rows.iter().map(self.decode).collect())
        }
        .boxed()
    }

    fn connect_once(&self) -> BoxFuture<'_, Result<(), WarehouseError>> {
        async move {
            let attempt = async { self.pool.connect_options().connect().await?.close().await };
            attempt.await.map_err(|e| self.error(e))
        }
        .boxed()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.pool.close().boxed()
    }

    fn max_connections(&self) -> u32 {
        self.pool.options().get_max_connections()
    }
}

/// Classifies an error from sqlx; `read` is the engine's reading of its
/// server's errors.
fn classify(origin: &Origin, read: Classify, err: sqlx::Error) -> WarehouseError {
    let unavailable = |reason: String| WarehouseError::Unavailable {
        warehouse: origin.warehouse.clone(),
        reason,
    };
    match err {
        sqlx::Error::Database(db) => {
            origin.server_error(read(db.as_ref()), db.message().to_owned())
        }
        sqlx::Error::Io(e) => origin.io_error(&e),
        sqlx::Error::Tls(e) => unavailable(format!("TLS: {e}")),
        sqlx::Error::Protocol(e) => unavailable(format!("protocol error: {e}")),
        sqlx::Error::PoolTimedOut => {
            unavailable("no connection could be obtained in time".to_owned())
        }
        sqlx::Error::PoolClosed => unavailable("the connection pool is closed".to_owned()),
        sqlx::Error::WorkerCrashed => unavailable("the connection worker crashed".to_owned()),
        sqlx::Error::Configuration(e) => WarehouseError::InvalidUrl {
            warehouse: origin.warehouse.clone(),
            reason: e.to_string(),
        },
        sqlx::Error::ColumnDecode { index, source } => WarehouseError::Decode {
            index: index.parse().unwrap_or_default(),
            type_name: String::from("?"),
            reason: source.to_string(),
        },
        other => WarehouseError::Query {
            message: other.to_string(),
        },
    }
}

/// The code a server gave an error (SQLSTATE, SQLite's result code), or "".
pub(super) fn code(db: &dyn DatabaseError) -> String {
    db.code().map(|c| c.into_owned()).unwrap_or_default()
}
