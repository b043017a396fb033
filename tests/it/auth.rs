//! Scoped API tokens: what each scope opens and the 403 that names the one
//! missing, the actor the audit log records (the token's name, the body's
//! `by` kept as a note), the status page's Basic prompt, what stays open,
//! and `warden run` refusing to serve an open API beyond loopback. An agent
//! started in-process answers real requests; the refusal is the real
//! binary's.

use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use warden::agent::{Agent, Options};
use warden::domain::DatasetName;
use warden::registry::PartitionState;

use crate::support::agent::{self, AgentProcess, eventually, free_port, spawn_agent};
use crate::support::cli::{WARDEN_YAML, warden_command};
use crate::support::gate::{Project, Setup};

/// A bare token (`token-1`: read, gate, publish) and three with scopes.
const TOKENS: &str = "  api_tokens:
    - ci-secret
    - { name: viewer, token: view-secret, scopes: [read] }
    - { name: oncall, token: admin-secret, scopes: [read, admin] }
    - { name: publisher, token: pub-secret, scopes: [publish] }
";

const WAIT: Duration = Duration::from_secs(30);

crate::on_both_setups!(
    each_scope_opens_its_routes_and_the_token_is_the_actor,
    without_tokens_the_actor_is_what_the_body_says,
);

/// The agent's HTTP API.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn of(agent: &Agent) -> Self {
        Self {
            base: format!("http://{}", agent.addr()),
            http: reqwest::Client::new(),
        }
    }

    fn request(&self, token: Option<&str>, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// The answer's status and JSON body.
    async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.request(token, method.clone(), path);
        if let Some(body) = body {
            r = r.json(&body);
        }
        let response = r.send().await.expect("the agent answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: {status}: {e}: {text}"));
        (status, body)
    }
}

/// Asserts a 403 in the documented error shape, with exactly `detail`.
#[track_caller]
fn forbidden(answer: (StatusCode, Value), detail: &str) {
    assert_eq!(answer.0, StatusCode::FORBIDDEN, "{:#}", answer.1);
    assert_eq!(
        answer.1,
        json!({"error": "forbidden", "detail": detail}),
        "{:#}",
        answer.1
    );
}

fn gate_body(partition: &str, run_id: &str) -> Value {
    json!({"dataset": "orders", "partition": partition, "run_id": run_id})
}

async fn each_scope_opens_its_routes_and_the_token_is_the_actor(setup: Setup) {
    let Some(p) = Project::with_agent(setup, TOKENS).await else {
        return;
    };
    p.stage_good("2026-11-19", 1).await;
    p.stage_bad("2026-11-20", 10).await;
    let (agent, warnings) = spawn_agent(&p.config_path(), Options::default()).await;
    assert!(warnings.is_empty(), "{warnings:?}");
    let api = Api::of(&agent);
    use Method as M;

    // read: GET /api/v1/*.
    for token in ["ci-secret", "view-secret", "admin-secret"] {
        let (status, body) = api
            .call(Some(token), M::GET, "/api/v1/datasets", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{token}: {body:#}");
    }
    forbidden(
        api.call(Some("pub-secret"), M::GET, "/api/v1/datasets", None)
            .await,
        "token `publisher` lacks the `read` scope, which GET /api/v1/datasets needs (it has publish)",
    );

    // gate: POST /api/v1/gates, and reading a gate (read will do too).
    let gates = "/api/v1/gates?wait=60s";
    for (token, name, has) in [
        ("view-secret", "viewer", "read"),
        ("admin-secret", "oncall", "read, admin"),
        ("pub-secret", "publisher", "publish"),
    ] {
        forbidden(
            api.call(
                Some(token),
                M::POST,
                gates,
                Some(gate_body("2026-11-19", "r19")),
            )
            .await,
            &format!(
                "token `{name}` lacks the `gate` scope, which POST /api/v1/gates needs (it has {has})"
            ),
        );
    }
    let (status, allowed) = api
        .call(
            Some("ci-secret"),
            M::POST,
            gates,
            Some(gate_body("2026-11-19", "r19")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{allowed:#}");
    assert_eq!(allowed["status"], "allowed");
    let gate_id = allowed["gate_id"].as_str().unwrap().to_owned();
    let gate_path = format!("/api/v1/gates/{gate_id}");
    for token in ["ci-secret", "view-secret"] {
        let (status, body) = api.call(Some(token), M::GET, &gate_path, None).await;
        assert_eq!(status, StatusCode::OK, "{token}: {body:#}");
    }
    forbidden(
        api.call(Some("pub-secret"), M::GET, &gate_path, None).await,
        &format!(
            "token `publisher` lacks the `read` or `gate` scope, which GET {gate_path} needs (it has publish)"
        ),
    );

    // publish.
    let publish = "/api/v1/datasets/orders/partitions/2026-11-19/publish";
    let body = json!({"gate_id": gate_id, "by": "airflow"});
    for (token, name, has) in [
        ("view-secret", "viewer", "read"),
        ("admin-secret", "oncall", "read, admin"),
    ] {
        forbidden(
            api.call(Some(token), M::POST, publish, Some(body.clone()))
                .await,
            &format!(
                "token `{name}` lacks the `publish` scope, which POST {publish} needs (it has {has})"
            ),
        );
    }
    let (status, published) = api
        .call(Some("pub-secret"), M::POST, publish, Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{published:#}");
    assert_eq!(published["state"], "published");
    // A bare token publishes too (again with the same gate: nothing changes).
    let (status, again) = api
        .call(Some("ci-secret"), M::POST, publish, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{again:#}");
    assert_eq!(again["history"], published["history"]);

    // admin: overrides. A bare token is no admin.
    let (status, denied) = api
        .call(
            Some("ci-secret"),
            M::POST,
            gates,
            Some(gate_body("2026-11-20", "r20")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{denied:#}");
    assert_eq!(denied["basis"], "checks");
    let override_path = "/api/v1/datasets/orders/partitions/2026-11-20/override";
    let review = json!({"decision": "allow", "reason": "a known test order", "by": "ana"});
    for (token, name, has) in [
        ("ci-secret", "token-1", "read, gate, publish"),
        ("view-secret", "viewer", "read"),
    ] {
        forbidden(
            api.call(Some(token), M::POST, override_path, Some(review.clone()))
                .await,
            &format!(
                "token `{name}` lacks the `admin` scope, which POST {override_path} needs (it has {has})"
            ),
        );
    }
    let (status, overridden) = api
        .call(Some("admin-secret"), M::POST, override_path, Some(review))
        .await;
    assert_eq!(status, StatusCode::OK, "{overridden:#}");
    let last = overridden["history"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["to"], &last["actor"], &last["note"]),
        (&json!("passed"), &json!("oncall"), &json!("ana"))
    );
    let (_, gate) = api
        .call(
            Some("view-secret"),
            M::GET,
            &format!("/api/v1/gates/{}", denied["gate_id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        gate["reasons"].as_array().unwrap().last().unwrap(),
        "quarantine overridden by oncall (ana): a known test order"
    );

    // admin: creating and ending silences; reading them is `read`.
    let silence = json!({"matchers": {"dataset": "events"}, "duration": "1h",
                         "created_by": "ana", "comment": "migration"});
    forbidden(
        api.call(
            Some("ci-secret"),
            M::POST,
            "/api/v1/silences",
            Some(silence.clone()),
        )
        .await,
        "token `token-1` lacks the `admin` scope, which POST /api/v1/silences needs (it has read, gate, publish)",
    );
    let (status, created) = api
        .call(
            Some("admin-secret"),
            M::POST,
            "/api/v1/silences",
            Some(silence),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created:#}");
    assert_eq!(
        (&created["created_by"], &created["note"]),
        (&json!("oncall"), &json!("ana"))
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, listed) = api
        .call(Some("view-secret"), M::GET, "/api/v1/silences", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["silences"][0]["id"], id.as_str());
    let one = format!("/api/v1/silences/{id}");
    forbidden(
        api.call(Some("view-secret"), M::DELETE, &one, None).await,
        &format!("token `viewer` lacks the `admin` scope, which DELETE {one} needs (it has read)"),
    );
    let (status, ended) = api.call(Some("admin-secret"), M::DELETE, &one, None).await;
    assert_eq!(status, StatusCode::OK, "{ended:#}");
    assert_eq!(ended["ended_by"], "oncall");

    // The audit log as stored: the token is the actor, the body a note.
    let orders = DatasetName::parse("orders").unwrap();
    let day19 = p.registry.partition(&orders, "2026-11-19").await.unwrap();
    let history = day19.unwrap().history;
    let publication = history
        .iter()
        .find(|t| t.to == PartitionState::Published)
        .unwrap();
    assert_eq!(
        (publication.actor.as_str(), publication.note.as_deref()),
        ("publisher", Some("airflow"))
    );
    assert_eq!(
        history
            .iter()
            .filter(|t| t.to == PartitionState::Published)
            .count(),
        1,
        "publishing again with the same gate logs nothing"
    );
    let day20 = p.registry.partition(&orders, "2026-11-20").await.unwrap();
    let review = day20.unwrap().history.pop().unwrap();
    assert_eq!(
        (review.to, review.actor.as_str(), review.note.as_deref()),
        (PartitionState::Passed, "oncall", Some("ana"))
    );
    let stored = p.registry.silence(&id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.created_by.as_str(),
            stored.note.as_deref(),
            stored.ended_by.as_deref()
        ),
        ("oncall", Some("ana"), Some("oncall"))
    );

    agent.shutdown().await;
    p.finish().await;
}

async fn without_tokens_the_actor_is_what_the_body_says(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    p.stage_good("2026-11-19", 1).await;
    p.stage_bad("2026-11-20", 10).await;
    let (agent, _) = spawn_agent(&p.config_path(), Options::default()).await;
    let api = Api::of(&agent);
    use Method as M;
    let gates = "/api/v1/gates?wait=60s";

    let (_, allowed) = api
        .call(None, M::POST, gates, Some(gate_body("2026-11-19", "r19")))
        .await;
    let (status, published) = api
        .call(
            None,
            M::POST,
            "/api/v1/datasets/orders/partitions/2026-11-19/publish",
            Some(json!({"gate_id": allowed["gate_id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{published:#}");
    let last = published["history"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["actor"], &last["note"]),
        (&json!("anonymous"), &Value::Null)
    );

    let (_, denied) = api
        .call(None, M::POST, gates, Some(gate_body("2026-11-20", "r20")))
        .await;
    assert_eq!(denied["basis"], "checks");
    let (status, overridden) = api
        .call(
            None,
            M::POST,
            "/api/v1/datasets/orders/partitions/2026-11-20/override",
            Some(json!({"decision": "allow", "reason": "checked", "by": "ana"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{overridden:#}");
    let orders = DatasetName::parse("orders").unwrap();
    let review = p
        .registry
        .partition(&orders, "2026-11-20")
        .await
        .unwrap()
        .unwrap()
        .history
        .pop()
        .unwrap();
    assert_eq!(
        (review.actor.as_str(), review.note.as_deref()),
        ("ana", None)
    );

    let (status, created) = api
        .call(
            None,
            M::POST,
            "/api/v1/silences",
            Some(json!({"matchers": {"dataset": "events"}, "duration": "1h", "created_by": "ana"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created:#}");
    assert_eq!(
        (&created["created_by"], &created["note"]),
        (&json!("ana"), &Value::Null)
    );
    let id = created["id"].as_str().unwrap();
    let (_, ended) = api
        .call(None, M::DELETE, &format!("/api/v1/silences/{id}"), None)
        .await;
    assert_eq!(ended["ended_by"], "anonymous");

    agent.shutdown().await;
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_page_asks_a_browser_for_a_token_and_health_stays_open() {
    let p = Project::with_agent(Setup::Sqlite, TOKENS)
        .await
        .expect("SQLite");
    let (agent, _) = spawn_agent(&p.config_path(), Options::default()).await;
    let api = Api::of(&agent);
    let page = |auth: fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder| {
        let request = auth(api.request(None, Method::GET, "/"));
        async move {
            let r = request.send().await.unwrap();
            let challenge = r
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap().to_owned());
            let kind = r
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (r.status(), challenge, kind, r.text().await.unwrap())
        }
    };

    // No token: a Basic challenge, so a browser asks; the body is the API's error.
    let (status, challenge, _, body) = page(|r| r).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("Basic realm=\"warden\""));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert!(
        body["detail"].as_str().unwrap().contains("`read` scope"),
        "{body}"
    );
    let (status, challenge, _, _) = page(|r| r.basic_auth("ana", Some("guess"))).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("Basic realm=\"warden\""))
    );

    // Any user name with a `read` token as the password, or a bearer token.
    for ok in [
        page(|r| r.basic_auth("ana", Some("view-secret"))).await,
        page(|r| r.basic_auth("", Some("ci-secret"))).await,
        page(|r| r.bearer_auth("admin-secret")).await,
    ] {
        assert_eq!(ok.0, StatusCode::OK, "{}", ok.3);
        assert!(ok.2.starts_with("text/html"), "{}", ok.2);
        assert!(ok.3.contains("orders"), "the page lists the datasets");
    }
    let (status, _, _, body) = page(|r| r.basic_auth("ana", Some("pub-secret"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["detail"],
        "token `publisher` lacks the `read` scope, which GET / needs (it has publish)"
    );

    // The API takes bearer tokens only, and says so.
    let r = api
        .request(None, Method::GET, "/api/v1/datasets")
        .basic_auth("ana", Some("view-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"warden\""
    );

    // Health and metrics stay open: probes and Prometheus carry no token.
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = api.request(None, Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }

    // `public_status_page: true` opens the page, not the API (on reload).
    let yaml = std::fs::read_to_string(p.config_path()).unwrap();
    std::fs::write(
        p.config_path(),
        yaml.replace("  api_tokens:", "  public_status_page: true\n  api_tokens:"),
    )
    .unwrap();
    agent.reload().await.expect("reload");
    let (status, _, kind, _) = page(|r| r).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/html"), "{kind}");
    let (status, _) = api.call(None, Method::GET, "/api/v1/datasets", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    agent.shutdown().await;
    p.finish().await;
}

/// `warden <args> --server <agent>` with `$WARDEN_API_TOKEN` set to `token`:
/// the exit code, stdout and stderr.
async fn client(p: &Project, agent: &Agent, args: &[&str], token: &str) -> (i32, String, String) {
    let mut command = tokio::process::Command::from(warden_command(p.files.dir.path()));
    command
        .arg("--config")
        .arg(p.config_path())
        .args(args)
        .arg("--server")
        .arg(format!("http://{}", agent.addr()))
        .env("WARDEN_API_TOKEN", token);
    let out = command.output().await.expect("run warden");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gate_and_publish_commands_show_a_refused_token_clearly() {
    let p = Project::with_agent(Setup::Sqlite, TOKENS)
        .await
        .expect("SQLite");
    p.stage_good("2026-11-19", 1).await;
    let (agent, _) = spawn_agent(&p.config_path(), Options::default()).await;
    let gate = [
        "gate",
        "orders",
        "--partition",
        "2026-11-19",
        "--run-id",
        "r19",
    ];

    let (code, out, err) = client(&p, &agent, &gate, "view-secret").await;
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert_eq!(
        err,
        "error: forbidden (403): token `viewer` lacks the `gate` scope, which POST \
         /api/v1/gates needs (it has read)\n\
         hint: the token is valid but may not do this: use a token of agent.api_tokens with \
         the scope named above\n"
    );
    let (code, out, err) = client(&p, &agent, &gate, "guess").await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.starts_with(
            "error: unauthorized (401): the bearer token is not accepted\n\
             hint: the agent needs an API token: pass one of agent.api_tokens with --token or \
             $WARDEN_API_TOKEN\n"
        ),
        "{err}"
    );

    let mut json = gate.to_vec();
    json.extend(["--format", "json"]);
    let (code, out, err) = client(&p, &agent, &json, "ci-secret").await;
    assert_eq!(code, 0, "{out}{err}");
    let allowed: Value = serde_json::from_str(&out).unwrap();
    let gate_id = allowed["gate_id"].as_str().unwrap();
    let publish = [
        "publish",
        "orders",
        "--partition",
        "2026-11-19",
        "--gate-id",
        gate_id,
        "--by",
        "airflow",
    ];
    let (code, _, err) = client(&p, &agent, &publish, "admin-secret").await;
    assert_eq!(code, 2);
    assert!(
        err.starts_with(
            "error: forbidden (403): token `oncall` lacks the `publish` scope, which POST \
             /api/v1/datasets/orders/partitions/2026-11-19/publish needs (it has read, admin)\n"
        ),
        "{err}"
    );
    let (code, out, err) = client(&p, &agent, &publish, "pub-secret").await;
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(
        out,
        format!("orders partition 2026-11-19 is published (gate {gate_id})\n")
    );

    agent.shutdown().await;
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warden_run_refuses_an_open_api_beyond_loopback() {
    let files = agent::Project::new();
    files.write("warden.yaml", WARDEN_YAML);
    let config = files.config();
    let port = free_port();
    let agent_section = "  timezone: UTC\n";

    // No token, every interface: refused, saying which keys and the ways out.
    let mut refused = AgentProcess::start_at(&config, "0.0.0.0", port, &[]);
    let status = refused.wait_exit(WAIT).await;
    let log = refused.log();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains(&format!(
            "refusing to serve the API on 0.0.0.0:{port} without a token: `agent.listen` is not a \
             loopback address and `agent.api_tokens` is empty, so anyone who can reach it could \
             gate, publish, override quarantines and silence alerts. Set `agent.api_tokens`, or \
             set `agent.allow_unauthenticated: true` to serve it open on purpose (or listen on \
             127.0.0.1)"
        )),
        "{log}"
    );
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err(),
        "nothing listens"
    );

    // Opened on purpose: it starts, and says so.
    files.write(
        "warden.yaml",
        &WARDEN_YAML.replace(
            agent_section,
            &format!("{agent_section}  allow_unauthenticated: true\n"),
        ),
    );
    let mut open = AgentProcess::start_at(&config, "0.0.0.0", port, &[]);
    open.wait_ready(WAIT).await;
    let (status, _) = agent::get_json(&format!("{}/api/v1/datasets", open.base)).await;
    assert_eq!(status, 200);
    assert!(open.log().contains("the API is open to the network"));
    assert!(open.terminate(WAIT).await.success());

    // With a token it starts; a reload that drops the last token is refused.
    let with_token = WARDEN_YAML.replace(
        agent_section,
        &format!("{agent_section}  api_tokens: [ci-secret]\n"),
    );
    files.write("warden.yaml", &with_token);
    let mut guarded = AgentProcess::start_at(&config, "0.0.0.0", port, &[]);
    guarded.wait_ready(WAIT).await;
    let datasets = format!("{}/api/v1/datasets", guarded.base);
    let client = reqwest::Client::new();
    let status = |token: Option<&'static str>| {
        let mut r = client.get(&datasets);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap().status() }
    };
    assert_eq!(status(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(Some("ci-secret")).await, StatusCode::OK);
    files.write("warden.yaml", WARDEN_YAML);
    guarded.signal("HUP");
    eventually(WAIT, "the reload to be refused", || async {
        guarded
            .log()
            .contains("refusing to serve the API on 0.0.0.0")
            .then_some(())
    })
    .await;
    assert_eq!(
        status(None).await,
        StatusCode::UNAUTHORIZED,
        "the old tokens stay"
    );
    assert!(guarded.terminate(WAIT).await.success());
}
