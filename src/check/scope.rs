//! Which part of a dataset one run looks at: the whole relation, one
//! partition (a gate, a backfill), or a scheduled run's latest complete
//! partition.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::spec::{CheckSpec, Dataset};
use crate::domain::PartitionKey;

/// Which part of a dataset one run looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every check, over the whole relation.
    Whole,
    /// Only partition-scoped checks, over one partition: what a gate or a
    /// backfill asks about. Freshness and schema do not run.
    Partition(PartitionKey),
    /// A scheduled run of a partitioned dataset: partition-scoped checks over
    /// the given (latest complete) partition, freshness and schema over the
    /// whole relation.
    Scheduled(PartitionKey),
}

impl Scope {
    /// The scope of a scheduled run at `now`: the whole relation for an
    /// unpartitioned dataset; otherwise the latest complete partition in `tz`
    /// (yesterday for `day`, the previous hour for `hour`).
    pub fn scheduled(ds: &Dataset, now: DateTime<Utc>, tz: Tz) -> Self {
        match &ds.partition {
            None => Self::Whole,
            Some(p) => {
                let local = now.with_timezone(&tz).naive_local();
                Self::Scheduled(PartitionKey::latest_complete(local, p.granularity))
            }
        }
    }

    /// The partition this scope names, if any.
    pub fn partition(&self) -> Option<&PartitionKey> {
        match self {
            Self::Whole => None,
            Self::Partition(p) | Self::Scheduled(p) => Some(p),
        }
    }

    /// What `spec` looks at in this scope: `None` when it does not run,
    /// `Some(None)` for the whole relation, `Some(Some(p))` for partition `p`.
    pub fn target(&self, spec: &CheckSpec) -> Option<Option<PartitionKey>> {
        match self {
            Self::Whole => Some(None),
            Self::Partition(p) => spec.is_partition_scoped().then_some(Some(*p)),
            Self::Scheduled(p) => Some(spec.is_partition_scoped().then_some(*p)),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Whole => f.write_str("whole relation"),
            Self::Partition(p) => write!(f, "partition {p}"),
            Self::Scheduled(p) => write!(f, "scheduled run (partition {p})"),
        }
    }
}
