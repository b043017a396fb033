//! The scheduled runs of `discover:` entries: each entry with a `schedule`
//! reads its schema's catalog at every tick (one statement however many
//! tables), claimed under a lease like a dataset's run so that agents
//! sharing a registry run it once. Its results are recorded, exported as
//! metrics and handed to the alert manager like any dataset's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::lease::RunLease;
use crate::app::AppState;
use crate::app::schedule::next_tick;
use crate::discover::Discover;

/// The longest the loop sleeps before looking at the clock again.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Runs until shutdown: sleeps until the next entry is due, then runs the
/// entries whose tick came. A reload's entries take effect at the next look.
pub async fn run(state: AppState) {
    let mut looked_until = Utc::now();
    let mut generations = state.subscribe_generations();
    loop {
        let generation = state.generation();
        let tz = generation.config.agent.timezone;
        let entries = &generation.config.discover;
        let mut next: HashMap<usize, DateTime<Utc>> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                let s = d.schedule.as_ref()?;
                Some((i, next_tick(s, looked_until, tz)?))
            })
            .collect();
        loop {
            let now = Utc::now();
            let wait = next
                .values()
                .min()
                .map(|t| (*t - now).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                () = state.shutdown().cancelled() => return,
                changed = generations.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                () = tokio::time::sleep(wait) => {}
            }
            let now = Utc::now();
            looked_until = now;
            let due: Vec<(usize, DateTime<Utc>)> = next
                .iter()
                .filter(|(_, t)| **t <= now)
                .map(|(i, t)| (*i, *t))
                .collect();
            for (i, tick) in due {
                run_once(&state, &entries[i], tick).await;
                let schedule = entries[i].schedule.as_ref().expect("scheduled");
                match next_tick(schedule, now, tz) {
                    Some(t) => next.insert(i, t),
                    None => next.remove(&i),
                };
            }
        }
    }
}

/// One scheduled run of `spec` for the tick `at`, unless another agent has it.
pub async fn run_once(state: &AppState, spec: &Discover, at: DateTime<Utc>) {
    let name = spec.run_name();
    let lease = match RunLease::claim(state, &name, at).await {
        Ok(Some(lease)) => Some(lease),
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(group = %spec.group(), error = %e, "could not claim the discover run in the registry; running it anyway");
            None
        }
    };
    let generation = state.generation();
    let started = Instant::now();
    let run = crate::discover::discover(
        &generation.runner,
        spec,
        &generation.config.datasets,
        at,
        true,
    )
    .await;
    let now = Utc::now();
    state.metrics().record_run(
        &spec.warehouse,
        started.elapsed(),
        &run.results,
        now.timestamp_millis() as f64 / 1000.0,
    );
    if let Some(message) = &run.catalog_error {
        tracing::error!(group = %spec.group(), "{message}");
    }
    let recorded = match &run.record_error {
        None => true,
        Some(e) => {
            tracing::warn!(group = %spec.group(), error = %e, "discover results could not be recorded; the next run judges the same changes");
            false
        }
    };
    for ds in &run.datasets {
        let results: Vec<_> = run
            .results
            .iter()
            .filter(|r| r.dataset == ds.name.as_str())
            .cloned()
            .collect();
        if let Err(e) = state.alerts().observe(ds, &results, now).await {
            tracing::warn!(dataset = %ds.name, error = %e, "alert state could not be updated; the next run updates it");
        }
    }
    tracing::info!(
        group = %spec.group(),
        tables = run.datasets.len(),
        results = run.results.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "discover run finished"
    );
    if let Some(lease) = lease.filter(|_| recorded) {
        lease.finish().await;
    }
}
