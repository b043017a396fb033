//! What the registry remembers between runs, driven the way a user drives
//! warden: a `warden.yaml` and a check file in a temporary directory, runs
//! through `warden::check::Runner` or the `warden` binary, and assertions on
//! what the registry holds afterwards.
//!
//! Registry-backed cases run twice: a SQLite warehouse with a SQLite registry
//! next to `warden.yaml` (the default setup), and a PostgreSQL warehouse with
//! a fresh PostgreSQL registry database (`WARDEN_TEST_POSTGRES_URL`; skipped
//! with a note when unset). Schema drift runs on every warehouse engine.

use std::path::PathBuf;
use std::process::Output;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sqlx::Connection;
use warden::check::{CheckResult, Outcome, Runner, Scope};
use warden::config::Config;
use warden::domain::{CheckId, DatasetName, Granularity, PartitionKey};
use warden::registry::{Registry, StoredColumn, StoredResult};

use crate::support::db::{Backend, TestDb};
use crate::support::registry::TestRegistry;

// ---- harness ----

/// Where the registry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegistryKind {
    /// `sqlite://warden.db`, next to `warden.yaml`.
    Sqlite,
    /// A database of its own on the test PostgreSQL server.
    Postgres,
}

/// A directory holding `warden.yaml` and `checks/datasets.yaml`.
struct Project {
    dir: tempfile::TempDir,
    /// Keeps a PostgreSQL registry database alive (dropped with the project).
    _registry_db: Option<TestRegistry>,
}

impl Project {
    /// A project whose warehouse `main` is `db` and whose check file is
    /// `checks`, with `{s}` replaced by the test's schema. `None` when the
    /// PostgreSQL registry is asked for but not configured.
    async fn new(registry: RegistryKind, db: &TestDb, checks: &str) -> Option<Self> {
        let (registry_url, registry_db) = match registry {
            RegistryKind::Sqlite => ("sqlite://warden.db".to_owned(), None),
            RegistryKind::Postgres => {
                let db = TestRegistry::postgres().await?;
                (db.url.clone(), Some(db))
            }
        };
        let project = Self::with_urls(&registry_url, db.url(), &checks.replace("{s}", &db.schema));
        Some(Self {
            _registry_db: registry_db,
            ..project
        })
    }

    fn with_urls(registry_url: &str, warehouse_url: &str, checks: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let main = format!(
            "agent:\n  registry: {registry_url}\n  timezone: UTC\nwarehouses:\n  main:\n    url: {warehouse_url}\n\
             checks: [checks/*.yaml]\n"
        );
        std::fs::write(dir.path().join("warden.yaml"), main).expect("write warden.yaml");
        std::fs::create_dir(dir.path().join("checks")).expect("create checks/");
        std::fs::write(dir.path().join("checks/datasets.yaml"), checks)
            .expect("write the check file");
        Self {
            dir,
            _registry_db: None,
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("warden.yaml")
    }

    /// The configuration as `warden` loads it; every check file must load.
    fn config(&self) -> Config {
        let loaded = warden::config::load(&self.config_path()).expect("valid configuration");
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.config
    }

    /// The registry named by `agent.registry`.
    async fn registry(&self) -> Registry {
        Registry::open(&self.config().agent.registry)
            .await
            .expect("open the registry")
    }

    /// A runner recording into the configured registry, as `warden run` has.
    async fn runner(&self) -> (Config, Runner) {
        let config = self.config();
        let runner = warden::app::runner(&config, Some(self.registry().await));
        (config, runner)
    }

    /// Runs the `warden` binary with this project's config.
    async fn warden(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("WARDEN_CONFIG")
            .env_remove("WARDEN_LOG")
            .env("RUST_BACKTRACE", "1")
            .output()
            .await
            .expect("run warden")
    }

    /// Executes SQL directly on the registry database (behind warden's back).
    async fn registry_sql(&self, sql: &str) {
        let url = self.config().agent.registry;
        let result = if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("connect to the registry");
            sqlx::raw_sql(sql).execute(&mut conn).await.map(drop)
        } else {
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .expect("connect to the registry");
            sqlx::raw_sql(sql).execute(&mut conn).await.map(drop)
        };
        result.unwrap_or_else(|e| panic!("registry SQL failed: {e}\n{sql}"));
    }
}

/// The warehouse engine that goes with a registry engine in the paired cases.
fn warehouse_for(registry: RegistryKind) -> Backend {
    match registry {
        RegistryKind::Sqlite => Backend::Sqlite,
        RegistryKind::Postgres => Backend::Postgres,
    }
}

/// A warehouse holding `tables` (SQL with `{s}`) and a project around it.
async fn setup(registry: RegistryKind, tables: &str, checks: &str) -> Option<(TestDb, Project)> {
    let db = TestDb::new(warehouse_for(registry)).await?;
    db.exec(tables).await;
    let project = Project::new(registry, &db, checks).await?;
    Some((db, project))
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The results of `--format json` output.
fn json_results(out: &Output) -> Vec<CheckResult> {
    #[derive(serde::Deserialize)]
    struct Report {
        results: Vec<CheckResult>,
    }
    let report: Report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not a JSON report ({e}):\n{}", describe(out)));
    report.results
}

fn check_id(id: &str) -> CheckId {
    CheckId::parse(id).expect("check id")
}

fn dataset_name(name: &str) -> DatasetName {
    DatasetName::parse(name).expect("dataset name")
}

fn day(s: &str) -> PartitionKey {
    PartitionKey::parse(s, Granularity::Day).expect("day")
}

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn find<'a>(results: &'a [CheckResult], check: &str) -> &'a CheckResult {
    results
        .iter()
        .find(|r| r.check == check)
        .unwrap_or_else(|| panic!("no result for {check} in {results:#?}"))
}

/// The observed value and outcome a result should have.
type Expected = (Option<f64>, Outcome);

/// Asserts an observed value to within floating-point noise.
fn assert_observed(r: &CheckResult, want: Option<f64>, context: &str) {
    match (r.observed, want) {
        (None, None) => {}
        (Some(got), Some(want)) if (got - want).abs() < 1e-12 => {}
        (got, want) => panic!("{context}: observed {got:?}, want {want:?}\n{r:#?}"),
    }
}

/// `n` rows of `{s}.<table>` for `date`: ids from `first_id`, the first
/// `nulls` with a NULL `user_id`, each with `amount`.
fn insert_rows(
    table: &str,
    date: &str,
    first_id: usize,
    n: usize,
    nulls: usize,
    amount: i64,
) -> String {
    if n == 0 {
        return String::new();
    }
    let values: Vec<String> = (0..n)
        .map(|i| {
            let user = if i < nulls {
                "NULL".to_owned()
            } else {
                (i + 1).to_string()
            };
            format!("({}, {user}, {amount}, '{date}')", first_id + i)
        })
        .collect();
    format!("INSERT INTO {{s}}.{table} VALUES {};", values.join(", "))
}

const EVENTS_TABLE: &str =
    "CREATE TABLE {s}.events (id INTEGER, user_id INTEGER, amount INTEGER, event_date DATE);";

// ---- 1. backfill twice: one result per (check, partition), the second run's ----

const BACKFILL_CHECKS: &str = r#"
datasets:
  - name: events
    warehouse: main
    table: {s}.events
    schedule: "@daily"
    partition: { column: event_date, granularity: day }
    checks:
      - row_count: { min: 3 }
      - row_count_change: { vs: previous, max_drop: 30%, max_growth: 50% }
      - null_rate: { column: user_id, max: 10% }
      - sql:
          name: total_amount
          query: "SELECT sum(amount) FROM {{ table }} WHERE {{ partition_filter }}"
"#;

const BACKFILL_DAYS: [&str; 5] = [
    "2026-11-16",
    "2026-11-17",
    "2026-11-18",
    "2026-11-19",
    "2026-11-20",
];

/// Replaces the events with `counts[i]` rows on day i, `nulls[i]` of them
/// without a user, each worth `amount`.
async fn load_events(db: &TestDb, counts: [usize; 5], nulls: [usize; 5], amount: i64) {
    let mut sql = "DELETE FROM {s}.events;".to_owned();
    let mut id = 1;
    for ((date, n), z) in BACKFILL_DAYS.iter().zip(counts).zip(nulls) {
        sql.push_str(&insert_rows("events", date, id, n, z, amount));
        id += n;
    }
    db.exec(&sql).await;
}

async fn backfill_twice_keeps_the_second_run(registry_kind: RegistryKind) {
    let Some((db, project)) = setup(registry_kind, EVENTS_TABLE, BACKFILL_CHECKS).await else {
        return;
    };
    let backfill = [
        "backfill",
        "events",
        "--from",
        "2026-11-16",
        "--to",
        "2026-11-20",
        "--format",
        "json",
    ];

    load_events(&db, [4; 5], [0; 5], 10).await;
    let first = project.warden(&backfill).await;
    assert_eq!(first.status.code(), Some(0), "{}", describe(&first));
    assert_eq!(json_results(&first).len(), 20, "{}", describe(&first));

    // The data changes (late rows, a lost load, NULLs, new prices) and the
    // same range is backfilled again.
    load_events(&db, [4, 5, 2, 4, 6], [0, 1, 1, 0, 0], 7).await;
    let second = project.warden(&backfill).await;
    assert_eq!(
        second.status.code(),
        Some(1),
        "a check failed: {}",
        describe(&second)
    );
    let printed = json_results(&second);
    assert_eq!(printed.len(), 20, "{}", describe(&second));

    use Outcome::{Fail, Pass};
    let expected: [(&str, [Expected; 5]); 4] = [
        (
            "events.row_count",
            [
                (Some(4.0), Pass),
                (Some(5.0), Pass),
                (Some(2.0), Fail),
                (Some(4.0), Pass),
                (Some(6.0), Pass),
            ],
        ),
        (
            // 11-16 has no earlier partition; 6 vs 4 is +50% exactly, allowed.
            "events.row_count_change",
            [
                (None, Pass),
                (Some(0.25), Pass),
                (Some(-0.6), Fail),
                (Some(1.0), Fail),
                (Some(0.5), Pass),
            ],
        ),
        (
            "events.null_rate_user_id",
            [
                (Some(0.0), Pass),
                (Some(0.2), Fail),
                (Some(0.5), Fail),
                (Some(0.0), Pass),
                (Some(0.0), Pass),
            ],
        ),
        (
            "events.total_amount",
            [
                (Some(28.0), Pass),
                (Some(35.0), Pass),
                (Some(14.0), Pass),
                (Some(28.0), Pass),
                (Some(42.0), Pass),
            ],
        ),
    ];

    let registry = project.registry().await;
    for (check, per_day) in expected {
        let id = check_id(check);
        let history = registry.history(&id, 1000).await.expect("history");
        assert_eq!(
            history.len(),
            5,
            "one row per partition for {check}: {history:#?}"
        );
        for (date, (observed, outcome)) in BACKFILL_DAYS.iter().zip(per_day) {
            let rows = registry
                .results_for(&id, Some(date))
                .await
                .expect("results");
            assert_eq!(rows.len(), 1, "{check} {date}: {rows:#?}");
            let stored = &rows[0];
            let context = format!("{check} {date}");
            assert_observed(&stored.result, observed, &context);
            assert_eq!(
                stored.result.outcome, outcome,
                "{context}: {}",
                stored.result.message
            );
            // Recorded under the partition's end, which is what makes the
            // second backfill land on the first one's rows.
            let end = day(date).end().and_utc();
            assert_eq!(stored.scheduled_at, end, "{context}");
            // What the registry holds is what the second run printed.
            let shown = printed
                .iter()
                .find(|r| r.check == check && r.partition.as_deref() == Some(*date))
                .unwrap_or_else(|| panic!("{context} not printed"));
            assert_eq!(
                StoredResult {
                    result: shown.clone(),
                    ..stored.clone()
                },
                *stored,
                "{context}"
            );
        }
    }
    let first_day = registry
        .results_for(&check_id("events.row_count_change"), Some("2026-11-16"))
        .await
        .expect("results");
    assert_eq!(
        first_day[0].result.message,
        "no baseline yet (the previous partition); 4 rows recorded"
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_twice_sqlite() {
    backfill_twice_keeps_the_second_run(RegistryKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_twice_postgres() {
    backfill_twice_keeps_the_second_run(RegistryKind::Postgres).await;
}

// ---- 2. row-count deltas, one day of data at a time ----

const DELTA_CHECKS: &str = r#"
datasets:
  - name: daily
    warehouse: main
    table: {s}.events
    schedule: "0 6 * * *"
    partition: { column: event_date, granularity: day }
    checks:
      - row_count_change: { name: vs_previous, vs: previous, max_drop: 30%, max_growth: 50% }
      - row_count_change: { name: vs_week, vs: 7d, max_drop: 30%, max_growth: 50% }
  - name: snapshot
    warehouse: main
    table: {s}.snapshot
    schedule: "0 6 * * *"
    checks:
      - row_count_change: { vs: previous, max_drop: 30%, max_growth: 50% }
"#;

const DELTA_TABLES: &str = "
CREATE TABLE {s}.events (id INTEGER, user_id INTEGER, amount INTEGER, event_date DATE);
CREATE TABLE {s}.snapshot (id INTEGER, user_id INTEGER, amount INTEGER, event_date DATE);
";

/// Rows loaded on 2026-11-01 … 2026-11-09.
const DAILY_ROWS: [usize; 9] = [100, 100, 65, 80, 121, 120, 84, 150, 60];

/// `vs: previous` against the day before, for each day (also what the
/// unpartitioned dataset sees run after run).
fn previous_expectations() -> [Expected; 9] {
    use Outcome::{Fail, Pass};
    [
        (None, Pass),               // first day: no baseline yet
        (Some(0.0), Pass),          // 100 vs 100
        (Some(-0.35), Fail),        // 65 vs 100: dropped more than 30%
        (Some(15.0 / 65.0), Pass),  // 80 vs 65: +23%
        (Some(41.0 / 80.0), Fail),  // 121 vs 80: +51.25%, grew more than 50%
        (Some(-1.0 / 121.0), Pass), // 120 vs 121
        (Some(-0.3), Pass),         // 84 vs 120: -30% exactly, allowed
        (Some(66.0 / 84.0), Fail),  // 150 vs 84: +78.6%
        (Some(-0.6), Fail),         // 60 vs 150
    ]
}

async fn deltas_day_after_day(registry_kind: RegistryKind) {
    let Some((db, project)) = setup(registry_kind, DELTA_TABLES, DELTA_CHECKS).await else {
        return;
    };
    let (config, runner) = project.runner().await;
    let daily = config.dataset("daily").expect("daily");
    let snapshot = config.dataset("snapshot").expect("snapshot");
    let previous = previous_expectations();
    use Outcome::{Error, Fail, Pass};
    let week: [Expected; 9] = [
        (None, Pass),
        (None, Pass),
        (None, Pass),
        (None, Pass),
        (None, Pass),
        (None, Pass),
        (None, Pass),
        (Some(0.5), Pass),  // 11-08: 150 vs 100 on 11-01, +50% exactly
        (Some(-0.4), Fail), // 11-09: 60 vs 100 on 11-02
    ];

    let first = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let mut id = 1;
    for (i, rows) in DAILY_ROWS.into_iter().enumerate() {
        let date = (first + Duration::days(i as i64)).to_string();
        // The day's partition lands, and the snapshot table is reloaded.
        let load = format!(
            "{}DELETE FROM {{s}}.snapshot;{}",
            insert_rows("events", &date, id, rows, 0, 1),
            insert_rows("snapshot", &date, id, rows, 0, 1),
        );
        db.exec(&load).await;
        id += rows;

        // The scheduled run at 06:00 the next morning checks that day.
        let at = (first + Duration::days(i as i64 + 1))
            .and_hms_opt(6, 0, 0)
            .unwrap()
            .and_utc();
        let scope = Scope::scheduled(daily, at, runner.timezone());
        assert_eq!(scope, Scope::Scheduled(day(&date)));
        let results = runner.run(daily, &scope, at, true).await.expect("recorded");
        let context = format!("daily {date}");
        for (check, (observed, outcome)) in [
            ("daily.vs_previous", previous[i]),
            ("daily.vs_week", week[i]),
        ] {
            let r = find(&results, check);
            assert_eq!(r.partition.as_deref(), Some(date.as_str()), "{context}");
            assert_observed(r, observed, &format!("{context} {check}"));
            assert_eq!(r.outcome, outcome, "{context} {check}: {}", r.message);
        }

        let results = runner
            .run(snapshot, &Scope::Whole, at, true)
            .await
            .expect("recorded");
        let r = find(&results, "snapshot.row_count_change");
        assert_observed(r, previous[i].0, &format!("snapshot at {at}"));
        assert_eq!(r.outcome, previous[i].1, "snapshot at {at}: {}", r.message);

        if i == 3 {
            // Half a day later the snapshot table is missing: that run is an
            // error, and the next run still compares with the last good one.
            db.exec("ALTER TABLE {s}.snapshot RENAME TO snapshot_away;")
                .await;
            let noon = at + Duration::hours(12);
            let results = runner
                .run(snapshot, &Scope::Whole, noon, true)
                .await
                .expect("recorded");
            let r = find(&results, "snapshot.row_count_change");
            assert_eq!(r.outcome, Error, "{r:#?}");
            db.exec("ALTER TABLE {s}.snapshot_away RENAME TO snapshot;")
                .await;
        }
    }

    // The messages say what was compared with what.
    let registry = runner.registry().expect("registry");
    let message = |check: &'static str, date: &'static str| {
        let registry = registry.clone();
        async move {
            let rows = registry
                .results_for(&check_id(check), Some(date))
                .await
                .expect("results");
            assert_eq!(rows.len(), 1, "{check} {date}: {rows:#?}");
            rows[0].result.message.clone()
        }
    };
    assert_eq!(
        message("daily.vs_previous", "2026-11-01").await,
        "no baseline yet (the previous partition); 100 rows recorded"
    );
    assert_eq!(
        message("daily.vs_previous", "2026-11-03").await,
        "65 rows, -35% vs 100 the previous partition: dropped more than 30%"
    );
    assert_eq!(
        message("daily.vs_previous", "2026-11-05").await,
        "121 rows, +51.25% vs 80 the previous partition: grew more than 50%"
    );
    assert_eq!(
        message("daily.vs_previous", "2026-11-07").await,
        "84 rows, -30% vs 120 the previous partition"
    );
    assert_eq!(
        message("daily.vs_week", "2026-11-07").await,
        "no baseline yet (7 days earlier); 84 rows recorded"
    );
    assert_eq!(
        message("daily.vs_week", "2026-11-08").await,
        "150 rows, +50% vs 100 7 days earlier"
    );
    assert_eq!(
        message("daily.vs_week", "2026-11-09").await,
        "60 rows, -40% vs 100 7 days earlier: dropped more than 30%"
    );

    // Rerunning the last slot with new data replaces that run and compares
    // with the run before it, not with itself.
    let last = utc(2026, 11, 10, 6);
    db.exec(&format!(
        "DELETE FROM {{s}}.snapshot;{}",
        insert_rows("snapshot", "2026-11-09", 1, 75, 0, 1)
    ))
    .await;
    let results = runner
        .run(snapshot, &Scope::Whole, last, true)
        .await
        .expect("recorded");
    let r = find(&results, "snapshot.row_count_change");
    assert_observed(r, Some(-0.5), "rerun of the last slot");
    assert_eq!(r.outcome, Fail);
    assert_eq!(
        r.message,
        "75 rows, -50% vs 150 the previous run: dropped more than 30%"
    );
    let history = registry
        .results_for(&check_id("snapshot.row_count_change"), None)
        .await
        .expect("results");
    // Nine scheduled runs and the one that errored; the rerun replaced one.
    assert_eq!(history.len(), 10, "{history:#?}");
    assert_eq!(history[0].scheduled_at, last);
    assert_observed(&history[0].result, Some(-0.5), "stored rerun");
    assert_eq!(
        history.iter().filter(|r| r.result.outcome == Error).count(),
        1,
        "{history:#?}"
    );
    assert_eq!(
        history.last().unwrap().result.message,
        "no baseline yet (the previous run); 100 rows recorded"
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_day_after_day_sqlite() {
    deltas_day_after_day(RegistryKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_day_after_day_postgres() {
    deltas_day_after_day(RegistryKind::Postgres).await;
}

// ---- 3. schema drift against the first-seen baseline, on every engine ----

const DRIFT_CHECKS: &str = r#"
datasets:
  - name: items
    warehouse: main
    table: {s}.items
    schedule: "@hourly"
    checks:
      # The defaults: added warn, removed fail, type changed fail.
      - schema: { name: drift_default }
      - schema: { name: drift_lenient, on_added: ignore, on_removed: warn, on_type_changed: warn }
      - schema: { name: drift_additions, on_added: fail, on_removed: ignore, on_type_changed: ignore }
"#;

/// Changes `amount` from an integer to a string column.
fn retype_amount(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "ALTER TABLE {s}.items ALTER COLUMN amount TYPE VARCHAR(20);",
        Backend::MySql => "ALTER TABLE {s}.items MODIFY COLUMN amount VARCHAR(20);",
        // SQLite cannot retype a column: rebuild the table, as people do.
        Backend::Sqlite => {
            "CREATE TABLE {s}.items_new (id INTEGER, amount VARCHAR(20), note VARCHAR(50));
             INSERT INTO {s}.items_new SELECT id, CAST(amount AS TEXT), note FROM {s}.items;
             DROP TABLE {s}.items;
             ALTER TABLE {s}.items_new RENAME TO items;"
        }
        Backend::ClickHouse => "ALTER TABLE {s}.items MODIFY COLUMN amount Nullable(String);",
    }
}

async fn schema_drift(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    db.exec(
        "CREATE TABLE {s}.items (id INTEGER, name VARCHAR(20), amount INTEGER);
         INSERT INTO {s}.items VALUES (1, 'a', 10), (2, 'b', 20);",
    )
    .await;
    let project = Project::new(RegistryKind::Sqlite, &db, DRIFT_CHECKS)
        .await
        .expect("SQLite registry");
    let (config, runner) = project.runner().await;
    let items = config.dataset("items").expect("items");
    let registry = runner.registry().expect("registry").clone();
    let mut hour = 0;
    let mut run = async || {
        hour += 1;
        runner
            .run(items, &Scope::Whole, utc(2026, 11, 20, hour), true)
            .await
            .expect("recorded")
    };
    let expect = |results: &[CheckResult], want: [(&str, Outcome, &str); 3]| {
        for (check, outcome, message) in want {
            let r = find(results, check);
            assert_eq!(
                (r.outcome, r.message.as_str()),
                (outcome, message),
                "{backend:?} {check}"
            );
        }
    };
    use Outcome::{Fail, Pass, Warn};

    let first = "no baseline yet; the current schema (3 columns) becomes the baseline";
    expect(
        &run().await,
        [
            ("items.drift_default", Pass, first),
            ("items.drift_lenient", Pass, first),
            ("items.drift_additions", Pass, first),
        ],
    );
    let baseline = registry
        .schema_baseline(&dataset_name("items"))
        .await
        .expect("baseline");
    assert_eq!(
        baseline,
        Some(vec![
            StoredColumn::new("id", "integer"),
            StoredColumn::new("name", "text"),
            StoredColumn::new("amount", "integer"),
        ]),
        "{backend:?}"
    );
    let same = "3 columns match the baseline";
    expect(
        &run().await,
        [
            ("items.drift_default", Pass, same),
            ("items.drift_lenient", Pass, same),
            ("items.drift_additions", Pass, same),
        ],
    );

    db.exec("ALTER TABLE {s}.items ADD COLUMN note VARCHAR(50);")
        .await;
    let added = "1 difference from the baseline: column `note` (text) was added";
    expect(
        &run().await,
        [
            ("items.drift_default", Warn, added),
            ("items.drift_lenient", Pass, "4 columns match the baseline"),
            ("items.drift_additions", Fail, added),
        ],
    );

    db.exec("ALTER TABLE {s}.items DROP COLUMN name;").await;
    expect(
        &run().await,
        [
            (
                "items.drift_default",
                Fail,
                "2 differences from the baseline: column `name` was removed; column `note` (text) was added",
            ),
            (
                "items.drift_lenient",
                Warn,
                "1 difference from the baseline: column `name` was removed",
            ),
            ("items.drift_additions", Fail, added),
        ],
    );

    db.exec(retype_amount(backend)).await;
    let results = run().await;
    expect(
        &results,
        [
            (
                "items.drift_default",
                Fail,
                "3 differences from the baseline: column `name` was removed; \
                 column `amount` changed type from integer to text; column `note` (text) was added",
            ),
            (
                "items.drift_lenient",
                Warn,
                "2 differences from the baseline: column `name` was removed; \
                 column `amount` changed type from integer to text",
            ),
            ("items.drift_additions", Fail, added),
        ],
    );
    assert_observed(
        find(&results, "items.drift_default"),
        Some(3.0),
        "differences counted",
    );

    let accepted = project.warden(&["baseline", "accept", "items"]).await;
    assert_eq!(accepted.status.code(), Some(0), "{}", describe(&accepted));
    let stdout = String::from_utf8_lossy(&accepted.stdout);
    assert!(
        stdout.contains("as its baseline: 3 columns"),
        "{}",
        describe(&accepted)
    );
    assert!(
        stdout.contains("  amount text\n"),
        "{}",
        describe(&accepted)
    );
    let record = registry
        .schema_baseline_record(&dataset_name("items"))
        .await
        .expect("baseline")
        .expect("a baseline");
    assert_eq!(
        record.columns,
        vec![
            StoredColumn::new("id", "integer"),
            StoredColumn::new("amount", "text"),
            StoredColumn::new("note", "text"),
        ],
        "{backend:?}"
    );

    let same = "3 columns match the baseline";
    expect(
        &run().await,
        [
            ("items.drift_default", Pass, same),
            ("items.drift_lenient", Pass, same),
            ("items.drift_additions", Pass, same),
        ],
    );
    db.cleanup().await;
}

mod schema_drift {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::schema_drift(super::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::schema_drift(super::Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        super::schema_drift(super::Backend::MySql).await;
    }
}

// ---- 4. a registry that is down when warden starts ----

#[tokio::test]
async fn registry_down_at_startup_exits_2() {
    let down = "postgres://postgres@127.0.0.1:1/x";
    let project = Project::with_urls(
        down,
        "sqlite://warehouse.db",
        &BACKFILL_CHECKS.replace("{s}.", ""),
    );
    for args in [
        &["check"][..],
        &["check", "--dataset", "events", "--format", "json"],
        &[
            "backfill",
            "events",
            "--from",
            "2026-11-16",
            "--to",
            "2026-11-17",
        ],
        &["baseline", "accept", "events"],
    ] {
        let out = project.warden(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        assert!(
            stderr.contains(&format!("registry {down} unreachable: connection refused")),
            "{args:?}: {}",
            describe(&out)
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{args:?}: {}",
            describe(&out)
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?}: nothing is printed as a result: {}",
            describe(&out)
        );
    }
}

// ---- 5. a run whose recording fails leaves nothing behind ----

const LEDGER_CHECKS: &str = r#"
datasets:
  - name: ledger
    warehouse: main
    table: {s}.ledger
    schedule: "@hourly"
    checks:
      - row_count: { min: 1 }
      - row_count_change: { vs: previous, max_drop: 30% }
      - schema: {}
      - null_rate: { column: account, max: 0 }
"#;

const LEDGER_CHECK_IDS: [&str; 4] = [
    "ledger.row_count",
    "ledger.row_count_change",
    "ledger.schema",
    "ledger.null_rate_account",
];

/// Makes the registry refuse the last result of a run, after the others
/// were written in the same transaction.
fn refuse_last_result(registry: RegistryKind) -> &'static str {
    match registry {
        RegistryKind::Sqlite => {
            "CREATE TRIGGER refuse_last BEFORE INSERT ON check_results
             WHEN NEW.check_id = 'ledger.null_rate_account'
             BEGIN SELECT RAISE(ABORT, 'registry volume is full'); END;"
        }
        RegistryKind::Postgres => {
            "CREATE FUNCTION refuse_last() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'registry volume is full'; END $$;
             CREATE TRIGGER refuse_last BEFORE INSERT ON check_results FOR EACH ROW
             WHEN (NEW.check_id = 'ledger.null_rate_account') EXECUTE FUNCTION refuse_last();"
        }
    }
}

fn repair(registry: RegistryKind) -> &'static str {
    match registry {
        RegistryKind::Sqlite => "DROP TRIGGER refuse_last;",
        RegistryKind::Postgres => {
            "DROP TRIGGER refuse_last ON check_results; DROP FUNCTION refuse_last();"
        }
    }
}

/// Every stored result of the ledger's checks.
async fn ledger_rows(registry: &Registry) -> Vec<StoredResult> {
    let mut rows = Vec::new();
    for check in LEDGER_CHECK_IDS {
        rows.extend(
            registry
                .history(&check_id(check), 1000)
                .await
                .expect("history"),
        );
    }
    rows
}

async fn failed_recording_leaves_no_partial_run(registry_kind: RegistryKind) {
    let tables = "CREATE TABLE {s}.ledger (id INTEGER, account VARCHAR(20));
                  INSERT INTO {s}.ledger VALUES (1, 'a'), (2, 'b'), (3, 'c');";
    let Some((db, project)) = setup(registry_kind, tables, LEDGER_CHECKS).await else {
        return;
    };
    let registry = project.registry().await;
    let check = ["check", "--format", "json"];

    project
        .registry_sql(refuse_last_result(registry_kind))
        .await;
    let failed = project.warden(&check).await;
    assert_eq!(
        failed.status.code(),
        Some(2),
        "results not recorded: {}",
        describe(&failed)
    );
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("dataset ledger: results could not be recorded")
            && stderr.contains("registry volume is full"),
        "{}",
        describe(&failed)
    );
    assert!(!stderr.contains("panicked"), "{}", describe(&failed));
    // The results were evaluated: they are still shown.
    let shown = json_results(&failed);
    assert_eq!(shown.len(), 4, "{}", describe(&failed));
    assert!(
        shown.iter().all(|r| r.outcome == Outcome::Pass),
        "{shown:#?}"
    );
    let rows = ledger_rows(&registry).await;
    assert!(
        rows.is_empty(),
        "nothing of the failed run is kept: {rows:#?}"
    );
    let baseline = registry
        .schema_baseline(&dataset_name("ledger"))
        .await
        .expect("baseline");
    assert_eq!(
        baseline, None,
        "the failed run did not set a schema baseline either"
    );

    // Repaired, the next run records normally, as a first run.
    project.registry_sql(repair(registry_kind)).await;
    let repaired = project.warden(&check).await;
    assert_eq!(repaired.status.code(), Some(0), "{}", describe(&repaired));
    let printed = json_results(&repaired);
    assert_eq!(
        printed.iter().map(|r| r.check.as_str()).collect::<Vec<_>>(),
        LEDGER_CHECK_IDS,
        "the refused result is the last one a run writes"
    );
    let rows = ledger_rows(&registry).await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for (stored, shown) in rows.iter().zip(&printed) {
        assert_eq!(stored.result, *shown);
    }
    assert_eq!(
        find(&printed, "ledger.row_count_change").message,
        "no baseline yet (the previous run); 3 rows recorded"
    );
    assert_eq!(
        find(&printed, "ledger.schema").message,
        "no baseline yet; the current schema (2 columns) becomes the baseline"
    );
    assert_eq!(
        registry
            .schema_baseline(&dataset_name("ledger"))
            .await
            .expect("baseline"),
        Some(vec![
            StoredColumn::new("id", "integer"),
            StoredColumn::new("account", "text")
        ])
    );

    // Failing again later neither adds rows nor touches the good run.
    db.exec("INSERT INTO {s}.ledger VALUES (4, NULL); ALTER TABLE {s}.ledger ADD COLUMN memo VARCHAR(50);")
        .await;
    project
        .registry_sql(refuse_last_result(registry_kind))
        .await;
    let failed = project.warden(&check).await;
    // A failed check still decides the exit status (1) over the recording
    // problem (2), as it does for any run that could not be kept.
    assert_eq!(
        failed.status.code(),
        Some(1),
        "the NULL account fails a check: {}",
        describe(&failed)
    );
    assert_eq!(
        find(&json_results(&failed), "ledger.null_rate_account").outcome,
        Outcome::Fail
    );
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("results could not be recorded"),
        "{}",
        describe(&failed)
    );
    assert_eq!(ledger_rows(&registry).await, rows);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_recording_sqlite() {
    failed_recording_leaves_no_partial_run(RegistryKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_recording_postgres() {
    failed_recording_leaves_no_partial_run(RegistryKind::Postgres).await;
}
