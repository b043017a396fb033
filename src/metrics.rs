//! Every metric warden exports, named once (DESIGN §5). Code records through
//! the small typed helpers here; nothing else creates a metric.
//!
//! Series that describe a check (outcome, observed value, last run, runs)
//! are removed when the check leaves the configuration, so a dashboard never
//! shows a check that no longer exists ([`Metrics::retain`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::check::CheckKind;
use crate::check::kind::DatasetGauge;
use crate::check::{CheckResult, Outcome};
use crate::config::Config;

/// Buckets for check and gate durations: 5 ms to 5 min.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The pipeline stages whose queue depth is exported.
pub const STAGES: [&str; 4] = ["run", "evaluate", "gate", "outbox"];

/// The agent's metrics and the registry they are rendered from.
pub struct Metrics {
    registry: Registry,
    pub check_outcome: IntGaugeVec,
    pub check_observed_value: GaugeVec,
    pub check_runs_total: IntCounterVec,
    pub check_duration_seconds: HistogramVec,
    pub dataset_row_count: GaugeVec,
    pub dataset_freshness_lag_seconds: GaugeVec,
    pub column_null_ratio: GaugeVec,
    pub check_last_run_timestamp_seconds: GaugeVec,
    pub gate_decisions_total: IntCounterVec,
    pub gate_duration_seconds: HistogramVec,
    pub notifications_total: IntCounterVec,
    pub outbox_pending: IntGaugeVec,
    pub queue_depth: IntGaugeVec,
    pub warehouse_up: IntGaugeVec,
    pub build_info: IntGaugeVec,
    /// 0 while the latest configuration load (start-up or reload) had
    /// problems, 1 when it was clean (Prometheus's convention).
    pub config_last_reload_successful: IntGauge,
    /// Unix time of the last clean configuration load; 0 before the first.
    pub config_last_reload_success_timestamp_seconds: Gauge,
    /// Label sets written per dataset, so that removed datasets and checks
    /// can have their series deleted.
    series: Mutex<HashMap<String, DatasetSeries>>,
    /// Size of the last rendering, to allocate the next one at once.
    last_size: std::sync::atomic::AtomicUsize,
}

/// The label values a dataset's series were written with.
#[derive(Default)]
struct DatasetSeries {
    checks: BTreeSet<String>,
    null_columns: BTreeSet<String>,
    row_count: bool,
    freshness: bool,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let check_outcome = IntGaugeVec::new(
            Opts::new(
                "warden_check_outcome",
                "The check's current outcome (one series per check, at 1).",
            ),
            &["dataset", "check", "outcome"],
        )
        .expect("valid metric");
        let check_observed_value = GaugeVec::new(
            Opts::new(
                "warden_check_observed_value",
                "The value the check observed on its last run.",
            ),
            &["dataset", "check"],
        )
        .expect("valid metric");
        let check_runs_total = IntCounterVec::new(
            Opts::new("warden_check_runs_total", "Check runs by outcome."),
            &["dataset", "check", "outcome"],
        )
        .expect("valid metric");
        let check_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "warden_check_duration_seconds",
                "Time to run a dataset's checks against its warehouse.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["warehouse"],
        )
        .expect("valid metric");
        let dataset_row_count = GaugeVec::new(
            Opts::new(
                "warden_dataset_row_count",
                "Rows the dataset's row_count check last counted.",
            ),
            &["dataset"],
        )
        .expect("valid metric");
        let dataset_freshness_lag_seconds = GaugeVec::new(
            Opts::new(
                "warden_dataset_freshness_lag_seconds",
                "Seconds since the newest row, from the dataset's freshness check.",
            ),
            &["dataset"],
        )
        .expect("valid metric");
        let column_null_ratio = GaugeVec::new(
            Opts::new(
                "warden_column_null_ratio",
                "Share of NULLs in the column on the last run, in [0, 1].",
            ),
            &["dataset", "column"],
        )
        .expect("valid metric");
        let check_last_run_timestamp_seconds = GaugeVec::new(
            Opts::new(
                "warden_check_last_run_timestamp_seconds",
                "Unix time of the check's last completed run.",
            ),
            &["dataset", "check"],
        )
        .expect("valid metric");
        let gate_decisions_total = IntCounterVec::new(
            Opts::new("warden_gate_decisions_total", "Gate decisions."),
            &["dataset", "decision"],
        )
        .expect("valid metric");
        let gate_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "warden_gate_duration_seconds",
                "Time from a gate request to its decision.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["dataset"],
        )
        .expect("valid metric");
        let notifications_total = IntCounterVec::new(
            Opts::new(
                "warden_notifications_total",
                "Notification delivery attempts by result.",
            ),
            &["receiver", "result"],
        )
        .expect("valid metric");
        let outbox_pending = IntGaugeVec::new(
            Opts::new(
                "warden_outbox_pending",
                "Notifications written to the outbox and not yet delivered.",
            ),
            &["receiver"],
        )
        .expect("valid metric");
        let queue_depth = IntGaugeVec::new(
            Opts::new("warden_queue_depth", "Work waiting in each pipeline stage."),
            &["stage"],
        )
        .expect("valid metric");
        let warehouse_up = IntGaugeVec::new(
            Opts::new(
                "warden_warehouse_up",
                "1 when the warehouse answers, 0 while its circuit is open.",
            ),
            &["warehouse"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new("warden_build_info", "Always 1; the version is a label."),
            &["version"],
        )
        .expect("valid metric");
        let config_last_reload_successful = IntGauge::with_opts(Opts::new(
            "warden_config_last_reload_successful",
            "1 when the latest configuration load was clean, 0 when a file had problems.",
        ))
        .expect("valid metric");
        let config_last_reload_success_timestamp_seconds = Gauge::with_opts(Opts::new(
            "warden_config_last_reload_success_timestamp_seconds",
            "Unix time of the last configuration load without a problem.",
        ))
        .expect("valid metric");

        for c in [
            Box::new(check_outcome.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(check_observed_value.clone()),
            Box::new(check_runs_total.clone()),
            Box::new(check_duration_seconds.clone()),
            Box::new(dataset_row_count.clone()),
            Box::new(dataset_freshness_lag_seconds.clone()),
            Box::new(column_null_ratio.clone()),
            Box::new(check_last_run_timestamp_seconds.clone()),
            Box::new(gate_decisions_total.clone()),
            Box::new(gate_duration_seconds.clone()),
            Box::new(notifications_total.clone()),
            Box::new(outbox_pending.clone()),
            Box::new(queue_depth.clone()),
            Box::new(warehouse_up.clone()),
            Box::new(build_info.clone()),
            Box::new(config_last_reload_successful.clone()),
            Box::new(config_last_reload_success_timestamp_seconds.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for stage in STAGES {
            queue_depth.with_label_values(&[stage]).set(0);
        }

        Self {
            registry,
            check_outcome,
            check_observed_value,
            check_runs_total,
            check_duration_seconds,
            dataset_row_count,
            dataset_freshness_lag_seconds,
            column_null_ratio,
            check_last_run_timestamp_seconds,
            gate_decisions_total,
            gate_duration_seconds,
            notifications_total,
            outbox_pending,
            queue_depth,
            warehouse_up,
            build_info,
            config_last_reload_successful,
            config_last_reload_success_timestamp_seconds,
            series: Mutex::new(HashMap::new()),
            last_size: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let hint = self.last_size.load(std::sync::atomic::Ordering::Relaxed);
        let mut buf = Vec::with_capacity(hint.max(16 * 1024));
        let encoder = TextEncoder::new();
        for family in &families {
            let start = buf.len();
            encoder
                .encode(std::slice::from_ref(family), &mut buf)
                .expect("text encoding of gathered metrics cannot fail");
            // The interface names this gauge `warden_dataset_row_count`; a
            // `_count` suffix is reserved for histograms and summaries, and
            // `promtool check metrics` flags it on a gauge. Exposed untyped,
            // it keeps its name and lints clean; PromQL treats it the same.
            // (The text encoder cannot write untyped families itself.)
            if family.name() == "warden_dataset_row_count" {
                let encoded = String::from_utf8_lossy(&buf[start..]).replacen(
                    "# TYPE warden_dataset_row_count gauge\n",
                    "# TYPE warden_dataset_row_count untyped\n",
                    1,
                );
                buf.truncate(start);
                buf.extend_from_slice(encoded.as_bytes());
            }
        }
        self.last_size
            .store(buf.len(), std::sync::atomic::Ordering::Relaxed);
        String::from_utf8(buf).expect("the text encoder writes UTF-8")
    }

    /// Records how the latest configuration load went.
    pub fn record_config_load(&self, report: &crate::config::LoadReport) {
        self.config_last_reload_successful
            .set(i64::from(report.successful()));
        self.config_last_reload_success_timestamp_seconds.set(
            report
                .last_success
                .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0),
        );
    }

    /// Records one completed run of a dataset's checks on `warehouse`.
    /// `finished_at` is the Unix time the run completed.
    pub fn record_run(
        &self,
        warehouse: &str,
        elapsed: Duration,
        results: &[CheckResult],
        finished_at: f64,
    ) {
        self.check_duration_seconds
            .with_label_values(&[warehouse])
            .observe(elapsed.as_secs_f64());
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for r in results {
            let ds = r.dataset.as_str();
            let check = r.check.as_str();
            let entry = series.entry(r.dataset.clone()).or_default();
            entry.checks.insert(r.check.clone());
            self.set_outcome(ds, check, r.outcome);
            self.check_runs_total
                .with_label_values(&[ds, check, r.outcome.as_str()])
                .inc();
            self.check_last_run_timestamp_seconds
                .with_label_values(&[ds, check])
                .set(finished_at);
            let observed = self.check_observed_value.with_label_values(&[ds, check]);
            match r.observed {
                Some(v) => observed.set(v),
                // An error has no value: NaN says so instead of keeping a stale one.
                None => observed.set(f64::NAN),
            }
            let Some(v) = r.observed else { continue };
            self.record_dataset_gauges(entry, r, v);
        }
    }

    /// Sets the gauges (not the counters) from results recorded before a
    /// restart, each with the time it was recorded.
    pub fn restore(&self, results: &[(CheckResult, chrono::DateTime<chrono::Utc>)]) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for (r, at) in results {
            let ds = r.dataset.as_str();
            let check = r.check.as_str();
            let entry = series.entry(r.dataset.clone()).or_default();
            entry.checks.insert(r.check.clone());
            self.set_outcome(ds, check, r.outcome);
            self.check_last_run_timestamp_seconds
                .with_label_values(&[ds, check])
                .set(at.timestamp_millis() as f64 / 1000.0);
            self.check_observed_value
                .with_label_values(&[ds, check])
                .set(r.observed.unwrap_or(f64::NAN));
            let Some(v) = r.observed else { continue };
            self.record_dataset_gauges(entry, r, v);
        }
    }

    /// One series per check: the current outcome at 1. The others are
    /// removed rather than kept at 0, which would multiply the series by four.
    fn set_outcome(&self, dataset: &str, check: &str, outcome: Outcome) {
        for o in Outcome::ALL {
            if o != outcome {
                let _ = self
                    .check_outcome
                    .remove_label_values(&[dataset, check, o.as_str()]);
            }
        }
        self.check_outcome
            .with_label_values(&[dataset, check, outcome.as_str()])
            .set(1);
    }

    fn record_dataset_gauges(&self, entry: &mut DatasetSeries, r: &CheckResult, v: f64) {
        let ds = r.dataset.as_str();
        match CheckKind::gauge_of(&r.kind) {
            Some(DatasetGauge::RowCount) => {
                self.dataset_row_count.with_label_values(&[ds]).set(v);
                entry.row_count = true;
            }
            Some(DatasetGauge::FreshnessLag) => {
                self.dataset_freshness_lag_seconds
                    .with_label_values(&[ds])
                    .set(v);
                entry.freshness = true;
            }
            Some(DatasetGauge::NullRatio) => {
                if let Some(col) = &r.column {
                    self.column_null_ratio.with_label_values(&[ds, col]).set(v);
                    entry.null_columns.insert(col.clone());
                }
            }
            None => {}
        }
    }

    /// Deletes the series of datasets, checks and columns that are no longer
    /// in `config` (after a reload).
    pub fn retain(&self, config: &Config) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.retain(|dataset, written| {
            let Some(ds) = config.dataset(dataset) else {
                for check in &written.checks {
                    self.remove_check(dataset, check);
                }
                for col in &written.null_columns {
                    let _ = self.column_null_ratio.remove_label_values(&[dataset, col]);
                }
                let _ = self.dataset_row_count.remove_label_values(&[dataset]);
                let _ = self
                    .dataset_freshness_lag_seconds
                    .remove_label_values(&[dataset]);
                return false;
            };
            let checks: BTreeSet<&str> = ds.checks.iter().map(|c| c.id.as_str()).collect();
            written.checks.retain(|check| {
                let keep = checks.contains(check.as_str());
                if !keep {
                    self.remove_check(dataset, check);
                }
                keep
            });
            let null_columns: BTreeSet<String> = ds
                .checks
                .iter()
                .filter(|c| c.kind.gauge() == Some(DatasetGauge::NullRatio))
                .filter_map(|c| c.kind.column().map(ToString::to_string))
                .collect();
            written.null_columns.retain(|col| {
                let keep = null_columns.contains(col);
                if !keep {
                    let _ = self.column_null_ratio.remove_label_values(&[dataset, col]);
                }
                keep
            });
            let has = |gauge| ds.checks.iter().any(|c| c.kind.gauge() == Some(gauge));
            if written.row_count && !has(DatasetGauge::RowCount) {
                let _ = self.dataset_row_count.remove_label_values(&[dataset]);
                written.row_count = false;
            }
            if written.freshness && !has(DatasetGauge::FreshnessLag) {
                let _ = self
                    .dataset_freshness_lag_seconds
                    .remove_label_values(&[dataset]);
                written.freshness = false;
            }
            true
        });
    }

    fn remove_check(&self, dataset: &str, check: &str) {
        for o in Outcome::ALL {
            let _ = self
                .check_outcome
                .remove_label_values(&[dataset, check, o.as_str()]);
            let _ = self
                .check_runs_total
                .remove_label_values(&[dataset, check, o.as_str()]);
        }
        let _ = self
            .check_observed_value
            .remove_label_values(&[dataset, check]);
        let _ = self
            .check_last_run_timestamp_seconds
            .remove_label_values(&[dataset, check]);
    }

    /// Sets `warden_warehouse_up` for `warehouse`.
    pub fn set_warehouse_up(&self, warehouse: &str, up: bool) {
        self.warehouse_up
            .with_label_values(&[warehouse])
            .set(i64::from(up));
    }

    /// Deletes `warden_warehouse_up` for warehouses no longer configured.
    pub fn retain_warehouses(&self, config: &Config) {
        use prometheus::core::Collector;
        // Only this metric's series, not a gather of every metric.
        for mf in self.warehouse_up.collect() {
            for m in mf.get_metric() {
                if let Some(label) = m.get_label().iter().find(|l| l.name() == "warehouse")
                    && !config.warehouses.contains_key(label.value())
                {
                    let _ = self.warehouse_up.remove_label_values(&[label.value()]);
                }
            }
        }
    }

    /// Sets the queue depth of `stage` (one of [`STAGES`]).
    pub fn set_queue_depth(&self, stage: &str, depth: usize) {
        self.queue_depth
            .with_label_values(&[stage])
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Counts one gate decision (`allow` or `deny`) and its duration.
    pub fn record_gate(&self, dataset: &str, decision: &str, elapsed: Duration) {
        self.gate_decisions_total
            .with_label_values(&[dataset, decision])
            .inc();
        self.gate_duration_seconds
            .with_label_values(&[dataset])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one notification attempt; `result` is `delivered`, `retry`,
    /// `dead` or `dropped`.
    pub fn record_notification(&self, receiver: &str, result: &str) {
        self.notifications_total
            .with_label_values(&[receiver, result])
            .inc();
    }

    /// Sets the outbox backlog of each receiver; receivers missing from
    /// `pending` are set to 0.
    pub fn set_outbox_pending<'a>(
        &self,
        receivers: impl IntoIterator<Item = &'a str>,
        pending: &[(String, i64)],
    ) {
        for r in receivers {
            let n = pending
                .iter()
                .find(|(name, _)| name == r)
                .map_or(0, |(_, n)| *n);
            self.outbox_pending.with_label_values(&[r]).set(n);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_count_gauge_is_exposed_untyped() {
        let m = Metrics::new();
        m.dataset_row_count.with_label_values(&["orders"]).set(3.0);
        m.dataset_freshness_lag_seconds
            .with_label_values(&["orders"])
            .set(60.0);
        let text = m.render();
        assert!(
            text.contains("# TYPE warden_dataset_row_count untyped\n"),
            "{text}"
        );
        assert!(
            text.contains("warden_dataset_row_count{dataset=\"orders\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE warden_dataset_freshness_lag_seconds gauge\n"));
    }
}
