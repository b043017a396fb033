//! MySQL and MariaDB: sessions with a statement timeout under either
//! server's name for it, rows decoded by column type, error numbers read,
//! `information_schema` as the catalog, and the dialect (`` `x` ``, `?`,
//! multi-column `COUNT(DISTINCT)`, case-insensitive names).

use std::str::FromStr;

use chrono_tz::Tz;
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlRow};
use sqlx::{Column, Executor, MySql, Row, TypeInfo, ValueRef};

use super::backend::Backend;
use super::dialect::{Dialect, schema_and_name, schema_value};
use super::error::{Endpoint, ServerError, quoted_name};
use super::pooled::{self, Pooled};
use super::value::{decimal_to_f64, decode_error};
use super::{CatalogColumn, Settings, Value, WarehouseError};
use crate::domain::{Identifier, TableRef};

/// MySQL's and MariaDB's SQL.
pub(super) struct MySqlDialect;

impl Dialect for MySqlDialect {
    fn quote(&self, ident: &Identifier) -> String {
        format!("`{}`", ident.as_str())
    }

    fn placeholder(&self, _index: usize, _value: &Value) -> String {
        "?".to_owned()
    }

    fn always_true(&self) -> &'static str {
        "1=1"
    }

    fn counts_distinct_tuples(&self) -> bool {
        true
    }

    /// The multi-argument `COUNT(DISTINCT)` already skips tuples with a NULL.
    fn distinct_keys(&self, columns: &[Identifier]) -> String {
        let list = self.column_list(columns);
        format!("count(DISTINCT {list})")
    }

    fn same_column(&self, catalog_name: &str, name: &str) -> bool {
        catalog_name.eq_ignore_ascii_case(name)
    }

    /// A `TIMESTAMP` is a point in time (stored as UTC), unlike a `DATETIME`.
    fn is_zoned(&self, column: &CatalogColumn) -> bool {
        column.data_type == "timestamptz"
            || column
                .raw_type
                .to_ascii_lowercase()
                .starts_with("timestamp")
    }

    /// The default schema is `database()`.
    fn catalog_query(&self, table: &TableRef) -> (&'static str, Vec<Value>) {
        let (schema, name) = schema_and_name(table);
        (
            "SELECT column_name, column_type FROM information_schema.columns \
             WHERE table_schema = COALESCE(?, database()) AND table_name = ? \
             ORDER BY ordinal_position",
            vec![schema, name],
        )
    }

    /// The partition key is every column the partitioning expression
    /// names (`` `sale_date` ``, ``to_days(`sale_date`)``). Tables are
    /// ordered by their exact name: the default collation would mix `A`
    /// and `a`.
    /// `information_schema.TABLES` keeps the row estimate (`TABLE_ROWS`)
    /// and, for InnoDB since its last start, the last write (`UPDATE_TIME`).
    fn discover_query(&self, schema: &Identifier) -> (String, Vec<Value>) {
        (
            "SELECT c.table_name, c.column_name, c.column_type, \
             CAST(t.table_rows AS SIGNED), CAST(UNIX_TIMESTAMP(t.update_time) AS SIGNED), \
             CAST(NULL AS SIGNED) \
             FROM information_schema.columns c \
             JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = ? AND t.table_type = 'BASE TABLE' \
             ORDER BY BINARY c.table_name, c.ordinal_position"
                .to_owned(),
            vec![Value::Text(schema.as_str().to_owned())],
        )
    }

    fn schema_catalog_query(&self, schema: Option<&Identifier>) -> (String, Vec<Value>) {
        (
            "SELECT c.table_schema, c.table_name, c.column_name, c.column_type, \
             COALESCE((SELECT k.ordinal_position FROM information_schema.key_column_usage k \
               WHERE k.table_schema = c.table_schema AND k.table_name = c.table_name \
               AND k.column_name = c.column_name AND k.constraint_name = 'PRIMARY'), 0), \
             CASE WHEN EXISTS (SELECT 1 FROM information_schema.partitions p \
               WHERE p.table_schema = c.table_schema AND p.table_name = c.table_name \
               AND LOCATE(CONCAT('`', c.column_name, '`'), p.partition_expression) > 0) THEN 1 ELSE 0 END \
             FROM information_schema.columns c \
             WHERE c.table_schema = COALESCE(?, database()) \
             ORDER BY BINARY c.table_name, c.ordinal_position"
                .to_owned(),
            vec![schema_value(schema)],
        )
    }

    fn type_names(&self) -> &'static [(&'static str, &'static str)] {
        &[
            // Other widths are display hints; this one is how booleans are declared.
            ("tinyint(1)", "boolean"),
            ("tinyint", "smallint"),
            ("mediumint", "integer"),
            ("dec", "numeric"),
            ("fixed", "numeric"),
            ("nchar", "text"),
            ("nvarchar", "text"),
            ("national character varying", "text"),
            ("tinytext", "text"),
            ("mediumtext", "text"),
            ("longtext", "text"),
            ("datetime", "timestamp"),
            ("tinyblob", "binary"),
            ("mediumblob", "binary"),
            ("longblob", "binary"),
        ]
    }

    fn type_modifiers(&self) -> &'static [&'static str] {
        &["unsigned", "signed", "zerofill"]
    }
}

/// Makes the session's transactions read-only, after connecting and again
/// before each statement (a statement may have run `SET SESSION TRANSACTION
/// READ WRITE`, and the next one on that connection must not be able to
/// write).
const READ_ONLY: &str = "SET SESSION TRANSACTION READ ONLY";

/// A pool whose sessions are read-only and get `max_statement_time`
/// (MariaDB) or `max_execution_time` (MySQL) of the query timeout.
pub(super) fn connect(settings: &Settings, _tz: Tz) -> Result<Box<dyn Backend>, String> {
    let opts = MySqlConnectOptions::from_str(&settings.url).map_err(|e| e.to_string())?;
    let endpoint = Endpoint::Server {
        host: opts.get_host().to_owned(),
        port: opts.get_port(),
        user: opts.get_username().to_owned(),
        database: opts.get_database().map(str::to_owned),
    };
    let secs = settings.query_timeout.as_secs_f64();
    let millis = settings.query_timeout.as_millis();
    let pool = pooled::options::<MySql>(settings)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                // MariaDB and MySQL name their statement timeouts
                // differently; whichever the server lacks fails harmlessly.
                let mariadb = format!("SET SESSION max_statement_time = {secs}");
                if conn.execute(mariadb.as_str()).await.is_err() {
                    let mysql = format!("SET SESSION max_execution_time = {millis}");
                    let _ = conn.execute(mysql.as_str()).await;
                }
                conn.execute(READ_ONLY).await.map(drop)
            })
        })
        .before_acquire(|conn, _| {
            Box::pin(async move { conn.execute(READ_ONLY).await.map(|_| true) })
        })
        .connect_lazy_with(opts);
    Ok(Box::new(Pooled::new(
        pool,
        settings,
        endpoint,
        decode_row,
        classify,
        pooled::nothing_to_prepare,
    )))
}

/// Reads the server's error numbers.
fn classify(db: &dyn sqlx::error::DatabaseError) -> ServerError {
    let number = db
        .try_downcast_ref::<MySqlDatabaseError>()
        .map(|e| e.number())
        .unwrap_or_default();
    match number {
        // ER_NO_SUCH_TABLE (also for a table of a database that does not exist)
        1146 => ServerError::TableMissing(quoted_name(db.message())),
        // ER_BAD_DB_ERROR: the URL's database, at connection
        1049 => ServerError::DatabaseMissing,
        // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR
        1045 | 1044 => ServerError::Authentication,
        // MariaDB max_statement_time, MySQL max_execution_time
        1969 | 3024 => ServerError::Timeout,
        // ER_BAD_FIELD_ERROR
        1054 => ServerError::ColumnMissing(quoted_name(db.message())),
        // too many connections, server shutdown
        1040 | 1053 | 1203 => ServerError::Unavailable,
        _ => ServerError::Other,
    }
}

/// Decodes a row by the type of each column.
fn decode_row(row: &MySqlRow) -> Result<Vec<Value>, WarehouseError> {
    let mut out = Vec::with_capacity(row.columns().len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(|e| decode_error(i, "?", e))?;
        if raw.is_null() {
            out.push(Value::Null);
            continue;
        }
        let type_name = column.type_info().name().to_owned();
        let err = |e: sqlx::Error| decode_error(i, &type_name, e);
        let value = match type_name.as_str() {
            "BOOLEAN" | "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "YEAR" => {
                Value::Int(row.try_get_unchecked::<i64, _>(i).map_err(err)?)
            }
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "INT UNSIGNED" | "MEDIUMINT UNSIGNED"
            | "BIGINT UNSIGNED" | "BIT" => {
                let u = row.try_get_unchecked::<u64, _>(i).map_err(err)?;
                match i64::try_from(u) {
                    Ok(v) => Value::Int(v),
                    Err(_) => Value::Float(u as f64),
                }
            }
            "DECIMAL" => Value::Float(decimal_to_f64(row.try_get_unchecked(i).map_err(err)?)),
            "FLOAT" => Value::Float(row.try_get_unchecked::<f32, _>(i).map_err(err)?.into()),
            "DOUBLE" => Value::Float(row.try_get_unchecked::<f64, _>(i).map_err(err)?),
            "DATE" => Value::Date(row.try_get_unchecked(i).map_err(err)?),
            "DATETIME" => Value::Timestamp(row.try_get_unchecked(i).map_err(err)?),
            // The session time zone is UTC (sqlx sets it on connect), so a
            // TIMESTAMP arrives as UTC.
            "TIMESTAMP" => Value::TimestampTz(row.try_get_unchecked(i).map_err(err)?),
            _ => {
                // Strings, binary strings and JSON: read the bytes as UTF-8.
                let bytes = row.try_get_unchecked::<Vec<u8>, _>(i).map_err(err)?;
                Value::Text(String::from_utf8(bytes).map_err(|e| decode_error(i, &type_name, e))?)
            }
        };
        out.push(value);
    }
    Ok(out)
}
