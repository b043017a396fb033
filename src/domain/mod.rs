//! "Parse, don't validate" types: every value that reaches SQL or the
//! registry has been checked by the constructor of one of these types.

mod backoff;
mod identifier;
mod instance;
mod names;
mod partition;
mod threshold;

pub use backoff::Backoff;
pub use identifier::{Identifier, TableRef};
pub use instance::{Instance, hostname};
pub use names::{CheckId, DatasetName, NameError};
pub use partition::{Granularity, PartitionError, PartitionKey};
pub use threshold::{Ratio, ThresholdError};
