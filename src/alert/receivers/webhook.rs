//! Generic webhooks: one JSON document per notification, signed with
//! HMAC-SHA256 when the receiver has an `hmac_secret`.
//!
//! The body (schema version 1):
//!
//! ```json
//! {
//!   "version": "1",
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
//! Labels and annotations that do not apply are left out. The signature is
//! `X-Warden-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{DeliveryContext, DeliveryError, Notification, post_json};
use crate::config::routes::receiver::WebhookConfig;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Warden-Signature";

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

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` under `secret`, compared in
/// constant time; for receivers written in Rust, and for the tests.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Posts one body, signed when a secret is set.
pub async fn deliver(
    config: &WebhookConfig,
    payload: &Value,
    cx: &DeliveryContext,
) -> Result<(), DeliveryError> {
    let bytes = serde_json::to_vec(payload).expect("JSON serialises");
    let headers: Vec<(&str, String)> = match &config.hmac_secret {
        Some(secret) => vec![(
            SIGNATURE_HEADER,
            signature(secret.expose().as_bytes(), &bytes),
        )],
        None => Vec::new(),
    };
    post_json(cx, &config.url, bytes, &headers).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_does_not() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", &sig));
        assert!(!verify(b"jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"x", "md5=00"));
    }
}
