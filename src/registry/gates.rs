//! Gate requests and their decisions, kept with the partition states they
//! drive: a gate's start moves its partition to `validating` and its decision
//! to `passed` or `quarantined` in the same transaction, so a crash never
//! leaves one without the other.
//!
//! Idempotency: a gate is found again by its request, `dataset/partition/run_id`
//! (the idempotency key), or by the client's `Idempotency-Key` header (the
//! request key, with a hash of the request body to catch a key reused for
//! another request). A recorded decision is replayed, except a denial for an
//! error or a timeout: retrying may help, so a repeat starts a new gate and
//! the old one points at it (`retried_by`).
//!
//! Serialisation: changes to one partition's gates take a lock on the
//! partition (an advisory lock on PostgreSQL; SQLite's `BEGIN IMMEDIATE`
//! holds the one write lock), and only one gate per partition runs at a
//! time, across every agent sharing the registry. A gate runs until its
//! deadline; one still undecided after it was abandoned by an agent that
//! stopped, and is denied with basis `error` by whoever finds it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::types::Json;

use super::error::OpContext;
use super::partitions::{PartitionRecord, apply_transition, lost_race, select_for_update};
use super::{PartitionState, Registry, RegistryError, StateChange, now, stored};
use crate::check::CheckResult;
use crate::domain::DatasetName;
use crate::warehouse::Engine;

/// The actor of the partition changes a gate makes.
pub const GATE_ACTOR: &str = "gate";

/// Where a gate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateStatus {
    /// Recorded, waiting for its turn on the partition.
    Queued,
    /// Checking the staged data.
    Running,
    /// Decided: the partition may be published.
    Allowed,
    /// Decided: the partition must not be published.
    Denied,
}

impl GateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Allowed => "allowed",
            Self::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Allowed, Self::Denied]
            .into_iter()
            .find(|status| status.as_str() == s)
    }

    /// Allowed or denied.
    pub fn is_decided(self) -> bool {
        matches!(self, Self::Allowed | Self::Denied)
    }
}

/// What a decision rests on, so a pipeline can tell a breach (do not retry)
/// from an error (retrying may help).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateBasis {
    /// The checks' outcomes: an allow, or a denial for a breach.
    Checks,
    /// A check, the warehouse or the registry failed; or the agent stopped.
    Error,
    /// No decision within the gate's deadline (fail closed).
    Timeout,
    /// A person overrode a quarantine.
    Override,
}

impl GateBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checks => "checks",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Override => "override",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Checks, Self::Error, Self::Timeout, Self::Override]
            .into_iter()
            .find(|basis| basis.as_str() == s)
    }

    /// Whether a denial on this basis may go differently if asked again.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Error | Self::Timeout)
    }
}

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

impl GateRecord {
    /// Whether a repeat of this gate's request must evaluate again rather
    /// than replay it: it was denied for an error or a timeout, or it was
    /// abandoned undecided.
    fn is_retryable(&self, now: DateTime<Utc>) -> bool {
        match (self.status, self.basis) {
            (GateStatus::Denied, Some(basis)) => basis.is_retryable(),
            (GateStatus::Queued | GateStatus::Running, _) => self.deadline_at <= now,
            _ => false,
        }
    }
}

/// A gate to record.
#[derive(Debug, Clone)]
pub struct NewGate<'a> {
    pub gate_id: &'a str,
    pub dataset: &'a DatasetName,
    pub partition: &'a str,
    pub run_id: &'a str,
    pub request_key: Option<&'a str>,
    /// A hash of the request body, to tell a reused `Idempotency-Key`.
    pub request_hash: &'a str,
    pub agent: &'a str,
    pub deadline_at: DateTime<Utc>,
}

/// What recording a gate request came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// A new gate, queued.
    Created(GateRecord),
    /// The request repeats a gate that is decided (its decision is replayed)
    /// or still under way.
    Existing(GateRecord),
    /// The `Idempotency-Key` belongs to a gate with another request.
    KeyReused(GateRecord),
}

/// What trying to start a queued gate came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// It runs now; its partition is `validating`.
    Started(GateRecord),
    /// Another gate runs on the partition; try again after it.
    Busy(GateRecord),
    /// It is no longer queued (decided meanwhile, e.g. abandoned).
    NotQueued(GateRecord),
}

/// A gate's decision.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// Allowed or denied.
    pub allowed: bool,
    pub basis: GateBasis,
    pub results: &'a [CheckResult],
    pub reasons: &'a [String],
}

/// What recording a decision came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub gate: GateRecord,
    /// The state the partition moved to, or `None` when the gate no longer
    /// held the partition or was already decided (by another agent or by
    /// the recovery of an abandoned gate): the record shows what stands.
    pub partition_state: Option<PartitionState>,
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

/// The reason recorded for a gate nobody decided by its deadline.
pub const ABANDONED: &str =
    "the agent running this gate stopped before deciding; a new request evaluates again";

/// Partition states reach the log with this reason at most.
const MAX_REASON_CHARS: usize = 2000;

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

/// Takes, on PostgreSQL, the transaction-scoped locks named by `$ids`, in a
/// fixed order so that two transactions never wait on each other.
macro_rules! lock {
    ($tx:ident, $engine:expr, $ids:expr) => {{
        if $engine == Engine::Postgres {
            let mut ids: Vec<i64> = $ids;
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(id)
                    .execute(&mut *$tx)
                    .await
                    .op("lock partition")?;
            }
        }
    }};
}

/// Reads one gate row inside `$tx` with the statement `$sql` and one bound
/// value; evaluates to `Option<GateRecord>`.
macro_rules! fetch_gate {
    ($tx:ident, $sql:expr, $value:expr, $op:expr) => {{
        let row: Option<GateRow> = sqlx::query_as($sql)
            .bind($value)
            .fetch_optional(&mut *$tx)
            .await
            .op($op)?;
        row.map(GateRow::into_record).transpose()?
    }};
}

/// Records `$decision` on `$gate` if it is still undecided, and moves its
/// partition to `passed` or `quarantined` if the gate still holds it in
/// `validating`. Evaluates to `Some(Decided)` (the record passed in, with the
/// decision), or `None` when the gate was already decided.
macro_rules! record_decision {
    ($tx:ident, $gate:expr, $decision:expr, $at:expr) => {{
        let gate: &GateRecord = $gate;
        let decision: &Decision<'_> = $decision;
        let at: DateTime<Utc> = $at;
        let status = if decision.allowed {
            GateStatus::Allowed
        } else {
            GateStatus::Denied
        };
        let updated = sqlx::query(
            "UPDATE gates SET status = $2, basis = $3, results = $4, reasons = $5, decided_at = $6 \
             WHERE gate_id = $1 AND status IN ('queued', 'running')",
        )
        .bind(&gate.gate_id)
        .bind(status.as_str())
        .bind(decision.basis.as_str())
        .bind(Json(decision.results))
        .bind(Json(decision.reasons))
        .bind(at)
        .execute(&mut *$tx)
        .await
        .op("record gate decision")?
        .rows_affected();
        if updated == 1 {
            let dataset = DatasetName::parse(&gate.dataset).map_err(|e| RegistryError::Corrupt {
                what: format!("dataset of gate {}: {e}", gate.gate_id),
            })?;
            let to = if decision.allowed {
                PartitionState::Passed
            } else {
                PartitionState::Quarantined
            };
            let reason = (!decision.allowed).then(|| quarantine_reason(decision.reasons));
            // The state machine's rule for this change, as one statement:
            // only a partition this gate holds in `validating` moves (the
            // update locks its row); its publication stays as it was.
            let moved = sqlx::query(
                "UPDATE partitions SET state = $3, updated_at = $4 \
                 WHERE dataset = $1 AND partition_key = $2 AND state = 'validating' AND gate_id = $5",
            )
            .bind(dataset.as_str())
            .bind(&gate.partition)
            .bind(to.as_str())
            .bind(at)
            .bind(&gate.gate_id)
            .execute(&mut *$tx)
            .await
            .op("record gate decision")?
            .rows_affected();
            let mut partition_state = None;
            if moved == 1 {
                sqlx::query(
                    "INSERT INTO partition_transitions (dataset, partition_key, from_state, to_state, \
                     at, actor, gate_id, reason) VALUES ($1, $2, 'validating', $3, $4, $5, $6, $7)",
                )
                .bind(dataset.as_str())
                .bind(&gate.partition)
                .bind(to.as_str())
                .bind(at)
                .bind(GATE_ACTOR)
                .bind(&gate.gate_id)
                .bind(reason.as_deref())
                .execute(&mut *$tx)
                .await
                .op("record gate decision")?;
                partition_state = Some(to);
            }
            let mut record = gate.clone();
            record.status = status;
            record.basis = Some(decision.basis);
            record.results = decision.results.to_vec();
            record.reasons = decision.reasons.to_vec();
            record.decided_at = Some(at);
            Some(Decided {
                gate: record,
                partition_state,
            })
        } else {
            None
        }
    }};
}

/// Inside `$tx`, holding the partition's lock: whether another gate runs on
/// the partition of `$gate` (`Some(holder)`). Running gates past their
/// deadline were abandoned: they are denied here and do not count.
macro_rules! other_running {
    ($tx:ident, $gate:expr, $at:expr) => {{
        let gate: &GateRecord = $gate;
        let sql = format!(
            "SELECT {GATE_COLUMNS} FROM gates WHERE dataset = $1 AND partition_key = $2 \
             AND status = 'running' AND gate_id <> $3"
        );
        let others: Vec<GateRow> = sqlx::query_as(&sql)
            .bind(&gate.dataset)
            .bind(&gate.partition)
            .bind(&gate.gate_id)
            .fetch_all(&mut *$tx)
            .await
            .op("find running gates")?;
        let others = others
            .into_iter()
            .map(GateRow::into_record)
            .collect::<Result<Vec<_>, _>>()?;
        holder_among!($tx, others, $at)
    }};
}

/// Inside `$tx`: the first of the running gates `$others` that is within its
/// deadline; those past it were abandoned and are denied here.
macro_rules! holder_among {
    ($tx:ident, $others:expr, $at:expr) => {{
        let others: Vec<GateRecord> = $others;
        let at: DateTime<Utc> = $at;
        let mut busy = None;
        for other in others {
            if other.deadline_at > at {
                busy = Some(other);
                break;
            }
            let reasons = [ABANDONED.to_owned()];
            let decision = Decision {
                allowed: false,
                basis: GateBasis::Error,
                results: &other.results,
                reasons: &reasons,
            };
            let _ = record_decision!($tx, &other, &decision, at);
        }
        busy
    }};
}

/// Inside `$tx`: moves the partition of `$gate` to `validating` behind it.
macro_rules! take_partition {
    ($tx:ident, $engine:expr, $gate:expr, $at:expr) => {{
        let gate: &GateRecord = $gate;
        let dataset = DatasetName::parse(&gate.dataset).map_err(|e| RegistryError::Corrupt {
            what: format!("dataset of gate {}: {e}", gate.gate_id),
        })?;
        let change = StateChange::new(PartitionState::Validating, GATE_ACTOR).gate(&gate.gate_id);
        let select = select_for_update($engine);
        // Under the partition's lock no other first row can be inserted.
        if !apply_transition!($tx, &select, &dataset, &gate.partition, &change, $at) {
            return Err(lost_race(
                &dataset,
                &gate.partition,
                PartitionState::Validating,
            ));
        }
    }};
}

fn quarantine_reason(reasons: &[String]) -> String {
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

impl Registry {
    /// A gate by id.
    pub async fn gate(&self, gate_id: &str) -> Result<Option<GateRecord>, RegistryError> {
        let sql = format!("SELECT {GATE_COLUMNS} FROM gates WHERE gate_id = $1");
        let row: Option<GateRow> = on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(gate_id)
            .fetch_optional(pool)
            .await
            .op("gate"))?;
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
        let rows: Vec<GateRow> = on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(dataset.as_str())
            .bind(partition)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .op("partition gates"))?;
        rows.into_iter().map(GateRow::into_record).collect()
    }

    /// The newest gates of every dataset, newest first (the status page).
    pub async fn recent_gates(&self, limit: u32) -> Result<Vec<GateRecord>, RegistryError> {
        let sql =
            format!("SELECT {GATE_COLUMNS} FROM gates ORDER BY created_at DESC, gate_id LIMIT $1");
        let rows: Vec<GateRow> = on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .op("recent gates"))?;
        rows.into_iter().map(GateRow::into_record).collect()
    }

    /// Records a gate request, or finds the gate it repeats.
    ///
    /// With a request key, the gate holding that key answers; a different
    /// request hash is [`Admission::KeyReused`]. Otherwise the live gate with
    /// the same dataset, partition and run id answers. A decision is replayed
    /// and a gate under way is returned as it stands; a denial for an error
    /// or a timeout, or a gate abandoned past its deadline (denied here with
    /// basis `error`), is retried: a new gate is created and the old one
    /// points at it.
    ///
    /// With `start`, a new gate also starts at once, in the same transaction,
    /// unless another gate runs on its partition (see
    /// [`start_gate`](Self::start_gate)): it is then `running`, else `queued`.
    pub async fn admit_gate(
        &self,
        new: &NewGate<'_>,
        start: bool,
    ) -> Result<Admission, RegistryError> {
        const OP: &str = "record gate request";
        let engine = self.engine();
        let key = idempotency_key(new.dataset, new.partition, new.run_id);
        // The repeated gate, and the gates running on the partition.
        let by_key_or_running = format!(
            "SELECT {GATE_COLUMNS} FROM gates WHERE (idempotency_key = $1 AND retried_by IS NULL) \
             OR (dataset = $2 AND partition_key = $3 AND status = 'running')"
        );
        let by_request_key = format!(
            "SELECT {GATE_COLUMNS} FROM gates WHERE request_key = $1 AND retried_by IS NULL"
        );
        let at = now();
        let admission: Admission = in_transaction!(self, OP, |tx| {
            let mut locks = vec![lock_id("partition", &[new.dataset.as_str(), new.partition])];
            if let Some(request_key) = new.request_key {
                locks.push(lock_id("request", &[request_key]));
            }
            lock!(tx, engine, locks);
            // The gate holding the request key answers first; then the live
            // gate of the same dataset, partition and run id. (Without a run
            // id in the body, the two differ: each request gets its own.)
            let by_request = match new.request_key {
                Some(request_key) => fetch_gate!(tx, &by_request_key, request_key, OP),
                None => None,
            };
            let rows: Vec<GateRow> = sqlx::query_as(&by_key_or_running)
                .bind(&key)
                .bind(new.dataset.as_str())
                .bind(new.partition)
                .fetch_all(&mut *tx)
                .await
                .op(OP)?;
            let rows = rows
                .into_iter()
                .map(GateRow::into_record)
                .collect::<Result<Vec<_>, _>>()?;
            // Dataset, partition and run id make the idempotency key.
            let by_run = rows
                .iter()
                .find(|g| g.run_id == new.run_id && g.retried_by.is_none())
                .cloned();
            let running: Vec<GateRecord> = rows
                .into_iter()
                .filter(|g| g.status == GateStatus::Running)
                .collect();
            let mut answer = None;
            let mut retry: Vec<GateRecord> = Vec::new();
            if let Some(g) = &by_request
                && g.request_hash != new.request_hash
            {
                answer = Some(Admission::KeyReused(g.clone()));
            }
            for g in by_request.into_iter().chain(by_run) {
                if answer.is_some() || retry.iter().any(|r| r.gate_id == g.gate_id) {
                    continue;
                }
                if g.is_retryable(at) {
                    retry.push(g);
                } else {
                    answer = Some(Admission::Existing(g));
                }
            }
            match answer {
                Some(answer) => answer,
                None => {
                    for old in &retry {
                        if !old.status.is_decided() {
                            let reasons = [ABANDONED.to_owned()];
                            let decision = Decision {
                                allowed: false,
                                basis: GateBasis::Error,
                                results: &old.results,
                                reasons: &reasons,
                            };
                            let _ = record_decision!(tx, old, &decision, at);
                        }
                        sqlx::query("UPDATE gates SET retried_by = $2 WHERE gate_id = $1")
                            .bind(&old.gate_id)
                            .bind(new.gate_id)
                            .execute(&mut *tx)
                            .await
                            .op(OP)?;
                    }
                    let mut record = GateRecord {
                        gate_id: new.gate_id.to_owned(),
                        dataset: new.dataset.to_string(),
                        partition: new.partition.to_owned(),
                        run_id: new.run_id.to_owned(),
                        request_key: new.request_key.map(str::to_owned),
                        request_hash: new.request_hash.to_owned(),
                        status: GateStatus::Queued,
                        basis: None,
                        results: Vec::new(),
                        reasons: Vec::new(),
                        agent: new.agent.to_owned(),
                        created_at: at,
                        started_at: None,
                        deadline_at: stored(new.deadline_at),
                        decided_at: None,
                        retried_by: None,
                    };
                    if start && holder_among!(tx, running, at).is_none() {
                        record.status = GateStatus::Running;
                        record.started_at = Some(at);
                    }
                    let inserted = sqlx::query(
                        "INSERT INTO gates (gate_id, dataset, partition_key, run_id, idempotency_key, \
                         request_key, request_hash, status, agent, created_at, started_at, deadline_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(new.gate_id)
                    .bind(new.dataset.as_str())
                    .bind(new.partition)
                    .bind(new.run_id)
                    .bind(&key)
                    .bind(new.request_key)
                    .bind(new.request_hash)
                    .bind(record.status.as_str())
                    .bind(new.agent)
                    .bind(at)
                    .bind(record.started_at)
                    .bind(record.deadline_at)
                    .execute(&mut *tx)
                    .await
                    .op(OP)?
                    .rows_affected();
                    if inserted != 1 {
                        // Unreachable while every writer takes the locks
                        // above; roll back rather than record half of it.
                        return Err(RegistryError::Unavailable {
                            op: OP,
                            reason: "another request with the same key was recorded at the same \
                                     time; retry"
                                .to_owned(),
                        });
                    }
                    if record.status == GateStatus::Running {
                        take_partition!(tx, engine, &record, at);
                    }
                    Admission::Created(record)
                }
            }
        });
        Ok(admission)
    }

    /// Starts the queued gate on behalf of `agent` if no other gate runs on
    /// its partition: it becomes `running` and its partition `validating`
    /// (keeping an earlier publication visible). A running gate past its
    /// deadline was abandoned; it is denied (basis `error`) and no longer
    /// blocks.
    pub async fn start_gate(&self, gate: &GateRecord, agent: &str) -> Result<Start, RegistryError> {
        const OP: &str = "start gate";
        let engine = self.engine();
        let at = now();
        let start: Option<Start> = in_transaction!(self, OP, |tx| {
            lock!(
                tx,
                engine,
                vec![lock_id("partition", &[&gate.dataset, &gate.partition])]
            );
            match other_running!(tx, gate, at) {
                Some(holder) => Some(Start::Busy(holder)),
                None => {
                    let updated = sqlx::query(
                        "UPDATE gates SET status = 'running', started_at = $2, agent = $3 \
                         WHERE gate_id = $1 AND status = 'queued'",
                    )
                    .bind(&gate.gate_id)
                    .bind(at)
                    .bind(agent)
                    .execute(&mut *tx)
                    .await
                    .op(OP)?
                    .rows_affected();
                    if updated == 1 {
                        take_partition!(tx, engine, gate, at);
                        let mut started = gate.clone();
                        started.status = GateStatus::Running;
                        started.started_at = Some(at);
                        started.agent = agent.to_owned();
                        Some(Start::Started(started))
                    } else {
                        None
                    }
                }
            }
        });
        match start {
            Some(start) => Ok(start),
            None => self
                .gate(&gate.gate_id)
                .await?
                .map(Start::NotQueued)
                .ok_or_else(|| RegistryError::NotFound {
                    what: format!("gate {}", gate.gate_id),
                }),
        }
    }

    /// Records the decision of an undecided gate and moves its partition to
    /// `passed` or `quarantined` while the gate still holds it. A gate
    /// already decided (abandoned and denied by another agent) keeps its
    /// decision; the answer shows it. `gate` is the caller's latest copy of
    /// the record; the answer is that copy with the decision.
    pub async fn decide_gate(
        &self,
        gate: &GateRecord,
        decision: &Decision<'_>,
    ) -> Result<Decided, RegistryError> {
        const OP: &str = "record gate decision";
        let at = now();
        // No partition lock: the partition's row exists while the gate holds
        // it, and `record_decision!` locks that row.
        let decided: Option<Decided> =
            in_transaction!(self, OP, |tx| { record_decision!(tx, gate, decision, at) });
        match decided {
            Some(decided) => Ok(decided),
            None => {
                let current =
                    self.gate(&gate.gate_id)
                        .await?
                        .ok_or_else(|| RegistryError::NotFound {
                            what: format!("gate {}", gate.gate_id),
                        })?;
                Ok(Decided {
                    gate: current,
                    partition_state: None,
                })
            }
        }
    }

    /// Denies (basis `error`, `reason`) every undecided gate that `agent`
    /// ran, that an agent whose id begins with `lineage` ran, or that is past
    /// its deadline, and quarantines the partitions they held in
    /// `validating`: what an agent does when it starts, for the gates an
    /// earlier start of it was running when it stopped. Returns the gates
    /// denied.
    pub async fn abandon_gates(
        &self,
        agent: &str,
        lineage: Option<&str>,
        reason: &str,
    ) -> Result<Vec<Decided>, RegistryError> {
        const OP: &str = "recover abandoned gates";
        let engine = self.engine();
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
        let found: Vec<GateRow> = on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(agent)
            .bind(now())
            .bind(&pattern)
            .fetch_all(pool)
            .await
            .op(OP))?;
        let by_id = format!("SELECT {GATE_COLUMNS} FROM gates WHERE gate_id = $1");
        let mut denied = Vec::new();
        for row in found {
            let gate = row.into_record()?;
            let reasons = [reason.to_owned()];
            let at = now();
            let decided: Option<Decided> = in_transaction!(self, OP, |tx| {
                lock!(
                    tx,
                    engine,
                    vec![lock_id("partition", &[&gate.dataset, &gate.partition])]
                );
                match fetch_gate!(tx, &by_id, &gate.gate_id, OP) {
                    Some(current) if !current.status.is_decided() => {
                        let decision = Decision {
                            allowed: false,
                            basis: GateBasis::Error,
                            results: &current.results,
                            reasons: &reasons,
                        };
                        record_decision!(tx, &current, &decision, at)
                    }
                    _ => None,
                }
            });
            denied.extend(decided);
        }
        Ok(denied)
    }

    /// A person's review of a quarantined partition: it passes (`by`, `reason`
    /// logged), and the gate that quarantined it becomes allowed with basis
    /// `override`, so a repeat of that gate's request now allows. Returns the
    /// gate, or `None` if the partition had none.
    pub async fn override_quarantine(
        &self,
        dataset: &DatasetName,
        partition: &str,
        by: &str,
        reason: &str,
    ) -> Result<Option<GateRecord>, RegistryError> {
        const OP: &str = "override quarantine";
        let engine = self.engine();
        let select = select_for_update(engine);
        let by_id = format!("SELECT {GATE_COLUMNS} FROM gates WHERE gate_id = $1");
        let at = now();
        let gate: Option<GateRecord> = in_transaction!(self, OP, |tx| {
            lock!(
                tx,
                engine,
                vec![lock_id("partition", &[dataset.as_str(), partition])]
            );
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT gate_id FROM partitions WHERE dataset = $1 AND partition_key = $2",
            )
            .bind(dataset.as_str())
            .bind(partition)
            .fetch_optional(&mut *tx)
            .await
            .op(OP)?
            .flatten();
            let change = StateChange::new(PartitionState::Passed, by)
                .expecting(PartitionState::Quarantined)
                .reason(reason);
            let change = match holder.as_deref() {
                Some(gate_id) => change.gate(gate_id),
                None => change,
            };
            if !apply_transition!(tx, &select, dataset, partition, &change, at) {
                return Err(lost_race(dataset, partition, PartitionState::Passed));
            }
            match holder {
                Some(gate_id) => match fetch_gate!(tx, &by_id, &gate_id, OP) {
                    Some(mut gate) => {
                        gate.reasons
                            .push(format!("quarantine overridden by {by}: {reason}"));
                        gate.status = GateStatus::Allowed;
                        gate.basis = Some(GateBasis::Override);
                        gate.decided_at = Some(at);
                        sqlx::query(
                            "UPDATE gates SET status = 'allowed', basis = 'override', reasons = $2, \
                             decided_at = $3 WHERE gate_id = $1",
                        )
                        .bind(&gate.gate_id)
                        .bind(Json(&gate.reasons))
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .op(OP)?;
                        Some(gate)
                    }
                    None => None,
                },
                None => None,
            }
        });
        Ok(gate)
    }

    /// Records that the pipeline published `partition`, on the strength of
    /// `gate_id`: the gate must have allowed this very partition, and the
    /// partition must have passed on it. Publishing again with the same gate
    /// changes nothing. Refusals are [`RegistryError::IllegalTransition`]
    /// (HTTP 409); an unknown gate is [`RegistryError::NotFound`].
    pub async fn publish(
        &self,
        dataset: &DatasetName,
        partition: &str,
        gate_id: &str,
        actor: &str,
    ) -> Result<PartitionRecord, RegistryError> {
        const OP: &str = "publish partition";
        let engine = self.engine();
        let select = select_for_update(engine);
        let by_id = format!("SELECT {GATE_COLUMNS} FROM gates WHERE gate_id = $1");
        let at = now();
        let refuse =
            |from: Option<PartitionState>, reason: String| RegistryError::IllegalTransition {
                dataset: dataset.to_string(),
                partition: partition.to_owned(),
                from,
                to: PartitionState::Published,
                reason,
            };
        let _: () = in_transaction!(self, OP, |tx| {
            lock!(
                tx,
                engine,
                vec![lock_id("partition", &[dataset.as_str(), partition])]
            );
            let Some(gate) = fetch_gate!(tx, &by_id, gate_id, OP) else {
                return Err(RegistryError::NotFound {
                    what: format!("gate {gate_id}"),
                });
            };
            let current: Option<(String, Option<String>)> = sqlx::query_as(
                "SELECT state, published_gate_id FROM partitions WHERE dataset = $1 AND partition_key = $2",
            )
            .bind(dataset.as_str())
            .bind(partition)
            .fetch_optional(&mut *tx)
            .await
            .op(OP)?;
            let state = current
                .as_ref()
                .and_then(|(state, _)| PartitionState::parse(state));
            if gate.dataset != dataset.as_str() || gate.partition != partition {
                return Err(refuse(
                    state,
                    format!(
                        "gate {gate_id} was for {} partition `{}`",
                        gate.dataset, gate.partition
                    ),
                ));
            }
            let republish = matches!(
                &current,
                Some((s, Some(published))) if s == "published" && published == gate_id
            );
            if !republish {
                if gate.status != GateStatus::Allowed {
                    let why = match (gate.status, gate.basis) {
                        (GateStatus::Denied, Some(basis)) => {
                            format!("gate {gate_id} denied it ({})", basis.as_str())
                        }
                        (status, _) => {
                            format!("gate {gate_id} is {}, not allowed", status.as_str())
                        }
                    };
                    return Err(refuse(state, why));
                }
                let change = StateChange::new(PartitionState::Published, actor).gate(gate_id);
                if !apply_transition!(tx, &select, dataset, partition, &change, at) {
                    return Err(lost_race(dataset, partition, PartitionState::Published));
                }
            }
        });
        self.partition(dataset, partition)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                what: format!("{dataset} partition `{partition}`"),
            })
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
    fn statuses_and_bases_round_trip() {
        for s in ["queued", "running", "allowed", "denied"] {
            assert_eq!(GateStatus::parse(s).unwrap().as_str(), s);
        }
        for b in ["checks", "error", "timeout", "override"] {
            assert_eq!(GateBasis::parse(b).unwrap().as_str(), b);
        }
        assert!(GateBasis::Error.is_retryable() && GateBasis::Timeout.is_retryable());
        assert!(!GateBasis::Checks.is_retryable() && !GateBasis::Override.is_retryable());
    }
}
