//! Partition states as stored: one row per partition (its state, the gate
//! behind it, its last publication) and an append-only log of every change.
//! Which changes are legal is `gate::partition_state`'s rule; the functions
//! here read and write the rows inside the transaction the caller opened.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::{Tx, query};
use super::{Registry, RegistryError};
use crate::domain::{DatasetName, PartitionState};
use crate::warehouse::Engine;

/// One entry of a partition's transition log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Transition {
    /// `None` for the partition's first state.
    pub from: Option<PartitionState>,
    pub to: PartitionState,
    pub at: DateTime<Utc>,
    /// Who made the change: `gate`, or the name of the API token it came
    /// with (what the request said, when no tokens are configured).
    pub actor: String,
    pub gate_id: Option<String>,
    pub reason: Option<String>,
    /// Who the request said it came from (`by`), when a token named the actor.
    pub note: Option<String>,
}

/// A partition's state, its last publication, and its history oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PublishedPartition {
    pub dataset: String,
    pub partition: String,
    pub gate_id: String,
    pub published_at: DateTime<Utc>,
}

/// A partition's row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PartitionRow {
    pub dataset: String,
    pub partition_key: String,
    pub state: String,
    pub gate_id: Option<String>,
    pub published_gate_id: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TransitionRow {
    from_state: Option<String>,
    to_state: String,
    at: DateTime<Utc>,
    actor: String,
    gate_id: Option<String>,
    reason: Option<String>,
    note: Option<String>,
}

fn parse_state(s: &str) -> Result<PartitionState, RegistryError> {
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
            note: self.note,
        })
    }
}

const PARTITION_COLUMNS: &str =
    "dataset, partition_key, state, gate_id, published_gate_id, published_at, updated_at";

/// The operation name of a partition transition, in errors.
pub const TRANSITION: &str = "partition transition";

/// A partition's row as it is about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionWrite<'a> {
    pub dataset: &'a str,
    pub partition: &'a str,
    pub state: PartitionState,
    pub gate_id: Option<&'a str>,
    pub published_gate_id: Option<&'a str>,
    pub published_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// One entry to append to a partition's transition log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionEntry<'a> {
    pub dataset: &'a str,
    pub partition: &'a str,
    pub from: Option<PartitionState>,
    pub to: PartitionState,
    pub at: DateTime<Utc>,
    pub actor: &'a str,
    pub gate_id: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub note: Option<&'a str>,
}

/// The error when a partition's first row kept being inserted by someone
/// else while a change was being applied.
pub fn lost_race(dataset: &DatasetName, partition: &str, to: PartitionState) -> RegistryError {
    RegistryError::IllegalTransition {
        dataset: dataset.to_string(),
        partition: partition.to_owned(),
        from: None,
        to,
        reason: "the partition kept changing concurrently; retry".to_owned(),
    }
}

impl PartitionRow {
    /// The stored state.
    pub fn state(&self) -> Result<PartitionState, RegistryError> {
        parse_state(&self.state)
    }
}

impl Tx {
    /// A partition's row, read to be changed in this transaction. PostgreSQL:
    /// the row is locked so concurrent changes queue behind this one; SQLite:
    /// `BEGIN IMMEDIATE` already holds the write lock.
    pub async fn partition_for_update(
        &mut self,
        dataset: &str,
        partition: &str,
    ) -> Result<Option<PartitionRow>, RegistryError> {
        let lock = match self.engine() {
            Engine::Postgres => " FOR UPDATE",
            _ => "",
        };
        let sql = format!(
            "SELECT {PARTITION_COLUMNS} FROM partitions WHERE dataset = $1 AND partition_key = $2{lock}"
        );
        query(&sql)
            .bind(dataset)
            .bind(partition)
            .fetch_optional(self, TRANSITION)
            .await
    }

    /// Writes a partition's row: inserts it when it had none (`from` is
    /// `None`), else updates it while it is still in `from`. `false` when
    /// nothing was written (another writer came first).
    pub async fn write_partition(
        &mut self,
        row: &PartitionWrite<'_>,
        from: Option<PartitionState>,
    ) -> Result<bool, RegistryError> {
        let written = match from {
            None => {
                query(
                    "INSERT INTO partitions (dataset, partition_key, state, gate_id, published_gate_id, \
                     published_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (dataset, partition_key) DO NOTHING",
                )
                .bind(row.dataset)
                .bind(row.partition)
                .bind(row.state.as_str())
                .bind(row.gate_id)
                .bind(row.published_gate_id)
                .bind(row.published_at)
                .bind(row.updated_at)
                .execute(self, TRANSITION)
                .await?
            }
            Some(from) => {
                query(
                    "UPDATE partitions SET state = $3, gate_id = $4, published_gate_id = $5, \
                     published_at = $6, updated_at = $7 \
                     WHERE dataset = $1 AND partition_key = $2 AND state = $8",
                )
                .bind(row.dataset)
                .bind(row.partition)
                .bind(row.state.as_str())
                .bind(row.gate_id)
                .bind(row.published_gate_id)
                .bind(row.published_at)
                .bind(row.updated_at)
                .bind(from.as_str())
                .execute(self, TRANSITION)
                .await?
            }
        };
        Ok(written == 1)
    }

    /// Moves a partition that `gate_id` holds in `validating` to `to`,
    /// keeping its publication; `false` when the gate no longer holds it.
    pub async fn move_held_partition(
        &mut self,
        dataset: &str,
        partition: &str,
        gate_id: &str,
        to: PartitionState,
        at: DateTime<Utc>,
        op: &'static str,
    ) -> Result<bool, RegistryError> {
        let moved = query(
            "UPDATE partitions SET state = $3, updated_at = $4 \
             WHERE dataset = $1 AND partition_key = $2 AND state = 'validating' AND gate_id = $5",
        )
        .bind(dataset)
        .bind(partition)
        .bind(to.as_str())
        .bind(at)
        .bind(gate_id)
        .execute(self, op)
        .await?;
        Ok(moved == 1)
    }

    /// What a partition was before `gate_id` took it, from its log: `None`
    /// when the gate never took it; `Some(None)` when the partition had no
    /// row before; else its state then and the gate behind that state.
    pub async fn state_before_gate(
        &mut self,
        dataset: &str,
        partition: &str,
        gate_id: &str,
        op: &'static str,
    ) -> Result<Option<Option<(PartitionState, Option<String>)>>, RegistryError> {
        #[derive(sqlx::FromRow)]
        struct Before {
            from_state: Option<String>,
            previous_gate: Option<String>,
        }
        let before: Option<Before> = query(
            "SELECT t.from_state, p.gate_id AS previous_gate FROM partition_transitions t \
             LEFT JOIN partition_transitions p ON p.id = (SELECT max(e.id) FROM \
             partition_transitions e WHERE e.dataset = t.dataset \
             AND e.partition_key = t.partition_key AND e.id < t.id) \
             WHERE t.dataset = $1 AND t.partition_key = $2 AND t.gate_id = $3 \
             AND t.to_state = 'validating' ORDER BY t.id DESC LIMIT 1",
        )
        .bind(dataset)
        .bind(partition)
        .bind(gate_id)
        .fetch_optional(self, op)
        .await?;
        let Some(before) = before else {
            return Ok(None);
        };
        Ok(Some(match before.from_state {
            None => None,
            Some(state) => Some((parse_state(&state)?, before.previous_gate)),
        }))
    }

    /// Puts a partition that `gate_id` holds in `validating` back to `to`
    /// (a state and the gate behind it), keeping its publication; with
    /// `None`, removes its row and its log (it had none before the gate).
    /// `false` when the gate no longer holds it.
    pub async fn return_held_partition(
        &mut self,
        dataset: &str,
        partition: &str,
        gate_id: &str,
        to: Option<(PartitionState, Option<&str>)>,
        at: DateTime<Utc>,
        op: &'static str,
    ) -> Result<bool, RegistryError> {
        let changed = match to {
            Some((state, behind)) => {
                query(
                    "UPDATE partitions SET state = $3, gate_id = $4, updated_at = $5 \
                     WHERE dataset = $1 AND partition_key = $2 AND state = 'validating' \
                     AND gate_id = $6",
                )
                .bind(dataset)
                .bind(partition)
                .bind(state.as_str())
                .bind(behind)
                .bind(at)
                .bind(gate_id)
                .execute(&mut *self, op)
                .await?
            }
            None => {
                let deleted = query(
                    "DELETE FROM partitions WHERE dataset = $1 AND partition_key = $2 \
                     AND state = 'validating' AND gate_id = $3",
                )
                .bind(dataset)
                .bind(partition)
                .bind(gate_id)
                .execute(&mut *self, op)
                .await?;
                if deleted == 1 {
                    // As if never gated: its log goes with it.
                    query(
                        "DELETE FROM partition_transitions WHERE dataset = $1 AND partition_key = $2",
                    )
                    .bind(dataset)
                    .bind(partition)
                    .execute(&mut *self, op)
                    .await?;
                }
                deleted
            }
        };
        Ok(changed == 1)
    }

    /// Appends to a partition's transition log.
    pub async fn log_transition(
        &mut self,
        entry: &TransitionEntry<'_>,
        op: &'static str,
    ) -> Result<(), RegistryError> {
        query(
            "INSERT INTO partition_transitions (dataset, partition_key, from_state, to_state, at, \
             actor, gate_id, reason, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(entry.dataset)
        .bind(entry.partition)
        .bind(entry.from.map(PartitionState::as_str))
        .bind(entry.to.as_str())
        .bind(entry.at)
        .bind(entry.actor)
        .bind(entry.gate_id)
        .bind(entry.reason)
        .bind(entry.note)
        .execute(self, op)
        .await?;
        Ok(())
    }

    /// The gate behind a partition's current state, if it has a row and one.
    pub async fn partition_gate(
        &mut self,
        dataset: &str,
        partition: &str,
        op: &'static str,
    ) -> Result<Option<String>, RegistryError> {
        let gate: Option<Option<String>> =
            query("SELECT gate_id FROM partitions WHERE dataset = $1 AND partition_key = $2")
                .bind(dataset)
                .bind(partition)
                .fetch_optional_scalar(self, op)
                .await?;
        Ok(gate.flatten())
    }

    /// A partition's state and the gate of its last publication, as stored.
    pub async fn partition_publication(
        &mut self,
        dataset: &str,
        partition: &str,
        op: &'static str,
    ) -> Result<Option<(String, Option<String>)>, RegistryError> {
        query(
            "SELECT state, published_gate_id FROM partitions WHERE dataset = $1 AND partition_key = $2",
        )
        .bind(dataset)
        .bind(partition)
        .fetch_optional(self, op)
        .await
    }
}

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
        let history_sql = "SELECT from_state, to_state, at, actor, gate_id, reason, note FROM partition_transitions \
                           WHERE dataset = $1 AND partition_key = $2 ORDER BY id";
        let (row, history): (Option<PartitionRow>, Vec<TransitionRow>) = {
            let row = query(&sql)
                .bind(dataset.as_str())
                .bind(partition)
                .fetch_optional(self, OP)
                .await?;
            let history = query(history_sql)
                .bind(dataset.as_str())
                .bind(partition)
                .fetch_all(self, OP)
                .await?;
            (row, history)
        };
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

    /// The newest `limit` partitions (by key) of a dataset, newest first,
    /// each with its history oldest first: two statements.
    pub async fn dataset_partitions(
        &self,
        dataset: &str,
        limit: u32,
    ) -> Result<Vec<PartitionRecord>, RegistryError> {
        const OP: &str = "dataset partitions";
        let sql = format!(
            "SELECT {PARTITION_COLUMNS} FROM partitions WHERE dataset = $1 \
             ORDER BY partition_key DESC LIMIT $2"
        );
        let rows: Vec<PartitionRow> = query(&sql)
            .bind(dataset)
            .bind(i64::from(limit))
            .fetch_all(self, OP)
            .await?;
        let Some(oldest) = rows.last().map(|r| r.partition_key.clone()) else {
            return Ok(Vec::new());
        };
        #[derive(sqlx::FromRow)]
        struct Row {
            partition_key: String,
            #[sqlx(flatten)]
            transition: TransitionRow,
        }
        let history: Vec<Row> = query(
            "SELECT partition_key, from_state, to_state, at, actor, gate_id, reason, note \
             FROM partition_transitions WHERE dataset = $1 AND partition_key >= $2 ORDER BY id",
        )
        .bind(dataset)
        .bind(&oldest)
        .fetch_all(self, OP)
        .await?;
        let mut by_partition: std::collections::HashMap<String, Vec<Transition>> =
            std::collections::HashMap::new();
        for row in history {
            by_partition
                .entry(row.partition_key)
                .or_default()
                .push(row.transition.into_transition()?);
        }
        rows.into_iter()
            .map(|row| {
                Ok(PartitionRecord {
                    state: parse_state(&row.state)?,
                    history: by_partition.remove(&row.partition_key).unwrap_or_default(),
                    dataset: row.dataset,
                    partition: row.partition_key,
                    gate_id: row.gate_id,
                    published_gate_id: row.published_gate_id,
                    published_at: row.published_at,
                    updated_at: row.updated_at,
                })
            })
            .collect()
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
        let row: Option<Row> = query(
            "SELECT partition_key, published_gate_id, published_at FROM partitions \
             WHERE dataset = $1 AND published_gate_id IS NOT NULL AND published_at IS NOT NULL \
             ORDER BY partition_key DESC LIMIT 1",
        )
        .bind(dataset.as_str())
        .fetch_optional(self, "latest published partition")
        .await?;
        Ok(row.map(|r| PublishedPartition {
            dataset: dataset.to_string(),
            partition: r.partition_key,
            gate_id: r.published_gate_id,
            published_at: r.published_at,
        }))
    }
}
