//! Generic webhooks: one JSON document per notification, signed with
//! HMAC-SHA256 when the receiver has an `hmac_secret`.
//!
//! The body (schema version 1):
//!
//! ```json
//! {
//!   "version": "1",
//!   "id": "42",                         // the notification's id: the same on every attempt
//!   "receiver": "hook",
//!   "status": "firing",                 // "resolved" once every alert has
//!   "group": "orders",                  // the dataset, or "warehouse <name>"
//!   "title": "orders: 2 firing",
//!   "digest": null,                     // or {"since": "…", "until": "…"}
//!   "alerts": [{
//!     "key": "orders.row_count",
//!     "dedup_key": "warden/orders.row_count",
//!     "status": "firing",
//!     "labels": {"kind": "row_count", "check": "orders.row_count", "dataset": "orders",
//!                "partition": "2026-11-20", "warehouse": "main", "tier": 1,
//!                "owner": "revenue-team", "severity": "critical"},
//!     "annotations": {"summary": "…", "message": "…", "outcome": "fail", "observed": 0.0,
//!                     "threshold": {"min": 1}, "runbook": "https://…"},
//!     "starts_at": "2026-11-21T08:00:00Z",
//!     "ends_at": null
//!   }],
//!   "status_url": "http://127.0.0.1:9464/",
//!   "sent_at": "2026-11-21T08:00:30Z"   // when it was queued; retries send the same body
//! }
//! ```
//!
//! Labels and annotations that do not apply are left out. Every request
//! carries `X-Warden-Notification-Id: <id>` (the `id` of the body) and, with
//! a secret, `X-Warden-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">`, signed when the attempt is made: a receiver checks the
//! signature, refuses a `t` outside its tolerance (a replay) and drops an
//! `id` it has already handled (a retry of a delivery it accepted).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{DeliveryContext, DeliveryError, Notification, post_json};
use crate::config::routes::receiver::WebhookConfig;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Warden-Signature";

/// How far from its clock a receiver should accept a signature's `t`, as
/// the README's example does.
pub const TOLERANCE: Duration = Duration::from_secs(300);

/// The body for `n`, as documented above.
pub fn render(receiver: &str, n: &Notification) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            json!({
                "key": a.key,
                "dedup_key": a.dedup_key(),
                "status": a.status.as_str(),
                "labels": a.labels,
                "annotations": a.annotations,
                "starts_at": a.starts_at,
                "ends_at": a.ends_at,
            })
        })
        .collect();
    json!({
        "version": "1",
        "receiver": receiver,
        "status": n.status().as_str(),
        "group": n.group,
        "title": n.title(),
        "digest": n.digest,
        "alerts": alerts,
        "status_url": n.status_url,
        "sent_at": n.at,
    })
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<unix seconds>,v1=<hex>`.
    #[error("the signature header is not t=<unix seconds>,v1=<hex>")]
    Malformed,
    /// `t` is further from now than the tolerance: a replay, or a clock off.
    #[error("the signature's time is {0} s away from now, past the tolerance")]
    Stale(i64),
    /// The body, the time or the secret differ from what was signed.
    #[error("the signature does not match")]
    Mismatch,
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">` under `secret`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mac = mac(secret, timestamp, body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks `header` against `body` as a receiver should: the HMAC compared
/// in constant time, and its `t` within `tolerance` of `now` (unix
/// seconds). Returns `t`. For receivers written in Rust, and for the tests.
pub fn verify(
    secret: &[u8],
    body: &[u8],
    header: &str,
    now: i64,
    tolerance: Duration,
) -> Result<i64, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", hex_sig)) => signatures.extend(hex::decode(hex_sig).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return Err(SignatureError::Malformed);
    };
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let skew = now.saturating_sub(timestamp);
    if skew.unsigned_abs() > tolerance.as_secs() {
        return Err(SignatureError::Stale(skew));
    }
    let expected = mac(secret, timestamp, body);
    if signatures
        .iter()
        .any(|given| expected.clone().verify_slice(given).is_ok())
    {
        Ok(timestamp)
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Posts one body with the notification's id in it, signed when a secret
/// is set.
pub async fn deliver(
    config: &WebhookConfig,
    payload: &Value,
    cx: &DeliveryContext,
) -> Result<(), DeliveryError> {
    let mut body = payload.clone();
    if let Some(object) = body.as_object_mut() {
        object.insert("id".to_owned(), Value::from(cx.notification_id.to_string()));
    }
    let bytes = serde_json::to_vec(&body).expect("JSON serialises");
    let (headers, secrets) = match &config.hmac_secret {
        Some(secret) => {
            let now = chrono::Utc::now().timestamp();
            let header = signature(secret.expose().as_bytes(), now, &bytes);
            (vec![(SIGNATURE_HEADER, header)], vec![secret.expose()])
        }
        None => (Vec::new(), Vec::new()),
    };
    post_json(cx, config.url.expose(), bytes, &headers, &secrets).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn signatures_cover_the_time_and_the_body() {
        // HMAC-SHA256("Jefe", "1700000000.what do ya want for nothing?").
        let body = b"what do ya want for nothing?";
        let sig = signature(b"Jefe", 1_700_000_000, body);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1700000000.what do ya want for nothing?");
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(sig, format!("t=1700000000,v1={want}"));

        let now = 1_700_000_030;
        assert_eq!(verify(b"Jefe", body, &sig, now, MINUTE), Ok(1_700_000_000));
        assert_eq!(
            verify(b"Jefe", b"what do ya want for nothing!", &sig, now, MINUTE),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"jefe", body, &sig, now, MINUTE),
            Err(SignatureError::Mismatch)
        );
        // Another time with the same MAC: refused.
        let moved = sig.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify(b"Jefe", body, &moved, now, MINUTE),
            Err(SignatureError::Mismatch)
        );
        // Replayed later than the tolerance, or from the future.
        assert_eq!(
            verify(b"Jefe", body, &sig, now + 600, MINUTE),
            Err(SignatureError::Stale(630))
        );
        assert_eq!(
            verify(b"Jefe", body, &sig, 1_699_999_000, MINUTE),
            Err(SignatureError::Stale(-1000))
        );
        for bad in ["sha256=00", "t=1700000000", "v1=00", "t=x,v1=00", ""] {
            assert_eq!(
                verify(b"Jefe", body, bad, now, MINUTE),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
