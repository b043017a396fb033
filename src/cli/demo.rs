//! `warden demo`: build ./warden-demo and run the agent on it, with a feed
//! that keeps the `orders` table fresh while `events` stays stale.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use warden::agent::{Agent, Options};

use super::args::{DemoArgs, Format};
use super::check::print;

/// How long the demo waits for the first results before printing them.
const FIRST_RESULTS: Duration = Duration::from_secs(60);
/// How often the demo feed adds an order.
const FEED_EVERY: Duration = Duration::from_secs(5);

pub async fn run(args: DemoArgs) -> anyhow::Result<u8> {
    let files = warden::demo::create(&args.dir, Utc::now()).await?;
    println!(
        "Created {} (config: {})",
        files.dir.display(),
        files.config.display()
    );
    let options = Options {
        run_on_start: true,
        listen: args.listen,
        ..Options::default()
    };
    let (agent, warnings) = Agent::start(&files.config, options)
        .await
        .context("cannot start the demo agent")?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let feed = tokio::spawn(warden::demo::feed(
        files.warehouse.clone(),
        FEED_EVERY,
        agent.state().shutdown().clone(),
    ));

    // The first round of results, as `warden check` prints them.
    let state = agent.state().clone();
    let config = state.config();
    let expected: usize = config.datasets.iter().map(|d| d.checks.len()).sum();
    let deadline = tokio::time::Instant::now() + FIRST_RESULTS;
    let mut latest = Vec::new();
    while tokio::time::Instant::now() < deadline {
        latest = state
            .registry()
            .latest_results_all()
            .await
            .unwrap_or_default();
        if latest.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let order: HashMap<&str, usize> = config
        .datasets
        .iter()
        .flat_map(|d| &d.checks)
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let mut results: Vec<_> = latest.into_iter().map(|s| s.result).collect();
    results.sort_by_key(|r| order.get(r.check.as_str()).copied().unwrap_or(usize::MAX));
    println!();
    print(&results, Format::Text)?;

    let url = format!("http://{}", agent.addr());
    println!(
        "\nThe demo data has real problems: a stale `events` feed, orders without a customer,\n\
         and one order loaded twice. A new order arrives every {}s, so `orders` stays fresh.\n\
         Checks run every minute.\n\n\
         \x20 status page   {url}/\n\
         \x20 metrics       {url}/metrics\n\
         \x20 API           {url}/api/v1/datasets\n\n\
         Edit {} and send SIGHUP to reload, or press Ctrl-C to stop.",
        FEED_EVERY.as_secs(),
        files.dir.join("checks/shop.yaml").display(),
    );
    agent
        .run_until_signalled()
        .await
        .context("cannot install the signal handlers")?;
    let _ = feed.await;
    Ok(0)
}
