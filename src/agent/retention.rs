//! The retention task: every hour the agent deletes history older than
//! `agent.retention` says, a batch of [`BATCH`] rows at a time, each batch
//! its own short transaction with a pause after it, so gates and runs get
//! the registry in between. What is still needed is never deleted (see
//! [`crate::registry::Prunable`]).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::app::AppState;
use crate::config::Retention;
use crate::registry::{Prunable, Registry, RegistryError};

/// How often the agent prunes.
pub const EVERY: Duration = Duration::from_secs(3600);
/// How long after start-up the first prune runs (start-up has enough to do).
pub const FIRST_AFTER: Duration = Duration::from_secs(60);
/// Rows deleted per statement.
pub const BATCH: u32 = 500;
/// The pause between batches.
pub const PAUSE: Duration = Duration::from_millis(20);

/// How many rows of each kind one prune deleted.
pub type Pruned = Vec<(Prunable, u64)>;

/// The cutoff of each kind of history at `now`.
fn cutoffs(retention: &Retention, now: DateTime<Utc>) -> [(Prunable, DateTime<Utc>); 6] {
    let before = |keep: Duration| now - chrono::Duration::from_std(keep).unwrap_or_default();
    [
        (Prunable::Results, before(retention.results)),
        (Prunable::Gates, before(retention.gates)),
        (Prunable::Transitions, before(retention.gates)),
        (Prunable::Notifications, before(retention.notifications)),
        (Prunable::ResolvedAlerts, before(retention.resolved_alerts)),
        (Prunable::Silences, before(retention.resolved_alerts)),
    ]
}

/// Deletes what `retention` no longer keeps at `now`, in batches of
/// `batch` rows. Returns how many rows of each kind went.
pub async fn prune(
    registry: &Registry,
    retention: &Retention,
    now: DateTime<Utc>,
    batch: u32,
) -> Result<Pruned, RegistryError> {
    let mut pruned = Vec::new();
    for (what, before) in cutoffs(retention, now) {
        let mut total = 0;
        loop {
            let deleted = registry.prune(what, before, batch).await?;
            total += deleted;
            if deleted < u64::from(batch) {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
        pruned.push((what, total));
    }
    Ok(pruned)
}

/// Prunes [`FIRST_AFTER`] start-up and then every [`EVERY`], with the
/// retention of the configuration in effect each time, until shutdown.
pub async fn run(state: AppState) {
    let shutdown = state.shutdown().clone();
    let mut wait = FIRST_AFTER;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        let retention = state.config().agent.retention;
        let started = tokio::time::Instant::now();
        let pruned = tokio::select! {
            () = shutdown.cancelled() => return,
            pruned = prune(state.registry(), &retention, Utc::now(), BATCH) => pruned,
        };
        match pruned {
            Ok(pruned) => {
                let deleted: u64 = pruned.iter().map(|(_, n)| n).sum();
                if deleted > 0 {
                    let counts: Vec<String> = pruned
                        .iter()
                        .filter(|(_, n)| *n > 0)
                        .map(|(what, n)| format!("{n} {}", what.as_str()))
                        .collect();
                    tracing::info!(deleted = %counts.join(", "), took = ?started.elapsed(), "old history pruned");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not prune old history; trying again in an hour")
            }
        }
    }
}
