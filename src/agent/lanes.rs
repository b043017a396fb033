//! The run queue of each warehouse and the executor behind it.
//!
//! Each warehouse has its own bounded queue and worker, so a slow or dead
//! warehouse only ever holds its own share of the agent's check slots: at
//! most `max_connections`, and never all of `max_concurrent_checks` while
//! other warehouses exist. A dataset is queued at most once: a tick that
//! comes while the previous run is still queued or running is skipped.
//!
//! The executor runs the statements (retrying transient errors with
//! exponential backoff and jitter), feeds the warehouse's [`Circuit`], and
//! hands the observations to the evaluator stage through another bounded
//! queue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::evaluator::Finished;
use super::lease::RunLease;
use crate::app::circuit::{self, Change, Circuit};
use crate::app::{AppState, Busy, Job, Lane};
use crate::check::Dataset;
use crate::check::{PendingRun, Runner};
use crate::config::Config;
use crate::domain::Backoff;
use crate::warehouse::WarehouseError;

/// Attempts of a run whose errors are transient, the first included.
pub const ATTEMPTS: u32 = 3;
/// Pause before the first retry; doubled for each further one, with jitter.
pub const RETRY_BASE: Duration = Duration::from_millis(500);
/// The pauses between a run's attempts: `RETRY_BASE` doubled per failed
/// attempt (at most ten times), with jitter.
pub const RETRY: Backoff = Backoff::new(RETRY_BASE, Duration::from_millis(500 * 1024));

/// Builds a lane per warehouse of `config` and starts their workers.
/// `circuits` carries over the circuits of warehouses that existed before a
/// reload, so a warehouse that is down stays known as down.
pub fn start(
    state: &AppState,
    config: &Config,
    runner: &Arc<Runner>,
    circuits: &BTreeMap<String, Arc<Circuit>>,
    evaluator: &mpsc::Sender<Finished>,
    tracker: &TaskTracker,
) -> BTreeMap<String, Lane> {
    let warehouses = config.warehouses.len().max(1);
    let global = config.agent.max_concurrent_checks.max(1);
    config
        .warehouses
        .values()
        .map(|wh| {
            let circuit = circuits
                .get(&wh.name)
                .cloned()
                .unwrap_or_else(|| Arc::new(Circuit::new(wh.name.clone())));
            state
                .metrics()
                .set_warehouse_up(&wh.name, !circuit.is_open());
            state.metrics().declare_skipped_ticks(&wh.name);
            // Leave at least one slot per other warehouse.
            let share = (wh.max_connections as usize)
                .min(global.saturating_sub(warehouses - 1))
                .max(1);
            let datasets = config
                .datasets
                .iter()
                .filter(|ds| ds.warehouse == wh.name)
                .count();
            let (lane, rx) = Lane::new(circuit.clone(), datasets);
            let worker = Worker {
                state: state.clone(),
                warehouse: wh.name.clone(),
                runner: runner.clone(),
                circuit,
                share: Arc::new(Semaphore::new(share)),
                busy: lane.busy().clone(),
                depth: lane.depth_counter().clone(),
                evaluator: evaluator.clone(),
                tracker: tracker.clone(),
            };
            tracker.spawn(worker.run(rx));
            (wh.name.clone(), lane)
        })
        .collect()
}

struct Worker {
    state: AppState,
    warehouse: String,
    runner: Arc<Runner>,
    circuit: Arc<Circuit>,
    /// This warehouse's share of the check slots.
    share: Arc<Semaphore>,
    busy: Busy,
    depth: Arc<AtomicUsize>,
    evaluator: mpsc::Sender<Finished>,
    tracker: TaskTracker,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        loop {
            let job = tokio::select! {
                job = rx.recv() => job,
                () = self.state.shutdown().cancelled() => None,
            };
            let Some(job) = job else { break };
            // A circuit carried over from before a reload needs its probe.
            if self.circuit.is_open() {
                spawn_probe(
                    &self.state,
                    &self.runner,
                    &self.circuit,
                    &self.warehouse,
                    &self.tracker,
                );
            }
            let Ok(share) = self.share.clone().acquire_owned().await else {
                break;
            };
            let Ok(slot) = self.state.check_slots().clone().acquire_owned().await else {
                break;
            };
            if self.state.shutdown().is_cancelled() {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                self.busy
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(job.dataset().name.as_str());
                break;
            }
            self.depth.fetch_sub(1, Ordering::Relaxed);
            self.state
                .metrics()
                .set_queue_depth("run", self.state.generation().queued());
            let exec = Execution {
                state: self.state.clone(),
                circuit: self.circuit.clone(),
                tracker: self.tracker.clone(),
                busy: self.busy.clone(),
                evaluator: self.evaluator.clone(),
            };
            self.tracker.spawn(async move {
                exec.execute(job).await;
                drop((share, slot));
            });
        }
        // Shutting down: whatever is still queued is not started.
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        while let Ok(job) = rx.try_recv() {
            busy.remove(job.dataset().name.as_str());
            self.depth.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

struct Execution {
    state: AppState,
    circuit: Arc<Circuit>,
    tracker: TaskTracker,
    busy: Busy,
    evaluator: mpsc::Sender<Finished>,
}

impl Execution {
    async fn execute(self, job: Job) {
        let ds = job.dataset();
        let span = tracing::info_span!(
            "run",
            dataset = %ds.name,
            warehouse = %ds.warehouse,
            scheduled_at = %job.scheduled_at,
            scope = %job.scope,
        );
        let config = job.config.clone();
        let ds = &config.datasets[job.index];
        async {
            let lease = match RunLease::claim(&self.state, &ds.name, job.scheduled_at).await {
                Ok(Some(lease)) => Some(lease),
                Ok(None) => {
                    tracing::debug!("another agent has this run, or it already ran");
                    self.release(ds);
                    return;
                }
                Err(e) => {
                    // Better twice than never: run it even though another agent might.
                    tracing::warn!(error = %e, "could not claim the run in the registry; running it anyway");
                    None
                }
            };
            let started = Instant::now();
            let pending = self.observe(&job).await;
            let finished = Finished {
                elapsed: started.elapsed(),
                pending,
                job,
                busy: self.busy.clone(),
                lease,
            };
            if let Err(e) = self.evaluator.send(finished).await {
                self.release(e.0.job.dataset());
            }
        }
        .instrument(span)
        .await;
    }

    fn release(&self, ds: &Dataset) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(ds.name.as_str());
    }

    /// Runs the statements, retrying transient errors, unless the circuit
    /// is open.
    async fn observe(&self, job: &Job) -> PendingRun {
        let ds = job.dataset();
        let mut attempt = 0;
        loop {
            if let Some(reason) = self.circuit.open_reason() {
                return PendingRun::unavailable(ds, &job.scope, &reason);
            }
            attempt += 1;
            let pending = job.runner.observe(ds, &job.scope).await;
            let Some(error) = pending.transient_error() else {
                if let Change::Closed = self.circuit.success() {
                    self.state.metrics().set_warehouse_up(&ds.warehouse, true);
                    tracing::info!("warehouse reachable again; circuit closed");
                    alert_warehouse(&self.state, &ds.warehouse, None).await;
                }
                return pending;
            };
            if let WarehouseError::Unavailable { reason, .. } = error
                && let Change::Opened(_) = self.circuit.failure(reason, Utc::now())
            {
                self.state.metrics().set_warehouse_up(&ds.warehouse, false);
                tracing::error!(reason = %reason, "warehouse unreachable; circuit opened");
                alert_warehouse(&self.state, &ds.warehouse, Some(reason)).await;
                spawn_probe(
                    &self.state,
                    &job.runner,
                    &self.circuit,
                    &ds.warehouse,
                    &self.tracker,
                );
            }
            if attempt >= ATTEMPTS || self.state.shutdown().is_cancelled() {
                tracing::warn!(error = %error, attempts = attempt, "run failed; giving up until the next tick");
                return pending;
            }
            let delay = RETRY.delay(attempt);
            tracing::info!(error = %error, attempt, retry_in_ms = delay.as_millis() as u64, "transient error; retrying");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.state.shutdown().cancelled() => return pending,
            }
        }
    }
}

/// Starts the probe of an open circuit unless one already runs.
fn spawn_probe(
    state: &AppState,
    runner: &Arc<Runner>,
    circuit: &Arc<Circuit>,
    warehouse: &str,
    tracker: &TaskTracker,
) {
    if circuit.start_probe() {
        let circuit = circuit.clone();
        let probe = probe_until_closed(
            state.clone(),
            runner.clone(),
            circuit.clone(),
            warehouse.to_owned(),
        );
        tracker.spawn(async move {
            probe.await;
            circuit.end_probe();
        });
    }
}

/// Raises (`down` gives the reason) or resolves the alert of `warehouse`
/// as its circuit opens or closes. While it fires, the error alerts of that
/// warehouse's checks are held back.
async fn alert_warehouse(state: &AppState, warehouse: &str, down: Option<&str>) {
    let config = state.config();
    let now = Utc::now();
    let result = match down {
        Some(reason) => {
            state
                .alerts()
                .warehouse_down(&config, warehouse, reason, now)
                .await
        }
        None => state.alerts().warehouse_up(&config, warehouse, now).await,
    };
    if let Err(e) = result {
        tracing::warn!(warehouse, error = %e, "the warehouse's alert could not be updated");
    }
}

/// Pings the warehouse of an open circuit with growing pauses until it
/// answers, then closes the circuit.
async fn probe_until_closed(
    state: AppState,
    runner: Arc<Runner>,
    circuit: Arc<Circuit>,
    warehouse: String,
) {
    let mut attempt = 0;
    while circuit.is_open() {
        tokio::select! {
            () = tokio::time::sleep(circuit::probe_delay(attempt)) => {}
            () = state.shutdown().cancelled() => return,
        }
        attempt += 1;
        let Some(wh) = runner.warehouse_named(&warehouse) else {
            return;
        };
        match wh.ping().await {
            Ok(()) => {
                if let Change::Closed = circuit.success() {
                    state.metrics().set_warehouse_up(&warehouse, true);
                    tracing::info!(warehouse = %warehouse, "probe succeeded; circuit closed");
                    alert_warehouse(&state, &warehouse, None).await;
                }
            }
            Err(e) => {
                circuit.failure(&e.to_string(), Utc::now());
                tracing::debug!(warehouse = %warehouse, error = %e, "probe failed; circuit stays open");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter() {
        for attempt in 1..=4 {
            let nominal = RETRY_BASE * 2u32.pow(attempt - 1);
            for _ in 0..50 {
                let d = RETRY.delay(attempt);
                assert!(d >= nominal / 2 && d <= nominal * 3 / 2, "{attempt}: {d:?}");
            }
        }
    }
}
