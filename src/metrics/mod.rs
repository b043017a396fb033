//! Every metric warden exports, named once (DESIGN §5). Code records through
//! the small typed helpers here; nothing else creates a metric.
//!
//! The series that describe a check or a dataset (outcome, observed value,
//! last run, runs, row count, freshness lag, null ratios) are warden's own
//! state, written into the text exposition when `/metrics` is scraped
//! ([`checks`]); series of checks that leave the configuration are removed,
//! so a dashboard never shows a check that no longer exists
//! ([`Metrics::retain`]). The few series per warehouse, stage, gate or
//! receiver are the `prometheus` crate's own vectors.

mod checks;

use std::collections::BTreeSet;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, TextEncoder,
};

use self::checks::{CheckFamily, CheckSeries, CheckState, DatasetState};
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

/// Why the scheduler skipped a tick of a dataset, the `reason` label of
/// `warden_ticks_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// The warehouse's run queue was full.
    QueueFull,
    /// The dataset's previous run was still queued or running.
    StillRunning,
}

impl SkipReason {
    pub const ALL: [SkipReason; 2] = [Self::QueueFull, Self::StillRunning];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::StillRunning => "still_running",
        }
    }
}

/// Where a family's series come from at scrape time.
enum Source {
    /// Warden's own per-check and per-dataset state, written as text.
    Checks(CheckFamily),
    /// A vector of the `prometheus` crate, encoded by its text encoder.
    Crate(Box<dyn Collector>),
}

impl Source {
    fn name(&self) -> &str {
        match self {
            Self::Checks(family) => family.name(),
            Self::Crate(collector) => &collector.desc()[0].fq_name,
        }
    }
}

/// The agent's metrics, rendered from their sources.
pub struct Metrics {
    /// Every per-check and per-dataset series.
    checks: CheckSeries,
    /// Every metric family, in name order: rendered one at a time.
    families: Vec<Source>,
    check_duration_seconds: HistogramVec,
    gate_decisions_total: IntCounterVec,
    gate_duration_seconds: HistogramVec,
    notifications_total: IntCounterVec,
    outbox_pending: IntGaugeVec,
    queue_depth: IntGaugeVec,
    warehouse_up: IntGaugeVec,
    ticks_skipped_total: IntCounterVec,
    /// 0 while the latest configuration load (start-up or reload) had
    /// problems, 1 when it was clean (Prometheus's convention).
    config_last_reload_successful: IntGauge,
    /// Unix time of the last clean configuration load; 0 before the first.
    config_last_reload_success_timestamp_seconds: Gauge,
    /// Size of the last rendering, to allocate the next one at once.
    last_size: std::sync::atomic::AtomicUsize,
}

impl Metrics {
    pub fn new() -> Self {
        let checks = CheckSeries::default();
        let check_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "warden_check_duration_seconds",
                "Time to run a dataset's checks against its warehouse.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["warehouse"],
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
        let ticks_skipped_total = IntCounterVec::new(
            Opts::new(
                "warden_ticks_skipped_total",
                "Scheduled ticks of a dataset not run: its warehouse's run queue was full, or its previous run was still going.",
            ),
            &["warehouse", "reason"],
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

        let mut families: Vec<Source> = checks.families().into_iter().map(Source::Checks).collect();
        families.extend(
            [
                Box::new(check_duration_seconds.clone()) as Box<dyn Collector>,
                Box::new(gate_decisions_total.clone()),
                Box::new(gate_duration_seconds.clone()),
                Box::new(notifications_total.clone()),
                Box::new(outbox_pending.clone()),
                Box::new(queue_depth.clone()),
                Box::new(warehouse_up.clone()),
                Box::new(ticks_skipped_total.clone()),
                Box::new(build_info.clone()),
                Box::new(config_last_reload_successful.clone()),
                Box::new(config_last_reload_success_timestamp_seconds.clone()),
            ]
            .map(Source::Crate),
        );
        families.sort_by(|a, b| a.name().cmp(b.name()));
        assert!(
            families.windows(2).all(|w| w[0].name() != w[1].name()),
            "metric names are unique"
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for stage in STAGES {
            queue_depth.with_label_values(&[stage]).set(0);
        }

        Self {
            checks,
            families,
            check_duration_seconds,
            gate_decisions_total,
            gate_duration_seconds,
            notifications_total,
            outbox_pending,
            queue_depth,
            warehouse_up,
            ticks_skipped_total,
            config_last_reload_successful,
            config_last_reload_success_timestamp_seconds,
            last_size: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The Prometheus text exposition of every metric: each family read
    /// and written in turn, so a scrape holds nothing but the text.
    pub fn render(&self) -> String {
        let hint = self.last_size.load(std::sync::atomic::Ordering::Relaxed);
        let mut out = String::with_capacity(hint.max(16 * 1024));
        let encoder = TextEncoder::new();
        for family in &self.families {
            match family {
                Source::Checks(family) => family.write(&mut out),
                Source::Crate(collector) => {
                    let mut families = collector.collect();
                    if families.iter().all(|f| f.get_metric().is_empty()) {
                        continue;
                    }
                    // In label value order, as the registry's `gather` has them.
                    for family in &mut families {
                        family.mut_metric().sort_by(|a, b| {
                            a.get_label()
                                .iter()
                                .map(|l| l.value())
                                .cmp(b.get_label().iter().map(|l| l.value()))
                        });
                    }
                    encoder
                        .encode_utf8(&families, &mut out)
                        .expect("text encoding of collected metrics cannot fail");
                }
            }
        }
        self.last_size
            .store(out.len(), std::sync::atomic::Ordering::Relaxed);
        out
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
        let mut state = self.checks.state();
        for r in results {
            let check = record(&mut state, r, finished_at);
            check.runs[outcome_index(r.outcome)] += 1;
        }
    }

    /// Sets the gauges (not the counters) from results recorded before a
    /// restart, each with the time it was recorded.
    pub fn restore(&self, results: &[(CheckResult, chrono::DateTime<chrono::Utc>)]) {
        let mut state = self.checks.state();
        for (r, at) in results {
            record(&mut state, r, at.timestamp_millis() as f64 / 1000.0);
        }
    }

    /// Deletes the series of datasets, checks and columns that are no longer
    /// in `config` (after a reload).
    pub fn retain(&self, config: &Config) {
        let mut state = self.checks.state();
        state.retain(|dataset, written| {
            // A discovered dataset's series stay while its entry does; its
            // next run writes them again.
            if config.discovered_by(dataset).is_some() {
                return true;
            }
            let Some(ds) = config.dataset(dataset) else {
                return false;
            };
            let checks: BTreeSet<&str> = ds.checks.iter().map(|c| c.id.as_str()).collect();
            written
                .checks
                .retain(|check, _| checks.contains(check.as_str()));
            let null_columns: BTreeSet<String> = ds
                .checks
                .iter()
                .filter(|c| c.kind.gauge() == Some(DatasetGauge::NullRatio))
                .filter_map(|c| c.kind.column().map(ToString::to_string))
                .collect();
            written
                .null_ratio
                .retain(|col, _| null_columns.contains(col));
            let has = |gauge| ds.checks.iter().any(|c| c.kind.gauge() == Some(gauge));
            if !has(DatasetGauge::RowCount) {
                written.row_count = None;
            }
            if !has(DatasetGauge::FreshnessLag) {
                written.freshness_lag = None;
            }
            true
        });
    }

    /// Counts a scheduled tick of a dataset on `warehouse` that was not run.
    pub fn record_skipped_tick(&self, warehouse: &str, reason: SkipReason) {
        self.ticks_skipped_total
            .with_label_values(&[warehouse, reason.as_str()])
            .inc();
    }

    /// Sets `warden_warehouse_up` for `warehouse`.
    pub fn set_warehouse_up(&self, warehouse: &str, up: bool) {
        self.warehouse_up
            .with_label_values(&[warehouse])
            .set(i64::from(up));
    }

    /// Deletes `warden_warehouse_up` for warehouses no longer configured.
    pub fn retain_warehouses(&self, config: &Config) {
        // Only these metrics' series, not a gather of every metric.
        let gone = |vec: &dyn Collector| -> Vec<String> {
            vec.collect()
                .iter()
                .flat_map(|mf| mf.get_metric())
                .filter_map(|m| m.get_label().iter().find(|l| l.name() == "warehouse"))
                .map(|l| l.value().to_owned())
                .filter(|w| !config.warehouses.contains_key(w))
                .collect()
        };
        for w in gone(&self.warehouse_up) {
            let _ = self.warehouse_up.remove_label_values(&[&w]);
        }
        for w in gone(&self.ticks_skipped_total) {
            for reason in SkipReason::ALL {
                let _ = self
                    .ticks_skipped_total
                    .remove_label_values(&[&w, reason.as_str()]);
            }
        }
    }

    /// Exports `warden_ticks_skipped_total` of `warehouse` at 0 for each
    /// reason until a tick is skipped, so that its rate reads 0, not nothing.
    pub fn declare_skipped_ticks(&self, warehouse: &str) {
        for reason in SkipReason::ALL {
            self.ticks_skipped_total
                .with_label_values(&[warehouse, reason.as_str()]);
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

fn outcome_index(outcome: Outcome) -> usize {
    Outcome::ALL
        .iter()
        .position(|o| *o == outcome)
        .expect("every outcome is in Outcome::ALL")
}

/// Writes `r` into the state of its check and dataset, `at` being the Unix
/// time of its run, and returns the check's state.
fn record<'a>(
    state: &'a mut std::collections::BTreeMap<String, DatasetState>,
    r: &CheckResult,
    at: f64,
) -> &'a mut CheckState {
    // Looked up by `&str` first: a key is allocated only for a new dataset.
    if !state.contains_key(r.dataset.as_str()) {
        state.insert(r.dataset.clone(), DatasetState::default());
    }
    let ds = state
        .get_mut(r.dataset.as_str())
        .expect("the dataset's state was just inserted");
    if let Some(v) = r.observed {
        match CheckKind::gauge_of(&r.kind) {
            Some(DatasetGauge::RowCount) => ds.row_count = Some(v),
            Some(DatasetGauge::FreshnessLag) => ds.freshness_lag = Some(v),
            Some(DatasetGauge::NullRatio) => {
                if let Some(col) = &r.column {
                    match ds.null_ratio.get_mut(col.as_str()) {
                        Some(ratio) => *ratio = v,
                        None => {
                            ds.null_ratio.insert(col.clone(), v);
                        }
                    }
                }
            }
            None => {}
        }
    }
    // An error has no value: NaN says so instead of keeping a stale one.
    let observed = r.observed.unwrap_or(f64::NAN);
    if !ds.checks.contains_key(r.check.as_str()) {
        ds.checks.insert(
            r.check.clone(),
            CheckState {
                outcome: r.outcome,
                observed,
                last_run: at,
                runs: [0; 4],
                expected: None,
            },
        );
    }
    let check = ds
        .checks
        .get_mut(r.check.as_str())
        .expect("the check's state was just inserted");
    check.outcome = r.outcome;
    check.observed = observed;
    check.last_run = at;
    // A run without a band (learning, an error) drops the band's series.
    check.expected = r.expected.map(|e| (e.lower, e.upper));
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(check: &str, kind: &str, observed: Option<f64>) -> CheckResult {
        CheckResult {
            check: check.to_owned(),
            dataset: "orders".to_owned(),
            kind: kind.to_owned(),
            column: None,
            partition: None,
            outcome: Outcome::Pass,
            observed,
            threshold: Default::default(),
            message: String::new(),
            duration_ms: 1,
            expected: None,
            score: None,
        }
    }

    #[test]
    fn the_row_count_gauge_is_exposed_untyped() {
        let m = Metrics::new();
        m.record_run(
            "main",
            Duration::from_millis(5),
            &[
                result("orders.row_count", "row_count", Some(3.0)),
                result("orders.freshness_updated_at", "freshness", Some(60.0)),
            ],
            1.0,
        );
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

    #[test]
    fn runs_count_per_outcome_and_a_restore_sets_no_counter() {
        let m = Metrics::new();
        m.restore(&[(
            result("orders.row_count", "row_count", Some(3.0)),
            chrono::DateTime::from_timestamp(1_000, 0).unwrap(),
        )]);
        let text = m.render();
        assert!(!text.contains("warden_check_runs_total"), "{text}");
        assert!(text.contains(
            "warden_check_last_run_timestamp_seconds{check=\"orders.row_count\",dataset=\"orders\"} 1000\n"
        ));
        let mut failed = result("orders.row_count", "row_count", None);
        failed.outcome = Outcome::Error;
        for r in [result("orders.row_count", "row_count", Some(4.0)), failed] {
            m.record_run("main", Duration::from_millis(5), &[r], 2_000.0);
        }
        let text = m.render();
        for line in [
            "warden_check_runs_total{check=\"orders.row_count\",dataset=\"orders\",outcome=\"pass\"} 1\n",
            "warden_check_runs_total{check=\"orders.row_count\",dataset=\"orders\",outcome=\"error\"} 1\n",
            "warden_check_outcome{check=\"orders.row_count\",dataset=\"orders\",outcome=\"error\"} 1\n",
            "warden_check_observed_value{check=\"orders.row_count\",dataset=\"orders\"} NaN\n",
            // The error had no value: the dataset gauge keeps the last one.
            "warden_dataset_row_count{dataset=\"orders\"} 4\n",
        ] {
            assert!(text.contains(line), "no {line} in\n{text}");
        }
        assert!(!text.contains("outcome=\"pass\"} 1\nwarden_check_outcome"));
        assert_eq!(text.matches("warden_check_outcome{").count(), 1, "{text}");
    }

    /// The per-check families are written as the `prometheus` crate's own
    /// labelled gauges would be: same order, escaping and numbers.
    #[test]
    fn check_families_are_written_as_the_crate_encodes_gauges() {
        let m = Metrics::new();
        let mut results = Vec::new();
        for (dataset, check, observed) in [
            ("zeta", "zeta.row_count", Some(12.5)),
            ("alpha", "alpha.sql_\"odd\\name\nx", Some(-0.25)),
            ("alpha", "alpha.row_count", Some(1e21)),
            ("mid", "mid.freshness", None),
        ] {
            let mut r = result(check, "sql", observed);
            r.dataset = dataset.to_owned();
            results.push(r);
        }
        m.record_run("main", Duration::from_millis(5), &results, 1_700_000_000.5);

        let observed = prometheus::GaugeVec::new(
            Opts::new(
                "warden_check_observed_value",
                "The value the check observed on its last run.",
            ),
            &["dataset", "check"],
        )
        .unwrap();
        for r in &results {
            observed
                .with_label_values(&[r.dataset.as_str(), r.check.as_str()])
                .set(r.observed.unwrap_or(f64::NAN));
        }
        let registry = prometheus::Registry::new();
        registry.register(Box::new(observed)).unwrap();
        let crate_text = TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();

        let text = m.render();
        let start = text.find("# HELP warden_check_observed_value ").unwrap();
        let end = text[start..]
            .match_indices("# HELP ")
            .nth(1)
            .map_or(text.len(), |(i, _)| start + i);
        assert_eq!(&text[start..end], crate_text);
        assert!(
            crate_text.contains(r#"check="alpha.sql_\"odd\\name\nx""#),
            "{crate_text}"
        );
    }
}
