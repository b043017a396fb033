//! PostgreSQL: sessions in the agent's time zone with a server-side
//! `statement_timeout`, rows decoded by declared type, SQLSTATE codes read,
//! `information_schema` as the catalog, and its dialect (`"x"`, `$n`,
//! `FILTER`, row values, case-sensitive quoted names).

use std::str::FromStr;

use chrono_tz::Tz;
use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{Column, Executor, Row, TypeInfo, ValueRef};

use super::backend::Backend;
use super::dialect::{Dialect, schema_and_name, schema_value};
use super::error::{Endpoint, ServerError, quoted_name};
use super::pooled::{self, Pooled};
use super::value::{decimal_to_f64, decode_error};
use super::{Settings, Value, WarehouseError};
use crate::domain::{Identifier, TableRef};

/// PostgreSQL's SQL.
pub(super) struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn quote(&self, ident: &Identifier) -> String {
        format!("\"{}\"", ident.as_str())
    }

    fn placeholder(&self, index: usize, _value: &Value) -> String {
        format!("${index}")
    }

    fn always_true(&self) -> &'static str {
        "TRUE"
    }

    fn keyed_rows(&self, columns: &[Identifier]) -> String {
        format!("count(*) FILTER (WHERE {})", self.not_null(columns))
    }

    fn counts_distinct_tuples(&self) -> bool {
        true
    }

    /// Quoted identifiers are case-sensitive.
    fn same_column(&self, catalog_name: &str, name: &str) -> bool {
        catalog_name == name
    }

    /// The default schema is `current_schema()`; enums and arrays are named
    /// by their `udt_name`.
    fn catalog_query(&self, table: &TableRef) -> (&'static str, Vec<Value>) {
        let (schema, name) = schema_and_name(table);
        (
            "SELECT column_name::text, \
             (CASE WHEN data_type IN ('USER-DEFINED', 'ARRAY') THEN udt_name ELSE data_type END)::text \
             FROM information_schema.columns \
             WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2 \
             ORDER BY ordinal_position",
            vec![schema, name],
        )
    }

    /// Types as in [`Dialect::catalog_query`]; the primary key from
    /// `pg_index` and the partition key from `pg_partitioned_table` (the
    /// catalog tables every user may read, unlike `information_schema`'s
    /// constraints); the partitions of a partitioned table are left out.
    /// The row estimate is `pg_class.reltuples`, or `n_live_tup` once the
    /// statistics have counted writes (reltuples lags until an ANALYZE);
    /// the counter adds up inserts, updates and deletes, so a counter that
    /// moves is a change whose time warden records. A partitioned table
    /// adds up its partitions' figures (it keeps none of its own).
    fn discover_query(&self, schema: &Identifier) -> (String, Vec<Value>) {
        (
            "SELECT c.table_name::text, c.column_name::text, \
             (CASE WHEN c.data_type IN ('USER-DEFINED', 'ARRAY') THEN c.udt_name ELSE c.data_type END)::text, \
             (CASE WHEN COALESCE(tree.writes, s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0) > 0 \
                     OR cl.reltuples < 0 \
                   THEN COALESCE(tree.live, s.n_live_tup, 0) ELSE cl.reltuples END)::int8, \
             NULL::int8, \
             COALESCE(tree.writes, s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)::int8 \
             FROM information_schema.columns c \
             JOIN pg_catalog.pg_namespace n ON n.nspname = c.table_schema \
             JOIN pg_catalog.pg_class cl ON cl.relnamespace = n.oid AND cl.relname = c.table_name \
             LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = cl.oid \
             LEFT JOIN LATERAL (SELECT sum(ps.n_live_tup) AS live, \
                 sum(ps.n_tup_ins + ps.n_tup_upd + ps.n_tup_del) AS writes \
               FROM pg_catalog.pg_partition_tree(cl.oid) t \
               JOIN pg_catalog.pg_stat_user_tables ps ON ps.relid = t.relid \
               WHERE cl.relkind = 'p') tree ON true \
             WHERE c.table_schema = $1 AND cl.relkind IN ('r', 'p') AND NOT cl.relispartition \
             ORDER BY c.table_name, c.ordinal_position"
                .to_owned(),
            vec![Value::Text(schema.as_str().to_owned())],
        )
    }

    fn schema_catalog_query(&self, schema: Option<&Identifier>) -> (String, Vec<Value>) {
        (
            "SELECT c.table_schema::text, c.table_name::text, c.column_name::text, \
             (CASE WHEN c.data_type IN ('USER-DEFINED', 'ARRAY') THEN c.udt_name ELSE c.data_type END)::text, \
             COALESCE((SELECT k.n FROM pg_catalog.pg_index i, \
                 unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
               WHERE i.indrelid = cl.oid AND i.indisprimary AND k.attnum = a.attnum), 0)::int8, \
             (CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_partitioned_table p \
               WHERE p.partrelid = cl.oid AND a.attnum = ANY (p.partattrs::int2[])) THEN 1 ELSE 0 END)::int8 \
             FROM information_schema.columns c \
             JOIN pg_catalog.pg_namespace n ON n.nspname = c.table_schema \
             JOIN pg_catalog.pg_class cl ON cl.relnamespace = n.oid AND cl.relname = c.table_name \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = cl.oid AND a.attname = c.column_name \
             WHERE c.table_schema = COALESCE($1, current_schema()) AND NOT cl.relispartition \
             ORDER BY c.table_name, c.ordinal_position"
                .to_owned(),
            vec![schema_value(schema)],
        )
    }

    fn type_names(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("int2", "smallint"),
            ("smallserial", "smallint"),
            ("serial2", "smallint"),
            ("int4", "integer"),
            ("serial", "integer"),
            ("serial4", "integer"),
            ("int8", "bigint"),
            ("bigserial", "bigint"),
            ("serial8", "bigint"),
            ("bool", "boolean"),
            ("float4", "real"),
            ("float8", "double"),
            ("bpchar", "text"),
            ("citext", "text"),
            ("jsonb", "json"),
            ("bytea", "binary"),
        ]
    }
}

/// Makes the session's transactions read-only again before each statement:
/// a statement may have turned the default off
/// (`SELECT set_config('default_transaction_read_only', 'off', false)`),
/// and the next one on that connection must not be able to write.
const READ_ONLY: &str = "SET default_transaction_read_only = on";

/// A pool whose sessions are read-only (`default_transaction_read_only`,
/// set at startup and again before each statement), use `tz` as their time
/// zone (so dates compare with `timestamptz` columns in local days) and
/// have a server-side `statement_timeout` of the query timeout.
pub(super) fn connect(settings: &Settings, tz: Tz) -> Result<Box<dyn Backend>, String> {
    let opts = PgConnectOptions::from_str(&settings.url)
        .map_err(|e| e.to_string())?
        .options([
            (
                "statement_timeout",
                settings.query_timeout.as_millis().to_string(),
            ),
            ("default_transaction_read_only", "on".to_owned()),
        ]);
    let endpoint = Endpoint::Server {
        host: opts.get_host().to_owned(),
        port: opts.get_port(),
        user: opts.get_username().to_owned(),
        database: opts.get_database().map(str::to_owned),
    };
    // sqlx sends `TimeZone=UTC` at startup, which would override a startup
    // option; set the zone once the session is up instead.
    let set_zone = format!("SET TIME ZONE '{}'", tz.name().replace('\'', "''"));
    let pool = pooled::options::<Postgres>(settings)
        .after_connect(move |conn, _| {
            let set_zone = set_zone.clone();
            Box::pin(async move { conn.execute(set_zone.as_str()).await.map(drop) })
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

/// Reads SQLSTATE codes.
fn classify(db: &dyn sqlx::error::DatabaseError) -> ServerError {
    match pooled::code(db).as_str() {
        // undefined_table, invalid_schema_name
        "42P01" | "3F000" => ServerError::TableMissing(quoted_name(db.message())),
        "42703" => ServerError::ColumnMissing(quoted_name(db.message())),
        // query_canceled: statement_timeout fired on the server.
        "57014" => ServerError::Timeout,
        // invalid_authorization_specification (no such role, no pg_hba
        // entry), invalid_password
        c if c.starts_with("28") => ServerError::Authentication,
        // invalid_catalog_name: the URL's database
        "3D000" => ServerError::DatabaseMissing,
        // connection exceptions, shutdowns, too many connections
        c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => {
            ServerError::Unavailable
        }
        _ => ServerError::Other,
    }
}

/// Decodes a row by the declared type of each column.
fn decode_row(row: &PgRow) -> Result<Vec<Value>, WarehouseError> {
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
            "INT2" => Value::Int(row.try_get::<i16, _>(i).map_err(err)?.into()),
            "INT4" => Value::Int(row.try_get::<i32, _>(i).map_err(err)?.into()),
            "INT8" => Value::Int(row.try_get::<i64, _>(i).map_err(err)?),
            "OID" => Value::Int(
                row.try_get::<sqlx::postgres::types::Oid, _>(i)
                    .map_err(err)?
                    .0
                    .into(),
            ),
            "BOOL" => Value::Int(row.try_get::<bool, _>(i).map_err(err)?.into()),
            "NUMERIC" => Value::Float(decimal_to_f64(row.try_get(i).map_err(err)?)),
            "FLOAT4" => Value::Float(row.try_get::<f32, _>(i).map_err(err)?.into()),
            "FLOAT8" => Value::Float(row.try_get::<f64, _>(i).map_err(err)?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "UNKNOWN" | "CITEXT" => {
                Value::Text(row.try_get_unchecked::<String, _>(i).map_err(err)?)
            }
            "DATE" => Value::Date(row.try_get(i).map_err(err)?),
            "TIMESTAMP" => Value::Timestamp(row.try_get(i).map_err(err)?),
            "TIMESTAMPTZ" => Value::TimestampTz(row.try_get(i).map_err(err)?),
            other => {
                return Err(decode_error(
                    i,
                    other,
                    "unsupported type; cast it to text or a number in the query",
                ));
            }
        };
        out.push(value);
    }
    Ok(out)
}
