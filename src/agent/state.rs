//! What the agent's tasks and HTTP handlers share: the current configuration
//! generation, the registry, the metrics, the alert manager, and the
//! shutdown signal.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::circuit::Circuit;
use super::lanes::Lane;
use crate::alert::AlertManager;
use crate::check::Runner;
use crate::config::Config;
use crate::gate::{GateOptions, GateService, LogQuarantine, Quarantine, QuarantineHook, Release};
use crate::metrics::Metrics;
use crate::registry::Registry;

/// One loaded configuration and everything built from it. A reload builds
/// a new generation; runs already under way finish on the one they started
/// with.
pub struct Generation {
    /// Increases by one with each reload.
    pub number: u64,
    pub config: Arc<Config>,
    pub runner: Arc<Runner>,
    /// The run queue of each warehouse, by warehouse name.
    pub lanes: BTreeMap<String, Lane>,
    pub loaded_at: DateTime<Utc>,
}

/// A cheap handle on the agent's shared state.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub(crate) struct Shared {
    generation: RwLock<Arc<Generation>>,
    generations: watch::Sender<u64>,
    registry: Registry,
    metrics: Arc<Metrics>,
    /// Bounds the checks running at once across all warehouses.
    check_slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    ready: AtomicBool,
    agent_id: String,
    started_at: DateTime<Utc>,
    /// Base URL of the status page, used in links sent out of the agent.
    public_url: String,
    /// The publication gate and the partition registry.
    gates: GateService,
    /// Alert state and the notification outbox.
    alerts: AlertManager,
}

impl AppState {
    pub(crate) fn new(
        generation: Generation,
        registry: Registry,
        metrics: Arc<Metrics>,
        public_url: String,
    ) -> Self {
        let slots = generation.config.agent.max_concurrent_checks.max(1);
        let (generations, _) = watch::channel(generation.number);
        // Stable across restarts, so that the agent recovers the gates it
        // was running when it stopped.
        let gates = GateService::with_options(
            registry.clone(),
            metrics.clone(),
            GateOptions {
                agent_id: format!("{}/{}", hostname(), generation.config.agent.listen),
                ..GateOptions::default()
            },
        );
        let alerts = AlertManager::new(
            generation.config.routes.clone(),
            registry.clone(),
            metrics.clone(),
            Some(public_url.clone()),
        );
        let state = Self(Arc::new(Shared {
            generation: RwLock::new(Arc::new(generation)),
            generations,
            registry,
            metrics,
            check_slots: Arc::new(Semaphore::new(slots)),
            shutdown: CancellationToken::new(),
            ready: AtomicBool::new(false),
            agent_id: format!(
                "{}-{}",
                hostname(),
                uuid::Uuid::new_v4()
                    .as_simple()
                    .to_string()
                    .get(..8)
                    .unwrap_or("0")
            ),
            started_at: Utc::now(),
            public_url,
            gates,
            alerts,
        }));
        // Quarantines raise an alert to the dataset's owner; a partition that
        // passes resolves it. Weak: the hook lives inside the state.
        state
            .0
            .gates
            .set_quarantine_hook(Arc::new(AlertOnQuarantine(Arc::downgrade(&state.0))));
        state
    }

    /// The configuration generation in effect now.
    pub fn generation(&self) -> Arc<Generation> {
        self.0
            .generation
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The configuration in effect now (replaced on reload).
    pub fn config(&self) -> Arc<Config> {
        self.generation().config.clone()
    }

    /// The runner of the configuration in effect now.
    pub fn runner(&self) -> Arc<Runner> {
        self.generation().runner.clone()
    }

    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    /// The publication gate and the partition registry.
    pub fn gates(&self) -> &GateService {
        &self.0.gates
    }

    pub(crate) fn check_slots(&self) -> &Arc<Semaphore> {
        &self.0.check_slots
    }

    /// Cancelled when the agent begins to shut down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }

    /// Wakes whoever waits on it each time a new generation is installed.
    pub fn subscribe_generations(&self) -> watch::Receiver<u64> {
        self.0.generations.subscribe()
    }

    /// Installs `generation` as the one in effect.
    pub(crate) fn install(&self, generation: Generation) {
        let number = generation.number;
        *self.0.generation.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(generation);
        self.0.generations.send_replace(number);
    }

    /// Whether start-up has finished (the scheduler and the HTTP server run).
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::Release);
    }

    /// This agent's name in scheduler claims: host name and a random suffix.
    pub fn agent_id(&self) -> &str {
        &self.0.agent_id
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }

    /// Base URL of the status page (`http://<listen>/`).
    pub fn public_url(&self) -> &str {
        &self.0.public_url
    }

    /// The alert manager: alert state, silences and the outbox.
    pub fn alerts(&self) -> &AlertManager {
        &self.0.alerts
    }

    /// The circuit of `warehouse` in the current generation.
    pub fn circuit(&self, warehouse: &str) -> Option<Arc<Circuit>> {
        self.generation()
            .lanes
            .get(warehouse)
            .map(|l| l.circuit.clone())
    }
}

/// Tells the alert manager of the gate's quarantines and releases, on a
/// task of its own (the gate does not wait for alerting).
struct AlertOnQuarantine(Weak<Shared>);

impl QuarantineHook for AlertOnQuarantine {
    fn on_quarantine(&self, q: &Quarantine) {
        LogQuarantine.on_quarantine(q);
        let Some(state) = self.0.upgrade().map(AppState) else {
            return;
        };
        let q = q.clone();
        tokio::spawn(async move {
            let config = state.config();
            let Some(ds) = config.dataset(&q.dataset) else {
                return;
            };
            if let Err(e) = state
                .alerts()
                .quarantined(ds, &q.partition, &q.gate_id, &q.reasons, Utc::now())
                .await
            {
                tracing::warn!(dataset = %q.dataset, partition = %q.partition, error = %e, "could not raise the quarantine alert");
            }
        });
    }

    fn on_release(&self, r: &Release) {
        let Some(state) = self.0.upgrade().map(AppState) else {
            return;
        };
        let r = r.clone();
        tokio::spawn(async move {
            let config = state.config();
            let Some(ds) = config.dataset(&r.dataset) else {
                return;
            };
            if let Err(e) = state.alerts().released(ds, &r.partition, Utc::now()).await {
                tracing::warn!(dataset = %r.dataset, partition = %r.partition, error = %e, "could not resolve the quarantine alert");
            }
        });
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "warden".to_owned())
}
