//! The agent end to end: the real `warden run` binary on SQLite and on
//! PostgreSQL waits for scheduled ticks and answers through its API and
//! `/metrics`; SIGHUP reloads (and refuses a broken config); SIGTERM drains
//! and exits 0. In-process cases cover the circuit breaker against a
//! warehouse cut mid-run, missed ticks after downtime, and the HTTP app's
//! answers (tokens, errors, the status page).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Timelike, Utc};
use serde_json::Value;
use tower::ServiceExt;
use warden::agent::Options;
use warden::app::AppState;
use warden::check::Scope;
use warden::domain::DatasetName;
use warden::registry::Registry;

use crate::support::agent::{
    AgentProcess, Project, Proxy, eventually, get_json, get_text, promtool_check_metrics, sample,
    spawn_agent,
};
use crate::support::db::{Backend, TestDb};
use crate::support::registry::TestRegistry;

/// Long enough for two minute ticks and the runs behind them.
const TWO_TICKS: Duration = Duration::from_secs(150);

fn warden_yaml(registry: &str, warehouses: &[(&str, &str)], extra_agent: &str) -> String {
    let mut y = format!(
        "agent:\n  listen: 127.0.0.1:9464\n  registry: {registry}\n  timezone: UTC\n  max_concurrent_checks: 4\n{extra_agent}warehouses:\n"
    );
    for (name, url) in warehouses {
        y.push_str(&format!(
            "  {name}:\n    url: {url}\n    max_connections: 2\n    query_timeout: 20s\n"
        ));
    }
    y.push_str("checks: [checks/*.yaml]\n");
    y
}

/// Two datasets on `warehouse`, checked every minute.
fn shop_checks(warehouse: &str, schema: &str) -> String {
    format!(
        r#"datasets:
  - name: orders
    warehouse: {warehouse}
    table: {schema}.orders
    tier: 1
    owner: revenue-team
    schedule: "* * * * *"
    checks:
      - row_count: {{ min: 1 }}
      - null_rate: {{ column: customer_id, max: 0 }}
      - freshness: {{ column: updated_at, max_lag: 1h }}
  - name: events
    warehouse: {warehouse}
    table: {schema}.events
    tier: 2
    schedule: "* * * * *"
    checks:
      - row_count: {{ min: 1 }}
"#
    )
}

async fn shop_tables(db: &TestDb) {
    db.exec(
        "CREATE TABLE {s}.orders (order_id INTEGER, customer_id INTEGER, updated_at {TIMESTAMPTZ});
         INSERT INTO {s}.orders VALUES (1, 10, CURRENT_TIMESTAMP), (2, NULL, CURRENT_TIMESTAMP), (3, 12, CURRENT_TIMESTAMP);
         CREATE TABLE {s}.events (id INTEGER);
         INSERT INTO {s}.events VALUES (1), (2);",
    )
    .await;
}

/// The shop tables in a SQLite warehouse, and a project whose `warden.yaml`
/// watches it with a SQLite registry (no check file yet).
async fn sqlite_shop() -> (TestDb, Project) {
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    shop_tables(&db).await;
    let project = Project::new();
    project.write(
        "warden.yaml",
        &warden_yaml("sqlite://warden.db", &[("main", db.url())], ""),
    );
    (db, project)
}

fn parse_time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// Starts the binary on `project`, waits for two scheduled ticks, and reads
/// them back through the API and `/metrics`. Returns the running agent.
async fn two_ticks(project: &Project) -> AgentProcess {
    let mut agent = AgentProcess::start(&project.config(), &[]);
    agent.wait_ready(Duration::from_secs(30)).await;
    let base = agent.base.clone();

    let history = eventually(TWO_TICKS, "two scheduled runs of orders.row_count", || {
        let url = format!("{base}/api/v1/checks/orders.row_count/history?limit=10");
        async move {
            let (status, body) = get_json(&url).await;
            assert_eq!(status, 200, "{body}");
            let results = body["results"].as_array().cloned().unwrap_or_default();
            (results.len() >= 2).then_some(results)
        }
    })
    .await;
    // Newest first, one per tick, on whole minutes one minute apart.
    let t0 = parse_time(&history[0]["scheduled_at"]);
    let t1 = parse_time(&history[1]["scheduled_at"]);
    assert_eq!((t0.second(), t0.nanosecond()), (0, 0), "{t0}");
    assert_eq!(t0 - t1, chrono::Duration::minutes(1), "{t0} {t1}");
    assert_eq!(history[0]["outcome"], "pass");
    assert_eq!(history[0]["observed"], 3.0);

    // The dataset view: the failing null_rate makes the dataset fail.
    let (status, body) = get_json(&format!("{base}/api/v1/datasets")).await;
    assert_eq!(status, 200);
    let orders = body["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "orders")
        .expect("orders listed")
        .clone();
    assert_eq!(orders["status"], "fail", "{orders}");
    assert_eq!(orders["summary"]["fail"], 1, "{orders}");
    assert_eq!(orders["summary"]["pass"], 2, "{orders}");
    assert_eq!(orders["owner"], "revenue-team");
    assert_eq!(orders["warehouse_up"], true);
    assert!(orders["freshness_lag_seconds"].as_f64().unwrap() < 3600.0);

    let (status, body) = get_json(&format!("{base}/api/v1/datasets/orders")).await;
    assert_eq!(status, 200);
    let checks = body["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    let nulls = checks
        .iter()
        .find(|c| c["check"] == "orders.null_rate_customer_id")
        .unwrap();
    assert_eq!(nulls["last_result"]["outcome"], "fail");
    assert!((nulls["last_result"]["observed"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);

    // /metrics agrees, and promtool has nothing to say about it.
    let (status, metrics) = get_text(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    let runs = sample(
        &metrics,
        r#"warden_check_runs_total{check="orders.row_count",dataset="orders",outcome="pass"}"#,
    )
    .expect("runs counted");
    assert!(runs >= 2.0, "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            r#"warden_check_outcome{check="orders.null_rate_customer_id",dataset="orders",outcome="fail"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"warden_check_outcome{check="orders.null_rate_customer_id",dataset="orders",outcome="pass"}"#
        ),
        None,
        "only the current outcome has a series"
    );
    assert_eq!(
        sample(&metrics, r#"warden_dataset_row_count{dataset="orders"}"#),
        Some(3.0)
    );
    assert_eq!(
        sample(&metrics, r#"warden_warehouse_up{warehouse="main"}"#),
        Some(1.0)
    );
    assert!(metrics.contains("warden_build_info{version="), "{metrics}");
    if let Some(complaints) = promtool_check_metrics(&metrics) {
        assert_eq!(complaints, "", "promtool check metrics complained");
    }
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_agent_runs_its_schedule_reloads_and_drains() {
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    shop_tables(&db).await;
    let project = Project::new();
    let good = warden_yaml("sqlite://warden.db", &[("main", db.url())], "");
    project.write("warden.yaml", &good);
    project.write("checks/shop.yaml", &shop_checks("main", "main"));
    let mut agent = two_ticks(&project).await;
    let base = agent.base.clone();

    // SIGHUP with a broken config: logged with file:line, the old one keeps running.
    project.write(
        "warden.yaml",
        &good.replace("  timezone: UTC\n", "  timezone: UTC\n  listne: x\n"),
    );
    agent.signal("HUP");
    let log = eventually(
        Duration::from_secs(10),
        "the reload error in the log",
        || {
            let log = agent.log();
            async move {
                log.contains("the new configuration is invalid")
                    .then_some(log)
            }
        },
    )
    .await;
    assert!(log.contains("warden.yaml:5:3"), "{log}");
    assert!(log.contains("listne"), "{log}");
    let (status, ready) = get_json(&format!("{base}/readyz")).await;
    assert_eq!((status, ready["configuration"].as_u64()), (200, Some(1)));
    let (_, body) = get_json(&format!("{base}/api/v1/datasets")).await;
    assert_eq!(body["datasets"].as_array().unwrap().len(), 2);

    // A valid new config takes effect without a restart, and the series of
    // the removed dataset, and of the check removed from `orders`, leave
    // /metrics.
    let (_, before) = get_text(&format!("{base}/metrics")).await;
    assert!(
        before.contains(r#"warden_column_null_ratio{column="customer_id",dataset="orders"}"#),
        "{before}"
    );
    project.write("warden.yaml", &good);
    let only_orders = shop_checks("main", "main");
    let only_orders = only_orders[..only_orders.find("  - name: events").unwrap()]
        .replace("      - null_rate: { column: customer_id, max: 0 }\n", "");
    project.write("checks/shop.yaml", &only_orders);
    agent.signal("HUP");
    eventually(Duration::from_secs(10), "configuration #2", || {
        let url = format!("{base}/readyz");
        async move {
            let (_, ready) = get_json(&url).await;
            (ready["configuration"] == 2).then_some(())
        }
    })
    .await;
    let (_, body) = get_json(&format!("{base}/api/v1/datasets")).await;
    let names: Vec<&str> = body["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders"]);
    let (_, metrics) = get_text(&format!("{base}/metrics")).await;
    assert!(!metrics.contains("dataset=\"events\""), "{metrics}");
    assert!(!metrics.contains("null_rate"), "{metrics}");
    assert!(!metrics.contains("warden_column_null_ratio"), "{metrics}");
    assert!(metrics.contains("dataset=\"orders\""));
    if let Some(complaints) = promtool_check_metrics(&metrics) {
        assert_eq!(complaints, "", "promtool check metrics complained");
    }
    let (status, _) = get_json(&format!("{base}/api/v1/datasets/events")).await;
    assert_eq!(status, 404);

    // SIGTERM: a clean exit 0.
    let status = agent.terminate(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));

    // Restarted, the agent shows the last recorded values of the configured
    // checks, and nothing of the removed ones.
    let mut agent = AgentProcess::start(&project.config(), &[]);
    agent.wait_ready(Duration::from_secs(30)).await;
    let (_, restored) = get_text(&format!("{}/metrics", agent.base)).await;
    let series = |name: &str| sample(&restored, name);
    assert_eq!(
        series(r#"warden_check_outcome{check="orders.row_count",dataset="orders",outcome="pass"}"#),
        Some(1.0),
        "{restored}"
    );
    assert_eq!(
        series(r#"warden_check_observed_value{check="orders.row_count",dataset="orders"}"#),
        Some(3.0)
    );
    assert_eq!(
        series(r#"warden_dataset_row_count{dataset="orders"}"#),
        Some(3.0)
    );
    let lag = series(r#"warden_dataset_freshness_lag_seconds{dataset="orders"}"#)
        .expect("the freshness lag restored");
    assert!((0.0..3600.0).contains(&lag), "{lag}");
    let last_run = series(
        r#"warden_check_last_run_timestamp_seconds{check="orders.freshness_updated_at",dataset="orders"}"#,
    )
    .expect("the last run restored");
    let age = Utc::now().timestamp_millis() as f64 / 1000.0 - last_run;
    assert!((0.0..600.0).contains(&age), "{last_run}");
    assert!(!restored.contains("null_rate"), "{restored}");
    assert!(!restored.contains("dataset=\"events\""), "{restored}");
    if let Some(complaints) = promtool_check_metrics(&restored) {
        assert_eq!(complaints, "", "promtool check metrics complained");
    }
    let status = agent.terminate(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_agent_runs_its_schedule() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let Some(registry) = TestRegistry::postgres().await else {
        return;
    };
    shop_tables(&db).await;
    let project = Project::new();
    project.write(
        "warden.yaml",
        &warden_yaml(&registry.url, &[("main", db.url())], ""),
    );
    project.write("checks/shop.yaml", &shop_checks("main", &db.schema));
    let mut agent = two_ticks(&project).await;
    // The results are in the PostgreSQL registry.
    let stored = registry
        .latest_results(&DatasetName::parse("orders").unwrap())
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
    let status = agent.terminate(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    db.cleanup().await;
}

/// Ticks that cannot be run are counted by warehouse and reason, and
/// logged in one line per tick, not one per dataset. 1,030 datasets share
/// one warehouse of one connection whose statement sleeps past the next
/// tick: the first tick queues every one of them (the run queue has a place
/// per dataset, so none is skipped as `queue_full`); the second finds every
/// dataset `still_running`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_a_run_still_going_skips_are_counted_and_the_queue_never_fills() {
    const DATASETS: usize = 1_030;
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    db.exec("CREATE TABLE {s}.orders (order_id INTEGER)").await;
    let project = Project::new();
    project.write(
        "warden.yaml",
        &format!(
            "agent:\n  listen: 127.0.0.1:9464\n  registry: sqlite://warden.db\n  timezone: UTC\n\
             warehouses:\n  slow:\n    url: {}\n    max_connections: 1\n    query_timeout: 150s\n\
             checks: [checks/*.yaml]\n",
            db.url()
        ),
    );
    let mut checks = String::from("datasets:\n");
    for i in 0..DATASETS {
        checks.push_str(&format!(
            "  - name: slow_{i:04}\n    warehouse: slow\n    table: {}.orders\n    schedule: \"* * * * *\"\n    checks:\n      - sql: {{ name: sleepy, query: \"SELECT count(*) FROM pg_sleep(100)\", max: 1 }}\n",
            db.schema
        ));
    }
    project.write("checks/slow.yaml", &checks);
    let mut agent = AgentProcess::start(&project.config(), &[]);
    agent.wait_ready(Duration::from_secs(60)).await;
    let base = agent.base.clone();
    let skipped = |metrics: &str, reason: &str| {
        sample(
            metrics,
            &format!(r#"warden_ticks_skipped_total{{reason="{reason}",warehouse="slow"}}"#),
        )
    };
    // Declared at 0 before any tick.
    let (_, metrics) = get_text(&format!("{base}/metrics")).await;
    if sample(&metrics, r#"warden_queue_depth{stage="run"}"#) == Some(0.0) {
        assert_eq!(skipped(&metrics, "queue_full"), Some(0.0), "{metrics}");
        assert_eq!(skipped(&metrics, "still_running"), Some(0.0), "{metrics}");
    }

    // The first tick queues every dataset: one runs (holding the one
    // connection), one more may wait for it, the rest wait in the queue.
    let first = eventually(TWO_TICKS, "a tick queued", || {
        let url = format!("{base}/metrics");
        async move {
            let (_, metrics) = get_text(&url).await;
            let depth = sample(&metrics, r#"warden_queue_depth{stage="run"}"#).unwrap_or(0.0);
            (depth >= 1_000.0).then_some(metrics)
        }
    })
    .await;
    let depth = sample(&first, r#"warden_queue_depth{stage="run"}"#).unwrap();
    assert!(
        (DATASETS as f64 - 2.0..=DATASETS as f64).contains(&depth),
        "every dataset queued but the one or two taken: {depth}"
    );
    assert_eq!(skipped(&first, "queue_full"), Some(0.0), "{first}");
    assert_eq!(skipped(&first, "still_running"), Some(0.0), "{first}");

    eventually(TWO_TICKS, "a tick skipped for runs still going", || {
        let url = format!("{base}/metrics");
        async move {
            let (_, metrics) = get_text(&url).await;
            (skipped(&metrics, "still_running").unwrap_or(0.0) > 0.0).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, metrics) = get_text(&format!("{base}/metrics")).await;
    assert_eq!(
        skipped(&metrics, "still_running"),
        Some(DATASETS as f64),
        "every dataset queued or running"
    );
    assert_eq!(skipped(&metrics, "queue_full"), Some(0.0));
    if let Some(complaints) = promtool_check_metrics(&metrics) {
        assert_eq!(complaints, "", "promtool check metrics complained");
    }
    let log = agent.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("skipping this tick"))
        .collect();
    assert_eq!(lines.len(), 1, "one line for the tick: {lines:?}");
    assert!(
        lines[0].contains(
            "skipping this tick of slow_0000 and 1,029 others: the previous run has not finished"
        ),
        "{}",
        lines[0]
    );
    drop(agent);
    db.cleanup().await;
}

/// PostgreSQL's address from `WARDEN_TEST_POSTGRES_URL` (host:port).
fn postgres_addr(url: &str) -> SocketAddr {
    let opts: sqlx::postgres::PgConnectOptions = url.parse().expect("postgres url");
    let host = match opts.get_host() {
        "localhost" => "127.0.0.1",
        h => h,
    };
    format!("{host}:{}", opts.get_port())
        .parse()
        .expect("host:port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_warehouse_cut_mid_run_opens_its_circuit_and_spares_the_others() {
    let Some(pg) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let admin_url = std::env::var("WARDEN_TEST_POSTGRES_URL").unwrap();
    let proxy = Proxy::start(postgres_addr(&admin_url)).await;
    let mut proxied: sqlx::postgres::PgConnectOptions = admin_url.parse().unwrap();
    proxied = proxied.host("127.0.0.1").port(proxy.addr.port());
    let proxied_url = format!(
        "postgres://{}@127.0.0.1:{}/{}",
        proxied.get_username(),
        proxy.addr.port(),
        proxied.get_database().unwrap_or("test")
    );
    pg.exec("CREATE TABLE {s}.ledger (id INTEGER); INSERT INTO {s}.ledger VALUES (1), (2);")
        .await;
    let local = TestDb::new(Backend::Sqlite).await.unwrap();
    shop_tables(&local).await;

    let project = Project::new();
    project.write(
        "warden.yaml",
        &warden_yaml(
            "sqlite://warden.db",
            &[("pg", &proxied_url), ("local", local.url())],
            "",
        ),
    );
    project.write(
        "checks/ledger.yaml",
        &format!(
            r#"datasets:
  - name: ledger
    warehouse: pg
    table: {schema}.ledger
    schedule: "* * * * *"
    checks:
      - row_count: {{ min: 1 }}
      - sql:
          name: slow_total
          query: "SELECT count(*) FROM {{{{ table }}}}, pg_sleep(3)"
          max: 100
"#,
            schema = pg.schema
        ),
    );
    project.write("checks/shop.yaml", &shop_checks("local", "main"));

    let options = Options {
        run_on_start: true,
        grace: Duration::from_secs(10),
        ..Options::default()
    };
    let (agent, warnings) = spawn_agent(&project.config(), options).await;
    assert!(warnings.is_empty(), "{warnings:?}");
    let state = agent.state().clone();
    let registry = state.registry().clone();
    let ledger = DatasetName::parse("ledger").unwrap();
    let orders = DatasetName::parse("orders").unwrap();

    // Cut the warehouse while the slow statement runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.stop();
    let first = eventually(Duration::from_secs(30), "the cut run's results", || {
        let registry = registry.clone();
        let ledger = ledger.clone();
        async move {
            let r = registry.latest_results(&ledger).await.unwrap();
            (r.len() == 2).then_some(r)
        }
    })
    .await;
    for s in &first {
        assert_eq!(s.result.outcome.as_str(), "error", "{:?}", s.result);
        assert!(
            s.result.message.contains("unavailable"),
            "{}",
            s.result.message
        );
    }
    let circuit = state.circuit("pg").expect("pg lane");
    assert!(circuit.is_open(), "three failed attempts open the circuit");
    let metrics = state.metrics().render();
    assert_eq!(
        sample(&metrics, r#"warden_warehouse_up{warehouse="pg"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&metrics, r#"warden_warehouse_up{warehouse="local"}"#),
        Some(1.0)
    );
    let first_tick = first[0].scheduled_at;

    // The next tick: the other warehouse's checks run on schedule and pass;
    // the cut one reports "unavailable" without being queried.
    let accepted_before = proxy.accepted.load(Ordering::SeqCst);
    let next = eventually(Duration::from_secs(75), "the next tick's results", || {
        let registry = registry.clone();
        let (ledger, orders) = (ledger.clone(), orders.clone());
        async move {
            let l = registry.latest_results(&ledger).await.unwrap();
            let o = registry.latest_results(&orders).await.unwrap();
            let later = |v: &Vec<warden::registry::StoredResult>| {
                v.len() >= 2 && v.iter().all(|s| s.scheduled_at > first_tick)
            };
            (later(&l) && later(&o)).then_some((l, o))
        }
    })
    .await;
    assert_eq!(next.0[0].scheduled_at, next.1[0].scheduled_at, "same tick");
    for s in &next.0 {
        assert_eq!(s.result.outcome.as_str(), "error");
        assert!(
            s.result.message.contains("circuit open"),
            "{}",
            s.result.message
        );
    }
    for s in &next.1 {
        assert_ne!(s.result.outcome.as_str(), "error", "{:?}", s.result);
    }
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        accepted_before,
        "an open circuit does not query the warehouse (the proxy refuses, so no probe is accepted either)"
    );

    // The warehouse comes back: a probe closes the circuit.
    proxy.resume();
    eventually(Duration::from_secs(70), "the circuit to close", || {
        let open = circuit.is_open();
        async move { (!open).then_some(()) }
    })
    .await;
    let metrics = state.metrics().render();
    assert_eq!(
        sample(&metrics, r#"warden_warehouse_up{warehouse="pg"}"#),
        Some(1.0)
    );
    agent.shutdown().await;
    pg.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_after_downtime_run_once() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    shop_tables(&db).await;
    let project = Project::new();
    project.write(
        "warden.yaml",
        &warden_yaml("sqlite://warden.db", &[("main", db.url())], ""),
    );
    project.write(
        "checks/shop.yaml",
        &shop_checks("main", "main").replace("\"* * * * *\"", "\"*/5 * * * *\""),
    );
    // An earlier agent last ran `orders` 20 minutes ago: three ticks were missed.
    let registry = Registry::open(&format!("sqlite://{}", project.path("warden.db").display()))
        .await
        .unwrap();
    let orders = DatasetName::parse("orders").unwrap();
    let now = Utc::now();
    let last_run = now - chrono::Duration::minutes(20);
    registry
        .claim_scheduled_run(&orders, last_run, "old-agent", last_run)
        .await
        .unwrap();
    registry.finish_claim(&orders, last_run).await.unwrap();
    let (agent, _) = spawn_agent(&project.config(), Options::default()).await;
    let results = eventually(Duration::from_secs(20), "the catch-up run", || {
        let registry = registry.clone();
        let orders = orders.clone();
        async move {
            let r = registry.latest_results(&orders).await.unwrap();
            (r.len() == 3).then_some(r)
        }
    })
    .await;
    // One run, for the latest missed tick.
    let tick = results[0].scheduled_at;
    assert_eq!(tick.minute() % 5, 0);
    assert_eq!(tick.second(), 0);
    assert!(now - tick < chrono::Duration::minutes(5) + chrono::Duration::seconds(1));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let id = warden::domain::CheckId::parse("orders.row_count").unwrap();
    let history = registry.history(&id, 10).await.unwrap();
    assert_eq!(history.len(), 1, "missed ticks run once, not once each");
    // `events` never ran before: it waits for its schedule.
    let events = registry
        .latest_results(&DatasetName::parse("events").unwrap())
        .await
        .unwrap();
    assert!(events.is_empty());
    agent.shutdown().await;
}

/// The HTTP app's state on a SQLite project with API tokens, for the HTTP
/// app cases: no agent (no scheduler, no run queues), the datasets run
/// once and recorded.
async fn api_state(tokens: &str) -> (AppState, Project, TestDb) {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    shop_tables(&db).await;
    let project = Project::new();
    project.write(
        "warden.yaml",
        &warden_yaml("sqlite://warden.db", &[("main", db.url())], tokens),
    );
    project.write(
        "checks/shop.yaml",
        &shop_checks("main", "main").replace("revenue-team", "\"<b>revenue</b> & co\""),
    );
    let config = Arc::new(warden::config::load(&project.config()).unwrap().config);
    let registry = Registry::open(&config.agent.registry).await.unwrap();
    let state = AppState::builder(config.clone(), registry)
        .ready(true)
        .build();
    let now = Utc::now().with_nanosecond(0).unwrap();
    for ds in &config.datasets {
        let scope = Scope::scheduled(ds, now, config.agent.timezone);
        state.runner().run(ds, &scope, now, true).await.unwrap();
    }
    assert_eq!(
        state.registry().latest_results_all().await.unwrap().len(),
        4
    );
    (state, project, db)
}

async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = warden::http::router(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

on_both_engines!(the_status_page_shows_a_row_count_change_as_a_percent);

/// A 30% drop is stored as the fraction -0.3 and shown as "-30%" (not
/// "-0.3%"), its limit as "max_drop 30%".
async fn the_status_page_shows_a_row_count_change_as_a_percent(db: &TestRegistry) {
    let project = Project::new();
    project.write(
        "warden.yaml",
        &warden_yaml(
            "sqlite://warden.db",
            &[("main", "sqlite://warehouse.db")],
            "",
        ),
    );
    project.write(
        "checks/orders.yaml",
        "datasets:\n  - name: orders\n    warehouse: main\n    table: orders\n    schedule: \"@daily\"\n    \
         checks:\n      - row_count_change: { vs: previous, max_drop: 30% }\n",
    );
    let config = Arc::new(warden::config::load(&project.config()).unwrap().config);
    let result = warden::check::CheckResult {
        check: "orders.row_count_change".to_owned(),
        dataset: "orders".to_owned(),
        kind: "row_count_change".to_owned(),
        column: None,
        partition: None,
        outcome: warden::check::Outcome::Fail,
        observed: Some(-0.3),
        threshold: [("max_drop".to_owned(), serde_json::json!(0.3))].into(),
        message: "70 rows, -30% vs 100 the previous run: dropped more than 30%".to_owned(),
        duration_ms: 3,
        expected: None,
        score: None,
    };
    db.record_run(&[warden::registry::RunRecord::new(result, Utc::now())])
        .await
        .unwrap();
    let registry = Registry::open(&db.url).await.unwrap();
    let state = AppState::builder(config, registry).ready(true).build();
    let (status, _, page) = call(&state, get("/", None)).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<td>-30%</td><td>max_drop 30%</td>"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_guard_the_api_and_errors_are_json() {
    let (state, _project, _db) = api_state("  api_tokens: [s3cret, second]\n").await;

    let (status, headers, body) = call(&state, get("/api/v1/datasets", None)).await;
    assert_eq!(status, 401);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer realm=\"warden\"");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert!(body["detail"].as_str().unwrap().contains("Bearer"));

    let (status, _, body) = call(&state, get("/api/v1/datasets", Some("wrong"))).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = call(&state, get("/api/v1/datasets", Some("second"))).await;
    assert_eq!(status, 200, "{body}");

    // Health and metrics stay open; the status page needs a token too.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, _, body) = call(&state, get(path, None)).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, headers, _) = call(&state, get("/", None)).await;
    assert_eq!(status, 401);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Basic realm=\"warden\"");
    let (status, _, _) = call(&state, get("/", Some("second"))).await;
    assert_eq!(status, 200);

    let cases = [
        ("/api/v1/datasets/nope", 404, "no dataset `nope`"),
        (
            "/api/v1/checks/orders.nope/history",
            404,
            "no check `orders.nope`",
        ),
        (
            "/api/v1/checks/orders.row_count/history?limit=0",
            400,
            "`limit`",
        ),
        (
            "/api/v1/checks/orders.row_count/history?limit=5000",
            400,
            "`limit`",
        ),
        ("/nowhere", 404, "no route for /nowhere"),
    ];
    for (path, code, detail) in cases {
        let (status, headers, body) = call(&state, get(path, Some("s3cret"))).await;
        assert_eq!(status.as_u16(), code, "{path}: {body}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{path}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(detail),
            "{path}: {body}"
        );
    }

    let (status, _, body) = call(
        &state,
        get(
            "/api/v1/checks/orders.row_count/history?limit=1",
            Some("s3cret"),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["results"].as_array().unwrap().len(), 1);
    assert_eq!(body["results"][0]["observed"], 3.0);
    state.registry().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_each_dataset_and_check() {
    let (state, _project, _db) = api_state("").await;
    let (status, headers, html) = call(&state, get("/", None)).await;
    assert_eq!(status, 200);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        html.contains("<meta name=\"viewport\""),
        "readable on a phone"
    );
    assert!(html.contains("http-equiv=\"refresh\""), "refreshes itself");
    // Worst dataset first; each check with its outcome and observed value.
    let orders = html.find("id=\"orders\"").expect("orders section");
    let events = html.find("id=\"events\"").expect("events section");
    assert!(orders < events, "the failing dataset comes first");
    assert!(html.contains("null_rate_customer_id"));
    assert!(html.contains("33.33%"), "observed null ratio");
    assert!(html.contains("max 0.00%"), "its threshold");
    assert!(html.contains("tier 1"));
    assert!(html.contains("freshness lag"));
    // What the config author wrote is escaped.
    assert!(
        html.contains("owner &lt;b&gt;revenue&lt;/b&gt; &amp; co"),
        "{html}"
    );
    assert!(!html.contains("<b>revenue</b>"));
    state.registry().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_and_check_pages_answer_and_refuse_what_they_cannot_show() {
    let (state, _project, _db) = api_state("").await;
    let (status, headers, html) = call(&state, get("/datasets/orders", None)).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        html.contains("<svg class=\"spark\""),
        "its checks' sparklines"
    );
    assert!(html.contains("No gate has seen a partition."));
    assert!(
        html.contains("owner &lt;b&gt;revenue&lt;/b&gt; &amp; co"),
        "escaped"
    );
    let (status, _, html) = call(
        &state,
        get("/checks/orders.null_rate_customer_id?range=30d", None),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<strong aria-current=\"true\">30d</strong>"));
    assert!(html.contains("<tr class=\"result fail\">"), "{html}");
    assert!(html.contains("33.33%"));
    // Wrong input is a JSON error naming it; unknown names are 404s.
    for (path, code, detail) in [
        (
            "/checks/orders.row_count?range=1y",
            400,
            "`range` must be 7d, 30d or 90d, not `1y`",
        ),
        (
            "/?page=0",
            400,
            "`page` must be a whole number from 1, not `0`",
        ),
        (
            "/checks/orders.nothing",
            404,
            "no check `orders.nothing` is configured or recorded",
        ),
        (
            "/datasets/nothing",
            404,
            "no dataset `nothing` is configured",
        ),
    ] {
        let (status, _, body) = call(&state, get(path, None)).await;
        assert_eq!(status.as_u16(), code, "{path}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["detail"], detail, "{path}");
    }
    // `/api/v1/status`: the page's summary.
    let (status, _, body) = call(&state, get("/api/v1/status", None)).await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["datasets"][0]["name"], "orders", "worst first");
    assert_eq!(body["datasets"].as_array().unwrap().len(), 2);
    state.registry().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_need_the_read_scope() {
    let tokens = "  api_tokens:\n    - { name: viewer, token: view-secret, scopes: [read] }\n    - { name: publisher, token: pub-secret, scopes: [publish] }\n";
    let (state, _project, _db) = api_state(tokens).await;
    for path in [
        "/datasets/orders",
        "/checks/orders.row_count",
        "/api/v1/status",
    ] {
        let (status, _, _) = call(&state, get(path, Some("view-secret"))).await;
        assert_eq!(status, 200, "{path}");
        let (status, _, _) = call(&state, get(path, None)).await;
        assert_eq!(status, 401, "{path}");
        let (status, _, body) = call(&state, get(path, Some("pub-secret"))).await;
        assert_eq!(status, 403, "{path}");
        assert!(body.contains("lacks the `read` scope"), "{path}: {body}");
    }
    state.registry().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_warehouse_does_not_starve_the_others() {
    let Some(pg) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    pg.exec("CREATE TABLE {s}.big (id INTEGER); INSERT INTO {s}.big VALUES (1);")
        .await;
    let local = TestDb::new(Backend::Sqlite).await.unwrap();
    shop_tables(&local).await;
    let project = Project::new();
    // Two check slots in all, and a slow warehouse allowed four connections.
    let yaml = warden_yaml(
        "sqlite://warden.db",
        &[("slow", pg.url()), ("local", local.url())],
        "",
    )
    .replace("max_concurrent_checks: 4", "max_concurrent_checks: 2")
    .replacen("max_connections: 2", "max_connections: 4", 1);
    project.write("warden.yaml", &yaml);
    let mut slow = String::from("datasets:\n");
    for i in 0..3 {
        slow.push_str(&format!(
            "  - name: slow_{i}\n    warehouse: slow\n    table: {schema}.big\n    schedule: \"0 0 1 1 *\"\n    checks:\n      - sql: {{ name: crawl, query: \"SELECT count(*) FROM {{{{ table }}}}, pg_sleep(4)\", max: 10 }}\n",
            schema = pg.schema
        ));
    }
    // Loaded (and queued) before the local datasets.
    project.write("checks/a_slow.yaml", &slow);
    project.write(
        "checks/shop.yaml",
        &shop_checks("local", "main").replace("\"* * * * *\"", "\"0 0 1 1 *\""),
    );
    let started = std::time::Instant::now();
    let options = Options {
        run_on_start: true,
        ..Options::default()
    };
    let (agent, _) = spawn_agent(&project.config(), options).await;
    let registry = agent.state().registry().clone();
    let orders = DatasetName::parse("orders").unwrap();
    let events = DatasetName::parse("events").unwrap();
    eventually(
        Duration::from_secs(20),
        "the local datasets' results",
        || {
            let registry = registry.clone();
            let (orders, events) = (orders.clone(), events.clone());
            async move {
                let o = registry.latest_results(&orders).await.unwrap();
                let e = registry.latest_results(&events).await.unwrap();
                (o.len() == 3 && e.len() == 1).then_some(())
            }
        },
    )
    .await;
    // The three slow runs take 4 s each on the one slot the slow warehouse
    // may hold; the local ones finished while the first was still running.
    let local_done = started.elapsed();
    let slow_done = registry.latest_results_all().await.unwrap();
    assert!(
        slow_done
            .iter()
            .filter(|s| s.result.dataset.starts_with("slow_"))
            .count()
            <= 1,
        "at most one slow run finished before the local ones ({local_done:?})"
    );
    assert!(local_done < Duration::from_secs(8), "{local_done:?}");
    agent.shutdown().await;
    pg.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_runs_under_way_finish() {
    let Some(pg) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    pg.exec("CREATE TABLE {s}.big (id INTEGER); INSERT INTO {s}.big VALUES (1);")
        .await;
    let project = Project::new();
    project.write(
        "warden.yaml",
        &warden_yaml("sqlite://warden.db", &[("main", pg.url())], ""),
    );
    project.write(
        "checks/slow.yaml",
        &format!(
            "datasets:\n  - name: slow\n    warehouse: main\n    table: {}.big\n    schedule: \"0 0 1 1 *\"\n    checks:\n      - sql: {{ name: crawl, query: \"SELECT count(*) FROM {{{{ table }}}}, pg_sleep(3)\", max: 10 }}\n",
            pg.schema
        ),
    );
    let options = Options {
        run_on_start: true,
        grace: Duration::from_secs(20),
        ..Options::default()
    };
    let (agent, _) = spawn_agent(&project.config(), options).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    agent.shutdown().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "waited for the run: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(15),
        "and no longer: {waited:?}"
    );
    // The registry was closed with the agent; open it again to read.
    let reopened = Registry::open(&format!("sqlite://{}", project.path("warden.db").display()))
        .await
        .unwrap();
    let results = reopened
        .latest_results(&DatasetName::parse("slow").unwrap())
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].result.outcome.as_str(),
        "pass",
        "{:?}",
        results[0].result
    );
    pg.cleanup().await;
}

/// The real binary: SIGHUP with a typo in one of two check files keeps that
/// file's datasets running (API 200, checks still run) while the other
/// file's change applies; the reload metrics say 0 until a fix, then 1, and
/// the status page shows the problem until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typo_on_reload_keeps_the_file_in_force_and_says_so() {
    let (_db, project) = sqlite_shop().await;
    let shop = shop_checks("main", "main");
    let split = shop.find("  - name: events").unwrap();
    let orders = shop[..split].to_owned();
    let events = format!("datasets:\n{}", &shop[split..]);
    project.write("checks/orders.yaml", &orders);
    project.write("checks/events.yaml", &events);
    let mut agent = AgentProcess::start(&project.config(), &[]);
    agent.wait_ready(Duration::from_secs(30)).await;
    let base = agent.base.clone();
    let reload_metrics = || {
        let url = format!("{base}/metrics");
        async move {
            let (_, metrics) = get_text(&url).await;
            let ok = sample(&metrics, "warden_config_last_reload_successful");
            let at = sample(
                &metrics,
                "warden_config_last_reload_success_timestamp_seconds",
            );
            (ok, at, metrics)
        }
    };
    let (ok, first_success, metrics) = reload_metrics().await;
    assert_eq!(ok, Some(1.0), "{metrics}");
    let first_success = first_success.expect("a last success");
    assert!(first_success > 1e9, "{first_success}");
    if let Some(complaints) = promtool_check_metrics(&metrics) {
        assert_eq!(complaints, "", "promtool check metrics complained");
    }

    // A typo in orders.yaml, a change in events.yaml.
    project.write(
        "checks/orders.yaml",
        &orders.replace("    schedule:", "    shedule:"),
    );
    // events becomes tier 3, and on demand only.
    project.write(
        "checks/events.yaml",
        &events
            .replace("tier: 2", "tier: 3")
            .replace("    schedule: \"* * * * *\"\n", ""),
    );
    let reloaded_at = Utc::now();
    agent.signal("HUP");
    eventually(Duration::from_secs(10), "configuration #2", || {
        let url = format!("{base}/readyz");
        async move {
            let (_, ready) = get_json(&url).await;
            (ready["configuration"] == 2).then_some(())
        }
    })
    .await;
    let log = agent.log();
    assert!(
        log.contains("orders.yaml:7:5: unknown key `shedule`; did you mean `schedule`?"),
        "{log}"
    );
    let (status, body) = get_json(&format!("{base}/api/v1/datasets/orders")).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = get_json(&format!("{base}/api/v1/datasets")).await;
    let by_name = |name: &str| {
        body["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed: {body}"))
            .clone()
    };
    assert_eq!(by_name("orders")["schedule"], "* * * * *");
    assert_eq!(by_name("events")["tier"], 3, "the other file reloaded");
    assert_eq!(by_name("events")["schedule"], Value::Null);
    assert_eq!(by_name("events")["next_run_at"], Value::Null);
    let (ok, at, metrics) = reload_metrics().await;
    assert_eq!(ok, Some(0.0), "{metrics}");
    assert_eq!(at, Some(first_success), "the last good load stays");
    if let Some(complaints) = promtool_check_metrics(&metrics) {
        assert_eq!(complaints, "", "promtool check metrics complained");
    }
    let (_, page) = get_text(&format!("{base}/")).await;
    assert!(page.contains("id=\"config-errors\""), "{page}");
    assert!(
        page.contains("orders.yaml:7:5: unknown key `shedule`; did you mean `schedule`?"),
        "{page}"
    );
    assert!(
        page.contains("The previous version stays in force for:"),
        "{page}"
    );
    assert!(page.contains(" · on demand"), "{page}");

    // The kept file's checks still run on their schedule.
    eventually(TWO_TICKS, "a run of orders after the reload", || {
        let url = format!("{base}/api/v1/checks/orders.row_count/history?limit=5");
        async move {
            let (_, body) = get_json(&url).await;
            body["results"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| parse_time(&r["scheduled_at"]) > reloaded_at)
                .then_some(())
        }
    })
    .await;

    // Fixed: metrics back to 1 with a newer last success, no banner.
    project.write("checks/orders.yaml", &orders);
    agent.signal("HUP");
    eventually(Duration::from_secs(10), "configuration #3", || {
        let url = format!("{base}/readyz");
        async move {
            let (_, ready) = get_json(&url).await;
            (ready["configuration"] == 3).then_some(())
        }
    })
    .await;
    let (ok, at, metrics) = reload_metrics().await;
    assert_eq!(ok, Some(1.0), "{metrics}");
    assert!(at.unwrap() > first_success, "{metrics}");
    let (_, page) = get_text(&format!("{base}/")).await;
    assert!(!page.contains("config-errors"), "{page}");

    let status = agent.terminate(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
}

/// A SQLite registry serves one agent: a second `warden run` on the same
/// file refuses to start and names the agent that has it, instead of
/// quietly sharing it. The hold goes with its agent, however it ends: after
/// a clean stop and after `kill -9` the next agent starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_a_sqlite_registry_refuses_to_start() {
    let (_db, project) = sqlite_shop().await;
    project.write("checks/shop.yaml", &shop_checks("main", "main"));
    let config = project.config();
    let wait = Duration::from_secs(30);

    let port = crate::support::agent::free_port();
    let mut first = AgentProcess::start_on(&config, port, &[]);
    first.wait_ready(wait).await;

    let mut second = AgentProcess::start(&config, &[]);
    let status = second.wait_exit(wait).await;
    let log = second.log();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "warden.db is in use by another warden agent (pid {} listening on 127.0.0.1:{port}, \
             started ",
            first.pid()
        )),
        "{log}"
    );
    assert!(
        log.contains("a SQLite registry serves one agent. Stop the other agent, or run several agents on a PostgreSQL registry"),
        "{log}"
    );
    // The first one was not disturbed.
    let (status, _) = get_json(&format!("{}/readyz", first.base)).await;
    assert_eq!(status, 200);

    // A clean stop hands the registry on.
    assert!(first.terminate(wait).await.success());
    let mut third = AgentProcess::start(&config, &[]);
    third.wait_ready(wait).await;

    // So does a killed agent: the lock dies with its process.
    third.signal("KILL");
    let _ = third.wait_exit(wait).await;
    let mut fourth = AgentProcess::start(&config, &[]);
    fourth.wait_ready(wait).await;
    assert!(fourth.terminate(wait).await.success());
}

/// A run queue's depth is counted before its run is sent: a worker that
/// takes a run at once never counts it out before it was counted in (the
/// depth went below zero, and summing the depths overflowed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_taken_at_once_never_takes_the_queue_depth_below_zero() {
    use warden::app::circuit::Circuit;
    use warden::app::{Enqueued, Generation, Job, Lane};
    const DATASETS: usize = 2_000;
    let project = Project::new();
    let mut checks = String::from("datasets:\n");
    for d in 0..DATASETS {
        checks.push_str(&format!(
            "  - name: d{d}\n    warehouse: main\n    table: t\n    checks:\n      - row_count: {{ min: 1 }}\n"
        ));
    }
    project.write("checks/many.yaml", &checks);
    project.write(
        "warden.yaml",
        "warehouses:\n  main:\n    url: sqlite://warehouse.db\nchecks: [checks/*.yaml]\n",
    );
    let config = Arc::new(project.load());
    let registry = Registry::open("sqlite::memory:").await.unwrap();
    let state = AppState::builder(config.clone(), registry).build();
    let (lane, mut rx) = Lane::new(Arc::new(Circuit::new("main")), DATASETS);
    let depth = lane.depth_counter().clone();
    // A worker that takes each run the moment it is sent.
    let worker = std::thread::spawn(move || {
        let mut below_zero = 0;
        let mut taken = 0;
        while taken < DATASETS {
            if rx.try_recv().is_ok() {
                taken += 1;
                if depth.fetch_sub(1, Ordering::SeqCst) == 0 {
                    below_zero += 1;
                }
            }
        }
        below_zero
    });
    let generation = Generation::new(
        1,
        config.clone(),
        state.runner(),
        [("main".to_owned(), lane)].into(),
    );
    let lane = &generation.lanes["main"];
    for index in 0..DATASETS {
        let job = Job::scheduled(&generation, index, Utc::now());
        assert!(matches!(lane.enqueue(job), Enqueued::Queued));
        assert!(generation.queued() <= DATASETS);
    }
    assert_eq!(worker.join().unwrap(), 0, "the depth went below zero");
    assert_eq!(generation.queued(), 0);
}
