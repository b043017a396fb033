//! How the binary words what stopped a command: an error and its causes on
//! one line, each cause once, and the missing-configuration message that
//! says what to do next.

use std::path::Path;

/// Where the configuration path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// `--config FILE`.
    Flag,
    /// `$WARDEN_CONFIG`.
    Env,
    /// Neither: `./warden.yaml`.
    Default,
}

/// The error and its causes, outermost first, joined by `: `: what `main`
/// prints after `error: `. An error whose message already ends with its
/// cause's must not also return that cause as its source, or the cause is
/// printed twice (the tests of the binary check every top-level error).
pub fn render(error: &anyhow::Error) -> String {
    warden::format::error_chain(error.as_ref())
}

/// No configuration file where one was looked for: where, how to name
/// another, and how to start.
pub fn missing_config(path: &Path, origin: ConfigOrigin) -> anyhow::Error {
    const START: &str = "Start with `warden init --warehouse URL`, or try `warden demo`.";
    let shown = shown_path(path);
    match origin {
        ConfigOrigin::Default => anyhow::anyhow!(
            "no warden.yaml here (looked at {shown}; set --config or $WARDEN_CONFIG). {START}"
        ),
        ConfigOrigin::Flag => {
            anyhow::anyhow!("no configuration file at {shown} (named by --config). {START}")
        }
        ConfigOrigin::Env => {
            anyhow::anyhow!("no configuration file at {shown} (named by $WARDEN_CONFIG). {START}")
        }
    }
}

/// A relative path as a shell user reads it: `./warden.yaml`.
fn shown_path(path: &Path) -> String {
    let text = path.display().to_string();
    if path.is_relative() && !text.starts_with('.') {
        format!("./{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn causes_follow_the_message_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = Err::<(), _>(io)
            .context("cannot read x.yaml")
            .context("invalid configuration x.yaml")
            .unwrap_err();
        assert_eq!(
            render(&e),
            "invalid configuration x.yaml: cannot read x.yaml: gone"
        );
    }

    #[test]
    fn an_unreadable_config_names_its_cause_once() {
        let dir = tempfile::tempdir().unwrap();
        let e = anyhow::Error::new(warden::config::load(dir.path()).unwrap_err());
        let text = render(&e);
        let cause = text.rsplit(": ").next().unwrap();
        assert_eq!(text.matches(cause).count(), 1, "{text}");
    }

    /// Fails when a line repeats its own cause: some `: `-separated tail of
    /// the text already appears before it (`cannot read x: gone: gone`).
    fn assert_no_cause_twice(text: &str) {
        let parts: Vec<&str> = text.split(": ").collect();
        for k in 1..parts.len() {
            let (head, tail) = (parts[..k].join(": "), parts[k..].join(": "));
            assert!(
                tail.len() < 4 || !head.contains(&tail),
                "`{tail}` printed twice in\n{text}"
            );
        }
    }

    #[test]
    fn the_repeat_detector_sees_a_repeat() {
        let caught = std::panic::catch_unwind(|| {
            assert_no_cause_twice("cannot read x: disk gone: disk gone")
        });
        assert!(caught.is_err());
    }

    /// Every error a command can stop with, wrapped as the commands wrap
    /// it, prints each of its causes once.
    #[test]
    fn no_top_level_error_prints_its_cause_twice() {
        use std::path::PathBuf;
        use std::time::Duration;
        use warden::check::ObserveError;
        use warden::check::template::TemplateError;
        use warden::config::ConfigError;
        use warden::registry::RegistryError;
        use warden::warehouse::WarehouseError;

        let io = || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "access denied");
        let sqlx_io = || sqlx::Error::Io(io());
        let path = || PathBuf::from("conf/warden.yaml");
        let warehouse = || {
            vec![
                WarehouseError::TableMissing { table: "a.orders".into() },
                WarehouseError::ColumnMissing { column: "x".into(), table: Some("a.orders".into()) },
                WarehouseError::Timeout { timeout: Duration::from_secs(60), waited: Duration::from_secs(6) },
                WarehouseError::Busy { warehouse: "main".into(), reason: "database is locked".into() },
                WarehouseError::Unavailable { warehouse: "main".into(), reason: "connection refused by db:5432 (postgres://u:***@db:5432/x); check that the server runs".into() },
                WarehouseError::InvalidUrl { warehouse: "main".into(), reason: "invalid port number".into() },
                WarehouseError::Decode { index: 1, type_name: "INTERVAL".into(), reason: "unsupported type".into() },
                WarehouseError::Query { message: "syntax error at or near \"FORM\"".into() },
            ]
        };
        let registry = || {
            vec![
                RegistryError::InvalidUrl {
                    url: "oracle://db".into(),
                    reason: "expected sqlite:// or postgres://".into(),
                },
                RegistryError::Unreachable {
                    url: "postgres://u:***@db/r".into(),
                    reason: "connection refused".into(),
                },
                RegistryError::Migration {
                    url: "sqlite://warden.db".into(),
                    error: sqlx::migrate::MigrateError::Execute(sqlx_io()),
                },
                RegistryError::Unavailable {
                    op: "record results",
                    reason: "connection reset".into(),
                },
                RegistryError::Query {
                    op: "record results",
                    error: sqlx_io(),
                },
                RegistryError::IllegalTransition {
                    dataset: "orders".into(),
                    partition: "2026-11-20".into(),
                    from: None,
                    to: warden::domain::PartitionState::Published,
                    reason: "not allowed".into(),
                },
                RegistryError::NotFound {
                    what: "gate g1".into(),
                },
                RegistryError::Corrupt {
                    what: "state `x`".into(),
                },
                RegistryError::InUse {
                    url: "sqlite://warden.db".into(),
                    holder: "pid 7 listening on 127.0.0.1:8080".into(),
                },
            ]
        };
        // One of warden's errors: its message must not end with the cause it
        // also returns as its source.
        fn own(e: impl std::error::Error + Send + Sync + 'static) -> anyhow::Error {
            if let Some(source) = e.source() {
                assert!(
                    !e.to_string().ends_with(&source.to_string()),
                    "`{e}` ends with its source `{source}`"
                );
            }
            anyhow::Error::new(e)
        }
        let mut errors: Vec<anyhow::Error> = Vec::new();
        let config = || ConfigError::Io {
            path: path(),
            source: io(),
        };
        errors.push(own(config()).context("invalid configuration conf/warden.yaml"));
        errors.push(
            own(ConfigError::Invalid(vec![
                warden::source::Diagnostic::whole_file(&path(), "cannot read file: access denied"),
            ]))
            .context("invalid configuration conf/warden.yaml"),
        );
        errors
            .push(own(warden::source::ReadError::Io(io())).context("cannot read conf/warden.yaml"));
        for e in warehouse() {
            errors.push(anyhow::anyhow!(e.clone()));
            errors.push(own(ObserveError::Warehouse(e.clone())));
            errors.push(own(warden::init::InitError::Catalog {
                schema: "schema shop".into(),
                source: e.clone(),
            }));
            errors.push(own(warden::init::InitError::Profile {
                table: "shop.orders".into(),
                source: e,
            }));
        }
        errors.push(own(ObserveError::Template(TemplateError::NoPartition {
            name: "partition".into(),
        })));
        for e in registry() {
            errors.push(own(e));
        }
        for e in registry() {
            errors.push(
                own(warden::agent::AgentError::Registry(e)).context("cannot start the agent"),
            );
        }
        for e in registry() {
            errors.push(own(warden::gate::GateError::from(e)));
        }
        errors.push(
            own(warden::agent::AgentError::Config(config())).context("cannot start the agent"),
        );
        errors.push(
            own(warden::agent::AgentError::Listen {
                addr: "127.0.0.1:9464".into(),
                source: io(),
            })
            .context("cannot start the agent"),
        );
        errors.push(own(warden::check::RunError::Record {
            results: vec![],
            records: vec![],
            source: registry().remove(4),
        }));
        errors.push(own(warden::demo::DemoError::Io {
            path: path(),
            source: io(),
        }));
        errors.push(own(warden::demo::DemoError::Warehouse {
            path: path(),
            source: sqlx_io(),
        }));
        errors.push(own(warden::init::InitError::Usage(
            "--schema: `a b` is not a plain SQL identifier".into(),
        )));
        errors.push(own(warden::init::InitError::Exists(vec![path()])));
        errors.push(own(warden::init::InitError::NoTables(
            "no tables or views in schema shop".into(),
        )));
        errors.push(own(warden::init::InitError::Io {
            path: path(),
            source: io(),
        }));
        errors.push(own(warden::domain::PartitionError::EmptyRange {
            from: "2026-11-20".into(),
            to: "2026-11-19".into(),
        }));
        errors.push(missing_config(
            Path::new("warden.yaml"),
            ConfigOrigin::Default,
        ));

        for e in &errors {
            let text = render(e);
            assert_no_cause_twice(&text);
            // Every cause is in the text once the chain is rendered.
            for cause in e.chain() {
                let cause = cause.to_string();
                assert!(text.contains(&cause), "`{cause}` missing from {text}");
            }
        }
    }

    #[test]
    fn the_missing_config_message_shows_the_path_looked_at() {
        assert_eq!(
            missing_config(Path::new("warden.yaml"), ConfigOrigin::Default).to_string(),
            "no warden.yaml here (looked at ./warden.yaml; set --config or $WARDEN_CONFIG). \
             Start with `warden init --warehouse URL`, or try `warden demo`."
        );
        assert!(
            missing_config(Path::new("/etc/warden/w.yaml"), ConfigOrigin::Env)
                .to_string()
                .starts_with(
                    "no configuration file at /etc/warden/w.yaml (named by $WARDEN_CONFIG)"
                )
        );
        assert!(
            missing_config(Path::new("conf/w.yaml"), ConfigOrigin::Flag)
                .to_string()
                .starts_with("no configuration file at ./conf/w.yaml (named by --config)")
        );
    }
}
