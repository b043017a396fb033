//! SQLite: a pool over a database file, values decoded by storage class,
//! result codes and messages read, `pragma_table_info` as the catalog, and
//! the dialect (`"x"`, `?`, no distinct tuples in a scan, zoned timestamps
//! as UTC text, case-insensitive names).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Row, Sqlite, TypeInfo, ValueRef};

use super::backend::Backend;
use super::dialect::{Dialect, schema_and_name};
use super::error::{Endpoint, ServerError};
use super::pooled::{self, Pooled};
use super::value::decode_error;
use super::{Settings, Value, WarehouseError};
use crate::domain::{Identifier, TableRef};
use tokio::time::Instant;

/// SQLite's SQL.
pub(super) struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn quote(&self, ident: &Identifier) -> String {
        format!("\"{}\"", ident.as_str())
    }

    fn placeholder(&self, _index: usize, _value: &Value) -> String {
        "?".to_owned()
    }

    fn always_true(&self) -> &'static str {
        "1=1"
    }

    /// SQLite has no multi-column `COUNT(DISTINCT …)` and no row values in
    /// aggregates.
    fn counts_distinct_tuples(&self) -> bool {
        false
    }

    fn same_column(&self, catalog_name: &str, name: &str) -> bool {
        catalog_name.eq_ignore_ascii_case(name)
    }

    /// SQLite keeps zoned timestamps as UTC text (`2026-11-20 09:00:00`,
    /// optionally `+00:00`) and compares text; a bound spelled the same way
    /// compares correctly.
    fn zoned_bound(&self, instant: DateTime<Utc>) -> Value {
        Value::Text(instant.format("%Y-%m-%d %H:%M:%S").to_string())
    }

    /// The schema argument names an attached database (`main`); NULL searches all.
    fn catalog_query(&self, table: &TableRef) -> (&'static str, Vec<Value>) {
        let (schema, name) = schema_and_name(table);
        (
            "SELECT name, type FROM pragma_table_info(?, ?) ORDER BY cid",
            vec![name, schema],
        )
    }

    /// The schema names an attached database (`main` by default); SQLite
    /// partitions nothing. Its own tables (`sqlite_sequence`…) are left out.
    /// SQLite keeps no row estimate or change time that one statement
    /// could read without counting each table: the schema only.
    fn discover_query(&self, schema: &Identifier) -> (String, Vec<Value>) {
        let schema = schema.as_str();
        (
            format!(
                "SELECT m.name, p.name, p.type, NULL, NULL, NULL \
                 FROM \"{schema}\".sqlite_master m JOIN pragma_table_info(m.name, ?) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 ORDER BY m.name, p.cid"
            ),
            vec![Value::Text(schema.to_owned())],
        )
    }

    fn schema_catalog_query(&self, schema: Option<&Identifier>) -> (String, Vec<Value>) {
        let schema = schema.map_or("main", Identifier::as_str);
        (
            format!(
                "SELECT ? AS s, m.name, p.name, p.type, p.pk, 0 \
                 FROM \"{schema}\".sqlite_master m JOIN pragma_table_info(m.name, ?) p \
                 WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 ORDER BY m.name, p.cid"
            ),
            vec![
                Value::Text(schema.to_owned()),
                Value::Text(schema.to_owned()),
            ],
        )
    }

    fn type_names(&self) -> &'static [(&'static str, &'static str)] {
        &[("clob", "text"), ("string", "text")]
    }
}

/// Prepared statements each connection keeps. Each dataset's scan is a
/// statement of its own, so with many datasets a large cache only holds
/// statements that will be evicted before their next tick.
const STATEMENT_CACHE: usize = 16;
/// Each connection's page cache, in KiB (SQLite's default is 2,000): the
/// operating system caches the file too, and a warehouse of many tables
/// otherwise fills a cache per connection.
const PAGE_CACHE_KIB: u32 = 512;
/// A connection idle this long is closed. Each holds a thread, its page
/// cache and the parsed schema of every table in the file, which between
/// ticks is memory held for nothing; opening the file again is cheap.
pub(crate) const IDLE_CLOSE: std::time::Duration = std::time::Duration::from_secs(2);

/// A pool over the database file, opened read-only (whatever the URL's
/// `mode=` says): no statement can write to it, and whoever fills it does
/// so through a connection of their own. A statement still running at the
/// query timeout is interrupted (see [`interrupt_at`]).
pub(super) fn connect(settings: &Settings, _tz: Tz) -> Result<Box<dyn Backend>, String> {
    let opts = SqliteConnectOptions::from_str(&settings.url)
        .map_err(|e| e.to_string())?
        .read_only(true)
        .statement_cache_capacity(STATEMENT_CACHE)
        .pragma("cache_size", format!("-{PAGE_CACHE_KIB}"));
    let endpoint = Endpoint::File(opts.get_filename().to_owned());
    let pool = pooled::options::<Sqlite>(settings)
        .idle_timeout(IDLE_CLOSE)
        .connect_lazy_with(opts);
    Ok(Box::new(Pooled::new(
        pool,
        settings,
        endpoint,
        decode_row,
        classify,
        interrupt_at,
    )))
}

/// Makes the connection's next statement stop at `deadline`: SQLite has no
/// statement timeout, so a progress handler, called every few thousand
/// virtual-machine steps, interrupts it there (`SQLITE_INTERRUPT`). Without
/// it a timed-out scan would go on reading, holding its lock on the file.
fn interrupt_at(
    conn: &mut SqliteConnection,
    deadline: Instant,
) -> BoxFuture<'_, Result<(), sqlx::Error>> {
    let deadline = deadline.into_std();
    async move {
        conn.lock_handle()
            .await?
            .set_progress_handler(10_000, move || std::time::Instant::now() < deadline);
        Ok(())
    }
    .boxed()
}

/// Reads the message and result code.
fn classify(db: &dyn sqlx::error::DatabaseError) -> ServerError {
    let message = db.message();
    // The primary result code of an extended one (SQLITE_BUSY_SNAPSHOT is BUSY).
    let primary = pooled::code(db).parse::<i32>().map_or(0, |c| c & 0xff);
    if let Some(rest) = message.strip_prefix("no such table: ") {
        ServerError::TableMissing(rest.to_owned())
    } else if let Some(rest) = message.strip_prefix("no such column: ") {
        ServerError::ColumnMissing(rest.to_owned())
    } else if matches!(primary, 5 | 6) || message.contains("database is locked") {
        // SQLITE_BUSY, SQLITE_LOCKED: a writer holds the file; busy, not down.
        ServerError::Busy
    } else if primary == 9 {
        // SQLITE_INTERRUPT: stopped at the query timeout by `interrupt_at`.
        ServerError::Timeout
    } else if primary == 14 {
        // SQLITE_CANTOPEN
        ServerError::CannotOpen
    } else {
        ServerError::Other
    }
}

/// Decodes a row by the storage class of each value (SQLite columns have no
/// fixed type).
fn decode_row(row: &SqliteRow) -> Result<Vec<Value>, WarehouseError> {
    let mut out = Vec::with_capacity(row.columns().len());
    for i in 0..row.columns().len() {
        let raw = row.try_get_raw(i).map_err(|e| decode_error(i, "?", e))?;
        if raw.is_null() {
            out.push(Value::Null);
            continue;
        }
        let type_name = raw.type_info().name().to_owned();
        let err = |e: sqlx::Error| decode_error(i, &type_name, e);
        let value = match type_name.as_str() {
            "INTEGER" | "BOOLEAN" => Value::Int(row.try_get_unchecked::<i64, _>(i).map_err(err)?),
            "REAL" | "NUMERIC" => Value::Float(row.try_get_unchecked::<f64, _>(i).map_err(err)?),
            "BLOB" => {
                let bytes = row.try_get_unchecked::<Vec<u8>, _>(i).map_err(err)?;
                Value::Text(String::from_utf8(bytes).map_err(|e| decode_error(i, &type_name, e))?)
            }
            _ => Value::Text(row.try_get_unchecked::<String, _>(i).map_err(err)?),
        };
        out.push(value);
    }
    Ok(out)
}
