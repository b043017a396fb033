//! Connecting what a configuration names: the [`Runner`] over a pool per
//! configured warehouse, for the agent, the CLI and tests.

use std::sync::Arc;

use crate::check::Runner;
use crate::config::Config;
use crate::registry::Registry;
use crate::warehouse::Warehouse;

/// A runner with a pool per warehouse of `config` (connecting lazily); a
/// warehouse whose URL is unusable makes its datasets' checks `error`, not
/// the whole run.
pub fn runner(config: &Config, registry: Option<Registry>) -> Runner {
    let tz = config.agent.timezone;
    let warehouses = config
        .warehouses
        .iter()
        .map(|(name, cfg)| {
            let pool = Warehouse::connect(cfg, tz).map(Arc::new);
            (name.clone(), pool)
        })
        .collect();
    Runner::with_warehouses(tz, warehouses, registry)
}
