//! `discover:`: every table of a schema watched from the catalog, with no
//! dataset written by hand. One catalog statement per entry and run reads
//! every table's columns, row estimate and last change
//! ([`Warehouse::discover_tables`](crate::warehouse::Warehouse::discover_tables));
//! each table that matches becomes a dataset named
//! `<warehouse>.<schema>.<table>` with up to three monitors, judged in
//! [`monitor`] from those figures and what the registry kept of the last
//! run: freshness (against `max_lag`, or a limit learned from the
//! intervals between the table's last changes), volume and schema. A hand-written dataset on the same
//! table wins. A table that disappears fails its schema monitor once
//! ("table dropped") and is forgotten after `forget_after`.
//!
//! `spec` holds the typed entry (validated by `config`), `monitor` the pure
//! rules, `run` one run of an entry end to end.

pub mod monitor;
mod run;
mod spec;

pub use run::{DiscoverRun, discover};
pub use spec::{DEFAULT_FORGET_AFTER, DEFAULT_MAX_DROP, Discover, Monitors};
