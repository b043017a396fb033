//! `alerts/routes.yaml`: receivers, routes, the alerting policy and
//! silences, loaded like the rest of the configuration in two stages (raw
//! serde structs with spans, then typed values) with every problem reported
//! as `file:line:col: message`.
//!
//! ```yaml
//! receivers:
//!   oncall:  { pagerduty: { routing_key: ${PD_KEY} } }
//!   chat:    { slack: { webhook_url: ${SLACK_WEBHOOK_URL} } }
//! routes:                        # first match wins unless continue: true
//!   - match: { tier: 1 }         # tier, owner, dataset, severity, kind, check, partition, warehouse
//!     receivers: [oncall, chat]
//!   - match: { tier: 3 }
//!     receivers: [digest]
//!     digest: "0 8 * * *"        # batch into one message per schedule
//! policy:
//!   group_wait: 30s              # batch a dataset's alerts into one message
//!   repeat_interval: 4h
//!   consecutive_failures: 1      # failures in a row before firing
//!   send_resolved: true
//!   delivery: { timeout: 10s, initial_backoff: 1s, max_backoff: 5m, max_age: 24h }
//! silences:
//!   - match: { dataset: events }
//!     starts: 2026-11-21T00:00:00Z
//!     ends: 2026-11-22T00:00:00Z
//!     comment: migration
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_saphyr::Spanned;

pub mod labels;
pub mod matcher;
pub mod receiver;
pub mod silence;

pub use labels::{Labels, QUARANTINE_KIND, Severity, WAREHOUSE_KIND};
pub use matcher::{Matcher, OneOrMany};
pub use receiver::{Receiver, ReceiverKind, Secret};
pub use silence::{Silence, SilenceSource};

use crate::check::Schedule;
use crate::config::validate::values::parse_cron;
use crate::domain::{Scrubber, redact_url};
use crate::source::values::{check_plain_name, parse_duration};
use crate::source::{Diagnostic, Problems, ReadError, SourceFile, SourcePos, did_you_mean, one_of};
use receiver::{
    AlertmanagerConfig, DEFAULT_RESEND_INTERVAL, EmailConfig, KINDS, LogConfig,
    PAGERDUTY_DEFAULT_URL, PagerDutyConfig, SlackConfig, WebhookConfig, smtp_transport,
};

pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 1;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The alert routes, validated.
#[derive(Debug, Clone)]
pub struct Routes {
    /// The file they came from; `None` when the configuration names none.
    pub path: Option<PathBuf>,
    pub receivers: BTreeMap<String, Receiver>,
    /// In file order.
    pub routes: Vec<Route>,
    pub policy: Policy,
    /// Silences written in the file.
    pub silences: Vec<Silence>,
    /// Zone of digest schedules (`agent.timezone`).
    pub timezone: Tz,
}

impl Routes {
    /// These routes with the OpenLineage endpoint as the receiver
    /// [`receiver::OPENLINEAGE_RECEIVER`], which the outbox delivers to.
    pub fn with_openlineage(mut self, config: receiver::OpenLineageConfig) -> Self {
        self.receivers.insert(
            receiver::OPENLINEAGE_RECEIVER.to_owned(),
            Receiver {
                name: receiver::OPENLINEAGE_RECEIVER.to_owned(),
                kind: ReceiverKind::OpenLineage(config),
            },
        );
        self
    }
}

/// One entry of `routes:`.
#[derive(Debug, Clone)]
pub struct Route {
    pub matcher: Matcher,
    /// Names of receivers, each declared under `receivers:`.
    pub receivers: Vec<String>,
    /// Keep looking for matching routes after this one.
    pub continue_matching: bool,
    /// Send the matched alerts as one digest per schedule instead of as
    /// they come.
    pub digest: Option<Schedule>,
    pub pos: SourcePos,
}

impl Route {
    /// What identifies a digest route across reloads: its schedule,
    /// receivers and matchers (not its position in the file).
    pub fn digest_key(&self) -> Option<String> {
        self.digest.as_ref().map(|d| {
            format!(
                "{}|{}|{}",
                d.expr,
                self.receivers.join(","),
                self.matcher.to_json()
            )
        })
    }
}

/// `policy:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// How long a dataset's first alert waits for others to join its message.
    pub group_wait: Duration,
    /// How often a firing alert is notified again.
    pub repeat_interval: Duration,
    /// Failing observations in a row before an alert fires.
    pub consecutive_failures: u32,
    /// Whether receivers are told when an alert resolves.
    pub send_resolved: bool,
    pub delivery: DeliveryPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            group_wait: DEFAULT_GROUP_WAIT,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            consecutive_failures: DEFAULT_CONSECUTIVE_FAILURES,
            send_resolved: true,
            delivery: DeliveryPolicy::default(),
        }
    }
}

/// `policy.delivery:` how the outbox retries.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPolicy {
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Wait after the first failed attempt; doubled after each further one.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// A notification still undelivered this long after it was queued is
    /// given up on (dead-letter list).
    pub max_age: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

impl Routes {
    /// No receivers and no routes: alert state is kept, nothing is sent.
    pub fn empty(timezone: Tz) -> Self {
        Self {
            path: None,
            receivers: BTreeMap::new(),
            routes: Vec::new(),
            policy: Policy::default(),
            silences: Vec::new(),
            timezone,
        }
    }

    /// The routes an alert with `labels` takes, in order: the first that
    /// matches, and the ones after it while each matched route says
    /// `continue: true`.
    pub fn matching(&self, labels: &Labels) -> Vec<(usize, &Route)> {
        let mut matched = Vec::new();
        for (i, route) in self.routes.iter().enumerate() {
            if route.matcher.matches(labels) {
                matched.push((i, route));
                if !route.continue_matching {
                    break;
                }
            }
        }
        matched
    }

    /// The receivers an alert with `labels` is notified on as it happens
    /// (digest routes left out), each once, in route order.
    pub fn immediate_receivers(&self, labels: &Labels) -> Vec<&Receiver> {
        let mut names: Vec<&str> = Vec::new();
        for (_, route) in self.matching(labels) {
            if route.digest.is_some() {
                continue;
            }
            for r in &route.receivers {
                if !names.contains(&r.as_str()) {
                    names.push(r);
                }
            }
        }
        names
            .into_iter()
            .filter_map(|n| self.receivers.get(n))
            .collect()
    }
}

// ------------------------------------------------------------------ raw YAML

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutes {
    /// Receivers by name.
    receivers: Option<HashMap<Spanned<String>, Spanned<RawReceiver>>>,
    /// Routes, tried in order.
    routes: Option<Vec<Spanned<RawRoute>>>,
    /// Timing of notifications and deliveries.
    policy: Option<Spanned<RawPolicy>>,
    /// Silences kept in the file.
    silences: Option<Vec<Spanned<RawSilence>>>,
}

/// A receiver: exactly one of its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    pagerduty: Option<Spanned<RawPagerDuty>>,
    slack: Option<Spanned<RawSlack>>,
    webhook: Option<Spanned<RawWebhook>>,
    email: Option<Spanned<RawEmail>>,
    alertmanager: Option<Spanned<RawAlertmanager>>,
    log: Option<Spanned<RawLog>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPagerDuty {
    /// Integration key of the service (required).
    routing_key: Option<Spanned<String>>,
    /// Events endpoint; default PagerDuty's.
    url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    /// Incoming webhook URL (required).
    webhook_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    /// Where to POST (required).
    url: Option<Spanned<String>>,
    /// Signs bodies with HMAC-SHA256 when set and not empty.
    hmac_secret: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    /// SMTP URL: `smtps://…`, `smtp://…?tls=required` or `smtp://…` (required).
    smtp: Option<Spanned<String>>,
    /// Sender address (required).
    from: Option<Spanned<String>>,
    /// Recipients (required, at least one).
    to: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertmanager {
    /// Base URL of Alertmanager (required).
    url: Option<Spanned<String>>,
    /// How often firing alerts are sent again; default 1m.
    resend_interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    /// Which alerts; none matches all.
    #[serde(rename = "match")]
    matcher: Option<Spanned<HashMap<Spanned<String>, Spanned<OneOrMany>>>>,
    /// Receivers to notify (required).
    receivers: Option<Spanned<Vec<Spanned<String>>>>,
    /// Keep matching later routes; default false.
    #[serde(rename = "continue")]
    continue_matching: Option<Spanned<bool>>,
    /// Cron schedule of a digest.
    digest: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    group_wait: Option<Spanned<String>>,
    repeat_interval: Option<Spanned<String>>,
    consecutive_failures: Option<Spanned<i64>>,
    send_resolved: Option<Spanned<bool>>,
    delivery: Option<Spanned<RawDelivery>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    timeout: Option<Spanned<String>>,
    initial_backoff: Option<Spanned<String>>,
    max_backoff: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSilence {
    #[serde(rename = "match")]
    matcher: Option<Spanned<HashMap<Spanned<String>, Spanned<OneOrMany>>>>,
    /// RFC 3339; default: always in the past.
    starts: Option<Spanned<String>>,
    /// RFC 3339 (required).
    ends: Option<Spanned<String>>,
    comment: Option<Spanned<String>>,
    created_by: Option<Spanned<String>>,
}

// ------------------------------------------------------------------- loading

/// Reads and validates the routes file at `path` (shown in messages as
/// given), expanding `${VAR}` through `env`. Every problem is returned.
pub fn load(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    timezone: Tz,
) -> Result<Routes, Vec<Diagnostic>> {
    let src = match SourceFile::read(path, env) {
        Ok(src) => src,
        Err(ReadError::Io(e)) => {
            return Err(vec![Diagnostic::whole_file(
                path,
                format!("cannot read file: {e}"),
            )]);
        }
        Err(ReadError::Env(diags)) => return Err(diags),
    };
    from_source(&src, timezone)
}

/// Like [`load`], from text already read.
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    timezone: Tz,
) -> Result<Routes, Vec<Diagnostic>> {
    let src = SourceFile::expand(path, text, env)?;
    from_source(&src, timezone)
}

fn from_source(src: &SourceFile, timezone: Tz) -> Result<Routes, Vec<Diagnostic>> {
    let raw: Option<RawRoutes> = src.parse().map_err(|d| vec![d])?;
    let raw = raw.unwrap_or_default();
    let mut p = Problems::new(src);

    let mut entries: Vec<_> = raw.receivers.iter().flatten().collect();
    entries.sort_by_key(|(name, _)| (name.referenced.line(), name.referenced.column()));
    let declared: Vec<String> = entries.iter().map(|(n, _)| n.value.clone()).collect();
    let mut receivers = BTreeMap::new();
    for (name, raw) in entries {
        if let Some(r) = receiver(name, raw, &mut p) {
            receivers.insert(name.value.clone(), r);
        }
    }
    let routes = raw
        .routes
        .iter()
        .flatten()
        .filter_map(|r| route(r, &declared, &mut p))
        .collect();
    let policy = match &raw.policy {
        Some(pol) => policy(&pol.value, &mut p),
        None => Policy::default(),
    };
    let silences = raw
        .silences
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, s)| silence(i, s, &mut p))
        .collect();

    if !p.list.is_empty() {
        p.list.sort_by_key(|d| (d.line, d.column));
        return Err(p.list);
    }
    Ok(Routes {
        path: Some(src.path.clone()),
        receivers,
        routes,
        policy,
        silences,
        timezone,
    })
}

/// The alert routes' own value readers on the shared problem collector.
trait RouteValues {
    fn duration(
        &mut self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
        allow_zero: bool,
    ) -> Option<Duration>;
}

impl RouteValues for Problems<'_> {
    /// A duration, `default` when absent, `None` when invalid.
    fn duration(
        &mut self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
        allow_zero: bool,
    ) -> Option<Duration> {
        match value {
            None => Some(default),
            Some(v) => self.parse(v, key, |s| match humantime::parse_duration(s.trim()) {
                Ok(d) if d.is_zero() && allow_zero => Ok(d),
                _ => parse_duration(s),
            }),
        }
    }
}

/// An http:// or https:// URL with a host. Messages never show it (a
/// Slack or webhook URL carries a token in its path): the diagnostic
/// points at it and names the receiver.
fn http_url(s: &str, receiver: &str) -> Result<String, String> {
    let s = s.trim();
    match reqwest::Url::parse(s) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(s.to_owned())
        }
        Ok(_) => Err(format!(
            "must be an http:// or https:// URL with a host (receiver `{receiver}`; the value is not shown, as it may hold a token)"
        )),
        Err(_) if s.is_empty() => Err("the URL cannot be empty".to_owned()),
        Err(e) => Err(format!(
            "not a URL: {e} (receiver `{receiver}`; the value is not shown, as it may hold a token)"
        )),
    }
}

fn not_empty(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Err("cannot be empty".to_owned()),
        t => Ok(t.to_owned()),
    }
}

fn receiver(
    name: &Spanned<String>,
    raw: &Spanned<RawReceiver>,
    p: &mut Problems<'_>,
) -> Option<Receiver> {
    let before = p.list.len();
    p.parse(name, "receivers", |s| check_plain_name(s, "receiver"));
    let r = &raw.value;
    let set: Vec<&str> = [
        r.pagerduty.is_some().then_some("pagerduty"),
        r.slack.is_some().then_some("slack"),
        r.webhook.is_some().then_some("webhook"),
        r.email.is_some().then_some("email"),
        r.alertmanager.is_some().then_some("alertmanager"),
        r.log.is_some().then_some("log"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if set.len() != 1 {
        let what = if set.is_empty() {
            "has no kind".to_owned()
        } else {
            format!("has several kinds ({})", set.join(", "))
        };
        p.at(
            raw,
            format!(
                "receiver `{}` {what}; give exactly one of {}",
                name.value,
                one_of(&KINDS)
            ),
        );
        return None;
    }
    let kind = if let Some(pd) = &r.pagerduty {
        let routing_key = p
            .required_in(&pd.value.routing_key, "pagerduty.routing_key", pd)
            .and_then(|k| p.parse(k, "routing_key", |s| not_empty(s)));
        let url = match &pd.value.url {
            Some(u) => p.parse(u, "url", |s| http_url(s, &name.value)),
            None => Some(PAGERDUTY_DEFAULT_URL.to_owned()),
        };
        ReceiverKind::PagerDuty(PagerDutyConfig {
            routing_key: Secret::new(routing_key?),
            url: url?,
        })
    } else if let Some(slack) = &r.slack {
        let url = p
            .required_in(&slack.value.webhook_url, "slack.webhook_url", slack)
            .and_then(|u| p.parse(u, "webhook_url", |s| http_url(s, &name.value)));
        ReceiverKind::Slack(SlackConfig {
            webhook_url: Secret::new(url?),
        })
    } else if let Some(hook) = &r.webhook {
        let url = p
            .required_in(&hook.value.url, "webhook.url", hook)
            .and_then(|u| p.parse(u, "url", |s| http_url(s, &name.value)));
        let secret = hook
            .value
            .hmac_secret
            .as_ref()
            .map(|s| s.value.trim())
            .filter(|s| !s.is_empty())
            .map(Secret::new);
        ReceiverKind::Webhook(WebhookConfig {
            url: Secret::new(url?),
            hmac_secret: secret,
        })
    } else if let Some(email) = &r.email {
        let e = &email.value;
        let smtp = p
            .required_in(&e.smtp, "email.smtp", email)
            .and_then(|u| p.parse(u, "smtp", |s| smtp_url(s)));
        let from = p
            .required_in(&e.from, "email.from", email)
            .and_then(|f| p.parse(f, "from", |s| mailbox(s)));
        let to = p.required_in(&e.to, "email.to", email).and_then(|to| {
            if to.value.is_empty() {
                p.at(to, "`to` needs at least one address");
                return None;
            }
            let all: Vec<_> = to
                .value
                .iter()
                .map(|t| p.parse(t, "to", |s| mailbox(s)))
                .collect();
            all.into_iter().collect::<Option<Vec<_>>>()
        });
        ReceiverKind::Email(EmailConfig {
            smtp: Secret::new(smtp?),
            from: from?,
            to: to?,
        })
    } else if let Some(am) = &r.alertmanager {
        let url = p
            .required_in(&am.value.url, "alertmanager.url", am)
            .and_then(|u| p.parse(u, "url", |s| http_url(s, &name.value)));
        let resend = p.duration(
            &am.value.resend_interval,
            "resend_interval",
            DEFAULT_RESEND_INTERVAL,
            false,
        );
        ReceiverKind::Alertmanager(AlertmanagerConfig {
            url: url?,
            resend_interval: resend?,
        })
    } else {
        ReceiverKind::Log(LogConfig::default())
    };
    (p.list.len() == before).then(|| Receiver {
        name: name.value.clone(),
        kind,
    })
}

/// An SMTP URL lettre can use, checked here so the message names what is
/// wrong in the user's words.
fn smtp_url(s: &str) -> Result<String, String> {
    const EXPECTED: &str =
        "expected smtps://host:465, smtp://host:587?tls=required or smtp://host:25";
    let s = s.trim();
    let url = reqwest::Url::parse(s).map_err(|e| format!("not a URL ({e}); {EXPECTED}"))?;
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err(format!(
            "`{}` is not an SMTP URL; {EXPECTED}",
            redact_url(s)
        ));
    }
    if let Some((_, tls)) = url.query_pairs().find(|(k, _)| k == "tls")
        && !matches!(tls.as_ref(), "required" | "opportunistic")
    {
        return Err(format!(
            "`tls={tls}` is not `tls=required` or `tls=opportunistic`"
        ));
    }
    smtp_transport(s, DEFAULT_TIMEOUT)
        .map(|_| s.to_owned())
        .map_err(|why| Scrubber::for_url(s).scrub(&format!("not a usable SMTP URL: {why}")))
}

fn mailbox(s: &str) -> Result<lettre::message::Mailbox, String> {
    s.trim()
        .parse()
        .map_err(|e| format!("`{}` is not an email address: {e}", s.trim()))
}

fn matcher(
    raw: &Option<Spanned<HashMap<Spanned<String>, Spanned<OneOrMany>>>>,
    p: &mut Problems<'_>,
) -> Option<Matcher> {
    let mut m = Matcher::default();
    let mut ok = true;
    let mut entries: Vec<_> = raw.iter().flat_map(|m| m.value.iter()).collect();
    entries.sort_by_key(|(k, _)| (k.referenced.line(), k.referenced.column()));
    for (key, values) in entries {
        if let Err(why) = m.set(key.value.trim(), &values.value.0) {
            // A bad key is reported at the key, a bad value at the value.
            if why.starts_with("unknown matcher") {
                p.at(key, why);
            } else {
                p.at(values, why);
            }
            ok = false;
        }
    }
    ok.then_some(m)
}

fn route(raw: &Spanned<RawRoute>, declared: &[String], p: &mut Problems<'_>) -> Option<Route> {
    let before = p.list.len();
    let r = &raw.value;
    let matcher = matcher(&r.matcher, p);
    let receivers = p.required_in(&r.receivers, "receivers", raw).map(|list| {
        let mut names = Vec::new();
        for name in &list.value {
            let n = name.value.trim();
            if declared.iter().any(|d| d == n) {
                if !names.iter().any(|x: &String| x == n) {
                    names.push(n.to_owned());
                }
            } else {
                let hint = did_you_mean(n, declared.iter().map(String::as_str));
                let known = if declared.is_empty() {
                    " (none are declared under `receivers`)".to_owned()
                } else if hint.is_empty() {
                    let names: Vec<&str> = declared.iter().map(String::as_str).collect();
                    format!(" (declared: {})", names.join(", "))
                } else {
                    hint
                };
                p.at(name, format!("`receivers`: unknown receiver `{n}`{known}"));
            }
        }
        names
    });
    let digest = match &r.digest {
        None => Some(None),
        Some(d) => p.parse(d, "digest", |s| parse_cron(s)).map(Some),
    };
    if p.list.len() > before {
        return None;
    }
    Some(Route {
        matcher: matcher?,
        receivers: receivers?,
        continue_matching: r.continue_matching.as_ref().is_some_and(|c| c.value),
        digest: digest?,
        pos: p.pos(raw),
    })
}

fn policy(raw: &RawPolicy, p: &mut Problems<'_>) -> Policy {
    let d = Policy::default();
    let group_wait = p.duration(&raw.group_wait, "group_wait", d.group_wait, true);
    let repeat_interval = p.duration(
        &raw.repeat_interval,
        "repeat_interval",
        d.repeat_interval,
        false,
    );
    let consecutive_failures = match &raw.consecutive_failures {
        None => Some(d.consecutive_failures),
        Some(n) => p.parse(n, "consecutive_failures", |&n| {
            u32::try_from(n)
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| format!("must be at least 1 (got {n})"))
        }),
    };
    let delivery = match &raw.delivery {
        None => Some(DeliveryPolicy::default()),
        Some(del) => delivery(del, p),
    };
    Policy {
        group_wait: group_wait.unwrap_or(d.group_wait),
        repeat_interval: repeat_interval.unwrap_or(d.repeat_interval),
        consecutive_failures: consecutive_failures.unwrap_or(d.consecutive_failures),
        send_resolved: raw.send_resolved.as_ref().is_none_or(|s| s.value),
        delivery: delivery.unwrap_or_default(),
    }
}

fn delivery(raw: &Spanned<RawDelivery>, p: &mut Problems<'_>) -> Option<DeliveryPolicy> {
    let d = DeliveryPolicy::default();
    let r = &raw.value;
    let timeout = p.duration(&r.timeout, "timeout", d.timeout, false);
    let initial = p.duration(
        &r.initial_backoff,
        "initial_backoff",
        d.initial_backoff,
        false,
    );
    let max = p.duration(&r.max_backoff, "max_backoff", d.max_backoff, false);
    let max_age = p.duration(&r.max_age, "max_age", d.max_age, false);
    let (timeout, initial_backoff, max_backoff, max_age) = (timeout?, initial?, max?, max_age?);
    if max_backoff < initial_backoff {
        p.at(
            raw,
            format!(
                "`max_backoff` ({}) is shorter than `initial_backoff` ({})",
                humantime::format_duration(max_backoff),
                humantime::format_duration(initial_backoff)
            ),
        );
        return None;
    }
    Some(DeliveryPolicy {
        timeout,
        initial_backoff,
        max_backoff,
        max_age,
    })
}

fn timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("`{s}` is not a time like 2026-11-21T00:00:00Z"))
}

fn silence(index: usize, raw: &Spanned<RawSilence>, p: &mut Problems<'_>) -> Option<Silence> {
    let before = p.list.len();
    let r = &raw.value;
    let matcher = matcher(&r.matcher, p);
    let starts = match &r.starts {
        None => Some(DateTime::<Utc>::UNIX_EPOCH),
        Some(s) => p.parse(s, "starts", |s| timestamp(s)),
    };
    let ends = p
        .required_in(&r.ends, "ends", raw)
        .and_then(|e| p.parse(e, "ends", |s| timestamp(s)));
    if let (Some(s), Some(e), Some(ends_at)) = (starts, ends, &r.ends)
        && e <= s
    {
        p.at(ends_at, "`ends` must be after `starts`");
    }
    if p.list.len() > before {
        return None;
    }
    let file = p
        .src
        .path
        .file_name()
        .map_or_else(|| "routes".into(), |f| f.to_string_lossy().into_owned());
    Some(Silence {
        id: format!("config-{}", index + 1),
        matcher: matcher?,
        starts_at: starts?,
        ends_at: ends?,
        created_by: r
            .created_by
            .as_ref()
            .map(|c| c.value.trim().to_owned())
            .filter(|c| !c.is_empty())
            .unwrap_or(file),
        comment: r
            .comment
            .as_ref()
            .map(|c| c.value.trim().to_owned())
            .unwrap_or_default(),
        note: None,
        ended_by: None,
        source: SilenceSource::Config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Routes, Vec<String>> {
        parse(Path::new("routes.yaml"), text, &|_| None, Tz::UTC)
            .map_err(|ds| ds.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn the_design_example_loads() {
        let env = |name: &str| match name {
            "PD_KEY" => Some("pd-key".to_owned()),
            "SLACK_WEBHOOK_URL" => Some("https://hooks.slack.com/services/T/B/x".to_owned()),
            "SMTP_URL" => Some("smtp://127.0.0.1:2525".to_owned()),
            "HOOK_SECRET" => Some("s3cret".to_owned()),
            _ => None,
        };
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/routes.yaml"),
        )
        .unwrap();
        let routes = parse(Path::new("routes.yaml"), &text, &env, Tz::UTC).unwrap();
        assert_eq!(
            routes.receivers.keys().collect::<Vec<_>>(),
            ["am", "chat", "console", "digest", "hook", "oncall"]
        );
        match &routes.receivers["oncall"].kind {
            ReceiverKind::PagerDuty(pd) => {
                assert_eq!(pd.routing_key.expose(), "pd-key");
                assert_eq!(pd.url, PAGERDUTY_DEFAULT_URL);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(routes.routes.len(), 3);
        assert_eq!(routes.routes[0].matcher.tier, [1]);
        assert_eq!(routes.routes[0].receivers, ["oncall", "chat"]);
        assert_eq!(routes.routes[2].digest.as_ref().unwrap().expr, "0 8 * * *");
        assert_eq!(routes.policy.group_wait, Duration::from_secs(30));
        assert_eq!(routes.policy.repeat_interval, Duration::from_secs(4 * 3600));
        assert_eq!(routes.silences.len(), 1);
        assert_eq!(routes.silences[0].matcher.dataset, ["events"]);
        assert_eq!(routes.silences[0].comment, "migration");
        assert_eq!(
            routes.silences[0].ends_at.to_rfc3339(),
            "2026-11-22T00:00:00+00:00"
        );
        // Secrets stay out of Debug output.
        assert!(!format!("{routes:?}").contains("pd-key"));
    }

    #[test]
    fn receiver_urls_and_keys_stay_out_of_messages() {
        let text = "receivers:\n\
            \x20 chat: { slack: { webhook_url: \"ftp://hooks.example/services/T0/B0/tok-s3cret\" } }\n\
            \x20 hook: { webhook: { url: \"https//example/hook/tok-s3cret\" } }\n\
            \x20 page: { pagerduty: { routing_key: tok-s3cret, url: \"https://u:tok-s3cret@[::1/x\" } }\n\
            \x20 mail: { email: { smtp: \"imap://u:tok-s3cret@x\", from: a@example.com, to: [a@example.com] } }\n\
            \x20 am: { alertmanager: { url: \"ftp://u:tok-s3cret@x/?token=tok-s3cret\" } }\n";
        let errors = load_text(text).unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:#?}");
        for (error, receiver) in errors.iter().zip(["chat", "hook", "page", "mail", "am"]) {
            assert!(!error.contains("s3cret"), "{error}");
            assert!(
                error.contains(&format!("receiver `{receiver}`"))
                    || error.contains("imap://u:***@x"),
                "{error}"
            );
        }
    }

    #[test]
    fn an_empty_file_routes_nothing() {
        let routes = load_text("# nothing yet\n").unwrap();
        assert!(routes.receivers.is_empty() && routes.routes.is_empty());
        assert_eq!(routes.policy, Policy::default());
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let text = r#"receivers:
  pd: { pagerduty: {} }
  chat: { slack: { webhook_url: "ftp://x" } }
  two: { log: {}, slack: { webhook_url: "https://x" } }
  none: {}
  mail: { email: { smtp: "imap://x", from: "not an address", to: [] } }
  hook: { webhook: { url: "https://example/hook" } }
routes:
  - match: { tier: 4, datset: x }
    receivers: [pd, chatt]
  - match: { severity: critcal }
    receivers: [hook]
    digest: "0 8 * *"
  - receivers: [nobody]
  - match: {}
policy:
  group_wait: soon
  consecutive_failures: 0
  delivery: { initial_backoff: 10s, max_backoff: 1s }
silences:
  - match: { dataset: events }
    starts: 2026-11-22T00:00:00Z
    ends: 2026-11-21T00:00:00Z
  - match: { owner: [] }
    ends: tomorrow
"#;
        assert_eq!(
            load_text(text).unwrap_err(),
            [
                "routes.yaml:2:20: `pagerduty.routing_key` is required",
                "routes.yaml:3:33: `webhook_url`: must be an http:// or https:// URL with a host (receiver `chat`; the value is not shown, as it may hold a token)",
                "routes.yaml:4:8: receiver `two` has several kinds (slack, log); give exactly one of `pagerduty`, `slack`, `webhook`, `email`, `alertmanager` or `log`",
                "routes.yaml:5:9: receiver `none` has no kind; give exactly one of `pagerduty`, `slack`, `webhook`, `email`, `alertmanager` or `log`",
                "routes.yaml:6:26: `smtp`: `imap://x` is not an SMTP URL; expected smtps://host:465, smtp://host:587?tls=required or smtp://host:25",
                "routes.yaml:6:44: `from`: `not an address` is not an email address: Invalid input",
                "routes.yaml:6:66: `to` needs at least one address",
                "routes.yaml:9:20: `tier`: `4` is not a tier; expected 1 (page), 2 (chat) or 3 (digest)",
                "routes.yaml:9:23: unknown matcher `datset`; did you mean `dataset`?",
                "routes.yaml:10:21: `receivers`: unknown receiver `chatt`; did you mean `chat`?",
                "routes.yaml:11:24: `severity`: `critcal` is not a severity; expected `critical`, `error`, `warning` or `info`; did you mean `critical`?",
                "routes.yaml:13:13: `digest`: `0 8 * *` has 4 fields; a cron expression has 5 (minute hour day-of-month month day-of-week), or use @hourly, @daily…",
                "routes.yaml:14:17: `receivers`: unknown receiver `nobody` (declared: pd, chat, two, none, mail, hook)",
                "routes.yaml:15:5: `receivers` is required",
                "routes.yaml:17:15: `group_wait`: `soon` is not a duration like 60s, 6h or 7d",
                "routes.yaml:18:25: `consecutive_failures`: must be at least 1 (got 0)",
                "routes.yaml:19:13: `max_backoff` (1s) is shorter than `initial_backoff` (10s)",
                "routes.yaml:23:11: `ends` must be after `starts`",
                "routes.yaml:24:21: `owner` needs at least one value",
                "routes.yaml:25:11: `ends`: `tomorrow` is not a time like 2026-11-21T00:00:00Z",
            ]
        );
    }

    #[test]
    fn unknown_keys_get_hints() {
        assert_eq!(
            load_text("policy:\n  group_wiat: 1s\n").unwrap_err(),
            ["routes.yaml:2:3: unknown key `group_wiat`; did you mean `group_wait`?"]
        );
    }

    #[test]
    fn routing_takes_the_first_match_unless_continue() {
        let text = r#"receivers:
  a: { log: {} }
  b: { log: {} }
  c: { log: {} }
  d: { log: {} }
routes:
  - match: { tier: 1 }
    receivers: [a]
    continue: true
  - match: { tier: [1, 2] }
    receivers: [b, a]
  - match: { tier: 1 }
    receivers: [c]
  - match: { tier: 3 }
    receivers: [d]
    digest: "0 8 * * *"
"#;
        let routes = load_text(text).unwrap();
        let mut labels = Labels {
            kind: "row_count".into(),
            check: Some("orders.row_count".into()),
            dataset: Some("orders".into()),
            partition: None,
            warehouse: Some("main".into()),
            tier: 1,
            owner: None,
            severity: Severity::Critical,
        };
        let names = |routes: &Routes, l: &Labels| -> Vec<String> {
            routes
                .immediate_receivers(l)
                .iter()
                .map(|r| r.name.clone())
                .collect()
        };
        assert_eq!(names(&routes, &labels), ["a", "b"]);
        labels.tier = 2;
        assert_eq!(names(&routes, &labels), ["b", "a"]);
        labels.tier = 3;
        assert!(names(&routes, &labels).is_empty(), "digest routes only");
        assert_eq!(routes.matching(&labels)[0].0, 3);
    }
}
