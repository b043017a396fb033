//! A `discover:` entry once validated.

use std::time::Duration;

use crate::check::spec::{Dataset, Schedule};
use crate::domain::{DatasetName, Identifier, TableRef};
use crate::source::SourcePos;

/// One entry of `discover:`: which tables of which schema are watched, and how.
#[derive(Debug, Clone)]
pub struct Discover {
    /// Name of a warehouse of the configuration; validated to exist.
    pub warehouse: String,
    /// The schema read (PostgreSQL schema, MySQL or ClickHouse database,
    /// SQLite `main` or an attached name).
    pub schema: Identifier,
    /// Globs a table's name must match one of (default `*`).
    pub include: Vec<glob::Pattern>,
    /// Globs that leave a table out, even when included.
    pub exclude: Vec<glob::Pattern>,
    /// Tier of every discovered dataset: 1 pages, 2 chat, 3 digest.
    pub tier: u8,
    pub owner: Option<String>,
    /// When the agent reads the catalog; `None`: on demand only.
    pub schedule: Option<Schedule>,
    pub monitors: Monitors,
    /// `freshness.max_lag`: longest time without a change; `None`: each
    /// table's limit is learned from its rhythm (`monitor::freshness_limit`).
    pub max_lag: Option<Duration>,
    /// `volume.max_drop`: the largest drop of the row estimate from one run
    /// to the next that passes, as a share (0.5 for 50%).
    pub max_drop: f64,
    /// How long a dropped table is remembered before it is forgotten.
    pub forget_after: Duration,
    pub pos: SourcePos,
}

/// Which monitors each discovered table gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Monitors {
    pub freshness: bool,
    pub volume: bool,
    pub schema: bool,
}

impl Monitors {
    pub const ALL: Self = Self {
        freshness: true,
        volume: true,
        schema: true,
    };
}

/// Default `forget_after`: a dropped table is remembered for a week.
pub const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default `volume.max_drop`.
pub const DEFAULT_MAX_DROP: f64 = 0.5;

impl Discover {
    /// The group its datasets are shown under: `<warehouse>.<schema>`.
    pub fn group(&self) -> String {
        format!("{}.{}", self.warehouse, self.schema)
    }

    /// The name a run of the entry is claimed under by the agents sharing
    /// a registry: `discover.<warehouse>.<schema>`, a name no hand-written
    /// dataset can take (a `$` of the schema written `_`).
    pub fn run_name(&self) -> DatasetName {
        let schema = self.schema.as_str().replace('$', "_");
        DatasetName::discovered("discover", &self.warehouse, &schema)
            .or_else(|_| DatasetName::parse(&format!("discover-{}", self.warehouse)))
            .unwrap_or_else(|_| DatasetName::parse("discover").expect("a valid name"))
    }

    /// Whether the table called `name` is watched by this entry.
    pub fn matches(&self, name: &str) -> bool {
        self.include.iter().any(|p| p.matches(name))
            && !self.exclude.iter().any(|p| p.matches(name))
    }

    /// The dataset of table `name`: `<warehouse>.<schema>.<table>` with the
    /// entry's tier, owner and schedule. `None` for a name that cannot be
    /// a dataset's (not a plain identifier).
    pub fn dataset(&self, name: &str) -> Option<Dataset> {
        let table_name = Identifier::parse(name).ok()?;
        let dataset = DatasetName::discovered(&self.warehouse, self.schema.as_str(), name).ok()?;
        let table = TableRef {
            schema: Some(self.schema.clone()),
            name: table_name,
        };
        Some(Dataset {
            name: dataset,
            warehouse: self.warehouse.clone(),
            gate_table: table.clone(),
            table,
            tier: self.tier,
            owner: self.owner.clone(),
            runbook: None,
            schedule: self.schedule.clone(),
            partition: None,
            gate_allow_empty: false,
            discovered: Some(self.group()),
            checks: Vec::new(),
            pos: self.pos.clone(),
        })
    }

    /// Whether `ds`, written by hand, watches table `name` of this entry's
    /// schema: then it wins and the table is not discovered. A hand-written
    /// table without a schema names the warehouse's default one, which may
    /// be this one.
    pub fn written_by_hand(&self, ds: &Dataset, name: &str) -> bool {
        ds.warehouse == self.warehouse
            && ds.table.name.as_str().eq_ignore_ascii_case(name)
            && ds
                .table
                .schema
                .as_ref()
                .is_none_or(|s| s.as_str().eq_ignore_ascii_case(self.schema.as_str()))
    }
}
