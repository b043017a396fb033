//! [`GateService`]: admits gate requests, runs them one per partition, and
//! records their decisions; publications, overrides and partition reads go
//! through it too, so every rule of the gate lives in one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::decision::{RowProbe, Verdict, judge};
use super::ledger::{Admission, Decided, Decision, NewGate, Start};
use super::quarantine::{LogQuarantine, Quarantine, QuarantineHook, Release};
use super::request::{
    GateRequest, MAX_REQUEST_KEY, ValidRequest, find_dataset, parse_partition, refuse_future,
    validate_token,
};
use super::status::{ABANDONED, GATE_ACTOR};
use super::{Gate, GateError};
use crate::check::{CheckResult, Runner};
use crate::config::Config;
use crate::domain::{Caller, GateBasis, GateStatus, Instance, PartitionState};
use crate::metrics::Metrics;
use crate::registry::{GateRecord, PartitionRecord, PublishedPartition, Registry, RegistryError};

/// How long after its deadline an undecided gate counts as abandoned: time
/// for its agent to record the timeout it decided at the deadline.
const RECORD_GRACE: Duration = Duration::from_secs(10);

/// How much longer than a gate's deadline a caller waits for its decision.
pub const DECISION_MARGIN: Duration = Duration::from_secs(5);

/// Gates kept on a partition page.
const PARTITION_GATES: u32 = 20;

/// The reason recorded for the gates an agent was running when it shut down.
const SHUT_DOWN: &str = "the agent shut down before deciding; a new request evaluates again";

/// How the service runs gates.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// Names this agent in the registry ([`Instance::id`]): distinct for
    /// each start of each agent sharing a registry.
    pub agent_id: String,
    /// Gates recorded by an agent whose id begins with this are from an
    /// earlier start of this agent ([`Instance::lineage`]): start-up
    /// recovery denies them (basis `error`) like its own.
    pub lineage: Option<String>,
    /// The longest a gate may take from request to decision, waiting for
    /// earlier gates on its partition included. A request may ask for less
    /// (`?wait=`). Past it the gate denies with basis `timeout`.
    pub timeout: Duration,
    /// How often a gate waiting for another agent's gate on the same
    /// partition looks again.
    pub busy_poll: Duration,
    /// How often the service looks for gates abandoned by any agent
    /// sharing the registry (past their deadline by more than
    /// [`ABANDONED_AFTER`]) and denies them.
    pub sweep_every: Duration,
}

/// How long past its deadline an undecided gate is swept (denied, basis
/// `error`) by any agent sharing the registry.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(30);

impl Default for GateOptions {
    fn default() -> Self {
        Self {
            agent_id: Instance::detect(None).id().to_owned(),
            lineage: None,
            timeout: Duration::from_secs(300),
            busy_poll: Duration::from_millis(200),
            sweep_every: Duration::from_secs(10),
        }
    }
}

/// The body of `POST .../partitions/{p}/publish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The gate that allowed the partition.
    pub gate_id: String,
    /// Who publishes. The transition log's actor is the request's token
    /// (this is kept as a note), or this when no tokens are configured, or
    /// `anonymous`.
    #[serde(default)]
    pub by: Option<String>,
}

/// The body of `POST .../partitions/{p}/override`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// `allow`: the quarantined partition passes and may be published.
    pub decision: String,
    /// Why; kept in the partition's history and the gate's reasons.
    pub reason: String,
    /// Who decided: kept as a note beside the actor, the request's token;
    /// the actor itself when no tokens are configured (else `anonymous`).
    #[serde(default)]
    pub by: Option<String>,
}

/// A partition's registry state, its history and its latest gates
/// (`GET /api/v1/datasets/{d}/partitions/{p}`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PartitionView {
    #[serde(flatten)]
    pub record: PartitionRecord,
    /// Newest first.
    pub gates: Vec<Gate>,
}

/// Runs gates and answers for them. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct GateService {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    metrics: Arc<Metrics>,
    options: GateOptions,
    hook: RwLock<Arc<dyn QuarantineHook>>,
    /// Stops the sweeper.
    stop: CancellationToken,
    /// Gates this agent runs, by id: what they are doing now.
    live: Mutex<HashMap<String, Live>>,
    /// One lock per partition with a gate in this agent, so that its gates
    /// run one after the other (the registry serialises across agents).
    partitions: Mutex<HashMap<(String, String), PartitionLock>>,
}

struct Live {
    view: watch::Sender<Gate>,
    /// The registry's record as this agent last wrote it.
    record: GateRecord,
    task: Option<AbortHandle>,
}

type PartitionLock = Arc<tokio::sync::Mutex<()>>;
type PartitionGuard = tokio::sync::OwnedMutexGuard<()>;

/// A gate's place in the line of its partition's gates in this agent: the
/// lock, and the guard when the gate already holds it.
struct Turn {
    key: (String, String),
    lock: PartitionLock,
    guard: Option<PartitionGuard>,
}

/// What a gate's evaluation came to.
enum Evaluated {
    Verdict {
        verdict: Verdict,
        results: Vec<CheckResult>,
    },
    /// Someone else decided it meanwhile (it was abandoned past its
    /// deadline): that decision stands.
    AlreadyDecided(Box<GateRecord>),
}

impl GateService {
    /// A service with the default options and the logging quarantine hook.
    pub fn new(registry: Registry, metrics: Arc<Metrics>) -> Self {
        Self::with_options(registry, metrics, GateOptions::default())
    }

    /// A service with `options`. Within a Tokio runtime it also starts its
    /// sweeper: every `options.sweep_every`, gates of any agent left
    /// undecided past their deadline by more than [`ABANDONED_AFTER`] are
    /// denied (basis `error`), until [`shutdown`](Self::shutdown) or the
    /// last clone is dropped.
    pub fn with_options(registry: Registry, metrics: Arc<Metrics>, options: GateOptions) -> Self {
        let service = Self {
            inner: Arc::new(Inner {
                registry,
                metrics,
                options,
                hook: RwLock::new(Arc::new(LogQuarantine)),
                live: Mutex::new(HashMap::new()),
                partitions: Mutex::new(HashMap::new()),
                stop: CancellationToken::new(),
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = Arc::downgrade(&service.inner);
            let stop = service.inner.stop.clone();
            let every = service.inner.options.sweep_every;
            runtime.spawn(async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(every) => {}
                    }
                    let Some(inner) = inner.upgrade() else { return };
                    let service = Self { inner };
                    if let Err(e) = service.sweep().await {
                        tracing::warn!(error = %e, "could not sweep abandoned gates");
                    }
                }
            });
        }
        service
    }

    /// Denies (basis `error`) the gates of any agent sharing the registry
    /// that are past their deadline by more than [`ABANDONED_AFTER`],
    /// returning their partitions to their state before the gate. The
    /// sweeper calls it periodically.
    pub async fn sweep(&self) -> Result<Vec<Gate>, GateError> {
        let denied = self
            .inner
            .registry
            .sweep_gates(ABANDONED_AFTER, ABANDONED)
            .await?;
        let mut gates = Vec::with_capacity(denied.len());
        for decided in denied {
            tracing::warn!(
                gate_id = %decided.gate.gate_id,
                dataset = %decided.gate.dataset,
                partition = %decided.gate.partition,
                agent = %decided.gate.agent,
                "a gate abandoned past its deadline is denied"
            );
            self.inner
                .metrics
                .record_gate(&decided.gate.dataset, "deny", Duration::ZERO);
            self.forget_live(&decided.gate.gate_id);
            gates.push(Gate::from(decided.gate));
        }
        Ok(gates)
    }

    /// Replaces what is told about quarantines (the alerting component).
    pub fn set_quarantine_hook(&self, hook: Arc<dyn QuarantineHook>) {
        *self.inner.hook.write().unwrap_or_else(|e| e.into_inner()) = hook;
    }

    pub fn options(&self) -> &GateOptions {
        &self.inner.options
    }

    /// Admits a gate request and starts it in the background, or returns
    /// the gate it repeats. The answer is the gate as it stands (usually
    /// `queued`); [`wait`](Self::wait) for its decision.
    pub async fn submit(
        &self,
        config: Arc<Config>,
        runner: Arc<Runner>,
        req: GateRequest,
        idempotency_key: Option<String>,
    ) -> Result<Gate, GateError> {
        let timeout = self.inner.options.timeout;
        self.submit_within(config, runner, req, idempotency_key, timeout)
            .await
    }

    /// Like [`submit`](Self::submit), with a deadline shorter than the
    /// service's: a caller that waits `timeout` for the answer gets a
    /// decision within it (a denial with basis `timeout` at worst).
    pub async fn submit_within(
        &self,
        config: Arc<Config>,
        runner: Arc<Runner>,
        req: GateRequest,
        idempotency_key: Option<String>,
        timeout: Duration,
    ) -> Result<Gate, GateError> {
        let valid = req.validate(&config)?;
        if let Some(key) = &idempotency_key {
            validate_token("Idempotency-Key", key, MAX_REQUEST_KEY)?;
        }
        let timeout = timeout.min(self.inner.options.timeout);
        let gate_id = uuid::Uuid::new_v4().to_string();
        let run_id = valid.run_id.clone().unwrap_or_else(|| gate_id.clone());
        let deadline = Instant::now() + timeout;
        let deadline_at = Utc::now()
            + chrono::Duration::from_std(timeout + RECORD_GRACE).unwrap_or(chrono::Duration::MAX);
        let new = NewGate {
            gate_id: &gate_id,
            dataset: &valid.dataset.name,
            partition: &valid.partition,
            run_id: &run_id,
            request_key: idempotency_key.as_deref(),
            request_hash: &valid.hash,
            agent: &self.inner.options.agent_id,
            deadline_at,
        };
        // When no gate of this agent holds the partition, the new gate
        // starts in the same transaction that records it.
        let key = (valid.dataset.name.to_string(), valid.partition.clone());
        let lock = self.partition_lock(&key);
        let guard = lock.clone().try_lock_owned().ok();
        let admission = self.inner.registry.admit_gate(&new, guard.is_some()).await;
        let admission = match admission {
            Ok(Admission::Created(record)) => {
                let gate = Gate::from(record.clone());
                let turn = Turn { key, lock, guard };
                self.spawn(record, valid, config, runner, turn, deadline, timeout);
                return Ok(gate);
            }
            other => other,
        };
        drop(guard);
        self.release_partition_lock(&key, lock);
        match admission? {
            Admission::Created(_) => unreachable!("handled above"),
            Admission::Existing(record) => {
                tracing::debug!(gate_id = %record.gate_id, "a repeated gate request");
                Ok(self.view(record))
            }
            Admission::KeyReused(record) => Err(GateError::KeyReused {
                key: idempotency_key.unwrap_or_default(),
                gate_id: record.gate_id,
            }),
        }
    }

    /// Submits the request with a deadline of `wait` and waits for the
    /// decision: what `POST /api/v1/gates?wait=` answers. A new gate is
    /// decided within `wait` (a denial with basis `timeout` at worst); a
    /// repeated request may find a gate under way that is not.
    pub async fn decide_within(
        &self,
        config: Arc<Config>,
        runner: Arc<Runner>,
        req: GateRequest,
        idempotency_key: Option<String>,
        wait: Duration,
    ) -> Result<Gate, GateError> {
        let gate = self
            .submit_within(config, runner, req, idempotency_key, wait)
            .await?;
        // The gate decides at its deadline at the latest; the margin lets
        // that decision be recorded and reach us.
        self.wait(&gate.gate_id, wait + DECISION_MARGIN).await
    }

    /// The gate as it stands.
    pub async fn get(&self, gate_id: &str) -> Result<Gate, GateError> {
        if let Some(gate) = self.live_view(gate_id) {
            return Ok(gate);
        }
        match self.inner.registry.gate(gate_id).await? {
            Some(record) => Ok(record.into()),
            None => Err(GateError::UnknownGate {
                gate_id: gate_id.to_owned(),
            }),
        }
    }

    /// Waits up to `timeout` for the gate's decision and returns the gate as
    /// it then stands (still undecided if the time ran out first). A denial
    /// that could not be recorded is [`GateError::Unavailable`].
    pub async fn wait(&self, gate_id: &str, timeout: Duration) -> Result<Gate, GateError> {
        let until = tokio::time::Instant::now() + timeout;
        let subscription = {
            let live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
            live.get(gate_id).map(|l| l.view.subscribe())
        };
        if let Some(mut rx) = subscription {
            let decided = tokio::time::timeout_at(until, rx.wait_for(Gate::is_decided))
                .await
                .map(|r| r.map(|gate| gate.clone()));
            match decided {
                Ok(Ok(gate)) => return answer(gate),
                Err(_) => return Ok(rx.borrow().clone()),
                // The gate left the live set: it is decided and recorded.
                Ok(Err(_)) => {}
            }
        }
        // Another agent runs it, or it is recorded: read the registry until
        // it is decided.
        let mut pause = Duration::from_millis(20);
        loop {
            let gate = self.get(gate_id).await?;
            if gate.is_decided() || tokio::time::Instant::now() >= until {
                return answer(gate);
            }
            tokio::time::sleep_until(until.min(tokio::time::Instant::now() + pause)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Records that the pipeline published `partition` on the strength of
    /// the gate that allowed it. Publishing again with the same gate is a
    /// no-op; without an allow for this partition it is a conflict (409).
    pub async fn publish(
        &self,
        config: &Config,
        dataset: &str,
        partition: &str,
        req: PublishRequest,
        caller: &Caller,
    ) -> Result<PartitionView, GateError> {
        let ds = find_dataset(config, dataset)?;
        let (partition, scope) = parse_partition(ds, partition)?;
        refuse_future(ds, &scope, config.agent.timezone, Utc::now())?;
        validate_token("gate_id", &req.gate_id, 64)?;
        if let Some(by) = &req.by {
            validate_token("by", by, 128)?;
        }
        let by = caller.actor(req.by.as_deref());
        match self
            .inner
            .registry
            .publish(&ds.name, &partition, &req.gate_id, &by)
            .await
        {
            Ok(_) => {}
            Err(RegistryError::NotFound { .. }) => {
                return Err(GateError::Conflict(format!(
                    "gate {} does not exist: nothing allowed {} partition `{partition}` to be published",
                    req.gate_id, ds.name
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(dataset = %ds.name, partition, gate_id = %req.gate_id, by = %by, "published");
        self.partition(config, dataset, &partition).await
    }

    /// A person's review of a quarantined partition: `allow` lets it pass (and
    /// the gate that quarantined it now answers allowed, basis `override`).
    pub async fn override_(
        &self,
        config: &Config,
        dataset: &str,
        partition: &str,
        req: OverrideRequest,
        caller: &Caller,
    ) -> Result<PartitionView, GateError> {
        let ds = find_dataset(config, dataset)?;
        let (partition, _) = parse_partition(ds, partition)?;
        if req.decision != "allow" {
            return Err(GateError::Invalid {
                field: "decision",
                message: format!(
                    "unknown decision `{}`: the only override is `allow` (a quarantined partition \
                     stays quarantined until a new gate or an override lets it pass)",
                    req.decision
                ),
            });
        }
        if let Some(by) = &req.by {
            validate_token("by", by, 128)?;
        }
        let by = caller.actor(req.by.as_deref());
        let reason = req.reason.trim();
        if reason.is_empty() {
            return Err(GateError::Invalid {
                field: "reason",
                message: "an override needs a reason".to_owned(),
            });
        }
        let gate = self
            .inner
            .registry
            .override_quarantine(&ds.name, &partition, &by, reason)
            .await?;
        tracing::warn!(
            dataset = %ds.name,
            partition,
            by = %by,
            reason,
            gate_id = gate.as_ref().map_or("-", |g| g.gate_id.as_str()),
            "a quarantine was overridden"
        );
        self.tell_release(Release {
            dataset: ds.name.to_string(),
            partition: partition.clone(),
            gate_id: gate.map(|g| g.gate_id),
            by: by.to_string(),
        });
        self.partition(config, dataset, &partition).await
    }

    /// A partition's state, history and latest gates.
    pub async fn partition(
        &self,
        config: &Config,
        dataset: &str,
        partition: &str,
    ) -> Result<PartitionView, GateError> {
        let ds = find_dataset(config, dataset)?;
        let (partition, _) = parse_partition(ds, partition)?;
        // A read for the API: on the registry's read pool.
        let registry = &self.inner.registry.reads();
        let Some(record) = registry.partition(&ds.name, &partition).await? else {
            return Err(GateError::UnknownPartition {
                dataset: ds.name.to_string(),
                partition,
            });
        };
        let gates = registry
            .partition_gates(&ds.name, &partition, PARTITION_GATES)
            .await?
            .into_iter()
            .map(|r| self.view(r))
            .collect();
        Ok(PartitionView { record, gates })
    }

    /// The newest published partition of `dataset`: what consumers read.
    pub async fn published(
        &self,
        config: &Config,
        dataset: &str,
    ) -> Result<PublishedPartition, GateError> {
        let ds = find_dataset(config, dataset)?;
        self.inner
            .registry
            .reads()
            .latest_published(&ds.name)
            .await?
            .ok_or_else(|| GateError::NothingPublished {
                dataset: ds.name.to_string(),
            })
    }

    /// The newest gates of `dataset`, newest first.
    pub async fn recent_of(&self, dataset: &str, limit: u32) -> Result<Vec<Gate>, GateError> {
        Ok(self
            .inner
            .registry
            .reads()
            .dataset_gates(dataset, limit)
            .await?
            .into_iter()
            .map(|r| self.view(r))
            .collect())
    }

    /// The newest gates of every dataset, newest first.
    pub async fn recent(&self, limit: u32) -> Result<Vec<Gate>, GateError> {
        Ok(self
            .inner
            .registry
            .reads()
            .recent_gates(limit)
            .await?
            .into_iter()
            .map(|r| self.view(r))
            .collect())
    }

    /// Gates this agent is running or that wait for their turn.
    pub fn in_flight(&self) -> usize {
        let live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        live.values()
            .filter(|l| !l.view.borrow().is_decided())
            .count()
    }

    /// Denies (basis `error`) the gates an earlier start of this agent
    /// ([`GateOptions::lineage`]) left undecided when it stopped, and any
    /// gate past its deadline, returning the partitions they held in
    /// `validating` to their state before: call once at start-up, before
    /// serving.
    /// A new request for one of them evaluates again.
    pub async fn recover_on_startup(&self, config: &Config) -> Result<Vec<Gate>, GateError> {
        let denied = self
            .inner
            .registry
            .abandon_gates(
                &self.inner.options.agent_id,
                self.inner.options.lineage.as_deref(),
                ABANDONED,
            )
            .await?;
        let mut gates = Vec::with_capacity(denied.len());
        for decided in denied {
            tracing::warn!(
                gate_id = %decided.gate.gate_id,
                dataset = %decided.gate.dataset,
                partition = %decided.gate.partition,
                "a gate left undecided when the agent stopped is denied"
            );
            self.inner
                .metrics
                .record_gate(&decided.gate.dataset, "deny", Duration::ZERO);
            self.tell_quarantine(config, &decided);
            gates.push(Gate::from(decided.gate));
        }
        Ok(gates)
    }

    /// Stops the gates this agent is running and records them as denied
    /// (basis `error`), so that nothing waits for a decision that will not
    /// come. Call on shutdown.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        let running: Vec<(GateRecord, Option<AbortHandle>)> = {
            let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
            live.values_mut()
                .filter(|l| !l.view.borrow().is_decided())
                .map(|l| (l.record.clone(), l.task.take()))
                .collect()
        };
        for (record, task) in running {
            let gate_id = record.gate_id.as_str();
            if let Some(task) = task {
                task.abort();
            }
            let reasons = [SHUT_DOWN.to_owned()];
            let decision = Decision {
                allowed: false,
                basis: GateBasis::Error,
                results: &[],
                reasons: &reasons,
                alert: None,
            };
            match self.inner.registry.decide_gate(&record, &decision).await {
                Ok(decided) => {
                    self.finish_live(gate_id, Gate::from(decided.gate));
                }
                Err(e) => {
                    tracing::warn!(gate_id, error = %e, "could not record the denial of a gate at shutdown");
                }
            }
        }
    }

    // ---- running a gate ----

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &self,
        record: GateRecord,
        valid: ValidRequest,
        config: Arc<Config>,
        runner: Arc<Runner>,
        turn: Turn,
        deadline: Instant,
        timeout: Duration,
    ) {
        let gate_id = record.gate_id.clone();
        {
            let (view, _) = watch::channel(Gate::from(record.clone()));
            let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
            live.insert(
                gate_id.clone(),
                Live {
                    view,
                    record: record.clone(),
                    task: None,
                },
            );
        }
        self.update_queue_depth();
        let span = tracing::info_span!(
            "gate",
            gate_id = %record.gate_id,
            dataset = %record.dataset,
            partition = %record.partition,
            run_id = %record.run_id,
        );
        let service = self.clone();
        let task = tokio::spawn(
            async move {
                service
                    .run(record, valid, config, runner, turn, deadline, timeout)
                    .await
            }
            .instrument(span),
        );
        let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = live.get_mut(&gate_id) {
            l.task = Some(task.abort_handle());
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        self,
        record: GateRecord,
        valid: ValidRequest,
        config: Arc<Config>,
        runner: Arc<Runner>,
        turn: Turn,
        deadline: Instant,
        timeout: Duration,
    ) {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(deadline);
        let Turn { key, lock, guard } = turn;
        // Gates of one partition run one after the other; the time spent
        // waiting for the turn counts against the deadline.
        let guard = match guard {
            Some(guard) => Some(guard),
            None => tokio::time::timeout_at(deadline, lock.clone().lock_owned())
                .await
                .ok(),
        };
        let evaluated = match &guard {
            None => None,
            Some(_) => tokio::time::timeout_at(deadline, self.evaluate(&record, &valid, &runner))
                .await
                .ok(),
        };
        let (verdict, results) = match evaluated {
            Some(Evaluated::AlreadyDecided(decided)) => {
                self.finish_live(&record.gate_id, Gate::from(*decided));
                drop(guard);
                self.release_partition_lock(&key, lock);
                return;
            }
            Some(Evaluated::Verdict { verdict, results }) => (verdict, results),
            None => {
                let phase = match self.live_view(&record.gate_id).map(|g| g.status) {
                    Some(GateStatus::Running) => "the checks were still running",
                    _ => "it was still waiting for earlier gates on this partition",
                };
                let verdict = Verdict {
                    allowed: false,
                    basis: GateBasis::Timeout,
                    reasons: vec![format!(
                        "no decision within {}: {phase}",
                        humantime::format_duration(timeout)
                    )],
                };
                (verdict, Vec::new())
            }
        };
        let current = self.live_record(&record.gate_id).unwrap_or(record);
        self.decide(&config, &current, verdict, results, started)
            .await;
        drop(guard);
        self.release_partition_lock(&key, lock);
    }

    /// Takes the partition in the registry (waiting for another agent's
    /// gate on it), runs the checks on the gate relation and judges them.
    async fn evaluate(
        &self,
        record: &GateRecord,
        valid: &ValidRequest,
        runner: &Runner,
    ) -> Evaluated {
        let registry = &self.inner.registry;
        let agent = &self.inner.options.agent_id;
        // A gate admitted while its partition was free is running already.
        if record.status == GateStatus::Queued {
            loop {
                match registry.start_gate(record, agent).await {
                    Ok(Start::Started(started)) => {
                        self.set_live_record(started);
                        break;
                    }
                    Ok(Start::Busy(holder)) => {
                        tracing::debug!(holder = %holder.gate_id, "another agent's gate runs on this partition");
                        tokio::time::sleep(self.inner.options.busy_poll).await;
                    }
                    Ok(Start::NotQueued(current)) => {
                        return Evaluated::AlreadyDecided(Box::new(current));
                    }
                    Err(e) => {
                        return Evaluated::Verdict {
                            verdict: Verdict {
                                allowed: false,
                                basis: GateBasis::Error,
                                reasons: vec![format!("the gate could not start: {e}")],
                            },
                            results: Vec::new(),
                        };
                    }
                }
            }
        }
        self.update_live(&record.gate_id, |g| {
            g.status = GateStatus::Running;
            g.progress = 0.1;
        });
        let ds = &valid.dataset;
        // The partition's rows are counted with the checks (an empty one is
        // a breach), in the same scan where they scan it.
        let probe = RowProbe::of(ds);
        let probed = probe.as_ref().map(|p| p.add_to(ds));
        let checked = probed.as_ref().unwrap_or(ds);
        let pending = runner
            .observe_table(checked, &ds.gate_table, &valid.scope)
            .await;
        self.update_live(&record.gate_id, |g| g.progress = 0.8);
        let now = Utc::now();
        let scheduled_at = runner.scheduled_time(&valid.scope, now);
        // Not recorded as check history: the gate looks at staged data, not
        // at the table the history describes.
        let mut results = match runner
            .finish(checked, pending, scheduled_at, now, false)
            .await
        {
            Ok(results) => results,
            Err(e) => e.into_results(),
        };
        let rows = probe.and_then(|p| p.take(&mut results));
        Evaluated::Verdict {
            verdict: judge(ds, &valid.partition, &results, rows.as_ref()),
            results,
        }
    }

    /// Records the decision with the partition's new state, then tells the
    /// waiting callers, the metrics and (on a quarantine) the hook.
    async fn decide(
        &self,
        config: &Config,
        record: &GateRecord,
        verdict: Verdict,
        results: Vec<CheckResult>,
        started: Instant,
    ) {
        let decision = Decision {
            allowed: verdict.allowed,
            basis: verdict.basis,
            results: &results,
            reasons: &verdict.reasons,
            alert: config.dataset(&record.dataset),
        };
        let recorded = self.inner.registry.decide_gate(record, &decision).await;
        let elapsed = started.elapsed();
        match recorded {
            Ok(decided) => {
                let outcome = if decided.gate.status == GateStatus::Allowed {
                    "allow"
                } else {
                    "deny"
                };
                self.inner
                    .metrics
                    .record_gate(&record.dataset, outcome, elapsed);
                tracing::info!(
                    decision = outcome,
                    basis = decided.gate.basis.map_or("-", GateBasis::as_str),
                    partition_state = decided.partition_state.map_or("-", PartitionState::as_str),
                    elapsed_ms = elapsed.as_millis() as u64,
                    reasons = %decided.gate.reasons.join("; "),
                    "the gate decided"
                );
                self.tell_quarantine(config, &decided);
                self.hook().on_decided(&decided.gate);
                if decided.partition_state == Some(PartitionState::Passed)
                    && decided.gate.status == GateStatus::Allowed
                {
                    self.tell_release(Release {
                        dataset: record.dataset.clone(),
                        partition: record.partition.clone(),
                        gate_id: Some(record.gate_id.clone()),
                        by: GATE_ACTOR.to_owned(),
                    });
                }
                self.finish_live(&record.gate_id, Gate::from(decided.gate));
            }
            Err(e) => {
                // Fail closed: whatever the checks said, a decision that is
                // not recorded cannot be published; the caller hears 503.
                self.inner
                    .metrics
                    .record_gate(&record.dataset, "deny", elapsed);
                tracing::error!(error = %e, "the gate's decision could not be recorded; it denies");
                let mut reasons = verdict.reasons.clone();
                reasons.push(format!("the decision could not be recorded: {e}"));
                self.update_live(&record.gate_id, |g| {
                    g.status = GateStatus::Denied;
                    g.basis = Some(GateBasis::Error);
                    g.progress = 1.0;
                    g.results = results.clone();
                    g.reasons = reasons.clone();
                    g.unrecorded = Some(e.to_string());
                });
                self.update_queue_depth();
                self.record_later(config, record.clone(), results, reasons);
            }
        }
    }

    /// Keeps trying to record a denial the registry refused, so that the
    /// record ends up saying what callers were told.
    fn record_later(
        &self,
        config: &Config,
        record: GateRecord,
        results: Vec<CheckResult>,
        reasons: Vec<String>,
    ) {
        let gate_id = record.gate_id.clone();
        let service = self.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let mut pause = Duration::from_secs(1);
            let give_up = Instant::now() + Duration::from_secs(600);
            while Instant::now() < give_up {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
                let decision = Decision {
                    allowed: false,
                    basis: GateBasis::Error,
                    results: &results,
                    reasons: &reasons,
                    alert: None,
                };
                if let Ok(decided) = service.inner.registry.decide_gate(&record, &decision).await {
                    tracing::info!(gate_id, "the gate's denial is recorded after all");
                    service.tell_quarantine(&config, &decided);
                    service.hook().on_decided(&decided.gate);
                    service.finish_live(&gate_id, Gate::from(decided.gate));
                    return;
                }
            }
            // Left to the recovery of abandoned gates (it is past its
            // deadline by now): stop answering for it from memory.
            service.forget_live(&gate_id);
        });
    }

    fn hook(&self) -> Arc<dyn QuarantineHook> {
        self.inner
            .hook
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn tell_release(&self, release: Release) {
        self.hook().on_release(&release);
    }

    fn tell_quarantine(&self, config: &Config, decided: &Decided) {
        // Only a breach quarantines (a denial for an error or a timeout
        // returns the partition to its state before the gate).
        if decided.partition_state != Some(PartitionState::Quarantined)
            || decided.gate.basis != Some(GateBasis::Checks)
        {
            return;
        }
        let gate = &decided.gate;
        let ds = config.dataset(&gate.dataset);
        let quarantine = Quarantine {
            dataset: gate.dataset.clone(),
            partition: gate.partition.clone(),
            gate_id: gate.gate_id.clone(),
            run_id: gate.run_id.clone(),
            basis: gate.basis.unwrap_or(GateBasis::Error),
            reasons: gate.reasons.clone(),
            owner: ds.and_then(|d| d.owner.clone()),
            tier: ds.map(|d| d.tier),
            runbook: ds.and_then(|d| d.runbook.clone()),
        };
        self.hook().on_quarantine(&quarantine);
    }

    // ---- the live set ----

    /// The live view of a gate this agent runs, else the record.
    fn view(&self, record: GateRecord) -> Gate {
        self.live_view(&record.gate_id)
            .unwrap_or_else(|| record.into())
    }

    fn live_view(&self, gate_id: &str) -> Option<Gate> {
        let live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(gate_id).map(|l| l.view.borrow().clone())
    }

    fn live_record(&self, gate_id: &str) -> Option<GateRecord> {
        let live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(gate_id).map(|l| l.record.clone())
    }

    fn set_live_record(&self, record: GateRecord) {
        let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = live.get_mut(&record.gate_id) {
            l.record = record;
        }
    }

    fn update_live(&self, gate_id: &str, change: impl FnOnce(&mut Gate)) {
        let live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = live.get(gate_id) {
            l.view.send_modify(change);
        }
    }

    /// Publishes the final view to the waiting callers and forgets the gate:
    /// from now on the registry answers for it.
    fn finish_live(&self, gate_id: &str, mut gate: Gate) {
        gate.progress = 1.0;
        let removed = {
            let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
            live.remove(gate_id)
        };
        if let Some(l) = removed {
            l.view.send_replace(gate);
        }
        self.update_queue_depth();
    }

    fn forget_live(&self, gate_id: &str) {
        self.inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(gate_id);
        self.update_queue_depth();
    }

    fn update_queue_depth(&self) {
        self.inner.metrics.set_queue_depth("gate", self.in_flight());
    }

    fn partition_lock(&self, key: &(String, String)) -> PartitionLock {
        let mut locks = self
            .inner
            .partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        locks.entry(key.clone()).or_default().clone()
    }

    /// Forgets a partition's lock once no gate holds or waits for it.
    fn release_partition_lock(&self, key: &(String, String), lock: PartitionLock) {
        let mut locks = self
            .inner
            .partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Clones are only taken under this mutex: two references (the map's
        // and ours) mean nobody else holds or waits for it.
        if locks.get(key).is_some_and(|l| Arc::ptr_eq(l, &lock)) && Arc::strong_count(&lock) == 2 {
            locks.remove(key);
        }
    }
}

/// The answer to a waiting caller: a denial that is not recorded is a 503.
fn answer(gate: Gate) -> Result<Gate, GateError> {
    match &gate.unrecorded {
        Some(reason) => Err(GateError::Unavailable(RegistryError::Unavailable {
            op: "record gate decision",
            reason: reason.clone(),
        })),
        None => Ok(gate),
    }
}
