//! What gate, publication and override requests can fail with. Each variant
//! maps to one HTTP status (see [`GateError::status`]).

use crate::registry::RegistryError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// A request field is malformed (400); `field` names it as the client
    /// wrote it (`partition`, `run_id`, `Idempotency-Key`, …).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },

    /// The request names no configured dataset (404).
    #[error("unknown dataset `{dataset}`")]
    UnknownDataset { dataset: String },

    /// No gate has this id (404).
    #[error("no gate has the id `{gate_id}`")]
    UnknownGate { gate_id: String },

    /// No gate ever saw this partition (404).
    #[error("{dataset} partition `{partition}` has never been gated")]
    UnknownPartition { dataset: String, partition: String },

    /// Nothing of the dataset has been published yet (404).
    #[error("no partition of {dataset} has been published yet")]
    NothingPublished { dataset: String },

    /// The `Idempotency-Key` was first sent with another request body (422).
    #[error(
        "Idempotency-Key `{key}` was first used for another request (gate {gate_id}); \
         use a new key for a new request"
    )]
    KeyReused { key: String, gate_id: String },

    /// The partition's state does not allow the change (409): publishing
    /// without an allow, overriding a partition that is not quarantined, …
    #[error("{0}")]
    Conflict(String),

    /// The registry cannot be reached (503). A gate denies: fail closed.
    #[error(transparent)]
    Unavailable(RegistryError),

    /// The registry failed otherwise (500).
    #[error(transparent)]
    Registry(RegistryError),
}

impl GateError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid { .. } => 400,
            Self::UnknownDataset { .. }
            | Self::UnknownGate { .. }
            | Self::UnknownPartition { .. }
            | Self::NothingPublished { .. } => 404,
            Self::Conflict(_) => 409,
            Self::KeyReused { .. } => 422,
            Self::Unavailable(_) => 503,
            Self::Registry(_) => 500,
        }
    }

    /// Whether asking again later may succeed (the registry was down).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<RegistryError> for GateError {
    fn from(e: RegistryError) -> Self {
        match e {
            e if e.is_unavailable() => Self::Unavailable(e),
            e @ RegistryError::IllegalTransition { .. } => Self::Conflict(e.to_string()),
            e => Self::Registry(e),
        }
    }
}
