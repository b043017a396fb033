//! The contract of `/api/v1`: the OpenAPI document the agent serves lists
//! exactly the routes of the router, answers of real calls to the real
//! `warden run` match it, and schemathesis, generating requests from it,
//! finds no 5xx, no answer outside the document and no operation open
//! without a token.
//!
//! The schemathesis case needs `WARDEN_TEST_SCHEMATHESIS` (the `st`
//! executable, or the virtualenv holding it; `.ci/run` makes one): skipped
//! with a note when it is unset, failing when it is set and names nothing
//! usable.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use warden::app::AppState;
use warden::http::API_PREFIX;

use crate::support::agent::AgentProcess;
use crate::support::gate::{Project, Setup};

/// The tokens of the agent under test: one with every scope, one that only reads.
const TOKENS: &str = "  api_tokens:
    - { name: ci, token: contract-secret, scopes: [read, gate, publish, admin] }
    - { name: viewer, token: view-secret, scopes: [read] }
";
const TOKEN: &str = "contract-secret";
const START: Duration = Duration::from_secs(60);

fn document() -> Value {
    warden::http::openapi::document_json()
}

/// Every `(method, path)` the document lists.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                operations.insert((method.to_owned(), path.clone()));
            }
        }
    }
    operations
}

/// The schema of the answer `status` of `method path`, with the document's
/// components beside it so that its references resolve.
fn response_schema(doc: &Value, method: &str, path: &str, status: u16) -> Value {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]
        ["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path} does not document a JSON answer {status}"
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    })
}

/// Asserts that `body`, answered with `status` to `method path`, is what
/// the document says.
#[track_caller]
fn assert_conforms(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let schema = response_schema(doc, method, path, status);
    let validator = jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("the schema of {method} {path} {status} compiles: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} answered {status} outside the document:\n{}\n{body:#}",
        errors.join("\n")
    );
}

#[tokio::test]
async fn the_document_lists_every_route_of_the_router() {
    let project = Project::with_agent(Setup::Sqlite, TOKENS).await.unwrap();
    let registry = project.registry.clone();
    let state = AppState::builder(project.config.clone(), registry)
        .ready(true)
        .build();
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearer"]["description"]})
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    assert!(
        doc["components"]["schemas"]["ApiError"]["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("error")) && r.contains(&json!("detail")))
    );

    let (_, routes) = warden::http::api_routes(state.clone());
    let registered: BTreeSet<(String, String)> = routes
        .iter()
        .map(|r| (r.method_name(), format!("{API_PREFIX}{}", r.path)))
        .collect();
    assert_eq!(routes.len(), registered.len(), "a route registered twice");
    let documented = documented(&doc);
    assert_eq!(
        documented, registered,
        "the document and the router disagree (left: documented, right: routed)"
    );

    // Every documented operation reaches its handler through the whole
    // router: without a token it is refused by the route's guard (a 401 in
    // the documented shape), never by the fallback (404) or as a 405.
    let router = warden::http::router(state);
    for (method, path) in &documented {
        let uri = path
            .replace("{dataset}", "orders")
            .replace("{partition}", "2026-11-20")
            .replace("{gate_id}", "g")
            .replace("{id}", "orders.row_count");
        let request = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(status, 401, "{method} {uri}: {body:?}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_conforms(&doc, method, path, 401, &body);
        // Each operation documents the errors every guarded route can answer.
        for status in ["401", "403"] {
            assert!(
                doc["paths"][path][method]["responses"][status].is_object(),
                "{method} {path} does not document {status}"
            );
        }
    }
    // A method no route of the path has: a JSON 405 naming the allowed ones.
    for path in documented.iter().map(|(_, p)| p).collect::<BTreeSet<_>>() {
        let uri = path
            .replace("{dataset}", "orders")
            .replace("{partition}", "2026-11-20")
            .replace("{gate_id}", "g")
            .replace("{id}", "orders.row_count");
        let request = Request::builder()
            .method("PATCH")
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").cloned();
        let allow = response.headers().get("allow").cloned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(status, 405, "PATCH {uri}: {body:?}");
        assert_eq!(
            content_type.as_ref().map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "PATCH {uri}: {body:?}"
        );
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "method not allowed", "{body}");
        let allowed: BTreeSet<String> = documented
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.to_uppercase())
            .collect();
        let allow: BTreeSet<String> = allow
            .expect("an Allow header")
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD")
            .collect();
        assert_eq!(allow, allowed, "PATCH {uri}");
    }
    project.finish().await;
}

/// The agent under test: the real `warden run` on a SQLite project with
/// tokens, a partition staged, gated and published, and a silence.
struct Live {
    project: Project,
    agent: AgentProcess,
    http: reqwest::Client,
    gate_id: String,
    silence_id: String,
}

impl Live {
    async fn start() -> Self {
        let project = Project::with_agent(Setup::Sqlite, TOKENS).await.unwrap();
        project.set_slowness(false).await;
        let day = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
        project.stage_good(&day, 1).await;
        let mut agent = AgentProcess::start(&project.config_path(), &[]);
        agent.wait_ready(START).await;
        let mut live = Self {
            project,
            agent,
            http: reqwest::Client::new(),
            gate_id: String::new(),
            silence_id: String::new(),
        };
        let (status, gate) = live
            .call(
                Method::POST,
                "/api/v1/gates?wait=60s",
                Some(json!({"dataset": "orders", "partition": day, "run_id": "r1"})),
            )
            .await;
        assert_eq!(status, 200, "{gate}");
        assert_eq!(gate["status"], "allowed", "{gate}");
        live.gate_id = gate["gate_id"].as_str().unwrap().to_owned();
        let (status, body) = live
            .call(
                Method::POST,
                &format!("/api/v1/datasets/orders/partitions/{day}/publish"),
                Some(json!({"gate_id": live.gate_id})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, silence) = live
            .call(
                Method::POST,
                "/api/v1/silences",
                Some(json!({"matchers": {"dataset": "events"}, "duration": "2h", "comment": "contract"})),
            )
            .await;
        assert_eq!(status, 201, "{silence}");
        live.silence_id = silence["id"].as_str().unwrap().to_owned();
        live
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.agent.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the agent answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap();
        assert!(
            content_type.starts_with("application/json"),
            "{method} {path}: {status} as {content_type}: {text}"
        );
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: {status}: {e}: {text}"));
        (status, body)
    }

    async fn finish(mut self) {
        self.agent.terminate(Duration::from_secs(30)).await;
        self.project.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_of_the_live_agent_match_the_document() {
    let live = Live::start().await;
    let doc = document();
    let day = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    let gate = format!("/api/v1/gates/{}", live.gate_id);
    let partition = format!("/api/v1/datasets/orders/partitions/{day}");
    let silence = format!("/api/v1/silences/{}", live.silence_id);
    // (method, path called, path documented, status expected)
    let calls: Vec<(Method, String, &str, u16, Option<Value>)> = vec![
        (
            Method::GET,
            "/api/v1/openapi.json".into(),
            "/api/v1/openapi.json",
            200,
            None,
        ),
        (
            Method::GET,
            "/api/v1/datasets".into(),
            "/api/v1/datasets",
            200,
            None,
        ),
        (
            Method::GET,
            "/api/v1/datasets/orders".into(),
            "/api/v1/datasets/{dataset}",
            200,
            None,
        ),
        (
            Method::GET,
            "/api/v1/datasets/nope".into(),
            "/api/v1/datasets/{dataset}",
            404,
            None,
        ),
        (
            Method::GET,
            "/api/v1/checks/orders.row_count/history?limit=5".into(),
            "/api/v1/checks/{id}/history",
            200,
            None,
        ),
        (
            Method::GET,
            "/api/v1/checks/orders.row_count/history?limit=0".into(),
            "/api/v1/checks/{id}/history",
            400,
            None,
        ),
        (
            Method::GET,
            gate.clone(),
            "/api/v1/gates/{gate_id}",
            200,
            None,
        ),
        (
            Method::GET,
            format!("{gate}?wait=x"),
            "/api/v1/gates/{gate_id}",
            400,
            None,
        ),
        (
            Method::GET,
            partition.clone(),
            "/api/v1/datasets/{dataset}/partitions/{partition}",
            200,
            None,
        ),
        (
            Method::GET,
            "/api/v1/datasets/orders/published".into(),
            "/api/v1/datasets/{dataset}/published",
            200,
            None,
        ),
        (
            Method::POST,
            format!("{partition}/override"),
            "/api/v1/datasets/{dataset}/partitions/{partition}/override",
            409,
            Some(json!({"decision": "allow", "reason": "looked"})),
        ),
        (
            Method::POST,
            format!("{partition}/publish"),
            "/api/v1/datasets/{dataset}/partitions/{partition}/publish",
            400,
            Some(json!({"gate": 1})),
        ),
        (
            Method::GET,
            "/api/v1/silences".into(),
            "/api/v1/silences",
            200,
            None,
        ),
        (
            Method::POST,
            "/api/v1/silences".into(),
            "/api/v1/silences",
            400,
            Some(json!({"matchers": {}})),
        ),
        (
            Method::GET,
            "/api/v1/alerts".into(),
            "/api/v1/alerts",
            200,
            None,
        ),
        (
            Method::GET,
            "/api/v1/notifications/dead".into(),
            "/api/v1/notifications/dead",
            200,
            None,
        ),
        (
            Method::DELETE,
            silence.clone(),
            "/api/v1/silences/{id}",
            200,
            None,
        ),
        (
            Method::DELETE,
            "/api/v1/silences/nope".into(),
            "/api/v1/silences/{id}",
            404,
            None,
        ),
        (
            Method::POST,
            "/api/v1/gates".into(),
            "/api/v1/gates",
            404,
            Some(json!({"dataset": "nope", "partition": day})),
        ),
    ];
    for (method, called, documented, expected, body) in calls {
        let (status, answer) = live.call(method.clone(), &called, body).await;
        assert_eq!(status, expected, "{method} {called}: {answer}");
        assert_conforms(
            &doc,
            &method.as_str().to_lowercase(),
            documented,
            status,
            &answer,
        );
    }
    // What the agent serves is the document the tests read.
    let (_, served) = live.call(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(served, doc);
    // A token without the scope: a 403 in the documented shape.
    let response = live
        .http
        .post(format!("{}/api/v1/silences", live.agent.base))
        .bearer_auth("view-secret")
        .json(&json!({"matchers": {"dataset": "events"}, "duration": "1h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_conforms(&doc, "post", "/api/v1/silences", 403, &body);
    live.finish().await;
}

/// Regression: query strings the handler cannot read (a key given twice)
/// and path segments that are not UTF-8 once decoded were answered by
/// axum's extractors in plain text; they are the documented JSON 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_query_strings_and_paths_are_json_errors() {
    let live = Live::start().await;
    let doc = document();
    for (called, documented) in [
        (
            "/api/v1/checks/orders.row_count/history?limit=1&limit=2".to_owned(),
            "/api/v1/checks/{id}/history",
        ),
        (
            format!("/api/v1/gates/{}?wait=1s&wait=2s", live.gate_id),
            "/api/v1/gates/{gate_id}",
        ),
        (
            "/api/v1/notifications/dead?limit=1&limit=1".to_owned(),
            "/api/v1/notifications/dead",
        ),
        (
            "/api/v1/datasets/%FF%FE".to_owned(),
            "/api/v1/datasets/{dataset}",
        ),
    ] {
        let (status, body) = live.call(Method::GET, &called, None).await;
        assert_eq!(status, 400, "{called}: {body}");
        assert_conforms(&doc, "get", documented, 400, &body);
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("query string: ") || detail.starts_with("path: "),
            "{called}: {detail}"
        );
    }
    live.finish().await;
}

/// The `st` executable `WARDEN_TEST_SCHEMATHESIS` names (or the one in the
/// virtualenv it names); `None` with a note when it is unset.
fn schemathesis() -> Option<PathBuf> {
    let Some(value) = std::env::var_os("WARDEN_TEST_SCHEMATHESIS").filter(|v| !v.is_empty()) else {
        eprintln!("note: WARDEN_TEST_SCHEMATHESIS is not set; skipping the schemathesis run");
        return None;
    };
    let path = PathBuf::from(value);
    let st = if path.is_dir() {
        path.join("bin/st")
    } else {
        path
    };
    assert!(
        st.is_file(),
        "WARDEN_TEST_SCHEMATHESIS is set but {} is not an executable",
        st.display()
    );
    Some(st)
}

/// Runs `st run` on the served document against the live agent; returns
/// whether it passed, and what it printed.
fn run_schemathesis(
    st: &PathBuf,
    live: &Live,
    schema: &std::path::Path,
    token: Option<&str>,
    checks: &str,
) -> (bool, String) {
    let report = tempfile::tempdir().unwrap();
    let mut command = Command::new(st);
    command
        .arg("run")
        .arg(schema)
        .args(["--url", &live.agent.base])
        .args(["--checks", checks])
        .args(["--max-examples", "25", "--seed", "1", "--workers", "1"])
        .args(["--request-timeout", "30", "--suppress-health-check", "all"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .arg("--report-dir")
        .arg(report.path())
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(report.path());
    if let Some(token) = token {
        command.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    let output = command.output().expect("run schemathesis");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // schemathesis's summary: what it ran, per operation and per check.
    eprintln!("{printed}");
    (output.status.success(), printed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_against_the_live_agent() {
    let Some(st) = schemathesis() else { return };
    let live = Live::start().await;
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("openapi.json");
    let (status, doc) = live.call(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    std::fs::write(&schema, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();

    // With a token of every scope: no 5xx, every answer (status, content
    // type, body) as documented, and no operation that works without it.
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,\
                  response_schema_conformance,ignored_auth,negative_data_rejection,\
                  unsupported_method,missing_required_header";
    let (passed, printed) = run_schemathesis(&st, &live, &schema, Some(TOKEN), checks);
    assert!(
        passed,
        "schemathesis with a token:\n{printed}\n{}",
        live.agent.log()
    );

    // Without a token: every operation answers 401 in the documented shape.
    let (passed, printed) = run_schemathesis(
        &st,
        &live,
        &schema,
        None,
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
    );
    assert!(passed, "schemathesis without a token:\n{printed}");
    for (method, path) in documented(&doc) {
        let uri = path
            .replace("{dataset}", "orders")
            .replace("{partition}", "2026-11-20")
            .replace("{gate_id}", "g")
            .replace("{id}", "x");
        let response = live
            .http
            .request(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                format!("{}{uri}", live.agent.base),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {uri} without a token");
    }
    // The agent logged no handler failure while schemathesis ran.
    assert!(
        !live.agent.log().contains("panicked"),
        "{}",
        live.agent.log()
    );
    live.finish().await;
}
