//! The OpenLineage endpoint (`agent.openlineage`): each queued body is one
//! `RunEvent` (built by `crate::lineage`), `POST`ed as it is, with
//! `Authorization: Bearer <api_key>` when a key is set — what Marquez's
//! `/api/v1/lineage` and other OpenLineage HTTP consumers accept.

use serde_json::Value;

use super::{DeliveryContext, DeliveryError, post_json};
use crate::config::routes::receiver::OpenLineageConfig;

/// Sends one event. Errors never show the URL or the key.
pub async fn deliver(
    config: &OpenLineageConfig,
    payload: &Value,
    cx: &DeliveryContext,
) -> Result<(), DeliveryError> {
    let body = serde_json::to_vec(payload).expect("JSON serialises");
    let (headers, secrets) = match &config.api_key {
        Some(key) => (
            vec![("Authorization", format!("Bearer {}", key.expose()))],
            vec![key.expose()],
        ),
        None => (Vec::new(), Vec::new()),
    };
    post_json(cx, &config.url, body, &headers, &secrets).await
}
