//! The rules of a gate's status, pure: which denials a repeat evaluates
//! again, what a decision moves the partition to, and what the partition's
//! log says about a quarantine. The words themselves ([`GateStatus`],
//! [`GateBasis`]) are `domain`'s; storing them is the registry's.

use chrono::{DateTime, Utc};

use crate::domain::PartitionState;
pub use crate::domain::{GateBasis, GateStatus};
use crate::registry::GateRecord;

/// The actor of the partition changes a gate makes.
pub const GATE_ACTOR: &str = "gate";

/// The reason recorded for a gate nobody decided by its deadline.
pub const ABANDONED: &str =
    "the agent running this gate stopped before deciding; a new request evaluates again";

/// Partition states reach the log with this reason at most.
const MAX_REASON_CHARS: usize = 2000;

/// Whether a denial on `basis` may go differently if asked again.
pub fn is_retryable(basis: GateBasis) -> bool {
    matches!(basis, GateBasis::Error | GateBasis::Timeout)
}

/// Whether a repeat of `gate`'s request must evaluate again rather than
/// replay it: it was denied for an error or a timeout, or it was abandoned
/// undecided (past its deadline at `now`).
pub fn reevaluates(gate: &GateRecord, now: DateTime<Utc>) -> bool {
    match (gate.status, gate.basis) {
        (GateStatus::Denied, Some(basis)) => is_retryable(basis),
        (GateStatus::Queued | GateStatus::Running, _) => gate.deadline_at <= now,
        _ => false,
    }
}

/// The status a decision gives a gate.
pub fn decided_status(allowed: bool) -> GateStatus {
    if allowed {
        GateStatus::Allowed
    } else {
        GateStatus::Denied
    }
}

/// The state a decision moves the gate's partition to.
pub fn decided_partition_state(allowed: bool) -> PartitionState {
    if allowed {
        PartitionState::Passed
    } else {
        PartitionState::Quarantined
    }
}

/// The reason a quarantine is logged with: the denial's reasons, cut to
/// what the log keeps.
pub fn quarantine_reason(reasons: &[String]) -> String {
    let joined = if reasons.is_empty() {
        "denied".to_owned()
    } else {
        reasons.join("; ")
    };
    if joined.chars().count() <= MAX_REASON_CHARS {
        joined
    } else {
        let mut cut: String = joined.chars().take(MAX_REASON_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// The reason logged when a denial that is no breach returns the partition
/// to its state before gate `gate_id`.
pub fn return_reason(gate_id: &str, decision: &crate::gate::Decision<'_>) -> String {
    let why = quarantine_reason(decision.reasons);
    let mut reason = format!(
        "gate {gate_id} denied on {} (no breach, no quarantine): {why}",
        decision.basis.as_str()
    );
    if reason.chars().count() > MAX_REASON_CHARS {
        reason = reason.chars().take(MAX_REASON_CHARS - 1).collect();
        reason.push('…');
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(status: GateStatus, basis: Option<GateBasis>, deadline_min: i64) -> GateRecord {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        GateRecord {
            gate_id: "g1".into(),
            dataset: "orders".into(),
            partition: "2026-11-20".into(),
            run_id: "r1".into(),
            request_key: None,
            request_hash: String::new(),
            status,
            basis,
            results: Vec::new(),
            reasons: Vec::new(),
            agent: "a".into(),
            created_at: at,
            started_at: None,
            deadline_at: at + chrono::Duration::minutes(deadline_min),
            decided_at: None,
            retried_by: None,
        }
    }

    #[test]
    fn long_quarantine_reasons_are_cut() {
        let reasons = vec!["x".repeat(3000)];
        let reason = quarantine_reason(&reasons);
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS);
        assert!(reason.ends_with('…'));
        assert_eq!(quarantine_reason(&[]), "denied");
        assert_eq!(
            quarantine_reason(&["a".into(), "b".into()]),
            "a; b".to_owned()
        );
    }

    #[test]
    fn retryable_bases() {
        assert!(is_retryable(GateBasis::Error) && is_retryable(GateBasis::Timeout));
        assert!(!is_retryable(GateBasis::Checks) && !is_retryable(GateBasis::Override));
    }

    #[test]
    fn which_repeats_evaluate_again() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        use GateBasis::*;
        use GateStatus::*;
        assert!(reevaluates(&gate(Denied, Some(Error), 5), now));
        assert!(reevaluates(&gate(Denied, Some(Timeout), 5), now));
        assert!(!reevaluates(&gate(Denied, Some(Checks), 5), now));
        assert!(!reevaluates(&gate(Allowed, Some(Checks), 5), now));
        assert!(!reevaluates(&gate(Allowed, Some(Override), -5), now));
        assert!(!reevaluates(&gate(Running, None, 5), now), "under way");
        assert!(reevaluates(&gate(Running, None, 0), now), "abandoned");
        assert!(reevaluates(&gate(Queued, None, -1), now), "abandoned");
    }
}
