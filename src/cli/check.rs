//! `warden check`: run checks once, record and print the results.

use std::path::Path;

use anyhow::{Context, bail};
use chrono::Utc;
use futures::StreamExt;

use super::args::{CheckArgs, Format};
use super::{load_config, open_registry, report};
use warden::check::{CheckResult, Runner, Scope, Summary};
use warden::config::Config;
use warden::domain::PartitionKey;

pub async fn run(config_path: &Path, args: CheckArgs) -> anyhow::Result<u8> {
    let loaded = load_config(config_path)?;
    let config = &loaded.config;
    let datasets = select(config, args.dataset.as_deref(), args.partition.as_deref())?;
    let registry = if args.no_record {
        dry_run_registry(config).await?
    } else {
        Some(open_registry(config).await?)
    };
    let runner = warden::app::runner(config, registry);
    let mut outcome = run_datasets(config, &runner, &datasets, !args.no_record).await;
    // `discover:` entries run with the whole configuration, not for one dataset.
    if args.dataset.is_none() {
        run_discover(config, &runner, !args.no_record, &mut outcome).await;
    }
    print(&outcome.results, args.format)?;
    Ok(exit_code(&outcome, !loaded.diagnostics.is_empty()))
}

/// What a set of dataset runs produced.
pub struct RunOutcome {
    /// Every evaluated result, recorded or not.
    pub results: Vec<CheckResult>,
    /// Datasets whose results could not be recorded, with why.
    pub unrecorded: Vec<String>,
}

/// The registry a dry run reads baselines from (schema baselines, earlier
/// row counts) without writing results. A SQLite registry that does not exist
/// yet holds none, and a dry run does not create it.
async fn dry_run_registry(config: &Config) -> anyhow::Result<Option<warden::registry::Registry>> {
    use std::str::FromStr;
    let url = &config.agent.registry;
    if url.starts_with("sqlite:")
        && let Ok(options) = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        && !options.get_filename().exists()
    {
        return Ok(None);
    }
    Ok(Some(open_registry(config).await?))
}

/// Resolves `--dataset` and `--partition` into the datasets to run and their scopes.
fn select<'c>(
    config: &'c Config,
    dataset: Option<&str>,
    partition: Option<&str>,
) -> anyhow::Result<Vec<(&'c warden::check::Dataset, Option<Scope>)>> {
    let Some(name) = dataset else {
        return Ok(config.datasets.iter().map(|d| (d, None)).collect());
    };
    let ds = super::find_dataset(config, name)?;
    let scope = match partition {
        None => None,
        Some(p) => {
            let Some(spec) = &ds.partition else {
                bail!("dataset `{name}` is not partitioned; drop --partition");
            };
            Some(Scope::Partition(PartitionKey::parse(p, spec.granularity)?))
        }
    };
    Ok(vec![(ds, scope)])
}

/// Runs the datasets, at most `agent.max_concurrent_checks` at once, keeping
/// their order in the output.
pub async fn run_datasets(
    config: &Config,
    runner: &Runner,
    datasets: &[(&warden::check::Dataset, Option<Scope>)],
    record: bool,
) -> RunOutcome {
    let now = Utc::now();
    let tz = config.agent.timezone;
    let runs = futures::stream::iter(datasets.iter().map(|(ds, scope)| {
        let scope = scope
            .clone()
            .unwrap_or_else(|| Scope::scheduled(ds, now, tz));
        async move {
            let at = runner.scheduled_time(&scope, now);
            (ds, runner.run(ds, &scope, at, record).await)
        }
    }))
    .buffered(config.agent.max_concurrent_checks.max(1));
    let finished: Vec<_> = runs.collect().await;
    let mut outcome = RunOutcome {
        results: Vec::new(),
        unrecorded: Vec::new(),
    };
    for (ds, result) in finished {
        match result {
            Ok(results) => outcome.results.extend(results),
            Err(e) => {
                eprintln!(
                    "error: dataset {}: {}",
                    ds.name,
                    warden::format::error_chain(&e)
                );
                outcome.unrecorded.push(ds.name.to_string());
                outcome.results.extend(e.into_results());
            }
        }
    }
    outcome
}

/// Runs every `discover:` entry once: one catalog statement each.
pub async fn run_discover(
    config: &Config,
    runner: &Runner,
    record: bool,
    outcome: &mut RunOutcome,
) {
    for spec in &config.discover {
        let run =
            warden::discover::discover(runner, spec, &config.datasets, Utc::now(), record).await;
        if let Some(message) = &run.catalog_error {
            eprintln!("error: discover {}: {message}", spec.group());
        }
        if let Some(e) = &run.record_error {
            eprintln!(
                "error: discover {}: {}",
                spec.group(),
                warden::format::error_chain(e)
            );
            outcome.unrecorded.push(spec.group());
        }
        outcome.results.extend(run.results);
    }
}

pub fn print(results: &[CheckResult], format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => report::write_json(&mut out, results),
        Format::Text => {
            report::write_text(&mut out, results, super::color::enabled(&std::io::stdout()))
        }
    }
    .context("cannot write the results")
}

/// 1 when a check failed; else 2 when something could not run (a skipped
/// check file, results not recorded); else 3 when a check errored; else 0.
pub fn exit_code(outcome: &RunOutcome, skipped_config: bool) -> u8 {
    let summary = Summary::of(&outcome.results);
    if summary.fail == 0 && (skipped_config || !outcome.unrecorded.is_empty()) {
        2
    } else {
        summary.exit_code()
    }
}
