//! The scheduler: turns each dataset's cron `schedule`, read in
//! `agent.timezone`, into runs on its warehouse's queue.
//!
//! Ticks come from [`crate::app::schedule`], which handles DST (a time in
//! a skipped hour still runs; a repeated hour runs once). However late the
//! scheduler wakes (a suspended host, an agent restarted after downtime), a
//! dataset whose ticks were missed runs once, for the latest of them, never once per
//! missed tick. A reload keeps the ticks already passed: the schedule is
//! recomputed from the last instant the scheduler looked at. A dataset
//! without a `schedule` runs only on demand: the scheduler never runs it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::app::schedule::{latest_tick, next_tick};
use crate::app::{AppState, Enqueued, Generation, Job};
use crate::metrics::SkipReason;

/// The longest the scheduler sleeps before looking at the clock again, so a
/// jump of the wall clock is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Claims older than this are pruned.
const CLAIM_RETENTION: chrono::Duration = chrono::Duration::days(30);
/// Runs whose lease lapsed are taken over if they were scheduled within
/// this long; older ones are left (their datasets have run since).
const TAKEOVER_HORIZON: chrono::Duration = chrono::Duration::days(1);
/// At most this many lapsed runs are taken over per look.
const TAKEOVER_BATCH: u32 = 500;

/// Runs until shutdown: sleeps until the next tick, enqueues the datasets
/// that are due, and starts over with the new schedules after a reload.
pub async fn run(state: AppState) {
    let mut generations = state.subscribe_generations();
    let mut looked_until = Utc::now();
    catch_up(&state, looked_until).await;
    let mut next_prune = looked_until;
    let mut next_takeover = looked_until;
    loop {
        let generation = state.generation();
        let tz = generation.config.agent.timezone;
        let datasets = &generation.config.datasets;
        let mut next: Vec<Option<DateTime<Utc>>> = datasets
            .iter()
            .map(|ds| {
                ds.schedule
                    .as_ref()
                    .and_then(|s| next_tick(s, looked_until, tz))
            })
            .collect();
        loop {
            let now = Utc::now();
            if now >= next_prune {
                prune_claims(&state, now).await;
                next_prune = now + chrono::Duration::hours(1);
            }
            if now >= next_takeover {
                take_over_lapsed(&state, &generation, now).await;
                // Every half lease: a dead agent's runs are taken over
                // within two lease periods of its last renewal.
                next_takeover = now
                    + chrono::Duration::from_std(generation.config.agent.run_lease / 2)
                        .unwrap_or(chrono::Duration::seconds(15));
            }
            let earliest = next.iter().flatten().copied().chain([next_takeover]).min();
            let wait = earliest
                .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
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
            enqueue_due(&state, &generation, &mut next, now);
            looked_until = now;
        }
    }
}

/// One pass of the scheduler at `now`: every dataset of `generation` whose
/// next tick (`next`, by index into its datasets) has come is handed to its
/// warehouse's run queue (or counted as skipped), and its next tick is
/// computed. The ticks skipped are logged in one line per warehouse and
/// reason, not one per dataset. Returns how many were due.
pub fn enqueue_due(
    state: &AppState,
    generation: &Generation,
    next: &mut [Option<DateTime<Utc>>],
    now: DateTime<Utc>,
) -> usize {
    let tz = generation.config.agent.timezone;
    let mut due_count = 0;
    let mut skipped = Skipped::default();
    for (i, ds) in generation.config.datasets.iter().enumerate() {
        let Some(due) = next[i].filter(|t| *t <= now) else {
            continue;
        };
        let Some(schedule) = &ds.schedule else {
            continue;
        };
        due_count += 1;
        // Several ticks may have passed while asleep: run the latest once.
        let tick = latest_tick(schedule, now, tz).unwrap_or(due).max(due);
        if let Some(reason) = enqueue(state, generation, i, tick, Why::Tick) {
            skipped.add(&ds.warehouse, reason, ds.name.as_str());
        }
        next[i] = next_tick(schedule, now, tz);
    }
    skipped.log();
    state.metrics().set_queue_depth("run", generation.queued());
    due_count
}

/// The ticks one pass skipped, by warehouse and reason: how many, and the
/// first dataset of each, for the one log line they get.
#[derive(Default)]
struct Skipped(BTreeMap<(String, SkipReason), (usize, String)>);

impl Skipped {
    fn add(&mut self, warehouse: &str, reason: SkipReason, dataset: &str) {
        self.0
            .entry((warehouse.to_owned(), reason))
            .or_insert_with(|| (0, dataset.to_owned()))
            .0 += 1;
    }

    fn log(&self) {
        for ((warehouse, reason), (count, first)) in &self.0 {
            let others = others(*count);
            match reason {
                SkipReason::StillRunning => tracing::info!(
                    %warehouse,
                    skipped = count,
                    "skipping this tick of {first}{others}: the previous run has not finished"
                ),
                SkipReason::QueueFull => tracing::warn!(
                    %warehouse,
                    skipped = count,
                    "skipping this tick of {first}{others}: the warehouse's run queue is full"
                ),
            }
        }
    }
}

/// After downtime: a dataset that ran before, under any agent sharing this
/// registry, and whose latest tick has no claim, runs once now. One line
/// tells how many.
async fn catch_up(state: &AppState, now: DateTime<Utc>) {
    let generation = state.generation();
    let tz = generation.config.agent.timezone;
    let mut missed: Vec<&str> = Vec::new();
    let mut skipped = Skipped::default();
    for (i, ds) in generation.config.datasets.iter().enumerate() {
        let Some(tick) = ds.schedule.as_ref().and_then(|s| latest_tick(s, now, tz)) else {
            continue;
        };
        match state.registry().last_claim(&ds.name).await {
            Ok(Some(last)) if last < tick => {
                tracing::debug!(dataset = %ds.name, missed = %tick, last_run = %last, "a scheduled run was missed while the agent was down");
                missed.push(ds.name.as_str());
                if let Some(reason) = enqueue(state, &generation, i, tick, Why::CatchUp) {
                    skipped.add(&ds.warehouse, reason, ds.name.as_str());
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(dataset = %ds.name, error = %e, "cannot tell whether a run was missed while the agent was down");
            }
        }
    }
    if let Some(first) = missed.first() {
        tracing::info!(
            datasets = missed.len(),
            "the scheduled runs of {first}{} were missed while no agent ran; running each once now",
            others(missed.len())
        );
    }
    skipped.log();
    state.metrics().set_queue_depth("run", generation.queued());
}

/// " and N others" after the first of `count` names.
fn others(count: usize) -> String {
    match count.saturating_sub(1) {
        0 => String::new(),
        1 => " and 1 other".to_owned(),
        n => format!(" and {} others", crate::format::count(n as u64)),
    }
}

/// Why the scheduler queues a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Its tick came.
    Tick,
    /// Its latest tick was missed while no agent ran.
    CatchUp,
    /// Its agent stopped renewing its lease before it finished.
    Takeover,
}

/// Hands the run of dataset `index` for `tick` to its warehouse's queue.
/// A tick skipped is counted here and its reason returned, for the caller
/// to log.
fn enqueue(
    state: &AppState,
    generation: &Generation,
    index: usize,
    tick: DateTime<Utc>,
    why: Why,
) -> Option<SkipReason> {
    let ds = &generation.config.datasets[index];
    let Some(lane) = generation.lanes.get(&ds.warehouse) else {
        tracing::error!(dataset = %ds.name, warehouse = %ds.warehouse, "no run queue for this warehouse");
        return None;
    };
    let job = Job::scheduled(generation, index, tick);
    let reason = match lane.enqueue(job) {
        Enqueued::Queued => {
            tracing::debug!(dataset = %ds.name, scheduled_at = %tick, reason = ?why, "run queued");
            return None;
        }
        // A run taken over that cannot be queued now is no skipped tick:
        // its claim stays lapsed and the next look queues it again.
        Enqueued::AlreadyQueued | Enqueued::Full if why == Why::Takeover => {
            tracing::debug!(dataset = %ds.name, scheduled_at = %tick, "the run to take over waits for its dataset's run to end");
            return None;
        }
        Enqueued::AlreadyQueued => SkipReason::StillRunning,
        Enqueued::Full => SkipReason::QueueFull,
        Enqueued::Closed => return None,
    };
    state.metrics().record_skipped_tick(&ds.warehouse, reason);
    Some(reason)
}

/// Runs claimed by an agent that stopped renewing their lease before they
/// finished (it died, or lost the registry for longer than a lease) are
/// queued again here; the claim in the run queue takes them over, and only
/// one agent wins it.
async fn take_over_lapsed(state: &AppState, generation: &Generation, now: DateTime<Utc>) {
    let lapsed = match state
        .registry()
        .lapsed_claims(now, now - TAKEOVER_HORIZON, TAKEOVER_BATCH)
        .await
    {
        Ok(lapsed) => lapsed,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for runs whose agent stopped renewing them");
            return;
        }
    };
    for claim in lapsed {
        let Some(index) = generation
            .config
            .datasets
            .iter()
            .position(|ds| ds.name.as_str() == claim.dataset && ds.schedule.is_some())
        else {
            continue;
        };
        tracing::info!(dataset = %claim.dataset, scheduled_at = %claim.scheduled_at, claimed_by = %claim.claimed_by, "taking over a run whose agent stopped renewing its lease");
        enqueue(state, generation, index, claim.scheduled_at, Why::Takeover);
    }
    state.metrics().set_queue_depth("run", generation.queued());
}

async fn prune_claims(state: &AppState, now: DateTime<Utc>) {
    if let Err(e) = state.registry().prune_claims(now - CLAIM_RETENTION).await {
        tracing::warn!(error = %e, "could not prune old scheduler claims");
    }
}
