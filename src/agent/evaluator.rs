//! The last stage of a run: baselines from the registry, evaluation, and the
//! results written in one transaction, then exported as metrics and handed
//! to the alert manager.
//!
//! A registry that cannot take the results is retried with backoff for a
//! while; the results stay in memory meanwhile and are still exported, so a
//! registry hiccup loses nothing that a retry can save.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::task::TaskTracker;

use super::lease::RunLease;
use crate::app::{AppState, Busy, Job};
use crate::check::{CheckResult, Outcome, PendingRun};
use crate::domain::Backoff;

/// Runs that may wait for evaluation.
pub const QUEUE_CAPACITY: usize = 256;
/// Runs evaluated and recorded at once.
const CONCURRENCY: usize = 4;
/// Attempts to record a run's results before they are given up.
const RECORD_ATTEMPTS: u32 = 6;
/// The pauses between those attempts (at least a second each).
const RECORD_RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));

/// A run whose statements have executed.
pub struct Finished {
    pub job: Job,
    pub pending: PendingRun,
    pub elapsed: Duration,
    /// The lane's set of busy datasets: the dataset leaves it once recorded.
    pub(super) busy: Busy,
    /// The scheduled run's lease, finished once the results are recorded;
    /// `None` when the registry could not be asked for one.
    pub(super) lease: Option<RunLease>,
}

/// Starts the evaluator stage; returns the queue that feeds it.
pub fn start(state: &AppState, tracker: &TaskTracker) -> mpsc::Sender<Finished> {
    let (tx, mut rx) = mpsc::channel::<Finished>(QUEUE_CAPACITY);
    let state = state.clone();
    let tasks = tracker.clone();
    tracker.spawn(async move {
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        while let Some(finished) = rx.recv().await {
            state.metrics().set_queue_depth("evaluate", rx.len());
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let state = state.clone();
            tasks.spawn(async move {
                evaluate(&state, finished).await;
                drop(slot);
            });
        }
    });
    tx
}

async fn evaluate(state: &AppState, finished: Finished) {
    let Finished {
        job,
        pending,
        elapsed,
        busy,
        lease,
    } = finished;
    let ds = job.dataset();
    let (results, recorded) = record(state, &job, pending).await;
    let now = Utc::now();
    state.metrics().record_run(
        &ds.warehouse,
        elapsed,
        &results,
        now.timestamp_millis() as f64 / 1000.0,
    );
    for r in &results {
        log_result(r);
    }
    if let Err(e) = state.alerts().observe(ds, &results, now).await {
        tracing::warn!(dataset = %ds.name, error = %e, "alert state could not be updated; the next run updates it");
    }
    if job.config.agent.openlineage.is_some() {
        let started_at = now - chrono::Duration::from_std(elapsed).unwrap_or_default();
        match crate::lineage::record_run(
            state.registry(),
            &job.config,
            ds,
            &results,
            started_at,
            now,
        )
        .await
        {
            Ok(()) => state.alerts().wake(),
            Err(e) => {
                tracing::warn!(dataset = %ds.name, error = %e, "the run's OpenLineage events could not be queued");
            }
        }
    }
    // Results that could not be recorded leave the lease to lapse, so the
    // run is taken over (by this agent or another) instead of lost.
    if let Some(lease) = lease.filter(|_| recorded) {
        lease.finish().await;
    }
    busy.lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(ds.name.as_str());
}

/// Evaluates and records, retrying a registry that refuses the write; says
/// whether the results were recorded.
async fn record(state: &AppState, job: &Job, pending: PendingRun) -> (Vec<CheckResult>, bool) {
    let ds = job.dataset();
    let now = Utc::now();
    let (results, records) = match job
        .runner
        .finish(ds, pending, job.scheduled_at, now, true)
        .await
    {
        Ok(results) => return (results, true),
        Err(e) => {
            tracing::warn!(
                dataset = %ds.name,
                error = %crate::format::error_chain(&e),
                "results could not be recorded; retrying"
            );
            e.into_parts()
        }
    };
    for attempt in 1..RECORD_ATTEMPTS {
        tokio::select! {
            () = tokio::time::sleep(RECORD_RETRY.delay(attempt).max(Duration::from_secs(1))) => {}
            () = state.shutdown().cancelled() => {}
        }
        match state.registry().record_run(&records).await {
            Ok(()) => {
                tracing::info!(dataset = %ds.name, attempt, "results recorded after a retry");
                return (results, true);
            }
            Err(e) if attempt + 1 == RECORD_ATTEMPTS => {
                tracing::error!(dataset = %ds.name, error = %e, "results could not be recorded; they are exported as metrics only");
            }
            Err(e) => {
                tracing::warn!(dataset = %ds.name, error = %e, attempt, "results still not recorded; retrying");
            }
        }
        if state.shutdown().is_cancelled() {
            break;
        }
    }
    (results, false)
}

fn log_result(r: &CheckResult) {
    let span = tracing::info_span!(
        "check",
        check = %r.check,
        partition = r.partition.as_deref().unwrap_or("-"),
    );
    let _enter = span.enter();
    match r.outcome {
        Outcome::Pass => tracing::info!(
            outcome = "pass",
            observed = r.observed,
            duration_ms = r.duration_ms,
            "{}",
            r.message
        ),
        Outcome::Warn => tracing::warn!(
            outcome = "warn",
            observed = r.observed,
            duration_ms = r.duration_ms,
            "{}",
            r.message
        ),
        Outcome::Fail => tracing::warn!(
            outcome = "fail",
            observed = r.observed,
            duration_ms = r.duration_ms,
            "{}",
            r.message
        ),
        Outcome::Error => tracing::error!(
            outcome = "error",
            duration_ms = r.duration_ms,
            "{}",
            r.message
        ),
    }
}
