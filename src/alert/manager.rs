//! The alert manager: what the agent calls. It turns check results,
//! warehouse outages and quarantined partitions into alert state in the
//! registry ([`AlertManager::observe`] and friends), and on a timer
//! ([`AlertManager::run`]) queues the notifications that are due in the
//! outbox, where the [`Dispatcher`] picks them up.
//!
//! Nothing lives only in memory: alert state and queued notifications are
//! in the registry, so an agent that restarts carries on where it stopped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::dispatch::Dispatcher;
use super::model::{Alert, AlertDetails, Annotations, Status, quarantine_key, warehouse_key};
use super::receivers::alertmanager;
use super::router::{self, Context};
use super::silences::{FieldError, new_silence};
use super::state::{self, Observation};
use crate::check::Dataset;
use crate::check::{CheckResult, Outcome};
use crate::config::Config;
use crate::config::routes::Routes;
use crate::config::routes::receiver::AlertmanagerConfig;
use crate::config::routes::{
    Labels, QUARANTINE_KIND, ReceiverKind, Severity, Silence, SilenceSource, WAREHOUSE_KIND,
};
use crate::domain::Caller;
use crate::metrics::Metrics;
use crate::registry::{AlertKind, AlertRecord, AlertState, OutboxEntry, Registry, RegistryError};

/// The deduplication key of Alertmanager resyncs: only the newest pending
/// one matters.
const ALERTMANAGER_SYNC_KEY: &str = "alertmanager-sync";
/// The flush timer's bounds: at least every second (digests and repeats are
/// never late by more), and at most every 50 ms.
const MAX_TICK: Duration = Duration::from_secs(1);
const MIN_TICK: Duration = Duration::from_millis(50);

/// Why an alerting operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// The registry failed; nothing of the operation was kept.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Why a silence could not be created or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SilenceError {
    /// The request is invalid (HTTP 400); each problem names its field.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// No silence has this id (HTTP 404).
    #[error("no silence `{0}`")]
    NotFound(String),
    /// The silence is written in the routes file and is changed there
    /// (HTTP 409).
    #[error("silence `{0}` is defined in the routes file; remove it there")]
    InConfig(String),
    /// The registry failed (HTTP 503 when it is down).
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// A firing alert as the status page and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FiringAlert {
    #[serde(flatten)]
    pub alert: Alert,
    /// Failing observations in a row.
    pub consecutive_failures: u32,
    /// Receivers were told.
    pub notified: bool,
    /// An active silence matches it.
    pub silenced: bool,
}

/// Keeps alert state and queues notifications; cheap to clone.
#[derive(Clone)]
pub struct AlertManager {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    metrics: Arc<Metrics>,
    routes: watch::Sender<Arc<Routes>>,
    status_url: Option<String>,
    /// Wakes the dispatcher's workers when something was queued.
    wake: Arc<Notify>,
    http: reqwest::Client,
    /// When each Alertmanager receiver was last sent the firing alerts.
    synced: Mutex<HashMap<String, tokio::time::Instant>>,
}

impl AlertManager {
    /// An alert manager routing by `routes`, keeping state in `registry`;
    /// `status_url` (the agent's status page) is linked from messages.
    pub fn new(
        routes: Arc<Routes>,
        registry: Registry,
        metrics: Arc<Metrics>,
        status_url: Option<String>,
    ) -> Self {
        let (routes, _) = watch::channel(routes);
        let http = reqwest::Client::builder()
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with rustls");
        Self {
            inner: Arc::new(Inner {
                registry,
                metrics,
                routes,
                status_url,
                wake: Arc::new(Notify::new()),
                http,
                synced: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The routes in use.
    pub fn routes(&self) -> Arc<Routes> {
        self.inner.routes.borrow().clone()
    }

    /// Uses `routes` from now on (a reloaded configuration); the dispatcher
    /// starts and stops receivers to match.
    pub fn set_routes(&self, routes: Arc<Routes>) {
        self.inner.routes.send_replace(routes);
    }

    /// Wakes the dispatcher's workers: something was queued in the outbox
    /// outside this manager (lineage events).
    pub fn wake(&self) {
        self.inner.wake.notify_waiters();
    }

    /// The dispatcher that delivers what this manager queues; run it with
    /// [`Dispatcher::run`].
    pub fn dispatcher(&self) -> Dispatcher {
        Dispatcher {
            registry: self.inner.registry.clone(),
            metrics: self.inner.metrics.clone(),
            routes: self.inner.routes.subscribe(),
            wake: self.inner.wake.clone(),
            http: self.inner.http.clone(),
        }
    }

    /// Records the results of one run of `ds`: each check's alert moves on
    /// (`ok → pending → firing → resolved`), one alert per check whatever
    /// the partition; a result for a partition older than the newest its
    /// check has seen (a backfill) moves nothing. Notifications follow on
    /// the next flush, once `group_wait` has passed.
    pub async fn observe(
        &self,
        ds: &Dataset,
        results: &[CheckResult],
        now: DateTime<Utc>,
    ) -> Result<(), AlertError> {
        let observations: Vec<Observation> =
            results.iter().map(|r| check_observation(ds, r)).collect();
        self.apply(&observations, now).await
    }

    /// Raises the alert of `warehouse` (at once: the circuit breaker that
    /// calls this already waited). While it fires, the error alerts of the
    /// checks on that warehouse are held back.
    pub async fn warehouse_down(
        &self,
        config: &Config,
        warehouse: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AlertError> {
        let obs = warehouse_observation(config, warehouse, Some(reason));
        self.apply_firing_now(&[obs], now).await
    }

    /// Resolves the alert of `warehouse`.
    pub async fn warehouse_up(
        &self,
        config: &Config,
        warehouse: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AlertError> {
        let obs = warehouse_observation(config, warehouse, None);
        self.apply(&[obs], now).await
    }

    /// Raises an alert for a partition the gate quarantined, addressed to
    /// the dataset's owner.
    pub async fn quarantined(
        &self,
        ds: &Dataset,
        partition: &str,
        gate_id: &str,
        reasons: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), AlertError> {
        let obs = quarantine_observation(ds, partition, Some((gate_id, reasons)));
        self.apply_firing_now(&[obs], now).await
    }

    /// Resolves the quarantine alert of a partition that left quarantine
    /// (a passing re-gate, or an override).
    pub async fn released(
        &self,
        ds: &Dataset,
        partition: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AlertError> {
        let obs = quarantine_observation(ds, partition, None);
        self.apply(&[obs], now).await
    }

    async fn apply(
        &self,
        observations: &[Observation],
        now: DateTime<Utc>,
    ) -> Result<(), AlertError> {
        let threshold = self.routes().policy.consecutive_failures;
        self.apply_with(observations, threshold, now).await
    }

    /// For alerts that fire on their first failure whatever the policy.
    async fn apply_firing_now(
        &self,
        observations: &[Observation],
        now: DateTime<Utc>,
    ) -> Result<(), AlertError> {
        self.apply_with(observations, 1, now).await
    }

    async fn apply_with(
        &self,
        observations: &[Observation],
        threshold: u32,
        now: DateTime<Utc>,
    ) -> Result<(), AlertError> {
        let keys: Vec<(String, Option<String>)> = observations
            .iter()
            .map(|o| (o.key.clone(), o.scope()))
            .collect();
        let written = self
            .inner
            .registry
            .update_alerts(&keys, |i, current| {
                state::next(current, &observations[i], threshold, now)
            })
            .await?;
        for r in &written {
            tracing::debug!(
                alert = %r.key,
                partition = r.partition.as_deref().unwrap_or(""),
                state = r.state.as_str(),
                consecutive_failures = r.consecutive_failures,
                "alert state"
            );
        }
        if self.routes().policy.group_wait.is_zero() {
            // Nothing to wait for: let the timer flush now.
            self.inner.wake.notify_waiters();
        }
        Ok(())
    }

    /// Resolves the alerts of checks, warehouses and datasets that left the
    /// configuration (receivers told of them hear they resolved), and
    /// forgets those receivers never heard of. For a reload.
    pub async fn retain(&self, config: &Config, now: DateTime<Utc>) -> Result<(), AlertError> {
        let known = |r: &AlertRecord| match r.kind {
            AlertKind::Check => {
                let dataset = r.dataset.as_deref().unwrap_or("");
                config
                    .dataset(dataset)
                    .is_some_and(|ds| ds.checks.iter().any(|c| c.id.as_str() == r.key))
                    || config.discovered_by(dataset).is_some()
            }
            AlertKind::Warehouse => config.warehouses.keys().any(|w| warehouse_key(w) == r.key),
            AlertKind::Quarantine => r
                .dataset
                .as_deref()
                .is_some_and(|d| config.dataset(d).is_some()),
        };
        let firing = self
            .inner
            .registry
            .reads()
            .alerts_in_state(AlertState::Firing)
            .await?;
        let gone: Vec<&AlertRecord> = firing.iter().filter(|r| !known(r)).collect();
        let keys: Vec<(String, Option<String>)> = gone
            .iter()
            .map(|r| (r.key.clone(), r.scope().map(str::to_owned)))
            .collect();
        self.inner
            .registry
            .update_alerts(&keys, |_, current| {
                let mut r = state::retire(current?, now)?;
                if let Some(mut d) = AlertDetails::of(&r) {
                    d.annotations.summary = format!("{} was removed from the configuration", r.key);
                    r.details = d.to_json();
                }
                Some(r)
            })
            .await?;
        let forgotten = self.inner.registry.forget_alerts(|r| known(r)).await?;
        if !forgotten.is_empty() {
            tracing::info!(
                count = forgotten.len(),
                "forgot the alerts of checks that left the configuration"
            );
        }
        Ok(())
    }

    /// Queues every notification due at `now`: grouped alerts whose
    /// `group_wait` passed, repeats, resolves, digests whose schedule came,
    /// and Alertmanager resyncs. Returns how many were queued.
    pub async fn flush(&self, now: DateTime<Utc>) -> Result<usize, AlertError> {
        let routes = self.routes();
        let silences = self.silences(now).await?;
        let cx = Context {
            routes: &routes,
            silences: &silences,
            status_url: self.inner.status_url.as_deref(),
            now,
        };
        let repeat = chrono::Duration::from_std(routes.policy.repeat_interval)
            .unwrap_or(chrono::Duration::MAX);
        let mut queued = self
            .inner
            .registry
            .flush_alerts(now - repeat, |records| router::plan_flush(records, &cx))
            .await?;
        for (index, route) in routes.routes.iter().enumerate() {
            let Some(key) = route.digest_key() else {
                continue;
            };
            queued += self
                .inner
                .registry
                .flush_digest(&key, |last, records| {
                    router::plan_digest(index, route, last, records, &cx)
                })
                .await?;
        }
        queued += self.sync_alertmanagers(&cx).await?;
        if queued > 0 {
            tracing::debug!(queued, "notifications queued");
            self.inner.wake.notify_waiters();
        }
        Ok(queued)
    }

    /// Sends each Alertmanager receiver whose resend interval passed the
    /// alerts that still fire, so that Alertmanager does not let them
    /// expire.
    async fn sync_alertmanagers(&self, cx: &Context<'_>) -> Result<usize, AlertError> {
        let due: Vec<(&str, &AlertmanagerConfig)> = {
            let synced = self.inner.synced.lock().expect("sync times");
            cx.routes
                .receivers
                .values()
                .filter_map(|r| match &r.kind {
                    ReceiverKind::Alertmanager(c) => Some((r.name.as_str(), c)),
                    _ => None,
                })
                .filter(|(name, c)| {
                    synced
                        .get(*name)
                        .is_none_or(|t| t.elapsed() >= c.resend_interval)
                })
                .collect()
        };
        if due.is_empty() {
            return Ok(0);
        }
        let registry = &self.inner.registry;
        let firing = registry.alerts_in_state(AlertState::Firing).await?;
        let mut warehouses: Vec<AlertRecord> = firing
            .iter()
            .filter(|r| r.kind == AlertKind::Warehouse)
            .cloned()
            .collect();
        warehouses.extend(
            registry
                .alerts_in_state(AlertState::Resolved)
                .await?
                .into_iter()
                .filter(|r| r.kind == AlertKind::Warehouse),
        );
        let mut queued = 0;
        for (name, config) in due {
            let alerts = router::alertmanager_alerts(name, &firing, &warehouses, cx);
            if !alerts.is_empty() {
                let payload = alertmanager::render(config, &alerts, cx.status_url, cx.now);
                registry
                    .enqueue_replacing(name, &payload, ALERTMANAGER_SYNC_KEY)
                    .await?;
                queued += 1;
            }
            self.inner
                .synced
                .lock()
                .expect("sync times")
                .insert(name.to_owned(), tokio::time::Instant::now());
        }
        Ok(queued)
    }

    /// Flushes on a timer until `shutdown` is cancelled. A registry that
    /// fails is logged and tried again on the next tick.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            if let Err(e) = self.flush(Utc::now()).await {
                tracing::warn!(error = %e, "cannot queue alert notifications; trying again shortly");
            }
            let tick = (self.routes().policy.group_wait / 2).clamp(MIN_TICK, MAX_TICK);
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// Silences that have not ended at `now`: the routes file's, then the
    /// API's.
    pub async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, RegistryError> {
        let mut all: Vec<Silence> = self
            .routes()
            .silences
            .iter()
            .filter(|s| s.ends_at > now)
            .cloned()
            .collect();
        for record in self.inner.registry.reads().silences(now).await? {
            match Silence::from_record(&record) {
                Some(s) => all.push(s),
                None => {
                    tracing::warn!(silence = %record.id, "silence with unreadable matchers ignored")
                }
            }
        }
        Ok(all)
    }

    /// Creates a silence from an API request body (see
    /// [`super::silences`]).
    pub async fn create_silence(
        &self,
        body: &serde_json::Value,
        now: DateTime<Utc>,
        caller: &Caller,
    ) -> Result<Silence, SilenceError> {
        let silence = new_silence(body, now, caller).map_err(SilenceError::Invalid)?;
        self.inner
            .registry
            .create_silence(&silence.to_record())
            .await?;
        tracing::info!(
            silence = %silence.id,
            created_by = %silence.created_by,
            note = silence.note.as_deref().unwrap_or("-"),
            matchers = %silence.matcher.to_json(),
            "silence created"
        );
        Ok(silence)
    }

    /// Ends silence `id` now (one that had not started is deleted), for
    /// `caller` (recorded as who ended it).
    pub async fn expire_silence(
        &self,
        id: &str,
        now: DateTime<Utc>,
        caller: &Caller,
    ) -> Result<Silence, SilenceError> {
        if self.routes().silences.iter().any(|s| s.id == id) {
            return Err(SilenceError::InConfig(id.to_owned()));
        }
        let by = caller.actor(None).name;
        match self.inner.registry.expire_silence(id, now, &by).await {
            Ok(record) => {
                tracing::info!(silence = %id, by, "silence expired");
                let mut s = Silence::from_record(&record).unwrap_or(Silence {
                    id: record.id.clone(),
                    matcher: Default::default(),
                    starts_at: record.starts_at,
                    ends_at: record.ends_at,
                    created_by: record.created_by.clone(),
                    comment: record.comment.clone(),
                    note: record.note.clone(),
                    ended_by: None,
                    source: SilenceSource::Api,
                });
                s.ends_at = s.ends_at.min(now.max(s.starts_at));
                s.ended_by = Some(by);
                Ok(s)
            }
            Err(RegistryError::NotFound { .. }) => Err(SilenceError::NotFound(id.to_owned())),
            Err(e) => Err(SilenceError::Registry(e)),
        }
    }

    /// Every firing alert, by dataset and check, for the status page.
    pub async fn firing(&self, now: DateTime<Utc>) -> Result<Vec<FiringAlert>, RegistryError> {
        let silences = self.silences(now).await?;
        // A read for the API and the status page: on the read pool, so
        // that it never waits for the connections gates and runs write on.
        let records = self
            .inner
            .registry
            .reads()
            .alerts_in_state(AlertState::Firing)
            .await?;
        Ok(records
            .iter()
            .filter_map(|r| {
                let alert = Alert::from_record(r, Status::Firing)?;
                let silenced = silences.iter().any(|s| s.silences(&alert.labels, now));
                Some(FiringAlert {
                    alert,
                    consecutive_failures: r.consecutive_failures,
                    notified: r.notified,
                    silenced,
                })
            })
            .collect())
    }

    /// The dead-letter list, newest first.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<OutboxEntry>, RegistryError> {
        self.inner.registry.reads().dead_letters(limit).await
    }
}

/// What a check result says about its alert.
pub fn check_observation(ds: &Dataset, r: &CheckResult) -> Observation {
    let on = r
        .partition
        .as_deref()
        .map(|p| format!(" on partition {p}"))
        .unwrap_or_default();
    let summary = match r.outcome {
        Outcome::Fail => format!("{} failed{on}: {}", r.check, r.message),
        Outcome::Warn => format!("{} is in warning{on}: {}", r.check, r.message),
        Outcome::Error => format!("{} could not be evaluated{on}: {}", r.check, r.message),
        Outcome::Pass => format!("{} passes again{on}: {}", r.check, r.message),
    };
    Observation {
        key: r.check.clone(),
        partition: r.partition.clone(),
        failing: r.outcome != Outcome::Pass,
        outcome: Some(r.outcome),
        details: AlertDetails {
            labels: Labels {
                kind: r.kind.clone(),
                check: Some(r.check.clone()),
                dataset: Some(ds.name.as_str().to_owned()),
                partition: r.partition.clone(),
                warehouse: Some(ds.warehouse.clone()),
                tier: ds.tier,
                owner: ds.owner.clone(),
                severity: Severity::of_outcome(r.outcome),
            },
            annotations: Annotations {
                summary,
                message: r.message.clone(),
                outcome: Some(r.outcome),
                observed: r.observed,
                threshold: r.threshold.clone(),
                runbook: ds.runbook.clone(),
                column: r.column.clone(),
                gate_id: None,
                reasons: Vec::new(),
            },
        },
    }
}

/// The warehouse's alert: failing with `reason`, or passing when `None`.
/// It is routed like the most urgent dataset on the warehouse, and names
/// their owner when they share one.
fn warehouse_observation(config: &Config, warehouse: &str, reason: Option<&str>) -> Observation {
    let datasets: Vec<&Dataset> = config
        .datasets
        .iter()
        .filter(|d| d.warehouse == warehouse)
        .collect();
    let tier = datasets.iter().map(|d| d.tier).min().unwrap_or(1);
    let owner = match datasets.first() {
        Some(first) if datasets.iter().all(|d| d.owner == first.owner) => first.owner.clone(),
        _ => None,
    };
    let names: Vec<&str> = datasets.iter().map(|d| d.name.as_str()).collect();
    let affected = if names.is_empty() {
        String::new()
    } else {
        format!(
            " ({} dataset{} cannot be checked: {})",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        )
    };
    let (summary, message) = match reason {
        Some(why) => (
            format!("warehouse {warehouse} is down: {why}{affected}"),
            why.to_owned(),
        ),
        None => (
            format!("warehouse {warehouse} answers again"),
            "the warehouse answers again".to_owned(),
        ),
    };
    Observation {
        key: warehouse_key(warehouse),
        partition: None,
        failing: reason.is_some(),
        outcome: None,
        details: AlertDetails {
            labels: Labels {
                kind: WAREHOUSE_KIND.to_owned(),
                check: None,
                dataset: None,
                partition: None,
                warehouse: Some(warehouse.to_owned()),
                tier,
                owner,
                severity: Severity::Error,
            },
            annotations: Annotations {
                summary,
                message,
                outcome: None,
                observed: None,
                threshold: Default::default(),
                runbook: None,
                column: None,
                gate_id: None,
                reasons: Vec::new(),
            },
        },
    }
}

/// Records the quarantine alert of `ds`'s `partition`, raised by gate
/// `gate_id`, inside `tx`: the transaction that records the gate's decision,
/// so that a crash cannot lose it. It fires at once whatever
/// `consecutive_failures` says; the flush timer of any agent on the
/// registry sends it.
pub async fn record_quarantine(
    tx: &mut crate::registry::Tx,
    ds: &Dataset,
    partition: &str,
    gate_id: &str,
    reasons: &[String],
    now: DateTime<Utc>,
) -> Result<(), RegistryError> {
    let obs = quarantine_observation(ds, partition, Some((gate_id, reasons)));
    tx.update_alert(&obs.key, obs.scope().as_deref(), |current| {
        state::next(current, &obs, 1, now)
    })
    .await?;
    Ok(())
}

/// A partition's quarantine alert: raised by `gate` (its id and reasons),
/// or released when `None`.
fn quarantine_observation(
    ds: &Dataset,
    partition: &str,
    gate: Option<(&str, &[String])>,
) -> Observation {
    let dataset = ds.name.as_str();
    let owner = ds
        .owner
        .as_deref()
        .map(|o| format!(" ({o} to review)"))
        .unwrap_or_default();
    let (summary, message, gate_id, reasons) = match gate {
        Some((gate_id, reasons)) => (
            format!(
                "{dataset} partition {partition} is quarantined by gate {gate_id}{owner}: {}",
                if reasons.is_empty() {
                    "no reason given".to_owned()
                } else {
                    reasons.join("; ")
                }
            ),
            reasons.join("; "),
            Some(gate_id.to_owned()),
            reasons.to_vec(),
        ),
        None => (
            format!("{dataset} partition {partition} left quarantine"),
            "the partition left quarantine".to_owned(),
            None,
            Vec::new(),
        ),
    };
    Observation {
        key: quarantine_key(dataset),
        partition: Some(partition.to_owned()),
        failing: gate.is_some(),
        outcome: None,
        details: AlertDetails {
            labels: Labels {
                kind: QUARANTINE_KIND.to_owned(),
                check: None,
                dataset: Some(dataset.to_owned()),
                partition: Some(partition.to_owned()),
                warehouse: Some(ds.warehouse.clone()),
                tier: ds.tier,
                owner: ds.owner.clone(),
                severity: Severity::Critical,
            },
            annotations: Annotations {
                summary,
                message,
                outcome: None,
                observed: None,
                threshold: Default::default(),
                runbook: ds.runbook.clone(),
                column: None,
                gate_id,
                reasons,
            },
        },
    }
}
