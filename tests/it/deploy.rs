//! The deployment artifacts under `deploy/`, checked with the tools that
//! consume them and against each other: the alerting rules and scrape config
//! pass `promtool`, the rules' unit tests prove each alert fires (and stays
//! quiet on healthy series), every metric the rules and the dashboard query
//! is one warden exports, the prometheus-operator's copy of the rules equals
//! the rules file, and the image, the Kubernetes manifests and the config
//! they carry agree on ports, paths and probes.
//!
//! `promtool` comes with Debian's `prometheus` package; the cases that need
//! it are skipped with a note when it is missing, and fail instead with
//! `WARDEN_TEST_PROMTOOL=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use warden::check::{CheckResult, Outcome};
use warden::domain::Scope;
use warden::metrics::Metrics;

use crate::support::tools::PROMTOOL;

/// The metric names of the interface (DESIGN §5) with their types.
const METRICS: &[(&str, &str)] = &[
    ("warden_check_outcome", "gauge"),
    ("warden_check_observed_value", "gauge"),
    ("warden_check_runs_total", "counter"),
    ("warden_check_duration_seconds", "histogram"),
    // A gauge, exposed untyped: `promtool check metrics` reserves the
    // `_count` suffix for histograms and summaries.
    ("warden_dataset_row_count", "untyped"),
    ("warden_dataset_freshness_lag_seconds", "gauge"),
    ("warden_column_null_ratio", "gauge"),
    ("warden_check_last_run_timestamp_seconds", "gauge"),
    ("warden_check_expected_lower", "gauge"),
    ("warden_check_expected_upper", "gauge"),
    ("warden_gate_decisions_total", "counter"),
    ("warden_notifications_total", "counter"),
    ("warden_outbox_pending", "gauge"),
    ("warden_queue_depth", "gauge"),
    ("warden_warehouse_up", "gauge"),
    ("warden_build_info", "gauge"),
];

/// Series names a query may use: the gauges and counters as named, the
/// histograms through their `_bucket`, `_sum` and `_count` series, and
/// Prometheus's own `up`.
fn queryable_names() -> BTreeSet<String> {
    let mut names = BTreeSet::from(["up".to_owned()]);
    for (name, kind) in METRICS {
        if *kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        } else {
            names.insert((*name).to_owned());
        }
    }
    names
}

// ---- helpers ----

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    yaml_str(&read(rel), rel)
}

fn yaml_str(text: &str, what: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{what} is not valid YAML: {e}"))
}

/// Runs promtool in `dir` and asserts it succeeds; `None` (with a note)
/// when promtool is missing and not required.
fn run_promtool(dir: &Path, args: &[&str]) -> Option<Output> {
    let out = Command::new(PROMTOOL.find()?)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

fn array_at<'a>(v: &'a Value, pointer: &str) -> &'a Vec<Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no list at {pointer} in {v}"))
}

/// The alerting rules of a `groups:` list.
fn alert_rules(groups: &Value) -> Vec<&Value> {
    groups
        .as_array()
        .expect("groups is a list")
        .iter()
        .flat_map(|g| array_at(g, "/rules"))
        .filter(|r| r.get("alert").is_some())
        .collect()
}

// ---- PromQL: which series does an expression read? ----

/// Words that are PromQL syntax, not series names, where they stand alone.
const PROMQL_KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "inf",
    "nan",
];

/// The series names an expression selects: identifiers outside label
/// matchers, ranges and strings that are neither functions (followed by
/// `(`) nor keywords. Grafana's `$variables` are skipped.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_string = |i: &mut usize| {
        let quote = chars[*i];
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => skip_string(&mut i),
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if matches!(chars[i], '"' | '\'' | '`') {
                        skip_string(&mut i);
                    } else {
                        i += 1;
                    }
                }
                i += 1;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    while i < chars.len() && chars[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let call = chars.get(j) == Some(&'(');
                let label_list = matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
                if call && label_list {
                    // Label names, not series: skip the list.
                    while j < chars.len() && chars[j] != ')' {
                        j += 1;
                    }
                    i = j + 1;
                } else if !call && !PROMQL_KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Asserts that every expression selects only series warden (or
/// Prometheus's `up`) provides, and returns the names used.
fn assert_known_metrics<'a>(
    what: &str,
    exprs: impl IntoIterator<Item = &'a str>,
) -> BTreeSet<String> {
    let allowed = queryable_names();
    let mut used = BTreeSet::new();
    for expr in exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{what}: `{expr}` selects no series");
        for name in &names {
            assert!(
                allowed.contains(name),
                "{what}: `{expr}` uses `{name}`, which warden does not export"
            );
        }
        used.extend(names);
    }
    used
}

#[test]
fn metric_name_extraction_reads_promql() {
    let expr = r#"histogram_quantile(0.9, sum by (le, warehouse) (rate(warden_check_duration_seconds_bucket{job=~"$job", warehouse="up"}[$__rate_interval])))
        / on (job) group_left (version) warden_build_info offset 5m
        and time() - max without (instance) (warden_check_last_run_timestamp_seconds) > 26 * 3600
        or absent(up{job="warden"}) unless bogus_series"#;
    assert_eq!(
        metric_names(expr),
        BTreeSet::from(
            [
                "warden_check_duration_seconds_bucket",
                "warden_build_info",
                "warden_check_last_run_timestamp_seconds",
                "up",
                "bogus_series",
            ]
            .map(String::from)
        )
    );
}

// ---- the metric names are the ones warden exports ----

fn result(check: &str, kind: &str, column: Option<&str>, observed: f64) -> CheckResult {
    CheckResult {
        check: format!("orders.{check}"),
        dataset: "orders".into(),
        kind: kind.into(),
        column: column.map(String::from),
        partition: None,
        outcome: Outcome::Pass,
        observed: Some(observed),
        threshold: BTreeMap::new(),
        message: String::new(),
        duration_ms: 3,
        expected: None,
        score: None,
    }
}

#[test]
fn the_interface_metric_names_are_what_warden_exports() {
    let metrics = Metrics::new();
    metrics.record_run(
        "main",
        Duration::from_millis(40),
        &[
            result("row_count", "row_count", None, 10.0),
            result("freshness_updated_at", "freshness", None, 60.0),
            result(
                "null_rate_customer_id",
                "null_rate",
                Some("customer_id"),
                0.0,
            ),
            CheckResult {
                expected: Some(warden::domain::Expected {
                    lower: 870.0,
                    center: 1000.0,
                    upper: 1130.0,
                }),
                score: Some(-6.2),
                ..result("anomaly_row_count", "anomaly", None, 412.0)
            },
        ],
        1_800_000_000.0,
    );
    metrics.record_gate("orders", "allow", Duration::from_millis(5));
    metrics.record_notification("chat", "delivered");
    metrics.set_outbox_pending(["chat"], &[]);
    metrics.set_warehouse_up("main", true);
    let body = metrics.render();
    let exported: BTreeMap<&str, &str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    for (name, kind) in METRICS {
        assert_eq!(
            exported.get(name),
            Some(kind),
            "warden does not export {name} as a {kind}"
        );
    }
}

// ---- Prometheus ----

#[test]
fn alerting_rules_pass_promtool_check() {
    let Some(out) = run_promtool(
        &repo("deploy/prometheus"),
        &["check", "rules", "warden-rules.yml"],
    ) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let rules = alert_rules(&yaml("deploy/prometheus/warden-rules.yml")["groups"]).len();
    assert!(
        text.contains(&format!("SUCCESS: {rules} rules found")),
        "{text}"
    );
}

#[test]
fn scrape_config_passes_promtool_check_with_its_rules() {
    if let Some(out) = run_promtool(
        &repo("deploy/prometheus"),
        &["check", "config", "prometheus.yml"],
    ) {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("SUCCESS: 1 rule files found"), "{text}");
    }
    let config = yaml("deploy/prometheus/prometheus.yml");
    let jobs = array_at(&config, "/scrape_configs");
    assert!(
        jobs.iter().any(|j| j["job_name"] == "warden"),
        "the rules select job=\"warden\"; the scrape config must name it so"
    );
}

#[test]
fn alerting_rule_unit_tests_pass() {
    let Some(out) = run_promtool(
        &repo("deploy/prometheus"),
        &["test", "rules", "warden-rules.test.yml"],
    ) else {
        return;
    };
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn every_alert_is_tested_firing_and_has_a_severity_and_a_runbook() {
    let rules = yaml("deploy/prometheus/warden-rules.yml");
    let tests = yaml("deploy/prometheus/warden-rules.test.yml");
    let runbooks = read("deploy/runbooks.md");
    let headings: BTreeSet<&str> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .collect();
    let mut fired = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in array_at(&tests, "/tests") {
        for t in array_at(case, "/alert_rule_test") {
            let name = str_at(t, "/alertname");
            if array_at(t, "/exp_alerts").is_empty() {
                quiet.insert(name);
            } else {
                fired.insert(name);
            }
        }
    }
    let alerts = alert_rules(&rules["groups"]);
    assert!(alerts.len() >= 10, "only {} alerts", alerts.len());
    for rule in alerts {
        let name = str_at(rule, "/alert");
        assert!(fired.contains(name), "no unit test shows {name} firing");
        let severity = str_at(rule, "/labels/severity");
        assert!(
            ["critical", "warning"].contains(&severity),
            "{name}: severity {severity}"
        );
        for key in ["summary", "description"] {
            assert!(
                !str_at(rule, &format!("/annotations/{key}")).is_empty(),
                "{name}: empty {key}"
            );
        }
        let runbook = str_at(rule, "/annotations/runbook_url");
        assert!(
            runbook.ends_with(&format!("runbooks.md#{}", name.to_lowercase())),
            "{name}: runbook_url {runbook}"
        );
        assert!(
            headings.contains(name),
            "deploy/runbooks.md has no section `## {name}`"
        );
    }
    // The alerts with a `for:` are also shown not firing before it passed,
    // or on a healthy series.
    for name in [
        "WardenAgentDown",
        "WardenWarehouseDown",
        "WardenCheckFailing",
        "WardenCheckErroring",
        "WardenDatasetStale",
        "WardenCheckNotRunning",
        "WardenOutboxBacklog",
        "WardenOutboxStuck",
        "WardenNotificationsDeadLettered",
    ] {
        assert!(quiet.contains(name), "no unit test shows {name} quiet");
    }
}

#[test]
fn alerting_rules_query_only_warden_metrics() {
    let rules = yaml("deploy/prometheus/warden-rules.yml");
    let used = assert_known_metrics(
        "warden-rules.yml",
        alert_rules(&rules["groups"])
            .into_iter()
            .map(|r| str_at(r, "/expr")),
    );
    for name in [
        "up",
        "warden_check_outcome",
        "warden_dataset_freshness_lag_seconds",
        "warden_check_last_run_timestamp_seconds",
        "warden_warehouse_up",
        "warden_outbox_pending",
        "warden_notifications_total",
        "warden_gate_decisions_total",
    ] {
        assert!(used.contains(name), "no alert on {name}");
    }
}

#[test]
fn the_prometheus_rule_resource_holds_the_same_rules() {
    let file = yaml("deploy/prometheus/warden-rules.yml");
    let resource = yaml("deploy/kubernetes/prometheusrule.yaml");
    assert_eq!(str_at(&resource, "/kind"), "PrometheusRule");
    let ours = array_at(&resource, "/spec/groups");
    let theirs = array_at(&file, "/groups");
    // Name the first rule that differs, rather than print both files.
    for (a, b) in ours.iter().zip(theirs) {
        assert_eq!(a["name"], b["name"], "group names differ");
        for (ra, rb) in array_at(a, "/rules").iter().zip(array_at(b, "/rules")) {
            assert_eq!(
                ra, rb,
                "prometheusrule.yaml and warden-rules.yml differ in a rule of group {}",
                a["name"]
            );
        }
    }
    assert_eq!(
        ours, theirs,
        "deploy/kubernetes/prometheusrule.yaml's spec.groups differ from \
         deploy/prometheus/warden-rules.yml's groups"
    );
    assert_known_metrics(
        "prometheusrule.yaml",
        alert_rules(&resource["spec"]["groups"])
            .into_iter()
            .map(|r| str_at(r, "/expr")),
    );
}

// ---- Grafana ----

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/warden-dashboard.json"))
        .expect("the dashboard is valid JSON")
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in array_at(dashboard, "/panels") {
        out.push(p);
        if let Some(nested) = p.get("panels").and_then(Value::as_array) {
            out.extend(nested);
        }
    }
    out
}

fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    panels(dashboard)
        .into_iter()
        .filter_map(|p| p.get("targets").and_then(Value::as_array))
        .flatten()
        .map(|t| str_at(t, "/expr").to_owned())
        .collect()
}

/// The series selector inside a variable's `label_values(selector, label)`.
fn variable_selectors(dashboard: &Value) -> Vec<String> {
    array_at(dashboard, "/templating/list")
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let q = str_at(v, "/definition");
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| panic!("variable query `{q}` is not label_values(...)"));
            let (selector, _label) = inner
                .rsplit_once(',')
                .expect("label_values(selector, label)");
            assert_eq!(
                v.pointer("/query/query").and_then(Value::as_str),
                Some(q),
                "variable {}: query and definition differ",
                v["name"]
            );
            selector.trim().to_owned()
        })
        .collect()
}

#[test]
fn dashboard_queries_only_warden_metrics_and_shows_each_of_them() {
    let d = dashboard();
    let exprs = dashboard_exprs(&d);
    let selectors = variable_selectors(&d);
    let used = assert_known_metrics(
        "warden-dashboard.json",
        exprs.iter().chain(&selectors).map(String::as_str),
    );
    for (name, kind) in METRICS {
        let shown = if *kind == "histogram" {
            used.contains(&format!("{name}_bucket"))
        } else {
            used.contains(*name)
        };
        assert!(shown, "the dashboard has no panel for {name}");
    }
}

#[test]
fn dashboard_expressions_are_valid_promql() {
    // Grafana's variables replaced by what Grafana would send, then every
    // expression compiled by promtool as a recording rule.
    let d = dashboard();
    let mut exprs = dashboard_exprs(&d);
    exprs.extend(variable_selectors(&d));
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let concrete = expr
            .replace("$__rate_interval", "2m")
            .replace("$__interval", "1m")
            .replace("$__range", "1h")
            .replace("$job", "warden")
            .replace("$instance", ".*")
            .replace("$dataset", ".*")
            .replace("$warehouse", ".*");
        assert!(!concrete.contains('$'), "unknown variable in `{expr}`");
        rules.push_str(&format!(
            "      - record: dashboard:expr{i}\n        expr: {}\n",
            serde_json::to_string(&concrete).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.yml"), rules).unwrap();
    let Some(out) = run_promtool(dir.path(), &["check", "rules", "dashboard.yml"]) else {
        return;
    };
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn dashboard_is_importable_with_a_datasource_variable() {
    let d = dashboard();
    assert_eq!(str_at(&d, "/uid"), "warden-overview");
    assert!(d["id"].is_null(), "an exported dashboard has no id");
    let vars = array_at(&d, "/templating/list");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no template variable {name}"))
    };
    let ds = var("DS_PROMETHEUS");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    for name in ["job", "instance", "dataset", "warehouse"] {
        assert_eq!(var(name)["type"], "query");
    }
    assert_eq!(var("dataset")["multi"], true);
    assert_eq!(var("dataset")["includeAll"], true);

    let wanted_ds = serde_json::json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in panels(&d) {
        let title = str_at(p, "/title");
        assert!(
            ids.insert(p["id"].as_u64().expect("numeric panel id")),
            "duplicate id: {title}"
        );
        let (x, y, w, h) = (
            p["gridPos"]["x"].as_u64().unwrap(),
            p["gridPos"]["y"].as_u64().unwrap(),
            p["gridPos"]["w"].as_u64().unwrap(),
            p["gridPos"]["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "{title} is wider than the grid");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps another panel");
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"], wanted_ds, "{title}: datasource");
        let targets = array_at(p, "/targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert_eq!(t["datasource"], wanted_ds, "{title}: target datasource");
        }
    }
}

// ---- Kubernetes ----

fn manifest(rel: &str) -> Value {
    yaml(&format!("deploy/kubernetes/{rel}"))
}

/// The container's port number for a port given by number or by name.
fn container_port(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = port.as_str().expect("a port is a number or a name");
    array_at(container, "/ports")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("the container has no port named {name}"))
}

fn warden_container(deployment: &Value) -> &Value {
    array_at(deployment, "/spec/template/spec/containers")
        .iter()
        .find(|c| c["name"] == "warden")
        .expect("a container named warden")
}

#[test]
fn kustomization_lists_manifests_that_parse() {
    let k = manifest("kustomization.yaml");
    let mut kinds = BTreeSet::new();
    for r in array_at(&k, "/resources") {
        let r = r.as_str().unwrap();
        let m = manifest(r);
        assert!(m["apiVersion"].is_string(), "{r}: no apiVersion");
        kinds.insert(str_at(&m, "/kind").to_owned());
    }
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(kinds.contains(kind), "no {kind} in kustomization.yaml");
    }
    // The PostgreSQL component and the example Secret parse too.
    let component = manifest("postgres/kustomization.yaml");
    assert_eq!(str_at(&component, "/kind"), "Component");
    for r in array_at(&component, "/resources") {
        manifest(&format!("postgres/{}", r.as_str().unwrap()));
    }
    for p in array_at(&component, "/patches") {
        yaml_str(
            str_at(p, "/patch"),
            "a patch of postgres/kustomization.yaml",
        );
    }
    assert_eq!(str_at(&manifest("secret.example.yaml"), "/kind"), "Secret");
}

#[test]
fn probes_service_and_scrapes_use_the_agent_port() {
    let deployment = manifest("deployment.yaml");
    let service = manifest("service.yaml");
    let monitor = manifest("servicemonitor.yaml");
    let container = warden_container(&deployment);
    assert_eq!(
        array_at(container, "/args")[0],
        "run",
        "the Deployment runs the agent"
    );

    let liveness = &container["livenessProbe"]["httpGet"];
    let readiness = &container["readinessProbe"]["httpGet"];
    assert_eq!(liveness["path"], "/healthz");
    assert_eq!(readiness["path"], "/readyz");
    let port = container_port(container, &liveness["port"]);
    assert_eq!(container_port(container, &readiness["port"]), port);
    if let Some(startup) = container.get("startupProbe") {
        assert_eq!(container_port(container, &startup["httpGet"]["port"]), port);
    }

    // The Service forwards to that port and selects the Deployment's pods.
    let service_port = array_at(&service, "/spec/ports")
        .iter()
        .find(|p| container_port(container, &p["targetPort"]) == port)
        .expect("a Service port targets the agent port");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "Service selector {k}");
    }

    // Prometheus scrapes the same port: by annotation and by ServiceMonitor.
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    let endpoint = &array_at(&monitor, "/spec/endpoints")[0];
    assert_eq!(endpoint["port"], service_port["name"]);
    assert_eq!(endpoint["path"], "/metrics");
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &service["metadata"]["labels"][k], v,
            "ServiceMonitor selector {k}"
        );
    }

    // The agent listens on that port on every interface.
    let config = manifest("configmap.yaml");
    let warden_yaml = yaml_str(
        &without_variables(str_at(&config, "/data/warden.yaml")),
        "warden.yaml",
    );
    assert_eq!(
        str_at(&warden_yaml, "/agent/listen"),
        format!("0.0.0.0:{port}")
    );
}

#[test]
fn deployment_is_non_root_read_only_and_drains_on_sigterm() {
    let deployment = manifest("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = warden_container(&deployment);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    // The pod is given longer than the agent's drain.
    let args: Vec<&str> = array_at(container, "/args")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let grace = args
        .iter()
        .position(|a| *a == "--grace-period")
        .map(|i| humantime::parse_duration(args[i + 1]).unwrap())
        .unwrap_or(warden::agent::DEFAULT_GRACE);
    let termination = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        Duration::from_secs(termination) >= grace + Duration::from_secs(10),
        "terminationGracePeriodSeconds {termination} leaves no margin over the drain of {grace:?}"
    );
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    // SQLite has one writer: one replica, the old pod gone before the new.
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
}

/// `text` with each `${VAR}` or `${VAR:-default}` replaced by `VAR`, so that
/// it parses as YAML without the environment warden expands it with.
fn without_variables(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${") + start;
        let var = &rest[start + 2..end];
        out.push_str(var.split(":-").next().unwrap());
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The files the Deployment mounts from the ConfigMap, at their paths.
fn mounted_config(dir: &Path) -> PathBuf {
    let deployment = manifest("deployment.yaml");
    let config = manifest("configmap.yaml");
    let container = warden_container(&deployment);
    let mount = array_at(container, "/volumeMounts")
        .iter()
        .find(|m| m["name"] == "config")
        .expect("the config volume is mounted");
    let volume = array_at(&deployment, "/spec/template/spec/volumes")
        .iter()
        .find(|v| v["name"] == "config")
        .expect("a config volume");
    assert_eq!(
        volume["configMap"]["name"], config["metadata"]["name"],
        "the volume mounts the ConfigMap"
    );
    let items = array_at(volume, "/configMap/items");
    let keys: BTreeSet<&str> = config["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        items
            .iter()
            .map(|i| str_at(i, "/key"))
            .collect::<BTreeSet<_>>(),
        keys,
        "every ConfigMap key, and only those, is mounted"
    );
    for item in items {
        let path = dir.join(str_at(item, "/path"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            str_at(&config, &format!("/data/{}", str_at(item, "/key"))),
        )
        .unwrap();
    }
    // WARDEN_CONFIG names warden.yaml under the mount.
    let env = array_at(container, "/env");
    let config_path = env
        .iter()
        .find(|e| e["name"] == "WARDEN_CONFIG")
        .map(|e| str_at(e, "/value"))
        .expect("WARDEN_CONFIG is set");
    let rel = Path::new(config_path)
        .strip_prefix(str_at(mount, "/mountPath"))
        .expect("WARDEN_CONFIG is under the config mount");
    dir.join(rel)
}

/// The environment the pod gets: every secretKeyRef resolved from the
/// example Secret (which must hold each required key).
fn pod_env() -> Vec<(String, String)> {
    let deployment = manifest("deployment.yaml");
    let secret = manifest("secret.example.yaml");
    let mut env = Vec::new();
    for e in array_at(warden_container(&deployment), "/env") {
        let name = str_at(e, "/name");
        if let Some(value) = e.get("value") {
            env.push((name.to_owned(), value.as_str().unwrap().to_owned()));
            continue;
        }
        let reference = &e["valueFrom"]["secretKeyRef"];
        assert_eq!(reference["name"], secret["metadata"]["name"], "{name}");
        let key = str_at(reference, "/key");
        match secret["stringData"].get(key).and_then(Value::as_str) {
            Some(v) => env.push((name.to_owned(), v.to_owned())),
            None => assert_eq!(
                reference["optional"], true,
                "{name}: the example Secret has no {key}"
            ),
        }
    }
    env
}

#[test]
fn the_configmap_is_a_valid_warden_config_with_the_secret_variables() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = mounted_config(dir.path());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.arg("--config").arg(&config_path).arg("validate");
    cmd.env_remove("WARDEN_REGISTRY_URL");
    cmd.envs(pod_env());
    let out = cmd.output().expect("run warden validate");
    assert!(
        out.status.success(),
        "warden validate rejects the ConfigMap's config:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_pod_listens_beyond_loopback_with_a_pipeline_and_an_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = mounted_config(dir.path());
    let env: BTreeMap<String, String> = pod_env().into_iter().collect();
    let loaded = warden::config::load_with_env(&config_path, &|name: &str| env.get(name).cloned())
        .expect("the ConfigMap's config loads");
    let agent = &loaded.config.agent;
    let addr: std::net::SocketAddr = agent.listen.parse().unwrap();
    assert!(!addr.ip().is_loopback(), "{addr}");
    // `warden run` would start: the API is not open.
    warden::agent::check_exposure(agent, addr).expect("tokens guard the API");
    // The pipeline's token is the one the clients send; someone can override.
    let pipeline = warden::http::auth::identify(&agent.api_tokens, &env["WARDEN_API_TOKEN"])
        .expect("WARDEN_API_TOKEN is a token");
    for scope in [Scope::Read, Scope::Gate, Scope::Publish] {
        assert!(pipeline.scopes.contains(scope), "{scope}");
    }
    assert!(
        agent
            .api_tokens
            .iter()
            .any(|t| t.scopes.contains(Scope::Admin)),
        "no token may override or silence"
    );
}

// ---- the image and the systemd units ----

/// `INSTRUCTION args` lines of the Dockerfile's final stage.
fn final_stage(dockerfile: &str) -> Vec<(String, String)> {
    let mut stage = Vec::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (instruction, args) = line.split_once(' ').unwrap_or((line, ""));
        if instruction == "FROM" {
            stage.clear();
        }
        stage.push((instruction.to_owned(), args.trim().to_owned()));
    }
    stage
}

#[test]
fn the_image_runs_the_agent_as_the_user_and_port_the_manifests_expect() {
    let stage = final_stage(&read("deploy/Dockerfile"));
    let get = |instruction: &str| -> Vec<&str> {
        stage
            .iter()
            .filter(|(i, _)| i == instruction)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    let deployment = manifest("deployment.yaml");
    let container = warden_container(&deployment);
    let pod = &deployment["spec"]["template"]["spec"];

    assert_eq!(get("CMD"), [r#"["run"]"#]);
    assert_eq!(get("ENTRYPOINT"), [r#"["/usr/local/bin/warden"]"#]);
    let port = container_port(container, &container["livenessProbe"]["httpGet"]["port"]);
    assert_eq!(get("EXPOSE"), [port.to_string().as_str()]);
    let user = pod["securityContext"]["runAsUser"].as_u64().unwrap();
    let image_user = get("USER");
    assert_eq!(image_user.len(), 1);
    assert_eq!(
        image_user[0].split(':').next().unwrap(),
        user.to_string(),
        "the image's USER is the pod's runAsUser"
    );
    assert_ne!(user, 0);

    let data = array_at(container, "/volumeMounts")
        .iter()
        .find(|m| m["name"] == "data")
        .map(|m| str_at(m, "/mountPath"))
        .expect("the data volume is mounted");
    assert_eq!(get("VOLUME"), [format!(r#"["{data}"]"#).as_str()]);
    let env = array_at(container, "/env")
        .iter()
        .find(|e| e["name"] == "WARDEN_CONFIG")
        .map(|e| str_at(e, "/value"))
        .unwrap();
    assert!(
        get("ENV").contains(&format!("WARDEN_CONFIG={env}").as_str()),
        "the image's WARDEN_CONFIG is the pod's"
    );
}

fn unit_settings(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect()
}

#[test]
fn the_systemd_unit_runs_the_agent_reloads_on_hup_and_is_hardened() {
    let text = read("deploy/systemd/warden.service");
    let settings = unit_settings(&text);
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    };
    let exec: Vec<&str> = get("ExecStart")[0].split_whitespace().collect();
    assert_eq!(exec[..2], ["/usr/local/bin/warden", "run"]);
    let grace = exec
        .iter()
        .position(|a| *a == "--grace-period")
        .map(|i| humantime::parse_duration(exec[i + 1]).unwrap())
        .unwrap_or(warden::agent::DEFAULT_GRACE);
    assert_eq!(get("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(get("KillSignal"), ["SIGTERM"]);
    assert_eq!(get("Restart"), ["on-failure"]);
    let stop = humantime::parse_duration(get("TimeoutStopSec")[0]).unwrap();
    assert!(
        stop >= grace + Duration::from_secs(10),
        "TimeoutStopSec {stop:?} leaves no margin over the drain of {grace:?}"
    );
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("StateDirectory", "warden"),
        ("SystemCallFilter", "@system-service"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ] {
        assert!(get(key).contains(&value), "warden.service: {key}={value}");
    }
}

#[test]
fn systemd_analyze_accepts_the_units() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("note: systemd-analyze is not installed; the units were not verified");
        return;
    };
    assert!(version.status.success());
    // verify needs ExecStart to exist: point the units at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let units = [
        "warden.service",
        "warden-check.service",
        "warden-check.timer",
    ];
    for unit in units {
        let text = read(&format!("deploy/systemd/{unit}"))
            .replace("/usr/local/bin/warden", env!("CARGO_BIN_EXE_warden"));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units.map(|u| dir.path().join(u)))
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify ({}):\n{stderr}",
        out.status
    );
}
