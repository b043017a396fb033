//! Configuration: `warden.yaml`, check files and alert routes, loaded in two
//! stages (raw serde structs with spans, then validated typed values).
//!
//! Problems in `warden.yaml` and in the alert routes file are fatal. A check file's problems are reported
//! and its broken datasets skipped; its other datasets and the other files
//! still load, so one bad edit cannot stop every check. On a reload
//! ([`reload`]), a check file with problems keeps its previous version in
//! force instead, so a typo never silently stops monitoring.

mod model;
pub(crate) mod parse;
mod raw;
pub mod routes;
pub(crate) mod validate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use model::*;

use crate::check::Dataset;
use crate::discover::Discover;
use crate::source::{Diagnostic, EnvLookup, ReadError, SourceFile, SourcePos};
use raw::RawMain;
use validate::{DatasetContext, MainParts};

/// A configuration that loaded, and the problems of the check files (or
/// datasets) that were skipped to get it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// Problems in check files (the datasets concerned were skipped, the rest
    /// loaded), and `checks:` patterns that matched no file.
    pub diagnostics: Vec<Diagnostic>,
    /// On a reload, the check files with problems whose previous version
    /// was kept in force; empty on a first load.
    pub kept: Vec<PathBuf>,
}

/// How the latest load of the configuration went, as the status page and
/// the metrics report it.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Problems of the latest load (start-up or reload); empty when it was
    /// clean.
    pub problems: Vec<Diagnostic>,
    /// Check files whose previous version stays in force because the new
    /// one has problems.
    pub kept: Vec<PathBuf>,
    /// When the configuration last loaded without a problem.
    pub last_success: Option<chrono::DateTime<chrono::Utc>>,
}

impl LoadReport {
    /// Whether the latest load was clean.
    pub fn successful(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report after a load at `at` with `problems` and `kept` files;
    /// the last success moves only when there is no problem.
    pub fn after(
        &self,
        problems: Vec<Diagnostic>,
        kept: Vec<PathBuf>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let last_success = if problems.is_empty() {
            Some(at)
        } else {
            self.last_success
        };
        Self {
            problems,
            kept,
            last_success,
        }
    }
}

impl ConfigError {
    /// The problems as diagnostics (an unreadable `warden.yaml` as one for
    /// the whole file).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            Self::Io { path, source } => vec![Diagnostic::whole_file(
                path,
                format!("cannot read file: {source}"),
            )],
            Self::Invalid(diags) => diags.clone(),
        }
    }
}

/// Why no configuration could be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `warden.yaml` could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `warden.yaml` has problems; each displays as `file:line:col: message`.
    #[error("{}", display_lines(.0))]
    Invalid(Vec<Diagnostic>),
}

fn display_lines(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads `path` and every check file it names, expanding `${VAR}` from the
/// process environment.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    load_with_env(path, &process_env)
}

/// Like [`load`], with variables looked up through `env`.
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    finish(run(path, env, None)?)
}

/// Loads `path` again while `previous` is in force: a check file with
/// problems keeps its datasets of `previous` (reported in
/// [`Loaded::kept`]), the other files load as written.
pub fn reload(path: &Path, previous: &Config) -> Result<Loaded, ConfigError> {
    reload_with_env(path, previous, &process_env)
}

/// Like [`reload`], with variables looked up through `env`.
pub fn reload_with_env(
    path: &Path,
    previous: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    finish(run(path, env, Some(previous))?)
}

fn finish(outcome: Outcome) -> Result<Loaded, ConfigError> {
    match outcome.config {
        Some(config) if outcome.main.is_empty() => Ok(Loaded {
            config,
            diagnostics: outcome.files,
            kept: outcome.kept,
        }),
        _ => Err(ConfigError::Invalid(outcome.main)),
    }
}

/// Every problem in `warden.yaml` and in every check file, found without
/// connecting to anything (for `warden validate`). Empty when all is valid.
pub fn validate_all(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Vec<Diagnostic> {
    match run(path, env, None) {
        Ok(outcome) => outcome.main.into_iter().chain(outcome.files).collect(),
        Err(e) => e.diagnostics(),
    }
}

/// The config file to use: `--config`, else `$WARDEN_CONFIG`, else `./warden.yaml`.
pub fn resolve_config_path(cli: Option<&Path>) -> PathBuf {
    resolve_config_path_with(cli, &process_env)
}

fn resolve_config_path_with(cli: Option<&Path>, env: EnvLookup<'_>) -> PathBuf {
    match (cli, env("WARDEN_CONFIG")) {
        (Some(path), _) => path.to_owned(),
        (None, Some(path)) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from("warden.yaml"),
    }
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Everything one pass over the files found.
struct Outcome {
    /// The configuration, when `warden.yaml` could be read and parsed.
    config: Option<Config>,
    /// Problems in `warden.yaml` (fatal).
    main: Vec<Diagnostic>,
    /// Problems in check files (their datasets skipped), and `checks:` globs
    /// that matched nothing.
    files: Vec<Diagnostic>,
    /// Check files with problems whose previous version was kept.
    kept: Vec<PathBuf>,
}

fn run(path: &Path, env: EnvLookup<'_>, previous: Option<&Config>) -> Result<Outcome, ConfigError> {
    let failed = |main: Vec<Diagnostic>| {
        Ok(Outcome {
            config: None,
            main,
            files: Vec::new(),
            kept: Vec::new(),
        })
    };
    let src = match SourceFile::read(path, env) {
        Ok(src) => src,
        Err(ReadError::Io(source)) => {
            return Err(ConfigError::Io {
                path: path.to_owned(),
                source,
            });
        }
        Err(ReadError::Env(diags)) => return failed(diags),
    };
    let raw: RawMain = match src.parse_with(&[parse::KINDS]) {
        Ok(raw) => raw,
        Err(diag) => return failed(vec![diag]),
    };
    // Shown in messages as given; made absolute for the paths the agent opens.
    let shown_dir = path.parent().unwrap_or(Path::new(""));
    let base_dir = absolute_dir(shown_dir);
    let (parts, mut main) = validate::main_config(&raw, &src, &base_dir);
    sort(&mut main);
    // The routes file is part of the agent's configuration: its problems
    // are fatal like those of `warden.yaml`.
    let routes = match (&parts.alerts, &raw.alerts) {
        (Some(_), Some(shown)) => {
            let shown = shown_dir.join(shown.value.trim());
            match routes::load(&shown, env, parts.agent.timezone) {
                Ok(routes) => routes,
                Err(diags) => {
                    main.extend(diags);
                    routes::Routes::empty(parts.agent.timezone)
                }
            }
        }
        _ => routes::Routes::empty(parts.agent.timezone),
    };
    // OpenLineage events travel through the outbox under a receiver name
    // that no route can name.
    let routes = match &parts.agent.openlineage {
        Some(ol) => routes.with_openlineage(ol.clone()),
        None => routes,
    };

    let (files, mut file_diags) = check_files(&parts, shown_dir);
    let mut datasets = Vec::new();
    let mut discover: Vec<Discover> = Vec::new();
    let mut names: HashMap<String, SourcePos> = HashMap::new();
    let mut kept = Vec::new();
    for file in files {
        let mut diags = Vec::new();
        let names_before = names.clone();
        let mut loaded = Vec::new();
        let mut found = Vec::new();
        load_check_file(
            &file,
            env,
            &parts,
            &mut names,
            (&mut loaded, &mut found),
            &mut diags,
        );
        let mut unique: Vec<Discover> = Vec::new();
        for d in found {
            let first = discover
                .iter()
                .chain(&unique)
                .find(|e| e.warehouse == d.warehouse && e.schema == d.schema);
            match first {
                Some(first) => diags.push(Diagnostic::at(
                    &d.pos,
                    format!(
                        "duplicate discover entry for schema `{}` of warehouse `{}` (first at {})",
                        d.schema, d.warehouse, first.pos
                    ),
                )),
                None => unique.push(d),
            }
        }
        sort(&mut diags);
        match previous {
            Some(previous) if !diags.is_empty() => {
                names = names_before;
                keep_previous(
                    &file,
                    previous,
                    &parts,
                    &mut names,
                    &mut datasets,
                    &mut diags,
                );
                discover.extend(
                    previous
                        .discover
                        .iter()
                        .filter(|d| {
                            d.pos.file == file && parts.warehouses.contains_key(&d.warehouse)
                        })
                        .cloned(),
                );
                kept.push(file);
            }
            _ => {
                datasets.extend(loaded);
                discover.extend(unique);
            }
        }
        file_diags.extend(diags);
    }

    let MainParts {
        agent,
        warehouses,
        alerts,
        ..
    } = parts;
    let config = Config {
        path: path.to_owned(),
        base_dir,
        agent,
        warehouses,
        datasets,
        discover,
        alerts,
        routes: std::sync::Arc::new(routes),
    };
    Ok(Outcome {
        config: Some(config),
        main,
        files: file_diags,
        kept,
    })
}

/// Puts the datasets `previous` loaded from `file` back in force, except
/// those whose name another file now claims or whose warehouse is gone
/// (each reported).
fn keep_previous(
    file: &Path,
    previous: &Config,
    parts: &MainParts,
    names: &mut HashMap<String, SourcePos>,
    datasets: &mut Vec<Dataset>,
    diags: &mut Vec<Diagnostic>,
) {
    for ds in previous.datasets.iter().filter(|d| d.pos.file == file) {
        if let Some(first) = names.get(ds.name.as_str()) {
            diags.push(Diagnostic::at(
                &ds.pos,
                format!(
                    "the previous version of dataset `{}` cannot stay in force: `{}` is now defined at {first}",
                    ds.name, ds.name
                ),
            ));
            continue;
        }
        if !parts.warehouses.contains_key(&ds.warehouse) {
            diags.push(Diagnostic::at(
                &ds.pos,
                format!(
                    "the previous version of dataset `{}` cannot stay in force: warehouse `{}` is no longer declared",
                    ds.name, ds.warehouse
                ),
            ));
            continue;
        }
        names.insert(ds.name.to_string(), ds.pos.clone());
        datasets.push(ds.clone());
    }
}

/// The check files `checks:` names, sorted, each once; and the globs that
/// matched nothing.
fn check_files(parts: &MainParts, shown_dir: &Path) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    let dir = glob::Pattern::escape(&shown_dir.to_string_lossy());
    for (pattern, pos) in &parts.check_globs {
        let full = Path::new(&dir).join(pattern);
        let paths = match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => paths,
            Err(e) => {
                diags.push(Diagnostic::at(
                    pos,
                    format!("`checks`: `{pattern}` is not a valid glob: {}", e.msg),
                ));
                continue;
            }
        };
        let mut matched = false;
        for entry in paths {
            match entry {
                Ok(p) if p.is_file() => {
                    matched = true;
                    files.push(p);
                }
                Ok(_) => {}
                Err(e) => diags.push(Diagnostic::whole_file(
                    e.path(),
                    format!("cannot read: {}", e.error()),
                )),
            }
        }
        if !matched {
            diags.push(Diagnostic::at(
                pos,
                format!("`checks`: `{pattern}` matches no files"),
            ));
        }
    }
    files.sort();
    files.dedup();
    (files, diags)
}

/// Loads one check file's valid datasets into `datasets`, its problems into `diags`.
fn load_check_file(
    file: &Path,
    env: EnvLookup<'_>,
    parts: &MainParts,
    names: &mut HashMap<String, SourcePos>,
    (datasets, discover): (&mut Vec<Dataset>, &mut Vec<Discover>),
    diags: &mut Vec<Diagnostic>,
) {
    let src = match SourceFile::read(file, env) {
        Ok(src) => src,
        Err(ReadError::Io(e)) => {
            return diags.push(Diagnostic::whole_file(
                file,
                format!("cannot read file: {e}"),
            ));
        }
        Err(ReadError::Env(env_diags)) => return diags.extend(env_diags),
    };
    let read = parse::read(&src);
    diags.extend(read.diagnostics);
    let raws = read.datasets;
    let cx = DatasetContext {
        src: &src,
        warehouses: &parts.warehouse_names,
    };
    for raw in &read.discover {
        match validate::discover(raw, &cx) {
            Ok(entry) => discover.push(entry),
            Err(problems) => diags.extend(problems),
        }
    }
    // A dataset that did not parse never loads, but its other problems are
    // reported too; a key taken out to read it is not also "required".
    for (raw, taken_out) in &read.partial {
        let Err(problems) = validate::dataset(raw, &cx) else {
            continue;
        };
        diags.extend(problems.into_iter().filter(|d| {
            !taken_out.iter().any(|key| {
                d.message.starts_with(&format!("`{key}` is required"))
                    || d.message.starts_with(&format!("`{key}."))
                        && d.message.contains("is required")
            })
        }));
    }
    for raw in &raws {
        // Names are claimed even by broken datasets, so that fixing one does
        // not reveal a duplicate later.
        let duplicate = raw.value.name.as_ref().and_then(|name| {
            let pos = src.pos_of(name);
            match names.get(name.value.trim()) {
                Some(first) => Some(Diagnostic::at(
                    &pos,
                    format!(
                        "duplicate dataset `{}` (first defined at {first})",
                        name.value.trim()
                    ),
                )),
                None => {
                    names.insert(name.value.trim().to_owned(), pos);
                    None
                }
            }
        });
        let result = validate::dataset(raw, &cx);
        diags.extend(duplicate.clone());
        match result {
            Ok(dataset) if duplicate.is_none() => datasets.push(dataset),
            Ok(_) => {}
            Err(problems) => diags.extend(problems),
        }
    }
}

/// `dir` made absolute (against the working directory) without `.` components.
fn absolute_dir(dir: &Path) -> PathBuf {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    validate::clean(&std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned()))
}

/// Orders one file's problems by position (stable: same position keeps its order).
fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_path_comes_from_the_flag_then_the_environment() {
        let set =
            |name: &str| (name == "WARDEN_CONFIG").then(|| "/etc/warden/warden.yaml".to_owned());
        let unset = |_: &str| None;
        let empty = |_: &str| Some(String::new());
        assert_eq!(
            resolve_config_path_with(Some(Path::new("x.yaml")), &set),
            PathBuf::from("x.yaml")
        );
        assert_eq!(
            resolve_config_path_with(None, &set),
            PathBuf::from("/etc/warden/warden.yaml")
        );
        assert_eq!(
            resolve_config_path_with(None, &unset),
            PathBuf::from("warden.yaml")
        );
        assert_eq!(
            resolve_config_path_with(None, &empty),
            PathBuf::from("warden.yaml")
        );
    }
}
