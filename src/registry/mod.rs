//! The metadata registry: check history, schema baselines, partition states,
//! alert state and the notification outbox. SQLite by default, PostgreSQL for
//! production and for several agents sharing one registry.
//!
//! Both engines hold the same tables (`migrations/sqlite`,
//! `migrations/postgres`), applied when the registry is opened. Statements
//! are written once with `$1`-style parameters, which both engines accept;
//! `sql.rs` runs them on whichever pool is open, or inside a write
//! transaction ([`Tx`]) a caller opens with [`Registry::begin`]. Timestamps are UTC, kept to the microsecond (PostgreSQL's
//! precision) so both engines store the same instant.
//!
//! One file per concept: `results.rs` (check history, [`RunRecord`]),
//! `schema.rs` (schema baselines, [`StoredColumn`]), `partitions.rs`
//! (partition rows and their transition log, [`PartitionRecord`]),
//! `outbox.rs` (durable notifications, [`OutboxEntry`]), `claims.rs`
//! (scheduled runs shared by several agents), `gates.rs` (gate rows and the
//! partition locks, [`GateRecord`]), `alerts.rs` (alert rows and the
//! transactions that queue notifications, [`AlertRecord`]), `silences.rs`
//! (silences created through the API, [`SilenceRecord`]), `prune.rs`
//! (retention: old history deleted in small batches, [`Prunable`]), `sql.rs`
//! (statements on either engine, [`Tx`]) and `error.rs` ([`RegistryError`]).
//!
//! The registry stores; it does not decide. The partition state machine and
//! the gate's rules are `gate`'s, the alert state machine is `alert`'s: they
//! open a transaction, read rows, decide, and have the registry write what
//! they decided.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use crate::domain::{ENCODE_USERINFO, Scrubber, redact_url, userinfo_needs_encoding};
use crate::warehouse::Engine;

mod alerts;
mod claims;
mod discovered;
mod error;
mod gates;
mod outbox;
mod partitions;
mod prune;
mod results;
mod schema;
mod silences;
mod sql;

pub use alerts::{AlertFlush, AlertRecord, DigestPlan, NewNotification, NotifiedMark};
pub use discovered::DiscoveredRecord;
pub use error::RegistryError;
pub use gates::{GateRecord, idempotency_key};
pub use outbox::{OutboxEntry, OutboxStatus};
pub use partitions::{
    PartitionRecord, PartitionRow, PartitionWrite, PublishedPartition, TRANSITION, Transition,
    TransitionEntry, lost_race,
};
// The stored vocabulary, under the names callers have used so far.
pub use crate::domain::{AlertKind, AlertState, GateBasis, GateStatus, PartitionState};
pub use prune::Prunable;
pub use results::{AnomalyPoint, RunRecord, StoredResult};
pub use schema::{SchemaBaseline, StoredColumn};
pub use silences::SilenceRecord;
pub use sql::Tx;

use error::describe;

/// How long opening the registry may wait for the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections of the read pool ([`Registry::reads`]).
const READ_CONNECTIONS: u32 = 2;
/// Each SQLite registry connection's page cache, in KiB (SQLite's default is
/// 2,000): six connections would otherwise hold up to 12 MiB of pages the
/// operating system caches anyway.
const SQLITE_PAGE_CACHE_KIB: u32 = 1024;
/// A SQLite registry connection idle this long is closed.
const SQLITE_IDLE_CLOSE: Duration = Duration::from_secs(5);
/// How long SQLite waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a SQLite registry's WAL is written back into the database file
/// once it was written. No commit does it: SQLite's automatic checkpoint runs in
/// the commit that crosses 1,000 pages of WAL and syncs the file there,
/// which held that commit, and every write queued behind it (a burst of
/// gates' decisions), for 10–20 ms. The registry's own task checkpoints
/// instead, beside the writers, without blocking them ([`spawn_checkpoints`]).
const SQLITE_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How often SQLite migrations are run when another process may be applying
/// them at the same time (see [`migrate_sqlite`]).
const SQLITE_MIGRATION_ATTEMPTS: u32 = 3;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The open pool, one type per engine (sqlx's `Any` driver cannot decode
/// timestamps).
#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A handle on the registry. Cheap to clone: clones share one pool.
#[derive(Debug, Clone)]
pub struct Registry {
    pool: Pool,
    /// A small pool of its own for what the API and the status page read,
    /// so that readers never wait for the connections gates and runs write
    /// with ([`Registry::reads`]); `None` for an in-memory SQLite registry,
    /// which lives in its one pool.
    reads: Option<Pool>,
    /// The URL it was opened with, password redacted.
    url: String,
    /// SQLite has one writer: this process's write transactions queue here
    /// instead of in SQLite's busy handler, which sleeps in steps of
    /// milliseconds (other processes still meet the busy handler).
    sqlite_writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Registry {
    /// Opens the registry at `url` and brings its schema up to date.
    ///
    /// `sqlite://path` (or `sqlite:path`) creates the file if it is missing
    /// and uses WAL with a busy timeout; its directory must exist.
    /// `postgres://…` needs the database to exist. A registry that cannot be
    /// reached gives [`RegistryError::Unreachable`] naming the reason.
    /// Messages name it by its URL as [`redact_url`] shows it, and what the
    /// driver says is scrubbed of the URL's secrets.
    pub async fn open(url: &str) -> Result<Self, RegistryError> {
        Self::open_as(url, redact_url(url)).await.map_err(|e| {
            match e {
                RegistryError::InvalidUrl { url: shown, reason }
                    if userinfo_needs_encoding(url) =>
                {
                    RegistryError::InvalidUrl {
                        url: shown,
                        reason: format!("{reason}; {ENCODE_USERINFO}"),
                    }
                }
                e => e,
            }
            .scrubbed(&Scrubber::for_url(url))
        })
    }

    async fn open_as(url: &str, redacted: String) -> Result<Self, RegistryError> {
        let registry = match Engine::from_url(url) {
            Some(Engine::Sqlite) => {
                // Processes opening a new SQLite registry at once take turns:
                // creating the file, switching it to WAL and migrating it are
                // not safe to interleave (sqlx takes no migration lock there).
                let _turn = sqlite_open_lock(url, &redacted).await?;
                let registry = Self::open_sqlite(url, redacted).await?;
                registry.migrate().await?;
                return Ok(registry);
            }
            Some(Engine::Postgres) => Self::open_postgres(url, redacted).await?,
            _ => {
                return Err(RegistryError::InvalidUrl {
                    url: redacted,
                    reason: "expected sqlite://<path> or postgres://<host>/<database>".to_owned(),
                });
            }
        };
        registry.migrate().await?;
        Ok(registry)
    }

    async fn open_sqlite(url: &str, redacted: String) -> Result<Self, RegistryError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| invalid_url(&redacted, &e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .pragma("cache_size", format!("-{SQLITE_PAGE_CACHE_KIB}"))
            .pragma("wal_autocheckpoint", "0")
            .foreign_keys(true);
        let mut wal = options.get_filename().as_os_str().to_owned();
        wal.push("-wal");
        // One connection first: its error says why the file cannot be opened.
        probe(options.connect(), &redacted).await?;
        // Connections idle between ticks are closed: each holds a thread and
        // its caches, and opening the file again is cheap.
        let mut pool_options = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(SQLITE_IDLE_CLOSE);
        if sqlite_in_memory(url) {
            // An in-memory database lives only while a connection is open.
            pool_options = pool_options
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        // Readers get connections of their own that cannot write; in WAL
        // mode they read the last commit without waiting for the writer.
        let reads = (!sqlite_in_memory(url)).then(|| {
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(READ_CONNECTIONS)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .idle_timeout(SQLITE_IDLE_CLOSE)
                    .connect_lazy_with(options.clone().pragma("query_only", "ON")),
            )
        });
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(|e| unreachable(&redacted, &e))?;
        let sqlite_writer = std::sync::Arc::default();
        if !sqlite_in_memory(url) {
            spawn_checkpoints(
                pool.clone(),
                wal.into(),
                std::sync::Arc::downgrade(&sqlite_writer),
            );
        }
        Ok(Self {
            pool: Pool::Sqlite(pool),
            reads,
            url: redacted,
            sqlite_writer,
        })
    }

    async fn open_postgres(url: &str, redacted: String) -> Result<Self, RegistryError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| invalid_url(&redacted, &e))?;
        // One connection first: the pool retries refused connections until
        // its timeout and then reports only that it timed out.
        probe(options.connect(), &redacted).await?;
        // Connected on first use: commands that read nothing for the API
        // open no connection for it.
        let reads = PgPoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options.clone());
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| unreachable(&redacted, &e))?;
        Ok(Self {
            pool: Pool::Postgres(pool),
            reads: Some(Pool::Postgres(reads)),
            url: redacted,
            sqlite_writer: Default::default(),
        })
    }

    async fn migrate(&self) -> Result<(), RegistryError> {
        let result = match &self.pool {
            Pool::Sqlite(pool) => migrate_sqlite(pool).await,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        };
        result.map_err(|error| match error {
            sqlx::migrate::MigrateError::Execute(e) if is_unreachable(&e) => {
                unreachable(&self.url, &e)
            }
            error => RegistryError::Migration {
                url: self.url.clone(),
                error,
            },
        })
    }

    /// Which engine holds the registry.
    pub fn engine(&self) -> Engine {
        match self.pool {
            Pool::Sqlite(_) => Engine::Sqlite,
            Pool::Postgres(_) => Engine::Postgres,
        }
    }

    /// The registry's URL with any password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks that the registry answers, for `/readyz`.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        sql::query("SELECT 1").execute(self, "ping").await?;
        Ok(())
    }

    /// The same registry on its read pool: for the API's reads and the
    /// status page, which then never take a connection a gate or a run
    /// needs. On SQLite its connections cannot write. An in-memory SQLite
    /// registry has one pool, which this shares.
    pub fn reads(&self) -> Registry {
        Registry {
            pool: self.reads.clone().unwrap_or_else(|| self.pool.clone()),
            reads: None,
            url: self.url.clone(),
            sqlite_writer: self.sqlite_writer.clone(),
        }
    }

    /// Closes every connection; further calls fail as unavailable.
    pub async fn close(&self) {
        for pool in std::iter::once(&self.pool).chain(&self.reads) {
            match pool {
                Pool::Sqlite(pool) => pool.close().await,
                Pool::Postgres(pool) => pool.close().await,
            }
        }
    }
}

/// Writes a SQLite registry's WAL (the file `wal`) back into its database
/// file every [`SQLITE_CHECKPOINT_EVERY`] in which the WAL was written, on a
/// connection of its own: a passive checkpoint neither waits for nor blocks
/// the writer. An idle registry is left alone, so its connections close.
/// Ends when the pool is closed or every handle on the registry is dropped,
/// which `writer`, the handles' shared writer turn, tells (the last
/// connection to close checkpoints what is left).
fn spawn_checkpoints(
    pool: SqlitePool,
    wal: PathBuf,
    writer: std::sync::Weak<tokio::sync::Mutex<()>>,
) {
    let written = move || {
        let meta = std::fs::metadata(&wal).ok()?;
        Some((meta.modified().ok(), meta.len()))
    };
    tokio::spawn(async move {
        let mut checkpointed = None;
        loop {
            tokio::time::sleep(SQLITE_CHECKPOINT_EVERY).await;
            if writer.strong_count() == 0 || pool.is_closed() {
                break;
            }
            // Read before the checkpoint: what is written meanwhile is
            // checkpointed next time.
            let seen = written();
            if seen.is_none() || seen == checkpointed {
                continue;
            }
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                Ok(_) => checkpointed = seen,
                Err(_) if pool.is_closed() => break,
                Err(e) => {
                    tracing::warn!(error = %e, "the registry's WAL could not be checkpointed; trying again");
                }
            }
        }
    });
}

async fn probe<C: Connection>(
    connect: impl Future<Output = Result<C, sqlx::Error>>,
    url: &str,
) -> Result<(), RegistryError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(conn)) => {
            // Closing politely is best-effort; the connection worked.
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(unreachable(url, &e)),
        Err(_) => Err(RegistryError::Unreachable {
            url: url.to_owned(),
            reason: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        }),
    }
}

fn invalid_url(url: &str, error: &sqlx::Error) -> RegistryError {
    RegistryError::InvalidUrl {
        url: url.to_owned(),
        reason: describe(error),
    }
}

fn unreachable(url: &str, error: &sqlx::Error) -> RegistryError {
    RegistryError::Unreachable {
        url: url.to_owned(),
        reason: describe(error),
    }
}

fn is_unreachable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut
    )
}

/// Whether a SQLite URL names an in-memory database, as sqlx reads it:
/// `sqlite::memory:`, `sqlite://:memory:`, or `mode=memory` among the
/// parameters. sqlx gives such a database a made-up file name
/// (`file:sqlx-in-memory-0`) that names no file.
fn sqlite_in_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:"
        || params
            .split('&')
            .any(|pair| pair.split_once('=') == Some(("mode", "memory")))
}

/// The lock file of the SQLite registry at `url`: `<registry file>.lock`;
/// `None` for an in-memory database, which has no file to lock.
fn sqlite_lock_path(url: &str, redacted: &str) -> Result<Option<PathBuf>, RegistryError> {
    let options = SqliteConnectOptions::from_str(url).map_err(|e| invalid_url(redacted, &e))?;
    if sqlite_in_memory(url) {
        return Ok(None);
    }
    let mut lock_path = options.get_filename().as_os_str().to_owned();
    lock_path.push(".lock");
    Ok(Some(lock_path.into()))
}

/// An exclusive lock on `<registry file>.lock`, held while a process opens
/// and migrates the registry; `None` for an in-memory database.
async fn sqlite_open_lock(
    url: &str,
    redacted: &str,
) -> Result<Option<std::fs::File>, RegistryError> {
    let Some(lock_path) = sqlite_lock_path(url, redacted)? else {
        return Ok(None);
    };
    // A lock file that cannot be created (a missing directory, a read-only
    // one) means the database cannot be opened either: opening it says why.
    let Ok(lock) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
    else {
        return Ok(None);
    };
    let locked = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .map_err(|e| RegistryError::Unreachable {
            url: redacted.to_owned(),
            reason: format!("waiting for the registry lock failed: {e}"),
        })?;
    locked.map(Some).map_err(|e| RegistryError::Unreachable {
        url: redacted.to_owned(),
        reason: format!("cannot lock the registry file: {e}"),
    })
}

/// The hold one agent keeps on its SQLite registry for as long as it runs:
/// an exclusive lock on `<registry file>.agent`, which holds the agent's
/// process id and host so a second agent can say who has it. Nothing for a
/// PostgreSQL or in-memory registry. Released when dropped (or when the
/// process ends, however it ends).
#[derive(Debug)]
pub struct AgentHold {
    _file: Option<std::fs::File>,
}

impl AgentHold {
    /// Takes the registry at `url` for this agent, or fails with
    /// [`RegistryError::InUse`] naming the agent that has it. Call it after
    /// [`Registry::open`], which has already said what is wrong with a URL.
    pub fn take(url: &str, holder: &str) -> Result<Self, RegistryError> {
        use std::io::{Read, Seek, Write};
        let redacted = redact_url(url);
        if Engine::from_url(url) != Some(Engine::Sqlite) {
            return Ok(Self { _file: None });
        }
        let Some(mut path) = sqlite_lock_path(url, &redacted)? else {
            return Ok(Self { _file: None });
        };
        path.set_extension("agent");
        let unreachable = |e: std::io::Error| RegistryError::Unreachable {
            url: redacted.clone(),
            reason: format!("cannot lock {}: {e}", path.display()),
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(unreachable)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let text = text.trim();
                return Err(RegistryError::InUse {
                    url: redacted.clone(),
                    holder: if text.is_empty() {
                        format!("it holds {}", path.display())
                    } else {
                        text.to_owned()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(unreachable(e)),
        }
        // Only the holder writes: who it is, for the next one's message.
        file.set_len(0).map_err(unreachable)?;
        file.rewind().map_err(unreachable)?;
        writeln!(file, "{holder}").map_err(unreachable)?;
        Ok(Self { _file: Some(file) })
    }
}

/// Applies the SQLite migrations. sqlx takes no migration lock on SQLite
/// (it does on PostgreSQL): processes opening a new registry at once, such as
/// two `warden check` runs, can each find a migration unapplied, and all but
/// the first then fail on the tables it created. Running again sees the
/// migrations the first one recorded and skips them.
async fn migrate_sqlite(pool: &SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    use sqlx::migrate::MigrateError;
    let mut attempt = 1;
    loop {
        match SQLITE_MIGRATIONS.run(pool).await {
            Err(MigrateError::ExecuteMigration(..) | MigrateError::Execute(_))
                if attempt < SQLITE_MIGRATION_ATTEMPTS =>
            {
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// A timestamp as both engines store it: UTC, whole microseconds.
pub(crate) fn stored(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// The current time as stored.
pub(crate) fn now() -> DateTime<Utc> {
    stored(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_sqlite_registry_opens_from_several_processes_at_once() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("warden.db").display());
            let opens = (0..4).map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Registry::open(&url).await })
            });
            for open in futures::future::join_all(opens).await {
                let registry = open.unwrap().unwrap_or_else(|e| panic!("{e}"));
                registry.ping().await.unwrap();
                registry.close().await;
            }
        }
    }

    #[test]
    fn in_memory_registries_take_no_lock_file() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            "sqlite://warden.db?mode=memory&cache=shared",
            "sqlite:file.db?cache=private&mode=memory",
        ] {
            assert!(sqlite_in_memory(url), "{url}");
            assert_eq!(sqlite_lock_path(url, url).unwrap(), None, "{url}");
        }
        for (url, lock) in [
            ("sqlite://warden.db", "warden.db.lock"),
            (
                "sqlite:/var/lib/warden/warden.db?mode=rwc",
                "/var/lib/warden/warden.db.lock",
            ),
            ("sqlite://memory.db", "memory.db.lock"),
        ] {
            assert!(!sqlite_in_memory(url), "{url}");
            assert_eq!(
                sqlite_lock_path(url, url).unwrap(),
                Some(PathBuf::from(lock)),
                "{url}"
            );
        }
    }
}
