//! A project for the alert tests: a configuration on disk (warden.yaml,
//! check files, the routes file under test) loaded the way `warden` loads
//! it, an alert manager over a test registry, and its dispatcher running
//! in the background.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use tokio_util::sync::CancellationToken;
use warden::alert::AlertManager;
use warden::check::Dataset;
use warden::check::kind::{CheckKind, RowCount, Sql};
use warden::check::{CheckResult, Outcome};
use warden::config::Config;
use warden::metrics::Metrics;
use warden::registry::Registry;

use crate::support::agent;

pub const STATUS_URL: &str = "http://127.0.0.1:9464/";

/// Policy for most tests: quick retries, 30 s of group_wait driven by the
/// times the test passes.
pub const POLICY: &str = "policy:
  group_wait: 30s
  repeat_interval: 1h
  consecutive_failures: 1
  send_resolved: true
  delivery: { timeout: 2s, initial_backoff: 100ms, max_backoff: 500ms, max_age: 1h }
";

const WARDEN_YAML: &str = "agent:
  registry: sqlite://warden.db
warehouses:
  main:
    url: sqlite://warehouse.db
  other:
    url: sqlite://other.db
checks: [checks/*.yaml]
alerts: alerts/routes.yaml
";

/// Three datasets on `main` (one per tier), and `wide` (30 checks) on
/// `other`.
fn checks_yaml() -> String {
    let mut yaml = String::from(
        r#"datasets:
  - name: orders
    warehouse: main
    table: orders
    tier: 1
    owner: revenue-team
    runbook: https://wiki.example/orders
    schedule: "*/15 * * * *"
    partition: { column: order_date, granularity: day }
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 0 }
      - freshness: { column: updated_at, max_lag: 6h }
      - unique: { columns: [order_id] }
      - sql:
          name: negative_amounts
          query: "SELECT count(*) FROM {{ table }} WHERE amount < 0"
          max: 0
  - name: events
    warehouse: main
    table: events
    tier: 2
    owner: growth-team
    schedule: "* * * * *"
    checks:
      - row_count: { min: 1 }
      - freshness: { column: event_time, max_lag: 2h }
  - name: daily_sales
    warehouse: main
    table: daily_sales
    tier: 3
    owner: finance
    schedule: "5 0 * * *"
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: region, max: 0 }
      - freshness: { column: sale_date, max_lag: 1d }
  - name: wide
    warehouse: other
    table: wide
    tier: 2
    owner: platform
    schedule: "@hourly"
    checks:
"#,
    );
    for i in 0..30 {
        yaml.push_str(&format!(
            "      - row_count: {{ name: rows_{i:02}, min: 1 }}\n"
        ));
    }
    yaml
}

/// A configured project with an alert manager.
pub struct Project {
    _files: agent::Project,
    pub config: Config,
    pub registry: Registry,
    pub metrics: Arc<Metrics>,
    pub alerts: AlertManager,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Project {
    /// A project whose routes file is `routes`, keeping alert state in
    /// `registry`.
    pub fn new(registry: &Registry, routes: &str) -> Self {
        let files = agent::Project::new();
        files.write("warden.yaml", WARDEN_YAML);
        files.write("checks/shop.yaml", &checks_yaml());
        files.write("alerts/routes.yaml", routes);
        let config = files.load();
        let metrics = Arc::new(Metrics::new());
        let alerts = AlertManager::new(
            config.routes.clone(),
            registry.clone(),
            metrics.clone(),
            Some(STATUS_URL.to_owned()),
        );
        let shutdown = CancellationToken::new();
        Self {
            _files: files,
            config,
            registry: registry.clone(),
            metrics,
            alerts,
            shutdown,
            tasks: Vec::new(),
        }
    }

    pub fn ds(&self, name: &str) -> Dataset {
        self.config
            .dataset(name)
            .unwrap_or_else(|| panic!("no dataset {name}"))
            .clone()
    }

    /// Starts delivering the outbox in the background.
    pub fn start_dispatcher(&mut self) {
        let dispatcher = self.alerts.dispatcher();
        let shutdown = self.shutdown.clone();
        self.tasks
            .push(tokio::spawn(async move { dispatcher.run(shutdown).await }));
    }

    /// Starts the flush timer in the background (real time).
    pub fn start_timer(&mut self) {
        let alerts = self.alerts.clone();
        let shutdown = self.shutdown.clone();
        self.tasks
            .push(tokio::spawn(async move { alerts.run(shutdown).await }));
    }

    /// Stops the background tasks as a shutdown would.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("background tasks stop on shutdown")
                .unwrap();
        }
    }

    /// Kills the background tasks where they stand, as a crash would.
    pub fn kill(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }

    /// The metrics exposition, for assertions on series.
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics.render().lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Now, as the registry stores it.
pub fn t0() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

pub fn plus(t: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    t + chrono::Duration::seconds(seconds)
}

/// A result of check `<ds>.<name>` with `outcome`, shaped as the engine
/// produces it (kind, column and limits from the check's configuration).
pub fn result(
    ds: &Dataset,
    name: &str,
    partition: Option<&str>,
    outcome: Outcome,
    observed: Option<f64>,
    message: &str,
) -> CheckResult {
    let spec = ds
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {}", ds.name.as_str()));
    let threshold = match &spec.kind {
        CheckKind::RowCount(RowCount { min, max }) => min
            .map(|m| ("min".to_owned(), serde_json::json!(m)))
            .into_iter()
            .chain(max.map(|m| ("max".to_owned(), serde_json::json!(m))))
            .collect(),
        CheckKind::Sql(Sql { max, .. }) => max
            .map(|m| ("max".to_owned(), serde_json::json!(m)))
            .into_iter()
            .collect(),
        _ => BTreeMap::new(),
    };
    CheckResult {
        check: spec.id.as_str().to_owned(),
        dataset: ds.name.as_str().to_owned(),
        kind: spec.kind.name().to_owned(),
        column: spec.kind.column().map(|c| c.as_str().to_owned()),
        partition: partition.map(str::to_owned),
        outcome,
        observed,
        threshold,
        message: message.to_owned(),
        duration_ms: 10,
        expected: None,
        score: None,
    }
}

/// Every check of `ds` with `outcome`.
pub fn all(ds: &Dataset, outcome: Outcome, message: &str) -> Vec<CheckResult> {
    ds.checks
        .iter()
        .map(|c| {
            let observed = (outcome != Outcome::Error).then_some(0.0);
            result(ds, &c.name, None, outcome, observed, message)
        })
        .collect()
}
