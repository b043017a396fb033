//! Values of the config that need more than the shared syntax of
//! `crate::source::values`: URLs (which name an engine) and paths resolved
//! against the config directory.

use std::path::{Component, Path, PathBuf};

use crate::check::Schedule;
use crate::domain::redact_url;
use crate::source::did_you_mean;
use crate::warehouse::Engine;

/// A cron schedule (see [`crate::source::values::parse_cron`]) and the text
/// it came from.
pub fn parse_cron(s: &str) -> Result<Schedule, String> {
    Ok(Schedule {
        expr: s.trim().to_owned(),
        cron: crate::source::values::parse_cron(s)?,
    })
}

/// The registry URL, with a relative SQLite path resolved against `base_dir`.
pub fn registry_url(s: &str, base_dir: &Path) -> Result<String, String> {
    match Engine::from_url(s.trim()) {
        Some(Engine::Sqlite) => Ok(resolve_sqlite(s.trim(), base_dir)),
        Some(Engine::Postgres) => Ok(s.trim().to_owned()),
        Some(Engine::MySql) => Err("the registry can be SQLite or PostgreSQL, not MySQL".into()),
        Some(Engine::ClickHouse) => {
            Err("the registry can be SQLite or PostgreSQL, not ClickHouse".into())
        }
        None => Err(format!(
            "`{}` is not a URL like sqlite://warden.db or postgres://host/db",
            redact_url(s)
        )),
    }
}

/// A warehouse URL, with a relative SQLite path resolved against `base_dir`.
pub fn warehouse_url(s: &str, base_dir: &Path) -> Result<String, String> {
    let s = s.trim();
    match Engine::from_url(s) {
        Some(Engine::Sqlite) => Ok(resolve_sqlite(s, base_dir)),
        Some(_) => Ok(s.to_owned()),
        None => match s.split_once("://") {
            Some((scheme, _)) => Err(format!(
                "unsupported scheme `{scheme}` (expected postgres://, mysql://, sqlite:// or clickhouse://){}",
                did_you_mean(
                    scheme,
                    [
                        "postgres",
                        "postgresql",
                        "mysql",
                        "mariadb",
                        "sqlite",
                        "clickhouse",
                        "clickhouses"
                    ]
                )
            )),
            None => Err(format!(
                "`{}` is not a URL like postgres://host/db, mysql://host/db, sqlite://file.db or clickhouse://host/db",
                redact_url(s)
            )),
        },
    }
}

/// `sqlite://rel.db?mode=ro` → `sqlite:///base/dir/rel.db?mode=ro`; absolute
/// paths and `:memory:` are left alone.
pub fn resolve_sqlite(url: &str, base_dir: &Path) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path.is_empty() || path.starts_with(':') || Path::new(path).is_absolute() {
        return url.to_owned();
    }
    let resolved = clean(&base_dir.join(path));
    match query {
        Some(q) => format!("sqlite://{}?{q}", resolved.display()),
        None => format!("sqlite://{}", resolved.display()),
    }
}

/// `path` without `.` components (`/a/./b` → `/a/b`).
pub fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_takes_five_fields_or_a_nickname() {
        assert_eq!(parse_cron("*/15 * * * *").unwrap().expr, "*/15 * * * *");
        assert!(parse_cron("@hourly").is_ok());
        assert!(parse_cron("@Daily").is_ok());
        assert_eq!(
            parse_cron("0 */15 * * * *").unwrap_err(),
            "`0 */15 * * * *` has 6 fields; a cron expression has 5 (minute hour day-of-month month day-of-week), or use @hourly, @daily…"
        );
        assert!(
            parse_cron("@dayly")
                .unwrap_err()
                .ends_with("did you mean `@daily`?")
        );
        assert_eq!(
            parse_cron("61 * * * *").unwrap_err(),
            "invalid cron expression `61 * * * *`: number out of bounds"
        );
    }

    #[test]
    fn sqlite_paths_resolve_against_the_config_directory() {
        let base = Path::new("/etc/warden");
        assert_eq!(
            resolve_sqlite("sqlite://warden.db", base),
            "sqlite:///etc/warden/warden.db"
        );
        assert_eq!(
            resolve_sqlite("sqlite:./data/w.db?mode=ro", base),
            "sqlite:///etc/warden/data/w.db?mode=ro"
        );
        assert_eq!(
            resolve_sqlite("sqlite:///var/lib/w.db?mode=rwc", base),
            "sqlite:///var/lib/w.db?mode=rwc"
        );
        assert_eq!(resolve_sqlite("sqlite::memory:", base), "sqlite::memory:");
        assert!(registry_url("mysql://x/y", base).is_err());
        assert_eq!(
            registry_url("postgres://h/db", base).unwrap(),
            "postgres://h/db"
        );
        assert!(
            warehouse_url("postgress://h/db", base)
                .unwrap_err()
                .ends_with("did you mean `postgres`?")
        );
    }
}
