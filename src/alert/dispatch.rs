//! Delivering the outbox: one worker per receiver, so a receiver that is
//! down or slow delays only its own notifications.
//!
//! A worker claims its receiver's oldest due notification (leased, so that
//! another agent sharing the registry skips it, and so that it is due again
//! if this process dies mid-delivery), tries it, and records the result:
//! delivered; retried after an exponential backoff with jitter (or after
//! the receiver's `Retry-After`, during which the whole receiver pauses);
//! or dead (a permanent error, or older than `max_age`). Each attempt is
//! counted in `warden_notifications_total{receiver,result}` and the backlog
//! is kept in `warden_outbox_pending{receiver}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::receivers::{DeliveryContext, DeliveryError};
use crate::config::routes::{DeliveryPolicy, Routes};
use crate::domain::Backoff;
use crate::metrics::Metrics;
use crate::registry::{Registry, RegistryError};

/// How long a claimed notification stays leased beyond its attempt's
/// timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often an idle worker looks for due notifications without being woken.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long a worker waits after the registry failed before trying again.
const REGISTRY_RETRY: Duration = Duration::from_secs(2);

/// `warden_notifications_total` results.
pub const DELIVERED: &str = "delivered";
pub const RETRY: &str = "retry";
pub const DEAD: &str = "dead";

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The receiver accepted it.
    Delivered { id: i64 },
    /// It failed and will be tried again at `next_attempt_at`; `pause` is
    /// set when the receiver asked to wait (429 with `Retry-After`).
    Retry {
        id: i64,
        next_attempt_at: DateTime<Utc>,
        pause: Option<Duration>,
        error: String,
    },
    /// It was given up on: the dead-letter list.
    Dead { id: i64, error: String },
}

/// Delivers the outbox; see the module documentation.
#[derive(Clone)]
pub struct Dispatcher {
    pub(super) registry: Registry,
    pub(super) metrics: Arc<Metrics>,
    pub(super) routes: watch::Receiver<Arc<Routes>>,
    pub(super) wake: Arc<Notify>,
    pub(super) http: reqwest::Client,
}

impl Dispatcher {
    /// Runs the workers until `shutdown` is cancelled, starting and stopping
    /// them as receivers come and go with the routes. A notification whose
    /// receiver is no longer configured goes to the dead-letter list.
    pub async fn run(mut self, shutdown: CancellationToken) {
        // Workers live in a JoinSet so that they stop with this future even
        // when it is dropped rather than shut down.
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut workers: HashMap<String, watch::Sender<bool>> = HashMap::new();
        loop {
            let routes = self.routes.borrow_and_update().clone();
            workers.retain(|name, stop| {
                let keep = routes.receivers.contains_key(name);
                if !keep {
                    let _ = stop.send(true);
                }
                keep
            });
            for name in routes.receivers.keys() {
                if !workers.contains_key(name) {
                    let (stop, stopped) = watch::channel(false);
                    let worker = self.clone();
                    let name_owned = name.clone();
                    tasks.spawn(async move { worker.work(name_owned, stopped).await });
                    workers.insert(name.clone(), stop);
                }
            }
            // Reap the workers of receivers that were removed.
            while tasks.try_join_next().is_some() {}
            if let Err(e) = self.housekeeping(&routes).await {
                tracing::warn!(error = %e, "outbox housekeeping failed; trying again shortly");
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                changed = self.routes.changed() => {
                    if changed.is_err() {
                        // The alert manager is gone: nothing more will be queued.
                        tokio::time::sleep(POLL_INTERVAL).await;
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
        // Let each worker finish the attempt it is making (bounded by the
        // delivery timeout), then stop.
        let grace = self.routes.borrow().policy.delivery.timeout + Duration::from_secs(1);
        for stop in workers.values() {
            let _ = stop.send(true);
        }
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("a delivery did not finish in time; it is retried after the restart");
            tasks.abort_all();
        }
    }

    /// Pending counts for `warden_outbox_pending`, notifications of
    /// receivers no longer configured to the dead-letter list (delivered
    /// ones are pruned by the agent's retention task).
    async fn housekeeping(&self, routes: &Routes) -> Result<(), RegistryError> {
        let pending = self.registry.pending_by_receiver().await?;
        for (name, _) in &pending {
            if routes.receivers.contains_key(name) {
                continue;
            }
            let now = Utc::now();
            while let Some(entry) = self
                .registry
                .claim_next(name, now + chrono::Duration::days(36500), now, false)
                .await?
            {
                let error = format!("receiver `{name}` is not configured any more");
                settle(self.registry.mark_dead(entry.id, &error).await)?;
                self.metrics.record_notification(name, DEAD);
                tracing::warn!(receiver = %name, id = entry.id, "{error}; the notification joins the dead-letter list");
            }
        }
        self.update_pending(routes).await?;
        Ok(())
    }

    async fn update_pending(&self, routes: &Routes) -> Result<(), RegistryError> {
        let pending = self.registry.pending_by_receiver().await?;
        let names: Vec<&str> = routes
            .receivers
            .keys()
            .map(String::as_str)
            .chain(pending.iter().map(|(n, _)| n.as_str()))
            .collect();
        self.metrics.set_outbox_pending(names, &pending);
        Ok(())
    }

    /// One receiver's worker.
    async fn work(self, name: String, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let wait = match self.deliver_next(&name).await {
                Ok(Some(Attempt::Retry {
                    pause: Some(pause), ..
                })) => Some(pause),
                Ok(Some(_)) => None,
                Ok(None) => {
                    tokio::select! {
                        _ = stop.changed() => {}
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(POLL_INTERVAL) => {}
                    }
                    None
                }
                Err(e) => {
                    tracing::warn!(receiver = %name, error = %e, "cannot reach the outbox; trying again shortly");
                    Some(REGISTRY_RETRY)
                }
            };
            if let Some(wait) = wait {
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// Takes the next due notification of `receiver` and tries it once.
    /// `None` when nothing is due (or the receiver is not configured).
    pub async fn deliver_next(&self, receiver: &str) -> Result<Option<Attempt>, RegistryError> {
        let routes = self.routes.borrow().clone();
        let Some(config) = routes.receivers.get(receiver) else {
            return Ok(None);
        };
        let policy = &routes.policy.delivery;
        let now = Utc::now();
        let lease = now + to_chrono(policy.timeout + LEASE_MARGIN);
        let Some(entry) = self
            .registry
            .claim_next(receiver, now, lease, config.kind.ordered_per_key())
            .await?
        else {
            return Ok(None);
        };
        let cx = DeliveryContext {
            http: self.http.clone(),
            timeout: policy.timeout,
            notification_id: entry.id,
        };
        let result = config.deliver(&entry.payload, &cx).await;
        let now = Utc::now();
        let attempt = match result {
            Ok(()) => {
                settle(self.registry.mark_delivered(entry.id).await)?;
                self.metrics.record_notification(receiver, DELIVERED);
                tracing::debug!(
                    receiver,
                    id = entry.id,
                    attempts = entry.attempts + 1,
                    "notification delivered"
                );
                Attempt::Delivered { id: entry.id }
            }
            Err(DeliveryError::Permanent { reason }) => {
                settle(self.registry.mark_dead(entry.id, &reason).await)?;
                self.metrics.record_notification(receiver, DEAD);
                tracing::warn!(receiver, id = entry.id, error = %reason, "the receiver refused the notification; it joins the dead-letter list");
                Attempt::Dead {
                    id: entry.id,
                    error: reason,
                }
            }
            Err(DeliveryError::Transient {
                reason,
                retry_after,
            }) => {
                let attempts = u32::try_from(entry.attempts + 1).unwrap_or(u32::MAX);
                let wait = retry_after.unwrap_or_else(|| backoff(policy).delay(attempts));
                let next = now + to_chrono(wait);
                if next > entry.created_at + to_chrono(policy.max_age) {
                    let error = format!(
                        "gave up after {} and {attempts} attempt{}: {reason}",
                        humantime::format_duration(policy.max_age),
                        if attempts == 1 { "" } else { "s" }
                    );
                    settle(self.registry.mark_dead(entry.id, &error).await)?;
                    self.metrics.record_notification(receiver, DEAD);
                    tracing::warn!(receiver, id = entry.id, error = %error, "notification given up; it joins the dead-letter list");
                    Attempt::Dead {
                        id: entry.id,
                        error,
                    }
                } else {
                    settle(self.registry.mark_failed(entry.id, next, &reason).await)?;
                    self.metrics.record_notification(receiver, RETRY);
                    tracing::info!(receiver, id = entry.id, attempts, error = %reason, retry_in = %humantime::format_duration(wait), "delivery failed; retrying later");
                    Attempt::Retry {
                        id: entry.id,
                        next_attempt_at: next,
                        pause: retry_after,
                        error: reason,
                    }
                }
            }
        };
        self.update_pending(&routes).await?;
        Ok(Some(attempt))
    }
}

/// A settled notification that is no longer pending was replaced while it
/// was being delivered (a newer Alertmanager resync): nothing to record.
fn settle(result: Result<(), RegistryError>) -> Result<(), RegistryError> {
    match result {
        Err(RegistryError::NotFound { .. }) => Ok(()),
        other => other,
    }
}

/// How the outbox spaces the attempts of one notification: the policy's
/// `initial_backoff` doubled per failed attempt, capped at `max_backoff`.
pub fn backoff(policy: &DeliveryPolicy) -> Backoff {
    Backoff::new(policy.initial_backoff, policy.max_backoff)
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let policy = DeliveryPolicy {
            timeout: Duration::from_secs(1),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        };
        for _ in 0..100 {
            let first = backoff(&policy).delay(1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let fourth = backoff(&policy).delay(4);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            let late = backoff(&policy).delay(40);
            assert!(late >= Duration::from_secs(30) && late <= Duration::from_secs(60));
        }
    }
}
