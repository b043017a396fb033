//! The publication gate: a pipeline stages a partition, asks the gate, and
//! publishes only on an allow (stage → validate → publish).
//!
//! [`GateService`] owns the whole life of a gate, independent of HTTP:
//! validating the request against the configuration (`request.rs`), finding
//! the gate a repeat asks about (idempotency by dataset, partition and run
//! id, or by `Idempotency-Key`), running the dataset's checks against its
//! `gate.table` one gate per partition at a time, judging the results
//! (`decision.rs`), recording the decision together with the partition's
//! state, and telling the owner of a quarantined partition
//! (`quarantine.rs`; the alert itself is recorded with the decision). Every
//! failure denies: a registry that is down, a warehouse that errors, a gate
//! that outlives its deadline, an agent that stops mid-gate (recovered when
//! it starts again, and swept by any agent sharing the registry). Only a
//! breach quarantines: a denial for an error or a timeout returns the
//! partition to its state before the gate. An empty partition is a breach
//! unless `gate.allow_empty`; a partition later than the current one is
//! refused; a caller waits 1 s to 5 min ([`MIN_WAIT`], [`MAX_WAIT`]).
//!
//! The rules are plain Rust here: `status.rs` (which denials a repeat
//! evaluates again, what a decision does to the partition),
//! `partition_state.rs` (the partition state machine) and `ledger.rs` (each
//! operation as one registry transaction: read the rows, decide, have the
//! registry write what was decided). The state of record is the registry;
//! the service keeps in memory only what a running gate is doing now (its
//! progress), so that waiting callers are woken the moment it is decided.

mod decision;
mod error;
mod ledger;
pub mod partition_state;
mod quarantine;
mod request;
mod service;
pub mod status;

pub use error::GateError;
pub use ledger::{Admission, Decided, Decision, NewGate, Start, apply_transition, repeat_of};
pub use partition_state::StateChange;
pub use quarantine::{LogQuarantine, Quarantine, QuarantineHook, Release};
pub use request::{GateRequest, MAX_REQUEST_KEY, MAX_RUN_ID};
pub use service::{
    ABANDONED_AFTER, DECISION_MARGIN, GateOptions, GateService, OverrideRequest, PartitionView,
    PublishRequest,
};
pub use status::{ABANDONED, GATE_ACTOR, GateBasis, GateStatus};

pub use crate::domain::PartitionState;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::check::CheckResult;
use crate::registry::GateRecord;

/// The shortest wait for a decision a caller may ask for (`?wait=`,
/// `warden gate --wait`): less would deny at once, for no data at all.
pub const MIN_WAIT: Duration = Duration::from_secs(1);
/// The longest wait for a decision a caller may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// Whether `wait` is a wait a caller may ask for; the error says what is.
pub fn check_wait(wait: Duration) -> Result<Duration, String> {
    if (MIN_WAIT..=MAX_WAIT).contains(&wait) {
        Ok(wait)
    } else {
        Err(format!(
            "{} is not between {} and {}",
            humantime::format_duration(wait),
            humantime::format_duration(MIN_WAIT),
            humantime::format_duration(MAX_WAIT)
        ))
    }
}

/// A gate as callers see it (`GET /api/v1/gates/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Gate {
    pub gate_id: String,
    pub dataset: String,
    pub partition: String,
    pub run_id: String,
    pub status: GateStatus,
    /// What the decision rests on; `None` until decided.
    pub basis: Option<GateBasis>,
    /// From 0 (queued) to 1 (decided).
    pub progress: f64,
    /// Every check the gate ran, with its outcome and message.
    pub results: Vec<CheckResult>,
    /// Why it was denied (or overridden), one sentence each.
    pub reasons: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The gate that evaluated this request again after this one was denied
    /// for an error or a timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retried_by: Option<String>,
    /// Why the decision could not be recorded (the registry was down): the
    /// gate is denied, and callers are answered 503.
    #[serde(skip)]
    unrecorded: Option<String>,
}

impl Gate {
    /// Allowed or denied.
    pub fn is_decided(&self) -> bool {
        self.status.is_decided()
    }

    /// Why the gate's denial could not be written to the registry, if so.
    pub fn unrecorded(&self) -> Option<&str> {
        self.unrecorded.as_deref()
    }
}

impl From<GateRecord> for Gate {
    fn from(r: GateRecord) -> Self {
        let progress = if r.status.is_decided() { 1.0 } else { 0.0 };
        Self {
            gate_id: r.gate_id,
            dataset: r.dataset,
            partition: r.partition,
            run_id: r.run_id,
            status: r.status,
            basis: r.basis,
            progress,
            results: r.results,
            reasons: r.reasons,
            created_at: r.created_at,
            decided_at: r.decided_at,
            retried_by: r.retried_by,
            unrecorded: None,
        }
    }
}
