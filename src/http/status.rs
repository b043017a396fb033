//! The status page at `/`: server-rendered HTML with no build step and no
//! script. Datasets with tier, owner, last run, each check's outcome, the
//! observed value against its threshold, and freshness lag; the firing
//! alerts, the silences and the latest gate decisions; a banner with the
//! configuration's problems while it has any; readable on a phone; it
//! refreshes itself.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::view::{self, CheckView, DatasetView};
use crate::alert::FiringAlert;
use crate::app::AppState;
use crate::check::{CheckKind, Outcome};
use crate::config::LoadReport;
use crate::config::routes::{Severity, Silence};
use crate::format::duration;
use crate::gate::Gate;
use crate::registry::GateStatus;

/// Gates shown at the bottom of the page.
const RECENT_GATES: u32 = 10;

/// Seconds between automatic refreshes.
const REFRESH_SECONDS: u32 = 30;

const STYLE: &str = r#"
:root{--pass:#1a7f37;--warn:#9a6700;--fail:#cf222e;--error:#8250df;--unknown:#57606a;--bg:#f6f8fa;--fg:#1f2328;--muted:#57606a;--card:#fff;--line:#d0d7de}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#8d96a0;--card:#161b22;--line:#30363d}}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{padding:12px 16px;border-bottom:1px solid var(--line);background:var(--card)}header h1{font-size:18px;margin:0}header p{margin:2px 0 0;color:var(--muted);font-size:13px}
main{padding:12px;max-width:1100px;margin:0 auto}
.totals{display:flex;flex-wrap:wrap;gap:8px;margin:4px 0 12px}.totals span{padding:4px 10px;border-radius:12px;background:var(--card);border:1px solid var(--line);font-size:13px}
section.ds{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--unknown);border-radius:8px;margin:0 0 12px;padding:10px 12px}
section.ds.pass{border-left-color:var(--pass)}section.ds.warn{border-left-color:var(--warn)}section.ds.fail{border-left-color:var(--fail)}section.ds.error{border-left-color:var(--error)}
.ds h2{font-size:16px;margin:0;display:flex;flex-wrap:wrap;gap:6px;align-items:center}.meta{color:var(--muted);font-size:13px;margin:2px 0 8px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:var(--unknown)}
.badge.pass{background:var(--pass)}.badge.warn{background:var(--warn)}.badge.fail{background:var(--fail)}.badge.error{background:var(--error)}.badge.tier{background:none;color:var(--fg);border:1px solid var(--line)}
table{width:100%;border-collapse:collapse;font-size:14px}th,td{text-align:left;padding:5px 6px;border-top:1px solid var(--line);vertical-align:top}th{color:var(--muted);font-weight:600;font-size:12px}
td.msg{color:var(--muted);font-size:13px}.down{color:var(--fail);font-weight:600}
@media (max-width:640px){thead{display:none}table,tr,td{display:block;width:100%}tr{border-top:1px solid var(--line);padding:4px 0}td{border:0;padding:2px 0}td.msg{padding-bottom:6px}}
"#;

/// `GET /`: the page as last rendered, rendered again when it is older
/// than [`STATUS_PAGE_MAX_AGE`](crate::app::STATUS_PAGE_MAX_AGE) (once,
/// however many load it at the same time) or the configuration (or how
/// its last load went) changed.
pub async fn page(State(state): State<AppState>) -> Response {
    // A new configuration, or a new load report (a reload that failed),
    // shows at once.
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        state.generation().number.hash(&mut h);
        std::sync::Arc::as_ptr(&state.config_report()).hash(&mut h);
        h.finish()
    };
    let html = state
        .status_page()
        .get(key, || async { Bytes::from(render_now(&state).await) })
        .await;
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        ],
        Bytes::clone(&html),
    )
        .into_response()
}

/// Reads what the page shows (on the registry's read pool) and renders it.
async fn render_now(state: &AppState) -> String {
    let config = state.config();
    let now = Utc::now();
    let (mut latest, registry_error) = match view::latest_by_dataset(state, &config).await {
        Ok(l) => (l, None),
        Err(e) => (Default::default(), Some(e.to_string())),
    };
    let mut datasets = Vec::with_capacity(config.datasets.len());
    for ds in &config.datasets {
        let results = latest.remove(ds.name.as_str()).unwrap_or_default();
        let v = view::dataset_view(state, &config, ds, &results, now);
        datasets.push((v, view::check_views(ds, results)));
    }
    let generation = state.generation();
    let mut warehouses: Vec<(String, bool, Option<String>)> = generation
        .lanes
        .iter()
        .map(|(name, lane)| {
            let s = lane.circuit.status();
            (name.clone(), s.up, s.reason)
        })
        .collect();
    warehouses.sort();
    let firing = state.alerts().firing(now).await.unwrap_or_default();
    let silences = state.alerts().silences(now).await.unwrap_or_default();
    // The page still renders when the registry is down; the error above says so.
    let gates = state.gates().recent(RECENT_GATES).await.unwrap_or_default();
    let config_report = state.config_report();
    render(&Page {
        now,
        config_report: &config_report,
        started_at: state.started_at(),
        generation: generation.number,
        registry: state.registry().url(),
        registry_error: registry_error.as_deref(),
        warehouses: &warehouses,
        datasets: &datasets,
        firing: &firing,
        silences: &silences,
        gates: &gates,
    })
}

struct Page<'a> {
    now: DateTime<Utc>,
    config_report: &'a LoadReport,
    started_at: DateTime<Utc>,
    generation: u64,
    registry: &'a str,
    registry_error: Option<&'a str>,
    warehouses: &'a [(String, bool, Option<String>)],
    datasets: &'a [(DatasetView, Vec<CheckView>)],
    firing: &'a [FiringAlert],
    silences: &'a [Silence],
    gates: &'a [Gate],
}

fn render(p: &Page<'_>) -> String {
    let mut h = String::with_capacity(8 * 1024 + p.datasets.len() * 2048);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>warden status</title><style>{STYLE}</style></head><body>\
         <header><h1>warden</h1><p>version {} · up since {} · configuration #{} · registry {} · updated {} · refreshes every {REFRESH_SECONDS}s</p></header><main>",
        env!("CARGO_PKG_VERSION"),
        p.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        p.generation,
        esc(p.registry),
        p.now.format("%H:%M:%S UTC"),
    );
    if let Some(e) = p.registry_error {
        let _ = write!(h, "<p class=\"down\">Registry unavailable: {}</p>", esc(e));
    }
    config_banner(&mut h, p.config_report, p.now);
    let mut counts = [0usize; 5];
    for (d, _) in p.datasets {
        let i = match d.status.as_str() {
            "pass" => 0,
            "warn" => 1,
            "fail" => 2,
            "error" => 3,
            _ => 4,
        };
        counts[i] += 1;
    }
    let _ = write!(
        h,
        "<div class=\"totals\"><span>{} datasets</span><span>{} passing</span><span>{} warning</span><span>{} failing</span><span>{} erroring</span><span>{} not run yet</span>",
        p.datasets.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4]
    );
    for (name, up, reason) in p.warehouses {
        if *up {
            let _ = write!(h, "<span>warehouse {} up</span>", esc(name));
        } else {
            let _ = write!(
                h,
                "<span class=\"down\" title=\"{}\">warehouse {} down</span>",
                esc(reason.as_deref().unwrap_or("")),
                esc(name)
            );
        }
    }
    h.push_str("</div>");
    alerts(&mut h, p.firing, p.silences, p.now);
    if p.datasets.is_empty() {
        h.push_str("<p>No datasets are configured.</p>");
    }
    // Worst first, so a problem is at the top of a phone screen.
    let mut order: Vec<&(DatasetView, Vec<CheckView>)> = p.datasets.iter().collect();
    order.sort_by_key(|(d, _)| {
        let rank = Outcome::parse(&d.status).map_or(0, |o| view::severity_rank(o) + 1);
        (std::cmp::Reverse(rank), d.tier, d.name.clone())
    });
    for (d, checks) in order {
        dataset(&mut h, d, checks, p.now);
    }
    gates(&mut h, p.gates, p.now);
    h.push_str("</main></body></html>");
    h
}

/// The problems of the latest configuration load, while there are any, and
/// which files still run on their previous version.
fn config_banner(h: &mut String, report: &LoadReport, now: DateTime<Utc>) {
    if report.successful() {
        return;
    }
    let _ = write!(
        h,
        "<section class=\"ds fail\" id=\"config-errors\"><h2>Configuration errors <span class=\"badge fail\">{}</span></h2><p class=\"meta\">",
        report.problems.len()
    );
    if !report.kept.is_empty() {
        let files: Vec<String> = report
            .kept
            .iter()
            .map(|f| esc(&f.display().to_string()))
            .collect();
        let _ = write!(
            h,
            "The previous version stays in force for: {}. ",
            files.join(", ")
        );
    }
    match report.last_success {
        Some(t) => {
            let _ = write!(h, "Last clean load {} ago.", ago(now, t));
        }
        None => h.push_str("No clean load since start-up."),
    }
    h.push_str("</p><ul>");
    for d in &report.problems {
        let _ = write!(h, "<li><code>{}</code></li>", esc(&d.to_string()));
    }
    h.push_str("</ul></section>");
}

/// The latest gate decisions, newest first.
fn gates(h: &mut String, gates: &[Gate], now: DateTime<Utc>) {
    if gates.is_empty() {
        return;
    }
    h.push_str(
        "<section class=\"ds\" id=\"gates\"><h2>Recent gates</h2><table><thead><tr><th>dataset</th>\
         <th>partition</th><th>run</th><th>decision</th><th>when</th><th>reasons</th></tr></thead><tbody>",
    );
    for g in gates {
        let class = match g.status {
            GateStatus::Allowed => "pass",
            GateStatus::Denied => "fail",
            GateStatus::Queued | GateStatus::Running => "unknown",
        };
        let decision = match g.basis {
            Some(basis) => format!("{} ({})", g.status.as_str(), basis.as_str()),
            None => g.status.as_str().to_owned(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td title=\"gate {}\">{}</td><td><span class=\"badge {class}\">{}</span></td>\
             <td>{} ago</td><td class=\"msg\">{}</td></tr>",
            esc(&g.dataset),
            esc(&g.partition),
            esc(&g.gate_id),
            esc(&g.run_id),
            esc(&decision),
            ago(now, g.decided_at.unwrap_or(g.created_at)),
            esc(&g.reasons.join("; ")),
        );
    }
    h.push_str("</tbody></table></section>");
}

/// Firing alerts (most severe first) and the silences in force or to come.
fn alerts(h: &mut String, firing: &[FiringAlert], silences: &[Silence], now: DateTime<Utc>) {
    let _ = write!(
        h,
        "<section class=\"ds alerts\" id=\"alerts\"><h2>Firing alerts <span class=\"badge tier\">{}</span></h2>",
        firing.len()
    );
    if firing.is_empty() {
        h.push_str("<p class=\"meta\">None.</p>");
    } else {
        let mut order: Vec<&FiringAlert> = firing.iter().collect();
        order.sort_by_key(|f| (f.alert.labels.severity, f.alert.starts_at));
        h.push_str("<table><thead><tr><th>alert</th><th>severity</th><th>since</th><th>owner</th><th>summary</th></tr></thead><tbody>");
        for f in order {
            let a = &f.alert;
            let name = match &a.labels.partition {
                Some(p) => format!("{} ({p})", a.labels.check.as_deref().unwrap_or(&a.key)),
                None => a.labels.check.clone().unwrap_or_else(|| a.subject()),
            };
            let severity = a.labels.severity.as_str();
            let class = match a.labels.severity {
                Severity::Critical => "fail",
                Severity::Error => "error",
                Severity::Warning => "warn",
                Severity::Info => "pass",
            };
            let _ = write!(
                h,
                "<tr><td>{}{}</td><td><span class=\"badge {class}\">{severity}</span></td><td>{} ago</td><td>{}</td><td class=\"msg\">{}</td></tr>",
                esc(&name),
                if f.silenced {
                    " <em>(silenced)</em>"
                } else {
                    ""
                },
                ago(now, a.starts_at),
                esc(a.labels.owner.as_deref().unwrap_or("")),
                esc(&a.annotations.summary),
            );
        }
        h.push_str("</tbody></table>");
    }
    if !silences.is_empty() {
        h.push_str("<h2>Silences</h2><table><thead><tr><th>matchers</th><th>until</th><th>by</th><th>comment</th></tr></thead><tbody>");
        for s in silences {
            let upcoming = if s.starts_at > now {
                format!(" (from {})", s.starts_at.format("%Y-%m-%d %H:%M UTC"))
            } else {
                String::new()
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
                esc(&s.matcher.to_json().to_string()),
                s.ends_at.format("%Y-%m-%d %H:%M UTC"),
                esc(&upcoming),
                esc(&match &s.note {
                    Some(note) => format!("{} ({note})", s.created_by),
                    None => s.created_by.clone(),
                }),
                esc(&s.comment),
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");
}

fn dataset(h: &mut String, d: &DatasetView, checks: &[CheckView], now: DateTime<Utc>) {
    let _ = write!(
        h,
        "<section class=\"ds {status}\" id=\"{id}\"><h2>{name} <span class=\"badge {status}\">{status}</span> <span class=\"badge tier\">tier {tier}</span></h2>",
        status = esc(&d.status),
        id = esc(&d.name),
        name = esc(&d.name),
        tier = d.tier,
    );
    let _ = write!(
        h,
        "<p class=\"meta\">{} · {}",
        esc(&d.table),
        esc(&d.warehouse)
    );
    if !d.warehouse_up {
        h.push_str(" <span class=\"down\">(down)</span>");
    }
    if let Some(owner) = &d.owner {
        let _ = write!(h, " · owner {}", esc(owner));
    }
    match d.last_run_at {
        Some(t) => {
            let _ = write!(h, " · last run {} ago", ago(now, t));
        }
        None => h.push_str(" · not run yet"),
    }
    if d.schedule.is_none() {
        h.push_str(" · on demand");
    } else if let Some(t) = d.next_run_at {
        let _ = write!(h, " · next {}", t.format("%H:%M UTC"));
    }
    if let Some(lag) = d.freshness_lag_seconds {
        let _ = write!(h, " · freshness lag {}", duration(lag));
    }
    if let Some(url) = &d.runbook {
        let _ = write!(h, " · <a href=\"{}\">runbook</a>", esc(url));
    }
    h.push_str("</p><table><thead><tr><th>check</th><th>outcome</th><th>observed</th><th>threshold</th><th>message</th></tr></thead><tbody>");
    for c in checks {
        let (outcome, observed, threshold, message) = match &c.last_result {
            Some(r) => (
                r.result.outcome.as_str(),
                r.result
                    .observed
                    .map_or_else(|| "–".to_owned(), |v| value(&c.kind, v)),
                thresholds(&c.kind, &r.result.threshold),
                r.result.message.as_str(),
            ),
            None => ("unknown", "–".to_owned(), String::new(), "not run yet"),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td><span class=\"badge {o}\">{o}</span></td><td>{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
            esc(&c.name),
            esc(&observed),
            esc(&threshold),
            esc(message),
            o = outcome,
        );
    }
    h.push_str("</tbody></table></section>");
}

/// An observed value in the unit of its kind.
fn value(kind: &str, v: f64) -> String {
    CheckKind::show_observed(kind, v)
}

fn thresholds(kind: &str, t: &std::collections::BTreeMap<String, serde_json::Value>) -> String {
    CheckKind::show_thresholds(kind, t)
}

fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    duration((now - t).num_seconds().max(0) as f64)
}

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_in_their_unit() {
        assert_eq!(value("null_rate", 0.012), "1.20%");
        assert_eq!(value("freshness", 3.0 * 86_400.0 + 7200.0), "3d 2h");
        assert_eq!(value("row_count", 500.0), "500");
        assert_eq!(value("row_count_change", -0.3), "-30%");
        assert_eq!(duration(59.4), "59s");
        assert_eq!(duration(3_700.0), "1h 1m");
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
