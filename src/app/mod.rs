//! The state the agent's tasks and the HTTP handlers share ([`AppState`]):
//! the configuration generation in effect, the registry, the metrics, the
//! gate service, the alert manager, this agent's [`Instance`] and the
//! shutdown signal; and [`AppStateBuilder`], which builds it for the agent
//! and for tests of the HTTP app that need no agent.
//!
//! Also here, because both the agent and the HTTP app use them: the
//! configuration [`Generation`] with its run queues ([`Lane`], [`Job`]),
//! the warehouses' [`circuit`]s, the [`schedule`] arithmetic, and the
//! [`runner`] a configuration connects.

pub mod circuit;
mod connect;
mod generation;
pub mod schedule;
pub mod snapshot;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

pub use connect::runner;
pub use generation::{Busy, Enqueued, Generation, Job, Lane, QUEUE_CAPACITY};

use crate::alert::AlertManager;
use crate::check::Runner;
use crate::config::{Config, LoadReport};
use crate::domain::Instance;
use crate::gate::{GateOptions, GateService, LogQuarantine, Quarantine, QuarantineHook, Release};
use crate::metrics::Metrics;
use crate::registry::{GateRecord, Registry};
use circuit::Circuit;
use snapshot::Snapshot;

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
    instance: Instance,
    started_at: DateTime<Utc>,
    /// Base URL of the status page, used in links sent out of the agent.
    public_url: String,
    /// The publication gate and the partition registry.
    gates: GateService,
    /// Alert state and the notification outbox.
    alerts: AlertManager,
    /// How the latest configuration load went (shown on the status page).
    config_report: RwLock<Arc<LoadReport>>,
    /// What the status page shows, as last read (the HTTP app's
    /// `StatusSnapshot`, kept here without naming it: `http` sits below `app`).
    status_page: Snapshot<StatusData>,
    /// How fast HTML pages are served (see [`PAGE_RATE`]).
    page_budget: PageBudget,
}

type PageBudget = governor::DefaultDirectRateLimiter;

/// The status page's snapshot, of a type the HTTP app owns.
pub type StatusData = Box<dyn std::any::Any + Send + Sync>;

/// How old the status page may be before a load renders it again.
pub const STATUS_PAGE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// How many HTML pages (`/`, `/datasets/{d}`, `/checks/{id}`) are served
/// at once before the budget applies: a team opening the status page
/// together is served at once.
pub const PAGE_BURST: u32 = 64;

/// HTML pages served per second beyond [`PAGE_BURST`]; the loads beyond
/// wait their turn. A flood of page loads then costs the agent a bounded
/// share of its CPU, and gates, checks and the API keep theirs.
pub const PAGE_RATE: u32 = 20;

/// Builds an [`AppState`]: the agent gives it everything; a test of the
/// HTTP app gives a configuration and a registry and takes the defaults
/// (fresh metrics, a runner on the configuration, this host's instance
/// without an address, not ready).
///
/// ```no_run
/// # async fn f(config: std::sync::Arc<warden::config::Config>, registry: warden::registry::Registry) {
/// let state = warden::app::AppState::builder(config, registry).ready(true).build();
/// let router = warden::http::router(state);
/// # }
/// ```
pub struct AppStateBuilder {
    config: Arc<Config>,
    registry: Registry,
    metrics: Option<Arc<Metrics>>,
    runner: Option<Arc<Runner>>,
    instance: Option<Instance>,
    public_url: Option<String>,
    ready: bool,
}

impl AppStateBuilder {
    /// The metrics to record into (default: a fresh set).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The runner of the first generation (default: one on the
    /// configuration and the registry).
    pub fn runner(mut self, runner: Arc<Runner>) -> Self {
        self.runner = Some(runner);
        self
    }

    /// Who this agent is (default: this host, no address, a fresh id).
    pub fn instance(mut self, instance: Instance) -> Self {
        self.instance = Some(instance);
        self
    }

    /// Base URL of the status page in links sent out (default:
    /// `http://<the instance's address, or agent.listen>/`).
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// Whether `/readyz` answers ready from the start (default: no; the
    /// agent says so once its stages run).
    pub fn ready(mut self, ready: bool) -> Self {
        self.ready = ready;
        self
    }

    /// The state, with generation 1 of the configuration and no run queues,
    /// and the gate's quarantines wired to the alert manager.
    pub fn build(self) -> AppState {
        let Self {
            config,
            registry,
            metrics,
            runner,
            instance,
            public_url,
            ready,
        } = self;
        let metrics = metrics.unwrap_or_else(|| Arc::new(Metrics::new()));
        let runner =
            runner.unwrap_or_else(|| Arc::new(connect::runner(&config, Some(registry.clone()))));
        let instance = instance.unwrap_or_else(|| Instance::detect(None));
        let public_url = public_url.unwrap_or_else(|| match instance.addr() {
            Some(addr) => format!("http://{addr}/"),
            None => format!("http://{}/", config.agent.listen),
        });
        let generation = Generation {
            number: 1,
            config,
            runner,
            lanes: BTreeMap::new(),
            loaded_at: Utc::now(),
        };
        let state = AppState::new(generation, registry, metrics, instance, public_url);
        state.set_ready(ready);
        state
    }
}

impl AppState {
    /// A builder of the state for `config` on `registry`.
    pub fn builder(config: Arc<Config>, registry: Registry) -> AppStateBuilder {
        AppStateBuilder {
            config,
            registry,
            metrics: None,
            runner: None,
            instance: None,
            public_url: None,
            ready: false,
        }
    }

    fn new(
        generation: Generation,
        registry: Registry,
        metrics: Arc<Metrics>,
        instance: Instance,
        public_url: String,
    ) -> Self {
        let slots = generation.config.agent.max_concurrent_checks.max(1);
        let (generations, _) = watch::channel(generation.number);
        // Gates are recorded under this start's id; start-up recovery takes
        // over those of earlier starts on the same host and address.
        let gates = GateService::with_options(
            registry.clone(),
            metrics.clone(),
            GateOptions {
                agent_id: instance.id().to_owned(),
                lineage: instance.lineage(),
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
            instance,
            started_at: Utc::now(),
            public_url,
            gates,
            alerts,
            config_report: RwLock::default(),
            status_page: Snapshot::new(STATUS_PAGE_MAX_AGE),
            page_budget: governor::RateLimiter::direct(
                governor::Quota::per_second(NonZeroU32::new(PAGE_RATE).expect("a rate"))
                    .allow_burst(NonZeroU32::new(PAGE_BURST).expect("a burst")),
            ),
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

    /// How the latest configuration load (start-up or reload) went.
    pub fn config_report(&self) -> Arc<LoadReport> {
        self.0
            .config_report
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records how a configuration load went, here and in the metrics.
    pub fn set_config_report(&self, report: LoadReport) {
        self.0.metrics.record_config_load(&report);
        *self
            .0
            .config_report
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(report);
    }

    /// Whether start-up has finished (the scheduler and the HTTP server run).
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::Release);
    }

    /// This agent's name in scheduler claims and gates ([`Instance::id`]).
    pub fn agent_id(&self) -> &str {
        self.0.instance.id()
    }

    /// Who this agent is: host, bound address, and the id of this start.
    pub fn instance(&self) -> &Instance {
        &self.0.instance
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }

    /// Base URL of the status page (`http://<listen>/`).
    pub fn public_url(&self) -> &str {
        &self.0.public_url
    }

    /// What the status page shows, as last read: read again at most every
    /// [`STATUS_PAGE_MAX_AGE`], or when the configuration changes.
    pub fn status_page(&self) -> &Snapshot<StatusData> {
        &self.0.status_page
    }

    /// Waits until the page budget lets one more HTML page be served (at
    /// once within [`PAGE_BURST`], then [`PAGE_RATE`] per second).
    pub async fn page_turn(&self) {
        self.0.page_budget.until_ready().await;
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

/// Logs the gate's quarantines (their alert is recorded with the decision)
/// and tells the alert manager of releases, on a task of its own (the gate
/// does not wait for alerting).
struct AlertOnQuarantine(Weak<Shared>);

impl QuarantineHook for AlertOnQuarantine {
    /// The alert itself is recorded with the gate's decision, in the same
    /// registry transaction; here it is only logged.
    fn on_quarantine(&self, q: &Quarantine) {
        LogQuarantine.on_quarantine(q);
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

    /// Every recorded decision goes to the OpenLineage endpoint, if any.
    fn on_decided(&self, gate: &GateRecord) {
        let Some(state) = self.0.upgrade().map(AppState) else {
            return;
        };
        let config = state.config();
        if config.agent.openlineage.is_none() {
            return;
        }
        let gate = gate.clone();
        tokio::spawn(async move {
            match crate::lineage::record_gate(state.registry(), &config, &gate).await {
                Ok(()) => state.alerts().wake(),
                Err(e) => {
                    tracing::warn!(gate_id = %gate.gate_id, dataset = %gate.dataset, error = %e, "could not queue the gate's OpenLineage events");
                }
            }
        });
    }
}
