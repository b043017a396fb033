//! What can go wrong talking to a warehouse, classified so that a result can
//! say what happened ("table analytics.orders does not exist", "query timed
//! out after 60s") and so that callers can tell a warehouse that is down
//! from a check that is broken.

use std::time::Duration;

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

    /// The statement did not finish within the warehouse's `query_timeout`
    /// and was abandoned (and cancelled by the server where it supports
    /// that). Waiting in line for a free connection counts against the
    /// timeout: `waited` is how long the statement waited before it started,
    /// and equals `timeout` when it never got a connection.
    #[error("query timed out after {}{}", format_timeout(*.timeout), waited_for_connection(*.waited, *.timeout))]
    Timeout { timeout: Duration, waited: Duration },

    /// The warehouse is there but could not serve the statement now (a
    /// SQLite database locked by a writer). Not a sign that it is down.
    #[error("warehouse `{warehouse}` busy: {reason}")]
    Busy { warehouse: String, reason: String },

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
    /// The error with `scrubber`'s secrets taken out of what the driver or
    /// the server said.
    pub(crate) fn scrubbed(self, scrubber: &crate::domain::Scrubber) -> Self {
        match self {
            Self::Busy { warehouse, reason } => Self::Busy {
                warehouse,
                reason: scrubber.scrub(&reason),
            },
            Self::Unavailable { warehouse, reason } => Self::Unavailable {
                warehouse,
                reason: scrubber.scrub(&reason),
            },
            Self::InvalidUrl { warehouse, reason } => Self::InvalidUrl {
                warehouse,
                reason: scrubber.scrub(&reason),
            },
            Self::Decode {
                index,
                type_name,
                reason,
            } => Self::Decode {
                index,
                type_name,
                reason: scrubber.scrub(&reason),
            },
            Self::Query { message } => Self::Query {
                message: scrubber.scrub(&message),
            },
            other => other,
        }
    }

    /// Whether trying again later may succeed (timeouts, a busy warehouse,
    /// lost or refused connections), as opposed to errors in the relation or
    /// the check. Only [`Unavailable`](Self::Unavailable) says the warehouse
    /// may be down.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::Busy { .. } | Self::Unavailable { .. }
        )
    }
}

/// How a timeout message tells that the statement waited in line: nothing
/// when the wait took less than a tenth of the timeout.
fn waited_for_connection(waited: Duration, timeout: Duration) -> String {
    if waited < timeout / 10 {
        String::new()
    } else if waited >= timeout {
        " waiting for a free connection".to_owned()
    } else {
        format!(
            " ({} of it waiting for a free connection)",
            format_timeout(waited)
        )
    }
}

/// What an engine makes of an error its server reported, before it is told
/// as a [`WarehouseError`] (each engine file reads its own codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerError {
    /// The relation (or its schema or database) does not exist: its name.
    TableMissing(String),
    /// A column does not exist: its name.
    ColumnMissing(String),
    /// The server cancelled the statement at its statement timeout.
    Timeout,
    /// The server is there but cannot serve the statement now (locked).
    Busy,
    /// The server refuses the session: connections, shutdown, authentication.
    Unavailable,
    /// Anything else: syntax, permissions, types.
    Other,
}

impl ServerError {
    /// The error of `warehouse`, whose server said `message`; `timeout` is the
    /// query timeout the server enforces.
    pub(crate) fn into_error(
        self,
        warehouse: &str,
        timeout: Duration,
        message: String,
    ) -> WarehouseError {
        match self {
            Self::TableMissing(table) => WarehouseError::TableMissing { table },
            Self::ColumnMissing(column) => WarehouseError::ColumnMissing {
                column,
                table: None,
            },
            Self::Timeout => WarehouseError::Timeout {
                timeout,
                waited: Duration::ZERO,
            },
            Self::Busy => WarehouseError::Busy {
                warehouse: warehouse.to_owned(),
                reason: message,
            },
            Self::Unavailable => WarehouseError::Unavailable {
                warehouse: warehouse.to_owned(),
                reason: message,
            },
            Self::Other => WarehouseError::Query { message },
        }
    }
}

/// The first name quoted in a server message (`relation "x" does not
/// exist`, `Table 'db.x' doesn't exist`), or the whole message.
pub(crate) fn quoted_name(message: &str) -> String {
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
                timeout: Duration::from_secs(60),
                waited: Duration::ZERO,
            }
            .to_string(),
            "query timed out after 60s"
        );
        assert_eq!(
            WarehouseError::Timeout {
                timeout: Duration::from_secs(2),
                waited: Duration::from_secs(2),
            }
            .to_string(),
            "query timed out after 2s waiting for a free connection"
        );
        assert_eq!(
            WarehouseError::Timeout {
                timeout: Duration::from_secs(2),
                waited: Duration::from_millis(1500),
            }
            .to_string(),
            "query timed out after 2s (1.5s of it waiting for a free connection)"
        );
        assert_eq!(
            WarehouseError::Busy {
                warehouse: "main".into(),
                reason: "database is locked".into()
            }
            .to_string(),
            "warehouse `main` busy: database is locked"
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
                timeout: Duration::from_secs(1),
                waited: Duration::ZERO,
            }
            .is_transient()
        );
        assert!(
            WarehouseError::Busy {
                warehouse: "w".into(),
                reason: "r".into()
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
