//! Retention (`agent.retention`): the hourly prune on SQLite and PostgreSQL
//! registries deletes old history of each kind in batches and keeps what is
//! still needed; bad retention settings are errors naming file, line and key.
//!
//! Rows are written now and pruned as if later (`prune` takes the time it
//! judges age by), so that each kind's cutoff can be crossed in turn.

use chrono::{DateTime, Duration, Utc};
use warden::agent::retention::prune;
use warden::config::{ConfigError, Retention};
use warden::registry::{Prunable, Registry, SilenceRecord};

use crate::support::agent::Project;
use crate::support::registry::{TestRegistry, record};

on_both_engines!(old_history_goes_and_what_is_needed_stays);

/// Statements and counts on the registry's own tables, either engine.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    async fn open(db: &TestRegistry) -> Self {
        if db.url.starts_with("sqlite") {
            Self::Sqlite(sqlx::SqlitePool::connect(&db.url).await.unwrap())
        } else {
            Self::Postgres(sqlx::PgPool::connect(&db.url).await.unwrap())
        }
    }

    /// Runs `sql` with `$1` bound to `at`.
    async fn exec(&self, sql: &str, at: DateTime<Utc>) {
        match self {
            Self::Sqlite(pool) => sqlx::query(sql).bind(at).execute(pool).await.map(drop),
            Self::Postgres(pool) => sqlx::query(sql).bind(at).execute(pool).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn count(&self, sql: &str) -> i64 {
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn strings(&self, sql: &str) -> Vec<String> {
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn close(self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

const GATE: &str = "INSERT INTO gates (gate_id, dataset, partition_key, run_id, idempotency_key, \
     request_hash, status, basis, agent, created_at, deadline_at, decided_at) VALUES ";

/// What one prune deleted of `what`.
fn deleted(pruned: &[(Prunable, u64)], what: Prunable) -> u64 {
    pruned
        .iter()
        .find(|(w, _)| *w == what)
        .map_or(0, |(_, n)| *n)
}

async fn old_history_goes_and_what_is_needed_stays(db: &TestRegistry) {
    let registry: &Registry = db;
    let raw = Raw::open(db).await;
    let now = Utc::now();
    let retention = Retention::default();

    // Results: five runs of one check, one of another.
    for i in 0..5 {
        let at = now - Duration::hours(5 - i);
        registry
            .record_run(&[record("orders.rows", None, i as f64, at)])
            .await
            .unwrap();
    }
    registry
        .record_run(&[record("events.rows", None, 1.0, now - Duration::hours(9))])
        .await
        .unwrap();

    // A published partition, its transitions, and gates: one its row points
    // at, one it was published with, an old one no row names, an open one.
    raw.exec(
        "INSERT INTO partitions (dataset, partition_key, state, gate_id, published_gate_id, \
         published_at, updated_at) VALUES ('orders', '2026-01-01', 'published', 'g-latest', \
         'g-published', $1, $1)",
        now,
    )
    .await;
    for (from, to) in [
        ("NULL", "'validating'"),
        ("'validating'", "'passed'"),
        ("'passed'", "'published'"),
    ] {
        raw.exec(
            &format!(
                "INSERT INTO partition_transitions (dataset, partition_key, from_state, to_state, \
                 at, actor) VALUES ('orders', '2026-01-01', {from}, {to}, $1, 'gate')"
            ),
            now,
        )
        .await;
    }
    for (id, status, basis, decided) in [
        ("g-old", "denied", "'checks'", "$1"),
        ("g-latest", "allowed", "'checks'", "$1"),
        ("g-published", "allowed", "'checks'", "$1"),
        ("g-open", "running", "NULL", "NULL"),
    ] {
        raw.exec(
            &format!(
                "{GATE} ('{id}', 'orders', '2026-01-01', '{id}', '{id}', 'h', '{status}', {basis}, \
                 'a', $1, $1, {decided})"
            ),
            now,
        )
        .await;
    }

    // Alerts: resolved and told, resolved with its resolve still to send,
    // and firing.
    for (key, state, notified) in [
        ("orders.told", "resolved", "FALSE"),
        ("orders.untold", "resolved", "TRUE"),
        ("orders.firing", "firing", "TRUE"),
    ] {
        raw.exec(
            &format!(
                "INSERT INTO alerts (check_id, partition_key, dataset, state, updated_at, kind, \
                 notified, resolved_at) VALUES ('{key}', '', 'orders', '{state}', $1, 'check', \
                 {notified}, $1)"
            ),
            now,
        )
        .await;
    }

    // Notifications: delivered, dead, pending.
    let payload = serde_json::json!({"summary": "x"});
    let delivered = registry.enqueue("ops", &payload, None).await.unwrap();
    registry.mark_delivered(delivered).await.unwrap();
    let dead = registry.enqueue("ops", &payload, None).await.unwrap();
    registry.mark_dead(dead, "gone").await.unwrap();
    registry.enqueue("ops", &payload, None).await.unwrap();

    // Silences: one ending within the hour, one in a month.
    for (id, ends) in [("short", Duration::hours(1)), ("long", Duration::days(30))] {
        registry
            .create_silence(&SilenceRecord {
                id: id.to_owned(),
                matchers: serde_json::json!({"dataset": "orders"}),
                starts_at: now,
                ends_at: now + ends,
                created_by: "oncall".to_owned(),
                comment: String::new(),
                note: None,
                ended_by: None,
            })
            .await
            .unwrap();
    }

    let counts = || async {
        [
            raw.count("SELECT count(*) FROM check_results").await,
            raw.count("SELECT count(*) FROM gates").await,
            raw.count("SELECT count(*) FROM partition_transitions")
                .await,
            raw.count("SELECT count(*) FROM outbox").await,
            raw.count("SELECT count(*) FROM alerts").await,
            raw.count("SELECT count(*) FROM silences").await,
            raw.count("SELECT count(*) FROM partitions").await,
        ]
    };
    assert_eq!(counts().await, [6, 4, 3, 3, 3, 2, 1]);

    // 29 days on: nothing is old enough.
    let pruned = prune(registry, &retention, now + Duration::days(29), 2)
        .await
        .unwrap();
    assert!(pruned.iter().all(|(_, n)| *n == 0), "{pruned:?}");
    assert_eq!(counts().await, [6, 4, 3, 3, 3, 2, 1]);

    // 31 days on: the delivered notification goes; the dead and the
    // pending ones stay.
    let pruned = prune(registry, &retention, now + Duration::days(31), 2)
        .await
        .unwrap();
    assert_eq!(deleted(&pruned, Prunable::Notifications), 1);
    assert_eq!(
        raw.strings("SELECT status FROM outbox ORDER BY id").await,
        ["dead", "pending"]
    );

    // 100 days on: the resolved alert that was told goes, and the silence
    // that ended 99 days ago; the rest stays.
    let pruned = prune(registry, &retention, now + Duration::days(100), 2)
        .await
        .unwrap();
    assert_eq!(deleted(&pruned, Prunable::ResolvedAlerts), 1);
    assert_eq!(deleted(&pruned, Prunable::Silences), 1);
    assert_eq!(
        raw.strings("SELECT check_id FROM alerts ORDER BY check_id")
            .await,
        ["orders.firing", "orders.untold"]
    );
    assert_eq!(raw.strings("SELECT id FROM silences").await, ["long"]);
    assert_eq!(counts().await, [6, 4, 3, 2, 2, 1, 1]);

    // 401 days on: results but the newest of each check (in batches of
    // two), the gate nothing points at, and the older transitions.
    let pruned = prune(registry, &retention, now + Duration::days(401), 2)
        .await
        .unwrap();
    assert_eq!(deleted(&pruned, Prunable::Results), 4);
    assert_eq!(deleted(&pruned, Prunable::Gates), 1);
    assert_eq!(deleted(&pruned, Prunable::Transitions), 2);
    assert_eq!(
        raw.strings("SELECT message FROM check_results ORDER BY check_id")
            .await,
        [
            "events.rows observed Some(1.0)",
            "orders.rows observed Some(4.0)"
        ]
    );
    assert_eq!(
        raw.strings("SELECT gate_id FROM gates ORDER BY gate_id")
            .await,
        ["g-latest", "g-open", "g-published"]
    );
    assert_eq!(
        raw.strings("SELECT to_state FROM partition_transitions")
            .await,
        ["published"]
    );
    let partition = registry
        .partition(
            &warden::domain::DatasetName::parse("orders").unwrap(),
            "2026-01-01",
        )
        .await;
    assert_eq!(partition.unwrap().unwrap().state.as_str(), "published");
    // The newest result still answers the API and the baselines.
    let latest = registry.latest_results_all().await.unwrap();
    assert_eq!(latest.len(), 2);

    // Again: nothing more goes.
    let pruned = prune(registry, &retention, now + Duration::days(401), 2)
        .await
        .unwrap();
    assert!(pruned.iter().all(|(_, n)| *n == 0), "{pruned:?}");
    raw.close().await;
}

#[test]
fn retention_settings_are_checked_with_file_line_and_key() {
    let p = Project::new();
    p.write(
        "warden.yaml",
        "agent:\n  max_http_connections: 0\n  retention:\n    results: 2d\n    gates: soon\n    \
         notifications: 1h\n    resolved_alerts: 90d\nwarehouses: {}\nchecks: []\n",
    );
    let Err(ConfigError::Invalid(diags)) = warden::config::load(&p.config()) else {
        panic!("the configuration loaded");
    };
    let file = p.config().display().to_string();
    let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        lines,
        [
            format!("{file}:2:25: `max_http_connections`: must be at least 1 (got 0)"),
            format!(
                "{file}:4:14: `retention.results`: `2d` is too short; keep results at least 8days (row_count_change compares with a week ago)"
            ),
            format!("{file}:5:12: `retention.gates`: `soon` is not a duration like 60s, 6h or 7d"),
            format!(
                "{file}:6:20: `retention.notifications`: `1h` is too short; keep notifications at least 1day"
            ),
        ]
    );

    p.write(
        "warden.yaml",
        "agent:\n  retention: { results: 30d, keep: 1d }\nwarehouses: {}\nchecks: []\n",
    );
    let err = warden::config::load(&p.config()).unwrap_err().to_string();
    assert!(err.contains("keep"), "{err}");

    // Defaults, and a partial setting keeps the other defaults.
    p.write(
        "warden.yaml",
        "agent:\n  retention: { results: 30d }\nwarehouses: {}\nchecks: []\n",
    );
    let config = p.load();
    assert_eq!(config.agent.max_http_connections, 512);
    let day = std::time::Duration::from_secs(86_400);
    assert_eq!(
        config.agent.retention,
        Retention {
            results: 30 * day,
            ..Retention::default()
        }
    );
    assert_eq!(Retention::default().gates, 400 * day);
    assert_eq!(Retention::default().notifications, 30 * day);
    assert_eq!(Retention::default().resolved_alerts, 90 * day);
}
