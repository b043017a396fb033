//! The scheduler: turns each dataset's cron `schedule`, read in
//! `agent.timezone`, into runs on its warehouse's queue.
//!
//! Ticks are computed with croner, which handles DST (a time in a skipped
//! hour still runs; a repeated hour runs once). However late the scheduler
//! wakes (a suspended host, an agent restarted after downtime), a dataset
//! whose ticks were missed runs once, for the latest of them, never once per
//! missed tick. A reload keeps the ticks already passed: the schedule is
//! recomputed from the last instant the scheduler looked at.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use super::lanes::{Enqueued, Job};
use super::state::AppState;
use crate::config::Schedule;

/// The longest the scheduler sleeps before looking at the clock again, so a
/// jump of the wall clock is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Claims older than this are pruned.
const CLAIM_RETENTION: chrono::Duration = chrono::Duration::days(30);

/// The first tick of `schedule` strictly after `after`, on a whole second.
pub fn next_tick(schedule: &Schedule, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    // croner keeps the fraction of a second it starts from; ticks have none.
    let after = after.with_nanosecond(0)?;
    schedule
        .cron
        .find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .and_then(|t| t.with_timezone(&Utc).with_nanosecond(0))
}

/// The latest tick of `schedule` at or before `at`, on a whole second.
pub fn latest_tick(schedule: &Schedule, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let at = at.with_nanosecond(0)?;
    schedule
        .cron
        .find_previous_occurrence(&at.with_timezone(&tz), true)
        .ok()
        .and_then(|t| t.with_timezone(&Utc).with_nanosecond(0))
}

/// Runs until shutdown: sleeps until the next tick, enqueues the datasets
/// that are due, and starts over with the new schedules after a reload.
pub async fn run(state: AppState) {
    let mut generations = state.subscribe_generations();
    let mut looked_until = Utc::now();
    catch_up(&state, looked_until).await;
    let mut next_prune = looked_until;
    loop {
        let generation = state.generation();
        let tz = generation.config.agent.timezone;
        let datasets = &generation.config.datasets;
        let mut next: Vec<Option<DateTime<Utc>>> = datasets
            .iter()
            .map(|ds| next_tick(&ds.schedule, looked_until, tz))
            .collect();
        loop {
            let now = Utc::now();
            if now >= next_prune {
                prune_claims(&state, now).await;
                next_prune = now + chrono::Duration::hours(1);
            }
            let earliest = next.iter().flatten().min().copied();
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
            for (i, ds) in datasets.iter().enumerate() {
                let Some(due) = next[i].filter(|t| *t <= now) else {
                    continue;
                };
                // Several ticks may have passed while asleep: run the latest once.
                let tick = latest_tick(&ds.schedule, now, tz).unwrap_or(due).max(due);
                enqueue(&state, &generation, i, tick, "schedule");
                next[i] = next_tick(&ds.schedule, now, tz);
            }
            looked_until = now;
        }
    }
}

/// After downtime: a dataset that ran before, under any agent sharing this
/// registry, and whose latest tick has no claim, runs once now.
async fn catch_up(state: &AppState, now: DateTime<Utc>) {
    let generation = state.generation();
    let tz = generation.config.agent.timezone;
    for (i, ds) in generation.config.datasets.iter().enumerate() {
        let Some(tick) = latest_tick(&ds.schedule, now, tz) else {
            continue;
        };
        match state.registry().last_claim(&ds.name).await {
            Ok(Some(last)) if last < tick => {
                tracing::info!(dataset = %ds.name, missed = %tick, last_run = %last, "a scheduled run was missed while the agent was down; running it once now");
                enqueue(state, &generation, i, tick, "catch-up");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(dataset = %ds.name, error = %e, "cannot tell whether a run was missed while the agent was down");
            }
        }
    }
}

fn enqueue(
    state: &AppState,
    generation: &super::state::Generation,
    index: usize,
    tick: DateTime<Utc>,
    why: &'static str,
) {
    let ds = &generation.config.datasets[index];
    let Some(lane) = generation.lanes.get(&ds.warehouse) else {
        tracing::error!(dataset = %ds.name, warehouse = %ds.warehouse, "no run queue for this warehouse");
        return;
    };
    let job = Job::scheduled(generation, index, tick);
    match lane.enqueue(job) {
        Enqueued::Queued => {
            tracing::debug!(dataset = %ds.name, scheduled_at = %tick, reason = why, "run queued");
        }
        Enqueued::AlreadyQueued => {
            tracing::info!(dataset = %ds.name, scheduled_at = %tick, "skipping this tick: the previous run of the dataset has not finished");
        }
        Enqueued::Full => {
            tracing::warn!(dataset = %ds.name, warehouse = %ds.warehouse, scheduled_at = %tick, "skipping this tick: the warehouse's run queue is full");
        }
        Enqueued::Closed => {}
    }
    state.metrics().set_queue_depth("run", generation.queued());
}

async fn prune_claims(state: &AppState, now: DateTime<Utc>) {
    if let Err(e) = state.registry().prune_claims(now - CLAIM_RETENTION).await {
        tracing::warn!(error = %e, "could not prune old scheduler claims");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedule(expr: &str) -> Schedule {
        Schedule {
            expr: expr.to_owned(),
            cron: croner::parser::CronParser::builder()
                .build()
                .parse(expr)
                .expect("valid cron"),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn ticks_follow_the_agent_zone() {
        let s = schedule("0 8 * * *");
        let tz: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(
            next_tick(&s, utc("2026-11-20T12:00:00Z"), tz),
            Some(utc("2026-11-21T07:00:00Z"))
        );
        assert_eq!(
            latest_tick(&s, utc("2026-11-20T12:00:00Z"), tz),
            Some(utc("2026-11-20T07:00:00Z"))
        );
    }

    #[test]
    fn a_tick_in_the_spring_gap_still_runs_and_the_autumn_hour_runs_once() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        // 2026-03-29 02:30 does not exist in Paris; it runs at 03:00 local (01:00Z).
        let s = schedule("30 2 * * *");
        let t = next_tick(&s, utc("2026-03-28T12:00:00Z"), tz).unwrap();
        assert_eq!(
            t.date_naive(),
            chrono::NaiveDate::from_ymd_opt(2026, 3, 29).unwrap()
        );
        assert!(t <= utc("2026-03-29T01:30:00Z"), "{t}");
        // 2026-10-25 02:30 happens twice in Paris; it runs once.
        let after = utc("2026-10-24T12:00:00Z");
        let first = next_tick(&s, after, tz).unwrap();
        let second = next_tick(&s, first, tz).unwrap();
        assert_eq!(
            first.date_naive(),
            chrono::NaiveDate::from_ymd_opt(2026, 10, 25).unwrap()
        );
        assert_eq!(
            second.date_naive(),
            chrono::NaiveDate::from_ymd_opt(2026, 10, 26).unwrap()
        );
    }

    #[test]
    fn missed_ticks_collapse_into_the_latest() {
        let s = schedule("*/15 * * * *");
        let tz = chrono_tz::UTC;
        // Asleep from 10:00 to 11:07: one run, for 11:00.
        assert_eq!(
            latest_tick(
                &s,
                Utc.with_ymd_and_hms(2026, 11, 20, 11, 7, 0).unwrap(),
                tz
            ),
            Some(utc("2026-11-20T11:00:00Z"))
        );
        assert_eq!(
            next_tick(
                &s,
                Utc.with_ymd_and_hms(2026, 11, 20, 11, 7, 0).unwrap(),
                tz
            ),
            Some(utc("2026-11-20T11:15:00Z"))
        );
    }

    #[test]
    fn ticks_fall_on_whole_seconds() {
        let s = schedule("* * * * *");
        let after = utc("2026-11-20T10:00:30.653177Z");
        assert_eq!(
            next_tick(&s, after, chrono_tz::UTC),
            Some(utc("2026-11-20T10:01:00Z"))
        );
        assert_eq!(
            latest_tick(&s, after, chrono_tz::UTC),
            Some(utc("2026-11-20T10:00:00Z"))
        );
    }

    #[test]
    fn nicknames_are_understood() {
        let s = schedule("@hourly");
        assert_eq!(
            next_tick(&s, utc("2026-11-20T10:59:59Z"), chrono_tz::UTC),
            Some(utc("2026-11-20T11:00:00Z"))
        );
    }
}
