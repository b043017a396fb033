//! The gate over HTTP: an agent started in-process (`spawn_agent`) answers
//! real requests; the `warden gate`/`warden publish` clients and a killed
//! `warden run` are the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use warden::agent::{Agent, Options};

use crate::support::agent::{AgentProcess, free_port, spawn_agent};
use crate::support::gate::{Project, Setup};
use crate::support::tools::SQLITE3;

crate::on_both_setups!(
    over_http_stage_gate_publish_and_consumers_read_the_last_good_partition,
    over_http_fifty_concurrent_gates_over_ten_partitions,
    over_http_a_wait_out_of_range_or_a_future_partition_is_refused_and_pages_nobody,
);

/// An agent serving the project, and a client for it.
struct Served {
    agent: Agent,
    base: String,
    client: reqwest::Client,
    token: Option<&'static str>,
}

impl Served {
    async fn start(p: &Project, token: Option<&'static str>) -> Self {
        let (agent, warnings) = spawn_agent(&p.config_path(), Options::default()).await;
        assert!(warnings.is_empty(), "{warnings:?}");
        let base = format!("http://{}", agent.addr());
        Self {
            agent,
            base,
            client: reqwest::Client::new(),
            token,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn post(&self, path: impl AsRef<str>, body: Value) -> (StatusCode, Value) {
        answer(
            self.request(reqwest::Method::POST, path.as_ref())
                .json(&body),
        )
        .await
    }

    /// POSTs `body` with `token` instead of the one the agent was started for.
    async fn post_as(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        answer(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        answer(self.request(reqwest::Method::GET, path)).await
    }

    async fn stop(self) {
        self.agent.shutdown().await;
    }
}

async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the agent answers");
    let status = response.status();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: {e}: {text}"));
    (status, body)
}

/// Waits (up to 10 s) until the quarantine alert of `orders` `partition`
/// fires (`firing`) or no longer does; whether it came to that.
async fn quarantine_alert_firing(s: &Served, partition: &str, firing: bool) -> bool {
    for _ in 0..100 {
        let (status, body) = s.get("/api/v1/alerts").await;
        assert_eq!(status, StatusCode::OK, "{body:#}");
        let found = body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == "quarantine:orders" && a["labels"]["partition"] == partition);
        if found == firing {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn gate_body(dataset: &str, partition: &str, run_id: &str) -> Value {
    json!({"dataset": dataset, "partition": partition, "run_id": run_id})
}

/// Asserts an error answer: its status and the start of its `detail`.
fn assert_error(answer: &(StatusCode, Value), status: u16, detail: &str) {
    assert_eq!(answer.0.as_u16(), status, "{:#}", answer.1);
    let keys: BTreeSet<&str> = answer
        .1
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, BTreeSet::from(["error", "detail"]), "{:#}", answer.1);
    let got = answer.1["detail"].as_str().unwrap();
    assert!(
        got.starts_with(detail),
        "detail `{got}` does not start with `{detail}`"
    );
}

async fn over_http_stage_gate_publish_and_consumers_read_the_last_good_partition(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    p.stage_good("2026-11-19", 1).await;
    p.stage_bad("2026-11-20", 10).await;
    let s = Served::start(&p, None).await;

    // Without `wait`: 202 with the gate under way and where to find it (a
    // gate on a partition no other gate holds starts at once).
    let response = s
        .request(reqwest::Method::POST, "/api/v1/gates")
        .json(&gate_body("orders", "2026-11-19", "nightly-19"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    assert!(
        ["queued", "running"].contains(&accepted["status"].as_str().unwrap()),
        "{accepted:#}"
    );
    assert_eq!(accepted["progress"], 0.0);
    let gate_id = accepted["gate_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/gates/{gate_id}"));
    let (status, good) = s.get(&format!("{location}?wait=60s")).await;
    assert_eq!(status, StatusCode::OK, "{good:#}");
    assert_eq!(
        (
            good["status"].as_str(),
            good["basis"].as_str(),
            good["progress"].as_f64()
        ),
        (Some("allowed"), Some("checks"), Some(1.0))
    );
    for key in [
        "gate_id",
        "dataset",
        "partition",
        "run_id",
        "results",
        "reasons",
    ] {
        assert!(good.get(key).is_some(), "no `{key}` in {good:#}");
    }
    assert_eq!(good["results"].as_array().unwrap().len(), 4);

    // The pipeline swaps the partition in and publishes it.
    p.swap("2026-11-19").await;
    let (status, published) = s
        .post(
            "/api/v1/datasets/orders/partitions/2026-11-19/publish",
            json!({"gate_id": gate_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{published:#}");
    assert_eq!(published["state"], "published");
    assert_eq!(published["published_gate_id"], gate_id.as_str());

    // The bad partition, with `wait`: the decision in one call.
    let (status, bad) = s
        .post(
            "/api/v1/gates?wait=60s",
            gate_body("orders", "2026-11-20", "nightly-20"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{bad:#}");
    assert_eq!(
        (bad["status"].as_str(), bad["basis"].as_str()),
        (Some("denied"), Some("checks"))
    );
    assert!(
        bad["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("orders.null_rate_customer_id failed:"),
        "{bad:#}"
    );
    let (status, partition) = s.get("/api/v1/datasets/orders/partitions/2026-11-20").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(partition["state"], "quarantined");
    let history: Vec<(&str, &str)> = partition["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["to"].as_str().unwrap(), t["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(history, [("validating", "gate"), ("quarantined", "gate")]);
    assert_eq!(partition["gates"][0]["gate_id"], bad["gate_id"]);
    let denied = s
        .post(
            "/api/v1/datasets/orders/partitions/2026-11-20/publish",
            json!({"gate_id": bad["gate_id"]}),
        )
        .await;
    assert_error(
        &denied,
        409,
        "illegal transition of orders partition `2026-11-20`",
    );

    // The consumer reads the last good partition.
    let (status, consumer) = s.get("/api/v1/datasets/orders/published").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(consumer["partition"], "2026-11-19");
    assert_eq!(consumer["gate_id"], gate_id.as_str());

    // Gates show on the status page.
    let page = s
        .request(reqwest::Method::GET, "/")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Recent gates"), "{page}");
    assert!(page.contains("denied (checks)"), "{page}");

    s.stop().await;
    p.finish().await;
}

async fn over_http_fifty_concurrent_gates_over_ten_partitions(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    let days: Vec<String> = (1..=10).map(|d| format!("2026-11-{d:02}")).collect();
    for (i, day) in days.iter().enumerate() {
        if i % 2 == 0 {
            p.stage_good(day, 100 * i as i64).await;
        } else {
            p.stage_bad(day, 100 * i as i64).await;
        }
    }
    let s = Served::start(&p, None).await;
    let calls: Vec<(usize, &str)> = (0..10)
        .flat_map(|d| ["a", "b", "c", "a", "b"].map(|run| (d, run)))
        .collect();
    let answers = futures::future::join_all(calls.iter().map(|(d, run)| {
        s.post(
            "/api/v1/gates?wait=60s",
            gate_body("orders", &days[*d], run),
        )
    }))
    .await;
    let mut gates: BTreeMap<(usize, &str), BTreeSet<String>> = BTreeMap::new();
    for ((d, run), (status, g)) in calls.iter().zip(&answers) {
        assert_eq!(*status, StatusCode::OK, "{g:#}");
        let expected = if d % 2 == 0 { "allowed" } else { "denied" };
        assert_eq!(g["status"], expected, "{g:#}");
        assert_eq!(g["basis"], "checks", "{g:#}");
        gates
            .entry((*d, run))
            .or_default()
            .insert(g["gate_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(gates.len(), 30);
    assert!(gates.values().all(|ids| ids.len() == 1), "{gates:#?}");
    for (i, day) in days.iter().enumerate() {
        let (status, partition) = s
            .get(&format!("/api/v1/datasets/orders/partitions/{day}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        let history = partition["history"].as_array().unwrap();
        let decision = if i % 2 == 0 { "passed" } else { "quarantined" };
        let mut previous = Value::Null;
        for (k, t) in history.iter().enumerate() {
            assert_eq!(t["from"], previous, "{day}: {history:#?}");
            previous = t["to"].clone();
            let want = if k % 2 == 0 { "validating" } else { decision };
            assert_eq!(t["to"], want, "{day}: {history:#?}");
            if k % 2 == 1 {
                assert_eq!(
                    t["gate_id"],
                    history[k - 1]["gate_id"],
                    "{day}: {history:#?}"
                );
            }
        }
        assert_eq!(history.len(), 6, "{day}");
    }
    let metrics = s
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "warden_gate_decisions_total{dataset=\"orders\",decision=\"allow\"} 15",
        "warden_gate_decisions_total{dataset=\"orders\",decision=\"deny\"} 15",
        "warden_gate_duration_seconds_count{dataset=\"orders\"} 30",
        "warden_queue_depth{stage=\"gate\"} 0",
    ] {
        assert!(metrics.contains(line), "missing `{line}`");
    }
    s.stop().await;
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_http_bad_requests_get_their_status_and_a_detail() {
    let p = Project::with_agent(
        Setup::Sqlite,
        "  api_tokens: [s3cret, { name: oncall, token: adm1n, scopes: [read, admin] }]\n",
    )
    .await
    .expect("SQLite");
    p.stage_bad("2026-11-20", 1).await;
    let s = Served::start(&p, Some("s3cret")).await;
    let gates = "/api/v1/gates";

    // Tokens.
    let without = answer(s.client.post(format!("{}{gates}", s.base)).json(&gate_body(
        "orders",
        "2026-11-20",
        "r1",
    )))
    .await;
    assert_error(&without, 401, "the Authorization header must carry");
    let wrong = answer(
        s.client
            .post(format!("{}{gates}", s.base))
            .bearer_auth("guess")
            .json(&gate_body("orders", "2026-11-20", "r1")),
    )
    .await;
    assert_error(&wrong, 401, "the bearer token is not accepted");

    // The request.
    assert_error(
        &s.post(gates, gate_body("nope", "2026-11-20", "r1")).await,
        404,
        "unknown dataset `nope`",
    );
    assert_error(
        &s.post(gates, gate_body("orders", "20-11-2026", "r1")).await,
        400,
        "partition: invalid partition `20-11-2026`: expected a day like 2026-11-20",
    );
    assert_error(
        &s.post(gates, json!({"dataset": "orders", "run_id": "r1"}))
            .await,
        400,
        "Failed to deserialize the JSON body into the target type: missing field `partition`",
    );
    assert_error(
        &s.post(
            gates,
            json!({"dataset": "orders", "partition": "2026-11-20", "runid": "x"}),
        )
        .await,
        400,
        "Failed to deserialize the JSON body into the target type: runid: unknown field `runid`",
    );
    assert_error(
        &s.post(gates, json!({"dataset": "orders", "partition": 20261120}))
            .await,
        400,
        "Failed to deserialize the JSON body into the target type: partition: invalid type",
    );
    let not_json = answer(
        s.request(reqwest::Method::POST, gates)
            .header("content-type", "application/json")
            .body("{\"dataset\": "),
    )
    .await;
    assert_error(&not_json, 400, "Failed to parse the request body as JSON");
    let oversized = answer(
        s.request(reqwest::Method::POST, gates)
            .header("content-type", "application/json")
            .body(format!(
                "{{\"dataset\": \"orders\", \"partition\": \"2026-11-20\", \"run_id\": \"{}\"}}",
                "x".repeat(100 * 1024)
            )),
    )
    .await;
    assert_error(
        &oversized,
        413,
        "the request body is larger than 65536 bytes",
    );
    assert_error(
        &s.post(
            "/api/v1/gates?wait=soon",
            gate_body("orders", "2026-11-20", "r1"),
        )
        .await,
        400,
        "wait: expected a duration like `300s`",
    );
    let long_run_id = "r".repeat(300);
    assert_error(
        &s.post(gates, gate_body("orders", "2026-11-20", &long_run_id))
            .await,
        400,
        "run_id: is longer than 256 bytes",
    );
    assert_error(
        &s.get("/api/v1/gates/no-such-gate").await,
        404,
        "no gate has the id `no-such-gate`",
    );

    // Idempotency-Key reused for another request.
    let keyed = |partition: &str| {
        answer(
            s.request(reqwest::Method::POST, "/api/v1/gates?wait=60s")
                .header("Idempotency-Key", "load-42")
                .json(&gate_body("orders", partition, "r1")),
        )
    };
    let (status, first) = keyed("2026-11-20").await;
    assert_eq!(status, StatusCode::OK, "{first:#}");
    assert_eq!(first["status"], "denied");
    // The quarantine raises an alert to the dataset's owner.
    assert!(
        quarantine_alert_firing(&s, "2026-11-20", true).await,
        "no quarantine alert"
    );
    let (status, again) = keyed("2026-11-20").await;
    assert_eq!(
        (status, &again["gate_id"]),
        (StatusCode::OK, &first["gate_id"])
    );
    assert_error(
        &keyed("2026-11-19").await,
        422,
        "Idempotency-Key `load-42` was first used",
    );

    // Publications and overrides.
    let publish = |partition: &str, body: Value| {
        s.post(
            format!("/api/v1/datasets/orders/partitions/{partition}/publish"),
            body,
        )
    };
    assert_error(
        &publish("2026-11-20", json!({"gate_id": first["gate_id"]})).await,
        409,
        "illegal transition of orders partition `2026-11-20` from quarantined to published: \
         gate",
    );
    assert_error(
        &publish("2026-11-18", json!({"gate_id": "made-up"})).await,
        409,
        "gate made-up does not exist: nothing allowed orders partition `2026-11-18`",
    );
    assert_error(
        &publish("2026-11-18", json!({})).await,
        400,
        "Failed to deserialize the JSON body into the target type: missing field `gate_id`",
    );
    assert_error(
        &publish("2026-13-01", json!({"gate_id": "x"})).await,
        400,
        "partition: invalid partition `2026-13-01`",
    );
    assert_error(
        &s.post_as(
            "adm1n",
            "/api/v1/datasets/orders/partitions/2026-11-20/override",
            json!({"decision": "allow", "by": "ana"}),
        )
        .await,
        400,
        "Failed to deserialize the JSON body into the target type: missing field `reason`",
    );
    assert_error(
        &s.post_as(
            "adm1n",
            "/api/v1/datasets/orders/partitions/2026-11-18/override",
            json!({"decision": "allow", "reason": "checked", "by": "ana"}),
        )
        .await,
        409,
        "illegal transition of orders partition `2026-11-18` from no state to passed",
    );
    assert_error(
        &s.get("/api/v1/datasets/orders/partitions/2026-11-18").await,
        404,
        "orders partition `2026-11-18` has never been gated",
    );
    assert_error(
        &s.get("/api/v1/datasets/orders/published").await,
        404,
        "no partition of orders has been published yet",
    );
    assert_error(
        &s.get("/api/v1/datasets/nope/published").await,
        404,
        "unknown dataset `nope`",
    );

    // The override lets the same run publish.
    let (status, overridden) = s
        .post_as(
            "adm1n",
            "/api/v1/datasets/orders/partitions/2026-11-20/override",
            json!({"decision": "allow", "reason": "test order", "by": "ana"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{overridden:#}");
    assert_eq!(overridden["state"], "passed");
    // ... and the override resolves it.
    assert!(
        quarantine_alert_firing(&s, "2026-11-20", false).await,
        "the quarantine alert still fires"
    );
    let (status, replay) = keyed("2026-11-20").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (replay["status"].as_str(), replay["basis"].as_str()),
        (Some("allowed"), Some("override"))
    );
    let (status, _) = publish("2026-11-20", json!({"gate_id": first["gate_id"]})).await;
    assert_eq!(status, StatusCode::OK);

    s.stop().await;
    p.finish().await;
}

/// Runs the `warden` binary with `args`; returns the exit code, stdout and stderr.
async fn warden(config: &Path, args: &[&str], token: Option<&str>) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("WARDEN_SERVER")
        .env_remove("WARDEN_API_TOKEN")
        .env_remove("WARDEN_CONFIG");
    if let Some(token) = token {
        command.env("WARDEN_API_TOKEN", token);
    }
    let out = command.output().await.expect("run warden");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gate_and_publish_commands_exit_as_documented() {
    let p = Project::with_agent(Setup::Sqlite, "  api_tokens: [s3cret]\n")
        .await
        .expect("SQLite");
    p.stage_good("2026-11-19", 1).await;
    p.stage_bad("2026-11-20", 10).await;
    let s = Served::start(&p, Some("s3cret")).await;
    // The clients find the agent through `agent.listen`.
    let yaml = std::fs::read_to_string(p.config_path()).unwrap();
    std::fs::write(
        p.config_path(),
        yaml.replace("127.0.0.1:9464", &s.agent.addr().to_string()),
    )
    .unwrap();
    let config = p.config_path();
    let token = Some("s3cret");

    let (code, out, err) = warden(
        &config,
        &[
            "gate",
            "orders",
            "--partition",
            "2026-11-19",
            "--run-id",
            "n19",
            "--format",
            "json",
        ],
        token,
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let allowed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(allowed["status"], "allowed");
    let gate_id = allowed["gate_id"].as_str().unwrap();

    let (code, out, err) = warden(
        &config,
        &[
            "gate",
            "orders",
            "--partition",
            "2026-11-19",
            "--run-id",
            "n19",
        ],
        token,
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!(
            "gate {gate_id} for orders partition 2026-11-19 (run n19): ALLOWED\n"
        )),
        "{out}"
    );
    assert!(out.contains("  pass   orders.row_count"), "{out}");

    let (code, out, err) = warden(
        &config,
        &[
            "publish",
            "orders",
            "--partition",
            "2026-11-19",
            "--gate-id",
            gate_id,
            "--by",
            "airflow",
        ],
        token,
    )
    .await;
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(
        out,
        format!("orders partition 2026-11-19 is published (gate {gate_id})\n")
    );

    let (code, out, err) = warden(
        &config,
        &[
            "gate",
            "orders",
            "--partition",
            "2026-11-20",
            "--run-id",
            "n20",
        ],
        token,
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("DENIED: a blocking check failed (do not retry)"),
        "{out}"
    );
    assert!(
        out.contains("  - orders.null_rate_customer_id failed: "),
        "{out}"
    );

    let (code, _, err) = warden(
        &config,
        &[
            "publish",
            "orders",
            "--partition",
            "2026-11-20",
            "--gate-id",
            gate_id,
        ],
        token,
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error: conflict (409): "), "{err}");

    let (code, out, err) = warden(
        &config,
        &["gate", "slow", "--partition", "b1", "--wait", "1s"],
        token,
    )
    .await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("DENIED on timeout"), "{out}");

    // `--wait` outside 1s..5m is a usage error, before anything is asked.
    for wait in ["0s", "301s"] {
        let (code, out, err) = warden(
            &config,
            &[
                "gate",
                "orders",
                "--partition",
                "2026-11-20",
                "--wait",
                wait,
            ],
            token,
        )
        .await;
        assert_eq!(code, 2, "{out}{err}");
        assert!(
            err.contains(&format!("invalid value '{wait}' for '--wait <WAIT>'"))
                && err.contains("is not between 1s and 5m"),
            "{err}"
        );
    }

    let (code, _, err) = warden(
        &config,
        &["gate", "nope", "--partition", "2026-11-20"],
        token,
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert_eq!(err, "error: not found (404): unknown dataset `nope`\n");

    let (code, _, err) = warden(
        &config,
        &["gate", "orders", "--partition", "2026-11-20"],
        None,
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error: unauthorized (401): "), "{err}");

    // Nobody listening: retried, then exit 2.
    let (code, _, err) = warden(
        &config,
        &[
            "gate",
            "orders",
            "--partition",
            "2026-11-20",
            "--server",
            "http://127.0.0.1:9",
        ],
        token,
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.matches("warning: cannot reach the agent").count(),
        4,
        "{err}"
    );
    assert!(
        err.contains("error: cannot reach the agent at http://127.0.0.1:9"),
        "{err}"
    );

    s.stop().await;
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_killed_during_a_gate_denies_it_after_restart() {
    let p = Project::new(Setup::Sqlite).await.expect("SQLite");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        async move { answer(client.get(path)).await }
    };
    let mut agent = AgentProcess::start_on(&p.config_path(), port, &[]);
    agent.wait_ready(Duration::from_secs(20)).await;

    // A gate that takes seconds, killed while it runs.
    let (status, g) = answer(
        client
            .post(format!("{base}/api/v1/gates"))
            .json(&gate_body("slow", "b1", "nightly")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{g:#}");
    let gate_id = g["gate_id"].as_str().unwrap().to_owned();
    let mut running = false;
    for _ in 0..100 {
        let (_, g) = get(format!("{base}/api/v1/gates/{gate_id}")).await;
        if g["status"] == "running" {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(running, "the gate never ran");
    let (_, partition) = get(format!("{base}/api/v1/datasets/slow/partitions/b1")).await;
    assert_eq!(partition["state"], "validating");
    agent.signal("KILL");
    drop(agent);

    // After the restart the gate is denied for an error, and the partition
    // is no longer `validating`.
    let mut agent = AgentProcess::start_on(&p.config_path(), port, &[]);
    agent.wait_ready(Duration::from_secs(20)).await;
    let (status, g) = get(format!("{base}/api/v1/gates/{gate_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (g["status"].as_str(), g["basis"].as_str()),
        (Some("denied"), Some("error")),
        "{g:#}"
    );
    assert_eq!(g["reasons"], json!([warden::gate::ABANDONED]));
    // No breach, no quarantine: the partition is as before the gate (never
    // gated).
    let (status, partition) = get(format!("{base}/api/v1/datasets/slow/partitions/b1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{partition:#}");

    // The pipeline's retry evaluates again and decides.
    p.set_slowness(false).await;
    let (status, retry) = answer(
        client
            .post(format!("{base}/api/v1/gates?wait=60s"))
            .json(&gate_body("slow", "b1", "nightly")),
    )
    .await;
    let agent_log = || agent.log();
    assert_eq!(status, StatusCode::OK, "{retry:#}\n{}", agent_log());
    assert_eq!(retry["status"], "allowed", "{retry:#}\n{}", agent_log());
    assert_ne!(retry["gate_id"], gate_id.as_str());
    let (_, old) = get(format!("{base}/api/v1/gates/{gate_id}")).await;
    assert_eq!(old["retried_by"], retry["gate_id"]);
    let (_, partition) = get(format!("{base}/api/v1/datasets/slow/partitions/b1")).await;
    let states: Vec<&str> = partition["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["validating", "passed"]);

    // SIGTERM: a clean stop.
    let status = agent.terminate(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    p.finish().await;
}

/// Runs `examples/shell/publish_partition.sh` for `partition` against the
/// served agent, on the project's SQLite warehouse.
async fn shell_example(p: &Project, s: &Served, partition: &str) -> (i32, String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shell/publish_partition.sh");
    let warehouse = p.db.url().trim_start_matches("sqlite://").to_owned();
    let out = tokio::process::Command::new("bash")
        .arg(script)
        .arg(partition)
        .env("WARDEN_URL", &s.base)
        .env("WARDEN_API_TOKEN", s.token.unwrap_or_default())
        .env("RUN_ID", format!("shell-{partition}"))
        .env("GATE_WAIT", "60s")
        .env("WAREHOUSE_SQL", format!("sqlite3 -bail '{warehouse}'"))
        .env("SOURCE_TABLE", "main.raw_orders")
        .env("STAGING_TABLE", "main.orders_staging")
        .env("TARGET_TABLE", "main.orders")
        .output()
        .await
        .expect("run the shell example");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shell_example_publishes_a_good_partition_and_stops_at_a_bad_one() {
    // The example reaches the warehouse with the sqlite3 shell.
    if SQLITE3.find().is_none() {
        return;
    }
    let p = Project::with_agent(Setup::Sqlite, "  api_tokens: [s3cret]\n")
        .await
        .expect("SQLite");
    // The source the example stages from: a good day and a day with an
    // order without a customer.
    p.db.exec(
        "CREATE TABLE {s}.raw_orders (order_id BIGINT NOT NULL, customer_id BIGINT, \
         coupon TEXT, order_date DATE NOT NULL);
         INSERT INTO {s}.raw_orders VALUES (1, 1, 'A', '2026-11-19'), (2, 2, NULL, '2026-11-19'),
           (3, 3, 'B', '2026-11-20'), (4, NULL, 'C', '2026-11-20');",
    )
    .await;
    let s = Served::start(&p, Some("s3cret")).await;

    let (code, out, err) = shell_example(&p, &s, "2026-11-19").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("allowed (checks)"), "{out}");
    assert!(out.ends_with("published orders 2026-11-19\n"), "{out}");
    let (_, published) = s.get("/api/v1/datasets/orders/published").await;
    assert_eq!(published["partition"], "2026-11-19");

    let (code, out, err) = shell_example(&p, &s, "2026-11-20").await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("denied (checks)"), "{out}");
    assert!(
        out.contains("  - orders.null_rate_customer_id failed:"),
        "{out}"
    );
    assert!(!out.contains("swap:"), "{out}");
    let (_, partition) = s.get("/api/v1/datasets/orders/partitions/2026-11-20").await;
    assert_eq!(partition["state"], "quarantined");
    let (_, published) = s.get("/api/v1/datasets/orders/published").await;
    assert_eq!(published["partition"], "2026-11-19");

    let (code, _, err) = shell_example(&p, &s, "2026-11-20'; DROP TABLE x; --").await;
    assert_eq!(code, 2);
    assert!(err.starts_with("invalid partition"), "{err}");

    s.stop().await;
    p.finish().await;
}

async fn over_http_a_wait_out_of_range_or_a_future_partition_is_refused_and_pages_nobody(
    setup: Setup,
) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    p.stage_good("2026-11-19", 1).await;
    let s = Served::start(&p, None).await;
    let body = || gate_body("orders", "2026-11-19", "nightly-19");
    for wait in ["0s", "0", "500ms", "301s", "1h"] {
        let answer = s.post(format!("/api/v1/gates?wait={wait}"), body()).await;
        assert_error(
            &answer,
            400,
            &format!("wait: expected a duration like `300s` or `5m` from 1s to 5m, not `{wait}`"),
        );
    }
    let answer = s.get("/api/v1/gates/nope?wait=0s").await;
    assert_error(&answer, 400, "wait: ");
    // Nothing was gated: no partition, no quarantine alert.
    let (status, _) = s.get("/api/v1/datasets/orders/partitions/2026-11-19").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(1)).to_string();
    let answer = s
        .post(
            "/api/v1/gates?wait=60s",
            gate_body("orders", &tomorrow, "future"),
        )
        .await;
    assert_error(
        &answer,
        400,
        &format!("partition: partition `{tomorrow}` of orders is in the future"),
    );
    let answer = s
        .post(
            "/api/v1/datasets/orders/partitions/9999-12-31/publish",
            json!({"gate_id": "g"}),
        )
        .await;
    assert_error(
        &answer,
        400,
        "partition: partition `9999-12-31` of orders is in the future",
    );
    let (status, _) = s.get("/api/v1/datasets/orders/published").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The bounds themselves are accepted.
    let (status, decided) = s.post("/api/v1/gates?wait=5m", body()).await;
    assert_eq!(status, StatusCode::OK, "{decided:#}");
    assert_eq!(decided["status"], "allowed", "{decided:#}");
    let (status, again) = s
        .get(&format!(
            "/api/v1/gates/{}?wait=1s",
            decided["gate_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{again:#}");
    let (status, alerts) = s.get("/api/v1/alerts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alerts["alerts"], json!([]), "{alerts:#}");
    s.stop().await;
    p.finish().await;
}
