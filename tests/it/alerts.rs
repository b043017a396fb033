//! Alerting end to end below the agent: check results go into the alert
//! manager, notifications through the registry's outbox, and out to local
//! receivers that check each payload field by field (PagerDuty, Slack,
//! webhooks, an SMTP server, a real Alertmanager). Cases that keep state in
//! the registry run on SQLite and on PostgreSQL.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use warden::alert::receivers::{NOTIFICATION_ID_HEADER, webhook};
use warden::alert::{AlertManager, SilenceError};
use warden::check::Outcome::{Error, Fail, Pass};
use warden::domain::Caller;
use warden::registry::{AlertState, OutboxStatus, Registry};

use crate::support::alerts::{POLICY, Project, STATUS_URL, all, plus, result, t0};
use crate::support::receiver::{self, Reply, TestReceiver, refused_url};
use crate::support::registry::TestRegistry;
use crate::support::smtp::SmtpSink;
use crate::support::tools::{ALERTMANAGER, AMTOOL};

const WAIT: Duration = Duration::from_secs(15);

fn slack_route(url: &str, policy: &str) -> String {
    format!(
        "receivers:\n  chat: {{ slack: {{ webhook_url: \"{url}/services/T0/B0/x\" }} }}\n\
         routes:\n  - match: {{}}\n    receivers: [chat]\n{policy}"
    )
}

/// The number of notifications in the outbox, in any state.
async fn outbox_len(registry: &Registry) -> usize {
    let mut n = 0;
    for status in [
        OutboxStatus::Pending,
        OutboxStatus::Delivered,
        OutboxStatus::Dead,
    ] {
        n += registry.outbox_entries(status, 10_000).await.unwrap().len();
    }
    n
}

on_both_engines!(
    pagerduty_trigger_and_resolve_share_one_dedup_key,
    group_wait_makes_one_slack_message_per_dataset_within_block_kit_limits,
    flapping_checks_never_fire_under_damping,
    firing_alerts_repeat_and_resolve_once,
    silences_hold_notifications_back_until_they_end,
    a_warehouse_down_raises_one_alert_and_holds_back_its_errors,
    a_quarantined_partition_alerts_the_datasets_owner,
    tier_3_alerts_arrive_as_one_email_digest,
    pending_notifications_are_delivered_after_a_restart,
    agents_flushing_together_notify_once,
    alerts_of_checks_that_leave_the_configuration_resolve,
    a_daily_check_has_one_alert_across_partitions,
    consecutive_failures_count_across_partitions,
    open_alerts_of_the_old_keying_migrate_to_one_per_check,
    two_delivery_workers_share_one_outbox,
    a_notification_in_flight_at_a_crash_is_delivered_by_another_agent,
);

async fn pagerduty_trigger_and_resolve_share_one_dedup_key(db: &TestRegistry) {
    let pd = TestReceiver::ok(202).await;
    let routes = format!(
        "receivers:\n  oncall: {{ pagerduty: {{ routing_key: pd-key-1, url: \"{}/v2/enqueue\" }} }}\n\
         routes:\n  - match: {{ tier: 1 }}\n    receivers: [oncall]\n{POLICY}",
        pd.url
    );
    let mut p = Project::new(db, &routes);
    let orders = p.ds("orders");
    let t = t0();
    let long = format!("0 rows (min 1) {}", "x".repeat(2000));
    let failing = [
        result(
            &orders,
            "row_count",
            Some("2026-11-20"),
            Fail,
            Some(0.0),
            &long,
        ),
        result(
            &orders,
            "freshness_updated_at",
            None,
            Error,
            None,
            "table orders is missing",
        ),
        result(
            &orders,
            "unique_order_id",
            None,
            Pass,
            Some(0.0),
            "no duplicates",
        ),
    ];
    p.alerts.observe(&orders, &failing, t).await.unwrap();
    assert_eq!(
        p.alerts.flush(plus(t, 29)).await.unwrap(),
        0,
        "group_wait holds"
    );
    assert_eq!(p.alerts.flush(plus(t, 30)).await.unwrap(), 2);
    p.start_dispatcher();
    let got = pd.wait_for(2, WAIT).await;
    let by_key = |got: &[receiver::Received], key: &str, action: &str| -> Value {
        got.iter()
            .map(|r| r.json())
            .find(|b| b["dedup_key"] == key && b["event_action"] == action)
            .unwrap_or_else(|| panic!("no {action} for {key}"))
    };

    let fail = by_key(&got, "warden/orders.row_count", "trigger");
    assert_eq!(got[0].path, "/v2/enqueue");
    assert_eq!(fail["routing_key"], "pd-key-1");
    let payload = &fail["payload"];
    let summary = payload["summary"].as_str().unwrap();
    assert_eq!(
        summary.chars().count(),
        1024,
        "summary cut to PagerDuty's limit"
    );
    assert!(
        summary.starts_with("orders.row_count failed on partition 2026-11-20: 0 rows (min 1)"),
        "{summary}"
    );
    assert!(summary.ends_with('…'));
    assert_eq!(payload["source"], "warden/main");
    assert_eq!(payload["severity"], "critical");
    assert_eq!(
        DateTime::parse_from_rfc3339(payload["timestamp"].as_str().unwrap()).unwrap(),
        t
    );
    assert_eq!(payload["component"], "orders");
    assert_eq!(payload["group"], "revenue-team");
    assert_eq!(payload["class"], "row_count");
    let details = &payload["custom_details"];
    assert_eq!(details["check"], "orders.row_count");
    assert_eq!(details["dataset"], "orders");
    assert_eq!(details["partition"], "2026-11-20");
    assert_eq!(details["warehouse"], "main");
    assert_eq!(details["tier"], 1);
    assert_eq!(details["owner"], "revenue-team");
    assert_eq!(details["outcome"], "fail");
    assert_eq!(details["observed"], "0");
    assert_eq!(details["threshold"], "min 1");
    assert_eq!(
        fail["links"],
        json!([
            {"href": "https://wiki.example/orders", "text": "Runbook"},
            {"href": STATUS_URL, "text": "warden status page"},
        ])
    );
    assert_eq!(fail["client"], "warden");
    assert_eq!(fail["client_url"], STATUS_URL);

    // An error is not a failure: other words, lower severity.
    let error = by_key(&got, "warden/orders.freshness_updated_at", "trigger");
    assert_eq!(error["payload"]["severity"], "error");
    assert_eq!(
        error["payload"]["summary"],
        "orders.freshness_updated_at could not be evaluated: table orders is missing"
    );
    assert_eq!(error["payload"]["class"], "freshness");
    assert_eq!(error["payload"]["custom_details"]["outcome"], "error");

    // Both pass again: one resolve each, under the trigger's key.
    let passing = [
        result(
            &orders,
            "row_count",
            Some("2026-11-20"),
            Pass,
            Some(10.0),
            "10 rows",
        ),
        result(
            &orders,
            "freshness_updated_at",
            None,
            Pass,
            Some(60.0),
            "1m old",
        ),
    ];
    p.alerts
        .observe(&orders, &passing, plus(t, 60))
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 90)).await.unwrap(), 2);
    let got = pd.wait_for(4, WAIT).await;
    for key in [
        "warden/orders.row_count",
        "warden/orders.freshness_updated_at",
    ] {
        let resolve = by_key(&got, key, "resolve");
        assert_eq!(
            resolve,
            json!({"routing_key": "pd-key-1", "event_action": "resolve", "dedup_key": key})
        );
        let triggers = got
            .iter()
            .filter(|r| r.json()["dedup_key"] == key && r.json()["event_action"] == "trigger")
            .count();
        assert_eq!(triggers, 1, "one incident per failing check");
    }
    assert_eq!(p.alerts.flush(plus(t, 600)).await.unwrap(), 0);
    p.stop().await;
}

async fn group_wait_makes_one_slack_message_per_dataset_within_block_kit_limits(db: &TestRegistry) {
    let slack = TestReceiver::ok(200).await;
    let mut p = Project::new(db, &slack_route(&slack.url, POLICY));
    let orders = p.ds("orders");
    let wide = p.ds("wide");
    let t = t0();
    // Five failing checks of one dataset, observed a few seconds apart.
    let five = all(&orders, Fail, "0 rows & <nothing> (min 1)");
    assert_eq!(five.len(), 5);
    for (i, r) in five.iter().enumerate() {
        let at = plus(t, i as i64 * 5);
        p.alerts
            .observe(&orders, std::slice::from_ref(r), at)
            .await
            .unwrap();
        assert_eq!(p.alerts.flush(at).await.unwrap(), 0);
    }
    // Thirty failing checks with long messages in another dataset.
    let long = "y".repeat(5000);
    p.alerts
        .observe(&wide, &all(&wide, Fail, &long), t)
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 30)).await.unwrap(), 2);
    p.start_dispatcher();
    let got = slack.wait_for(2, WAIT).await;
    let bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
    for body in &bodies {
        within_block_kit_limits(body);
    }
    let orders_msg = bodies
        .iter()
        .find(|b| b["blocks"][0]["text"]["text"] == "orders: 5 firing")
        .expect("one message for the five orders alerts");
    assert!(
        orders_msg["text"]
            .as_str()
            .unwrap()
            .starts_with("orders: 5 firing\n[FIRING] orders.")
    );
    let sections: Vec<&Value> = orders_msg["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "section")
        .collect();
    assert_eq!(sections.len(), 5);
    let row_count = sections
        .iter()
        .find(|s| {
            s["text"]["text"]
                .as_str()
                .unwrap()
                .contains("*orders.row_count*")
        })
        .unwrap();
    assert_eq!(
        row_count["text"]["text"],
        ":red_circle: *orders.row_count*\norders.row_count failed: 0 rows &amp; &lt;nothing&gt; (min 1)"
    );
    let fields: Vec<&str> = row_count["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "*Observed*\n0",
            "*Threshold*\nmin 1",
            "*Owner*\nrevenue-team",
            "*Severity*\ncritical",
            "*Tier*\n1"
        ]
    );
    let contexts: Vec<String> = orders_msg["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "context")
        .map(|b| b["elements"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(contexts.contains(&"<https://wiki.example/orders|Runbook>".to_owned()));
    assert_eq!(
        contexts.last().unwrap(),
        &format!("<{STATUS_URL}|warden status page>")
    );

    let wide_msg = bodies
        .iter()
        .find(|b| b["blocks"][0]["text"]["text"] == "wide: 30 firing")
        .unwrap();
    let texts: Vec<&str> = wide_msg["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .collect();
    assert!(texts.contains(&"…and 10 more alerts."), "{texts:?}");

    // Nothing more: no message per alert, no repeat before its time.
    assert_eq!(p.alerts.flush(plus(t, 120)).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.received().len(), 2);
    p.stop().await;
}

/// Slack's Block Kit limits, which make Slack refuse a message.
fn within_block_kit_limits(body: &Value) {
    let chars = |v: &Value| v.as_str().unwrap().chars().count();
    assert!(chars(&body["text"]) <= 3000);
    let blocks = body["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    for block in blocks {
        match block["type"].as_str().unwrap() {
            "header" => {
                assert_eq!(block["text"]["type"], "plain_text");
                assert!(chars(&block["text"]["text"]) <= 150);
            }
            "section" => {
                assert!(chars(&block["text"]["text"]) <= 3000);
                if let Some(fields) = block.get("fields") {
                    let fields = fields.as_array().unwrap();
                    assert!(fields.len() <= 10);
                    for f in fields {
                        assert!(chars(&f["text"]) <= 2000);
                    }
                }
            }
            "context" => {
                let elements = block["elements"].as_array().unwrap();
                assert!(elements.len() <= 10);
                for e in elements {
                    assert!(chars(&e["text"]) <= 3000);
                }
            }
            other => panic!("unexpected block type {other}"),
        }
    }
}

async fn flapping_checks_never_fire_under_damping(db: &TestRegistry) {
    let slack = TestReceiver::ok(200).await;
    let policy = POLICY.replace("consecutive_failures: 1", "consecutive_failures: 2");
    let p = Project::new(db, &slack_route(&slack.url, &policy));
    let events = p.ds("events");
    let t = t0();
    for i in 0..8 {
        let outcome = if i % 2 == 0 { Fail } else { Pass };
        let at = plus(t, i * 60);
        let r = result(&events, "row_count", None, outcome, Some(0.0), "flap");
        p.alerts.observe(&events, &[r], at).await.unwrap();
        assert_eq!(p.alerts.flush(plus(at, 45)).await.unwrap(), 0);
        let state = p.registry.alert("events.row_count", None).await.unwrap();
        let expected = if i % 2 == 0 {
            AlertState::Pending
        } else {
            AlertState::Ok
        };
        assert_eq!(state.unwrap().state, expected);
    }
    assert_eq!(outbox_len(&p.registry).await, 0);
    // Two failures in a row do fire.
    for i in 8..10 {
        let r = result(&events, "row_count", None, Fail, Some(0.0), "empty");
        p.alerts
            .observe(&events, &[r], plus(t, i * 60))
            .await
            .unwrap();
    }
    assert_eq!(p.alerts.flush(plus(t, 9 * 60 + 30)).await.unwrap(), 1);
}

async fn firing_alerts_repeat_and_resolve_once(db: &TestRegistry) {
    let slack = TestReceiver::ok(200).await;
    let mut p = Project::new(db, &slack_route(&slack.url, POLICY));
    let events = p.ds("events");
    let t = t0();
    let fail = result(&events, "row_count", None, Fail, Some(0.0), "0 rows");
    p.alerts
        .observe(&events, std::slice::from_ref(&fail), t)
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 30)).await.unwrap(), 1);
    // Still failing: nothing new until the repeat interval (1h) has passed.
    p.alerts
        .observe(&events, std::slice::from_ref(&fail), plus(t, 600))
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 1800)).await.unwrap(), 0);
    assert_eq!(p.alerts.flush(plus(t, 3630)).await.unwrap(), 1);
    assert_eq!(p.alerts.flush(plus(t, 3640)).await.unwrap(), 0);
    // Passing: one resolve.
    let pass = result(&events, "row_count", None, Pass, Some(9.0), "9 rows");
    p.alerts
        .observe(&events, std::slice::from_ref(&pass), plus(t, 4000))
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 4030)).await.unwrap(), 1);
    p.alerts
        .observe(&events, &[pass], plus(t, 4100))
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 9000)).await.unwrap(), 0);
    p.start_dispatcher();
    let got = slack.wait_for(3, WAIT).await;
    let headers: Vec<Value> = got
        .iter()
        .map(|r| r.json()["blocks"][0]["text"]["text"].clone())
        .collect();
    assert_eq!(
        headers,
        ["events: 1 firing", "events: 1 firing", "events: 1 resolved"]
    );
    let resolved = got[2].json();
    assert!(
        resolved["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with(
                ":white_check_mark: *events.row_count*\nevents.row_count passes again: 9 rows"
            )
    );
    let alert = p
        .registry
        .alert("events.row_count", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alert.state, AlertState::Resolved);
    assert!(!alert.notified);
    p.stop().await;

    // Without send_resolved, a resolve is recorded but not sent.
    let quiet = TestReceiver::ok(200).await;
    let policy = POLICY.replace("send_resolved: true", "send_resolved: false");
    let q = Project::new(db, &slack_route(&quiet.url, &policy));
    let orders = q.ds("orders");
    let t = plus(t, 10_000);
    let fail = result(&orders, "row_count", None, Fail, Some(0.0), "0 rows");
    q.alerts.observe(&orders, &[fail], t).await.unwrap();
    assert_eq!(q.alerts.flush(plus(t, 30)).await.unwrap(), 1);
    let pass = result(&orders, "row_count", None, Pass, Some(3.0), "3 rows");
    q.alerts
        .observe(&orders, &[pass], plus(t, 60))
        .await
        .unwrap();
    assert_eq!(q.alerts.flush(plus(t, 90)).await.unwrap(), 0);
    let alert = q
        .registry
        .alert("orders.row_count", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((alert.state, alert.notified), (AlertState::Resolved, false));
}

async fn silences_hold_notifications_back_until_they_end(db: &TestRegistry) {
    let slack = TestReceiver::ok(200).await;
    let t = t0();
    let routes = slack_route(&slack.url, POLICY)
        + &format!(
            "silences:\n  - match: {{ dataset: events }}\n    starts: {}\n    ends: {}\n    comment: migration\n",
            plus(t, -3600).to_rfc3339(),
            plus(t, 3600).to_rfc3339()
        );
    let mut p = Project::new(db, &routes);
    let events = p.ds("events");
    let orders = p.ds("orders");
    let api = p
        .alerts
        .create_silence(
            &json!({"matchers": {"check": "orders.row_count"}, "duration": "2h",
                    "created_by": "ana", "comment": "known gap"}),
            t,
            &Caller::Open,
        )
        .await
        .unwrap();
    let listed = p.alerts.silences(t).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| (s.id.as_str(), s.comment.as_str()))
            .collect::<Vec<_>>(),
        [("config-1", "migration"), (api.id.as_str(), "known gap")]
    );
    assert_eq!(listed[1].created_by, "ana");

    p.alerts
        .observe(&events, &all(&events, Fail, "0 rows"), t)
        .await
        .unwrap();
    let orders_results = [
        result(&orders, "row_count", None, Fail, Some(0.0), "0 rows"),
        result(
            &orders,
            "unique_order_id",
            None,
            Fail,
            Some(2.0),
            "2 duplicates",
        ),
    ];
    p.alerts.observe(&orders, &orders_results, t).await.unwrap();
    assert_eq!(p.alerts.flush(plus(t, 30)).await.unwrap(), 1);
    p.start_dispatcher();
    let first = slack.wait_for(1, WAIT).await[0].json();
    assert_eq!(first["blocks"][0]["text"]["text"], "orders: 1 firing");
    assert!(
        first["text"]
            .as_str()
            .unwrap()
            .contains("orders.unique_order_id")
    );
    let firing = p.alerts.firing(plus(t, 30)).await.unwrap();
    let silenced: Vec<(&str, bool)> = firing
        .iter()
        .map(|f| (f.alert.key.as_str(), f.silenced))
        .collect();
    assert_eq!(
        silenced,
        [
            ("events.freshness_event_time", true),
            ("events.row_count", true),
            ("orders.row_count", true),
            ("orders.unique_order_id", false),
        ]
    );

    // Silences from the file are changed in the file; unknown ids are 404s.
    assert!(matches!(
        p.alerts.expire_silence("config-1", t, &Caller::Open).await,
        Err(SilenceError::InConfig(_))
    ));
    assert!(matches!(
        p.alerts
            .expire_silence("no-such-silence", t, &Caller::Open)
            .await,
        Err(SilenceError::NotFound(_))
    ));
    assert!(matches!(
        p.alerts
            .create_silence(&json!({"matchers": {}}), t, &Caller::Open)
            .await,
        Err(SilenceError::Invalid(errors)) if errors.iter().any(|e| e.field == "matchers")
    ));

    // Expiring the API silence lets its alert through.
    let expired = p
        .alerts
        .expire_silence(&api.id, plus(t, 60), &Caller::Open)
        .await
        .unwrap();
    assert_eq!(expired.ends_at, plus(t, 60));
    assert_eq!(expired.ended_by.as_deref(), Some("anonymous"));
    assert_eq!(p.alerts.flush(plus(t, 61)).await.unwrap(), 1);
    let second = slack.wait_for(2, WAIT).await[1].json();
    assert!(
        second["text"]
            .as_str()
            .unwrap()
            .contains("orders.row_count failed")
    );
    // The file's silence ends: events, still firing, are sent.
    assert_eq!(p.alerts.flush(plus(t, 3599)).await.unwrap(), 0);
    assert_eq!(p.alerts.flush(plus(t, 3600)).await.unwrap(), 1);
    let third = slack.wait_for(3, WAIT).await[2].json();
    assert_eq!(third["blocks"][0]["text"]["text"], "events: 2 firing");
    assert!(p.alerts.silences(plus(t, 3600)).await.unwrap().is_empty());
    p.stop().await;
}

on_both_engines!(silence_durations_too_long_for_a_timestamp_are_a_400);

/// `POST /api/v1/silences` with a duration too long to add to a timestamp is
/// a 400 naming the field (it used to panic the request's task); the longest
/// accepted one is stored.
async fn silence_durations_too_long_for_a_timestamp_are_a_400(db: &TestRegistry) {
    use axum::body::Body;
    use axum::http::{Request, header};
    use tower::ServiceExt;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.yaml");
    std::fs::write(
        &config,
        "warehouses:\n  main:\n    url: sqlite://warehouse.db\n",
    )
    .unwrap();
    let config = std::sync::Arc::new(warden::config::load(&config).unwrap().config);
    let registry = Registry::open(&db.url).await.unwrap();
    let state = warden::app::AppState::builder(config, registry)
        .ready(true)
        .build();
    let post = |duration: &str| {
        let body = json!({"matchers": {"dataset": "orders"}, "duration": duration,
                          "created_by": "ana"});
        let request = Request::post("/api/v1/silences")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let app = warden::http::router(state.clone());
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, serde_json::from_slice::<Value>(&body).unwrap())
        }
    };
    for huge in ["300000y", "101y", "99999999999999999999999s"] {
        let (status, body) = post(huge).await;
        assert_eq!(status, 400, "{huge}: {body}");
        assert_eq!(
            body["detail"],
            format!("duration: `{huge}` is too long; a duration is at most 100y"),
            "{body}"
        );
    }
    let (status, body) = post("100y").await;
    assert_eq!(status, 201, "{body}");
    let stored = db.registry.silences(Utc::now()).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, body["id"].as_str().unwrap());
    assert_eq!(
        stored[0].ends_at - stored[0].starts_at,
        chrono::Duration::days(36_525)
    );
}

async fn a_warehouse_down_raises_one_alert_and_holds_back_its_errors(db: &TestRegistry) {
    let slack = TestReceiver::ok(200).await;
    let mut p = Project::new(db, &slack_route(&slack.url, POLICY));
    let (orders, events) = (p.ds("orders"), p.ds("events"));
    let t = t0();
    p.alerts
        .warehouse_down(&p.config, "main", "connection refused", t)
        .await
        .unwrap();
    p.alerts
        .observe(&orders, &all(&orders, Error, "connection refused"), t)
        .await
        .unwrap();
    p.alerts
        .observe(&events, &all(&events, Error, "connection refused"), t)
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 30)).await.unwrap(), 1);
    p.start_dispatcher();
    let down = slack.wait_for(1, WAIT).await[0].json();
    assert_eq!(
        down["blocks"][0]["text"]["text"],
        "warehouse main: 1 firing"
    );
    assert_eq!(
        down["text"],
        "warehouse main: 1 firing\n[FIRING] warehouse main is down: connection refused \
         (3 datasets cannot be checked: orders, events, daily_sales)"
    );
    let fields: Vec<&str> = down["blocks"][1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"*Severity*\nerror"), "{fields:?}");
    assert!(
        fields.contains(&"*Tier*\n1"),
        "the most urgent dataset's tier"
    );

    // Back up: the warehouse alert resolves; the errors it caused stay held
    // back until their checks run again.
    p.alerts
        .warehouse_up(&p.config, "main", plus(t, 60))
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 90)).await.unwrap(), 1);
    let up = slack.wait_for(2, WAIT).await[1].json();
    assert_eq!(
        up["blocks"][0]["text"]["text"],
        "warehouse main: 1 resolved"
    );
    p.alerts
        .observe(&orders, &all(&orders, Pass, "fine"), plus(t, 120))
        .await
        .unwrap();
    // A check that still errors once the warehouse answers is its own problem.
    let missing = result(
        &events,
        "row_count",
        None,
        Error,
        None,
        "table events is missing",
    );
    p.alerts
        .observe(&events, &[missing], plus(t, 120))
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 150)).await.unwrap(), 1);
    let third = slack.wait_for(3, WAIT).await[2].json();
    assert_eq!(third["blocks"][0]["text"]["text"], "events: 1 firing");
    assert!(
        third["text"]
            .as_str()
            .unwrap()
            .contains("events.row_count could not be evaluated: table events is missing")
    );
    assert_eq!(p.alerts.flush(plus(t, 400)).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.received().len(), 3);
    p.stop().await;
}

async fn a_quarantined_partition_alerts_the_datasets_owner(db: &TestRegistry) {
    let hook = TestReceiver::ok(204).await;
    let routes = format!(
        "receivers:\n  revenue: {{ webhook: {{ url: \"{}/hook\" }} }}\n\
         routes:\n  - match: {{ owner: revenue-team, kind: quarantine }}\n    receivers: [revenue]\n{POLICY}",
        hook.url
    );
    let mut p = Project::new(db, &routes);
    let orders = p.ds("orders");
    let t = t0();
    let reasons = vec!["orders.row_count failed: 0 rows (min 1)".to_owned()];
    p.alerts
        .quarantined(&orders, "2026-11-20", "gate-42", &reasons, t)
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 30)).await.unwrap(), 1);
    p.start_dispatcher();
    let body = hook.wait_for(1, WAIT).await[0].json();
    assert!(
        hook.received()[0]
            .header(webhook::SIGNATURE_HEADER)
            .is_none()
    );
    let alert = &body["alerts"][0];
    assert_eq!(alert["key"], "quarantine:orders");
    assert_eq!(alert["dedup_key"], "warden/orders/quarantine/2026-11-20");
    assert_eq!(
        alert["labels"],
        json!({"kind": "quarantine", "dataset": "orders", "partition": "2026-11-20",
               "warehouse": "main", "tier": 1, "owner": "revenue-team", "severity": "critical"})
    );
    assert_eq!(alert["annotations"]["gate_id"], "gate-42");
    assert_eq!(alert["annotations"]["reasons"], json!(reasons));
    assert_eq!(
        alert["annotations"]["summary"],
        "orders partition 2026-11-20 is quarantined by gate gate-42 (revenue-team to review): \
         orders.row_count failed: 0 rows (min 1)"
    );
    p.alerts
        .released(&orders, "2026-11-20", plus(t, 60))
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 90)).await.unwrap(), 1);
    let resolved = hook.wait_for(2, WAIT).await[1].json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["ends_at"], json!(plus(t, 60)));
    p.stop().await;
}

async fn tier_3_alerts_arrive_as_one_email_digest(db: &TestRegistry) {
    let sink = SmtpSink::start().await;
    let routes = format!(
        "receivers:\n  digest: {{ email: {{ smtp: \"{}\", from: warden@example.com, to: [data@example.com, Finance <finance@example.com>] }} }}\n\
         routes:\n  - match: {{ tier: 3 }}\n    receivers: [digest]\n    digest: \"0 8 * * *\"\n{POLICY}",
        sink.url()
    );
    let mut p = Project::new(db, &routes);
    let sales = p.ds("daily_sales");
    let day = Utc.with_ymd_and_hms(2026, 11, 21, 7, 0, 0).unwrap();
    // The first flush starts the first period.
    assert_eq!(p.alerts.flush(day).await.unwrap(), 0);
    p.alerts
        .observe(
            &sales,
            &all(&sales, Fail, "bad & late <data>"),
            plus(day, 600),
        )
        .await
        .unwrap();
    // One alert fires and resolves within the period: it is reported too.
    let fixed = result(&sales, "row_count", None, Pass, Some(5.0), "5 rows");
    p.alerts
        .observe(&sales, &[fixed], plus(day, 1200))
        .await
        .unwrap();
    for minute in [11, 30, 59] {
        assert_eq!(p.alerts.flush(plus(day, minute * 60)).await.unwrap(), 0);
    }
    assert_eq!(p.alerts.flush(plus(day, 3600)).await.unwrap(), 1);
    assert_eq!(
        p.alerts.flush(plus(day, 3660)).await.unwrap(),
        0,
        "once per schedule"
    );
    p.start_dispatcher();
    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.from, "<warden@example.com>");
    assert_eq!(mail.to, ["<data@example.com>", "<finance@example.com>"]);
    assert_eq!(
        mail.header("Subject").unwrap(),
        "[warden] warden digest since 2026-11-21 07:00 UTC: 2 firing, 1 resolved"
    );
    assert!(
        mail.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );
    let text = mail.part("text/plain").expect("a plain-text part");
    let html = mail.part("text/html").expect("an HTML part");
    for check in [
        "daily_sales.null_rate_region",
        "daily_sales.freshness_sale_date",
    ] {
        assert!(
            text.contains(&format!(
                "- {check} [critical]: {check} failed: bad & late <data>"
            )),
            "{text}"
        );
        assert!(html.contains(&format!("<td>{check}</td>")), "{html}");
    }
    assert!(text.contains("Resolved\n========\n- daily_sales.row_count [critical]: daily_sales.row_count passes again: 5 rows"), "{text}");
    assert!(
        html.contains("bad &amp; late &lt;data&gt;"),
        "HTML is escaped: {html}"
    );
    assert!(text.contains(&format!("Status page: {STATUS_URL}")));

    // The next day's digest lists what still fires.
    assert_eq!(p.alerts.flush(plus(day, 86_400 + 3599)).await.unwrap(), 0);
    assert_eq!(p.alerts.flush(plus(day, 86_400 + 3600)).await.unwrap(), 1);
    let second = sink.wait_for(2, WAIT).await.remove(1);
    assert_eq!(
        second.header("Subject").unwrap(),
        "[warden] warden digest since 2026-11-21 08:00 UTC: 2 firing"
    );
    p.stop().await;
}

async fn pending_notifications_are_delivered_after_a_restart(db: &TestRegistry) {
    let pd = TestReceiver::ok(503).await;
    let slack = TestReceiver::ok(503).await;
    let routes = format!(
        "receivers:\n  oncall: {{ pagerduty: {{ routing_key: k, url: \"{}/v2/enqueue\" }} }}\n  chat: {{ slack: {{ webhook_url: \"{}/hook\" }} }}\n\
         routes:\n  - match: {{ tier: 1 }}\n    receivers: [oncall, chat]\n{POLICY}",
        pd.url, slack.url
    );
    let t = t0();
    {
        let mut before = Project::new(db, &routes);
        let orders = before.ds("orders");
        let results = [
            result(&orders, "row_count", None, Fail, Some(0.0), "0 rows"),
            result(
                &orders,
                "unique_order_id",
                None,
                Fail,
                Some(3.0),
                "3 duplicates",
            ),
        ];
        before.alerts.observe(&orders, &results, t).await.unwrap();
        assert_eq!(before.alerts.flush(plus(t, 30)).await.unwrap(), 3);
        before.start_dispatcher();
        pd.wait_for(2, WAIT).await;
        slack.wait_for(1, WAIT).await;
        assert_eq!(
            before.metric("warden_outbox_pending{receiver=\"oncall\"}"),
            Some(2.0)
        );
        assert_eq!(
            before.metric("warden_outbox_pending{receiver=\"chat\"}"),
            Some(1.0)
        );
        // The agent dies with everything still pending.
        before.kill();
    }
    pd.set_default(Reply::Status(202));
    slack.set_default(Reply::Status(200));

    let mut after = Project::new(db, &routes);
    // Nothing is queued twice: the alerts were marked when first queued.
    assert_eq!(after.alerts.flush(plus(t, 60)).await.unwrap(), 0);
    after.start_dispatcher();
    let deadline = Instant::now() + WAIT;
    while pd.accepted().len() < 2 || slack.accepted().is_empty() {
        assert!(Instant::now() < deadline, "delivered after the restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let incidents: Vec<String> = pd
        .accepted()
        .iter()
        .map(|r| r.json()["dedup_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        incidents
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        2,
        "one PagerDuty incident per failing check: {incidents:?}"
    );
    assert_eq!(incidents.len(), 2, "no event accepted twice");
    assert_eq!(slack.accepted().len(), 1, "one Slack message");
    // Every Slack attempt carried the same message.
    let bodies: std::collections::BTreeSet<Vec<u8>> =
        slack.received().iter().map(|r| r.body.to_vec()).collect();
    assert_eq!(bodies.len(), 1);
    assert!(
        after
            .registry
            .outbox_entries(OutboxStatus::Pending, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        after.metric("warden_outbox_pending{receiver=\"oncall\"}"),
        Some(0.0)
    );
    assert_eq!(
        after.metric("warden_notifications_total{receiver=\"oncall\",result=\"delivered\"}"),
        Some(2.0)
    );
    after.stop().await;
}

async fn agents_flushing_together_notify_once(db: &TestRegistry) {
    let slack = TestReceiver::ok(200).await;
    let routes = slack_route(&slack.url, POLICY);
    let a = Project::new(db, &routes);
    // A second agent with its own connections to the same registry.
    let other = Registry::open(&db.url).await.unwrap();
    let b = Project::new(&other, &routes);
    let events = a.ds("events");
    let t = t0();
    a.alerts
        .observe(&events, &all(&events, Fail, "0 rows"), t)
        .await
        .unwrap();
    let mut queued = 0;
    for round in 0..5 {
        let at = plus(t, 30 + round);
        let (x, y) = tokio::join!(a.alerts.flush(at), b.alerts.flush(at));
        queued += x.unwrap() + y.unwrap();
    }
    assert_eq!(queued, 1);
    assert_eq!(outbox_len(&db.registry).await, 1);
    other.close().await;
}

async fn alerts_of_checks_that_leave_the_configuration_resolve(db: &TestRegistry) {
    let slack = TestReceiver::ok(200).await;
    let policy = POLICY.replace("consecutive_failures: 1", "consecutive_failures: 2");
    let mut p = Project::new(db, &slack_route(&slack.url, &policy));
    let orders = p.ds("orders");
    let t = t0();
    let firing = result(&orders, "row_count", None, Fail, Some(0.0), "0 rows");
    let pending = result(
        &orders,
        "unique_order_id",
        None,
        Fail,
        Some(1.0),
        "1 duplicate",
    );
    p.alerts
        .observe(&orders, &[firing.clone(), pending], t)
        .await
        .unwrap();
    p.alerts
        .observe(&orders, std::slice::from_ref(&firing), plus(t, 60))
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 90)).await.unwrap(), 1);
    // A reload drops both checks.
    let mut config = p.config.clone();
    let ds = config
        .datasets
        .iter_mut()
        .find(|d| d.name.as_str() == "orders")
        .unwrap();
    ds.checks
        .retain(|c| c.name != "row_count" && c.name != "unique_order_id");
    p.alerts.retain(&config, plus(t, 120)).await.unwrap();
    let gone = p
        .registry
        .alert("orders.row_count", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        gone.state,
        AlertState::Resolved,
        "receivers hear it resolved"
    );
    assert!(
        p.registry
            .alert("orders.unique_order_id", None)
            .await
            .unwrap()
            .is_none(),
        "a pending alert nobody heard of is forgotten"
    );
    assert_eq!(p.alerts.flush(plus(t, 150)).await.unwrap(), 1);
    p.start_dispatcher();
    let got = slack.wait_for(2, WAIT).await;
    assert!(
        got[1].json()["text"]
            .as_str()
            .unwrap()
            .contains("orders.row_count was removed from the configuration"),
        "{}",
        got[1].json()
    );
    p.stop().await;
}

// ----------------------------------------------------------- SQLite only

/// A registry for cases about delivery, where the engine does not matter.
async fn sqlite() -> TestRegistry {
    TestRegistry::sqlite().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_bodies_follow_the_schema_and_are_signed() {
    let db = sqlite().await;
    let hook = TestReceiver::ok(200).await;
    let routes = format!(
        "receivers:\n  signed: {{ webhook: {{ url: \"{0}/signed\", hmac_secret: s3cret }} }}\n  plain: {{ webhook: {{ url: \"{0}/plain\", hmac_secret: \"\" }} }}\n\
         routes:\n  - match: {{ tier: 2 }}\n    receivers: [signed, plain]\n{POLICY}",
        hook.url
    );
    let mut p = Project::new(&db, &routes);
    let events = p.ds("events");
    let t = t0();
    let r = result(
        &events,
        "row_count",
        None,
        Fail,
        Some(0.0),
        "0 rows (min 1)",
    );
    p.alerts.observe(&events, &[r], t).await.unwrap();
    assert_eq!(p.alerts.flush(plus(t, 30)).await.unwrap(), 2);
    p.start_dispatcher();
    let got = hook.wait_for(2, WAIT).await;
    let signed = got.iter().find(|r| r.path == "/signed").unwrap();
    let plain = got.iter().find(|r| r.path == "/plain").unwrap();
    let signature = signed.header(webhook::SIGNATURE_HEADER).unwrap();
    assert!(signature.starts_with("t="), "{signature}");
    let now = Utc::now().timestamp();
    let verify =
        |secret: &[u8]| webhook::verify(secret, &signed.body, &signature, now, webhook::TOLERANCE);
    assert!(verify(b"s3cret").is_ok());
    assert_eq!(verify(b"wrong"), Err(webhook::SignatureError::Mismatch));
    assert!(plain.header(webhook::SIGNATURE_HEADER).is_none());
    assert_eq!(signed.header("content-type").unwrap(), "application/json");

    let body = signed.json();
    assert_eq!(body["version"], "1");
    let id = signed.header(NOTIFICATION_ID_HEADER).unwrap();
    assert_eq!(body["id"], id.as_str());
    assert!(id.parse::<i64>().is_ok(), "{id}");
    assert_eq!(
        plain.json()["id"],
        plain.header(NOTIFICATION_ID_HEADER).unwrap()
    );
    assert_eq!(body["receiver"], "signed");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["group"], "events");
    assert_eq!(body["title"], "events: 1 firing");
    assert_eq!(body["digest"], Value::Null);
    assert_eq!(body["status_url"], STATUS_URL);
    assert_eq!(body["sent_at"], json!(plus(t, 30)));
    let alert = &body["alerts"][0];
    assert_eq!(
        alert,
        &json!({
            "key": "events.row_count",
            "dedup_key": "warden/events.row_count",
            "status": "firing",
            "labels": {"kind": "row_count", "check": "events.row_count", "dataset": "events",
                       "warehouse": "main", "tier": 2, "owner": "growth-team", "severity": "critical"},
            "annotations": {"summary": "events.row_count failed: 0 rows (min 1)",
                            "message": "0 rows (min 1)", "outcome": "fail", "observed": 0.0,
                            "threshold": {"min": 1}},
            "starts_at": t,
            "ends_at": null,
        })
    );
    assert_eq!(plain.json()["receiver"], "plain");
    p.stop().await;
}

/// Observes a failing check and queues its notification for `chat`.
async fn queue_one(p: &Project) {
    let events = p.ds("events");
    let t = t0();
    let r = result(&events, "row_count", None, Fail, Some(0.0), "0 rows");
    p.alerts.observe(&events, &[r], t).await.unwrap();
    assert_eq!(p.alerts.flush(plus(t, 30)).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_500_then_200_gets_one_message() {
    let db = sqlite().await;
    let slack = TestReceiver::start(&[Reply::Status(500)], Reply::Status(200)).await;
    let mut p = Project::new(&db, &slack_route(&slack.url, POLICY));
    queue_one(&p).await;
    p.start_dispatcher();
    let got = slack.wait_for(2, WAIT).await;
    assert_eq!(got[0].status, 500);
    assert_eq!(got[1].status, 200);
    assert_eq!(got[0].body, got[1].body, "the retry sends the same message");
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(50), "backed off {gap:?}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(slack.received().len(), 2);
    let delivered = db
        .outbox_entries(OutboxStatus::Delivered, 10)
        .await
        .unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].attempts, 2);
    assert_eq!(
        p.metric("warden_notifications_total{receiver=\"chat\",result=\"retry\"}"),
        Some(1.0)
    );
    assert_eq!(
        p.metric("warden_notifications_total{receiver=\"chat\",result=\"delivered\"}"),
        Some(1.0)
    );
    assert_eq!(
        p.metric("warden_outbox_pending{receiver=\"chat\"}"),
        Some(0.0)
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_its_retry_after() {
    let db = sqlite().await;
    let slack = TestReceiver::start(&[Reply::RetryAfter(2)], Reply::Status(200)).await;
    let mut p = Project::new(&db, &slack_route(&slack.url, POLICY));
    queue_one(&p).await;
    p.start_dispatcher();
    let got = slack.wait_for(2, WAIT).await;
    assert_eq!((got[0].status, got[1].status), (429, 200));
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1950) && gap < Duration::from_secs(4),
        "Retry-After: 2 honoured, waited {gap:?}"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_4xx_are_permanent_and_go_to_the_dead_letter_list() {
    let db = sqlite().await;
    let slack = TestReceiver::ok(404).await;
    let mut p = Project::new(&db, &slack_route(&slack.url, POLICY));
    queue_one(&p).await;
    p.start_dispatcher();
    slack.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(slack.received().len(), 1, "not retried");
    let dead = p.alerts.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].receiver, "chat");
    assert_eq!(dead[0].status, OutboxStatus::Dead);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 404"));
    assert_eq!(
        p.metric("warden_notifications_total{receiver=\"chat\",result=\"dead\"}"),
        Some(1.0)
    );
    assert_eq!(
        p.metric("warden_outbox_pending{receiver=\"chat\"}"),
        Some(0.0)
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_given_up_after_their_maximum_age() {
    let db = sqlite().await;
    let slack = TestReceiver::ok(500).await;
    let policy = POLICY.replace("max_age: 1h", "max_age: 1s");
    let mut p = Project::new(&db, &slack_route(&slack.url, &policy));
    queue_one(&p).await;
    p.start_dispatcher();
    let deadline = Instant::now() + WAIT;
    let dead = loop {
        let dead = p.alerts.dead_letters(10).await.unwrap();
        if !dead.is_empty() {
            break dead;
        }
        assert!(Instant::now() < deadline, "given up in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let error = dead[0].last_error.clone().unwrap();
    assert!(error.starts_with("gave up after 1s and "), "{error}");
    assert!(error.ends_with("attempts: HTTP 500"), "{error}");
    assert!(slack.received().len() >= 2, "retried before giving up");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_never_delays_the_others() {
    let db = sqlite().await;
    let hanging = TestReceiver::ok(200).await;
    hanging.set_default(Reply::Slow(Duration::from_secs(30), 200));
    let slack = TestReceiver::ok(200).await;
    let refused = refused_url().await;
    let routes = format!(
        "receivers:\n  oncall: {{ pagerduty: {{ routing_key: k, url: \"{}/v2/enqueue\" }} }}\n  \
         down: {{ webhook: {{ url: \"{refused}/hook\" }} }}\n  chat: {{ slack: {{ webhook_url: \"{}/hook\" }} }}\n\
         routes:\n  - match: {{}}\n    receivers: [oncall, down, chat]\n{POLICY}",
        hanging.url, slack.url
    );
    let mut p = Project::new(&db, &routes);
    let orders = p.ds("orders");
    let t = t0();
    // Several notifications for each receiver.
    for (i, name) in ["row_count", "unique_order_id", "null_rate_customer_id"]
        .iter()
        .enumerate()
    {
        let at = plus(t, i as i64 * 100);
        let r = result(&orders, name, None, Fail, Some(1.0), "bad");
        p.alerts.observe(&orders, &[r], at).await.unwrap();
        p.alerts.flush(plus(at, 30)).await.unwrap();
    }
    let started = Instant::now();
    p.start_dispatcher();
    slack.wait_for(3, WAIT).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "Slack waited {:?} for the others",
        started.elapsed()
    );
    assert!(
        hanging.received().len() <= 1,
        "one attempt hangs, the rest wait behind it"
    );
    let pending: BTreeMap<String, i64> = db
        .pending_by_receiver()
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(pending.get("oncall"), Some(&3));
    assert_eq!(pending.get("down"), Some(&3));
    assert_eq!(pending.get("chat"), None);
    p.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timer_flushes_and_the_dispatcher_delivers_on_their_own() {
    let db = sqlite().await;
    let slack = TestReceiver::ok(200).await;
    let policy = POLICY.replace("group_wait: 30s", "group_wait: 300ms");
    let mut p = Project::new(&db, &slack_route(&slack.url, &policy));
    p.start_timer();
    p.start_dispatcher();
    let orders = p.ds("orders");
    let started = Instant::now();
    p.alerts
        .observe(&orders, &all(&orders, Fail, "bad"), chrono::Utc::now())
        .await
        .unwrap();
    let got = slack.wait_for(1, WAIT).await;
    assert!(
        got[0].at - started >= Duration::from_millis(250),
        "group_wait held"
    );
    assert_eq!(
        got[0].json()["blocks"][0]["text"]["text"],
        "orders: 5 firing"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(slack.received().len(), 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_for_a_receiver_no_longer_configured_is_dead_lettered() {
    let db = sqlite().await;
    let slack = TestReceiver::ok(503).await;
    let p = Project::new(&db, &slack_route(&slack.url, POLICY));
    queue_one(&p).await;
    drop(p);
    // The receiver was renamed in the routes file.
    let renamed = slack_route(&slack.url, POLICY).replace("chat", "team-chat");
    let mut p = Project::new(&db, &renamed);
    p.start_dispatcher();
    let deadline = Instant::now() + WAIT;
    while p.alerts.dead_letters(10).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = p.alerts.dead_letters(10).await.unwrap();
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("receiver `chat` is not configured any more")
    );
    assert!(slack.received().is_empty());
    p.stop().await;
}

#[test]
fn a_broken_routes_file_is_a_config_error_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("alerts")).unwrap();
    std::fs::write(
        dir.path().join("warden.yaml"),
        "warehouses:\n  main: { url: sqlite://w.db }\nalerts: alerts/routes.yaml\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("alerts/routes.yaml"),
        "receivers:\n  chat: { slack: { webhook_url: ${SLACK_URL} } }\nroutes:\n  - match: { tier: 4 }\n    receivers: [chta]\n",
    )
    .unwrap();
    let config = dir.path().join("warden.yaml");
    let err = warden::config::load_with_env(&config, &|_| None).unwrap_err();
    let routes = dir.path().join("alerts/routes.yaml");
    let routes = routes.display();
    assert_eq!(
        err.to_string(),
        format!("{routes}:2:33: environment variable SLACK_URL is not set")
    );
    let env = |name: &str| (name == "SLACK_URL").then(|| "https://hooks.example/x".to_owned());
    let problems: Vec<String> = warden::config::validate_all(&config, &env)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        [
            format!(
                "{routes}:4:20: `tier`: `4` is not a tier; expected 1 (page), 2 (chat) or 3 (digest)"
            ),
            format!("{routes}:5:17: `receivers`: unknown receiver `chta`; did you mean `chat`?"),
        ]
    );

    // `warden validate` reports them and exits 2.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["validate", "--config"])
        .arg(&config)
        .env("SLACK_URL", "https://hooks.example/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{routes}:5:17: `receivers`: unknown receiver `chta`"
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_routes_log_every_alert() {
    let dir = tempfile::tempdir().unwrap();
    let files = warden::demo::create(dir.path(), Utc::now()).await.unwrap();
    let config = warden::config::load(&files.config).unwrap().config;
    assert_eq!(
        config.routes.receivers.keys().collect::<Vec<_>>(),
        ["console"]
    );
    let db = sqlite().await;
    let alerts = AlertManager::new(
        config.routes.clone(),
        db.registry.clone(),
        std::sync::Arc::new(warden::metrics::Metrics::new()),
        None,
    );
    let orders = config.dataset("orders").unwrap();
    let t = t0();
    alerts
        .observe(orders, &all(orders, Fail, "bad"), t)
        .await
        .unwrap();
    // One log line per alert.
    assert_eq!(
        alerts.flush(plus(t, 10)).await.unwrap(),
        orders.checks.len()
    );
    let dispatcher = alerts.dispatcher();
    for _ in 0..orders.checks.len() {
        assert!(matches!(
            dispatcher.deliver_next("console").await.unwrap(),
            Some(warden::alert::Attempt::Delivered { .. })
        ));
    }
    assert_eq!(dispatcher.deliver_next("console").await.unwrap(), None);
}

// ------------------------------------------------------ real Alertmanager

/// `prometheus-alertmanager` (Debian's package) on a free port, with its own
/// configuration and storage; killed when dropped.
struct RealAlertmanager {
    url: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl RealAlertmanager {
    /// `None` (with a note) when the binary is missing and
    /// `WARDEN_TEST_ALERTMANAGER` is unset; a panic when it is set and the
    /// binary is missing or does not start.
    async fn start() -> Option<Self> {
        let binary = ALERTMANAGER.find()?;
        AMTOOL.find()?;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
        )
        .unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = std::process::Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let am = Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = client.get(format!("{}/-/ready", am.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Some(am);
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `amtool alert query` as JSON: the active alerts.
    fn query(&self) -> Vec<Value> {
        let out = std::process::Command::new("amtool")
            .args(["alert", "query", "-o", "json"])
            .arg(format!("--alertmanager.url={}", self.url))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for RealAlertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_receives_the_alerts_and_sees_them_resolve() {
    let Some(am) = RealAlertmanager::start().await else {
        return;
    };
    let db = sqlite().await;
    let routes = format!(
        "receivers:\n  am: {{ alertmanager: {{ url: \"{}\", resend_interval: 1s }} }}\n\
         routes:\n  - match: {{}}\n    receivers: [am]\n{}",
        am.url,
        POLICY.replace("group_wait: 30s", "group_wait: 0s")
    );
    let mut p = Project::new(&db, &routes);
    let orders = p.ds("orders");
    let now = Utc::now();
    let results = [
        result(
            &orders,
            "row_count",
            Some("2026-11-20"),
            Fail,
            Some(0.0),
            "0 rows (min 1)",
        ),
        result(
            &orders,
            "freshness_updated_at",
            None,
            Error,
            None,
            "table orders is missing",
        ),
    ];
    p.alerts.observe(&orders, &results, now).await.unwrap();
    p.start_timer();
    p.start_dispatcher();

    let deadline = Instant::now() + WAIT;
    let active = loop {
        let active = am.query();
        if active.len() == 2 {
            break active;
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager lists both alerts: {active:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let failing = active
        .iter()
        .find(|a| a["labels"]["alertname"] == "WardenCheckFailing")
        .expect("the failing check");
    let labels = &failing["labels"];
    assert_eq!(labels["check"], "orders.row_count");
    assert_eq!(labels["dataset"], "orders");
    assert_eq!(labels["partition"], "2026-11-20");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["tier"], "1");
    assert_eq!(labels["owner"], "revenue-team");
    assert_eq!(
        failing["annotations"]["summary"],
        "orders.row_count failed on partition 2026-11-20: 0 rows (min 1)"
    );
    assert_eq!(
        failing["annotations"]["runbook_url"],
        "https://wiki.example/orders"
    );
    assert_eq!(failing["generatorURL"], STATUS_URL);
    let error = active
        .iter()
        .find(|a| a["labels"]["alertname"] == "WardenCheckError")
        .expect("the check in error");
    assert_eq!(error["labels"]["severity"], "error");

    // Re-sent while firing: still active well after the first endsAt (4s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(am.query().len(), 2, "kept firing by resends");

    // Both pass: Alertmanager sees them resolve.
    let passing = [
        result(
            &orders,
            "row_count",
            Some("2026-11-20"),
            Pass,
            Some(7.0),
            "7 rows",
        ),
        result(
            &orders,
            "freshness_updated_at",
            None,
            Pass,
            Some(1.0),
            "fresh",
        ),
    ];
    p.alerts
        .observe(&orders, &passing, Utc::now())
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while !am.query().is_empty() {
        assert!(Instant::now() < deadline, "Alertmanager sees them resolve");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.stop().await;
}

// ------------------------------------------------- the agent, killed and restarted

/// The real `warden run` finds two failing checks and queues their
/// notifications while PagerDuty and Slack answer 503; it is killed
/// (SIGKILL) with them pending; started again once the receivers are back,
/// it delivers them: one PagerDuty incident per failing check and one Slack
/// message, with nothing queued twice. The API and the status page show the
/// firing alerts, and silences are managed over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_killed_with_notifications_pending_delivers_them_after_a_restart() {
    use crate::support::agent::{
        AgentProcess, Project as AgentProject, eventually, get_json, get_text, sample,
    };

    let pd = TestReceiver::ok(503).await;
    let slack = TestReceiver::ok(503).await;
    let project = AgentProject::new();
    project.write(
        "warden.yaml",
        "agent:\n  registry: sqlite://warden.db\nwarehouses:\n  main:\n    url: sqlite://warehouse.db\n\
         checks: [checks/*.yaml]\nalerts: routes.yaml\n",
    );
    project.write(
        "checks/orders.yaml",
        r#"datasets:
  - name: orders
    warehouse: main
    table: orders
    tier: 1
    owner: revenue-team
    runbook: https://wiki.example/orders
    schedule: "* * * * *"
    checks:
      - row_count: { min: 5 }
      - null_rate: { column: customer_id, max: 0 }
      - unique: { columns: [order_id] }
"#,
    );
    project.write(
        "routes.yaml",
        &format!(
            "receivers:\n  oncall: {{ pagerduty: {{ routing_key: key-1, url: \"{}/v2/enqueue\" }} }}\n  \
             chat: {{ slack: {{ webhook_url: \"{}/hook\" }} }}\n\
             routes:\n  - match: {{ tier: 1 }}\n    receivers: [oncall, chat]\n\
             policy:\n  group_wait: 1s\n  repeat_interval: 4h\n  \
             delivery: {{ timeout: 2s, initial_backoff: 200ms, max_backoff: 1s, max_age: 1h }}\n",
            pd.url, slack.url
        ),
    );
    let warehouse = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=rwc",
        project.path("warehouse.db").display()
    ))
    .await
    .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE orders (order_id INTEGER, customer_id INTEGER);
         INSERT INTO orders VALUES (1, 10), (2, NULL);",
    )
    .execute(&warehouse)
    .await
    .unwrap();
    warehouse.close().await;

    let mut agent = AgentProcess::start(&project.config(), &[]);
    agent.wait_ready(Duration::from_secs(30)).await;
    // The first tick comes within a minute; its alerts are queued a second
    // later and their deliveries fail.
    eventually(
        Duration::from_secs(90),
        "attempts at both receivers",
        || async { (pd.received().len() >= 2 && !slack.received().is_empty()).then_some(()) },
    )
    .await;
    agent.signal("KILL");
    drop(agent);
    let registry = Registry::open(&format!("sqlite://{}", project.path("warden.db").display()))
        .await
        .unwrap();
    let pending: BTreeMap<String, i64> = registry
        .pending_by_receiver()
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(pending.get("oncall"), Some(&2), "{pending:?}");
    assert_eq!(pending.get("chat"), Some(&1), "{pending:?}");
    assert!(pd.accepted().is_empty() && slack.accepted().is_empty());

    pd.set_default(Reply::Status(202));
    slack.set_default(Reply::Status(200));
    let mut agent = AgentProcess::start(&project.config(), &[]);
    agent.wait_ready(Duration::from_secs(30)).await;
    let base = agent.base.clone();
    eventually(WAIT, "delivery after the restart", || async {
        (pd.accepted().len() >= 2 && !slack.accepted().is_empty()).then_some(())
    })
    .await;

    // The API lists both firing alerts, notified.
    let (status, body) = get_json(&format!("{base}/api/v1/alerts")).await;
    assert_eq!(status, 200, "{body}");
    let alerts = body["alerts"].as_array().unwrap();
    let keys: Vec<&str> = alerts.iter().map(|a| a["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["orders.null_rate_customer_id", "orders.row_count"]);
    assert!(
        alerts
            .iter()
            .all(|a| a["notified"] == true && a["silenced"] == false)
    );
    assert_eq!(alerts[1]["labels"]["severity"], "critical");

    // Silences over HTTP: field errors, create, list, expire.
    let client = reqwest::Client::new();
    let bad = client
        .post(format!("{base}/api/v1/silences"))
        .json(&json!({"matchers": {"tier": 7}, "duration": "1h", "created_by": "ana"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["error"], "bad request");
    assert_eq!(
        bad["detail"],
        "matchers.tier: `7` is not a tier; expected 1 (page), 2 (chat) or 3 (digest)"
    );
    let not_json = client
        .post(format!("{base}/api/v1/silences"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let created = client
        .post(format!("{base}/api/v1/silences"))
        .json(
            &json!({"matchers": {"check": "orders.row_count"}, "duration": "1h",
                      "created_by": "ana", "comment": "loading backlog"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["matchers"], json!({"check": ["orders.row_count"]}));
    assert_eq!(created["source"], "api");
    let (_, listed) = get_json(&format!("{base}/api/v1/silences")).await;
    assert_eq!(listed["silences"][0]["id"], id.as_str());
    let (_, body) = get_json(&format!("{base}/api/v1/alerts")).await;
    assert_eq!(body["alerts"][1]["silenced"], true);
    let (status, page) = get_text(&format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Firing alerts"), "{page}");
    assert!(page.contains("orders.null_rate_customer_id"));
    assert!(page.contains("loading backlog"), "the silence is listed");
    let expired = client
        .delete(format!("{base}/api/v1/silences/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 200);
    let gone = client
        .delete(format!("{base}/api/v1/silences/{id}-nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let (_, listed) = get_json(&format!("{base}/api/v1/silences")).await;
    assert_eq!(listed["silences"], json!([]));

    let (_, metrics) = get_text(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(&metrics, r#"warden_outbox_pending{receiver="oncall"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"warden_notifications_total{receiver="oncall",result="delivered"}"#
        ),
        Some(2.0)
    );
    let (_, dead) = get_json(&format!("{base}/api/v1/notifications/dead")).await;
    assert_eq!(dead["notifications"], json!([]));

    // Later ticks find the same failures: nothing is sent again before the
    // repeat interval.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let incidents: Vec<String> = pd
        .accepted()
        .iter()
        .map(|r| r.json())
        .inspect(|e| assert_eq!(e["event_action"], "trigger"))
        .map(|e| e["dedup_key"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = incidents.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "warden/orders.null_rate_customer_id",
            "warden/orders.row_count"
        ],
        "one PagerDuty incident per failing check"
    );
    assert_eq!(slack.accepted().len(), 1, "one Slack message");
    let bodies: std::collections::BTreeSet<Vec<u8>> =
        slack.received().iter().map(|r| r.body.to_vec()).collect();
    assert_eq!(
        bodies.len(),
        1,
        "Slack only ever got retries of one message"
    );
    let status = agent.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
}

fn pagerduty_and_webhook_routes(pd: &str, hook: &str, policy: &str) -> String {
    format!(
        "receivers:\n  oncall: {{ pagerduty: {{ routing_key: pd-key-1, url: \"{pd}/v2/enqueue\" }} }}\n\
         \x20 hook: {{ webhook: {{ url: \"{hook}/hook\" }} }}\n\
         routes:\n  - match: {{ tier: 1 }}\n    receivers: [oncall, hook]\n{policy}"
    )
}

/// `(event_action, dedup_key)` of each PagerDuty event received.
fn pagerduty_events(pd: &TestReceiver) -> Vec<(String, String)> {
    pd.received()
        .iter()
        .map(|r| {
            let b = r.json();
            (
                b["event_action"].as_str().unwrap().to_owned(),
                b["dedup_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn a_daily_check_has_one_alert_across_partitions(db: &TestRegistry) {
    let pd = TestReceiver::ok(202).await;
    let hook = TestReceiver::ok(204).await;
    let mut p = Project::new(
        db,
        &pagerduty_and_webhook_routes(&pd.url, &hook.url, POLICY),
    );
    let orders = p.ds("orders");
    let t = t0();
    let on = |day: &str, outcome, observed: f64| {
        result(
            &orders,
            "row_count",
            Some(day),
            outcome,
            Some(observed),
            &format!("{observed} rows (min 1)"),
        )
    };
    p.start_dispatcher();

    // 11-20 fails: one page.
    p.alerts
        .observe(&orders, &[on("2026-11-20", Fail, 0.0)], t)
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 30)).await.unwrap(), 2);
    pd.wait_for(1, WAIT).await;
    // The next day fails too: the same alert, now about 11-21, and no new page.
    p.alerts
        .observe(&orders, &[on("2026-11-21", Fail, 0.0)], plus(t, 60))
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 90)).await.unwrap(), 0);
    let alert = p
        .registry
        .alert("orders.row_count", None)
        .await
        .unwrap()
        .expect("one alert for the check");
    assert_eq!(alert.state, AlertState::Firing);
    assert_eq!(alert.partition.as_deref(), Some("2026-11-21"));
    assert_eq!(alert.consecutive_failures, 2);
    assert_eq!(alert.fired_at, Some(t), "still the episode of 11-20");
    let firing = p.alerts.firing(plus(t, 90)).await.unwrap();
    assert_eq!(firing.len(), 1);
    assert_eq!(
        firing[0].alert.labels.partition.as_deref(),
        Some("2026-11-21")
    );

    // A backfill of 11-10, failing or passing, records history but moves
    // nothing.
    for (i, outcome) in [Fail, Pass].into_iter().enumerate() {
        let at = plus(t, 100 + i as i64);
        p.alerts
            .observe(&orders, &[on("2026-11-10", outcome, 5.0)], at)
            .await
            .unwrap();
        assert_eq!(
            p.registry.alert("orders.row_count", None).await.unwrap(),
            Some(alert.clone()),
            "a backfill ({outcome:?}) leaves the alert as it was"
        );
        assert_eq!(p.alerts.flush(plus(at, 30)).await.unwrap(), 0);
    }

    // 11-22 passes: the alert resolves, saying which partition passes.
    p.alerts
        .observe(&orders, &[on("2026-11-22", Pass, 9.0)], plus(t, 120))
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 150)).await.unwrap(), 2);
    pd.wait_for(2, WAIT).await;
    let resolved = hook.wait_for(2, WAIT).await[1].json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(
        resolved["alerts"][0]["dedup_key"],
        "warden/orders.row_count"
    );
    let summary = resolved["alerts"][0]["annotations"]["summary"]
        .as_str()
        .unwrap();
    assert_eq!(
        summary,
        "orders.row_count passes again on partition 2026-11-22: 9 rows (min 1)"
    );
    // A backfill after the resolve does not raise it again either.
    p.alerts
        .observe(&orders, &[on("2026-11-15", Fail, 0.0)], plus(t, 200))
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 300)).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pagerduty_events(&pd),
        [
            ("trigger".to_owned(), "warden/orders.row_count".to_owned()),
            ("resolve".to_owned(), "warden/orders.row_count".to_owned()),
        ],
        "one page, one resolve"
    );
    p.stop().await;
}

async fn consecutive_failures_count_across_partitions(db: &TestRegistry) {
    let pd = TestReceiver::ok(202).await;
    let hook = TestReceiver::ok(204).await;
    let policy = POLICY.replace("consecutive_failures: 1", "consecutive_failures: 2");
    let mut p = Project::new(
        db,
        &pagerduty_and_webhook_routes(&pd.url, &hook.url, &policy),
    );
    let orders = p.ds("orders");
    let t = t0();
    let fail = |day: &str| {
        result(
            &orders,
            "row_count",
            Some(day),
            Fail,
            Some(0.0),
            "0 rows (min 1)",
        )
    };
    p.alerts
        .observe(&orders, &[fail("2026-11-20")], t)
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 30)).await.unwrap(), 0, "one failure");
    let pending = p.registry.alert("orders.row_count", None).await.unwrap();
    assert_eq!(pending.map(|a| a.state), Some(AlertState::Pending));
    // A second failing day: two in a row, it fires.
    p.alerts
        .observe(&orders, &[fail("2026-11-21")], plus(t, 60))
        .await
        .unwrap();
    let firing = p
        .registry
        .alert("orders.row_count", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (firing.state, firing.consecutive_failures),
        (AlertState::Firing, 2)
    );
    assert_eq!(p.alerts.flush(plus(t, 90)).await.unwrap(), 2);
    p.start_dispatcher();
    let got = pd.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["event_action"], "trigger");
    assert_eq!(got[0].json()["dedup_key"], "warden/orders.row_count");
    assert_eq!(
        got[0].json()["payload"]["custom_details"]["partition"],
        "2026-11-21"
    );
    p.stop().await;
}

/// Runs `sql` on the registry at `url` with `binds`, as an older warden
/// would have.
async fn raw(url: &str, sql: &str, binds: &[Raw]) {
    macro_rules! run {
        ($conn:expr) => {{
            let mut conn = $conn.await.expect("connect to the registry");
            let mut q = sqlx::query(sql);
            for b in binds {
                q = match b {
                    Raw::Text(s) => q.bind(s.clone()),
                    Raw::Int(n) => q.bind(*n),
                    Raw::Bool(v) => q.bind(*v),
                    Raw::At(t) => q.bind(*t),
                    Raw::NoTime => q.bind(None::<DateTime<Utc>>),
                    Raw::Json(v) => q.bind(sqlx::types::Json(v.clone())),
                };
            }
            q.execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }};
    }
    use sqlx::Connection;
    if url.starts_with("postgres") {
        run!(sqlx::PgConnection::connect(url));
    } else {
        run!(sqlx::SqliteConnection::connect(url));
    }
}

enum Raw {
    Text(String),
    Int(i64),
    Bool(bool),
    At(DateTime<Utc>),
    NoTime,
    Json(Value),
}

async fn open_alerts_of_the_old_keying_migrate_to_one_per_check(db: &TestRegistry) {
    // Back to the schema of migration 0003 (0004 only added a column).
    raw(
        &db.url,
        "ALTER TABLE alerts DROP COLUMN last_partition",
        &[],
    )
    .await;
    raw(
        &db.url,
        "DELETE FROM _sqlx_migrations WHERE description = 'alerts per check'",
        &[],
    )
    .await;
    // Old rows: a check firing on two partitions, one pending on the whole
    // relation, two quarantined partitions, a resolved warehouse.
    let t = t0();
    let hook = TestReceiver::ok(204).await;
    let routes = format!(
        "receivers:\n  hook: {{ webhook: {{ url: \"{}/hook\" }} }}\n\
         routes:\n  - match: {{}}\n    receivers: [hook]\n{POLICY}",
        hook.url
    );
    let old = Project::new(db, &routes);
    let orders = old.ds("orders");
    let details = |day: &str| {
        let mut d = warden::alert::manager::check_observation(
            &orders,
            &result(&orders, "row_count", Some(day), Fail, Some(0.0), "0 rows"),
        )
        .details;
        d.labels.partition = Some(day.to_owned());
        d.to_json()
    };
    let insert = "INSERT INTO alerts (check_id, partition_key, dataset, kind, state, \
         consecutive_failures, first_failed_at, fired_at, last_notified_at, notified, \
         last_outcome, last_message, details, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
    let text = |s: &str| Raw::Text(s.to_owned());
    let rows: [(&str, &str, &str, &str, i64, bool, Value); 6] = [
        (
            "orders.row_count",
            "2026-11-19",
            "check",
            "firing",
            1,
            true,
            details("2026-11-19"),
        ),
        (
            "orders.row_count",
            "2026-11-20",
            "check",
            "firing",
            2,
            true,
            details("2026-11-20"),
        ),
        (
            "events.row_count",
            "",
            "check",
            "pending",
            1,
            false,
            json!({}),
        ),
        (
            "quarantine:orders",
            "2026-11-18",
            "quarantine",
            "firing",
            1,
            true,
            json!({}),
        ),
        (
            "quarantine:orders",
            "2026-11-20",
            "quarantine",
            "firing",
            1,
            true,
            json!({}),
        ),
        (
            "warehouse:main",
            "",
            "warehouse",
            "resolved",
            0,
            false,
            json!({}),
        ),
    ];
    for (key, partition, kind, state, failures, notified, details) in rows {
        let dataset = match kind {
            "warehouse" => "",
            _ if key.starts_with("events") => "events",
            _ => "orders",
        };
        let firing = state == "firing";
        raw(
            &db.url,
            insert,
            &[
                text(key),
                text(partition),
                text(dataset),
                text(kind),
                text(state),
                Raw::Int(failures),
                Raw::At(t),
                if firing { Raw::At(t) } else { Raw::NoTime },
                if notified { Raw::At(t) } else { Raw::NoTime },
                Raw::Bool(notified),
                text(if kind == "check" { "fail" } else { "pass" }),
                text("0 rows"),
                Raw::Json(details),
                Raw::At(t),
            ],
        )
        .await;
    }
    drop(old);

    // Opening the registry migrates.
    let registry = Registry::open(&db.url).await.expect("migrate to 0004");
    let kept = registry
        .alert("orders.row_count", None)
        .await
        .unwrap()
        .expect("the newest partition's row is kept, keyed by the check");
    assert_eq!(kept.state, AlertState::Firing);
    assert_eq!(kept.partition.as_deref(), Some("2026-11-20"));
    assert_eq!(kept.consecutive_failures, 2);
    assert!(kept.notified);
    for day in ["2026-11-19", "2026-11-20"] {
        assert_eq!(
            registry.alert("orders.row_count", Some(day)).await.unwrap(),
            None,
            "no row left in the old keying ({day})"
        );
    }
    let events = registry.alert("events.row_count", None).await.unwrap();
    assert_eq!(
        events.map(|a| (a.state, a.partition)),
        Some((AlertState::Pending, None))
    );
    for day in ["2026-11-18", "2026-11-20"] {
        let q = registry
            .alert("quarantine:orders", Some(day))
            .await
            .unwrap()
            .expect("quarantines stay per partition");
        assert_eq!(
            (q.state, q.partition.as_deref()),
            (AlertState::Firing, Some(day))
        );
    }
    let firing = registry.alerts_in_state(AlertState::Firing).await.unwrap();
    assert_eq!(firing.len(), 3, "{firing:?}");
    assert!(
        registry
            .alert("warehouse:main", None)
            .await
            .unwrap()
            .is_some()
    );

    // The closed rows send nothing; the kept one carries on with the next
    // partition, under the new key.
    let mut p = Project::new(&registry, &routes);
    assert_eq!(p.alerts.flush(plus(t, 60)).await.unwrap(), 0);
    p.alerts
        .observe(
            &orders,
            &[result(
                &orders,
                "row_count",
                Some("2026-11-21"),
                Fail,
                Some(0.0),
                "0 rows",
            )],
            plus(t, 60),
        )
        .await
        .unwrap();
    let moved = registry
        .alert("orders.row_count", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            moved.partition.as_deref(),
            moved.consecutive_failures,
            moved.state
        ),
        (Some("2026-11-21"), 3, AlertState::Firing)
    );
    p.alerts
        .observe(
            &orders,
            &[result(
                &orders,
                "row_count",
                Some("2026-11-22"),
                Pass,
                Some(4.0),
                "4 rows",
            )],
            plus(t, 120),
        )
        .await
        .unwrap();
    assert_eq!(p.alerts.flush(plus(t, 150)).await.unwrap(), 1);
    p.start_dispatcher();
    let body = hook.wait_for(1, WAIT).await[0].json();
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(body["alerts"][0]["dedup_key"], "warden/orders.row_count");
    p.stop().await;
}

/// Two agents' delivery workers on one outbox: each notification is
/// delivered once, in the order it was queued (a Slack receiver keeps one
/// order), whichever worker takes it.
async fn two_delivery_workers_share_one_outbox(db: &TestRegistry) {
    let slack = TestReceiver::start(&[], Reply::Slow(Duration::from_millis(20), 200)).await;
    let routes = slack_route(&slack.url, POLICY);
    let mut a = Project::new(db, &routes);
    let other = Registry::open(&db.url).await.unwrap();
    let mut b = Project::new(&other, &routes);
    const N: usize = 30;
    for i in 0..N {
        db.enqueue(
            "chat",
            &serde_json::json!({ "text": format!("n{i}"), "seq": i }),
            None,
        )
        .await
        .unwrap();
    }
    a.start_dispatcher();
    b.start_dispatcher();
    let got = slack.wait_for(N, WAIT).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(slack.received().len(), N, "no notification sent twice");
    let order: Vec<u64> = got
        .iter()
        .map(|r| r.json()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        order,
        (0..N as u64).collect::<Vec<_>>(),
        "queued order kept"
    );
    let delivered = |p: &Project| {
        p.metric("warden_notifications_total{receiver=\"chat\",result=\"delivered\"}")
            .unwrap_or(0.0)
    };
    assert_eq!(delivered(&a) + delivered(&b), N as f64);
    a.stop().await;
    b.stop().await;
}

/// A notification in flight when its agent dies is delivered by another
/// agent once its lease ends, with the same notification id: at least once,
/// never lost.
async fn a_notification_in_flight_at_a_crash_is_delivered_by_another_agent(db: &TestRegistry) {
    // The first request hangs until the agent sending it is gone.
    let slack = TestReceiver::start(
        &[Reply::Slow(Duration::from_secs(60), 200)],
        Reply::Status(200),
    )
    .await;
    let routes = slack_route(&slack.url, POLICY);
    let mut a = Project::new(db, &routes);
    let other = Registry::open(&db.url).await.unwrap();
    let mut b = Project::new(&other, &routes);
    db.enqueue(
        "chat",
        &serde_json::json!({ "text": "orders failing" }),
        None,
    )
    .await
    .unwrap();
    a.start_dispatcher();
    let first = slack.wait_for(1, WAIT).await;
    let sent_at = first[0].at;
    a.kill();
    b.start_dispatcher();
    // The receiver logs each request as it arrives: the hung one, then the
    // other agent's.
    let got = slack.wait_for(2, Duration::from_secs(30)).await;
    let retry = &got[1];
    assert_eq!(retry.status, 200);
    // Not before the lease (the delivery timeout, 2s, plus a margin) ended.
    assert!(
        retry.at - sent_at >= Duration::from_secs(2),
        "taken over after {:?}",
        retry.at - sent_at
    );
    assert_eq!(
        retry.header(receiver::NOTIFICATION_ID),
        first[0].header(receiver::NOTIFICATION_ID)
    );
    assert_eq!(retry.body, first[0].body);
    // The receiver sees the request before the agent records its answer.
    let delivered = "warden_notifications_total{receiver=\"chat\",result=\"delivered\"}";
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.metric(delivered).is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.metric(delivered), Some(1.0));
    b.stop().await;
}
