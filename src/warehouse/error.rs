//! What can go wrong talking to a warehouse, classified so that a result can
//! say what happened ("table analytics.orders does not exist", "query timed
//! out after 60s") and so that callers can tell a warehouse that is down
//! from a check that is broken.

use std::time::Duration;

use super::Engine;

/// A failed warehouse operation. Every variant renders as a sentence fit for
/// a check result's `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WarehouseError {
    /// The relation does not exist, or is not visible to the warehouse user.
    #[error("table {table} does not exist")]
    TableMissing {
        /// The relation as written in the config (`analytics.orders`) or, when
        /// the warehouse reported it, as the warehouse named it.
        table: String,
    },

    /// A column a check names does not exist in the relation.
    #[error("column `{column}` does not exist{}", .table.as_ref().map(|t| format!(" in {t}")).unwrap_or_default())]
    ColumnMissing {
        column: String,
        /// The relation, when known (always for columns found missing in the catalog).
        table: Option<String>,
    },

    /// The statement ran longer than the warehouse's `query_timeout` and was
    /// abandoned (and cancelled by the server where it supports that).
    #[error("query timed out after {}", format_timeout(*.timeout))]
    Timeout { timeout: Duration },

    /// No connection could be made, or the connection broke mid-statement:
    /// refused, reset, DNS, TLS, authentication, server shutting down.
    #[error("warehouse `{warehouse}` unavailable: {reason}")]
    Unavailable { warehouse: String, reason: String },

    /// The warehouse URL could not be understood.
    #[error("warehouse `{warehouse}` has an invalid url: {reason}")]
    InvalidUrl { warehouse: String, reason: String },

    /// A value came back in a type warden cannot read.
    #[error("cannot read column {index} of type {type_name}: {reason}")]
    Decode {
        index: usize,
        type_name: String,
        reason: String,
    },

    /// Any other error the warehouse reported: syntax, permissions, types.
    #[error("query failed: {message}")]
    Query { message: String },
}

impl WarehouseError {
    /// Whether trying again later may succeed (timeouts and lost or refused
    /// connections), as opposed to errors in the relation or the check.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Unavailable { .. })
    }

    /// Classifies an error from sqlx. `timeout` is the query timeout the
    /// server enforces, reported when it cancels a statement.
    pub(crate) fn from_sqlx(
        warehouse: &str,
        engine: Engine,
        timeout: Duration,
        err: sqlx::Error,
    ) -> Self {
        let unavailable = |reason: String| Self::Unavailable {
            warehouse: warehouse.to_owned(),
            reason,
        };
        match err {
            sqlx::Error::Database(db) => classify_database(warehouse, engine, timeout, db.as_ref()),
            sqlx::Error::Io(e) => unavailable(e.to_string()),
            sqlx::Error::Tls(e) => unavailable(format!("TLS: {e}")),
            sqlx::Error::Protocol(e) => unavailable(format!("protocol error: {e}")),
            sqlx::Error::PoolTimedOut => {
                unavailable("no connection could be obtained in time".to_owned())
            }
            sqlx::Error::PoolClosed => unavailable("the connection pool is closed".to_owned()),
            sqlx::Error::WorkerCrashed => unavailable("the connection worker crashed".to_owned()),
            sqlx::Error::Configuration(e) => Self::InvalidUrl {
                warehouse: warehouse.to_owned(),
                reason: e.to_string(),
            },
            sqlx::Error::ColumnDecode { index, source } => Self::Decode {
                index: index.parse().unwrap_or_default(),
                type_name: String::from("?"),
                reason: source.to_string(),
            },
            other => Self::Query {
                message: other.to_string(),
            },
        }
    }
}

fn classify_database(
    warehouse: &str,
    engine: Engine,
    timeout: Duration,
    db: &dyn sqlx::error::DatabaseError,
) -> WarehouseError {
    let message = db.message().to_owned();
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let unavailable = || WarehouseError::Unavailable {
        warehouse: warehouse.to_owned(),
        reason: message.clone(),
    };
    let table_missing = || WarehouseError::TableMissing {
        table: quoted_name(&message),
    };
    let column_missing = || WarehouseError::ColumnMissing {
        column: quoted_name(&message),
        table: None,
    };
    match engine {
        Engine::Postgres => match code.as_str() {
            // undefined_table, invalid_schema_name
            "42P01" | "3F000" => table_missing(),
            "42703" => column_missing(),
            // query_canceled: statement_timeout fired on the server.
            "57014" => WarehouseError::Timeout { timeout },
            // connection exceptions, shutdowns, too many connections, auth, unknown database
            c if c.starts_with("08")
                || c.starts_with("57P")
                || c.starts_with("28")
                || c == "53300"
                || c == "3D000" =>
            {
                unavailable()
            }
            _ => WarehouseError::Query { message },
        },
        Engine::MySql => {
            let number = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|e| e.number())
                .unwrap_or_default();
            match number {
                // ER_NO_SUCH_TABLE, ER_BAD_DB_ERROR
                1146 | 1049 => table_missing(),
                // MariaDB max_statement_time, MySQL max_execution_time
                1969 | 3024 => WarehouseError::Timeout { timeout },
                // ER_BAD_FIELD_ERROR
                1054 => column_missing(),
                // access denied, too many connections, server shutdown
                1040 | 1044 | 1045 | 1053 | 1203 => unavailable(),
                _ => WarehouseError::Query { message },
            }
        }
        Engine::Sqlite => {
            if let Some(rest) = message.strip_prefix("no such table: ") {
                WarehouseError::TableMissing {
                    table: rest.to_owned(),
                }
            } else if let Some(rest) = message.strip_prefix("no such column: ") {
                WarehouseError::ColumnMissing {
                    column: rest.to_owned(),
                    table: None,
                }
            } else if matches!(code.as_str(), "5" | "6" | "14")
                || message.contains("database is locked")
            {
                // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CANTOPEN
                unavailable()
            } else {
                WarehouseError::Query { message }
            }
        }
    }
}

/// The first name quoted in a server message (`relation "x" does not
/// exist`, `Table 'db.x' doesn't exist`), or the whole message.
fn quoted_name(message: &str) -> String {
    for quote in ['"', '\''] {
        if let Some((_, rest)) = message.split_once(quote)
            && let Some((name, _)) = rest.split_once(quote)
        {
            return name.to_owned();
        }
    }
    message.to_owned()
}

/// `60s`, `1.5s`, `250ms`: how `query_timeout` is usually written.
pub(crate) fn format_timeout(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(
            WarehouseError::Timeout {
                timeout: Duration::from_secs(60)
            }
            .to_string(),
            "query timed out after 60s"
        );
        assert_eq!(
            WarehouseError::Unavailable {
                warehouse: "main".into(),
                reason: "connection refused".into()
            }
            .to_string(),
            "warehouse `main` unavailable: connection refused"
        );
        assert_eq!(
            WarehouseError::ColumnMissing {
                column: "x".into(),
                table: Some("analytics.orders".into())
            }
            .to_string(),
            "column `x` does not exist in analytics.orders"
        );
        assert_eq!(
            WarehouseError::TableMissing {
                table: "analytics.orders".into()
            }
            .to_string(),
            "table analytics.orders does not exist"
        );
        assert_eq!(format_timeout(Duration::from_millis(250)), "250ms");
        assert_eq!(format_timeout(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn only_timeouts_and_lost_connections_are_transient() {
        assert!(
            WarehouseError::Timeout {
                timeout: Duration::from_secs(1)
            }
            .is_transient()
        );
        assert!(
            WarehouseError::Unavailable {
                warehouse: "w".into(),
                reason: "r".into()
            }
            .is_transient()
        );
        assert!(!WarehouseError::TableMissing { table: "t".into() }.is_transient());
        assert!(
            !WarehouseError::Query {
                message: "syntax".into()
            }
            .is_transient()
        );
    }

    #[test]
    fn names_are_taken_from_server_messages() {
        assert_eq!(
            quoted_name("relation \"t.orders\" does not exist"),
            "t.orders"
        );
        assert_eq!(quoted_name("Table 'db.orders' doesn't exist"), "db.orders");
        assert_eq!(quoted_name("Unknown column 'x' in 'field list'"), "x");
    }
}
