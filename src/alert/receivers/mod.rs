//! Receivers: where notifications go, one file per kind, each speaking its
//! service's real format. A receiver does two things: it renders a
//! [`Notification`] into the bodies queued in the outbox (at queue time, so
//! a retry sends the same bytes), and it delivers one queued body (at send
//! time, with the secrets and addresses of the current configuration).
//!
//! Delivery errors are sorted here once for every HTTP receiver: 2xx is
//! delivered; 429 is retried after `Retry-After`; any other 4xx is
//! permanent (the dead-letter list); 5xx, timeouts and refused connections
//! are retried with backoff. Every HTTP request carries the notification's
//! outbox id in [`NOTIFICATION_ID_HEADER`], the same on every attempt. An
//! error never shows the receiver's URL or keys: it is scrubbed of them
//! (a receiver's answer may quote them), and logs name the receiver.

pub mod alertmanager;
pub mod email;
pub mod log;
pub mod openlineage;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::{Alert, Status};
use crate::config::routes::{Receiver, ReceiverKind};
use crate::domain::Scrubber;

/// The header carrying the notification's id: its outbox id, the same on
/// every attempt, for receivers to drop a notification they already have.
pub const NOTIFICATION_ID_HEADER: &str = "X-Warden-Notification-Id";

/// A digest's period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestPeriod {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// What one message to one receiver is about: the alerts of one group (a
/// dataset, or a warehouse), or a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub receiver: String,
    /// The dataset, or `warehouse <name>`; for a digest, the receiver's name.
    pub group: String,
    pub alerts: Vec<Alert>,
    /// Set for a digest.
    pub digest: Option<DigestPeriod>,
    /// The agent's status page, linked from messages.
    pub status_url: Option<String>,
    /// When it was queued.
    pub at: DateTime<Utc>,
}

impl Notification {
    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|a| a.status == Status::Firing)
    }

    pub fn resolved(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|a| a.status == Status::Resolved)
    }

    /// `firing` if any alert fires, else `resolved`.
    pub fn status(&self) -> Status {
        if self.firing().next().is_some() {
            Status::Firing
        } else {
            Status::Resolved
        }
    }

    /// One line for subjects and headers: `orders: 3 firing, 1 resolved`.
    pub fn title(&self) -> String {
        let firing = self.firing().count();
        let resolved = self.resolved().count();
        let counts = match (firing, resolved) {
            (0, 0) => "nothing to report".to_owned(),
            (f, 0) => format!("{f} firing"),
            (0, r) => format!("{r} resolved"),
            (f, r) => format!("{f} firing, {r} resolved"),
        };
        match &self.digest {
            Some(p) => format!(
                "warden digest since {}: {counts}",
                p.since.format("%Y-%m-%d %H:%M UTC")
            ),
            None => format!("{}: {counts}", self.group),
        }
    }
}

/// One body to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub payload: serde_json::Value,
    pub dedup_key: Option<String>,
}

impl Receiver {
    /// The bodies `n` becomes for this receiver: one per alert for
    /// PagerDuty and the log, one for the whole group for the others.
    pub fn render(&self, n: &Notification) -> Vec<Rendered> {
        match &self.kind {
            ReceiverKind::PagerDuty(c) => pagerduty::render(c, n),
            ReceiverKind::Slack(_) => vec![Rendered {
                payload: slack::render(n),
                dedup_key: None,
            }],
            ReceiverKind::Webhook(_) => vec![Rendered {
                payload: webhook::render(&self.name, n),
                dedup_key: None,
            }],
            ReceiverKind::Email(_) => vec![Rendered {
                payload: email::render(n),
                dedup_key: None,
            }],
            ReceiverKind::Alertmanager(c) => vec![Rendered {
                payload: alertmanager::render(c, &n.alerts, n.status_url.as_deref(), n.at),
                dedup_key: None,
            }],
            ReceiverKind::Log(_) => log::render(n),
            // Lineage events are queued by `crate::lineage`, never routed alerts.
            ReceiverKind::OpenLineage(_) => Vec::new(),
        }
    }

    /// Sends one queued body.
    pub async fn deliver(
        &self,
        payload: &serde_json::Value,
        cx: &DeliveryContext,
    ) -> Result<(), DeliveryError> {
        match &self.kind {
            ReceiverKind::PagerDuty(c) => pagerduty::deliver(c, payload, cx).await,
            ReceiverKind::Slack(c) => slack::deliver(c, payload, cx).await,
            ReceiverKind::Webhook(c) => webhook::deliver(c, payload, cx).await,
            ReceiverKind::Email(c) => email::deliver(c, payload, cx).await,
            ReceiverKind::Alertmanager(c) => alertmanager::deliver(c, payload, cx).await,
            ReceiverKind::Log(_) => {
                log::deliver(&self.name, payload);
                Ok(())
            }
            ReceiverKind::OpenLineage(c) => openlineage::deliver(c, payload, cx).await,
        }
    }
}

/// What a delivery needs besides the receiver's settings.
#[derive(Debug, Clone)]
pub struct DeliveryContext {
    pub http: reqwest::Client,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// The notification's outbox id.
    pub notification_id: i64,
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth another attempt: the receiver is down, slow, or asked to wait
    /// (`retry_after`, from a 429's `Retry-After`).
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will fail the same way every time (a 4xx other than 429, a body the
    /// receiver refuses); the notification goes to the dead-letter list.
    #[error("{reason}")]
    Permanent { reason: String },
}

impl DeliveryError {
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
        }
    }
}

/// The longest `Retry-After` honoured as given; longer waits are cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How much of an error response's body is kept in the error message.
const ERROR_BODY_CHARS: usize = 300;

/// POSTs `body` (JSON) to `url` with `headers` and the notification id,
/// and sorts the answer. The error says nothing of `url` or `secrets`.
pub(crate) async fn post_json(
    cx: &DeliveryContext,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
    secrets: &[&str],
) -> Result<(), DeliveryError> {
    // A token may sit in the path (Slack, webhooks) or anywhere else.
    let path = url::Url::parse(url)
        .map(|u| u[url::Position::BeforePath..].to_owned())
        .unwrap_or_default();
    let path = path.trim_start_matches('/');
    let scrubber =
        Scrubber::new(secrets.iter().copied().chain([url, path])).and(Scrubber::for_url(url));
    let mut request = cx
        .http
        .post(url)
        .timeout(cx.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(NOTIFICATION_ID_HEADER, cx.notification_id.to_string())
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.map_err(|e| {
        DeliveryError::transient(scrubber.scrub(&describe_request_error(&e.without_url())))
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, Utc::now()));
    let text = scrubber.scrub(&response.text().await.unwrap_or_default());
    let reason = format!(
        "HTTP {}{}",
        status.as_u16(),
        match super::model::truncate(text.trim(), ERROR_BODY_CHARS) {
            t if t.is_empty() => String::new(),
            t => format!(": {t}"),
        }
    );
    Err(classify(status.as_u16(), reason, retry_after))
}

/// 429 is retried (after `retry_after` when given); other 4xx are permanent;
/// everything else is retried.
pub(crate) fn classify(
    status: u16,
    reason: String,
    retry_after: Option<Duration>,
) -> DeliveryError {
    match status {
        429 => DeliveryError::Transient {
            reason,
            retry_after,
        },
        400..=499 => DeliveryError::Permanent { reason },
        _ => DeliveryError::Transient {
            reason,
            retry_after: None,
        },
    }
}

/// `Retry-After` as seconds or as an HTTP date, capped at an hour.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value)
                .ok()?
                .with_timezone(&Utc);
            (at - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

fn describe_request_error(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    // The innermost cause says why (connection refused, DNS failure).
    let mut source = e.source();
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(cause) = last {
        text.push_str(": ");
        text.push_str(&cause);
    }
    text
}

/// Escapes `&`, `<` and `>` for HTML and for Slack's mrkdwn.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn only_429_among_4xx_is_retried() {
        let retry = Some(Duration::from_secs(2));
        assert_eq!(
            classify(429, "r".into(), retry),
            DeliveryError::Transient {
                reason: "r".into(),
                retry_after: retry
            }
        );
        assert!(matches!(
            classify(404, "r".into(), None),
            DeliveryError::Permanent { .. }
        ));
        assert!(matches!(
            classify(503, "r".into(), retry),
            DeliveryError::Transient {
                retry_after: None,
                ..
            }
        ));
    }
}
