//! `warden run`: the long-running agent, until SIGTERM or SIGINT (exit 0).

use std::path::Path;

use anyhow::Context;
use warden::agent::{Agent, Options};

use super::args::RunArgs;

pub async fn run(config_path: &Path, args: RunArgs) -> anyhow::Result<u8> {
    let options = Options {
        grace: args.grace_period,
        listen: args.listen,
        ..Options::default()
    };
    let (agent, warnings) = Agent::start(config_path, options)
        .await
        .with_context(|| format!("cannot start the agent with {}", config_path.display()))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    agent
        .run_until_signalled()
        .await
        .context("cannot install the signal handlers")?;
    Ok(0)
}
