//! `warden status`: what the status page shows, read from the running
//! agent (`GET /api/v1/status`), as a terminal summary or as the JSON the
//! API returns. Exit 0 when the agent answered, 2 when it could not be
//! asked.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::args::{Format, StatusArgs};
use super::client;
use warden::check::{CheckKind, Outcome};

/// The status as the API answers it (the parts printed).
#[derive(Debug, Deserialize)]
struct Status {
    generated_at: DateTime<Utc>,
    version: String,
    configuration: u64,
    registry_error: Option<String>,
    #[serde(default)]
    config_errors: Vec<String>,
    #[serde(default)]
    warehouses: Vec<Warehouse>,
    #[serde(default)]
    datasets: Vec<Dataset>,
    #[serde(default)]
    firing_alerts: Vec<Alert>,
    #[serde(default)]
    recent_gates: Vec<Gate>,
}

#[derive(Debug, Deserialize)]
struct Warehouse {
    name: String,
    up: bool,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Dataset {
    name: String,
    tier: u8,
    owner: Option<String>,
    status: String,
    discovered: Option<String>,
    last_run_at: Option<DateTime<Utc>>,
    freshness_lag_seconds: Option<f64>,
    warehouse_up: bool,
    #[serde(default)]
    checks: Vec<Check>,
}

#[derive(Debug, Deserialize)]
struct Check {
    check: String,
    kind: String,
    last_result: Option<LastResult>,
    #[serde(default)]
    recent: Vec<Point>,
}

#[derive(Debug, Deserialize)]
struct LastResult {
    outcome: Outcome,
    observed: Option<f64>,
    #[serde(default)]
    threshold: std::collections::BTreeMap<String, serde_json::Value>,
    message: String,
}

#[derive(Debug, Deserialize)]
struct Point {
    value: f64,
    outcome: Outcome,
}

#[derive(Debug, Deserialize)]
struct Alert {
    key: String,
    starts_at: DateTime<Utc>,
    labels: AlertLabels,
    annotations: AlertAnnotations,
    #[serde(default)]
    silenced: bool,
}

#[derive(Debug, Deserialize)]
struct AlertLabels {
    severity: String,
    check: Option<String>,
    partition: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AlertAnnotations {
    summary: String,
}

#[derive(Debug, Deserialize)]
struct Gate {
    dataset: String,
    partition: String,
    status: String,
    basis: Option<String>,
    created_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
}

pub async fn run(config_path: &Path, args: StatusArgs) -> anyhow::Result<u8> {
    let server = client::server(args.server.as_deref(), config_path)?;
    let url = client::endpoint(&server, &["api", "v1", "status"])?;
    let patience = client::Patience {
        attempt: std::time::Duration::from_secs(30),
        retry_within: client::RETRY_WITHIN,
    };
    let answer = client::get(&url, args.token.as_deref(), patience).await?;
    if answer.status.as_u16() != 200 {
        eprintln!("error: {}", answer.error_line());
        if let Some(hint) = answer.auth_hint() {
            eprintln!("{hint}");
        }
        return Ok(2);
    }
    let status: Status = answer.json()?;
    match args.format {
        Format::Json => println!("{}", answer.body),
        Format::Text => print!("{}", text(&status, server.as_str())),
    }
    Ok(0)
}

/// Eight levels of a sparkline, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The last values as a line of bars; a failing or erroring run is `x`.
fn spark(points: &[Point]) -> String {
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.value), h.max(p.value))
        });
    points
        .iter()
        .map(|p| match p.outcome {
            Outcome::Fail | Outcome::Error => 'x',
            _ if hi > lo => {
                let i = ((p.value - lo) / (hi - lo) * 7.0).round() as usize;
                BARS[i.min(7)]
            }
            _ => BARS[3],
        })
        .collect()
}

fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    warden::format::duration((now - t).num_seconds().max(0) as f64)
}

/// The summary: the headline, problems, firing alerts, each dataset with
/// its checks (worst first, as on the page), the recent gates.
fn text(s: &Status, server: &str) -> String {
    let now = s.generated_at;
    let mut out = String::new();
    let mut counts = [0usize; 5];
    for d in &s.datasets {
        let i = match d.status.as_str() {
            "pass" => 0,
            "warn" => 1,
            "fail" => 2,
            "error" => 3,
            _ => 4,
        };
        counts[i] += 1;
    }
    let _ = writeln!(
        out,
        "warden {} at {server} · configuration #{} · {} datasets: {} passing, {} warning, {} failing, {} erroring, {} not run yet",
        s.version,
        s.configuration,
        s.datasets.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4]
    );
    if let Some(e) = &s.registry_error {
        let _ = writeln!(out, "registry unavailable: {e}");
    }
    for w in &s.warehouses {
        match (w.up, &w.reason) {
            (true, _) => {
                let _ = writeln!(out, "warehouse {} up", w.name);
            }
            (false, reason) => {
                let _ = writeln!(
                    out,
                    "warehouse {} DOWN{}",
                    w.name,
                    reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    if !s.config_errors.is_empty() {
        let _ = writeln!(out, "configuration errors:");
        for e in &s.config_errors {
            let _ = writeln!(out, "  {e}");
        }
    }
    let _ = writeln!(out, "\nfiring alerts: {}", s.firing_alerts.len());
    for a in &s.firing_alerts {
        let name = a.labels.check.as_deref().unwrap_or(&a.key);
        let partition = a
            .labels
            .partition
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<8}  {name}{partition}  since {}{}  {}",
            a.labels.severity,
            ago(now, a.starts_at),
            if a.silenced { " (silenced)" } else { "" },
            a.annotations.summary
        );
    }
    let mut group: Option<Option<&str>> = None;
    for d in &s.datasets {
        if group != Some(d.discovered.as_deref()) {
            group = Some(d.discovered.as_deref());
            if let Some(g) = d.discovered.as_deref() {
                let _ = writeln!(out, "\n== {g}");
            }
        }
        let _ = write!(
            out,
            "\n{:<7}  {}  tier {}",
            d.status.to_uppercase(),
            d.name,
            d.tier
        );
        if let Some(owner) = &d.owner {
            let _ = write!(out, "  owner {owner}");
        }
        match d.last_run_at {
            Some(t) => {
                let _ = write!(out, "  last run {} ago", ago(now, t));
            }
            None => out.push_str("  not run yet"),
        }
        if let Some(lag) = d.freshness_lag_seconds {
            let _ = write!(out, "  freshness lag {}", warden::format::duration(lag));
        }
        if !d.warehouse_up {
            out.push_str("  (warehouse down)");
        }
        out.push('\n');
        let width = d.checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
        for c in &d.checks {
            let (outcome, observed, threshold, message) = match &c.last_result {
                Some(r) => (
                    r.outcome.as_str(),
                    r.observed
                        .map_or_else(|| "–".to_owned(), |v| CheckKind::show_observed(&c.kind, v)),
                    CheckKind::show_thresholds(&c.kind, &r.threshold),
                    r.message.as_str(),
                ),
                None => ("-", "–".to_owned(), String::new(), "not run yet"),
            };
            let _ = writeln!(
                out,
                "  {outcome:<5}  {:<width$}  {:<30}  {observed} ({threshold})  {message}",
                c.check,
                spark(&c.recent),
            );
        }
    }
    if !s.recent_gates.is_empty() {
        let _ = writeln!(out, "\nrecent gates:");
        for g in &s.recent_gates {
            let decision = match &g.basis {
                Some(b) => format!("{} ({b})", g.status),
                None => g.status.clone(),
            };
            let _ = writeln!(
                out,
                "  {decision:<20}  {} {}  {} ago",
                g.dataset,
                g.partition,
                ago(now, g.decided_at.unwrap_or(g.created_at))
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparks_scale_their_values_and_mark_failures() {
        let p = |value, outcome| Point { value, outcome };
        assert_eq!(
            spark(&[
                p(0.0, Outcome::Pass),
                p(7.0, Outcome::Pass),
                p(3.5, Outcome::Warn),
                p(7.0, Outcome::Fail)
            ]),
            "▁█▅x"
        );
        assert_eq!(spark(&[p(1.0, Outcome::Pass), p(1.0, Outcome::Pass)]), "▄▄");
        assert_eq!(spark(&[]), "");
    }
}
