//! The long-running agent (`warden run`, `warden demo`): a pipeline of
//! stages joined by bounded queues (DESIGN §1).
//!
//! ```text
//! scheduler ──► run queue per warehouse ──► executor ──► evaluator/registry ──► metrics
//! ```
//!
//! - [`scheduler`] turns cron schedules into runs (`scheduler.rs`);
//! - [`lanes`] runs a worker behind each warehouse's queue and
//!   [`Circuit`](crate::app::circuit::Circuit); the executor retries
//!   transient errors;
//! - [`evaluator`] evaluates, records, exports and hands the results to
//!   the alert manager ([`crate::alert`]), whose timer and outbox workers
//!   run beside the stages;
//! - [`retention`] prunes old history hourly (`agent.retention`);
//! - [`AppState`] ([`crate::app`]) is what all of them and the HTTP
//!   handlers share.
//!
//! [`Agent::start`] binds the HTTP listener (refusing an API open to the
//! network: [`check_exposure`]), opens the registry, builds the
//! state for this [`Instance`] (host, bound address, a random id) and starts
//! the stages; [`Agent::reload`] swaps in a new configuration (SIGHUP), and
//! [`Agent::shutdown`] stops scheduling, lets in-flight runs finish within a
//! grace period, and stops the server (SIGTERM/SIGINT).

pub mod discover;
pub mod evaluator;
pub mod lanes;
pub mod lease;
pub mod retention;
pub mod scheduler;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::app::{AppState, Generation, Job, runner};
use crate::config::{self, ConfigError, LoadReport};
use crate::domain::Instance;
use crate::metrics::Metrics;
use crate::registry::{AgentHold, Registry, RegistryError};
use crate::source::Diagnostic;

/// How long in-flight runs may take to finish on shutdown, by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Why the agent could not start or reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The registry could not be opened.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// `agent.listen` could not be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The API would be open to the network: a listen address beyond
    /// loopback, no `agent.api_tokens`, and no `agent.allow_unauthenticated`.
    #[error(
        "refusing to serve the API on {addr} without a token: `agent.listen` is not a loopback \
         address and `agent.api_tokens` is empty, so anyone who can reach it could gate, \
         publish, override quarantines and silence alerts. Set `agent.api_tokens`, or set \
         `agent.allow_unauthenticated: true` to serve it open on purpose (or listen on \
         127.0.0.1)"
    )]
    OpenToTheNetwork { addr: SocketAddr },
}

/// Whether `agent` may serve on `addr`: with tokens, on loopback, or when
/// `allow_unauthenticated` says an open API is intended.
pub fn check_exposure(agent: &config::AgentConfig, addr: SocketAddr) -> Result<(), AgentError> {
    if agent.api_tokens.is_empty() && !addr.ip().is_loopback() && !agent.allow_unauthenticated {
        return Err(AgentError::OpenToTheNetwork { addr });
    }
    if agent.api_tokens.is_empty() && !addr.ip().is_loopback() {
        tracing::warn!(listen = %addr, "the API is open to the network: no agent.api_tokens, and agent.allow_unauthenticated is set");
    }
    Ok(())
}

/// Options of `warden run` beyond the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long in-flight runs may take to finish on shutdown.
    pub grace: Duration,
    /// Run every dataset and `discover:` entry once at start-up (the demo),
    /// besides the schedule.
    pub run_on_start: bool,
    /// Listen here instead of `agent.listen` (tests, the demo).
    pub listen: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            grace: DEFAULT_GRACE,
            run_on_start: false,
            listen: None,
        }
    }
}

/// A started agent.
pub struct Agent {
    state: AppState,
    config_path: PathBuf,
    addr: SocketAddr,
    /// Runs and stage workers, waited for on shutdown.
    runs: TaskTracker,
    evaluator: mpsc::Sender<evaluator::Finished>,
    scheduler: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
    grace: Duration,
    /// This agent's hold on a SQLite registry, released when it stops.
    hold: AgentHold,
}

impl Agent {
    /// Loads the configuration, binds the listener, opens the registry and
    /// starts the scheduler, the run queues and the HTTP server.
    /// Problems in check files are returned as warnings: those datasets are
    /// skipped and the rest run.
    pub async fn start(
        config_path: &Path,
        options: Options,
    ) -> Result<(Self, Vec<Diagnostic>), AgentError> {
        let loaded = config::load(config_path)?;
        let config = Arc::new(loaded.config);
        let listen = options
            .listen
            .clone()
            .unwrap_or_else(|| config.agent.listen.clone());
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|source| AgentError::Listen {
                addr: listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| AgentError::Listen {
            addr: listen.clone(),
            source,
        })?;
        check_exposure(&config.agent, addr)?;
        let registry = Registry::open(&config.agent.registry).await?;
        // A SQLite registry serves one agent; a second one says who has it.
        let hold = AgentHold::take(
            &config.agent.registry,
            &format!(
                "pid {} listening on {addr}, started {}",
                std::process::id(),
                Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
            ),
        )?;
        let metrics = Arc::new(Metrics::new());
        let runs = TaskTracker::new();
        let runner = Arc::new(runner(&config, Some(registry.clone())));
        // The lanes need the state and the state needs a generation: start
        // with one without lanes, then install the same one with them.
        let state = AppState::builder(config.clone(), registry)
            .metrics(metrics)
            .runner(runner.clone())
            .instance(Instance::detect(Some(addr)))
            .public_url(format!("http://{addr}/"))
            .build();
        let evaluator = evaluator::start(&state, &runs);
        let lanes = lanes::start(
            &state,
            &config,
            &runner,
            &BTreeMap::new(),
            &evaluator,
            &runs,
        );
        state.install(Generation::new(1, config.clone(), runner, lanes));
        state.set_config_report(LoadReport::default().after(
            loaded.diagnostics.clone(),
            Vec::new(),
            Utc::now(),
        ));
        restore_metrics(&state).await;
        // Alerts: the flush timer and the outbox's delivery workers. Both
        // stop on the shutdown token; notifications still pending stay in
        // the registry for the next start.
        let alerts = state.alerts().clone();
        let dispatcher = alerts.dispatcher();
        runs.spawn(alerts.run(state.shutdown().clone()));
        runs.spawn(dispatcher.run(state.shutdown().clone()));
        // Old history goes hourly, in small batches (`agent.retention`).
        runs.spawn(retention::run(state.clone()));
        // `discover:` entries read their schemas' catalogs on their schedules.
        runs.spawn(discover::run(state.clone()));
        // Gates a killed agent left undecided are denied before anything new
        // is admitted, so no partition stays `validating`.
        if let Err(e) = state.gates().recover_on_startup(&config).await {
            tracing::warn!(error = %e, "could not recover the gates left undecided by the last run");
        }

        let router = crate::http::router(state.clone());
        let shutdown = state.shutdown().clone();
        let limits = crate::http::server::Limits::for_agent(&config.agent);
        let server = tokio::spawn(crate::http::server::serve(
            listener, router, limits, shutdown,
        ));
        if options.run_on_start {
            let generation = state.generation();
            for i in 0..generation.config.datasets.len() {
                let ds = &generation.config.datasets[i];
                if let Some(lane) = generation.lanes.get(&ds.warehouse) {
                    lane.enqueue(Job::scheduled(&generation, i, Utc::now()));
                }
            }
            for spec in generation.config.discover.clone() {
                let state = state.clone();
                runs.spawn(async move { discover::run_once(&state, &spec, Utc::now()).await });
            }
        }
        let scheduler = tokio::spawn(scheduler::run(state.clone()));
        state.set_ready(true);
        tracing::info!(
            listen = %addr,
            instance = %state.instance(),
            datasets = config.datasets.len(),
            checks = config.datasets.iter().map(|d| d.checks.len()).sum::<usize>(),
            registry = %state.registry().url(),
            "agent started"
        );
        Ok((
            Self {
                state,
                config_path: config_path.to_owned(),
                addr,
                runs,
                evaluator,
                scheduler,
                server,
                grace: options.grace,
                hold,
            },
            loaded.diagnostics,
        ))
    }

    /// The address the HTTP server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Loads the configuration again. It takes effect at once (new
    /// schedules, checks, warehouses); runs under way finish on the old one.
    /// A check file with problems keeps its previous version in force while
    /// the other files reload; an invalid `warden.yaml` changes nothing.
    /// Either way the problems are returned, shown on the status page and
    /// counted in `warden_config_last_reload_successful`.
    pub async fn reload(&self) -> Result<Vec<Diagnostic>, AgentError> {
        let old = self.state.generation();
        let report = self.state.config_report();
        let loaded = match config::reload(&self.config_path, &old.config) {
            Ok(loaded) => loaded,
            Err(e) => {
                self.state.set_config_report(report.after(
                    e.diagnostics(),
                    vec![self.config_path.clone()],
                    Utc::now(),
                ));
                return Err(e.into());
            }
        };
        for file in &loaded.kept {
            tracing::warn!(file = %file.display(), "this check file has problems; its previous version stays in force");
        }
        let config = Arc::new(loaded.config);
        // Removing the last token must not open an API already on the network.
        check_exposure(&config.agent, self.addr)?;
        if config.agent.listen != old.config.agent.listen {
            tracing::warn!(old = %old.config.agent.listen, new = %config.agent.listen, "agent.listen changes only on restart");
        }
        if config.agent.registry != old.config.agent.registry {
            tracing::warn!("agent.registry changes only on restart");
        }
        if config.agent.max_concurrent_checks != old.config.agent.max_concurrent_checks {
            tracing::warn!(
                old = old.config.agent.max_concurrent_checks,
                new = config.agent.max_concurrent_checks,
                "agent.max_concurrent_checks changes only on restart"
            );
        }
        if config.agent.max_http_connections != old.config.agent.max_http_connections {
            tracing::warn!(
                old = old.config.agent.max_http_connections,
                new = config.agent.max_http_connections,
                "agent.max_http_connections changes only on restart"
            );
        }
        let runner = Arc::new(runner(&config, Some(self.state.registry().clone())));
        let circuits = old
            .lanes
            .iter()
            .filter(|(name, _)| {
                old.config.warehouses.get(*name).map(|w| &w.url)
                    == config.warehouses.get(*name).map(|w| &w.url)
            })
            .map(|(name, lane)| (name.clone(), lane.circuit.clone()))
            .collect();
        let lanes = lanes::start(
            &self.state,
            &config,
            &runner,
            &circuits,
            &self.evaluator,
            &self.runs,
        );
        self.state.metrics().retain(&config);
        self.state.metrics().retain_warehouses(&config);
        self.state.alerts().set_routes(config.routes.clone());
        if let Err(e) = self.state.alerts().retain(&config, Utc::now()).await {
            tracing::warn!(error = %e, "could not resolve the alerts of checks that left the configuration");
        }
        let number = old.number + 1;
        self.state.set_config_report(report.after(
            loaded.diagnostics.clone(),
            loaded.kept,
            Utc::now(),
        ));
        self.state
            .install(Generation::new(number, config.clone(), runner, lanes));
        tracing::info!(
            generation = number,
            datasets = config.datasets.len(),
            "configuration reloaded"
        );
        Ok(loaded.diagnostics)
    }

    /// Stops scheduling, waits up to the grace period for runs under way,
    /// and stops the HTTP server.
    pub async fn shutdown(self) {
        tracing::info!(grace = ?self.grace, "shutting down: no new runs; waiting for runs under way");
        self.state.set_ready(false);
        self.state.shutdown().cancel();
        let _ = self.scheduler.await;
        self.runs.close();
        // The evaluator stops once the lane workers (which stop on the
        // shutdown token) and this last sender are gone.
        drop(self.evaluator);
        if tokio::time::timeout(self.grace, self.runs.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.grace, "runs still under way at the end of the grace period were abandoned");
        }
        // Gates still under way are denied (basis `error`) rather than left
        // for recovery, which answers the callers waiting on them and lets
        // the server finish its requests.
        self.state.gates().shutdown().await;
        let _ = self.server.await;
        self.state.registry().close().await;
        drop(self.hold);
        tracing::info!("stopped");
    }

    /// Runs until SIGTERM or SIGINT, reloading on SIGHUP.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    tracing::info!(config = %self.config_path.display(), "SIGHUP: reloading the configuration");
                    match self.reload().await {
                        Ok(warnings) => {
                            for w in warnings {
                                tracing::warn!("{w}");
                            }
                        }
                        Err(e) => {
                            tracing::error!(
                                "the new configuration is invalid; the old one keeps running:\n{}",
                                crate::format::error_chain(&e)
                            );
                        }
                    }
                }
            }
        }
        self.shutdown().await;
        Ok(())
    }
}

/// Sets the check gauges from the latest recorded results, so `/metrics`
/// shows the last known state right after a restart.
async fn restore_metrics(state: &AppState) {
    let config = state.config();
    match state.registry().latest_results_all().await {
        Ok(stored) => {
            let configured = config.check_ids();
            let results: Vec<_> = stored
                .into_iter()
                .filter(|s| configured.contains(s.result.check.as_str()))
                .map(|s| (s.result, s.recorded_at))
                .collect();
            state.metrics().restore(&results);
        }
        Err(e) => tracing::warn!(error = %e, "could not read the latest results from the registry"),
    }
}
