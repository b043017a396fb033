//! Registry errors, and how database errors are worded for people.

use crate::domain::{PartitionState, Scrubber};

/// Everything the registry can fail with. Messages name the registry by its
/// URL with any password replaced by `***`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The URL names neither SQLite (`sqlite://path`) nor PostgreSQL
    /// (`postgres://…`), or cannot be parsed.
    #[error("registry URL `{url}` is not usable: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// The registry could not be reached or opened when warden started.
    #[error("registry {url} unreachable: {reason}")]
    Unreachable { url: String, reason: String },

    /// The embedded schema migrations could not be applied, for example
    /// because the database holds a newer schema than this build knows.
    #[error("registry {url}: applying the schema failed: {error}")]
    Migration {
        url: String,
        error: sqlx::migrate::MigrateError,
    },

    /// Another agent already runs on this SQLite registry. A SQLite registry
    /// serves one agent; several agents share a PostgreSQL registry.
    #[error(
        "registry {url} is in use by another warden agent ({holder}): a SQLite registry serves \
         one agent. Stop the other agent, or run several agents on a PostgreSQL registry"
    )]
    InUse { url: String, holder: String },

    /// The connection to the registry was lost or no connection was free in
    /// time. The API answers 503 and the gate denies (fail closed).
    #[error("registry unavailable during {op}: {reason}")]
    Unavailable { op: &'static str, reason: String },

    /// A statement failed, e.g. a stored value broke a constraint. Nothing of
    /// the operation it belongs to was kept.
    #[error("registry {op} failed: {error}")]
    Query {
        op: &'static str,
        error: sqlx::Error,
    },

    /// A partition state change the state machine does not allow, or whose
    /// expected current state did not match (HTTP 409).
    #[error(
        "illegal transition of {dataset} partition `{partition}` from {} to {to}: {reason}",
        from.map_or("no state", PartitionState::as_str)
    )]
    IllegalTransition {
        dataset: String,
        partition: String,
        /// The state the partition was in, `None` if it had none.
        from: Option<PartitionState>,
        to: PartitionState,
        reason: String,
    },

    /// The row an update names does not exist (or is no longer in a state
    /// the update applies to).
    #[error("not found in the registry: {what}")]
    NotFound { what: String },

    /// A stored value could not be read back (an unknown enum value or
    /// malformed JSON), i.e. the database was changed by something else.
    #[error("registry holds an unreadable value: {what}")]
    Corrupt { what: String },
}

impl RegistryError {
    /// The error with `scrubber`'s secrets taken out of what the driver said.
    pub(crate) fn scrubbed(self, scrubber: &Scrubber) -> Self {
        match self {
            Self::InvalidUrl { url, reason } => Self::InvalidUrl {
                url,
                reason: scrubber.scrub(&reason),
            },
            Self::Unreachable { url, reason } => Self::Unreachable {
                url,
                reason: scrubber.scrub(&reason),
            },
            other => other,
        }
    }

    /// Whether the registry itself is down (as opposed to a bad request or
    /// bad data), so callers can answer 503 and retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Unavailable { .. })
    }
}

/// Attaches the operation name to a sqlx error and sorts it into
/// [`RegistryError::Unavailable`] or [`RegistryError::Query`].
pub(crate) trait OpContext<T> {
    fn op(self, op: &'static str) -> Result<T, RegistryError>;
}

impl<T> OpContext<T> for Result<T, sqlx::Error> {
    fn op(self, op: &'static str) -> Result<T, RegistryError> {
        self.map_err(|error| {
            if is_connection_error(&error) {
                RegistryError::Unavailable {
                    op,
                    reason: describe(&error),
                }
            } else {
                RegistryError::Query { op, error }
            }
        })
    }
}

fn is_connection_error(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// A short, lower-case account of why a connection failed:
/// `connection refused`, `password authentication failed for user "x"`.
pub(crate) fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(e) => describe_io(e),
        sqlx::Error::Tls(e) => format!("TLS handshake failed: {e}"),
        sqlx::Error::Database(e) => e.message().to_owned(),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_owned(),
        sqlx::Error::PoolClosed => "the connection pool is closed".to_owned(),
        sqlx::Error::Configuration(e) => format!("invalid connection settings: {e}"),
        other => other.to_string(),
    }
}

fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::ConnectionReset => "connection reset".to_owned(),
        ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
        ErrorKind::TimedOut => "connection timed out".to_owned(),
        ErrorKind::NotFound => format!("not found ({e})"),
        ErrorKind::PermissionDenied => format!("permission denied ({e})"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_worded_plainly() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(describe(&refused), "connection refused");
        let err = Err::<(), _>(refused).op("ping").unwrap_err();
        assert!(err.is_unavailable());
        assert_eq!(
            err.to_string(),
            "registry unavailable during ping: connection refused"
        );
    }

    #[test]
    fn illegal_transitions_name_both_states() {
        let err = RegistryError::IllegalTransition {
            dataset: "orders".into(),
            partition: "2026-11-20".into(),
            from: None,
            to: PartitionState::Published,
            reason: "a partition starts in validating".into(),
        };
        assert_eq!(
            err.to_string(),
            "illegal transition of orders partition `2026-11-20` from no state to published: \
             a partition starts in validating"
        );
    }
}
