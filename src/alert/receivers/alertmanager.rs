//! Prometheus Alertmanager: alerts are POSTed to `/api/v2/alerts` with
//! labels, annotations, `startsAt` and `endsAt`.
//!
//! Alertmanager resolves an alert by itself once its `endsAt` passes, so a
//! firing alert is sent with `endsAt` a few resend intervals ahead and sent
//! again every `resend_interval` while it fires (as Prometheus does); a
//! resolved alert is sent once with `endsAt` set to when it resolved.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{DeliveryContext, DeliveryError, post_json};
use crate::alert::model::{Alert, Status, format_threshold};
use crate::config::routes::receiver::AlertmanagerConfig;
use crate::config::routes::{QUARANTINE_KIND, Severity, WAREHOUSE_KIND};
use crate::format;

/// `endsAt` of a firing alert is this many resend intervals ahead, so that
/// a few lost resends do not resolve it.
const ENDS_AT_INTERVALS: u32 = 4;

/// The `alertname` label of `alert`.
pub fn alert_name(alert: &Alert) -> &'static str {
    match alert.labels.kind.as_str() {
        WAREHOUSE_KIND => "WardenWarehouseDown",
        QUARANTINE_KIND => "WardenPartitionQuarantined",
        _ => match alert.labels.severity {
            Severity::Error => "WardenCheckError",
            Severity::Warning | Severity::Info => "WardenCheckWarning",
            Severity::Critical => "WardenCheckFailing",
        },
    }
}

/// The request body for `alerts`, as of `at`.
pub fn render(
    config: &AlertmanagerConfig,
    alerts: &[Alert],
    status_url: Option<&str>,
    at: DateTime<Utc>,
) -> Value {
    let ahead = config.resend_interval * ENDS_AT_INTERVALS;
    let ends_firing =
        at + chrono::Duration::from_std(ahead).unwrap_or_else(|_| chrono::Duration::minutes(5));
    Value::Array(
        alerts
            .iter()
            .map(|alert| {
                let l = &alert.labels;
                let a = &alert.annotations;
                let mut labels = Map::new();
                labels.insert("alertname".into(), alert_name(alert).into());
                labels.insert("source".into(), "warden".into());
                labels.insert("kind".into(), l.kind.clone().into());
                labels.insert("severity".into(), l.severity.as_str().into());
                labels.insert("tier".into(), l.tier.to_string().into());
                for (key, value) in [
                    ("check", &l.check),
                    ("dataset", &l.dataset),
                    ("partition", &l.partition),
                    ("warehouse", &l.warehouse),
                    ("owner", &l.owner),
                ] {
                    if let Some(v) = value {
                        labels.insert(key.into(), v.clone().into());
                    }
                }
                let mut annotations = Map::new();
                annotations.insert("summary".into(), a.summary.clone().into());
                annotations.insert("description".into(), a.message.clone().into());
                if let Some(r) = &a.runbook {
                    annotations.insert("runbook_url".into(), r.clone().into());
                }
                if let Some(v) = a.observed {
                    annotations.insert("observed".into(), format::number(v).into());
                }
                if !a.threshold.is_empty() {
                    annotations.insert("threshold".into(), format_threshold(&a.threshold).into());
                }
                let ends_at = match alert.status {
                    Status::Firing => ends_firing,
                    Status::Resolved => alert.ends_at.unwrap_or(at),
                };
                let mut body = json!({
                    "labels": labels,
                    "annotations": annotations,
                    "startsAt": alert.starts_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "endsAt": ends_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                });
                if let Some(url) = status_url {
                    body["generatorURL"] = url.into();
                }
                body
            })
            .collect(),
    )
}

/// Posts one batch of alerts.
pub async fn deliver(
    config: &AlertmanagerConfig,
    payload: &Value,
    cx: &DeliveryContext,
) -> Result<(), DeliveryError> {
    let bytes = serde_json::to_vec(payload).expect("JSON serialises");
    post_json(cx, &config.endpoint(), bytes, &[], &[]).await
}
