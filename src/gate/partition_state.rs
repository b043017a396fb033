//! The partition state machine, pure: which moves of a partition's
//! publication state are legal, and what its row becomes after one. The
//! registry stores the row and the log entry this decides.
//!
//! ```text
//!   (none) ──► validating ──► passed ──► published
//!                   │           ▲            │
//!                   ▼           │ override   │ re-gate (backfill): the old
//!              quarantined ─────┘            ▼ publication stays visible
//!                                        validating
//! ```
//!
//! Any state may go back to `validating` when a new gate starts. A gate
//! denied for an error or a timeout (no breach) puts the partition back in
//! the state it had before it (`ledger.rs`), outside this machine: it undoes
//! the gate's own move.

use chrono::{DateTime, Utc};

use crate::domain::PartitionState;
use crate::registry::{PartitionRow, PartitionWrite, TransitionEntry};

/// A requested state change: where to, by whom, and on what grounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange<'a> {
    pub to: PartitionState,
    /// If set, the change applies only while the partition is in this state
    /// (compare-and-set); otherwise only the state machine is consulted.
    pub expected_from: Option<PartitionState>,
    /// Who asks: `gate`, or the token of a publication or an override, …
    pub actor: &'a str,
    /// The gate behind the change. Required to publish: the gate that let
    /// the partition pass.
    pub gate_id: Option<&'a str>,
    /// Why; required for an override of a quarantine.
    pub reason: Option<&'a str>,
    /// Who the request said it came from, when the actor is its token.
    pub note: Option<&'a str>,
}

impl<'a> StateChange<'a> {
    pub fn new(to: PartitionState, actor: &'a str) -> Self {
        Self {
            to,
            expected_from: None,
            actor,
            gate_id: None,
            reason: None,
            note: None,
        }
    }

    /// Applies only while the partition is in `from`.
    pub fn expecting(mut self, from: PartitionState) -> Self {
        self.expected_from = Some(from);
        self
    }

    pub fn gate(mut self, gate_id: &'a str) -> Self {
        self.gate_id = Some(gate_id);
        self
    }

    pub fn reason(mut self, reason: &'a str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn note(mut self, note: Option<&'a str>) -> Self {
        self.note = note;
        self
    }
}

/// Whether the state machine allows `change` from `from`; the error is the
/// reason it does not. `current_gate` is the gate behind the current state.
pub fn check_transition(
    from: Option<PartitionState>,
    current_gate: Option<&str>,
    change: &StateChange<'_>,
) -> Result<(), String> {
    use PartitionState::*;
    if let Some(expected) = change.expected_from
        && from != Some(expected)
    {
        return Err(format!(
            "expected it to be {expected}, but it is {}",
            from.map_or("not yet known", PartitionState::as_str)
        ));
    }
    let given = |s: Option<&str>| s.is_some_and(|s| !s.trim().is_empty());
    match (from, change.to) {
        // A new gate (first gate, re-gate after a fix, backfill of a
        // published partition) always starts over.
        (_, Validating) => Ok(()),
        (Some(Validating), Passed | Quarantined) => Ok(()),
        (Some(Quarantined), Passed) => {
            if given(Some(change.actor)) && given(change.reason) {
                Ok(())
            } else {
                Err(
                    "passing a quarantined partition is an override and needs who and why"
                        .to_owned(),
                )
            }
        }
        (Some(Passed), Published) => match (change.gate_id, current_gate) {
            (None, _) => Err("publishing needs the id of the gate that allowed it".to_owned()),
            (Some(gate), Some(current)) if gate != current => {
                Err(format!("gate {gate} did not pass it; gate {current} did"))
            }
            _ => Ok(()),
        },
        (None, _) => {
            Err("a partition enters the registry as validating, when a gate starts".to_owned())
        }
        (Some(from), to) if from == to => Err(format!("it is already {to}")),
        (Some(Quarantined), Published) => {
            Err("a quarantined partition must pass (by override) first".to_owned())
        }
        (Some(Validating), Published) => {
            Err("a partition must pass its gate before it is published".to_owned())
        }
        (Some(_), to) => Err(format!("only a validating partition can become {to}")),
    }
}

/// What a partition's row and its log become after `change` at `at`, given
/// its current row (`None` when it has none yet) and the state stored in it.
/// The error is why the state machine refuses the change.
pub fn apply<'a>(
    dataset: &'a str,
    partition: &'a str,
    current: Option<(&'a PartitionRow, PartitionState)>,
    change: &StateChange<'a>,
    at: DateTime<Utc>,
) -> Result<(PartitionWrite<'a>, TransitionEntry<'a>), String> {
    let from = current.map(|(_, state)| state);
    let row = current.map(|(row, _)| row);
    let current_gate = row.and_then(|r| r.gate_id.as_deref());
    check_transition(from, current_gate, change)?;
    let gate_id = match change.to {
        PartitionState::Validating => change.gate_id,
        _ => change.gate_id.or(current_gate),
    };
    let (published_gate_id, published_at) = match change.to {
        PartitionState::Published => (change.gate_id, Some(at)),
        _ => (
            row.and_then(|r| r.published_gate_id.as_deref()),
            row.and_then(|r| r.published_at),
        ),
    };
    let write = PartitionWrite {
        dataset,
        partition,
        state: change.to,
        gate_id,
        published_gate_id,
        published_at,
        updated_at: at,
    };
    let entry = TransitionEntry {
        dataset,
        partition,
        from,
        to: change.to,
        at,
        actor: change.actor,
        gate_id: change.gate_id,
        reason: change.reason,
        note: change.note,
    };
    Ok((write, entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use PartitionState::*;

    fn allowed(from: Option<PartitionState>, change: StateChange<'_>) -> bool {
        check_transition(from, Some("g1"), &change).is_ok()
    }

    #[test]
    fn the_state_machine() {
        let by = |to| StateChange::new(to, "gate");
        for from in [
            None,
            Some(Validating),
            Some(Passed),
            Some(Quarantined),
            Some(Published),
        ] {
            assert!(allowed(from, by(Validating)), "{from:?} → validating");
        }
        assert!(allowed(Some(Validating), by(Passed)));
        assert!(allowed(Some(Validating), by(Quarantined)));
        assert!(allowed(Some(Passed), by(Published).gate("g1")));
        assert!(
            !allowed(Some(Passed), by(Published)),
            "publish without a gate"
        );
        assert!(
            !allowed(Some(Passed), by(Published).gate("g0")),
            "publish with another gate"
        );
        assert!(
            !allowed(Some(Quarantined), by(Passed)),
            "override without a reason"
        );
        assert!(!allowed(
            Some(Quarantined),
            StateChange::new(Passed, " ").reason("fixed")
        ));
        assert!(allowed(
            Some(Quarantined),
            StateChange::new(Passed, "ana").reason("late rows expected")
        ));
        for (from, to) in [
            (None, Passed),
            (None, Published),
            (None, Quarantined),
            (Some(Validating), Published),
            (Some(Quarantined), Published),
            (Some(Passed), Quarantined),
            (Some(Passed), Passed),
            (Some(Published), Published),
            (Some(Published), Passed),
            (Some(Published), Quarantined),
        ] {
            assert!(
                !allowed(from, by(to).gate("g1").reason("r")),
                "{from:?} → {to}"
            );
        }
    }

    #[test]
    fn expected_state_must_match() {
        let change = StateChange::new(Passed, "gate").expecting(Validating);
        assert!(check_transition(Some(Validating), None, &change).is_ok());
        let err = check_transition(Some(Quarantined), None, &change).unwrap_err();
        assert_eq!(err, "expected it to be validating, but it is quarantined");
        assert!(
            check_transition(
                None,
                None,
                &StateChange::new(Validating, "g").expecting(Passed)
            )
            .is_err()
        );
    }

    #[test]
    fn a_re_gate_keeps_the_publication_until_the_next_one() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let published = PartitionRow {
            dataset: "orders".into(),
            partition_key: "2026-11-19".into(),
            state: "published".into(),
            gate_id: Some("g1".into()),
            published_gate_id: Some("g1".into()),
            published_at: Some(at),
            updated_at: at,
        };
        let later = at + chrono::Duration::minutes(1);
        let regate = StateChange::new(Validating, "gate").gate("g2");
        let (row, entry) = apply(
            "orders",
            "2026-11-19",
            Some((&published, Published)),
            &regate,
            later,
        )
        .unwrap();
        assert_eq!(row.state, Validating);
        assert_eq!(row.gate_id, Some("g2"));
        assert_eq!(
            (row.published_gate_id, row.published_at),
            (Some("g1"), Some(at))
        );
        assert_eq!((entry.from, entry.to), (Some(Published), Validating));

        // A pass keeps the gate behind the state; publishing records it.
        let mut passed = published.clone();
        passed.state = "passed".into();
        passed.gate_id = Some("g2".into());
        let publish = StateChange::new(Published, "etl").gate("g2");
        let (row, entry) = apply(
            "orders",
            "2026-11-19",
            Some((&passed, Passed)),
            &publish,
            later,
        )
        .unwrap();
        assert_eq!(
            (row.gate_id, row.published_gate_id, row.published_at),
            (Some("g2"), Some("g2"), Some(later))
        );
        assert_eq!((entry.actor, entry.gate_id), ("etl", Some("g2")));

        // An override names no gate: the one behind the state stays.
        let mut quarantined = passed.clone();
        quarantined.state = "quarantined".into();
        let pass = StateChange::new(Passed, "ana").reason("expected");
        let (row, entry) = apply(
            "orders",
            "2026-11-19",
            Some((&quarantined, Quarantined)),
            &pass,
            later,
        )
        .unwrap();
        assert_eq!(row.gate_id, Some("g2"));
        assert_eq!((entry.gate_id, entry.reason), (None, Some("expected")));

        // A refusal says why.
        let err = apply("orders", "2026-11-19", None, &publish, later).unwrap_err();
        assert!(err.contains("enters the registry as validating"), "{err}");
    }
}
