//! Several agents on one PostgreSQL registry, as users run them for
//! availability: three `warden run` processes share 300 datasets checked
//! every minute; one is killed with SIGKILL in the middle of a tick (and of
//! a gate) and started again a minute later. No scheduled run is lost or
//! recorded twice, the work is shared, each failing check pages once, and
//! no partition is left `validating`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use sqlx::Row;

use crate::support::agent::{AgentProcess, Project, eventually, free_port};
use crate::support::db::{Backend, TestDb};
use crate::support::receiver::TestReceiver;
use crate::support::registry::TestRegistry;

/// Datasets checked every minute; the first `FAILING` watch empty tables.
const DATASETS: usize = 300;
const FAILING: usize = 5;
/// Scheduled ticks observed: five minutes.
const TICKS: i64 = 5;
const CHECKS_PER_DATASET: i64 = 2;

fn warden_yaml(registry: &str, warehouse: &str) -> String {
    format!(
        "agent:\n  listen: 127.0.0.1:9464\n  registry: {registry}\n  timezone: UTC\n  \
         max_concurrent_checks: 4\n  run_lease: 10s\n\
         warehouses:\n  main:\n    url: {warehouse}\n    max_connections: 4\n    query_timeout: 60s\n\
         checks: [checks/*.yaml]\nalerts: routes.yaml\n"
    )
}

fn checks(schema: &str) -> String {
    let mut y = String::from("datasets:\n");
    for i in 0..DATASETS {
        y.push_str(&format!(
            "  - name: ds{i:03}\n    warehouse: main\n    table: {schema}.t{i:03}\n    tier: 1\n    \
             schedule: \"* * * * *\"\n    checks:\n      - row_count: {{ min: 1 }}\n      \
             - sql: {{ name: settles, query: \"SELECT 0 FROM pg_sleep(0.3)\", max: 0 }}\n"
        ));
    }
    // On demand only: gated by pipelines, with a check that takes seconds.
    y.push_str(&format!(
        "  - name: gated\n    warehouse: main\n    table: {schema}.gated\n    tier: 2\n    \
         partition: {{ column: day, granularity: day }}\n    gate: {{ allow_empty: true }}\n    \
         checks:\n      - sql: {{ name: takes_seconds, query: \"SELECT 0 FROM pg_sleep(15)\", max: 0 }}\n"
    ));
    y
}

fn routes(pd: &str) -> String {
    format!(
        "receivers:\n  oncall: {{ pagerduty: {{ routing_key: pd-key-1, url: \"{pd}/v2/enqueue\" }} }}\n\
         routes:\n  - match: {{ tier: 1 }}\n    receivers: [oncall]\n\
         policy:\n  group_wait: 5s\n  repeat_interval: 1h\n  consecutive_failures: 1\n  \
         send_resolved: true\n  delivery: {{ timeout: 2s, initial_backoff: 100ms, max_backoff: 1s, max_age: 1h }}\n"
    )
}

/// The port in an agent id (`host/127.0.0.1:port/run`): which of the three
/// processes (a restarted one keeps its port) made a claim.
fn port_of(agent_id: &str) -> u16 {
    agent_id
        .split('/')
        .nth(1)
        .and_then(|addr| addr.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in agent id `{agent_id}`"))
}

async fn sleep_until(t: DateTime<Utc>) {
    if let Ok(d) = (t - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_agents_share_the_work_and_survive_a_kill() {
    let Some(registry) = TestRegistry::postgres().await else {
        return;
    };
    let db = TestDb::new(Backend::Postgres)
        .await
        .expect("WARDEN_TEST_POSTGRES_URL is set");
    let mut tables = String::new();
    for i in 0..DATASETS {
        tables.push_str(&format!("CREATE TABLE {{s}}.t{i:03} (id BIGINT);\n"));
        if i >= FAILING {
            tables.push_str(&format!("INSERT INTO {{s}}.t{i:03} VALUES (1), (2);\n"));
        }
    }
    tables.push_str("CREATE TABLE {s}.gated (day DATE NOT NULL, id BIGINT);\n");
    db.exec(&tables).await;

    let pd = TestReceiver::ok(202).await;
    let project = Project::new();
    project.write("warden.yaml", &warden_yaml(&registry.url, db.url()));
    project.write("checks/all.yaml", &checks(&db.schema));
    project.write("routes.yaml", &routes(&pd.url));
    let config = project.config();
    let ready = Duration::from_secs(60);

    let ports = [free_port(), free_port(), free_port()];
    let mut agents = Vec::new();
    for port in ports {
        let mut agent = AgentProcess::start_on(&config, port, &[]);
        agent.wait_ready(ready).await;
        agents.push(agent);
    }
    // The first tick every agent saw coming, and the last one observed.
    let minute = chrono::Duration::minutes(1);
    let first = Utc::now().duration_trunc(minute).unwrap() + minute;
    let last = first + minute * (TICKS as i32 - 1);

    // Second tick: a gate goes to the victim, then, while that gate and the
    // tick's runs are under way, the victim is killed.
    sleep_until(first + minute + chrono::Duration::seconds(3)).await;
    let victim = ports[0];
    let day = (Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let gate = tokio::spawn({
        let url = format!("http://127.0.0.1:{victim}/api/v1/gates?wait=20s");
        let body = serde_json::json!({"dataset": "gated", "partition": day, "run_id": "nightly"});
        async move { reqwest::Client::new().post(url).json(&body).send().await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    agents[0].signal("KILL");
    let killed_at = Utc::now();
    agents[0].wait_exit(ready).await;
    assert!(gate.await.unwrap().is_err(), "the killed agent answered");

    // A minute later it comes back on its address.
    sleep_until(killed_at + minute).await;
    let mut back = AgentProcess::start_on(&config, victim, &[]);
    back.wait_ready(ready).await;
    agents[0] = back;

    // Every run of every observed tick is recorded and its claim finished.
    let pool = sqlx::PgPool::connect(&registry.url).await.unwrap();
    sleep_until(last + chrono::Duration::seconds(30)).await;
    let claims = eventually(
        Duration::from_secs(120),
        "every observed run finished",
        || {
            let pool = pool.clone();
            async move {
                let rows = sqlx::query(
                    "SELECT dataset, scheduled_at, claimed_by, finished_at IS NOT NULL AS finished \
                 FROM scheduler_claims WHERE scheduled_at BETWEEN $1 AND $2",
                )
                .bind(first)
                .bind(last)
                .fetch_all(&pool)
                .await
                .unwrap();
                let finished = rows.iter().filter(|r| r.get::<bool, _>("finished")).count();
                (finished == DATASETS * TICKS as usize).then_some(rows)
            }
        },
    )
    .await;

    // Exactly once: each (dataset, tick) has one claim and a result for
    // each of its checks (results are keyed by check, partition and tick).
    let results: Vec<(String, DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT dataset, scheduled_at, count(*) FROM check_results \
         WHERE scheduled_at BETWEEN $1 AND $2 AND dataset <> 'gated' GROUP BY 1, 2",
    )
    .bind(first)
    .bind(last)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        results.len(),
        DATASETS * TICKS as usize,
        "(dataset, tick) pairs recorded"
    );
    let ticks: BTreeSet<DateTime<Utc>> = results.iter().map(|r| r.1).collect();
    assert_eq!(ticks.len(), TICKS as usize, "{ticks:?}");
    assert_eq!((ticks.first(), ticks.last()), (Some(&first), Some(&last)));
    for (dataset, tick, n) in &results {
        assert_eq!(*n, CHECKS_PER_DATASET, "{dataset} at {tick}");
    }
    let distinct: BTreeSet<(String, DateTime<Utc>)> = claims
        .iter()
        .map(|r| (r.get("dataset"), r.get("scheduled_at")))
        .collect();
    assert_eq!(distinct.len(), claims.len());

    // The victim died with runs in flight (its four slots were busy for
    // seconds of pg_sleep): the survivors took them over.
    let takeovers: usize = agents[1..]
        .iter()
        .map(|a| {
            a.log()
                .matches("taking over a run whose agent stopped renewing its lease")
                .count()
        })
        .sum();
    assert!(takeovers >= 1, "no run was taken over");

    // The work was shared: each process did between 20% and 50% of it.
    let mut share: BTreeMap<u16, usize> = BTreeMap::new();
    for r in &claims {
        *share.entry(port_of(r.get("claimed_by"))).or_default() += 1;
    }
    let total = claims.len() as f64;
    eprintln!("runs per agent (by port): {share:?}; runs taken over: {takeovers}");
    for port in ports {
        let part = share.get(&port).copied().unwrap_or(0) as f64 / total;
        assert!(
            (0.20..=0.50).contains(&part),
            "agent on {port} did {:.1}% of the runs: {share:?}",
            part * 100.0
        );
    }

    // Each failing check paged once: one PagerDuty trigger per check, no
    // second one from another agent, no resolve (they never passed).
    let events = pd.accepted();
    let mut triggers: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        let body = e.json();
        assert_eq!(body["routing_key"], "pd-key-1");
        assert_eq!(body["event_action"], "trigger", "{body:#}");
        *triggers
            .entry(body["dedup_key"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let expected: BTreeSet<String> = (0..FAILING)
        .map(|i| format!("warden/ds{i:03}.row_count"))
        .collect();
    assert_eq!(
        triggers.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{triggers:?}"
    );
    assert!(triggers.values().all(|n| *n == 1), "{triggers:?}");

    // No gate was left undecided and no partition `validating`: the gate the
    // killed agent held was denied by the agents that swept it.
    let gates: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, basis FROM gates WHERE dataset = 'gated'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(gates.len(), 1, "{gates:?}");
    assert_eq!(gates[0].0, "denied", "{gates:?}");
    let validating: i64 =
        sqlx::query_scalar("SELECT count(*) FROM partitions WHERE state = 'validating'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(validating, 0);

    for agent in &mut agents[1..] {
        assert!(agent.terminate(ready).await.success(), "{}", agent.log());
    }
    assert!(agents[0].terminate(ready).await.success());
    pool.close().await;
}
