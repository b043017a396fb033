//! The gate's record of requests, decisions and partition states: each
//! operation opens one registry transaction, reads the rows it needs, decides
//! with the gate's rules (`status.rs`, `partition_state.rs`) and has the
//! registry write what it decided, so a gate's start moves its partition to
//! `validating`, and its decision to `passed` or `quarantined`, atomically.
//!
//! Idempotency: a gate is found again by its request, `dataset/partition/run_id`
//! (the idempotency key), or by the client's `Idempotency-Key` header (the
//! request key, with a hash of the request body to catch a key reused for
//! another request). A recorded decision is replayed, except a denial for an
//! error or a timeout: retrying may help, so a repeat starts a new gate and
//! the old one points at it (`retried_by`).
//!
//! Serialisation: changes to one partition's gates take the partition's lock
//! (`Tx::lock_gates`), and only one gate per partition runs at a time,
//! across every agent sharing the registry. A gate runs until its deadline;
//! one still undecided after it was abandoned by an agent that stopped, and
//! is denied with basis `error` by whoever finds it.
//!
//! The operations are methods of [`Registry`], so that callers hold one
//! handle; they live here because the rules are the gate's.

use chrono::{DateTime, Utc};

use super::partition_state::{self, StateChange};
use super::status::{
    ABANDONED, GATE_ACTOR, decided_partition_state, decided_status, quarantine_reason, reevaluates,
    return_reason,
};
use crate::check::CheckResult;
use crate::check::Dataset;
use crate::domain::{Actor, DatasetName, GateBasis, GateStatus, PartitionState};
use crate::registry::{
    GateRecord, PartitionRecord, Registry, RegistryError, TRANSITION, TransitionEntry, Tx,
    idempotency_key, lost_race, now, stored,
};

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
    /// On a breach, the dataset whose owner is alerted: the quarantine
    /// alert is recorded in the decision's transaction.
    pub alert: Option<&'a Dataset>,
}

/// What recording a decision came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub gate: GateRecord,
    /// The state the partition moved to (back to, on a denial for an error
    /// or a timeout), or `None` when the gate no longer held the partition,
    /// was already decided (by another agent or by the recovery of an
    /// abandoned gate), or the partition had no state before the gate: the
    /// record shows what stands.
    pub partition_state: Option<PartitionState>,
}

/// What a repeated request comes to, from the gates it may repeat: the gate
/// holding its `Idempotency-Key` (`by_request`) and the live gate of the
/// same dataset, partition and run id (`by_run`). `Err` holds the gates to
/// evaluate again (denied for an error or a timeout, or abandoned), which
/// the new gate replaces.
pub fn repeat_of(
    request_hash: &str,
    by_request: Option<GateRecord>,
    by_run: Option<GateRecord>,
    now: DateTime<Utc>,
) -> Result<Admission, Vec<GateRecord>> {
    if let Some(g) = &by_request
        && g.request_hash != request_hash
    {
        return Ok(Admission::KeyReused(g.clone()));
    }
    let mut retry: Vec<GateRecord> = Vec::new();
    for g in by_request.into_iter().chain(by_run) {
        if retry.iter().any(|r| r.gate_id == g.gate_id) {
            continue;
        }
        if reevaluates(&g, now) {
            retry.push(g);
        } else {
            return Ok(Admission::Existing(g));
        }
    }
    Err(retry)
}

/// `gate` with `decision` recorded at `at`.
fn with_decision(gate: &GateRecord, decision: &Decision<'_>, at: DateTime<Utc>) -> GateRecord {
    let mut record = gate.clone();
    record.status = decided_status(decision.allowed);
    record.basis = Some(decision.basis);
    record.results = decision.results.to_vec();
    record.reasons = decision.reasons.to_vec();
    record.decided_at = Some(at);
    record
}

fn gate_dataset(gate: &GateRecord) -> Result<DatasetName, RegistryError> {
    DatasetName::parse(&gate.dataset).map_err(|e| RegistryError::Corrupt {
        what: format!("dataset of gate {}: {e}", gate.gate_id),
    })
}

/// Records `decision` on `gate` if it is still undecided, and moves its
/// partition, if the gate still holds it in `validating`: to `passed` on an
/// allow, `quarantined` on a breach, back to its state before the gate on a
/// denial for an error or a timeout. `Some(Decided)` (the record passed in, with the decision),
/// or `None` when the gate was already decided.
async fn record_decision(
    tx: &mut Tx,
    gate: &GateRecord,
    decision: &Decision<'_>,
    at: DateTime<Utc>,
) -> Result<Option<Decided>, RegistryError> {
    const OP: &str = "record gate decision";
    let record = with_decision(gate, decision, at);
    if !tx.record_gate_decision(&record, OP).await? {
        return Ok(None);
    }
    let dataset = gate_dataset(gate)?;
    if !decision.allowed && decision.basis != GateBasis::Checks {
        let partition_state = return_partition(tx, &dataset, gate, decision, at).await?;
        return Ok(Some(Decided {
            gate: record,
            partition_state,
        }));
    }
    let to = decided_partition_state(decision.allowed);
    let reason = (!decision.allowed).then(|| quarantine_reason(decision.reasons));
    // The state machine's rule for this change, as one statement: only a
    // partition this gate holds in `validating` moves (the update locks its
    // row); its publication stays as it was.
    let moved = tx
        .move_held_partition(dataset.as_str(), &gate.partition, &gate.gate_id, to, at, OP)
        .await?;
    let mut partition_state = None;
    if moved {
        let entry = TransitionEntry {
            dataset: dataset.as_str(),
            partition: &gate.partition,
            from: Some(PartitionState::Validating),
            to,
            at,
            actor: GATE_ACTOR,
            gate_id: Some(&gate.gate_id),
            reason: reason.as_deref(),
            note: None,
        };
        tx.log_transition(&entry, OP).await?;
        partition_state = Some(to);
        if to == PartitionState::Quarantined
            && let Some(ds) = decision.alert
        {
            crate::alert::manager::record_quarantine(
                tx,
                ds,
                &gate.partition,
                &gate.gate_id,
                decision.reasons,
                at,
            )
            .await?;
        }
    }
    Ok(Some(Decided {
        gate: record,
        partition_state,
    }))
}

/// A denial that is no breach (an error, a timeout): the data earned no
/// quarantine, so the partition goes back to the state it had before the
/// gate took it (with the gate behind that state, and its publication), or
/// out of the registry when it had none. Logged with the denial's reasons.
/// The state it is back in, or `None` (no longer held by the gate, or no
/// state before).
async fn return_partition(
    tx: &mut Tx,
    dataset: &DatasetName,
    gate: &GateRecord,
    decision: &Decision<'_>,
    at: DateTime<Utc>,
) -> Result<Option<PartitionState>, RegistryError> {
    const OP: &str = "record gate decision";
    let Some(before) = tx
        .state_before_gate(dataset.as_str(), &gate.partition, &gate.gate_id, OP)
        .await?
    else {
        return Ok(None);
    };
    let to = before
        .as_ref()
        .map(|(state, behind)| (*state, behind.as_deref()));
    let returned = tx
        .return_held_partition(dataset.as_str(), &gate.partition, &gate.gate_id, to, at, OP)
        .await?;
    if !returned {
        return Ok(None);
    }
    let reason = return_reason(&gate.gate_id, decision);
    tracing::info!(
        dataset = %dataset,
        partition = %gate.partition,
        gate_id = %gate.gate_id,
        to = to.map_or("(none: never gated)", |(state, _)| state.as_str()),
        reason,
        "the partition returns to its state before the gate"
    );
    let Some((state, behind)) = to else {
        return Ok(None);
    };
    let entry = TransitionEntry {
        dataset: dataset.as_str(),
        partition: &gate.partition,
        from: Some(PartitionState::Validating),
        to: state,
        at,
        actor: GATE_ACTOR,
        gate_id: behind,
        reason: Some(&reason),
        note: None,
    };
    tx.log_transition(&entry, OP).await?;
    Ok(Some(state))
}

/// The first of the running gates `others` that is within its deadline;
/// those past it were abandoned and are denied here.
async fn holder_among(
    tx: &mut Tx,
    others: Vec<GateRecord>,
    at: DateTime<Utc>,
) -> Result<Option<GateRecord>, RegistryError> {
    for other in others {
        if other.deadline_at > at {
            return Ok(Some(other));
        }
        let reasons = [ABANDONED.to_owned()];
        let decision = Decision {
            allowed: false,
            basis: GateBasis::Error,
            results: &other.results,
            reasons: &reasons,
            alert: None,
        };
        record_decision(tx, &other, &decision, at).await?;
    }
    Ok(None)
}

/// Holding the partition's lock: whether another gate runs on the partition
/// of `gate` (`Some(holder)`). Running gates past their deadline were
/// abandoned: they are denied here and do not count.
async fn other_running(
    tx: &mut Tx,
    gate: &GateRecord,
    at: DateTime<Utc>,
) -> Result<Option<GateRecord>, RegistryError> {
    let others = tx
        .other_running_gates(&gate.dataset, &gate.partition, &gate.gate_id)
        .await?;
    holder_among(tx, others, at).await
}

/// Moves the partition of `gate` to `validating` behind it.
async fn take_partition(
    tx: &mut Tx,
    gate: &GateRecord,
    at: DateTime<Utc>,
) -> Result<(), RegistryError> {
    let dataset = gate_dataset(gate)?;
    let change = StateChange::new(PartitionState::Validating, GATE_ACTOR).gate(&gate.gate_id);
    // Under the partition's lock no other first row can be inserted.
    if !apply_transition(tx, &dataset, &gate.partition, &change, at).await? {
        return Err(lost_race(
            &dataset,
            &gate.partition,
            PartitionState::Validating,
        ));
    }
    Ok(())
}

/// Applies a [`StateChange`] inside `tx`, so that callers can change a
/// partition together with other rows (a gate's decision). `false` when the
/// partition's first row was inserted concurrently and the change must be
/// retried; [`RegistryError::IllegalTransition`] when the state machine
/// refuses the change (the caller drops, hence rolls back, `tx`).
pub async fn apply_transition(
    tx: &mut Tx,
    dataset: &DatasetName,
    partition: &str,
    change: &StateChange<'_>,
    at: DateTime<Utc>,
) -> Result<bool, RegistryError> {
    let current = tx.partition_for_update(dataset.as_str(), partition).await?;
    let current = match &current {
        Some(row) => Some((row, row.state()?)),
        None => None,
    };
    let from = current.map(|(_, state)| state);
    let (write, entry) = partition_state::apply(dataset.as_str(), partition, current, change, at)
        .map_err(|reason| RegistryError::IllegalTransition {
        dataset: dataset.to_string(),
        partition: partition.to_owned(),
        from,
        to: change.to,
        reason,
    })?;
    let applied = tx.write_partition(&write, from).await?;
    if applied {
        tx.log_transition(&entry, TRANSITION).await?;
    }
    Ok(applied)
}

impl Registry {
    /// Moves a partition to `change.to` if the state machine allows it, and
    /// logs the change, atomically. A refused change is
    /// [`RegistryError::IllegalTransition`] and leaves everything as it was.
    pub async fn transition(
        &self,
        dataset: &DatasetName,
        partition: &str,
        change: StateChange<'_>,
    ) -> Result<(), RegistryError> {
        // Two first gates may race to insert the row; the loser re-reads it
        // and is judged against the winner's state.
        for _ in 0..3 {
            let at = now();
            let mut tx = self.begin(TRANSITION).await?;
            let applied = apply_transition(&mut tx, dataset, partition, &change, at).await?;
            tx.commit(TRANSITION).await?;
            if applied {
                return Ok(());
            }
        }
        Err(lost_race(dataset, partition, change.to))
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
        let key = idempotency_key(new.dataset, new.partition, new.run_id);
        let at = now();
        let mut tx = self.begin(OP).await?;
        tx.lock_gates(new.dataset.as_str(), new.partition, new.request_key)
            .await?;
        // The gate holding the request key answers first; then the live
        // gate of the same dataset, partition and run id. (Without a run
        // id in the body, the two differ: each request gets its own.)
        let by_request = match new.request_key {
            Some(request_key) => tx.gate_by_request_key(request_key, OP).await?,
            None => None,
        };
        let rows = tx
            .gates_by_key_or_running(&key, new.dataset.as_str(), new.partition, OP)
            .await?;
        // Dataset, partition and run id make the idempotency key.
        let by_run = rows
            .iter()
            .find(|g| g.run_id == new.run_id && g.retried_by.is_none())
            .cloned();
        let running: Vec<GateRecord> = rows
            .into_iter()
            .filter(|g| g.status == GateStatus::Running)
            .collect();
        let retry = match repeat_of(new.request_hash, by_request, by_run, at) {
            Ok(answer) => {
                tx.commit(OP).await?;
                return Ok(answer);
            }
            Err(retry) => retry,
        };
        for old in &retry {
            if !old.status.is_decided() {
                let reasons = [ABANDONED.to_owned()];
                let decision = Decision {
                    allowed: false,
                    basis: GateBasis::Error,
                    results: &old.results,
                    reasons: &reasons,
                    alert: None,
                };
                record_decision(&mut tx, old, &decision, at).await?;
            }
            tx.set_retried_by(&old.gate_id, new.gate_id, OP).await?;
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
        if start && holder_among(&mut tx, running, at).await?.is_none() {
            record.status = GateStatus::Running;
            record.started_at = Some(at);
        }
        if !tx.insert_gate(&record, &key, OP).await? {
            // Unreachable while every writer takes the locks above; roll
            // back rather than record half of it.
            return Err(RegistryError::Unavailable {
                op: OP,
                reason: "another request with the same key was recorded at the same time; retry"
                    .to_owned(),
            });
        }
        if record.status == GateStatus::Running {
            take_partition(&mut tx, &record, at).await?;
        }
        tx.commit(OP).await?;
        Ok(Admission::Created(record))
    }

    /// Starts the queued gate on behalf of `agent` if no other gate runs on
    /// its partition: it becomes `running` and its partition `validating`
    /// (keeping an earlier publication visible). A running gate past its
    /// deadline was abandoned; it is denied (basis `error`) and no longer
    /// blocks.
    pub async fn start_gate(&self, gate: &GateRecord, agent: &str) -> Result<Start, RegistryError> {
        const OP: &str = "start gate";
        let at = now();
        let mut tx = self.begin(OP).await?;
        tx.lock_gates(&gate.dataset, &gate.partition, None).await?;
        let start = match other_running(&mut tx, gate, at).await? {
            Some(holder) => Some(Start::Busy(holder)),
            None => {
                if tx.start_queued_gate(&gate.gate_id, agent, at, OP).await? {
                    take_partition(&mut tx, gate, at).await?;
                    let mut started = gate.clone();
                    started.status = GateStatus::Running;
                    started.started_at = Some(at);
                    started.agent = agent.to_owned();
                    Some(Start::Started(started))
                } else {
                    None
                }
            }
        };
        tx.commit(OP).await?;
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
        // it, and `move_held_partition` locks that row.
        let mut tx = self.begin(OP).await?;
        let decided = record_decision(&mut tx, gate, decision, at).await?;
        tx.commit(OP).await?;
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
    /// ran or that is past its deadline, and returns the partitions they
    /// held in `validating` to their state before: what an agent does when
    /// it starts, for the gates it was running when it stopped. Returns the
    /// gates denied.
    pub async fn abandon_gates(
        &self,
        agent: &str,
        lineage: Option<&str>,
        reason: &str,
    ) -> Result<Vec<Decided>, RegistryError> {
        const OP: &str = "recover abandoned gates";
        let found = self.undecided_gates(agent, lineage, OP).await?;
        self.deny_undecided(found, reason, OP, |_, _| true).await
    }

    /// Denies (basis `error`, `reason`) every undecided gate, whichever
    /// agent ran it, that is past its deadline by more than `grace`: its
    /// agent stopped without deciding. Their partitions return to their
    /// state before the gate. Returns the gates denied.
    pub async fn sweep_gates(
        &self,
        grace: std::time::Duration,
        reason: &str,
    ) -> Result<Vec<Decided>, RegistryError> {
        const OP: &str = "sweep abandoned gates";
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let Some(cutoff) = now().checked_sub_signed(grace) else {
            return Ok(Vec::new());
        };
        let found = self.undecided_gates_past(cutoff, OP).await?;
        // Decided meanwhile, or its deadline moved: left alone.
        let abandoned = |gate: &GateRecord, at: DateTime<Utc>| {
            gate.deadline_at
                .checked_add_signed(grace)
                .is_some_and(|limit| limit < at)
        };
        self.deny_undecided(found, reason, OP, abandoned).await
    }

    /// Denies each of `found` (basis `error`, `reason`) that is still
    /// undecided and still `abandoned` once its partition is locked, one
    /// transaction per gate. Returns the gates denied.
    async fn deny_undecided(
        &self,
        found: Vec<GateRecord>,
        reason: &str,
        op: &'static str,
        abandoned: impl Fn(&GateRecord, DateTime<Utc>) -> bool,
    ) -> Result<Vec<Decided>, RegistryError> {
        let reasons = [reason.to_owned()];
        let mut denied = Vec::new();
        for gate in found {
            let at = now();
            let mut tx = self.begin(op).await?;
            tx.lock_gates(&gate.dataset, &gate.partition, None).await?;
            let decided = match tx.gate(&gate.gate_id, op).await? {
                Some(current) if !current.status.is_decided() && abandoned(&current, at) => {
                    let decision = Decision {
                        allowed: false,
                        basis: GateBasis::Error,
                        results: &current.results,
                        reasons: &reasons,
                        alert: None,
                    };
                    record_decision(&mut tx, &current, &decision, at).await?
                }
                _ => None,
            };
            tx.commit(op).await?;
            denied.extend(decided);
        }
        Ok(denied)
    }

    /// A person's review of a quarantined partition: it passes (`by` and
    /// `reason` logged), and the gate that quarantined it becomes allowed with basis
    /// `override`, so a repeat of that gate's request now allows. Returns the
    /// gate, or `None` if the partition had none.
    pub async fn override_quarantine(
        &self,
        dataset: &DatasetName,
        partition: &str,
        by: &Actor,
        reason: &str,
    ) -> Result<Option<GateRecord>, RegistryError> {
        const OP: &str = "override quarantine";
        let at = now();
        let mut tx = self.begin(OP).await?;
        tx.lock_gates(dataset.as_str(), partition, None).await?;
        let holder = tx.partition_gate(dataset.as_str(), partition, OP).await?;
        let change = StateChange::new(PartitionState::Passed, &by.name)
            .expecting(PartitionState::Quarantined)
            .reason(reason)
            .note(by.note.as_deref());
        let change = match holder.as_deref() {
            Some(gate_id) => change.gate(gate_id),
            None => change,
        };
        if !apply_transition(&mut tx, dataset, partition, &change, at).await? {
            return Err(lost_race(dataset, partition, PartitionState::Passed));
        }
        let gate = match &holder {
            Some(gate_id) => match tx.gate(gate_id, OP).await? {
                Some(mut gate) => {
                    gate.reasons
                        .push(format!("quarantine overridden by {by}: {reason}"));
                    gate.status = GateStatus::Allowed;
                    gate.basis = Some(GateBasis::Override);
                    gate.decided_at = Some(at);
                    tx.replace_gate_decision(&gate, OP).await?;
                    Some(gate)
                }
                None => None,
            },
            None => None,
        };
        tx.commit(OP).await?;
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
        actor: &Actor,
    ) -> Result<PartitionRecord, RegistryError> {
        const OP: &str = "publish partition";
        let at = now();
        let refuse =
            |from: Option<PartitionState>, reason: String| RegistryError::IllegalTransition {
                dataset: dataset.to_string(),
                partition: partition.to_owned(),
                from,
                to: PartitionState::Published,
                reason,
            };
        let mut tx = self.begin(OP).await?;
        tx.lock_gates(dataset.as_str(), partition, None).await?;
        let Some(gate) = tx.gate(gate_id, OP).await? else {
            return Err(RegistryError::NotFound {
                what: format!("gate {gate_id}"),
            });
        };
        let current = tx
            .partition_publication(dataset.as_str(), partition, OP)
            .await?;
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
            let change = StateChange::new(PartitionState::Published, &actor.name)
                .gate(gate_id)
                .note(actor.note.as_deref());
            if !apply_transition(&mut tx, dataset, partition, &change, at).await? {
                return Err(lost_race(dataset, partition, PartitionState::Published));
            }
        }
        tx.commit(OP).await?;
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

    fn gate(id: &str, hash: &str, status: GateStatus, basis: Option<GateBasis>) -> GateRecord {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        GateRecord {
            gate_id: id.into(),
            dataset: "orders".into(),
            partition: "2026-11-20".into(),
            run_id: "r1".into(),
            request_key: Some("k".into()),
            request_hash: hash.into(),
            status,
            basis,
            results: Vec::new(),
            reasons: Vec::new(),
            agent: "a".into(),
            created_at: at,
            started_at: None,
            deadline_at: at + chrono::Duration::minutes(5),
            decided_at: None,
            retried_by: None,
        }
    }

    #[test]
    fn repeats_replay_reuse_or_retry() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let allowed = gate("g1", "h", GateStatus::Allowed, Some(GateBasis::Checks));
        let errored = gate("g2", "h", GateStatus::Denied, Some(GateBasis::Error));
        // A key reused for another request.
        assert_eq!(
            repeat_of("other", Some(allowed.clone()), None, now),
            Ok(Admission::KeyReused(allowed.clone()))
        );
        // A decision is replayed, by key or by run id.
        assert_eq!(
            repeat_of("h", Some(allowed.clone()), None, now),
            Ok(Admission::Existing(allowed.clone()))
        );
        assert_eq!(
            repeat_of("h", None, Some(allowed.clone()), now),
            Ok(Admission::Existing(allowed.clone()))
        );
        // A denial for an error is evaluated again, once even if found twice.
        assert_eq!(
            repeat_of("h", Some(errored.clone()), Some(errored.clone()), now),
            Err(vec![errored.clone()])
        );
        // Nothing to repeat: a new gate.
        assert_eq!(repeat_of("h", None, None, now), Err(vec![]));
    }
}
