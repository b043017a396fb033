//! Commands. Each file resolves its raw arguments, does one job and returns
//! the process exit status; errors that mean "could not run" become exit 2.

pub mod args;
mod backfill;
mod baseline;
mod check;
mod client;
mod color;
mod demo;
pub mod error;
mod gate;
mod init;
mod publish;
mod report;
mod run;
mod shell;
mod status;
mod validate;

use std::path::Path;

use anyhow::Context;

use args::{Cli, Command};
use warden::config::{self, Loaded};

pub use color::enabled as color_enabled;

pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let config_path = config::resolve_config_path(cli.config.as_deref());
    let needs_config = matches!(
        cli.command,
        Command::Run(_)
            | Command::Validate
            | Command::Check(_)
            | Command::Backfill(_)
            | Command::Baseline { .. }
    );
    if needs_config && matches!(config_path.try_exists(), Ok(false)) {
        return Err(error::missing_config(&config_path, config_origin(&cli)));
    }
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Init(args) => init::run(args).await,
        Command::Run(args) => run::run(&config_path, args).await,
        Command::Validate => Ok(validate::run(&config_path)),
        Command::Check(args) => check::run(&config_path, args).await,
        Command::Backfill(args) => backfill::run(&config_path, args).await,
        Command::Gate(args) => gate::run(&config_path, args).await,
        Command::Publish(args) => publish::run(&config_path, args).await,
        Command::Status(args) => status::run(&config_path, args).await,
        Command::Baseline { action } => baseline::run(&config_path, action).await,
        Command::Completions { shell } => shell::completions(shell),
        Command::Man { out } => shell::write_man_pages(&out),
    }
}

/// Where the configuration path came from, for the missing-config message.
fn config_origin(cli: &Cli) -> error::ConfigOrigin {
    if cli.config.is_some() {
        error::ConfigOrigin::Flag
    } else if std::env::var_os("WARDEN_CONFIG").is_some_and(|v| !v.is_empty()) {
        error::ConfigOrigin::Env
    } else {
        error::ConfigOrigin::Default
    }
}

/// Loads the configuration, printing the problems of skipped check files as
/// warnings (the rest still runs).
fn load_config(path: &Path) -> anyhow::Result<Loaded> {
    let loaded =
        config::load(path).with_context(|| format!("invalid configuration {}", path.display()))?;
    for d in &loaded.diagnostics {
        eprintln!("warning: {d}");
    }
    Ok(loaded)
}

/// The dataset named on the command line, or an error that lists the known ones.
fn find_dataset<'c>(
    config: &'c warden::config::Config,
    name: &str,
) -> anyhow::Result<&'c warden::check::Dataset> {
    config.dataset(name).ok_or_else(|| {
        let known: Vec<&str> = config.datasets.iter().map(|d| d.name.as_str()).collect();
        anyhow::anyhow!("unknown dataset `{name}` (known: {})", known.join(", "))
    })
}

/// Opens the registry named by `agent.registry`.
async fn open_registry(
    config: &warden::config::Config,
) -> anyhow::Result<warden::registry::Registry> {
    Ok(warden::registry::Registry::open(&config.agent.registry).await?)
}
