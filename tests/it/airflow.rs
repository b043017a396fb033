//! `examples/airflow/orders_publish.py` under a real Apache Airflow: `airflow
//! dags test` of the DAG on three days against a live `warden run` (the real
//! binary) whose warehouse and registry are a fresh PostgreSQL database.
//!
//! Needs `WARDEN_TEST_AIRFLOW` (the `airflow` executable of a virtualenv, or
//! the virtualenv; `.ci/run` makes one) and `WARDEN_TEST_POSTGRES_URL`. The
//! case is skipped with a note when either is unset, and fails when one is
//! set but does not work. Airflow's state (`AIRFLOW_HOME`, its SQLite
//! database, the DAG folder) lives in a temporary directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::support::agent::{AgentProcess, Project, free_port, get_json};
use crate::support::db::PgDatabase;

/// How long one `airflow` command may take (each starts a Python
/// interpreter that imports Airflow: seconds on a busy machine).
const AIRFLOW_LIMIT: Duration = Duration::from_secs(150);

/// The source rows the DAG stages from: 2026-11-19 is good, 2026-11-20 has
/// an order without a customer (a breach of `null_rate customer_id max 0`).
const WAREHOUSE: &str = "
CREATE SCHEMA raw;
CREATE SCHEMA staging;
CREATE SCHEMA analytics;
CREATE TABLE raw.orders (order_id BIGINT NOT NULL, customer_id BIGINT, amount NUMERIC(12, 2),
  coupon TEXT, referrer TEXT, order_date DATE NOT NULL, updated_at TIMESTAMPTZ NOT NULL);
CREATE TABLE staging.orders (LIKE raw.orders);
CREATE TABLE analytics.orders (LIKE raw.orders);
INSERT INTO raw.orders VALUES
  (1, 1, 10.00, 'A', NULL, '2026-11-19', '2026-11-19 10:00:00+00'),
  (2, 2, 12.50, NULL, 'ads', '2026-11-19', '2026-11-19 11:00:00+00'),
  (3, 3, 5.00, 'B', NULL, '2026-11-20', '2026-11-20 10:00:00+00'),
  (4, NULL, 7.25, 'C', NULL, '2026-11-20', '2026-11-20 11:00:00+00');
";

/// The `orders` dataset the DAG publishes, gated on its staging table.
/// The yearly schedule keeps scheduled runs out of the way.
const CHECKS: &str = r#"datasets:
  - name: orders
    warehouse: main
    table: analytics.orders
    tier: 1
    owner: revenue-team
    schedule: "0 0 1 1 *"
    partition: { column: order_date, granularity: day }
    gate: { table: staging.orders }
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 0 }
      - unique: { columns: [order_id] }
      - null_rate: { column: coupon, max: 0, blocking: false }
"#;

/// The `airflow` executable named by `WARDEN_TEST_AIRFLOW`, or `None` with a
/// note when it is unset. Panics when it is set and names nothing usable.
fn airflow_executable() -> Option<PathBuf> {
    let Some(value) = std::env::var_os("WARDEN_TEST_AIRFLOW").filter(|v| !v.is_empty()) else {
        eprintln!("note: WARDEN_TEST_AIRFLOW is not set; skipping the Airflow example");
        return None;
    };
    let path = PathBuf::from(value);
    let exe = if path.is_dir() {
        path.join("bin/airflow")
    } else {
        path
    };
    assert!(
        exe.is_file(),
        "WARDEN_TEST_AIRFLOW is set but {} is not an executable",
        exe.display()
    );
    Some(exe)
}

/// The `order_id`s of `table` for `day`.
async fn order_ids(db: &PgDatabase, table: &str, day: &str) -> Vec<i64> {
    let mut conn = db.connect().await;
    let sql =
        format!("SELECT order_id FROM {table} WHERE order_date = '{day}'::date ORDER BY order_id");
    let rows = sqlx::query(&sql)
        .fetch_all(&mut conn)
        .await
        .expect("read the orders");
    rows.iter().map(|r| r.get::<i64, _>(0)).collect()
}

/// Runs `command`, killed after `limit`; its output.
async fn run(mut command: tokio::process::Command, limit: Duration, what: &str) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match tokio::time::timeout(limit, command.output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => panic!("{what} took more than {limit:?}"),
    }
}

/// stdout and stderr of `output`, as text.
fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// GET `path` of the agent: a success, and its JSON body.
async fn get(agent: &AgentProcess, path: &str) -> Value {
    let (status, body) = get_json(&format!("{}{path}", agent.base)).await;
    assert!((200..300).contains(&status), "GET {path}: {status}: {body}");
    body
}

/// The partition of `orders` last published.
async fn published(agent: &AgentProcess) -> Value {
    get(agent, "/api/v1/datasets/orders/published").await["partition"].clone()
}

/// Partition `day` of `orders`: its state, gates and history.
async fn partition_of(agent: &AgentProcess, day: &str) -> Value {
    get(agent, &format!("/api/v1/datasets/orders/partitions/{day}")).await
}

/// Airflow with its home, database and DAG folder in a temporary directory,
/// finding the agent through `WARDEN_SERVER` and `warden` on its `PATH`.
struct Airflow {
    exe: PathBuf,
    home: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Airflow {
    fn new(exe: PathBuf, dir: &Path, warehouse_url: &str, agent: &str) -> Self {
        let home = dir.join("airflow");
        let dags = dir.join("dags");
        std::fs::create_dir_all(&home).expect("create AIRFLOW_HOME");
        std::fs::create_dir_all(&dags).expect("create the DAG folder");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/airflow/orders_publish.py"),
            dags.join("orders_publish.py"),
        )
        .expect("copy the example DAG");
        let warden_dir = Path::new(env!("CARGO_BIN_EXE_warden"))
            .parent()
            .expect("the binary's folder")
            .to_owned();
        let path = std::env::join_paths(std::iter::once(warden_dir).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .expect("PATH");
        let env = vec![
            ("AIRFLOW_HOME", home.display().to_string()),
            (
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                format!("sqlite:///{}", home.join("airflow.db").display()),
            ),
            ("AIRFLOW__CORE__DAGS_FOLDER", dags.display().to_string()),
            ("AIRFLOW__CORE__LOAD_EXAMPLES", "False".into()),
            ("AIRFLOW_CONN_WAREHOUSE", warehouse_url.to_owned()),
            ("WARDEN_SERVER", agent.to_owned()),
            ("PATH", path.to_string_lossy().into_owned()),
            ("PYTHONDONTWRITEBYTECODE", "1".into()),
        ];
        Self { exe, home, env }
    }

    async fn command(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(&self.exe);
        command
            .args(args)
            .env_remove("WARDEN_API_TOKEN")
            .env_remove("WARDEN_CONFIG")
            .current_dir(&self.home);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let what = format!("airflow {}", args.join(" "));
        let started = Instant::now();
        let output = run(command, AIRFLOW_LIMIT, &what).await;
        eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
        output
    }

    /// `airflow dags test orders_publish` for the run at 04:00 UTC on
    /// `run_day` (which handles the day before).
    async fn dags_test(&self, run_day: &str) -> Output {
        self.command(&[
            "dags",
            "test",
            "orders_publish",
            &format!("{run_day}T04:00:00+00:00"),
        ])
        .await
    }

    /// Each task of the newest DAG run: its state and try number.
    async fn last_run_tasks(&self) -> BTreeMap<String, (String, i64)> {
        let mut db = SqliteConnectOptions::new()
            .filename(self.home.join("airflow.db"))
            .read_only(true)
            .connect()
            .await
            .expect("open Airflow's database");
        let rows = sqlx::query(
            "SELECT ti.task_id, coalesce(ti.state, ''), ti.try_number FROM task_instance ti \
             WHERE ti.dag_id = 'orders_publish' AND ti.run_id = \
             (SELECT run_id FROM dag_run WHERE dag_id = 'orders_publish' ORDER BY id DESC LIMIT 1)",
        )
        .fetch_all(&mut db)
        .await
        .expect("read Airflow's task instances");
        let _ = db.close().await;
        rows.iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect()
    }
}

/// States of `tasks` as `(task, state, try)`, sorted by task.
fn states(tasks: &BTreeMap<String, (String, i64)>) -> Vec<(&str, &str, i64)> {
    tasks
        .iter()
        .map(|(task, (state, tries))| (task.as_str(), state.as_str(), *tries))
        .collect()
}

/// What [`states`] gives for a run in which every task succeeded at its first try.
const EVERY_TASK_SUCCEEDED: [(&str, &str, i64); 4] = [
    ("gate", "success", 1),
    ("publish", "success", 1),
    ("stage", "success", 1),
    ("swap", "success", 1),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_airflow_example_publishes_a_good_day_quarantines_a_bad_one_and_publishes_it_fixed() {
    let Some(exe) = airflow_executable() else {
        return;
    };
    let Some(db) = PgDatabase::create("warden_airflow").await else {
        return;
    };
    db.exec(WAREHOUSE).await;

    let port = free_port();
    let project = Project::new();
    project.write("checks/orders.yaml", CHECKS);
    project.write(
        "warden.yaml",
        &format!(
            "agent:\n  listen: 127.0.0.1:{port}\n  registry: {url}\n  timezone: UTC\n\
             warehouses:\n  main:\n    url: {url}\n    max_connections: 4\n    query_timeout: 60s\n\
             checks: [checks/*.yaml]\n",
            url = db.url
        ),
    );

    let airflow = Airflow::new(
        exe,
        project.dir.path(),
        &db.url,
        &format!("http://127.0.0.1:{port}"),
    );
    // Airflow's database and the agent come up side by side.
    let mut agent = AgentProcess::start_on(&project.config(), port, &[]);
    let (migrated, ()) = tokio::join!(
        airflow.command(&["db", "migrate"]),
        agent.wait_ready(Duration::from_secs(30))
    );
    assert!(migrated.status.success(), "{}", text(&migrated));

    // A good day: the run on 11-20 stages, gates, swaps and publishes 11-19.
    let good = airflow.dags_test("2026-11-20").await;
    let out = text(&good);
    assert!(good.status.success(), "{out}\n{}", agent.log());
    // Parsing the DAG warns about nothing deprecated.
    let deprecated: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("orders_publish.py") && l.to_lowercase().contains("deprecated"))
        .collect();
    assert!(deprecated.is_empty(), "{deprecated:#?}");
    assert_eq!(
        states(&airflow.last_run_tasks().await),
        EVERY_TASK_SUCCEEDED
    );
    assert_eq!(published(&agent).await, "2026-11-19");
    assert_eq!(
        partition_of(&agent, "2026-11-19").await["state"],
        "published"
    );
    assert_eq!(
        order_ids(&db, "analytics.orders", "2026-11-19").await,
        [1, 2]
    );

    // A bad day: the run on 11-21 gates 11-20, which breaches. The gate
    // task fails at its first try, without a retry, and nothing downstream
    // runs.
    let bad = airflow.dags_test("2026-11-21").await;
    let out = text(&bad);
    assert!(!bad.status.success(), "{out}");
    assert!(
        out.contains(
            "AirflowFailException: warden quarantined orders 2026-11-20: \
             orders.null_rate_customer_id failed"
        ),
        "{out}"
    );
    assert_eq!(
        states(&airflow.last_run_tasks().await),
        [
            ("gate", "failed", 1),
            ("publish", "upstream_failed", 0),
            ("stage", "success", 1),
            ("swap", "upstream_failed", 0)
        ]
    );
    let partition = partition_of(&agent, "2026-11-20").await;
    assert_eq!(partition["state"], "quarantined", "{partition:#}");
    let gates = partition["gates"].as_array().expect("gates");
    assert_eq!(gates.len(), 1, "{partition:#}");
    assert_eq!(gates[0]["basis"], "checks");
    assert!(
        gates[0]["run_id"].as_str().unwrap().ends_with("-try1"),
        "{partition:#}"
    );
    assert_eq!(published(&agent).await, "2026-11-19");
    assert!(
        order_ids(&db, "analytics.orders", "2026-11-20")
            .await
            .is_empty()
    );

    // The source is fixed and the day re-run: a new gate evaluates it again,
    // and the partition goes back through `validating` to `published`.
    db.exec("UPDATE raw.orders SET customer_id = 4 WHERE order_id = 4")
        .await;
    let fixed = airflow.dags_test("2026-11-21").await;
    let out = text(&fixed);
    assert!(fixed.status.success(), "{out}\n{}", agent.log());
    assert_eq!(
        states(&airflow.last_run_tasks().await),
        EVERY_TASK_SUCCEEDED
    );
    let partition = partition_of(&agent, "2026-11-20").await;
    let history: Vec<&str> = partition["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        [
            "validating",
            "quarantined",
            "validating",
            "passed",
            "published"
        ],
        "{partition:#}"
    );
    assert_eq!(partition["gates"].as_array().unwrap().len(), 2);
    assert_eq!(published(&agent).await, "2026-11-20");
    assert_eq!(
        order_ids(&db, "analytics.orders", "2026-11-20").await,
        [3, 4]
    );

    drop(agent);
}
