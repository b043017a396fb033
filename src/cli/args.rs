//! Command-line arguments as the user typed them (clap). Commands resolve
//! them into typed values (config, partitions) before doing any work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// What `warden --version` prints after the name: the version, the commit
/// built and the build date.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("WARDEN_GIT_REV"),
    ", built ",
    env!("WARDEN_BUILD_DATE"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version = LONG_VERSION,
    about = "Data-quality and freshness agent for warehouse tables"
)]
pub struct Cli {
    /// Path of warden.yaml (else $WARDEN_CONFIG, else ./warden.yaml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create ./warden-demo (a SQLite warehouse with real problems) and run the agent on it.
    Demo(DemoArgs),
    /// Write warden.yaml, checks and alert routes for an existing warehouse, from one profile of each table.
    Init(InitArgs),
    /// Run the agent: scheduled checks, the HTTP API, the status page and /metrics.
    Run(RunArgs),
    /// Run checks once and print the results.
    Check(CheckArgs),
    /// Parse and validate the configuration without connecting to anything.
    Validate,
    /// Rerun a dataset's partition checks over a range of partitions.
    Backfill(BackfillArgs),
    /// Ask the running agent's gate whether a staged partition may be published.
    Gate(GateArgs),
    /// Record that the pipeline published a partition the gate allowed.
    Publish(PublishArgs),
    /// Print what the status page shows, from the running agent.
    Status(StatusArgs),
    /// Manage schema baselines.
    Baseline {
        #[command(subcommand)]
        action: BaselineAction,
    },
    /// Print the completion script of a shell (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (warden.1 and one per command) into a directory.
    #[command(hide = true)]
    Man {
        /// The directory to write them into.
        #[arg(long, value_name = "DIR", default_value = "deploy/man")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the demo.
    #[arg(long, default_value = "warden-demo")]
    pub dir: PathBuf,
    /// Listen here instead of 127.0.0.1:9464 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The warehouse (else $WAREHOUSE_URL): postgres://…, mysql://…,
    /// sqlite://… or clickhouse://…; its password is written as ${WAREHOUSE_PASSWORD}, never in clear.
    #[arg(
        long,
        value_name = "URL",
        env = "WAREHOUSE_URL",
        hide_env_values = true
    )]
    pub warehouse: String,
    /// The schema to read (default: the session's: current_schema() on
    /// PostgreSQL, the URL's database on MySQL and ClickHouse, main on SQLite).
    #[arg(long)]
    pub schema: Option<String>,
    /// Only the tables and views whose name matches this glob (e.g. 'fct_*').
    #[arg(long, value_name = "GLOB")]
    pub tables: Option<String>,
    /// Where to write warden.yaml, checks/ and alerts/.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Count NULLs and distinct values over at most N rows of each table
    /// (default: every row).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub sample: Option<u64>,
    /// Replace files that exist.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Listen here instead of `agent.listen` (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// How long runs under way may take to finish after SIGTERM/SIGINT.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub grace_period: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only this dataset.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Check this partition (e.g. 2026-11-20) instead of the latest complete one.
    #[arg(long, requires = "dataset")]
    pub partition: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Do not record the results in the registry (dry run).
    #[arg(long)]
    pub no_record: bool,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The partitioned dataset.
    pub dataset: String,
    /// First partition, included.
    #[arg(long)]
    pub from: String,
    /// Last partition, included.
    #[arg(long)]
    pub to: String,
    /// Partitions checked at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum BaselineAction {
    /// Take the dataset's current schema as its new baseline.
    Accept {
        /// The dataset.
        dataset: String,
    },
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// The dataset whose checks decide.
    pub dataset: String,
    /// The staged partition (2026-11-20, or 2026-11-20T13 for hourly datasets).
    #[arg(long)]
    pub partition: String,
    /// The pipeline run asking; a repeat with the same run id gets the recorded
    /// decision. Default: a new id for this invocation.
    #[arg(long)]
    pub run_id: Option<String>,
    /// The agent's URL (default: `agent.listen` of the configuration, else
    /// http://127.0.0.1:9464).
    #[arg(long, env = "WARDEN_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// How long to wait for the decision, 1s to 5m; past it the gate denies (timeout).
    #[arg(long, default_value = "300s", value_parser = super::gate::parse_wait)]
    pub wait: std::time::Duration,
    /// Bearer token of the API (one of agent.api_tokens).
    #[arg(long, env = "WARDEN_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format: a summary, or the gate as the API returns it.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The dataset.
    pub dataset: String,
    /// The partition published.
    #[arg(long)]
    pub partition: String,
    /// The gate that allowed it.
    #[arg(long)]
    pub gate_id: String,
    /// Who publishes, kept as a note in the partition's history beside the
    /// actor, the token's name (without tokens, this is the actor; default
    /// `anonymous`).
    #[arg(long)]
    pub by: Option<String>,
    /// The agent's URL (default: `agent.listen` of the configuration, else
    /// http://127.0.0.1:9464).
    #[arg(long, env = "WARDEN_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token of the API (one of agent.api_tokens).
    #[arg(long, env = "WARDEN_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The agent's URL (default: `agent.listen` of the configuration, else
    /// http://127.0.0.1:9464).
    #[arg(long, env = "WARDEN_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token of the API (one of agent.api_tokens).
    #[arg(long, env = "WARDEN_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format: a summary, or the status as the API returns it.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}
