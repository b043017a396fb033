//! A fresh registry per test: a SQLite file in a temporary directory, or a
//! new PostgreSQL database on the server named by `WARDEN_TEST_POSTGRES_URL`
//! (dropped again when the test ends, even if it failed).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use warden::check::{CheckResult, Outcome};
use warden::registry::{Registry, RunRecord};

use super::db::PgDatabase;

/// Runs each named `async fn(&Registry)` case once on SQLite and once on
/// PostgreSQL, as `<case>::sqlite` and `<case>::postgres`.
macro_rules! on_both_engines {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = crate::support::registry::TestRegistry::sqlite().await;
                super::$case(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = crate::support::registry::TestRegistry::postgres().await else { return };
                super::$case(&db).await;
            }
        }
    )+};
}

/// A registry that exists for one test.
pub struct TestRegistry {
    pub registry: Registry,
    /// The URL it was opened with (password included), to open it again.
    pub url: String,
    _place: Place,
}

/// What holds the registry's data, and goes with the value.
enum Place {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { _database: PgDatabase },
}

impl std::ops::Deref for TestRegistry {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.registry
    }
}

impl TestRegistry {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("registry.db").display());
        let registry = Registry::open(&url).await.expect("open SQLite registry");
        Self {
            registry,
            url,
            _place: Place::Sqlite { _dir: dir },
        }
    }

    /// `None` (with a note) when `WARDEN_TEST_POSTGRES_URL` is unset; a
    /// panic when it is set but the server cannot be used.
    pub async fn postgres() -> Option<Self> {
        let database = PgDatabase::create("warden_reg").await?;
        let url = database.url.clone();
        let registry = Registry::open(&url)
            .await
            .expect("open PostgreSQL registry");
        Some(Self {
            registry,
            url,
            _place: Place::Postgres {
                _database: database,
            },
        })
    }
}

/// A timestamp as the registry stores it: whole microseconds.
pub fn stored(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// 2026-11-20 plus `hours`, UTC.
pub fn at(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + chrono::Duration::hours(hours)
}

/// A result of check `<dataset>.<name>` as the engine would produce it.
pub fn result(
    check: &str,
    partition: Option<&str>,
    outcome: Outcome,
    observed: Option<f64>,
) -> CheckResult {
    let dataset = check.split_once('.').map_or(check, |(d, _)| d).to_owned();
    CheckResult {
        check: check.to_owned(),
        dataset,
        kind: "row_count".to_owned(),
        column: None,
        partition: partition.map(str::to_owned),
        outcome,
        observed,
        threshold: BTreeMap::from([("min".to_owned(), serde_json::json!(1.0))]),
        message: format!("{check} observed {observed:?}"),
        duration_ms: 12,
        expected: None,
        score: None,
    }
}

/// A passing run record of `check` with `observed`.
pub fn record(
    check: &str,
    partition: Option<&str>,
    observed: f64,
    scheduled_at: DateTime<Utc>,
) -> RunRecord {
    RunRecord::new(
        result(check, partition, Outcome::Pass, Some(observed)),
        scheduled_at,
    )
}
