//! Email over SMTP (lettre, async, rustls): a plain-text and an HTML part
//! per message. Used for tier-3 digests, and for any route that names an
//! email receiver.
//!
//! `smtp` is lettre's connection URL: `smtps://user:pass@host:465` (TLS
//! from the start), `smtp://user:pass@host:587?tls=required` (STARTTLS), or
//! `smtp://host:25` (no TLS: a relay on the same host, or a test server).

use lettre::message::MultiPart;
use lettre::{AsyncTransport, Message};
use serde_json::{Value, json};

use super::{DeliveryContext, DeliveryError, Notification, escape_html};
use crate::alert::model::{Alert, Status, format_threshold};
use crate::config::routes::receiver::{EmailConfig, smtp_transport};
use crate::domain::Scrubber;
use crate::format;

/// Subject, plain text and HTML for `n`.
pub fn render(n: &Notification) -> Value {
    let mut text = format!("{}\n", n.title());
    let mut html = format!(
        "<html><body style=\"font-family:sans-serif\"><h2>{}</h2>\n",
        escape_html(&n.title())
    );
    for (heading, alerts) in [
        ("Firing", n.firing().collect::<Vec<_>>()),
        ("Resolved", n.resolved().collect::<Vec<_>>()),
    ] {
        if alerts.is_empty() {
            continue;
        }
        text.push_str(&format!("\n{heading}\n{}\n", "=".repeat(heading.len())));
        html.push_str(&format!(
            "<h3>{heading}</h3>\n<table cellpadding=\"4\" style=\"border-collapse:collapse\">\n\
             <tr><th align=\"left\">Alert</th><th align=\"left\">Severity</th>\
             <th align=\"left\">Observed</th><th align=\"left\">Threshold</th>\
             <th align=\"left\">Owner</th><th align=\"left\">What</th></tr>\n"
        ));
        for alert in alerts {
            text.push_str(&text_line(alert));
            html.push_str(&html_row(alert));
        }
        html.push_str("</table>\n");
    }
    if let Some(url) = &n.status_url {
        text.push_str(&format!("\nStatus page: {url}\n"));
        html.push_str(&format!(
            "<p><a href=\"{}\">warden status page</a></p>\n",
            escape_html(url)
        ));
    }
    html.push_str("</body></html>\n");
    let subject = match n.status() {
        Status::Firing if n.digest.is_none() => format!("[warden] FIRING {}", n.title()),
        Status::Resolved if n.digest.is_none() => format!("[warden] RESOLVED {}", n.title()),
        _ => format!("[warden] {}", n.title()),
    };
    json!({"subject": subject, "text": text, "html": html})
}

fn name(alert: &Alert) -> String {
    let base = alert
        .labels
        .check
        .clone()
        .unwrap_or_else(|| alert.subject());
    match &alert.labels.partition {
        Some(p) => format!("{base} ({p})"),
        None => base,
    }
}

fn text_line(alert: &Alert) -> String {
    let a = &alert.annotations;
    let mut line = format!(
        "- {} [{}]: {}\n",
        name(alert),
        alert.labels.severity,
        a.summary
    );
    if let Some(runbook) = &a.runbook {
        line.push_str(&format!("  runbook: {runbook}\n"));
    }
    line
}

fn html_row(alert: &Alert) -> String {
    let a = &alert.annotations;
    let cell = |s: &str| format!("<td>{}</td>", escape_html(s));
    let what = match &a.runbook {
        Some(r) => format!(
            "<td>{} (<a href=\"{}\">runbook</a>)</td>",
            escape_html(&a.summary),
            escape_html(r)
        ),
        None => cell(&a.summary),
    };
    format!(
        "<tr>{}{}{}{}{}{what}</tr>\n",
        cell(&name(alert)),
        cell(alert.labels.severity.as_str()),
        cell(&a.observed.map(format::number).unwrap_or_default()),
        cell(&format_threshold(&a.threshold)),
        cell(alert.labels.owner.as_deref().unwrap_or("")),
    )
}

/// Sends one message to every recipient.
pub async fn deliver(
    config: &EmailConfig,
    payload: &Value,
    cx: &DeliveryContext,
) -> Result<(), DeliveryError> {
    let part = |key: &str| {
        payload
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| DeliveryError::permanent(format!("queued email has no `{key}`")))
    };
    let mut builder = Message::builder()
        .from(config.from.clone())
        .subject(part("subject")?);
    for to in &config.to {
        builder = builder.to(to.clone());
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(
            part("text")?,
            part("html")?,
        ))
        .map_err(|e| DeliveryError::permanent(format!("cannot build the email: {e}")))?;
    // lettre's errors may quote the server's answer: keep the URL's
    // password out of them.
    let scrubber = Scrubber::for_url(config.smtp.expose());
    let mailer = smtp_transport(config.smtp.expose(), cx.timeout).map_err(|e| {
        DeliveryError::permanent(scrubber.scrub(&format!("SMTP URL is not usable: {e}")))
    })?;
    match mailer.send(message).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(DeliveryError::permanent(
            scrubber.scrub(&format!("SMTP: {e}")),
        )),
        Err(e) => Err(DeliveryError::transient(
            scrubber.scrub(&format!("SMTP: {e}")),
        )),
    }
}
