//! Publication state of partitions: the stage → validate → publish state
//! machine, with an append-only log of every change.
//!
//! ```text
//!   (none) ──► validating ──► passed ──► published
//!                   │           ▲            │
//!                   ▼           │ override   │ re-gate (backfill): the old
//!              quarantined ─────┘            ▼ publication stays visible
//!                                        validating
//! ```
//!
//! Any state may go back to `validating` when a new gate starts.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::OpContext;
use super::{Registry, RegistryError, now};
use crate::domain::DatasetName;
use crate::warehouse::Engine;

/// Where a partition stands on its way to consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionState {
    /// A gate is checking the staged data.
    Validating,
    /// The gate allowed it (or a person overrode a quarantine); it may be
    /// published.
    Passed,
    /// The gate denied it; it waits for a fix (a new gate) or an override.
    Quarantined,
    /// Consumers read it.
    Published,
}

impl PartitionState {
    pub const ALL: [PartitionState; 4] = [
        Self::Validating,
        Self::Passed,
        Self::Quarantined,
        Self::Published,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validating => "validating",
            Self::Passed => "passed",
            Self::Quarantined => "quarantined",
            Self::Published => "published",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

impl fmt::Display for PartitionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A requested state change: where to, by whom, and on what grounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange<'a> {
    pub to: PartitionState,
    /// If set, the change applies only while the partition is in this state
    /// (compare-and-set); otherwise only the state machine is consulted.
    pub expected_from: Option<PartitionState>,
    /// If set, the change applies only while this gate is behind the current
    /// state: a gate's decision never lands on a partition a newer gate took.
    pub expected_gate: Option<&'a str>,
    /// Who asks: `gate`, a user name from an override, …
    pub actor: &'a str,
    /// The gate behind the change. Required to publish: the gate that let
    /// the partition pass.
    pub gate_id: Option<&'a str>,
    /// Why; required for an override of a quarantine.
    pub reason: Option<&'a str>,
}

impl<'a> StateChange<'a> {
    pub fn new(to: PartitionState, actor: &'a str) -> Self {
        Self {
            to,
            expected_from: None,
            expected_gate: None,
            actor,
            gate_id: None,
            reason: None,
        }
    }

    /// Applies only while the partition is in `from`.
    pub fn expecting(mut self, from: PartitionState) -> Self {
        self.expected_from = Some(from);
        self
    }

    /// Applies only while `gate_id` is the gate behind the current state.
    pub fn expecting_gate(mut self, gate_id: &'a str) -> Self {
        self.expected_gate = Some(gate_id);
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
}

/// One entry of a partition's transition log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// `None` for the partition's first state.
    pub from: Option<PartitionState>,
    pub to: PartitionState,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub gate_id: Option<String>,
    pub reason: Option<String>,
}

/// A partition's state, its last publication, and its history oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionRecord {
    pub dataset: String,
    pub partition: String,
    pub state: PartitionState,
    /// The gate behind the current state.
    pub gate_id: Option<String>,
    /// The gate of the last publication; kept while a re-gate runs, so
    /// consumers keep reading the published data.
    pub published_gate_id: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub history: Vec<Transition>,
}

/// The newest partition of a dataset that consumers may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedPartition {
    pub dataset: String,
    pub partition: String,
    pub gate_id: String,
    pub published_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(super) struct PartitionRow {
    pub(super) dataset: String,
    pub(super) partition_key: String,
    pub(super) state: String,
    pub(super) gate_id: Option<String>,
    pub(super) published_gate_id: Option<String>,
    pub(super) published_at: Option<DateTime<Utc>>,
    pub(super) updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TransitionRow {
    from_state: Option<String>,
    to_state: String,
    at: DateTime<Utc>,
    actor: String,
    gate_id: Option<String>,
    reason: Option<String>,
}

pub(super) fn parse_state(s: &str) -> Result<PartitionState, RegistryError> {
    PartitionState::parse(s).ok_or_else(|| RegistryError::Corrupt {
        what: format!("partition state `{s}`"),
    })
}

impl TransitionRow {
    fn into_transition(self) -> Result<Transition, RegistryError> {
        Ok(Transition {
            from: self.from_state.as_deref().map(parse_state).transpose()?,
            to: parse_state(&self.to_state)?,
            at: self.at,
            actor: self.actor,
            gate_id: self.gate_id,
            reason: self.reason,
        })
    }
}

/// Whether the state machine allows `change` from `from`; the error is the
/// reason it does not. `current_gate` is the gate behind the current state.
pub(super) fn check_transition(
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
    if let Some(expected) = change.expected_gate
        && current_gate != Some(expected)
    {
        return Err(format!(
            "gate {expected} is no longer behind it; {}",
            current_gate.map_or("no gate is".to_owned(), |g| format!("gate {g} is"))
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

const PARTITION_COLUMNS: &str =
    "dataset, partition_key, state, gate_id, published_gate_id, published_at, updated_at";

/// The operation name of a partition transition, in errors.
pub(super) const TRANSITION: &str = "partition transition";

/// The statement that reads a partition's row before changing it.
/// PostgreSQL: lock the row so concurrent changes queue behind this one.
/// SQLite: `BEGIN IMMEDIATE` already holds the write lock.
pub(super) fn select_for_update(engine: Engine) -> String {
    match engine {
        Engine::Postgres => format!(
            "SELECT {PARTITION_COLUMNS} FROM partitions WHERE dataset = $1 AND partition_key = $2 FOR UPDATE"
        ),
        _ => format!(
            "SELECT {PARTITION_COLUMNS} FROM partitions WHERE dataset = $1 AND partition_key = $2"
        ),
    }
}

/// The error when a partition's first row kept being inserted by someone
/// else while a change was being applied.
pub(super) fn lost_race(
    dataset: &DatasetName,
    partition: &str,
    to: PartitionState,
) -> RegistryError {
    RegistryError::IllegalTransition {
        dataset: dataset.to_string(),
        partition: partition.to_owned(),
        from: None,
        to,
        reason: "the partition kept changing concurrently; retry".to_owned(),
    }
}

/// Applies a [`StateChange`] inside the open transaction `$tx` (see
/// `in_transaction!`), so that callers can change a partition together with
/// other rows (a gate's decision). Evaluates to `false` when the partition's
/// first row was inserted concurrently and the change must be retried;
/// returns early with [`RegistryError::IllegalTransition`] when the state
/// machine refuses the change (dropping, hence rolling back, `$tx`).
macro_rules! apply_transition {
    ($tx:ident, $select:expr, $dataset:expr, $partition:expr, $change:expr, $at:expr) => {{
        use $crate::registry::error::OpContext as _;
        let dataset: &$crate::domain::DatasetName = $dataset;
        let partition: &str = $partition;
        let current: Option<$crate::registry::partitions::PartitionRow> = sqlx::query_as($select)
            .bind(dataset.as_str())
            .bind(partition)
            .fetch_optional(&mut *$tx)
            .await
            .op($crate::registry::partitions::TRANSITION)?;
        $crate::registry::partitions::apply_transition_from!(
            $tx, current, dataset, partition, $change, $at
        )
    }};
}
pub(super) use apply_transition;

/// Like `apply_transition!`, for a caller that has already read the
/// partition's row (`$current`, `None` when there is none) with
/// [`select_for_update`] in the same transaction.
macro_rules! apply_transition_from {
    ($tx:ident, $current:expr, $dataset:expr, $partition:expr, $change:expr, $at:expr) => {{
        use $crate::registry::error::OpContext as _;
        use $crate::registry::partitions::{PartitionRow, check_transition, parse_state, TRANSITION};
        let dataset: &$crate::domain::DatasetName = $dataset;
        let partition: &str = $partition;
        let change: &$crate::registry::StateChange<'_> = $change;
        let at: chrono::DateTime<chrono::Utc> = $at;
        let current: Option<PartitionRow> = $current;
        let from = current
            .as_ref()
            .map(|row| parse_state(&row.state))
            .transpose()?;
        let current_gate = current.as_ref().and_then(|row| row.gate_id.as_deref());
        check_transition(from, current_gate, change).map_err(|reason| {
            $crate::registry::RegistryError::IllegalTransition {
                dataset: dataset.to_string(),
                partition: partition.to_owned(),
                from,
                to: change.to,
                reason,
            }
        })?;
        let gate_id = match change.to {
            $crate::registry::PartitionState::Validating => change.gate_id,
            _ => change.gate_id.or(current_gate),
        };
        let (published_gate_id, published_at) = match change.to {
            $crate::registry::PartitionState::Published => (change.gate_id, Some(at)),
            _ => (
                current
                    .as_ref()
                    .and_then(|row| row.published_gate_id.as_deref()),
                current.as_ref().and_then(|row| row.published_at),
            ),
        };
        let written = match from {
            None => sqlx::query(
                "INSERT INTO partitions (dataset, partition_key, state, gate_id, published_gate_id, \
                 published_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (dataset, partition_key) DO NOTHING",
            )
            .bind(dataset.as_str())
            .bind(partition)
            .bind(change.to.as_str())
            .bind(gate_id)
            .bind(published_gate_id)
            .bind(published_at)
            .bind(at)
            .execute(&mut *$tx)
            .await
            .op(TRANSITION)?,
            Some(from) => sqlx::query(
                "UPDATE partitions SET state = $3, gate_id = $4, published_gate_id = $5, \
                 published_at = $6, updated_at = $7 \
                 WHERE dataset = $1 AND partition_key = $2 AND state = $8",
            )
            .bind(dataset.as_str())
            .bind(partition)
            .bind(change.to.as_str())
            .bind(gate_id)
            .bind(published_gate_id)
            .bind(published_at)
            .bind(at)
            .bind(from.as_str())
            .execute(&mut *$tx)
            .await
            .op(TRANSITION)?,
        };
        let applied = written.rows_affected() == 1;
        if applied {
            sqlx::query(
                "INSERT INTO partition_transitions (dataset, partition_key, from_state, to_state, at, \
                 actor, gate_id, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(dataset.as_str())
            .bind(partition)
            .bind(from.map($crate::registry::PartitionState::as_str))
            .bind(change.to.as_str())
            .bind(at)
            .bind(change.actor)
            .bind(change.gate_id)
            .bind(change.reason)
            .execute(&mut *$tx)
            .await
            .op(TRANSITION)?;
        }
        applied
    }};
}
pub(super) use apply_transition_from;

impl Registry {
    /// A partition's state and history, or `None` if no gate ever saw it.
    pub async fn partition(
        &self,
        dataset: &DatasetName,
        partition: &str,
    ) -> Result<Option<PartitionRecord>, RegistryError> {
        const OP: &str = "partition state";
        let sql = format!(
            "SELECT {PARTITION_COLUMNS} FROM partitions WHERE dataset = $1 AND partition_key = $2"
        );
        let history_sql = "SELECT from_state, to_state, at, actor, gate_id, reason FROM partition_transitions \
                           WHERE dataset = $1 AND partition_key = $2 ORDER BY id";
        let (row, history): (Option<PartitionRow>, Vec<TransitionRow>) = on_pool!(self, |pool| {
            let row = sqlx::query_as(&sql)
                .bind(dataset.as_str())
                .bind(partition)
                .fetch_optional(pool)
                .await
                .op(OP)?;
            let history = sqlx::query_as(history_sql)
                .bind(dataset.as_str())
                .bind(partition)
                .fetch_all(pool)
                .await
                .op(OP)?;
            (row, history)
        });
        let Some(row) = row else { return Ok(None) };
        Ok(Some(PartitionRecord {
            state: parse_state(&row.state)?,
            dataset: row.dataset,
            partition: row.partition_key,
            gate_id: row.gate_id,
            published_gate_id: row.published_gate_id,
            published_at: row.published_at,
            updated_at: row.updated_at,
            history: history
                .into_iter()
                .map(TransitionRow::into_transition)
                .collect::<Result<_, _>>()?,
        }))
    }

    /// Moves a partition to `change.to` if the state machine allows it, and
    /// logs the change, atomically. A refused change is
    /// [`RegistryError::IllegalTransition`] and leaves everything as it was.
    pub async fn transition(
        &self,
        dataset: &DatasetName,
        partition: &str,
        change: StateChange<'_>,
    ) -> Result<(), RegistryError> {
        let select = select_for_update(self.engine());
        // Two first gates may race to insert the row; the loser re-reads it
        // and is judged against the winner's state.
        for _ in 0..3 {
            let at = now();
            let applied: bool = in_transaction!(self, TRANSITION, |tx| {
                apply_transition!(tx, &select, dataset, partition, &change, at)
            });
            if applied {
                return Ok(());
            }
        }
        Err(lost_race(dataset, partition, change.to))
    }

    /// The newest partition (by key) of a dataset with a publication, even if
    /// it is being re-gated: what consumers read.
    pub async fn latest_published(
        &self,
        dataset: &DatasetName,
    ) -> Result<Option<PublishedPartition>, RegistryError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            partition_key: String,
            published_gate_id: String,
            published_at: DateTime<Utc>,
        }
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT partition_key, published_gate_id, published_at FROM partitions \
             WHERE dataset = $1 AND published_gate_id IS NOT NULL AND published_at IS NOT NULL \
             ORDER BY partition_key DESC LIMIT 1"
        )
        .bind(dataset.as_str())
        .fetch_optional(pool)
        .await
        .op("latest published partition"))?;
        Ok(row.map(|r| PublishedPartition {
            dataset: dataset.to_string(),
            partition: r.partition_key,
            gate_id: r.published_gate_id,
            published_at: r.published_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::PartitionState::*;
    use super::*;

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
}
