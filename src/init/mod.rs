//! `warden init`: a working configuration for an existing warehouse.
//!
//! It reads the catalog of one schema once, profiles each relation in one
//! aggregate statement (`warehouse::profile`), proposes checks from what it
//! saw (`propose`, each proposal with its reason), and writes `warden.yaml`,
//! `checks/<schema>.yaml` and `alerts/routes.yaml` (`render`). It never
//! overwrites a file unless asked to, and never writes a password: the
//! warehouse URL's becomes `${WAREHOUSE_PASSWORD}` (`url`).

mod propose;
mod render;
mod url;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{Identifier, TableRef};
use crate::warehouse::{CatalogTable, Warehouse, WarehouseError};

pub use propose::{MIN_ROWS_PER_DAY, MIN_SHARE_ROWS, MIN_UNIQUE_VALUES};
pub use url::PASSWORD_VAR;

/// How long one catalog or profile statement may run.
const QUERY_TIMEOUT: Duration = Duration::from_secs(300);

/// What `warden init` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// The warehouse URL, password included when it has one.
    pub warehouse: String,
    /// The schema to read; the engine's default one when `None`.
    pub schema: Option<String>,
    /// Only the relations whose name matches this glob.
    pub tables: Option<String>,
    /// Where to write the files.
    pub dir: PathBuf,
    /// At most this many rows per relation for the NULL and distinct
    /// counts; all of them when `None`.
    pub sample: Option<u64>,
    /// Replace files that exist.
    pub force: bool,
}

/// What `warden init` wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// `warden.yaml`.
    pub config: PathBuf,
    /// The check file, `checks/<schema>.yaml`.
    pub checks: PathBuf,
    /// `alerts/routes.yaml`.
    pub routes: PathBuf,
    /// The schema read.
    pub schema: String,
    /// Datasets written, and their active checks.
    pub datasets: usize,
    pub checks_proposed: usize,
    /// Relations left out (names warden cannot use, relations that cannot
    /// be read), with why.
    pub skipped: Vec<(String, String)>,
    /// Statements sent to the warehouse: one catalog read, one per relation.
    pub statements: u64,
    /// The password taken out of the URL, for `$WAREHOUSE_PASSWORD`.
    pub password: Option<String>,
}

/// Why `warden init` wrote nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// `--warehouse` or `--schema` cannot be used.
    #[error("{0}")]
    Usage(String),
    /// Files `warden init` would write exist already.
    #[error(
        "{} already exist{}; warden init does not overwrite (pass --force to replace {})",
        .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        if .0.len() == 1 { "s" } else { "" },
        if .0.len() == 1 { "it" } else { "them" }
    )]
    Exists(Vec<PathBuf>),
    /// The catalog could not be read.
    #[error("cannot read the catalog of {schema}")]
    Catalog {
        schema: String,
        #[source]
        source: WarehouseError,
    },
    /// No relation of the schema matches.
    #[error("{0}")]
    NoTables(String),
    /// A relation could not be profiled.
    #[error("cannot profile {table}")]
    Profile {
        table: String,
        #[source]
        source: WarehouseError,
    },
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the warehouse, proposes checks and writes the three files (see
/// the module's documentation). Nothing is written when the warehouse
/// cannot be read or a file exists (without `force`).
pub async fn run(options: &Options, now: DateTime<Utc>) -> Result<Written, InitError> {
    let cwd = std::env::current_dir().map_err(|source| InitError::Io {
        path: PathBuf::from("."),
        source,
    })?;
    let url = url::for_config(&options.warehouse, &options.dir, &cwd).map_err(InitError::Usage)?;
    let schema = options
        .schema
        .as_deref()
        .map(|s| Identifier::parse(s).map_err(|e| InitError::Usage(format!("--schema: {e}"))))
        .transpose()?;
    let pattern = options
        .tables
        .as_deref()
        .map(|g| {
            glob::Pattern::new(g)
                .map_err(|e| InitError::Usage(format!("--tables `{g}` is not a glob: {e}")))
        })
        .transpose()?;

    let config = options.dir.join("warden.yaml");
    let routes = options.dir.join("alerts").join("routes.yaml");
    refuse_existing(&[&config, &routes], options.force)?;

    let settings =
        crate::config::warehouse_settings(render::WAREHOUSE, &options.warehouse, 1, QUERY_TIMEOUT);
    let tz = chrono_tz::UTC;
    let warehouse = Warehouse::connect(&settings, tz).map_err(|e| InitError::Catalog {
        schema: schema_shown(schema.as_ref()),
        source: e,
    })?;
    let result =
        read_and_propose(&warehouse, schema.as_ref(), pattern.as_ref(), options, now).await;
    let statements = warehouse.statement_count();
    warehouse.close().await;
    let proposal = result?;

    let checks = options
        .dir
        .join("checks")
        .join(format!("{}.yaml", proposal.schema));
    refuse_existing(&[&checks], options.force)?;
    let checks_text = render::checks_yaml(
        &proposal.schema,
        &now.format("%Y-%m-%d %H:%M UTC").to_string(),
        &proposal.datasets,
        &proposal.skipped,
    );
    write(
        &config,
        &render::warden_yaml(&url.text, &settings.shown_url),
        options.force,
    )?;
    write(&checks, &checks_text, options.force)?;
    write(&routes, &render::routes_yaml(), options.force)?;
    Ok(Written {
        config,
        checks,
        routes,
        schema: proposal.schema,
        datasets: proposal.datasets.len(),
        checks_proposed: proposal
            .datasets
            .iter()
            .flat_map(|d| &d.checks)
            .filter(|c| c.active)
            .count(),
        skipped: proposal
            .skipped
            .into_iter()
            .map(|s| (s.name, s.why))
            .collect(),
        statements,
        password: url.password,
    })
}

/// What was proposed for a schema.
struct Proposal {
    schema: String,
    datasets: Vec<propose::Dataset>,
    skipped: Vec<propose::Skipped>,
}

async fn read_and_propose(
    warehouse: &Warehouse,
    schema: Option<&Identifier>,
    pattern: Option<&glob::Pattern>,
    options: &Options,
    now: DateTime<Utc>,
) -> Result<Proposal, InitError> {
    let catalog = async {
        warehouse.reachable().await?;
        warehouse.schema_tables(schema).await
    };
    let all = catalog.await.map_err(|source| InitError::Catalog {
        schema: schema_shown(schema),
        source,
    })?;
    let tables: Vec<&CatalogTable> = all
        .iter()
        .filter(|t| pattern.is_none_or(|p| p.matches(&t.name)))
        .collect();
    let Some(first) = tables.first() else {
        return Err(InitError::NoTables(no_tables(&all, schema, options)));
    };
    let schema_name = first.schema.clone();
    // The default schema of SQLite needs no name; elsewhere the name says
    // which schema is meant whatever the session's default.
    let qualify =
        !(warehouse.engine() == crate::warehouse::Engine::Sqlite && schema_name == "main");
    let mut datasets = Vec::new();
    let mut skipped = Vec::new();
    for table in tables {
        let name = match propose::dataset_name(table) {
            Ok(name) => name,
            Err(s) => {
                skipped.push(s);
                continue;
            }
        };
        let written_as = if qualify {
            format!("{}.{}", table.schema, table.name)
        } else {
            table.name.clone()
        };
        let table_ref = TableRef::parse(&written_as).map_err(|e| {
            InitError::Usage(format!("schema `{}` cannot be named: {e}", table.schema))
        })?;
        let asked = propose::profile_columns(table);
        let profile = match warehouse.profile(&table_ref, &asked, options.sample).await {
            Ok(profile) => profile,
            // A relation that cannot be read (no privilege, a view that
            // fails) is left out; a warehouse that went away stops it all.
            Err(e) if !e.is_transient() => {
                skipped.push(propose::Skipped {
                    name: table.name.clone(),
                    why: format!("cannot profile it: {e}"),
                });
                continue;
            }
            Err(source) => {
                return Err(InitError::Profile {
                    table: written_as,
                    source,
                });
            }
        };
        let observed = propose::Observed {
            table,
            written_as,
            asked: &asked,
            profile: &profile,
            now,
            tz: chrono_tz::UTC,
        };
        datasets.push(propose::propose(&observed, &name));
    }
    if datasets.is_empty() {
        return Err(InitError::NoTables(format!(
            "no table of schema {schema_name} can be watched: {}",
            skipped
                .iter()
                .map(|s| format!("`{}` ({})", s.name, s.why))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(Proposal {
        schema: schema_name,
        datasets,
        skipped,
    })
}

fn schema_shown(schema: Option<&Identifier>) -> String {
    schema.map_or_else(
        || "the default schema".to_owned(),
        |s| format!("schema {s}"),
    )
}

/// Why no table was found, with the names there are.
fn no_tables(all: &[CatalogTable], schema: Option<&Identifier>, options: &Options) -> String {
    let which = match schema {
        Some(s) => format!("schema {s}"),
        None => "the default schema (name one with --schema)".to_owned(),
    };
    match (&options.tables, all.is_empty()) {
        (_, true) => format!("no tables or views in {which}"),
        (Some(glob), false) => {
            let names: Vec<&str> = all.iter().take(10).map(|t| t.name.as_str()).collect();
            format!(
                "no table of {which} matches --tables `{glob}` (there are: {}{})",
                names.join(", "),
                if all.len() > names.len() { ", …" } else { "" }
            )
        }
        (None, false) => format!("no tables or views in {which}"),
    }
}

/// Refuses when any of `paths` exists, unless `force`.
fn refuse_existing(paths: &[&Path], force: bool) -> Result<(), InitError> {
    if force {
        return Ok(());
    }
    let existing: Vec<PathBuf> = paths
        .iter()
        .filter(|p| p.try_exists().unwrap_or(true))
        .map(|p| p.to_path_buf())
        .collect();
    if existing.is_empty() {
        Ok(())
    } else {
        Err(InitError::Exists(existing))
    }
}

/// Writes `text` to `path`, creating its directory; without `force` a file
/// that appeared meanwhile is left alone.
fn write(path: &Path, text: &str, force: bool) -> Result<(), InitError> {
    let io = |source| InitError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .create_new(!force)
        .truncate(true)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                InitError::Exists(vec![path.to_owned()])
            } else {
                io(e)
            }
        })?;
    file.write_all(text.as_bytes()).map_err(io)
}
