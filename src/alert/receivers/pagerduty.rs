//! PagerDuty Events API v2: one event per alert, `trigger` while it fires
//! (again at each repeat) and `resolve` when it passes, both under
//! `dedup_key = warden/<check id>` (whatever partition the check looks at;
//! `warden/<dataset>/quarantine/<partition>` for a quarantined partition;
//! at most 255 bytes) so that PagerDuty keeps one incident per failing
//! check and closes it.
//!
//! The routing key is added at delivery, so it is not stored in the outbox
//! and a rotated key applies to notifications already queued.

use serde_json::{Value, json};

use super::{DeliveryContext, DeliveryError, Notification, Rendered, post_json};
use crate::alert::model::{Alert, Status, format_threshold, truncate};
use crate::config::routes::receiver::PagerDutyConfig;
use crate::format;

/// PagerDuty refuses summaries longer than this.
pub const SUMMARY_MAX_CHARS: usize = 1024;

/// One event per alert.
pub fn render(_config: &PagerDutyConfig, n: &Notification) -> Vec<Rendered> {
    n.alerts
        .iter()
        .map(|alert| Rendered {
            payload: event(alert, n.status_url.as_deref()),
            dedup_key: Some(alert.dedup_key()),
        })
        .collect()
}

/// The event for `alert`, without the routing key.
pub fn event(alert: &Alert, status_url: Option<&str>) -> Value {
    let dedup_key = alert.dedup_key();
    if alert.status == Status::Resolved {
        return json!({"event_action": "resolve", "dedup_key": dedup_key});
    }
    let l = &alert.labels;
    let a = &alert.annotations;
    let mut details = serde_json::Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            details.insert(key.to_owned(), v);
        }
    };
    put("check", l.check.clone().map(Value::from));
    put("dataset", l.dataset.clone().map(Value::from));
    put("partition", l.partition.clone().map(Value::from));
    put("warehouse", l.warehouse.clone().map(Value::from));
    put("tier", Some(Value::from(l.tier)));
    put("owner", l.owner.clone().map(Value::from));
    put("outcome", a.outcome.map(|o| Value::from(o.as_str())));
    put(
        "observed",
        a.observed.map(|v| Value::from(format::number(v))),
    );
    put(
        "threshold",
        (!a.threshold.is_empty()).then(|| Value::from(format_threshold(&a.threshold))),
    );
    put("message", Some(Value::from(a.message.clone())));
    put("column", a.column.clone().map(Value::from));
    put("gate_id", a.gate_id.clone().map(Value::from));
    put(
        "reasons",
        (!a.reasons.is_empty()).then(|| Value::from(a.reasons.clone())),
    );
    let mut links = Vec::new();
    if let Some(runbook) = &a.runbook {
        links.push(json!({"href": runbook, "text": "Runbook"}));
    }
    if let Some(url) = status_url {
        links.push(json!({"href": url, "text": "warden status page"}));
    }
    let mut event = json!({
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": truncate(&a.summary, SUMMARY_MAX_CHARS),
            "source": match &l.warehouse {
                Some(w) => format!("warden/{w}"),
                None => "warden".to_owned(),
            },
            "severity": l.severity.as_str(),
            "timestamp": alert.starts_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "component": l.dataset.clone().or_else(|| l.warehouse.clone()).unwrap_or_else(|| alert.key.clone()),
            "group": l.owner.clone().unwrap_or_else(|| "warden".to_owned()),
            "class": l.kind,
            "custom_details": details,
        },
        "links": links,
        "client": "warden",
    });
    if let Some(url) = status_url {
        event["client_url"] = Value::from(url);
    }
    event
}

/// Sends one event, with the routing key of the current configuration.
pub async fn deliver(
    config: &PagerDutyConfig,
    payload: &Value,
    cx: &DeliveryContext,
) -> Result<(), DeliveryError> {
    let mut body = payload.clone();
    let Some(object) = body.as_object_mut() else {
        return Err(DeliveryError::permanent(
            "queued PagerDuty event is not a JSON object",
        ));
    };
    object.insert(
        "routing_key".to_owned(),
        Value::from(config.routing_key.expose()),
    );
    let bytes = serde_json::to_vec(&body).expect("JSON serialises");
    let key = config.routing_key.expose();
    post_json(cx, &config.url, bytes, &[], &[key]).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::model::{Annotations, DEDUP_KEY_MAX_BYTES, quarantine_key};
    use crate::config::routes::receiver::PAGERDUTY_DEFAULT_URL;
    use crate::config::routes::{Labels, QUARANTINE_KIND, Secret, Severity};
    use chrono::TimeZone;

    fn alert(key: &str, kind: &str, partition: Option<&str>, status: Status) -> Alert {
        Alert {
            key: key.to_owned(),
            status,
            labels: Labels {
                kind: kind.to_owned(),
                check: (kind != QUARANTINE_KIND).then(|| key.to_owned()),
                dataset: Some("orders".to_owned()),
                partition: partition.map(str::to_owned),
                warehouse: Some("main".to_owned()),
                tier: 1,
                owner: None,
                severity: Severity::Critical,
            },
            annotations: Annotations {
                summary: "bad".to_owned(),
                message: String::new(),
                outcome: None,
                observed: None,
                threshold: Default::default(),
                runbook: None,
                column: None,
                gate_id: None,
                reasons: Vec::new(),
            },
            starts_at: chrono::Utc.with_ymd_and_hms(2026, 11, 21, 8, 0, 0).unwrap(),
            ends_at: None,
        }
    }

    #[test]
    fn dedup_keys_name_the_check_whatever_its_partition() {
        for partition in [Some("2026-11-20"), Some("2026-11-21"), None] {
            let a = alert("orders.row_count", "row_count", partition, Status::Firing);
            assert_eq!(event(&a, None)["dedup_key"], "warden/orders.row_count");
        }
        let q = alert(
            &quarantine_key("orders"),
            QUARANTINE_KIND,
            Some("2026-11-20"),
            Status::Firing,
        );
        assert_eq!(
            event(&q, None)["dedup_key"],
            "warden/orders/quarantine/2026-11-20"
        );
    }

    #[test]
    fn a_300_byte_check_id_gives_a_key_of_at_most_255_bytes() {
        let id = format!("orders.{}", "c".repeat(293));
        assert_eq!(id.len(), 300);
        let firing = alert(&id, "sql", Some("2026-11-20"), Status::Firing);
        let resolved = alert(&id, "sql", Some("2026-11-21"), Status::Resolved);
        let key = event(&firing, None)["dedup_key"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(key.len(), DEDUP_KEY_MAX_BYTES);
        assert!(key.starts_with("warden/orders.ccc"), "{key}");
        // The resolve closes the same incident.
        assert_eq!(event(&resolved, None)["dedup_key"], key.as_str());
        let config = PagerDutyConfig {
            routing_key: Secret::new("k".to_owned()),
            url: PAGERDUTY_DEFAULT_URL.to_owned(),
        };
        let n = Notification {
            receiver: "oncall".to_owned(),
            group: "orders".to_owned(),
            alerts: vec![firing],
            digest: None,
            status_url: None,
            at: chrono::Utc::now(),
        };
        let rendered = render(&config, &n);
        assert_eq!(rendered[0].dedup_key.as_deref(), Some(key.as_str()));
    }
}
