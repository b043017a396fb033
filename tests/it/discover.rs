//! `discover:` on every engine: one catalog statement per run whatever the
//! schema holds, tables that appear and disappear, hand-written datasets
//! winning, include/exclude globs, a volume drop to 0, schema drift, and
//! the entry's configuration errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use warden::check::{CheckResult, Outcome, Runner};
use warden::discover::{Discover, Monitors, discover};
use warden::source::SourcePos;

use crate::support::db::{Backend, TestDb, dataset, ident};
use crate::support::registry::TestRegistry;

const HOUR: Duration = Duration::from_secs(3600);

fn spec(db: &TestDb, include: &[&str], exclude: &[&str]) -> Discover {
    let globs = |list: &[&str]| {
        list.iter()
            .map(|g| glob::Pattern::new(g).expect("glob"))
            .collect::<Vec<_>>()
    };
    Discover {
        warehouse: "main".into(),
        schema: ident(&db.schema),
        include: globs(include),
        exclude: globs(exclude),
        tier: 3,
        owner: Some("data-platform".into()),
        schedule: None,
        monitors: Monitors::ALL,
        max_lag: Some(26 * HOUR),
        max_drop: 0.5,
        forget_after: 7 * 24 * HOUR,
        pos: SourcePos {
            file: PathBuf::from("checks/discover.yaml"),
            line: 1,
            column: 1,
        },
    }
}

fn runner(db: &TestDb, registry: &TestRegistry) -> Runner {
    let wh = Arc::new(db.warehouse(Tz::UTC));
    Runner::with_warehouses(
        Tz::UTC,
        BTreeMap::from([("main".to_owned(), Ok(wh))]),
        Some(registry.registry.clone()),
    )
}

/// Writes on the test's database; on PostgreSQL the session's statistics
/// are flushed at once, as they are within a second or so in production.
async fn write(db: &TestDb, sql: &str) {
    if db.backend == Backend::Postgres {
        db.exec(&format!("{sql}; SELECT pg_stat_force_next_flush()"))
            .await;
    } else {
        db.exec(sql).await;
    }
}

/// The result of monitor `kind` of table `table`.
#[track_caller]
fn monitor<'a>(
    db: &TestDb,
    results: &'a [CheckResult],
    table: &str,
    kind: &str,
) -> &'a CheckResult {
    let id = format!("main.{}.{table}.{kind}", db.schema);
    results
        .iter()
        .find(|r| r.check == id)
        .unwrap_or_else(|| panic!("no result for {id} in {results:#?}"))
}

fn tables_of(db: &TestDb, results: &[CheckResult]) -> Vec<String> {
    let prefix = format!("main.{}.", db.schema);
    let mut names: Vec<String> = results
        .iter()
        .map(|r| {
            r.dataset
                .strip_prefix(&prefix)
                .expect("a discovered name")
                .to_owned()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Engines that keep a row estimate and a change mark in their catalog.
fn keeps_figures(db: &TestDb) -> bool {
    db.backend != Backend::Sqlite
}

async fn one_statement_per_run_and_globs(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let registry = TestRegistry::sqlite().await;
    for table in ["orders", "customers", "tmp_load", "orders_backup", "events"] {
        write(
            &db,
            &format!("CREATE TABLE {{s}}.{table} (id BIGINT, name TEXT)"),
        )
        .await;
    }
    write(
        &db,
        "INSERT INTO {s}.orders (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    .await;
    let runner = runner(&db, &registry);
    let spec = spec(&db, &["*"], &["tmp_*", "*_backup"]);
    // A hand-written dataset on `customers` wins over discovery.
    let hand_written = vec![dataset(db.table("customers"), None, Vec::new())];

    let wh = runner.warehouse_named("main").expect("warehouse");
    let before = wh.statement_count();
    let run = discover(&runner, &spec, &hand_written, Utc::now(), true).await;
    assert_eq!(
        wh.statement_count() - before,
        1,
        "one catalog statement per run"
    );
    assert!(run.catalog_error.is_none(), "{:?}", run.catalog_error);
    assert!(run.record_error.is_none(), "{:?}", run.record_error);
    assert_eq!(tables_of(&db, &run.results), ["events", "orders"]);
    assert_eq!(run.datasets.len(), 2);
    let group = format!("main.{}", db.schema);
    assert!(
        run.datasets
            .iter()
            .all(|d| d.discovered.as_deref() == Some(group.as_str()))
    );
    assert!(run.datasets.iter().all(|d| d.tier == 3));

    let schema = monitor(&db, &run.results, "orders", "schema");
    assert_eq!(schema.outcome, Outcome::Pass, "{schema:#?}");
    assert!(
        schema.message.contains("becomes the baseline"),
        "{}",
        schema.message
    );
    if keeps_figures(&db) {
        let volume = monitor(&db, &run.results, "orders", "volume");
        assert_eq!(volume.outcome, Outcome::Pass, "{volume:#?}");
        assert_eq!(volume.observed, Some(3.0), "{volume:#?}");
        let fresh = monitor(&db, &run.results, "orders", "freshness");
        assert_eq!(fresh.outcome, Outcome::Pass, "{fresh:#?}");
    } else {
        // SQLite keeps no row estimate or change time: schema only.
        assert!(
            run.results.iter().all(|r| r.kind == "schema"),
            "{:#?}",
            run.results
        );
    }

    // A second run is one statement again, and finds no drift.
    let before = wh.statement_count();
    let run = discover(&runner, &spec, &hand_written, Utc::now(), true).await;
    assert_eq!(wh.statement_count() - before, 1);
    let schema = monitor(&db, &run.results, "events", "schema");
    assert_eq!(schema.outcome, Outcome::Pass, "{schema:#?}");
    assert!(
        schema.message.contains("2 columns match the baseline"),
        "{}",
        schema.message
    );

    // Recorded like any result, under `<warehouse>.<schema>.<table>`.
    let name = warden::domain::DatasetName::discovered("main", &db.schema, "orders").unwrap();
    let stored = registry
        .latest_results(&name)
        .await
        .expect("latest results");
    assert!(
        stored.iter().any(|s| s.result.kind == "schema"),
        "{stored:#?}"
    );
    db.cleanup().await;
}

async fn tables_appear_and_disappear(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let registry = TestRegistry::sqlite().await;
    write(&db, "CREATE TABLE {s}.old_one (id BIGINT)").await;
    let runner = runner(&db, &registry);
    let spec = spec(&db, &["*"], &[]);
    let t0 = Utc::now();
    let run = discover(&runner, &spec, &[], t0, true).await;
    assert_eq!(tables_of(&db, &run.results), ["old_one"]);

    write(&db, "CREATE TABLE {s}.new_one (id BIGINT)").await;
    write(&db, "DROP TABLE {s}.old_one").await;
    let run = discover(&runner, &spec, &[], t0 + HOUR, true).await;
    assert_eq!(tables_of(&db, &run.results), ["new_one", "old_one"]);
    let dropped = monitor(&db, &run.results, "old_one", "schema");
    assert_eq!(dropped.outcome, Outcome::Fail, "{dropped:#?}");
    assert!(
        dropped.message.contains("table dropped"),
        "{}",
        dropped.message
    );
    let new = monitor(&db, &run.results, "new_one", "schema");
    assert_eq!(new.outcome, Outcome::Pass, "{new:#?}");
    // Only the dropped table's schema monitor reports it.
    assert_eq!(
        run.results
            .iter()
            .filter(|r| r.dataset.ends_with(".old_one"))
            .count(),
        1
    );

    // Alerted once: the next run says nothing of it, but remembers it.
    let run = discover(&runner, &spec, &[], t0 + 2 * HOUR, true).await;
    assert_eq!(tables_of(&db, &run.results), ["new_one"]);
    let known = registry
        .discovered_tables("main", &db.schema)
        .await
        .expect("records");
    let old = known
        .iter()
        .find(|r| r.table_name == "old_one")
        .expect("remembered");
    assert!(old.dropped_at.is_some());

    // Forgotten after `forget_after` (7 days).
    discover(&runner, &spec, &[], t0 + 8 * 24 * HOUR, true).await;
    let known = registry
        .discovered_tables("main", &db.schema)
        .await
        .expect("records");
    let names: Vec<&str> = known.iter().map(|r| r.table_name.as_str()).collect();
    assert_eq!(names, ["new_one"]);
    db.cleanup().await;
}

async fn volume_drop_to_zero_fails(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let registry = TestRegistry::sqlite().await;
    write(&db, "CREATE TABLE {s}.facts (id BIGINT)").await;
    write(&db, "INSERT INTO {s}.facts (id) VALUES (1), (2), (3), (4)").await;
    let runner = runner(&db, &registry);
    let spec = spec(&db, &["facts"], &[]);
    let t0 = Utc::now();
    let run = discover(&runner, &spec, &[], t0, true).await;
    if !keeps_figures(&db) {
        assert!(run.results.iter().all(|r| r.kind == "schema"));
        return;
    }
    let volume = monitor(&db, &run.results, "facts", "volume");
    assert_eq!(volume.observed, Some(4.0), "{volume:#?}");

    write(&db, "TRUNCATE TABLE {s}.facts").await;
    let run = discover(&runner, &spec, &[], t0 + HOUR, true).await;
    let volume = monitor(&db, &run.results, "facts", "volume");
    assert_eq!(volume.outcome, Outcome::Fail, "{volume:#?}");
    assert!(
        volume.message.contains("dropped to 0"),
        "{}",
        volume.message
    );
    // It stays failing while the table stays empty.
    let run = discover(&runner, &spec, &[], t0 + 2 * HOUR, true).await;
    let volume = monitor(&db, &run.results, "facts", "volume");
    assert_eq!(volume.outcome, Outcome::Fail, "{volume:#?}");
    // And passes again once it fills.
    write(&db, "INSERT INTO {s}.facts (id) VALUES (5), (6), (7), (8)").await;
    let run = discover(&runner, &spec, &[], t0 + 3 * HOUR, true).await;
    let volume = monitor(&db, &run.results, "facts", "volume");
    assert_eq!(volume.outcome, Outcome::Pass, "{volume:#?}");
    db.cleanup().await;
}

async fn schema_drift_is_detected(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let registry = TestRegistry::sqlite().await;
    write(
        &db,
        "CREATE TABLE {s}.users (id BIGINT, email TEXT, score INTEGER)",
    )
    .await;
    let runner = runner(&db, &registry);
    let spec = spec(&db, &["users"], &[]);
    discover(&runner, &spec, &[], Utc::now(), true).await;

    write(&db, "ALTER TABLE {s}.users ADD COLUMN nickname TEXT").await;
    let run = discover(&runner, &spec, &[], Utc::now(), true).await;
    let schema = monitor(&db, &run.results, "users", "schema");
    assert_eq!(
        schema.outcome,
        Outcome::Warn,
        "an added column warns: {schema:#?}"
    );
    assert!(schema.message.contains("`nickname`"), "{}", schema.message);

    write(&db, "ALTER TABLE {s}.users DROP COLUMN email").await;
    let run = discover(&runner, &spec, &[], Utc::now(), true).await;
    let schema = monitor(&db, &run.results, "users", "schema");
    assert_eq!(
        schema.outcome,
        Outcome::Fail,
        "a removed column fails: {schema:#?}"
    );
    assert!(
        schema.message.contains("column `email` was removed"),
        "{}",
        schema.message
    );
    db.cleanup().await;
}

async fn freshness_follows_changes(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    if !keeps_figures(&db) {
        return;
    }
    let registry = TestRegistry::sqlite().await;
    write(&db, "CREATE TABLE {s}.feed (id BIGINT)").await;
    write(&db, "INSERT INTO {s}.feed (id) VALUES (1)").await;
    let runner = runner(&db, &registry);
    let spec = spec(&db, &["feed"], &[]);
    let t0: DateTime<Utc> = Utc::now();
    let run = discover(&runner, &spec, &[], t0, true).await;
    assert_eq!(
        monitor(&db, &run.results, "feed", "freshness").outcome,
        Outcome::Pass
    );

    // Nothing written for 30 hours (max_lag 26h).
    let run = discover(&runner, &spec, &[], t0 + 30 * HOUR, true).await;
    let fresh = monitor(&db, &run.results, "feed", "freshness");
    assert_eq!(fresh.outcome, Outcome::Fail, "{fresh:#?}");
    assert!(
        fresh.observed.is_some_and(|lag| lag >= 29.0 * 3600.0),
        "{fresh:#?}"
    );

    if db.backend == Backend::Postgres {
        // PostgreSQL keeps no change time: warden sees the counters move and
        // records the run that saw it as the change.
        write(&db, "INSERT INTO {s}.feed (id) VALUES (2)").await;
        let run = discover(&runner, &spec, &[], t0 + 31 * HOUR, true).await;
        let fresh = monitor(&db, &run.results, "feed", "freshness");
        assert_eq!(fresh.outcome, Outcome::Pass, "{fresh:#?}");
        assert_eq!(fresh.observed, Some(0.0), "{fresh:#?}");
    }
    db.cleanup().await;
}

async fn an_unreachable_catalog_errors_the_known_tables(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let registry = TestRegistry::sqlite().await;
    write(&db, "CREATE TABLE {s}.kept (id BIGINT)").await;
    let runner = runner(&db, &registry);
    let good = spec(&db, &["*"], &[]);
    discover(&runner, &good, &[], Utc::now(), true).await;
    // The same entry on a schema that went away: no table is "dropped"
    // for a read that failed; the known ones are errors instead.
    let registry_tables = registry
        .discovered_tables("main", &db.schema)
        .await
        .unwrap();
    assert_eq!(registry_tables.len(), 1);
    let broken = Runner::with_warehouses(
        Tz::UTC,
        BTreeMap::from([(
            "main".to_owned(),
            Err(warden::warehouse::WarehouseError::Query {
                message: "connection refused".into(),
            }),
        )]),
        Some(registry.registry.clone()),
    );
    let run = discover(&broken, &good, &[], Utc::now(), true).await;
    assert!(run.catalog_error.is_some());
    assert!(!run.results.is_empty());
    assert!(
        run.results.iter().all(|r| r.outcome == Outcome::Error),
        "{:#?}",
        run.results
    );
    db.cleanup().await;
}

on_every_engine!(
    one_statement_per_run_and_globs,
    tables_appear_and_disappear,
    volume_drop_to_zero_fails,
    schema_drift_is_detected,
    freshness_follows_changes,
    an_unreachable_catalog_errors_the_known_tables,
);

// ---- a freshness limit learned from the table's rhythm ----

const MINUTE: Duration = Duration::from_secs(60);

/// A table written every 10 minutes: its freshness passes while its rhythm
/// is learned (14 intervals), then fails once a change is later than the
/// learned band allows; `max_lag`, when set, is the limit instead.
/// PostgreSQL keeps no change time, so the runs' times (given here) are
/// the changes' and the rhythm can be played faster than the clock.
async fn a_learned_rhythm_fails_a_late_change(registry: TestRegistry) {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    write(&db, "CREATE TABLE {s}.ticks (id BIGINT)").await;
    let runner = runner(&db, &registry);
    let mut learned = spec(&db, &["ticks"], &[]);
    learned.max_lag = None;
    let fixed = spec(&db, &["ticks"], &[]);
    let t0 = Utc::now();
    let every = 10 * MINUTE;
    let mut at = t0;
    // The first run sees the table; each later one sees it changed, 10
    // minutes after the last change. The change seen by a run trains the
    // runs after it: 14 intervals are learned by the 16th run.
    for k in 0..16u32 {
        write(&db, &format!("INSERT INTO {{s}}.ticks (id) VALUES ({k})")).await;
        at = t0 + every * k;
        let run = discover(&runner, &learned, &[], at, true).await;
        assert!(run.record_error.is_none(), "{:?}", run.record_error);
        let fresh = monitor(&db, &run.results, "ticks", "freshness");
        assert_eq!(fresh.outcome, Outcome::Pass, "run {k}: {fresh:#?}");
        let have = k.saturating_sub(2);
        assert!(
            fresh
                .message
                .ends_with(&format!("learning: {have} of 14 changes")),
            "run {k}: {}",
            fresh.message
        );
    }
    let kept = registry
        .discovered_tables("main", &db.schema)
        .await
        .expect("records");
    assert_eq!(kept[0].change_times.len(), 15, "{kept:#?}");

    // One more change on time: judged against the learned band.
    write(&db, "INSERT INTO {s}.ticks (id) VALUES (16)").await;
    at += every;
    let run = discover(&runner, &learned, &[], at, true).await;
    let fresh = monitor(&db, &run.results, "ticks", "freshness");
    assert_eq!(fresh.outcome, Outcome::Pass, "{fresh:#?}");
    assert!(
        fresh
            .message
            .contains("learned from 14 changes about 10m apart"),
        "{}",
        fresh.message
    );
    let expected = fresh.expected.expect("the learned band");
    assert!(
        expected.upper >= 600.0 && expected.upper < 900.0,
        "{expected:?}"
    );
    assert_eq!(fresh.threshold["max_lag_seconds"], expected.upper);

    // Nothing written since: 11 minutes on is within the band, 20 is not.
    let run = discover(&runner, &learned, &[], at + 11 * MINUTE, true).await;
    let fresh = monitor(&db, &run.results, "ticks", "freshness");
    assert_eq!(fresh.outcome, Outcome::Pass, "{fresh:#?}");
    let late = at + 20 * MINUTE;
    let run = discover(&runner, &learned, &[], late, false).await;
    let fresh = monitor(&db, &run.results, "ticks", "freshness");
    assert_eq!(fresh.outcome, Outcome::Fail, "{fresh:#?}");
    assert_eq!(fresh.observed, Some(1200.0), "{fresh:#?}");
    assert_eq!(
        fresh.message,
        "last changed 20m ago (max 12m, learned from 15 changes about 10m apart)"
    );

    // `max_lag` wins when it is set: 20 minutes is well within 26 hours.
    let run = discover(&runner, &fixed, &[], late, false).await;
    let fresh = monitor(&db, &run.results, "ticks", "freshness");
    assert_eq!(fresh.outcome, Outcome::Pass, "{fresh:#?}");
    assert!(fresh.message.contains("(max 1d 2h)"), "{}", fresh.message);
    assert!(fresh.expected.is_none(), "{fresh:#?}");
    db.cleanup().await;
}

#[tokio::test]
async fn a_learned_rhythm_on_a_sqlite_registry() {
    a_learned_rhythm_fails_a_late_change(TestRegistry::sqlite().await).await;
}

#[tokio::test]
async fn a_learned_rhythm_on_a_postgres_registry() {
    if let Some(registry) = TestRegistry::postgres().await {
        a_learned_rhythm_fails_a_late_change(registry).await;
    }
}

// ---- configuration ----

fn problems_of(check_file: &str) -> (Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("warden.yaml"),
        "warehouses:\n  main:\n    url: sqlite://wh.db\nchecks: [checks.yaml]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("checks.yaml"), check_file).unwrap();
    let diags = warden::config::validate_all(&dir.path().join("warden.yaml"), &|_| None);
    let lines = diags
        .iter()
        .map(|d| {
            let file = d.file.file_name().unwrap().to_string_lossy().into_owned();
            format!("{file}:{}:{}: {}", d.line, d.column, d.message)
        })
        .collect();
    (lines, dir)
}

#[test]
fn a_discover_entry_loads_into_typed_values() {
    let (problems, dir) = problems_of(
        "discover:\n  - warehouse: main\n    schema: analytics\n    include: [\"*\"]\n    \
         exclude: [\"tmp_*\", \"*_backup\"]\n    tier: 3\n    owner: data-platform\n    \
         schedule: \"*/30 * * * *\"\n    monitors: [freshness, volume, schema]\n    \
         freshness: { max_lag: 26h }\n",
    );
    assert_eq!(problems, Vec::<String>::new());
    let loaded = warden::config::load_with_env(&dir.path().join("warden.yaml"), &|_| None).unwrap();
    let [d] = loaded.config.discover.as_slice() else {
        panic!("one entry: {:#?}", loaded.config.discover);
    };
    assert_eq!(d.group(), "main.analytics");
    assert_eq!(d.max_lag, Some(26 * HOUR));
    assert_eq!(d.forget_after, 7 * 24 * HOUR);
    assert_eq!(d.monitors, Monitors::ALL);
    assert!(d.matches("orders"));
    assert!(!d.matches("tmp_orders"));
    assert!(!d.matches("orders_backup"));
    assert_eq!(
        d.schedule.as_ref().map(|s| s.expr.as_str()),
        Some("*/30 * * * *")
    );
}

#[test]
fn an_entry_without_max_lag_learns_its_limits() {
    let (problems, dir) = problems_of("discover:\n  - warehouse: main\n    schema: analytics\n");
    assert_eq!(problems, Vec::<String>::new());
    let loaded = warden::config::load_with_env(&dir.path().join("warden.yaml"), &|_| None).unwrap();
    let [d] = loaded.config.discover.as_slice() else {
        panic!("one entry: {:#?}", loaded.config.discover);
    };
    assert_eq!(d.max_lag, None);
    assert_eq!(d.monitors, Monitors::ALL);
}

#[test]
fn discover_errors_name_the_file_line_and_key() {
    let (problems, _dir) = problems_of(
        "discover:\n  - warehouse: mian\n    schema: analytics\n    include: [\"[\"]\n    \
         monitors: [freshnes, volume]\n",
    );
    assert_eq!(
        problems,
        [
            "checks.yaml:2:16: `warehouse`: unknown warehouse `mian`; did you mean `main`?",
            "checks.yaml:4:15: `include`: `[` is not a valid glob: invalid range pattern",
            "checks.yaml:5:16: `monitors`: unknown monitor `freshnes`; did you mean `freshness`?",
        ]
    );

    let (problems, _dir) = problems_of(
        "discover:\n  - warehouse: main\n    schema: analytics\n    forget_after: soon\n",
    );
    // No `max_lag` is no problem: the limit is learned from each table.
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("checks.yaml:4:19: `forget_after`:"),
        "{problems:#?}"
    );

    let (problems, _dir) = problems_of(
        "discover:\n  - warehouse: main\n    monitors: [schema, schema]\n    colour: blue\n",
    );
    assert!(
        problems.iter().any(|p| p.contains("colour")),
        "unknown keys are refused: {problems:#?}"
    );

    let (problems, _dir) = problems_of(
        "discover:\n  - warehouse: main\n    schema: a\n    monitors: [schema]\n  \
         - warehouse: main\n    schema: a\n    monitors: [volume]\n",
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("checks.yaml:5:5: duplicate discover entry for schema `a`"),
        "{problems:#?}"
    );
}

// ---- the agent's run, the API and metrics ----

async fn call(state: &warden::app::AppState, path: &str) -> (u16, String) {
    use tower::ServiceExt;
    let request = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = warden::http::router(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// A scheduled discover run of the agent records the tables as datasets
/// the API lists with their group, exports their monitors as metrics and
/// raises the dropped table's alert; a hand-written dataset on a table of
/// the schema stays the hand-written one.
async fn discovered_datasets_appear_in_the_api_metrics_and_alerts(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    write(&db, "CREATE TABLE {s}.orders (id BIGINT, amount INTEGER)").await;
    write(&db, "CREATE TABLE {s}.events (id BIGINT)").await;
    write(
        &db,
        "INSERT INTO {s}.orders (id, amount) VALUES (1, 10), (2, 20)",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("warden.yaml"),
        format!(
            "agent:\n  registry: sqlite://warden.db\nwarehouses:\n  main:\n    url: {}\n\
             checks: [checks.yaml]\n",
            db.url()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("checks.yaml"),
        format!(
            "datasets:\n  - name: orders\n    warehouse: main\n    table: {s}.orders\n    \
             checks:\n      - row_count: {{ min: 1 }}\n\
             discover:\n  - warehouse: main\n    schema: {s}\n    tier: 1\n    \
             schedule: \"*/30 * * * *\"\n    freshness: {{ max_lag: 26h }}\n",
            s = db.schema
        ),
    )
    .unwrap();
    let config = Arc::new(
        warden::config::load(&dir.path().join("warden.yaml"))
            .unwrap()
            .config,
    );
    let registry = warden::registry::Registry::open(&config.agent.registry)
        .await
        .unwrap();
    let state = warden::app::AppState::builder(config.clone(), registry)
        .ready(true)
        .build();
    let spec = &config.discover[0];
    let t0 = Utc::now();
    warden::agent::discover::run_once(&state, spec, t0).await;

    let events = format!("main.{}.events", db.schema);
    let (status, body) = call(&state, "/api/v1/datasets").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let datasets = json["datasets"].as_array().unwrap();
    let names: Vec<&str> = datasets
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["orders", events.as_str()],
        "the hand-written one wins `orders`"
    );
    let group = format!("main.{}", db.schema);
    assert_eq!(datasets[0]["discovered"], serde_json::Value::Null);
    assert_eq!(datasets[1]["discovered"], group.as_str());
    assert_eq!(datasets[1]["tier"], 1);
    assert_eq!(datasets[1]["status"], "pass");

    let (status, body) = call(&state, &format!("/api/v1/datasets/{events}")).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let kinds: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    let expected: &[&str] = if keeps_figures(&db) {
        &["freshness", "schema", "volume"]
    } else {
        &["schema"]
    };
    assert_eq!(kinds, expected, "{body}");

    let (_, metrics) = call(&state, "/metrics").await;
    let series = format!(
        "warden_check_outcome{{check=\"{events}.schema\",dataset=\"{events}\",outcome=\"pass\"}} 1"
    );
    assert!(metrics.contains(&series), "no `{series}` in\n{metrics}");

    // The status page lists it under its group, after the hand-written one.
    let (status, page) = call(&state, "/").await;
    assert_eq!(status, 200, "{page}");
    let heading = page
        .find(&format!("id=\"group-{group}\""))
        .unwrap_or_else(|| panic!("no group `{group}` on the page:\n{page}"));
    let listed = page
        .rfind(&events)
        .expect("the discovered dataset is listed");
    assert!(heading < listed, "listed under its group");
    assert!(
        page.find(">orders<").is_some_and(|orders| orders < heading),
        "the hand-written dataset first"
    );

    // The table goes: its schema monitor fails and its alert fires (tier 1).
    write(&db, "DROP TABLE {s}.events").await;
    warden::agent::discover::run_once(&state, spec, t0 + HOUR).await;
    let (_, body) = call(&state, &format!("/api/v1/datasets/{events}")).await;
    assert!(body.contains("table dropped"), "{body}");
    let (status, body) = call(&state, "/api/v1/alerts").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("{events}.schema")), "{body}");
    db.cleanup().await;
}

mod agent {
    on_every_engine!(discovered_datasets_appear_in_the_api_metrics_and_alerts);
    use super::discovered_datasets_appear_in_the_api_metrics_and_alerts;
}

/// `warden check` runs the `discover:` entries with the datasets: their
/// results are printed, recorded, and count in the exit status.
#[test]
fn warden_check_runs_the_discover_entries() {
    use crate::support::cli::warden_in;
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.db");
    crate::support::cli::block_on(async {
        use sqlx::{ConnectOptions, Executor};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&warehouse)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        conn.execute(
            "CREATE TABLE orders (id INTEGER, amount NUMERIC); CREATE TABLE tmp_x (id INTEGER)",
        )
        .await
        .unwrap();
    });
    std::fs::write(
        dir.path().join("warden.yaml"),
        "warehouses:\n  main:\n    url: sqlite://warehouse.db\nchecks: [checks.yaml]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("checks.yaml"),
        "discover:\n  - warehouse: main\n    schema: main\n    exclude: [\"tmp_*\"]\n    \
         monitors: [schema]\n",
    )
    .unwrap();
    let run = warden_in(dir.path(), &["check", "--format", "json"], &[]);
    run.assert_code(0);
    let json = run.json();
    let checks: Vec<&str> = json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["main.main.orders.schema"]);

    // A dropped table fails the next check, once.
    crate::support::cli::block_on(async {
        use sqlx::{ConnectOptions, Executor};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&warehouse)
            .connect()
            .await
            .unwrap();
        conn.execute("DROP TABLE orders").await.unwrap();
    });
    let run = warden_in(dir.path(), &["check", "--format", "json"], &[]);
    run.assert_code(1);
    assert!(run.stdout.contains("table dropped"), "{}", run.stdout);
    warden_in(dir.path(), &["check", "--format", "json"], &[]).assert_code(0);
}

/// A partitioned PostgreSQL table is one dataset whose figures add up its
/// partitions' (which are not datasets of their own).
#[tokio::test]
async fn a_partitioned_postgres_table_counts_its_partitions() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let registry = TestRegistry::sqlite().await;
    write(
        &db,
        "CREATE TABLE {s}.sales (d DATE, id BIGINT) PARTITION BY RANGE (d); \
         CREATE TABLE {s}.sales_h1 PARTITION OF {s}.sales FOR VALUES FROM ('2026-01-01') TO ('2026-07-01'); \
         CREATE TABLE {s}.sales_h2 PARTITION OF {s}.sales FOR VALUES FROM ('2026-07-01') TO ('2027-01-01'); \
         INSERT INTO {s}.sales VALUES ('2026-02-01', 1), ('2026-08-01', 2), ('2026-09-01', 3)",
    )
    .await;
    let runner = runner(&db, &registry);
    let spec = spec(&db, &["*"], &[]);
    let run = discover(&runner, &spec, &[], Utc::now(), true).await;
    assert_eq!(tables_of(&db, &run.results), ["sales"]);
    let volume = monitor(&db, &run.results, "sales", "volume");
    assert_eq!(volume.observed, Some(3.0), "{volume:#?}");
    db.cleanup().await;
}
