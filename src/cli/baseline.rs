//! `warden baseline accept D`: the dataset's current schema becomes its baseline.

use std::path::Path;

use anyhow::{Context, anyhow};

use super::args::BaselineAction;
use super::{find_dataset, load_config, open_registry};
use warden::check::stored_column;

pub async fn run(config_path: &Path, action: BaselineAction) -> anyhow::Result<u8> {
    let BaselineAction::Accept { dataset } = action;
    let loaded = load_config(config_path)?;
    let config = &loaded.config;
    let ds = find_dataset(config, &dataset)?;
    let registry = open_registry(config).await?;
    let runner = warden::app::runner(config, None);
    let wh = runner.warehouse(ds).map_err(|e| anyhow!(e))?;
    let columns = wh
        .columns(&ds.table)
        .await
        .with_context(|| format!("cannot read the columns of {}", ds.table))?
        .ok_or_else(|| anyhow!("table {} does not exist", ds.table))?;
    let stored: Vec<_> = columns.iter().map(stored_column).collect();
    let by = std::env::var("USER").unwrap_or_else(|_| "warden baseline accept".to_owned());
    registry.set_schema_baseline(&ds.name, &stored, &by).await?;
    println!(
        "Accepted the schema of {} ({}) as its baseline: {} columns",
        ds.name,
        ds.table,
        stored.len()
    );
    for c in &stored {
        println!("  {} {}", c.name, c.data_type);
    }
    Ok(0)
}
