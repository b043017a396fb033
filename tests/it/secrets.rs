//! Secrets stay secret. A `${VAR}` value arrives exactly as it was set,
//! whatever YAML syntax it holds; no password, token, routing key, webhook
//! URL or HMAC secret shows in a message, a log line, the status page, the
//! API or the metrics (the real binary is asked, its logs read); and signed
//! webhooks carry a timestamp and the notification's id, which a receiver
//! checks the way the README's example receiver does (that example itself
//! is run on a real delivery).

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use warden::config::load_with_env;
use warden::domain::TokenDigest;
use warden::registry::{OutboxStatus, Registry};

use crate::support::agent::{AgentProcess, Project, eventually, free_port, get_text};
use crate::support::alerts::{self, POLICY, plus, result, t0};
use crate::support::cli::warden_in;
use crate::support::db::{PgDatabase, env_url};
use crate::support::receiver::{
    NOTIFICATION_ID, Received, Reply, SIGNATURE, TestReceiver, Verdict, refused_url,
};
use crate::support::registry::TestRegistry;
use crate::support::tools::PYTHON3;

const WAIT: Duration = Duration::from_secs(15);

/// An environment holding only `vars`.
fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// Panics naming the first of `secrets` found in `text`.
#[track_caller]
fn assert_hides(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} shows the secret `{secret}`:\n{text}"
        );
    }
}

// ---- values arrive whole ----

const TOKENS_YAML: &str = "\
agent:
  registry: sqlite://warden.db
  api_tokens: [${T}, ${U}]  # was [${OLD_TOKEN}]
warehouses:
  main:
    url: sqlite://warehouse.db
checks: [checks/*.yaml]
";

#[test]
fn a_token_holding_a_comma_is_one_token() {
    let project = Project::new();
    project.write("warden.yaml", TOKENS_YAML);
    let vars = [("T", "s3cret,x"), ("U", "pa ss: #w'o\"rd")];
    let loaded = load_with_env(&project.config(), &env(&vars)).unwrap();
    let digests: Vec<_> = loaded
        .config
        .agent
        .api_tokens
        .iter()
        .map(|t| t.digest)
        .collect();
    assert_eq!(
        digests,
        [
            TokenDigest::of("s3cret,x"),
            TokenDigest::of("pa ss: #w'o\"rd")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_takes_a_token_holding_a_comma_whole() {
    let project = Project::new();
    project.write("warden.yaml", TOKENS_YAML);
    let mut agent = AgentProcess::start_with(
        &project.config(),
        free_port(),
        &[],
        &[("T", "s3cret,x"), ("U", "other")],
    );
    agent.wait_ready(WAIT).await;
    let client = reqwest::Client::new();
    let status = |token: &'static str| {
        let request = client
            .get(format!("{}/api/v1/datasets", agent.base))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("s3cret,x").await, 200);
    assert_eq!(
        status("x").await,
        401,
        "the part after the comma is no token"
    );
    assert_eq!(status("s3cret").await, 401);
    assert!(agent.terminate(WAIT).await.success());
}

// ---- nothing shows a secret ----

#[test]
fn validate_never_shows_a_password_or_a_webhook_url() {
    let project = Project::new();
    project.write(
        "warden.yaml",
        "agent:\n  registry: postgress://warden:Reg-pw-31@db.example/reg\n  timezone: UTC\n\
         warehouses:\n  main:\n    url: ${WH_URL}\n\
         checks: [checks/*.yaml]\nalerts: routes.yaml\n",
    );
    project.write(
        "routes.yaml",
        "receivers:\n\
         \x20 chat: { slack: { webhook_url: \"ftp://hooks.slack.com/services/T0/B0/Slack-tok-59\" } }\n\
         \x20 hook: { webhook: { url: \"hooks.example/Hook-tok-61\", hmac_secret: Hmac-s3cret-73 } }\n\
         \x20 mail: { email: { smtp: \"imap://mailer:Smtp-pw-83@mail.example\", from: a@example.com, to: [b@example.com] } }\n\
         routes:\n  - match: {}\n    receivers: [chat, hook, mail]\n",
    );
    let run = warden_in(
        project.dir.path(),
        &["validate"],
        &[("WH_URL", "warden:Wh-pw-47@db.example/shop")],
    );
    run.assert_code(2);
    let out = format!("{}\n{}", run.stdout, run.stderr);
    assert_hides(
        "warden validate",
        &out,
        &[
            "Reg-pw-31",
            "Wh-pw-47",
            "Slack-tok-59",
            "Hook-tok-61",
            "Hmac-s3cret-73",
            "Smtp-pw-83",
        ],
    );
    // Each problem is still reported where it was written.
    for expected in [
        "warden.yaml:2:13: `registry`: `postgress://warden:***@db.example/reg` is not a URL",
        "warden.yaml:6:10: `url`: `warden:***` is not a URL",
        "routes.yaml:2:33: `webhook_url`: must be an http:// or https:// URL with a host (receiver `chat`",
        "routes.yaml:3:27: `url`: not a URL: relative URL without a base (receiver `hook`",
        "routes.yaml:4:26: `smtp`: `imap://mailer:***@mail.example` is not an SMTP URL",
    ] {
        assert!(out.contains(expected), "no `{expected}` in:\n{out}");
    }
}

#[test]
fn an_unreachable_registry_is_named_without_its_password() {
    let port = free_port();
    for (registry, named) in [
        (
            format!("postgres://warden:Reg%2Fpw%3F31@127.0.0.1:{port}/reg?sslpassword=Reg-ssl-41"),
            format!(
                "error: registry postgres://warden:***@127.0.0.1:{port}/reg?sslpassword=*** unreachable: connection refused"
            ),
        ),
        // A raw `/` in the password: the URL does not parse.
        (
            format!("postgres://warden:Reg/pw?31@127.0.0.1:{port}/reg"),
            "error: registry URL `postgres://***` is not usable: invalid connection settings: \
             invalid port number; percent-encode `/`, `?`, `#` and `@` in its user name or password"
                .to_owned(),
        ),
    ] {
        let project = Project::new();
        project.write(
            "warden.yaml",
            &format!(
                "agent:\n  registry: {registry}\n\
                 warehouses:\n  main:\n    url: sqlite://warehouse.db\nchecks: [checks/*.yaml]\n"
            ),
        );
        let run = warden_in(project.dir.path(), &["check"], &[("WARDEN_LOG", "debug")]);
        run.assert_code(2);
        let out = format!("{}\n{}", run.stdout, run.stderr);
        assert_hides("warden check", &out, &["Reg%2Fpw", "Reg/pw", "Reg-ssl-41"]);
        assert!(out.contains(&named), "no `{named}` in:\n{out}");
    }
}

/// A password with `/`, `?`, `#` and `@` in it, percent-encoded as a URL
/// needs it, and what each form contains.
const PASSWORD: &str = "Pw-d0wn%2Fq%3Fx%23y%40z";
const PASSWORD_FORMS: [&str; 3] = [PASSWORD, "Pw-d0wn/q?x#y@z", "Pw-d0wn"];

/// Warehouses that cannot be reached, each with a password in its URL: a
/// PostgreSQL and a MariaDB port that refuse connections, a URL whose raw
/// password breaks it, and (with `WARDEN_TEST_MYSQL_URL`) the real MariaDB
/// with a wrong password.
fn down_warehouses() -> Vec<(String, String)> {
    let (pg, my) = (free_port(), free_port());
    let mut warehouses = vec![
        (
            "pg".to_owned(),
            format!("postgres://warden:{PASSWORD}@127.0.0.1:{pg}/shop?sslmode=disable"),
        ),
        (
            "my".to_owned(),
            format!("mysql://warden:{PASSWORD}@127.0.0.1:{my}/shop"),
        ),
        (
            "broken".to_owned(),
            format!("postgres://warden:Pw-d0wn/q?x@127.0.0.1:{pg}/shop"),
        ),
    ];
    match env_url("WARDEN_TEST_MYSQL_URL") {
        Some(url) => {
            let mut url = url::Url::parse(&url).expect("WARDEN_TEST_MYSQL_URL");
            url.set_password(Some(PASSWORD)).unwrap();
            warehouses.push(("auth".to_owned(), url.to_string()));
        }
        None => eprintln!("note: WARDEN_TEST_MYSQL_URL is not set; no wrong password on MariaDB"),
    }
    warehouses
}

/// What each warehouse's checks should say went wrong.
fn cause(warehouse: &str) -> &'static str {
    match warehouse {
        "broken" => {
            "invalid url: error with configuration: invalid port number; percent-encode `/`, `?`, `#` and `@`"
        }
        "auth" => "Access denied",
        _ => "unavailable",
    }
}

fn down_project(warehouses: &[(String, String)], registry: &str) -> Project {
    let project = Project::new();
    let mut yaml = format!("agent:\n  registry: \"{registry}\"\n  timezone: UTC\nwarehouses:\n");
    let mut checks = String::from("datasets:\n");
    for (name, url) in warehouses {
        yaml.push_str(&format!(
            "  {name}:\n    url: \"{url}\"\n    query_timeout: 2s\n"
        ));
        checks.push_str(&format!(
            "  - name: {name}_orders\n    warehouse: {name}\n    table: orders\n    \
             partition: {{ column: order_date, granularity: day }}\n    gate: {{ table: orders }}\n    \
             checks:\n      - row_count: {{ min: 1 }}\n"
        ));
    }
    yaml.push_str("checks: [checks/*.yaml]\n");
    project.write("warden.yaml", &yaml);
    project.write("checks/orders.yaml", &checks);
    project
}

#[test]
fn a_down_warehouse_never_shows_its_password_to_the_cli() {
    let warehouses = down_warehouses();
    let project = down_project(&warehouses, "sqlite://warden.db");
    let run = warden_in(
        project.dir.path(),
        &["check", "--format", "json", "--no-record"],
        &[("WARDEN_LOG", "debug")],
    );
    run.assert_code(3);
    assert_hides("warden check", &run.stdout, &PASSWORD_FORMS);
    assert_hides("warden check's log", &run.stderr, &PASSWORD_FORMS);
    let report = run.json();
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), warehouses.len(), "{report:#}");
    for (name, _) in &warehouses {
        let r = results
            .iter()
            .find(|r| r["dataset"] == format!("{name}_orders").as_str())
            .unwrap_or_else(|| panic!("no result for {name}: {report:#}"));
        assert_eq!(r["outcome"], "error", "{r:#}");
        let message = r["message"].as_str().unwrap();
        assert!(message.contains(cause(name)), "{name}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_warehouse_never_shows_its_password_in_the_agent() {
    let warehouses = down_warehouses();
    // With `WARDEN_TEST_POSTGRES_URL`, a PostgreSQL registry whose URL has a
    // password too (one the test sets, when the server takes none).
    let pg = PgDatabase::create("warden_secrets").await;
    let mut registry_password = None;
    let registry = match &pg {
        Some(db) => {
            let mut url = url::Url::parse(&db.url).expect("PostgreSQL URL");
            if url.password().is_none() {
                url.set_password(Some("Reg-pw-53")).unwrap();
                registry_password = Some("Reg-pw-53");
            }
            url.to_string()
        }
        None => "sqlite://warden.db".to_owned(),
    };
    let secrets: Vec<&str> = PASSWORD_FORMS
        .iter()
        .copied()
        .chain(registry_password)
        .collect();
    let project = down_project(&warehouses, &registry);
    let mut agent = AgentProcess::start_with(
        &project.config(),
        free_port(),
        &[],
        &[("WARDEN_LOG", "debug")],
    );
    agent.wait_ready(WAIT).await;
    let base = agent.base.clone();
    let yesterday = (Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let client = reqwest::Client::new();
    let mut seen = String::new();
    for (name, _) in &warehouses {
        let dataset = format!("{name}_orders");
        let gate: Value = client
            .post(format!("{base}/api/v1/gates?wait=60s"))
            .json(&json!({"dataset": dataset, "partition": yesterday, "run_id": "r1"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(gate["status"], "denied", "{gate:#}");
        let text = gate.to_string();
        assert!(text.contains(cause(name)), "{name}: {gate:#}");
        seen.push_str(&text);
        // The gate, read again.
        let path = format!(
            "/api/v1/gates/{}",
            gate["gate_id"].as_str().expect("gate_id")
        );
        let (status, body) = get_text(&format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}: {body}");
        seen.push_str(&body);
    }
    for path in [
        "/",
        "/api/v1/datasets",
        "/api/v1/datasets/pg_orders",
        "/api/v1/alerts",
        "/api/v1/notifications/dead",
        "/metrics",
        "/readyz",
    ] {
        let (_, body) = get_text(&format!("{base}{path}")).await;
        assert_hides(path, &body, &secrets);
        seen.push_str(&body);
    }
    assert_hides("the API", &seen, &secrets);
    if registry_password.is_some() {
        let (_, page) = get_text(&format!("{base}/")).await;
        assert!(
            page.contains(":***@"),
            "the status page names its registry:\n{page}"
        );
    }
    assert!(agent.terminate(WAIT).await.success());
    let log = agent.log();
    assert!(
        log.contains("unavailable"),
        "the log says nothing of the failures:\n{log}"
    );
    assert!(log.contains("agent started"), "{log}");
    assert_hides("the agent's log", &log, &secrets);
}

// ---- receivers ----

/// `receivers` (one per line) for tier 2, where `events` (failing below) is.
fn tier_2_routes(receivers: &[(&str, String)]) -> String {
    let mut routes = String::from("receivers:\n");
    for (name, settings) in receivers {
        routes.push_str(&format!("  {name}: {{ {settings} }}\n"));
    }
    let names: Vec<&str> = receivers.iter().map(|(n, _)| *n).collect();
    routes.push_str(&format!(
        "routes:\n  - match: {{ tier: 2 }}\n    receivers: [{}]\n{POLICY}",
        names.join(", ")
    ));
    routes
}

/// `events` fails; its notifications are queued and the dispatcher started.
async fn fail_events(p: &mut alerts::Project, receivers: usize) {
    let events = p.ds("events");
    let t = t0();
    let r = result(
        &events,
        "row_count",
        None,
        warden::check::Outcome::Fail,
        Some(0.0),
        "0 rows (min 1)",
    );
    p.alerts.observe(&events, &[r], t).await.unwrap();
    assert_eq!(p.alerts.flush(plus(t, 30)).await.unwrap(), receivers);
    p.start_dispatcher();
}

/// The outbox id of `receiver`'s notification, delivered or not (it may
/// be delivered between two reads).
async fn outbox_id(registry: &Registry, receiver: &str) -> String {
    let mut ids = std::collections::BTreeSet::new();
    for status in [
        OutboxStatus::Pending,
        OutboxStatus::Delivered,
        OutboxStatus::Dead,
    ] {
        for entry in registry.outbox_entries(status, 100).await.unwrap() {
            if entry.receiver == receiver {
                ids.insert(entry.id.to_string());
            }
        }
    }
    assert_eq!(ids.len(), 1, "{receiver}: {ids:?}");
    ids.pop_first().unwrap()
}

on_both_engines!(signed_webhooks_carry_a_time_and_keep_their_id_across_retries);

async fn signed_webhooks_carry_a_time_and_keep_their_id_across_retries(db: &TestRegistry) {
    let hook =
        TestReceiver::verifying("Hmac-s3cret", &[Reply::Status(503)], Reply::Status(200)).await;
    let chat = TestReceiver::ok(200).await;
    let pd = TestReceiver::ok(202).await;
    let routes = tier_2_routes(&[
        (
            "hook",
            format!(
                "webhook: {{ url: \"{}/hook\", hmac_secret: Hmac-s3cret }}",
                hook.url
            ),
        ),
        (
            "chat",
            format!(
                "slack: {{ webhook_url: \"{}/services/T0/B0/x\" }}",
                chat.url
            ),
        ),
        (
            "pd",
            format!(
                "pagerduty: {{ routing_key: pd-key, url: \"{}/v2/enqueue\" }}",
                pd.url
            ),
        ),
    ]);
    let mut p = alerts::Project::new(db, &routes);
    fail_events(&mut p, 3).await;

    // Refused once (503), delivered on the retry: both signed and in time,
    // with the same id in the header and the body, and the same body.
    let got = hook.wait_for(2, WAIT).await;
    let (first, retry) = (&got[0], &got[1]);
    assert_eq!((first.status, retry.status), (503, 200));
    assert_eq!(first.verdict, Some(Verdict::New));
    assert_eq!(retry.verdict, Some(Verdict::New));
    let id = first.header(NOTIFICATION_ID).expect("the id header");
    assert_eq!(retry.header(NOTIFICATION_ID).as_deref(), Some(id.as_str()));
    assert_eq!(first.json()["id"], id.as_str());
    assert_eq!(first.body, retry.body, "a retry sends the same body");
    assert_eq!(id, outbox_id(&p.registry, "hook").await, "the outbox's id");
    let signature = retry.header(SIGNATURE).unwrap();
    let t: i64 = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .and_then(|(t, _)| t.parse().ok())
        .unwrap_or_else(|| panic!("not t=…,v1=…: {signature}"));
    assert!((Utc::now().timestamp() - t).abs() < 60, "t={t}");

    // A replay now is a duplicate; with another body, refused; later than
    // the tolerance, refused as stale.
    assert_eq!(hook.replay(retry, None).await, 200);
    assert_eq!(last(&hook).verdict, Some(Verdict::Duplicate));
    let tampered = String::from_utf8(retry.body.to_vec())
        .unwrap()
        .replace("\"firing\"", "\"resolved\"");
    assert_eq!(hook.replay(retry, Some(tampered.as_bytes())).await, 401);
    assert_eq!(last(&hook).verdict, Some(Verdict::BadSignature));
    hook.advance_clock(Duration::from_secs(600));
    assert_eq!(hook.replay(retry, None).await, 401);
    assert_eq!(last(&hook).verdict, Some(Verdict::Stale));

    // The other HTTP receivers carry their notification's id too.
    for (name, receiver) in [("chat", &chat), ("pd", &pd)] {
        let request = &receiver.wait_for(1, WAIT).await[0];
        let id = request.header(NOTIFICATION_ID).expect("the id header");
        assert_eq!(id, outbox_id(&p.registry, name).await, "{name}");
        assert!(request.header(SIGNATURE).is_none(), "{name}");
    }
    p.stop().await;
}

fn last(receiver: &TestReceiver) -> Received {
    receiver.received().pop().expect("a request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_errors_never_show_urls_or_keys() {
    let db = TestRegistry::sqlite().await;
    // Receivers that quote what they were sent in their refusals.
    let hook = TestReceiver::start(
        &[],
        Reply::Body(400, "no hook /hook/Hook-tok-61 for secret Hmac-s3cret-73"),
    )
    .await;
    let pd = TestReceiver::start(&[], Reply::Body(400, "invalid routing_key Pd-key-97")).await;
    let chat = TestReceiver::start(
        &[],
        Reply::Body(403, "no such hook /services/T0/B0/Slack-tok-59"),
    )
    .await;
    let down = refused_url().await;
    let routes = tier_2_routes(&[
        (
            "hook",
            format!(
                "webhook: {{ url: \"{}/hook/Hook-tok-61\", hmac_secret: Hmac-s3cret-73 }}",
                hook.url
            ),
        ),
        (
            "pd",
            format!(
                "pagerduty: {{ routing_key: Pd-key-97, url: \"{}/v2/enqueue\" }}",
                pd.url
            ),
        ),
        (
            "chat",
            format!(
                "slack: {{ webhook_url: \"{}/services/T0/B0/Slack-tok-59\" }}",
                chat.url
            ),
        ),
        (
            "down",
            format!("webhook: {{ url: \"{down}/hook/Down-tok-13?token=Down-tok-17\" }}"),
        ),
    ]);
    let secrets = [
        "Hook-tok-61",
        "Hmac-s3cret-73",
        "Pd-key-97",
        "Slack-tok-59",
        "Down-tok-13",
        "Down-tok-17",
    ];
    let mut p = alerts::Project::new(&db, &routes);
    fail_events(&mut p, 4).await;

    let registry = p.registry.clone();
    let dead = eventually(WAIT, "three dead letters", || {
        let registry = registry.clone();
        async move {
            let dead = registry.dead_letters(10).await.unwrap();
            (dead.len() == 3).then_some(dead)
        }
    })
    .await;
    for entry in &dead {
        let error = entry.last_error.as_deref().unwrap_or_default();
        assert!(error.starts_with("HTTP 40"), "{}: {error}", entry.receiver);
        assert!(error.contains("***"), "{}: {error}", entry.receiver);
        assert_hides(&entry.receiver, error, &secrets);
        assert_hides(&entry.receiver, &entry.payload.to_string(), &secrets);
    }
    let retried = eventually(WAIT, "a failed attempt to reach `down`", || {
        let registry = registry.clone();
        async move {
            let pending = registry
                .outbox_entries(OutboxStatus::Pending, 10)
                .await
                .unwrap();
            pending
                .into_iter()
                .find(|e| e.receiver == "down" && e.last_error.is_some())
        }
    })
    .await;
    let error = retried.last_error.unwrap();
    assert!(error.starts_with("cannot connect"), "{error}");
    assert_hides("down", &error, &secrets);
    assert_hides("/metrics", &p.metrics.render(), &secrets);
    p.stop().await;
}

// ---- the README's example receiver ----

/// The Python of the README's "Verifying webhooks", followed by `driver`.
fn readme_receiver(driver: &str) -> String {
    let readme = include_str!("../../README.md");
    let section = readme
        .split_once("### Verifying webhooks")
        .expect("a `Verifying webhooks` section in README.md")
        .1;
    let code = section
        .split_once("```python\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a python block in it")
        .0;
    format!("{code}\n{driver}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_example_receiver_verifies_a_real_delivery() {
    let Some(python) = PYTHON3.find() else {
        return;
    };
    let db = TestRegistry::sqlite().await;
    let hook = TestReceiver::verifying("Hmac-s3cret", &[], Reply::Status(200)).await;
    let routes = tier_2_routes(&[(
        "hook",
        format!(
            "webhook: {{ url: \"{}/hook\", hmac_secret: Hmac-s3cret }}",
            hook.url
        ),
    )]);
    let mut p = alerts::Project::new(&db, &routes);
    fail_events(&mut p, 1).await;
    let delivery = hook.wait_for(1, WAIT).await.remove(0);
    p.stop().await;

    // The README's `handle` takes the delivery once, drops it the second
    // time, refuses another body, another secret, and the same delivery an
    // hour later.
    let driver = r#"
import os, sys
headers = {"X-Warden-Signature": os.environ["SIGNATURE"]}
body = sys.stdin.buffer.read()
secret = b"Hmac-s3cret"
def refused(call, why):
    try:
        call()
    except ValueError as e:
        assert why in str(e), (why, e)
        return True
    return False
notification = handle(secret, headers, body)
print(notification["id"], notification["status"])
assert handle(secret, headers, body) is None, "a retry is a duplicate"
assert refused(lambda: handle(secret, headers, body.replace(b"firing", b"resolved")), "signature")
assert refused(lambda: handle(b"wrong", headers, body), "signature")
real_time = time.time
time.time = lambda: real_time() + 3600
assert refused(lambda: handle(secret, headers, body), "stale")
print("ok")
"#;
    let mut child = std::process::Command::new(python)
        .arg("-c")
        .arg(readme_receiver(driver))
        .env("SIGNATURE", delivery.header(SIGNATURE).unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&delivery.body)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = delivery.header(NOTIFICATION_ID).unwrap();
    assert_eq!(stdout, format!("{id} firing\nok\n"));
}
