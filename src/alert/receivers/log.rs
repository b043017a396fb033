//! The log receiver: one structured log line per alert notification, on the
//! `warden::alert` target. The demo's default, and a safe first receiver:
//! it goes through the outbox like the others, and never fails.

use serde_json::{Value, json};

use super::{Notification, Rendered};
use crate::alert::model::{Alert, Status};

/// One entry per alert.
pub fn render(n: &Notification) -> Vec<Rendered> {
    n.alerts
        .iter()
        .map(|alert| Rendered {
            payload: json!({"alert": alert, "digest": n.digest.is_some()}),
            dedup_key: None,
        })
        .collect()
}

/// Writes the line.
pub fn deliver(receiver: &str, payload: &Value) {
    let digest = payload.get("digest").and_then(Value::as_bool) == Some(true);
    let Some(alert) = payload
        .get("alert")
        .and_then(|a| serde_json::from_value::<Alert>(a.clone()).ok())
    else {
        tracing::warn!(target: "warden::alert", receiver, payload = %payload, "unreadable alert notification");
        return;
    };
    let l = &alert.labels;
    let a = &alert.annotations;
    let partition = l.partition.as_deref().unwrap_or("");
    let check = l.check.as_deref().unwrap_or("");
    let dataset = l.dataset.as_deref().unwrap_or("");
    let warehouse = l.warehouse.as_deref().unwrap_or("");
    let owner = l.owner.as_deref().unwrap_or("");
    match alert.status {
        Status::Firing => tracing::warn!(
            target: "warden::alert",
            receiver, status = "firing", alert = %alert.key, dataset, check, partition, warehouse,
            owner, tier = l.tier, severity = l.severity.as_str(), kind = %l.kind, digest,
            dedup_key = %alert.dedup_key(),
            "{}", a.summary
        ),
        Status::Resolved => tracing::info!(
            target: "warden::alert",
            receiver, status = "resolved", alert = %alert.key, dataset, check, partition, warehouse,
            owner, tier = l.tier, severity = l.severity.as_str(), kind = %l.kind, digest,
            dedup_key = %alert.dedup_key(),
            "{}", a.summary
        ),
    }
}
