//! One cell of a result row, independent of the engine (each engine file
//! decodes its rows into these), and the values bound as statement
//! parameters.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::prelude::ToPrimitive;

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

pub(super) fn decode_error(
    index: usize,
    type_name: &str,
    reason: impl fmt::Display,
) -> WarehouseError {
    WarehouseError::Decode {
        index,
        type_name: type_name.to_owned(),
        reason: reason.to_string(),
    }
}

pub(super) fn decimal_to_f64(d: rust_decimal::Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
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
