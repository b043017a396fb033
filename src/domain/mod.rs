//! "Parse, don't validate" types: every value that reaches SQL or the
//! registry has been checked by the constructor of one of these types; and
//! secrets, with the one way a value that may hold one is shown
//! (`secret.rs`).

mod access;
mod alert_state;
mod backoff;
mod check_result;
mod gate_status;
mod identifier;
mod instance;
mod names;
mod outcome;
mod partition;
mod partition_state;
mod secret;
mod threshold;

pub use access::{ANONYMOUS, Actor, Caller, Scope, Scopes, TokenDigest};
pub use alert_state::{AlertKind, AlertState};
pub use backoff::Backoff;
pub use check_result::{CheckResult, Expected, Summary};
pub use gate_status::{GateBasis, GateStatus};
pub use identifier::{Identifier, TableRef};
pub use instance::{Instance, hostname};
pub use names::{CheckId, DatasetName, NameError};
pub use outcome::Outcome;
pub use partition::{Granularity, PartitionError, PartitionKey};
pub use partition_state::PartitionState;
pub use secret::{ENCODE_USERINFO, MASK, Scrubber, Secret, redact_url, userinfo_needs_encoding};
pub use threshold::{Ratio, ThresholdError};
