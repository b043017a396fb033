//! A gate project per test: `warden.yaml` and a check file in a temporary
//! directory, a warehouse holding the published table and its staging table,
//! and a fresh registry. Two set-ups: a SQLite warehouse with a SQLite
//! registry, and a PostgreSQL warehouse with a PostgreSQL registry database
//! (`WARDEN_TEST_POSTGRES_URL`; skipped with a note when unset).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use warden::check::Runner;
use warden::config::Config;
use warden::gate::{GateOptions, GateRequest, GateService, Quarantine};
use warden::metrics::Metrics;
use warden::registry::Registry;

use crate::support::agent;
use crate::support::db::{Backend, TestDb};
use crate::support::registry::TestRegistry;

/// Which engines hold the warehouse and the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Setup)` case on SQLite and on PostgreSQL, as
/// `<case>::sqlite` and `<case>::postgres`.
#[macro_export]
macro_rules! on_both_setups {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$case($crate::support::gate::Setup::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$case($crate::support::gate::Setup::Postgres).await;
            }
        }
    )+};
}

/// The datasets every project declares. `{s}` is the test's schema and
/// `{SLOW}` a query that takes seconds on the engine while `knob.n` is large
/// (see [`Project::set_slowness`]). Schedules are yearly: no scheduled run
/// gets in the way of a test.
pub const CHECKS: &str = r#"datasets:
  - name: orders
    warehouse: main
    table: {s}.orders
    tier: 1
    owner: revenue-team
    runbook: https://wiki.example/orders
    schedule: "0 0 1 1 *"
    partition: { column: order_date, granularity: day }
    gate: { table: {s}.orders_staging }
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 0 }
      - unique: { columns: [order_id] }
      - null_rate: { column: coupon, max: 0, blocking: false }
      - freshness: { column: order_date, max_lag: 1h }
  - name: events
    warehouse: main
    table: {s}.events
    tier: 2
    owner: web-team
    schedule: "0 0 1 1 *"
    checks:
      - row_count: { min: 1 }
  - name: slow
    warehouse: main
    table: {s}.orders
    tier: 3
    schedule: "0 0 1 1 *"
    gate: { allow_empty: true }
    checks:
      - sql:
          name: takes_seconds
          query: "{SLOW}"
          max: 0
"#;

/// The published table and its staging copy, both empty.
const TABLES: &str = "CREATE TABLE {s}.orders (order_id BIGINT NOT NULL, customer_id BIGINT, \
     coupon TEXT, order_date DATE NOT NULL);
CREATE TABLE {s}.orders_staging (order_id BIGINT NOT NULL, customer_id BIGINT, \
     coupon TEXT, order_date DATE NOT NULL);
CREATE TABLE {s}.knob (n BIGINT NOT NULL);
INSERT INTO {s}.knob VALUES (20000000);";

/// A project on one set-up.
pub struct Project {
    pub files: agent::Project,
    pub db: TestDb,
    /// Keeps the registry's database or file alive.
    _registry_db: TestRegistry,
    pub registry: Registry,
    pub config: Arc<Config>,
    pub runner: Arc<Runner>,
    pub metrics: Arc<Metrics>,
    /// Every quarantine the services of this project reported.
    pub quarantines: Arc<Mutex<Vec<Quarantine>>>,
}

impl Project {
    /// `None` (with a note) when PostgreSQL is asked for and not configured.
    pub async fn new(setup: Setup) -> Option<Self> {
        Self::with_agent(setup, "").await
    }

    /// Like [`new`](Self::new), with more lines for `agent:` in `warden.yaml`
    /// (each indented by two spaces and ending with a newline).
    pub async fn with_agent(setup: Setup, extra_agent: &str) -> Option<Self> {
        let (db, test_registry) = match setup {
            Setup::Sqlite => (
                TestDb::new(Backend::Sqlite).await?,
                TestRegistry::sqlite().await,
            ),
            Setup::Postgres => (
                TestDb::new(Backend::Postgres).await?,
                TestRegistry::postgres().await?,
            ),
        };
        db.exec(TABLES).await;
        let slow = match setup {
            // A recursive count to n: seconds for 20 million, nothing for 1.
            Setup::Sqlite => {
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                 WHERE x < (SELECT n FROM {s}.knob)) SELECT count(*) - (SELECT n FROM {s}.knob) FROM c"
            }
            // n / 4 million seconds.
            Setup::Postgres => "SELECT 0 FROM pg_sleep((SELECT n FROM {s}.knob)::float8 / 4e6)",
        };
        let files = agent::Project::new();
        let main = format!(
            "agent:\n  listen: 127.0.0.1:9464\n  registry: {}\n  timezone: UTC\n{extra_agent}\
             warehouses:\n  main:\n    url: {}\n    max_connections: 8\n    query_timeout: 60s\n\
             checks: [checks/*.yaml]\n",
            test_registry.url,
            db.url()
        );
        files.write("warden.yaml", &main);
        files.write(
            "checks/datasets.yaml",
            &CHECKS.replace("{SLOW}", slow).replace("{s}", &db.schema),
        );
        let config = Arc::new(files.load());
        let registry = test_registry.registry.clone();
        let runner = Arc::new(warden::app::runner(&config, Some(registry.clone())));
        Some(Self {
            files,
            db,
            _registry_db: test_registry,
            registry,
            config,
            runner,
            metrics: Arc::new(Metrics::new()),
            quarantines: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Drops the warehouse schema (PostgreSQL); the registry goes with the
    /// project.
    pub async fn finish(self) {
        self.db.cleanup().await;
    }

    /// Makes the `slow` dataset's check take seconds (`true`) or nothing.
    pub async fn set_slowness(&self, slow: bool) {
        let n = if slow { 20_000_000 } else { 1 };
        self.db
            .exec(&format!("UPDATE {{s}}.knob SET n = {n};"))
            .await;
    }

    pub fn config_path(&self) -> PathBuf {
        self.files.config()
    }

    /// A gate service of agent `agent_id` on this project's registry, with a
    /// 30 s timeout, reporting quarantines to [`Self::quarantines`].
    pub fn service(&self, agent_id: &str) -> GateService {
        let service = GateService::with_options(
            self.registry.clone(),
            self.metrics.clone(),
            GateOptions {
                agent_id: agent_id.to_owned(),
                lineage: None,
                timeout: Duration::from_secs(30),
                busy_poll: Duration::from_millis(20),
                sweep_every: Duration::from_secs(10),
            },
        );
        let seen = self.quarantines.clone();
        service.set_quarantine_hook(Arc::new(move |q: &Quarantine| {
            seen.lock().unwrap().push(q.clone());
        }));
        service
    }

    /// Stages rows `(order_id, customer_id, coupon)` of `day` in the staging table.
    pub async fn stage(&self, day: &str, rows: &[(i64, Option<i64>, Option<&str>)]) {
        self.insert("orders_staging", day, rows).await;
    }

    /// Swaps the staged partition `day` into the published table, as the
    /// pipeline does between the gate and the publication.
    pub async fn swap(&self, day: &str) {
        self.db
            .exec(&format!(
                "DELETE FROM {{s}}.orders WHERE order_date = '{day}';
                 INSERT INTO {{s}}.orders SELECT * FROM {{s}}.orders_staging WHERE order_date = '{day}';"
            ))
            .await;
    }

    async fn insert(&self, table: &str, day: &str, rows: &[(i64, Option<i64>, Option<&str>)]) {
        let values: Vec<String> = rows
            .iter()
            .map(|(id, customer, coupon)| {
                format!(
                    "({id}, {}, {}, '{day}')",
                    customer.map_or("NULL".to_owned(), |c| c.to_string()),
                    coupon.map_or("NULL".to_owned(), |c| format!("'{c}'"))
                )
            })
            .collect();
        self.db
            .exec(&format!(
                "INSERT INTO {{s}}.{table} (order_id, customer_id, coupon, order_date) VALUES {};",
                values.join(", ")
            ))
            .await;
    }

    /// Good rows for `day`: three orders with customers (one without a coupon,
    /// which only a non-blocking check minds).
    pub async fn stage_good(&self, day: &str, first_id: i64) {
        self.stage(
            day,
            &[
                (first_id, Some(1), Some("A")),
                (first_id + 1, Some(2), None),
                (first_id + 2, Some(3), Some("B")),
            ],
        )
        .await;
    }

    /// Bad rows for `day`: an order without a customer.
    pub async fn stage_bad(&self, day: &str, first_id: i64) {
        self.stage(
            day,
            &[
                (first_id, Some(1), Some("A")),
                (first_id + 1, None, Some("B")),
            ],
        )
        .await;
    }
}

pub fn request(dataset: &str, partition: &str, run_id: Option<&str>) -> GateRequest {
    GateRequest {
        dataset: dataset.to_owned(),
        partition: partition.to_owned(),
        run_id: run_id.map(str::to_owned),
    }
}
