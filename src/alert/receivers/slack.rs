//! Slack incoming webhooks: a `text` fallback (notifications, old clients)
//! and Block Kit blocks: a header, then per alert a section with its
//! summary and fields (observed vs threshold, owner, severity) and a
//! context line with its runbook, and at the end the status page.
//!
//! Slack refuses a message that breaks Block Kit's limits, so every text is
//! cut to its limit and a long group lists its first alerts and counts the
//! rest.

use serde_json::{Value, json};

use super::{DeliveryContext, DeliveryError, Notification, post_json};
use crate::alert::model::{Alert, Status, format_threshold, truncate};
use crate::config::routes::Severity;
use crate::config::routes::receiver::SlackConfig;
use crate::format;

/// Blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// Characters of a header's text.
pub const HEADER_MAX_CHARS: usize = 150;
/// Characters of a section's text.
pub const SECTION_MAX_CHARS: usize = 3000;
/// Fields per section.
pub const MAX_FIELDS: usize = 10;
/// Characters of one field.
pub const FIELD_MAX_CHARS: usize = 2000;
/// Characters of the `text` fallback warden sends (Slack cuts at 40,000;
/// a fallback is read in a notification, so it stays short).
pub const TEXT_MAX_CHARS: usize = 3000;
/// Alerts shown one by one; the rest are counted. Two blocks each keeps a
/// message within [`MAX_BLOCKS`].
pub const MAX_ALERTS_SHOWN: usize = 20;

/// The webhook body for `n`.
pub fn render(n: &Notification) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&n.title(), HEADER_MAX_CHARS), "emoji": true},
    })];
    for alert in n.alerts.iter().take(MAX_ALERTS_SHOWN) {
        blocks.push(alert_section(alert));
        if let Some(runbook) = &alert.annotations.runbook {
            blocks.push(json!({
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": truncate(&format!("<{}|Runbook>", escape(runbook)), SECTION_MAX_CHARS)}],
            }));
        }
    }
    let hidden = n.alerts.len().saturating_sub(MAX_ALERTS_SHOWN);
    if hidden > 0 {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("…and {hidden} more alert{}.", if hidden == 1 { "" } else { "s" })},
        }));
    }
    if let Some(url) = &n.status_url {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": truncate(&format!("<{}|warden status page>", escape(url)), SECTION_MAX_CHARS)}],
        }));
    }
    blocks.truncate(MAX_BLOCKS);
    json!({"text": fallback(n), "blocks": blocks})
}

fn alert_section(alert: &Alert) -> Value {
    let a = &alert.annotations;
    let l = &alert.labels;
    let title = l.check.clone().unwrap_or_else(|| alert.subject());
    let partition = l
        .partition
        .as_deref()
        .map(|p| format!(" ({})", escape(p)))
        .unwrap_or_default();
    let text = format!(
        "{} *{}*{partition}\n{}",
        icon(alert),
        escape(&title),
        escape(&a.summary)
    );
    let mut fields = Vec::new();
    if let Some(observed) = a.observed {
        fields.push(field("Observed", &format::number(observed)));
    }
    if !a.threshold.is_empty() {
        fields.push(field("Threshold", &format_threshold(&a.threshold)));
    }
    if let Some(owner) = &l.owner {
        fields.push(field("Owner", owner));
    }
    fields.push(field("Severity", l.severity.as_str()));
    fields.push(field("Tier", &l.tier.to_string()));
    if let Some(gate) = &a.gate_id {
        fields.push(field("Gate", gate));
    }
    fields.truncate(MAX_FIELDS);
    json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(&text, SECTION_MAX_CHARS)},
        "fields": fields,
    })
}

fn field(name: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": truncate(&format!("*{name}*\n{}", escape(value)), FIELD_MAX_CHARS)})
}

fn icon(alert: &Alert) -> &'static str {
    match (alert.status, alert.labels.severity) {
        (Status::Resolved, _) => ":white_check_mark:",
        (Status::Firing, Severity::Critical) => ":red_circle:",
        (Status::Firing, Severity::Error) => ":large_orange_circle:",
        (Status::Firing, Severity::Warning) => ":large_yellow_circle:",
        (Status::Firing, Severity::Info) => ":information_source:",
    }
}

/// The `text` fallback: the title, then one line per alert.
fn fallback(n: &Notification) -> String {
    let mut text = n.title();
    for alert in &n.alerts {
        let status = match alert.status {
            Status::Firing => "FIRING",
            Status::Resolved => "RESOLVED",
        };
        text.push_str(&format!("\n[{status}] {}", alert.annotations.summary));
    }
    truncate(&text, TEXT_MAX_CHARS)
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped, and nothing else.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Posts one message to the webhook.
pub async fn deliver(
    config: &SlackConfig,
    payload: &Value,
    cx: &DeliveryContext,
) -> Result<(), DeliveryError> {
    let bytes = serde_json::to_vec(payload).expect("JSON serialises");
    post_json(cx, config.webhook_url.expose(), bytes, &[], &[]).await
}
