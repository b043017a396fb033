//! The receivers of the routes file as settings: each kind's addresses,
//! keys and timings, validated by the routes loader and read by the alert
//! module's receivers, which send.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

pub use crate::domain::Secret;

/// One entry of `receivers:`.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub name: String,
    pub kind: ReceiverKind,
}

/// A receiver's kind and its settings.
#[derive(Debug, Clone)]
pub enum ReceiverKind {
    PagerDuty(PagerDutyConfig),
    Slack(SlackConfig),
    Webhook(WebhookConfig),
    Email(EmailConfig),
    Alertmanager(AlertmanagerConfig),
    Log(LogConfig),
    /// Not written in the routes file: `agent.openlineage`, added by the
    /// loader under [`OPENLINEAGE_RECEIVER`] so that lineage events travel
    /// through the outbox like notifications. No route sends alerts to it.
    OpenLineage(OpenLineageConfig),
}

impl ReceiverKind {
    /// The kind as written in the routes file.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PagerDuty(_) => "pagerduty",
            Self::Slack(_) => "slack",
            Self::Webhook(_) => "webhook",
            Self::Email(_) => "email",
            Self::Alertmanager(_) => "alertmanager",
            Self::Log(_) => "log",
            Self::OpenLineage(_) => "openlineage",
        }
    }

    /// Whether notifications must leave in order only per deduplication key
    /// (each PagerDuty event stands alone) rather than in queue order.
    pub fn ordered_per_key(&self) -> bool {
        matches!(self, Self::PagerDuty(_))
    }
}

/// The receiver kinds, as written in the routes file.
pub const KINDS: [&str; 6] = [
    "pagerduty",
    "slack",
    "webhook",
    "email",
    "alertmanager",
    "log",
];

/// The outbox's receiver name for OpenLineage events: not a name the
/// routes file can use (receiver names hold letters, digits, `_` and `-`).
pub const OPENLINEAGE_RECEIVER: &str = "@openlineage";

/// `agent.openlineage` settings.
#[derive(Debug, Clone)]
pub struct OpenLineageConfig {
    /// The endpoint events are `POST`ed to.
    pub url: String,
    /// Sent as `Authorization: Bearer <api_key>`.
    pub api_key: Option<Secret>,
    /// The namespace of warden's jobs.
    pub namespace: String,
}

/// PagerDuty's endpoint for Events API v2.
pub const PAGERDUTY_DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// `pagerduty:` settings.
#[derive(Debug, Clone)]
pub struct PagerDutyConfig {
    /// The integration key of the service to page.
    pub routing_key: Secret,
    /// The events endpoint; [`PAGERDUTY_DEFAULT_URL`] unless set (a proxy, a test).
    pub url: String,
}

/// `slack:` settings.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// The incoming webhook URL (it carries the token, so it is a secret).
    pub webhook_url: Secret,
}

/// `webhook:` settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Where to post (it may carry a token in its path, so it is a secret).
    pub url: Secret,
    /// Signs each body when set.
    pub hmac_secret: Option<Secret>,
}

/// `email:` settings.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// lettre's SMTP URL (it may carry a password).
    pub smtp: Secret,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
}

/// The SMTP transport `url` describes, without connecting; its error says
/// why the URL is not usable.
pub fn smtp_transport(
    url: &str,
    timeout: std::time::Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map(|b| b.timeout(Some(timeout)).build())
        .map_err(|e| e.to_string())
}

/// How often firing alerts are sent again unless configured.
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);

/// `alertmanager:` settings.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://127.0.0.1:9093`.
    pub url: String,
    /// How often firing alerts are sent again.
    pub resend_interval: Duration,
}

impl AlertmanagerConfig {
    /// The endpoint alerts are POSTed to.
    pub fn endpoint(&self) -> String {
        format!("{}/api/v2/alerts", self.url.trim_end_matches('/'))
    }
}

/// `log:` settings (none yet).
#[derive(Debug, Clone, Default)]
pub struct LogConfig {}
