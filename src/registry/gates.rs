//! Gate requests and their decisions as stored: one row per gate, read and
//! written inside the transaction the caller opened, and the locks that
//! serialise changes to one partition's gates (an advisory lock on
//! PostgreSQL; SQLite's `BEGIN IMMEDIATE` holds the one write lock). The
//! rules (admission, idempotency, one running gate per partition, deadlines)
//! are `gate::ledger`'s.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::types::Json;

use super::sql::{Arg, Tx, query};
use super::{Registry, RegistryError, now};
use crate::domain::{CheckResult, DatasetName, GateBasis, GateStatus};
use crate::warehouse::Engine;

/// One gate as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateRecord {
    pub gate_id: String,
    pub dataset: String,
    pub partition: String,
    pub run_id: String,
    /// The client's `Idempotency-Key`, if it sent one.
    #[serde(skip)]
    pub request_key: Option<String>,
    #[serde(skip)]
    pub request_hash: String,
    pub status: GateStatus,
    /// Set once decided.
    pub basis: Option<GateBasis>,
    /// Every check the gate ran, with its outcome.
    pub results: Vec<CheckResult>,
    /// Why it was denied (or overridden), one sentence each.
    pub reasons: Vec<String>,
    /// The agent that runs (or ran) it.
    pub agent: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    /// An undecided gate past this instant was abandoned.
    pub deadline_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The gate that re-evaluated this one after it was denied for an error
    /// or a timeout.
    pub retried_by: Option<String>,
}

#[derive(sqlx::FromRow)]
struct GateRow {
    gate_id: String,
    dataset: String,
    partition_key: String,
    run_id: String,
    request_key: Option<String>,
    request_hash: String,
    status: String,
    basis: Option<String>,
    results: Json<Vec<CheckResult>>,
    reasons: Json<Vec<String>>,
    agent: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    deadline_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
    retried_by: Option<String>,
}

impl GateRow {
    fn into_record(self) -> Result<GateRecord, RegistryError> {
        let status = GateStatus::parse(&self.status).ok_or_else(|| RegistryError::Corrupt {
            what: format!("status `{}` of gate {}", self.status, self.gate_id),
        })?;
        let basis = self
            .basis
            .as_deref()
            .map(|b| {
                GateBasis::parse(b).ok_or_else(|| RegistryError::Corrupt {
                    what: format!("basis `{b}` of gate {}", self.gate_id),
                })
            })
            .transpose()?;
        Ok(GateRecord {
            gate_id: self.gate_id,
            dataset: self.dataset,
            partition: self.partition_key,
            run_id: self.run_id,
            request_key: self.request_key,
            request_hash: self.request_hash,
            status,
            basis,
            results: self.results.0,
            reasons: self.reasons.0,
            agent: self.agent,
            created_at: self.created_at,
            started_at: self.started_at,
            deadline_at: self.deadline_at,
            decided_at: self.decided_at,
            retried_by: self.retried_by,
        })
    }
}

const GATE_COLUMNS: &str = "gate_id, dataset, partition_key, run_id, request_key, request_hash, status, \
     basis, results, reasons, agent, created_at, started_at, deadline_at, decided_at, retried_by";

/// The idempotency key of a request. Dataset names and partitions hold no
/// `/`, so the key is unambiguous.
pub fn idempotency_key(dataset: &DatasetName, partition: &str, run_id: &str) -> String {
    format!("{dataset}/{partition}/{run_id}")
}

/// PostgreSQL advisory lock ids: one per partition and one per request key,
/// from a hash (collisions only serialise more than needed).
fn lock_id(kind: &str, parts: &[&str]) -> i64 {
    let mut hash = Sha256::new();
    hash.update(b"warden-gate\0");
    hash.update(kind.as_bytes());
    for part in parts {
        hash.update([0]);
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

impl Registry {
    /// A gate by id.
    pub async fn gate(&self, gate_id: &str) -> Result<Option<GateRecord>, RegistryError> {
        let sql = format!("SELECT {GATE_COLUMNS} FROM gates WHERE gate_id = $1");
        let row: Option<GateRow> = query(&sql)
            .bind(gate_id)
            .fetch_optional(self, "gate")
            .await?;
        row.map(GateRow::into_record).transpose()
    }

    /// The newest gates of a partition, newest first.
    pub async fn partition_gates(
        &self,
        dataset: &DatasetName,
        partition: &str,
        limit: u32,
    ) -> Result<Vec<GateRecord>, RegistryError> {
        let sql = format!(
            "SELECT {GATE_COLUMNS} FROM gates WHERE dataset = $1 AND partition_key = $2 \
             ORDER BY created_at DESC, gate_id LIMIT $3"
        );
        let rows: Vec<GateRow> = query(&sql)
            .bind(dataset.as_str())
            .bind(partition)
            .bind(i64::from(limit))
            .fetch_all(self, "partition gates")
            .await?;
        rows.into_iter().map(GateRow::into_record).collect()
    }

    /// The newest gates of a dataset, newest first (its page).
    pub async fn dataset_gates(
        &self,
        dataset: &str,
        limit: u32,
    ) -> Result<Vec<GateRecord>, RegistryError> {
        let sql = format!(
            "SELECT {GATE_COLUMNS} FROM gates WHERE dataset = $1 \
             ORDER BY created_at DESC, gate_id LIMIT $2"
        );
        let rows: Vec<GateRow> = query(&sql)
            .bind(dataset)
            .bind(i64::from(limit))
            .fetch_all(self, "dataset gates")
            .await?;
        rows.into_iter().map(GateRow::into_record).collect()
    }

    /// The newest gates of every dataset, newest first (the status page).
    pub async fn recent_gates(&self, limit: u32) -> Result<Vec<GateRecord>, RegistryError> {
        let sql =
            format!("SELECT {GATE_COLUMNS} FROM gates ORDER BY created_at DESC, gate_id LIMIT $1");
        let rows: Vec<GateRow> = query(&sql)
            .bind(i64::from(limit))
            .fetch_all(self, "recent gates")
            .await?;
        rows.into_iter().map(GateRow::into_record).collect()
    }

    /// Undecided gates that `agent` ran, that an earlier start of the same
    /// agent ran (their id starts with `lineage`), or that are past their
    /// deadline: what an agent recovers when it starts.
    pub async fn undecided_gates(
        &self,
        agent: &str,
        lineage: Option<&str>,
        op: &'static str,
    ) -> Result<Vec<GateRecord>, RegistryError> {
        let sql = format!(
            "SELECT {GATE_COLUMNS} FROM gates WHERE status IN ('queued', 'running') \
             AND (agent = $1 OR deadline_at <= $2 OR agent LIKE $3 ESCAPE '\\') ORDER BY created_at"
        );
        let escape = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        };
        let pattern = match lineage {
            Some(prefix) => format!("{}%", escape(prefix)),
            None => escape(agent),
        };
        let rows: Vec<GateRow> = query(&sql)
            .bind(agent)
            .bind(now())
            .bind(pattern.as_str())
            .fetch_all(self, op)
            .await?;
        rows.into_iter().map(GateRow::into_record).collect()
    }

    /// Undecided gates, whichever agent ran them, whose deadline is at or
    /// before `deadline_before`: what a sweep of abandoned gates looks at.
    pub async fn undecided_gates_past(
        &self,
        deadline_before: DateTime<Utc>,
        op: &'static str,
    ) -> Result<Vec<GateRecord>, RegistryError> {
        let sql = format!(
            "SELECT {GATE_COLUMNS} FROM gates WHERE status IN ('queued', 'running') \
             AND deadline_at <= $1 ORDER BY created_at"
        );
        let rows: Vec<GateRow> = query(&sql)
            .bind(super::stored(deadline_before))
            .fetch_all(self, op)
            .await?;
        records(rows)
    }
}

fn records(rows: Vec<GateRow>) -> Result<Vec<GateRecord>, RegistryError> {
    rows.into_iter().map(GateRow::into_record).collect()
}

impl Tx {
    /// Takes the transaction-scoped locks of a partition's gates (and of a
    /// request key), on PostgreSQL, in a fixed order so that two
    /// transactions never wait on each other.
    pub async fn lock_gates(
        &mut self,
        dataset: &str,
        partition: &str,
        request_key: Option<&str>,
    ) -> Result<(), RegistryError> {
        if self.engine() != Engine::Postgres {
            return Ok(());
        }
        let mut ids = vec![lock_id("partition", &[dataset, partition])];
        if let Some(key) = request_key {
            ids.push(lock_id("request", &[key]));
        }
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            query("SELECT pg_advisory_xact_lock($1)")
                .bind(id)
                .execute(&mut *self, "lock partition")
                .await?;
        }
        Ok(())
    }

    /// A gate by id.
    pub async fn gate(
        &mut self,
        gate_id: &str,
        op: &'static str,
    ) -> Result<Option<GateRecord>, RegistryError> {
        let sql = format!("SELECT {GATE_COLUMNS} FROM gates WHERE gate_id = $1");
        let row: Option<GateRow> = query(&sql).bind(gate_id).fetch_optional(self, op).await?;
        row.map(GateRow::into_record).transpose()
    }

    /// The live (not retried) gate holding a client's `Idempotency-Key`.
    pub async fn gate_by_request_key(
        &mut self,
        request_key: &str,
        op: &'static str,
    ) -> Result<Option<GateRecord>, RegistryError> {
        let sql = format!(
            "SELECT {GATE_COLUMNS} FROM gates WHERE request_key = $1 AND retried_by IS NULL"
        );
        let row: Option<GateRow> = query(&sql)
            .bind(request_key)
            .fetch_optional(self, op)
            .await?;
        row.map(GateRow::into_record).transpose()
    }

    /// The live gate with `idempotency_key`, and the gates running on the
    /// partition, in one statement.
    pub async fn gates_by_key_or_running(
        &mut self,
        idempotency_key: &str,
        dataset: &str,
        partition: &str,
        op: &'static str,
    ) -> Result<Vec<GateRecord>, RegistryError> {
        let sql = format!(
            "SELECT {GATE_COLUMNS} FROM gates WHERE (idempotency_key = $1 AND retried_by IS NULL) \
             OR (dataset = $2 AND partition_key = $3 AND status = 'running')"
        );
        let rows: Vec<GateRow> = query(&sql)
            .bind(idempotency_key)
            .bind(dataset)
            .bind(partition)
            .fetch_all(self, op)
            .await?;
        records(rows)
    }

    /// The gates running on a partition other than `gate_id`.
    pub async fn other_running_gates(
        &mut self,
        dataset: &str,
        partition: &str,
        gate_id: &str,
    ) -> Result<Vec<GateRecord>, RegistryError> {
        let sql = format!(
            "SELECT {GATE_COLUMNS} FROM gates WHERE dataset = $1 AND partition_key = $2 \
             AND status = 'running' AND gate_id <> $3"
        );
        let rows: Vec<GateRow> = query(&sql)
            .bind(dataset)
            .bind(partition)
            .bind(gate_id)
            .fetch_all(self, "find running gates")
            .await?;
        records(rows)
    }

    /// Records a new gate under `idempotency_key`; `false` when a gate with
    /// the same id or keys exists.
    pub async fn insert_gate(
        &mut self,
        gate: &GateRecord,
        idempotency_key: &str,
        op: &'static str,
    ) -> Result<bool, RegistryError> {
        let inserted = query(
            "INSERT INTO gates (gate_id, dataset, partition_key, run_id, idempotency_key, \
             request_key, request_hash, status, agent, created_at, started_at, deadline_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&gate.gate_id)
        .bind(&gate.dataset)
        .bind(&gate.partition)
        .bind(&gate.run_id)
        .bind(idempotency_key)
        .bind(gate.request_key.as_deref())
        .bind(&gate.request_hash)
        .bind(gate.status.as_str())
        .bind(&gate.agent)
        .bind(gate.created_at)
        .bind(gate.started_at)
        .bind(gate.deadline_at)
        .execute(self, op)
        .await?;
        Ok(inserted == 1)
    }

    /// Marks a queued gate running for `agent`; `false` when it is no longer
    /// queued.
    pub async fn start_queued_gate(
        &mut self,
        gate_id: &str,
        agent: &str,
        at: DateTime<Utc>,
        op: &'static str,
    ) -> Result<bool, RegistryError> {
        let updated = query(
            "UPDATE gates SET status = 'running', started_at = $2, agent = $3 \
             WHERE gate_id = $1 AND status = 'queued'",
        )
        .bind(gate_id)
        .bind(at)
        .bind(agent)
        .execute(self, op)
        .await?;
        Ok(updated == 1)
    }

    /// Records the decision of a gate still undecided; `false` when it was
    /// decided already.
    pub async fn record_gate_decision(
        &mut self,
        gate: &GateRecord,
        op: &'static str,
    ) -> Result<bool, RegistryError> {
        let updated = query(
            "UPDATE gates SET status = $2, basis = $3, results = $4, reasons = $5, decided_at = $6 \
             WHERE gate_id = $1 AND status IN ('queued', 'running')",
        )
        .bind(&gate.gate_id)
        .bind(gate.status.as_str())
        .bind(gate.basis.map(GateBasis::as_str))
        .bind(Arg::json(&gate.results))
        .bind(Arg::json(&gate.reasons))
        .bind(gate.decided_at)
        .execute(self, op)
        .await?;
        Ok(updated == 1)
    }

    /// Rewrites a decided gate's decision (an override of its quarantine).
    pub async fn replace_gate_decision(
        &mut self,
        gate: &GateRecord,
        op: &'static str,
    ) -> Result<(), RegistryError> {
        query(
            "UPDATE gates SET status = $2, basis = $3, reasons = $4, decided_at = $5 \
             WHERE gate_id = $1",
        )
        .bind(&gate.gate_id)
        .bind(gate.status.as_str())
        .bind(gate.basis.map(GateBasis::as_str))
        .bind(Arg::json(&gate.reasons))
        .bind(gate.decided_at)
        .execute(self, op)
        .await?;
        Ok(())
    }

    /// Points a gate at the one that evaluates its request again.
    pub async fn set_retried_by(
        &mut self,
        gate_id: &str,
        retried_by: &str,
        op: &'static str,
    ) -> Result<(), RegistryError> {
        query("UPDATE gates SET retried_by = $2 WHERE gate_id = $1")
            .bind(gate_id)
            .bind(retried_by)
            .execute(self, op)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_ids_depend_on_every_part() {
        let a = lock_id("partition", &["orders", "2026-11-20"]);
        assert_eq!(a, lock_id("partition", &["orders", "2026-11-20"]));
        assert_ne!(a, lock_id("partition", &["orders", "2026-11-21"]));
        assert_ne!(a, lock_id("request", &["orders", "2026-11-20"]));
        // The separator keeps ("ab", "c") apart from ("a", "bc").
        assert_ne!(
            lock_id("partition", &["ab", "c"]),
            lock_id("partition", &["a", "bc"])
        );
    }

    #[test]
    fn statuses_and_bases_round_trip() {
        for s in ["queued", "running", "allowed", "denied"] {
            assert_eq!(GateStatus::parse(s).unwrap().as_str(), s);
        }
        for b in ["checks", "error", "timeout", "override"] {
            assert_eq!(GateBasis::parse(b).unwrap().as_str(), b);
        }
    }
}
