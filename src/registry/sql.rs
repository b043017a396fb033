//! Statements written once and run on whichever engine holds the registry.
//!
//! A [`Statement`] is SQL with `$1`-style parameters (both engines accept
//! them) and the values bound to it. It runs on the pool ([`Registry`]) or
//! inside a write transaction ([`Tx`]) that a caller opened with
//! [`Registry::begin`] and ends with [`Tx::commit`]; dropping a `Tx` rolls
//! it back. Rows are read into any type that sqlx can build from a row of
//! either engine ([`StoredRow`]).

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::types::Json;
use sqlx::{Arguments, Database, Encode, Transaction, Type};

use super::error::OpContext;
use super::{Pool, Registry, RegistryError};
use crate::warehouse::Engine;

/// A value bound to a statement parameter.
#[derive(Debug)]
pub(crate) enum Arg<'q> {
    Str(&'q str),
    OptStr(Option<&'q str>),
    Int(i64),
    OptInt(Option<i64>),
    OptFloat(Option<f64>),
    Bool(bool),
    Time(DateTime<Utc>),
    OptTime(Option<DateTime<Utc>>),
    /// A JSON document, serialised once (SQLite keeps the text as written).
    Json(Result<String, String>),
}

impl Arg<'_> {
    /// A value stored as JSON.
    pub(crate) fn json<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        Self::Json(serde_json::to_string(value).map_err(|e| e.to_string()))
    }
}

impl<'q> From<&'q str> for Arg<'q> {
    fn from(v: &'q str) -> Self {
        Self::Str(v)
    }
}

impl<'q> From<&'q String> for Arg<'q> {
    fn from(v: &'q String) -> Self {
        Self::Str(v)
    }
}

impl<'q> From<Option<&'q str>> for Arg<'q> {
    fn from(v: Option<&'q str>) -> Self {
        Self::OptStr(v)
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Self::OptInt(v)
    }
}

impl From<Option<f64>> for Arg<'_> {
    fn from(v: Option<f64>) -> Self {
        Self::OptFloat(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<DateTime<Utc>> for Arg<'_> {
    fn from(v: DateTime<Utc>) -> Self {
        Self::Time(v)
    }
}

impl From<Option<DateTime<Utc>>> for Arg<'_> {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Self::OptTime(v)
    }
}

/// A row type readable from both engines.
pub(crate) trait StoredRow:
    for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> StoredRow for T where
    T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin
{
}

/// SQL and its bound values.
#[derive(Debug)]
#[must_use = "a statement does nothing until it is executed or fetched"]
pub(crate) struct Statement<'q> {
    sql: &'q str,
    args: Vec<Arg<'q>>,
}

/// A statement with `$1`-style parameters, to bind and run.
pub(crate) fn query(sql: &str) -> Statement<'_> {
    Statement {
        sql,
        args: Vec::new(),
    }
}

/// Where a statement runs: the pool or an open transaction.
pub(crate) enum On<'c> {
    SqlitePool(&'c sqlx::SqlitePool),
    PgPool(&'c sqlx::PgPool),
    SqliteTx(&'c mut Transaction<'static, Sqlite>),
    PgTx(&'c mut Transaction<'static, Postgres>),
}

impl<'c> From<&'c Registry> for On<'c> {
    fn from(registry: &'c Registry) -> Self {
        match &registry.pool {
            Pool::Sqlite(pool) => Self::SqlitePool(pool),
            Pool::Postgres(pool) => Self::PgPool(pool),
        }
    }
}

impl<'c> From<&'c mut Tx> for On<'c> {
    fn from(tx: &'c mut Tx) -> Self {
        match &mut tx.inner {
            TxInner::Sqlite { tx, .. } => Self::SqliteTx(tx),
            TxInner::Postgres(tx) => Self::PgTx(tx),
        }
    }
}

/// The arguments of a statement for one engine. The bounds name every type
/// an [`Arg`] holds; `json` turns a JSON document into what the engine
/// stores (SQLite: the text itself, PostgreSQL: `JSONB`).
fn arguments<'q, DB, J>(
    args: Vec<Arg<'q>>,
    json: fn(String) -> Result<J, serde_json::Error>,
) -> Result<DB::Arguments<'q>, sqlx::Error>
where
    DB: Database,
    J: Encode<'q, DB> + Type<DB> + 'q,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
{
    let mut out = <DB::Arguments<'q>>::default();
    for arg in args {
        let added = match arg {
            Arg::Str(v) => out.add(v),
            Arg::OptStr(v) => out.add(v),
            Arg::Int(v) => out.add(v),
            Arg::OptInt(v) => out.add(v),
            Arg::OptFloat(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
            Arg::Time(v) => out.add(v),
            Arg::OptTime(v) => out.add(v),
            Arg::Json(Ok(text)) => json(text)
                .map_err(Into::into)
                .and_then(|value| out.add(value)),
            Arg::Json(Err(e)) => Err(e.into()),
        };
        added.map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

impl<'q> Statement<'q> {
    /// Binds the next parameter.
    pub(crate) fn bind(mut self, value: impl Into<Arg<'q>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Runs the statement; the number of rows it changed.
    pub(crate) async fn execute<'c>(
        self,
        on: impl Into<On<'c>>,
        op: &'static str,
    ) -> Result<u64, RegistryError> {
        let Self { sql, args } = self;
        let done = match on.into() {
            On::SqlitePool(pool) => match sqlite(args) {
                Ok(args) => sqlx::query_with(sql, args)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected()),
                Err(e) => Err(e),
            },
            On::SqliteTx(tx) => match sqlite(args) {
                Ok(args) => sqlx::query_with(sql, args)
                    .execute(&mut **tx)
                    .await
                    .map(|r| r.rows_affected()),
                Err(e) => Err(e),
            },
            On::PgPool(pool) => match postgres(args) {
                Ok(args) => sqlx::query_with(sql, args)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected()),
                Err(e) => Err(e),
            },
            On::PgTx(tx) => match postgres(args) {
                Ok(args) => sqlx::query_with(sql, args)
                    .execute(&mut **tx)
                    .await
                    .map(|r| r.rows_affected()),
                Err(e) => Err(e),
            },
        };
        done.op(op)
    }

    /// Every row the statement returns.
    pub(crate) async fn fetch_all<'c, T: StoredRow>(
        self,
        on: impl Into<On<'c>>,
        op: &'static str,
    ) -> Result<Vec<T>, RegistryError> {
        let Self { sql, args } = self;
        let rows = match on.into() {
            On::SqlitePool(pool) => match sqlite(args) {
                Ok(args) => sqlx::query_as_with(sql, args).fetch_all(pool).await,
                Err(e) => Err(e),
            },
            On::SqliteTx(tx) => match sqlite(args) {
                Ok(args) => sqlx::query_as_with(sql, args).fetch_all(&mut **tx).await,
                Err(e) => Err(e),
            },
            On::PgPool(pool) => match postgres(args) {
                Ok(args) => sqlx::query_as_with(sql, args).fetch_all(pool).await,
                Err(e) => Err(e),
            },
            On::PgTx(tx) => match postgres(args) {
                Ok(args) => sqlx::query_as_with(sql, args).fetch_all(&mut **tx).await,
                Err(e) => Err(e),
            },
        };
        rows.op(op)
    }

    /// The first row the statement returns, if any.
    pub(crate) async fn fetch_optional<'c, T: StoredRow>(
        self,
        on: impl Into<On<'c>>,
        op: &'static str,
    ) -> Result<Option<T>, RegistryError> {
        let Self { sql, args } = self;
        let row = match on.into() {
            On::SqlitePool(pool) => match sqlite(args) {
                Ok(args) => sqlx::query_as_with(sql, args).fetch_optional(pool).await,
                Err(e) => Err(e),
            },
            On::SqliteTx(tx) => match sqlite(args) {
                Ok(args) => {
                    sqlx::query_as_with(sql, args)
                        .fetch_optional(&mut **tx)
                        .await
                }
                Err(e) => Err(e),
            },
            On::PgPool(pool) => match postgres(args) {
                Ok(args) => sqlx::query_as_with(sql, args).fetch_optional(pool).await,
                Err(e) => Err(e),
            },
            On::PgTx(tx) => match postgres(args) {
                Ok(args) => {
                    sqlx::query_as_with(sql, args)
                        .fetch_optional(&mut **tx)
                        .await
                }
                Err(e) => Err(e),
            },
        };
        row.op(op)
    }

    /// The one row the statement returns; none is [`RegistryError::Query`]
    /// (`RowNotFound`).
    pub(crate) async fn fetch_one<'c, T: StoredRow>(
        self,
        on: impl Into<On<'c>>,
        op: &'static str,
    ) -> Result<T, RegistryError> {
        self.fetch_optional(on, op)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
            .op(op)
    }
}

impl Statement<'_> {
    /// The first column of the first row, if there is a row.
    pub(crate) async fn fetch_optional_scalar<'c, T>(
        self,
        on: impl Into<On<'c>>,
        op: &'static str,
    ) -> Result<Option<T>, RegistryError>
    where
        (T,): StoredRow,
    {
        Ok(self.fetch_optional::<(T,)>(on, op).await?.map(|(v,)| v))
    }

    /// The first column of the one row the statement returns.
    pub(crate) async fn fetch_one_scalar<'c, T>(
        self,
        on: impl Into<On<'c>>,
        op: &'static str,
    ) -> Result<T, RegistryError>
    where
        (T,): StoredRow,
    {
        Ok(self.fetch_one::<(T,)>(on, op).await?.0)
    }
}

/// The arguments for SQLite: JSON is stored as the text itself.
fn sqlite(args: Vec<Arg<'_>>) -> Result<SqliteArguments<'_>, sqlx::Error> {
    arguments::<Sqlite, String>(args, Ok)
}

/// The arguments for PostgreSQL: JSON is stored as `JSONB`.
fn postgres(args: Vec<Arg<'_>>) -> Result<PgArguments, sqlx::Error> {
    arguments::<Postgres, Json<serde_json::Value>>(args, |text| {
        serde_json::from_str(&text).map(Json)
    })
}

/// A write transaction on the registry, opened by [`Registry::begin`]. On
/// SQLite it starts with `BEGIN IMMEDIATE`, so read-then-write transactions
/// hold the write lock from the start instead of failing to upgrade a read
/// lock, and it holds this process's writer turn (`Registry::sqlite_writer`)
/// until it ends. Dropping it without [`commit`](Self::commit) rolls back.
pub struct Tx {
    inner: TxInner,
}

enum TxInner {
    // Field order matters: the transaction ends before the turn is released.
    Sqlite {
        tx: Transaction<'static, Sqlite>,
        _turn: tokio::sync::OwnedMutexGuard<()>,
    },
    Postgres(Transaction<'static, Postgres>),
}

impl Registry {
    /// Opens a write transaction; `op` names it in errors.
    pub async fn begin(&self, op: &'static str) -> Result<Tx, RegistryError> {
        let inner = match &self.pool {
            Pool::Sqlite(pool) => {
                let turn = self.sqlite_writer.clone().lock_owned().await;
                let tx = pool.begin_with("BEGIN IMMEDIATE").await.op(op)?;
                TxInner::Sqlite { tx, _turn: turn }
            }
            Pool::Postgres(pool) => TxInner::Postgres(pool.begin().await.op(op)?),
        };
        Ok(Tx { inner })
    }
}

impl Tx {
    /// Makes the transaction's changes durable.
    pub async fn commit(self, op: &'static str) -> Result<(), RegistryError> {
        match self.inner {
            TxInner::Sqlite { tx, _turn } => tx.commit().await.op(op),
            TxInner::Postgres(tx) => tx.commit().await.op(op),
        }
    }

    /// Which engine the transaction runs on.
    pub fn engine(&self) -> Engine {
        match self.inner {
            TxInner::Sqlite { .. } => Engine::Sqlite,
            TxInner::Postgres(_) => Engine::Postgres,
        }
    }
}
