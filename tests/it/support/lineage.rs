//! A local OpenLineage endpoint, like Marquez's: it takes `POST
//! /api/v1/lineage`, refuses a request without `Authorization: Bearer
//! <key>` (401), validates the event against the vendored OpenLineage JSON
//! schemas (`tests/openlineage/`) and refuses an invalid one (400), and
//! keeps every event it accepted, in order (201). It can be started on a
//! port chosen beforehand, so that a test can play an endpoint that is down
//! and comes up.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use jsonschema::{Retrieve, Uri, Validator};
use serde_json::Value;

/// The vendored schemas, by the URL each is published at.
const SCHEMAS: [(&str, &str); 3] = [
    (
        "https://openlineage.io/spec/2-0-2/OpenLineage.json",
        "OpenLineage.json",
    ),
    (
        "https://openlineage.io/spec/facets/1-0-1/DataQualityAssertionsDatasetFacet.json",
        "facets/DataQualityAssertionsDatasetFacet.json",
    ),
    (
        "https://openlineage.io/spec/facets/1-0-3/DataQualityMetricsInputDatasetFacet.json",
        "facets/DataQualityMetricsInputDatasetFacet.json",
    ),
];

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openlineage")
}

/// Resolves the schemas' URLs from `tests/openlineage/`, never from the
/// network: an unknown URL is an error.
struct Vendored;

impl Retrieve for Vendored {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let wanted = uri.as_str().split('#').next().unwrap_or_default();
        let (_, file) = SCHEMAS
            .iter()
            .find(|(url, _)| *url == wanted)
            .ok_or_else(|| format!("no vendored schema for {wanted}"))?;
        let text = std::fs::read_to_string(schema_dir().join(file))?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// A validator of what `schema_url` (a URL with a JSON pointer, like an
/// event's `schemaURL` or a facet's `_schemaURL`) points at.
pub fn validator(schema_url: &str) -> Result<Validator, String> {
    jsonschema::options()
        .with_retriever(Vendored)
        .should_validate_formats(true)
        .build(&serde_json::json!({ "$ref": schema_url }))
        .map_err(|e| format!("schema {schema_url}: {e}"))
}

/// Every problem of `event`: against the RunEvent schema, then each input
/// facet against the schema its `_schemaURL` names (which must be a
/// vendored one).
pub fn problems(event: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |what: &str, schema_url: &str, value: &Value| match validator(schema_url) {
        Ok(v) => problems.extend(
            v.iter_errors(value)
                .map(|e| format!("{what}: {e} at {}", e.instance_path())),
        ),
        Err(e) => problems.push(format!("{what}: {e}")),
    };
    check(
        "event",
        "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        event,
    );
    for input in event["inputs"].as_array().into_iter().flatten() {
        for (name, facet) in input["inputFacets"].as_object().into_iter().flatten() {
            // Without `_schemaURL` the RunEvent schema already refuses it.
            if let Some(url) = facet["_schemaURL"].as_str() {
                check(&format!("facet {name}"), url, facet);
            }
        }
    }
    problems
}

#[derive(Default)]
struct Shared {
    key: String,
    accepted: Mutex<Vec<Value>>,
    refused: Mutex<Vec<String>>,
}

/// The endpoint; see the module documentation.
pub struct LineageEndpoint {
    /// `http://127.0.0.1:<port>/api/v1/lineage`.
    pub url: String,
    pub port: u16,
    shared: Arc<Shared>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl LineageEndpoint {
    /// An endpoint on `port` that is not listening yet.
    pub fn down(port: u16, key: &str) -> Self {
        Self {
            url: format!("http://127.0.0.1:{port}/api/v1/lineage"),
            port,
            shared: Arc::new(Shared {
                key: key.to_owned(),
                ..Shared::default()
            }),
            server: None,
        }
    }

    /// Starts listening.
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the endpoint's port is free");
        let app = axum::Router::new()
            .route("/api/v1/lineage", axum::routing::post(take))
            .with_state(self.shared.clone());
        self.server = Some(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    /// Every event accepted, in the order it came.
    pub fn events(&self) -> Vec<Value> {
        self.shared.accepted.lock().unwrap().clone()
    }

    /// Why each refused request was refused.
    pub fn refused(&self) -> Vec<String> {
        self.shared.refused.lock().unwrap().clone()
    }

    /// Waits until `done` holds of the accepted events.
    pub async fn wait_until(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let events = self.events();
            if done(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {within:?}; accepted {:#?}; refused {:#?}",
                events,
                self.refused()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for LineageEndpoint {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

async fn take(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let wanted = format!("Bearer {}", shared.key);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != wanted {
        shared
            .refused
            .lock()
            .unwrap()
            .push(format!("401: Authorization `{auth}`"));
        return (StatusCode::UNAUTHORIZED, "missing or wrong API key".into());
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        shared.refused.lock().unwrap().push("415: not JSON".into());
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "JSON only".into());
    }
    let event: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            shared.refused.lock().unwrap().push(format!("400: {e}"));
            return (StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let problems = problems(&event);
    if !problems.is_empty() {
        let text = format!("400: {problems:#?} in {event:#}");
        shared.refused.lock().unwrap().push(text.clone());
        return (StatusCode::BAD_REQUEST, text);
    }
    shared.accepted.lock().unwrap().push(event);
    (StatusCode::CREATED, String::new())
}
