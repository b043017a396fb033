//! OpenLineage events from the real `warden run`: a scheduled run that
//! passes (START, COMPLETE), one that fails (START, FAIL, assertions that
//! did not hold), a gate that allows and one that denies (job
//! `warden.gate.<dataset>`), all queued while the endpoint is down, kept
//! across a restart of the agent, and delivered once it is up; every event
//! validated against the OpenLineage JSON schemas by a local endpoint that
//! demands the bearer key, which never shows in the agent's logs.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::support::agent::{
    AgentProcess, Project, eventually, free_port, get_json, get_text, sample,
};
use crate::support::db::{Backend, TestDb};
use crate::support::lineage::{LineageEndpoint, problems};
use crate::support::registry::TestRegistry;

const KEY: &str = "ol-key-7c1f2e9a";

/// Long enough for the first scheduled minute tick and its runs.
const A_TICK: Duration = Duration::from_secs(100);

fn checks() -> String {
    r#"datasets:
  - name: orders
    warehouse: main
    table: main.orders
    schedule: "* * * * *"
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 50% }
  - name: events
    warehouse: main
    table: main.events
    schedule: "* * * * *"
    checks:
      - row_count: { min: 5 }
  - name: daily
    warehouse: main
    table: main.daily
    partition: { column: day, granularity: day }
    gate: { table: main.daily_staging }
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 0 }
"#
    .to_owned()
}

fn warden_yaml(warehouse: &str, endpoint: &str) -> String {
    format!(
        "agent:\n  registry: sqlite://warden.db\n  timezone: UTC\n  openlineage:\n    url: {endpoint}\n    api_key: ${{OL_KEY}}\n    namespace: warden-test\n\
         warehouses:\n  main:\n    url: {warehouse}\n    max_connections: 2\n    query_timeout: 20s\n\
         checks: [checks/*.yaml]\nalerts: alerts.yaml\n"
    )
}

/// Events of `job`, in the order they arrived.
fn of_job<'a>(events: &'a [Value], job: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["job"]["name"] == job).collect()
}

/// The first run of `job` that has both its START and its end: the two
/// events, START first as delivered.
fn first_run<'a>(events: &'a [Value], job: &str) -> Option<(&'a Value, &'a Value)> {
    let mine = of_job(events, job);
    mine.iter().enumerate().find_map(|(i, start)| {
        (start["eventType"] == "START").then_some(())?;
        let id = &start["run"]["runId"];
        let end = mine[i + 1..]
            .iter()
            .find(|e| &e["run"]["runId"] == id && e["eventType"] != "START")?;
        Some((*start, *end))
    })
}

fn assertions(event: &Value) -> Vec<Value> {
    event["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_and_gates_reach_an_openlineage_endpoint_that_was_down() {
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let today = Utc::now().date_naive();
    let good_day = (today - chrono::Duration::days(1)).to_string();
    let bad_day = (today - chrono::Duration::days(2)).to_string();
    db.exec(&format!(
        "CREATE TABLE {{s}}.orders (order_id INTEGER, customer_id INTEGER);
         INSERT INTO {{s}}.orders VALUES (1, 10), (2, NULL), (3, 12);
         CREATE TABLE {{s}}.events (id INTEGER);
         INSERT INTO {{s}}.events VALUES (1), (2);
         CREATE TABLE {{s}}.daily (id INTEGER, customer_id INTEGER, day DATE);
         CREATE TABLE {{s}}.daily_staging (id INTEGER, customer_id INTEGER, day DATE);
         INSERT INTO {{s}}.daily_staging VALUES (1, 1, '{good_day}'), (2, 2, '{good_day}'),
             (3, 3, '{bad_day}'), (4, NULL, '{bad_day}');"
    ))
    .await;
    let mut endpoint = LineageEndpoint::down(free_port(), KEY);
    let project = Project::new();
    project.write("warden.yaml", &warden_yaml(db.url(), &endpoint.url));
    project.write("checks/shop.yaml", &checks());
    // Quick retries, so that the endpoint is tried soon after it is up.
    project.write(
        "alerts.yaml",
        "policy:\n  delivery: { timeout: 2s, initial_backoff: 500ms, max_backoff: 2s }\n",
    );
    let env = [("OL_KEY", KEY), ("WARDEN_LOG", "debug")];

    // The endpoint is down: a gate that allows, one that denies, and the
    // first scheduled runs are queued.
    let port = free_port();
    let mut first = AgentProcess::start_with(&project.config(), port, &[], &env);
    first.wait_ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let mut gates = Vec::new();
    for (day, run_id, want) in [
        (&good_day, "load-good", "allowed"),
        (&bad_day, "load-bad", "denied"),
    ] {
        let gate: Value = client
            .post(format!("{}/api/v1/gates?wait=60s", first.base))
            .json(&json!({"dataset": "daily", "partition": day, "run_id": run_id}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(gate["status"], want, "{gate:#}");
        gates.push(gate["gate_id"].as_str().unwrap().to_owned());
    }
    let base = first.base.clone();
    eventually(A_TICK, "a scheduled run of both datasets", || {
        let base = base.clone();
        async move {
            let mut done = true;
            for check in ["orders.row_count", "events.row_count"] {
                let (_, body) =
                    get_json(&format!("{base}/api/v1/checks/{check}/history?limit=1")).await;
                done &= body["results"].as_array().is_some_and(|r| !r.is_empty());
            }
            done.then_some(())
        }
    })
    .await;
    // Both runs' events are queued too, behind the gates' (they are queued
    // after the results are recorded).
    let pending = eventually(Duration::from_secs(10), "eight pending events", || {
        let base = base.clone();
        async move {
            let (_, metrics) = get_text(&format!("{base}/metrics")).await;
            sample(
                &metrics,
                r#"warden_outbox_pending{receiver="@openlineage"}"#,
            )
            .filter(|n| *n >= 8.0)
        }
    })
    .await;
    assert!(pending >= 8.0);
    assert!(endpoint.events().is_empty());
    let (_, metrics) = get_text(&format!("{base}/metrics")).await;
    assert!(
        sample(
            &metrics,
            r#"warden_notifications_total{receiver="@openlineage",result="retry"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "deliveries were tried and retried: {metrics}"
    );
    first.terminate(Duration::from_secs(30)).await;

    // A new agent on the same registry delivers them once the endpoint is up.
    let mut second = AgentProcess::start_with(&project.config(), port, &[], &env);
    second.wait_ready(Duration::from_secs(30)).await;
    endpoint.up().await;
    let events = endpoint
        .wait_until(
            Duration::from_secs(60),
            "both runs and both gates, started and ended",
            |events| {
                ["warden.orders", "warden.events"]
                    .iter()
                    .all(|job| first_run(events, job).is_some())
                    && of_job(events, "warden.gate.daily").len() >= 4
            },
        )
        .await;
    assert_eq!(endpoint.refused(), Vec::<String>::new());
    for event in &events {
        assert_eq!(problems(event), Vec::<String>::new(), "{event:#}");
        assert_eq!(event["job"]["namespace"], "warden-test");
    }
    let warehouse_file = db
        .url()
        .strip_prefix("sqlite://")
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let namespace = format!("sqlite://{warehouse_file}");

    // The run that passed.
    let (start, end) = first_run(&events, "warden.orders").unwrap();
    assert_eq!(end["eventType"], "COMPLETE", "{end:#}");
    assert!(start["eventTime"].as_str() <= end["eventTime"].as_str());
    assert_eq!(
        start["inputs"],
        json!([{"namespace": namespace, "name": "main.orders"}])
    );
    assert_eq!(end["inputs"][0]["namespace"], namespace.as_str());
    assert_eq!(end["inputs"][0]["name"], "main.orders");
    assert_eq!(
        assertions(end),
        vec![
            json!({"assertion": "row_count", "success": true}),
            json!({"assertion": "null_rate_customer_id", "success": true, "column": "customer_id"}),
        ]
    );
    let metrics = &end["inputs"][0]["inputFacets"]["dataQualityMetrics"];
    assert_eq!(metrics["rowCount"], 3, "{metrics:#}");
    assert_eq!(
        metrics["columnMetrics"],
        json!({"customer_id": {"nullCount": 1}})
    );

    // The run that failed.
    let (_, end) = first_run(&events, "warden.events").unwrap();
    assert_eq!(end["eventType"], "FAIL", "{end:#}");
    assert_eq!(
        assertions(end),
        vec![json!({"assertion": "row_count", "success": false})]
    );
    assert_eq!(
        end["inputs"][0]["inputFacets"]["dataQualityMetrics"]["rowCount"],
        2
    );

    // The gates: the run id is the gate's id, the input the staged relation.
    let gate_events = of_job(&events, "warden.gate.daily");
    for (gate_id, ending, nulls_hold) in [(&gates[0], "COMPLETE", true), (&gates[1], "FAIL", false)]
    {
        let mine: Vec<&&Value> = gate_events
            .iter()
            .filter(|e| e["run"]["runId"] == gate_id.as_str())
            .collect();
        let kinds: Vec<&str> = mine
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["START", ending], "gate {gate_id}");
        let end = mine[1];
        assert_eq!(end["inputs"][0]["name"], "main.daily_staging");
        assert!(
            assertions(end).contains(&json!({
                "assertion": "null_rate_customer_id", "success": nulls_hold, "column": "customer_id"
            })),
            "{end:#}"
        );
    }

    // Nothing was given up on, and the key never reached a log.
    let (_, dead) = get_json(&format!("{}/api/v1/notifications/dead", second.base)).await;
    assert_eq!(dead["notifications"], json!([]), "{dead:#}");
    second.terminate(Duration::from_secs(30)).await;
    assert!(first.log().contains("delivery failed"), "{}", first.log());
    assert!(
        second.log().contains("notification delivered"),
        "{}",
        second.log()
    );
    for log in [first.log(), second.log()] {
        assert!(!log.contains(KEY), "the API key was logged:\n{log}");
    }
}

#[test]
fn the_schemas_refuse_what_the_specification_refuses() {
    let good = json!({
        "eventType": "FAIL",
        "eventTime": "2026-11-30T07:00:00.000Z",
        "run": {"runId": "0190a0c6-3b5e-7d7e-9a4f-6f1b2c3d4e5f"},
        "job": {"namespace": "warden", "name": "warden.orders"},
        "inputs": [{
            "namespace": "postgres://db:5432",
            "name": "shop.public.orders",
            "inputFacets": {
                "dataQualityAssertions": {
                    "_producer": "urn:warden:0.1.0",
                    "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
                    "assertions": [{"assertion": "row_count", "success": false}]
                },
                "dataQualityMetrics": {
                    "_producer": "urn:warden:0.1.0",
                    "_schemaURL": "https://openlineage.io/spec/facets/1-0-3/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet",
                    "rowCount": 3,
                    "columnMetrics": {"customer_id": {"nullCount": 1}}
                }
            }
        }],
        "outputs": [],
        "producer": "urn:warden:0.1.0",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
    });
    assert_eq!(problems(&good), Vec::<String>::new());
    let facets = "/inputs/0/inputFacets";
    for (pointer, bad) in [
        ("/eventType", json!("DONE")),
        ("/run/runId", json!("not-a-uuid")),
        ("/eventTime", json!("yesterday")),
        (
            &format!("{facets}/dataQualityAssertions/assertions/0/success") as &str,
            json!("no"),
        ),
        (&format!("{facets}/dataQualityMetrics/rowCount"), json!(2.5)),
        (
            &format!("{facets}/dataQualityMetrics/columnMetrics/customer_id/nullCount"),
            json!("one"),
        ),
        (
            &format!("{facets}/dataQualityMetrics/_schemaURL"),
            json!("https://example.com/unknown.json"),
        ),
    ] {
        let mut event = good.clone();
        *event.pointer_mut(pointer).unwrap() = bad;
        assert!(
            !problems(&event).is_empty(),
            "{pointer} was taken: {event:#}"
        );
    }
    let mut event = good.clone();
    event["inputs"][0]["inputFacets"]["dataQualityMetrics"]
        .as_object_mut()
        .unwrap()
        .remove("columnMetrics");
    assert!(
        !problems(&event).is_empty(),
        "metrics without columnMetrics"
    );
}

#[test]
fn openlineage_settings_errors_name_file_line_and_key() {
    let project = Project::new();
    project.write(
        "warden.yaml",
        "agent:\n  openlineage:\n    url: ftp://marquez/api/v1/lineage?token=s3cret\n    namespace: \"two words\"\n\
         warehouses:\n  main: { url: sqlite://w.db }\nchecks: [checks/*.yaml]\n",
    );
    let error = warden::config::load(&project.config())
        .unwrap_err()
        .to_string();
    assert!(error.contains("warden.yaml:3:"), "{error}");
    assert!(
        error.contains("`openlineage.url`: must be an http:// or https:// URL"),
        "{error}"
    );
    assert!(!error.contains("s3cret"), "{error}");
    assert!(error.contains("warden.yaml:4:"), "{error}");
    assert!(error.contains("`openlineage.namespace`"), "{error}");

    project.write(
        "warden.yaml",
        "agent:\n  openlineage: { namespace: warden, api_kee: x }\n\
         warehouses:\n  main: { url: sqlite://w.db }\nchecks: [checks/*.yaml]\n",
    );
    let error = warden::config::load(&project.config())
        .unwrap_err()
        .to_string();
    assert!(error.contains("warden.yaml:2:"), "{error}");
    assert!(error.contains("api_kee"), "{error}");

    project.write(
        "warden.yaml",
        "agent:\n  openlineage: { namespace: warden }\n\
         warehouses:\n  main: { url: sqlite://w.db }\nchecks: [checks/*.yaml]\n",
    );
    let error = warden::config::load(&project.config())
        .unwrap_err()
        .to_string();
    assert!(error.contains("warden.yaml:2:"), "{error}");
    assert!(error.contains("openlineage.url"), "{error}");
}

on_both_engines!(a_run_s_events_are_queued_together_and_leave_in_order);

async fn a_run_s_events_are_queued_together_and_leave_in_order(db: &TestRegistry) {
    let registry = &db.registry;
    let start = json!({"eventType": "START", "run": {"runId": "r1"}});
    let end = json!({"eventType": "COMPLETE", "run": {"runId": "r1"}, "inputs": [{"n": 3}]});
    registry
        .enqueue_all("@openlineage", &[start.clone(), end.clone()])
        .await
        .unwrap();
    let now = Utc::now() + chrono::Duration::seconds(1);
    let lease = now + chrono::Duration::seconds(30);
    let first = registry
        .claim_next("@openlineage", now, lease, false)
        .await
        .unwrap()
        .expect("the START is due");
    assert_eq!(first.payload, start);
    // The end waits while its START is out for delivery.
    assert!(
        registry
            .claim_next("@openlineage", now, lease, false)
            .await
            .unwrap()
            .is_none()
    );
    registry.mark_delivered(first.id).await.unwrap();
    let second = registry
        .claim_next("@openlineage", now, lease, false)
        .await
        .unwrap()
        .expect("then the end");
    assert_eq!(second.payload, end);
}
