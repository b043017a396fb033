//! `warden gate D --partition P`: asks the running agent's gate whether a
//! staged partition may be published, waits for the decision, prints a
//! summary and exits 0 (allow), 1 (denied for a breach: do not retry) or 2
//! (no decision, or denied for an error or a timeout: a retry may help).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::args::{Format, GateArgs};
use super::client::{self, Answer};
use warden::check::CheckResult;

/// Extra time the client gives the agent beyond `--wait` to answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(30);

/// The gate as the API answers it.
#[derive(Debug, Deserialize)]
struct Gate {
    gate_id: String,
    dataset: String,
    partition: String,
    run_id: String,
    status: String,
    basis: Option<String>,
    #[serde(default)]
    results: Vec<CheckResult>,
    #[serde(default)]
    reasons: Vec<String>,
}

/// `--wait`: a duration from 1 s to 5 min (what the agent accepts), so that
/// a wrong value is a usage error before anything is asked.
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    let wait = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    warden::gate::check_wait(wait)
}

pub async fn run(config_path: &Path, args: GateArgs) -> anyhow::Result<u8> {
    let server = client::server(args.server.as_deref(), config_path)?;
    // A run id of our own, so that a retry after a lost connection finds the
    // gate its first attempt started.
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4()));
    let mut url = client::endpoint(&server, &["api", "v1", "gates"])?;
    url.query_pairs_mut()
        .append_pair("wait", &format!("{}s", args.wait.as_secs()));
    let body = json!({"dataset": args.dataset, "partition": args.partition, "run_id": run_id});
    // The agent answers by `--wait`; while it cannot be reached, retries
    // stop by then too.
    let patience = client::Patience {
        attempt: args.wait + ANSWER_MARGIN,
        retry_within: args.wait,
    };
    let answer = client::post(&url, args.token.as_deref(), &body, patience).await?;
    let code = match answer.status.as_u16() {
        200 | 202 => {
            let gate: Gate = answer.json()?;
            match args.format {
                Format::Json => println!("{}", answer.body),
                Format::Text => print!("{}", summary(&gate, args.wait)),
            }
            exit_code(&gate)
        }
        _ => {
            report_error(&answer);
            2
        }
    };
    Ok(code)
}

/// 0 allowed; 1 denied for a breach; 2 denied for an error or a timeout, or
/// not decided yet.
fn exit_code(gate: &Gate) -> u8 {
    match (gate.status.as_str(), gate.basis.as_deref()) {
        ("allowed", _) => 0,
        ("denied", Some("checks")) => 1,
        _ => 2,
    }
}

fn report_error(answer: &Answer) {
    eprintln!("error: {}", answer.error_line());
    if let Some(hint) = answer.auth_hint() {
        eprintln!("{hint}");
    }
    if answer.status.as_u16() == 503 {
        eprintln!("the gate denies while the registry is unavailable; retrying later may help");
    }
}

/// What the pipeline's log should show: the decision, then every check,
/// then the reasons.
fn summary(gate: &Gate, wait: Duration) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let headline = match (gate.status.as_str(), gate.basis.as_deref()) {
        ("allowed", Some("override")) => "ALLOWED (a person overrode the quarantine)".to_owned(),
        ("allowed", _) => "ALLOWED".to_owned(),
        ("denied", Some("checks")) => "DENIED: a blocking check failed (do not retry)".to_owned(),
        ("denied", Some(basis)) => {
            format!("DENIED on {basis}: the data could not be judged (a retry may help)")
        }
        (status, _) => format!(
            "NO DECISION within {}: the gate is still {status}",
            humantime::format_duration(wait)
        ),
    };
    let _ = writeln!(
        out,
        "gate {} for {} partition {} (run {}): {headline}",
        gate.gate_id, gate.dataset, gate.partition, gate.run_id
    );
    let width = gate
        .results
        .iter()
        .map(|r| r.check.len())
        .max()
        .unwrap_or(0);
    for r in &gate.results {
        let _ = writeln!(
            out,
            "  {:<5}  {:<width$}  {}",
            r.outcome.as_str(),
            r.check,
            r.message
        );
    }
    for reason in &gate.reasons {
        let _ = writeln!(out, "  - {reason}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(status: &str, basis: Option<&str>) -> Gate {
        Gate {
            gate_id: "g1".into(),
            dataset: "orders".into(),
            partition: "2026-11-20".into(),
            run_id: "r1".into(),
            status: status.into(),
            basis: basis.map(str::to_owned),
            results: Vec::new(),
            reasons: vec!["orders.row_count failed: 0 rows (min 1)".into()],
        }
    }

    #[test]
    fn the_wait_is_one_second_to_five_minutes() {
        assert_eq!(parse_wait("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_wait("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_wait("0s").unwrap_err(), "0s is not between 1s and 5m");
        assert_eq!(
            parse_wait("301s").unwrap_err(),
            "5m 1s is not between 1s and 5m"
        );
        assert!(parse_wait("soon").is_err());
    }

    #[test]
    fn exit_codes_follow_the_basis() {
        assert_eq!(exit_code(&gate("allowed", Some("checks"))), 0);
        assert_eq!(exit_code(&gate("allowed", Some("override"))), 0);
        assert_eq!(exit_code(&gate("denied", Some("checks"))), 1);
        assert_eq!(exit_code(&gate("denied", Some("error"))), 2);
        assert_eq!(exit_code(&gate("denied", Some("timeout"))), 2);
        assert_eq!(exit_code(&gate("running", None)), 2);
    }

    #[test]
    fn the_summary_names_the_decision_and_the_reasons() {
        let text = summary(&gate("denied", Some("checks")), Duration::from_secs(300));
        assert_eq!(
            text,
            "gate g1 for orders partition 2026-11-20 (run r1): DENIED: a blocking check failed (do not retry)\n  \
             - orders.row_count failed: 0 rows (min 1)\n"
        );
        let text = summary(&gate("queued", None), Duration::from_secs(300));
        assert!(
            text.contains("NO DECISION within 5m: the gate is still queued"),
            "{text}"
        );
    }
}
