//! Where a warehouse table sits in OpenLineage's dataset naming: a
//! namespace naming the data source (`scheme://host:port`) and a name
//! naming the table inside it, following the naming conventions of the
//! OpenLineage specification.
//!
//! | engine | namespace | name |
//! |---|---|---|
//! | PostgreSQL | `postgres://{host}:{port}` | `{database}.{schema}.{table}` |
//! | MySQL, MariaDB | `mysql://{host}:{port}` | `{database}.{table}` |
//! | ClickHouse | `clickhouse://{host}:{port}` | `{database}.{table}` |
//! | SQLite | `sqlite://{path of the file}` | `{schema}.{table}` (`main` by default) |
//!
//! Ports default to the engine's (5432, 3306, 8123 or 8443 over HTTPS);
//! user names, passwords and query parameters never appear.

use crate::domain::TableRef;
use crate::warehouse::Engine;

/// An OpenLineage dataset's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetId {
    pub namespace: String,
    pub name: String,
}

/// The identity of `table` in the warehouse at `url` (a URL the
/// configuration accepted).
pub fn dataset_id(url: &str, table: &TableRef) -> DatasetId {
    let table_name = table.name.as_str();
    let schema = table.schema.as_ref().map(|s| s.as_str().to_owned());
    match Engine::from_url(url) {
        Some(Engine::Sqlite) => {
            let rest = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            let path = rest.split_once('?').map_or(rest, |(path, _)| path);
            DatasetId {
                namespace: format!("sqlite://{path}"),
                name: format!("{}.{table_name}", schema.as_deref().unwrap_or("main")),
            }
        }
        engine => {
            let parsed = url::Url::parse(url).ok();
            let (scheme, default_port) = match (engine, parsed.as_ref().map(url::Url::scheme)) {
                (Some(Engine::Postgres), _) => ("postgres", 5432),
                (Some(Engine::MySql), _) => ("mysql", 3306),
                (_, Some("clickhouses")) => ("clickhouse", 8443),
                _ => ("clickhouse", 8123),
            };
            let host = parsed
                .as_ref()
                .and_then(|u| u.host_str())
                .unwrap_or("localhost")
                .to_owned();
            let port = parsed
                .as_ref()
                .and_then(url::Url::port)
                .unwrap_or(default_port);
            let database = parsed.as_ref().and_then(|u| {
                let path = u.path().trim_matches('/');
                (!path.is_empty()).then(|| {
                    percent_encoding::percent_decode_str(path)
                        .decode_utf8_lossy()
                        .into_owned()
                })
            });
            let name = match scheme {
                "postgres" => {
                    // libpq's default database is the user's name.
                    let database = database
                        .or_else(|| {
                            parsed
                                .as_ref()
                                .map(|u| u.username().to_owned())
                                .filter(|u| !u.is_empty())
                        })
                        .unwrap_or_else(|| "postgres".to_owned());
                    format!(
                        "{database}.{}.{table_name}",
                        schema.as_deref().unwrap_or("public")
                    )
                }
                // A MySQL or ClickHouse "schema" is a database.
                "mysql" => match schema.or(database) {
                    Some(db) => format!("{db}.{table_name}"),
                    None => table_name.to_owned(),
                },
                _ => format!(
                    "{}.{table_name}",
                    schema.or(database).as_deref().unwrap_or("default")
                ),
            };
            DatasetId {
                namespace: format!("{scheme}://{host}:{port}"),
                name,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(url: &str, table: &str) -> (String, String) {
        let d = dataset_id(url, &TableRef::parse(table).unwrap());
        (d.namespace, d.name)
    }

    fn pair(namespace: &str, name: &str) -> (String, String) {
        (namespace.to_owned(), name.to_owned())
    }

    #[test]
    fn postgres_is_host_port_and_database_schema_table() {
        assert_eq!(
            id(
                "postgres://warden:s3cret@db.example:6543/shop?sslmode=require",
                "analytics.orders"
            ),
            pair("postgres://db.example:6543", "shop.analytics.orders")
        );
        assert_eq!(
            id("postgresql://db.example/shop", "orders"),
            pair("postgres://db.example:5432", "shop.public.orders")
        );
        assert_eq!(
            id("postgres://reporter@db.example", "orders"),
            pair("postgres://db.example:5432", "reporter.public.orders")
        );
    }

    #[test]
    fn mysql_and_mariadb_are_host_port_and_database_table() {
        assert_eq!(
            id("mysql://root:pw@10.0.0.7:3307/shop", "orders"),
            pair("mysql://10.0.0.7:3307", "shop.orders")
        );
        // The table's schema is its database.
        assert_eq!(
            id("mariadb://db.example/shop", "staging.orders"),
            pair("mysql://db.example:3306", "staging.orders")
        );
    }

    #[test]
    fn clickhouse_is_host_port_and_database_table() {
        assert_eq!(
            id("clickhouse://default:pw@ch.example/analytics", "events"),
            pair("clickhouse://ch.example:8123", "analytics.events")
        );
        assert_eq!(
            id("clickhouses://ch.example", "logs.events"),
            pair("clickhouse://ch.example:8443", "logs.events")
        );
        assert_eq!(
            id("clickhouse://ch.example:18123", "events"),
            pair("clickhouse://ch.example:18123", "default.events")
        );
    }

    #[test]
    fn sqlite_is_the_file_and_schema_table() {
        assert_eq!(
            id("sqlite:///srv/data/shop.db?mode=ro", "orders"),
            pair("sqlite:///srv/data/shop.db", "main.orders")
        );
        assert_eq!(
            id("sqlite:///srv/data/shop.db", "archive.orders"),
            pair("sqlite:///srv/data/shop.db", "archive.orders")
        );
    }
}
