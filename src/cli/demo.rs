//! `warden demo`: build ./warden-demo and check it.

use chrono::Utc;
use warden::check::Runner;

use super::args::{DemoArgs, Format};
use super::check::{print, run_datasets};
use super::{load_config, open_registry};

pub async fn run(args: DemoArgs) -> anyhow::Result<u8> {
    let files = warden::demo::create(&args.dir, Utc::now()).await?;
    println!(
        "Created {} (config: {})\n",
        files.dir.display(),
        files.config.display()
    );
    let loaded = load_config(&files.config)?;
    let config = &loaded.config;
    let runner = Runner::new(config, Some(open_registry(config).await?));
    let datasets: Vec<_> = config.datasets.iter().map(|d| (d, None)).collect();
    let outcome = run_datasets(config, &runner, &datasets, true).await;
    print(&outcome.results, Format::Text)?;
    println!(
        "\nThe demo data has real problems: a stale `events` feed, orders without a customer,\n\
         and one order loaded twice. Edit {} and run\n  warden check --config {}",
        files.dir.join("checks/shop.yaml").display(),
        files.config.display()
    );
    Ok(0)
}
