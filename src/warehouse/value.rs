//! One cell of a result row, decoded per engine from the column's type, and
//! the values bound as statement parameters.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use sqlx::{Column, Row, TypeInfo, ValueRef};

use super::WarehouseError;

/// A value read from (or bound to) a warehouse, independent of the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    /// Floating point and decimal numbers (NUMERIC/DECIMAL are converted).
    Float(f64),
    Text(String),
    Date(NaiveDate),
    /// A timestamp without a zone (PostgreSQL `timestamp`, MySQL `DATETIME`):
    /// read in the agent's time zone.
    Timestamp(NaiveDateTime),
    /// A point in time (PostgreSQL `timestamptz`, MySQL `TIMESTAMP`).
    TimestampTz(DateTime<Utc>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// The value as a number: integers, floats, and text that parses as one
    /// (SQLite may hand numbers back as text). `None` for NULL, dates and
    /// other text.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Float(f) => Some(*f),
            Self::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a non-negative count; NULL counts as 0 (`SUM` over no rows).
    pub fn as_count(&self) -> Option<u64> {
        match self {
            Self::Null => Some(0),
            Self::Int(i) => u64::try_from(*i).ok(),
            Self::Float(f) if *f >= 0.0 && f.fract() == 0.0 => Some(*f as u64),
            Self::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    }

    /// A short name of the value's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Null => "NULL",
            Self::Int(_) => "integer",
            Self::Float(_) => "number",
            Self::Text(_) => "text",
            Self::Date(_) => "date",
            Self::Timestamp(_) => "timestamp",
            Self::TimestampTz(_) => "timestamp with time zone",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("NULL"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Text(t) => f.write_str(t),
            Self::Date(d) => write!(f, "{d}"),
            Self::Timestamp(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.f")),
            Self::TimestampTz(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.f UTC")),
        }
    }
}

fn decode_error(index: usize, type_name: &str, reason: impl fmt::Display) -> WarehouseError {
    WarehouseError::Decode {
        index,
        type_name: type_name.to_owned(),
        reason: reason.to_string(),
    }
}

fn decimal_to_f64(d: rust_decimal::Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
}

/// Decodes a PostgreSQL row by the declared type of each column.
pub(crate) fn decode_pg_row(row: &sqlx::postgres::PgRow) -> Result<Vec<Value>, WarehouseError> {
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

/// Decodes a MySQL/MariaDB row by the type of each column.
pub(crate) fn decode_mysql_row(row: &sqlx::mysql::MySqlRow) -> Result<Vec<Value>, WarehouseError> {
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

/// Decodes a SQLite row by the storage class of each value (SQLite columns
/// have no fixed type).
pub(crate) fn decode_sqlite_row(
    row: &sqlx::sqlite::SqliteRow,
) -> Result<Vec<Value>, WarehouseError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_counts() {
        assert_eq!(Value::Int(3).as_f64(), Some(3.0));
        assert_eq!(Value::Text(" 2.5 ".into()).as_f64(), Some(2.5));
        assert_eq!(Value::Null.as_f64(), None);
        assert_eq!(Value::Null.as_count(), Some(0));
        assert_eq!(Value::Float(4.0).as_count(), Some(4));
        assert_eq!(Value::Int(-1).as_count(), None);
    }
}
